//! The gateway protocol (`kombu-gateway.v1`, see `docs/gateway-protocol.md`): frame types and
//! their codec. No IO here — the gateway server and the `gateway+ws://` client transports
//! (tokio natively, a browser WebSocket in wasm) exchange these frames over WebSocket.
//!
//! A frame is one binary WebSocket message: a 4-byte big-endian header length, the header
//! (JSON), then the message body as raw bytes (no base64). Several frames may travel in one
//! WebSocket message as a batch ([`encode_batch`], [`split_batch`]).

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ReplyCode, Result};
use crate::json_print::Obj;
use crate::properties::Properties;
use crate::proto::methods::{BasicConsume, BasicPublish, BasicQos, ExchangeBind, ExchangeDeclare, ExchangeDelete, QueueBind, QueueDeclare, QueueDelete};
use crate::value::Value;

/// The WebSocket subprotocol that names this version.
pub const SUBPROTOCOL: &str = "kombu-gateway.v1";
/// The largest header a peer accepts (the body is bounded separately by the server).
pub const MAX_HEADER: usize = 64 * 1024;

/// What a client asks. Every request carries an `id`; the server answers each with an
/// `ok` or `error` frame carrying the same `id`, except `basic.ack`/`reject`/`nack`
/// (answered only when they fail).
///
/// The server decodes requests with the derived `Deserialize`; clients encode them with
/// [`ClientHeader`]'s [`Header::write_json`] (written by hand: the derived serializer of a
/// flattened, internally tagged enum was ~4 KB of the wasm module).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op")]
#[allow(clippy::large_enum_variant)] // decoded once per frame
#[allow(missing_docs)] // each variant is the AMQP method of the same name; fields as in crate::proto::methods
pub enum Request {
    /// First frame: authentication, virtual host and the heartbeat interval (seconds) the
    /// client asks for.
    #[serde(rename = "hello")]
    Hello { #[serde(default)] vhost: Option<String>, #[serde(default)] token: Option<String>, #[serde(default)] client: Option<String>, #[serde(default)] heartbeat: Option<u16> },
    #[serde(rename = "channel.open")]
    ChannelOpen,
    #[serde(rename = "channel.close")]
    ChannelClose { channel: u32 },
    #[serde(rename = "exchange.declare")]
    ExchangeDeclare { channel: u32, method: ExchangeDeclare },
    #[serde(rename = "exchange.delete")]
    ExchangeDelete { channel: u32, method: ExchangeDelete },
    #[serde(rename = "exchange.bind")]
    ExchangeBind { channel: u32, method: ExchangeBind },
    #[serde(rename = "exchange.unbind")]
    ExchangeUnbind { channel: u32, method: ExchangeBind },
    #[serde(rename = "queue.declare")]
    QueueDeclare { channel: u32, method: QueueDeclare },
    #[serde(rename = "queue.bind")]
    QueueBind { channel: u32, method: QueueBind },
    #[serde(rename = "queue.unbind")]
    QueueUnbind { channel: u32, method: QueueBind },
    #[serde(rename = "queue.purge")]
    QueuePurge { channel: u32, queue: String },
    #[serde(rename = "queue.delete")]
    QueueDelete { channel: u32, method: QueueDelete },
    /// The frame's body is the message body.
    #[serde(rename = "basic.publish")]
    BasicPublish { channel: u32, method: BasicPublish, properties: Properties },
    #[serde(rename = "basic.get")]
    BasicGet { channel: u32, queue: String, no_ack: bool },
    #[serde(rename = "basic.consume")]
    BasicConsume { channel: u32, method: BasicConsume },
    #[serde(rename = "basic.cancel")]
    BasicCancel { channel: u32, consumer_tag: String },
    #[serde(rename = "basic.ack")]
    BasicAck { channel: u32, delivery_tag: u64, multiple: bool },
    #[serde(rename = "basic.reject")]
    BasicReject { channel: u32, delivery_tag: u64, requeue: bool },
    #[serde(rename = "basic.nack")]
    BasicNack { channel: u32, delivery_tag: u64, multiple: bool, requeue: bool },
    #[serde(rename = "basic.recover")]
    BasicRecover { channel: u32, requeue: bool },
    #[serde(rename = "basic.qos")]
    BasicQos { channel: u32, qos: BasicQos },
    #[serde(rename = "channel.flow")]
    Flow { channel: u32, active: bool },
    #[serde(rename = "confirm.select")]
    ConfirmSelect { channel: u32 },
    /// Close the connection (the server closes the WebSocket after answering).
    #[serde(rename = "close")]
    Close,
    /// The client is alive (sent when idle, once `hello` agreed on heartbeats; no answer).
    #[serde(rename = "heartbeat")]
    Heartbeat,
}

impl Request {
    /// The channel the request concerns (`None` for `hello`, `channel.open`, `close` and
    /// `heartbeat`).
    pub fn channel(&self) -> Option<u32> {
        match self {
            Request::Hello { .. } | Request::ChannelOpen | Request::Close | Request::Heartbeat => None,
            Request::ChannelClose { channel }
            | Request::ExchangeDeclare { channel, .. }
            | Request::ExchangeDelete { channel, .. }
            | Request::ExchangeBind { channel, .. }
            | Request::ExchangeUnbind { channel, .. }
            | Request::QueueDeclare { channel, .. }
            | Request::QueueBind { channel, .. }
            | Request::QueueUnbind { channel, .. }
            | Request::QueuePurge { channel, .. }
            | Request::QueueDelete { channel, .. }
            | Request::BasicPublish { channel, .. }
            | Request::BasicGet { channel, .. }
            | Request::BasicConsume { channel, .. }
            | Request::BasicCancel { channel, .. }
            | Request::BasicAck { channel, .. }
            | Request::BasicReject { channel, .. }
            | Request::BasicNack { channel, .. }
            | Request::BasicRecover { channel, .. }
            | Request::BasicQos { channel, .. }
            | Request::Flow { channel, .. }
            | Request::ConfirmSelect { channel } => Some(*channel),
        }
    }
}

impl Request {
    /// The request's `op` on the wire.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::ChannelOpen => "channel.open",
            Request::ChannelClose { .. } => "channel.close",
            Request::ExchangeDeclare { .. } => "exchange.declare",
            Request::ExchangeDelete { .. } => "exchange.delete",
            Request::ExchangeBind { .. } => "exchange.bind",
            Request::ExchangeUnbind { .. } => "exchange.unbind",
            Request::QueueDeclare { .. } => "queue.declare",
            Request::QueueBind { .. } => "queue.bind",
            Request::QueueUnbind { .. } => "queue.unbind",
            Request::QueuePurge { .. } => "queue.purge",
            Request::QueueDelete { .. } => "queue.delete",
            Request::BasicPublish { .. } => "basic.publish",
            Request::BasicGet { .. } => "basic.get",
            Request::BasicConsume { .. } => "basic.consume",
            Request::BasicCancel { .. } => "basic.cancel",
            Request::BasicAck { .. } => "basic.ack",
            Request::BasicReject { .. } => "basic.reject",
            Request::BasicNack { .. } => "basic.nack",
            Request::BasicRecover { .. } => "basic.recover",
            Request::BasicQos { .. } => "basic.qos",
            Request::Flow { .. } => "channel.flow",
            Request::ConfirmSelect { .. } => "confirm.select",
            Request::Close => "close",
            Request::Heartbeat => "heartbeat",
        }
    }
}

/// A frame header [`encode`] writes as JSON.
pub trait Header {
    /// Append the header's JSON to `out`.
    fn write_json(&self, out: &mut Vec<u8>);
}

/// Server frames: the derived serializer (the server's side).
impl Header for ServerFrame {
    fn write_json(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, self).expect("frame headers always serialize");
    }
}

/// Any JSON value (tests and tools write headers of their own).
impl Header for Value {
    fn write_json(&self, out: &mut Vec<u8>) {
        crate::json_print::compact(out, self);
    }
}

/// `{"id":N,"op":"...",...}`: the request's fields as the server's derived decoder reads them
/// (see `docs/gateway-protocol.md` §4), `id` and `op` first (the server's direct paths for
/// `basic.publish` and `basic.ack` look for them there); `None`s are left out.
impl Header for ClientHeader {
    fn write_json(&self, out: &mut Vec<u8>) {
        let mut o = Obj::new(out);
        o.num("id", self.id).str("op", self.request.op());
        if let Some(channel) = self.request.channel() {
            o.num("channel", channel.into());
        }
        match &self.request {
            Request::Hello { vhost, token, client, heartbeat } => {
                for (key, v) in [("vhost", vhost), ("token", token), ("client", client)] {
                    if let Some(v) = v {
                        o.str(key, v);
                    }
                }
                if let Some(h) = heartbeat {
                    o.num("heartbeat", (*h).into());
                }
            }
            Request::ChannelOpen | Request::ChannelClose { .. } | Request::ConfirmSelect { .. } | Request::Close | Request::Heartbeat => {}
            Request::ExchangeDeclare { method: m, .. } => {
                o.obj("method", |o| {
                    o.str("exchange", &m.exchange).str("type", m.kind.as_str()).bool("passive", m.passive).bool("durable", m.durable);
                    o.bool("auto_delete", m.auto_delete).bool("internal", m.internal).bool("nowait", m.nowait).map("arguments", &m.arguments);
                });
            }
            Request::ExchangeDelete { method: m, .. } => {
                o.obj("method", |o| {
                    o.str("exchange", &m.exchange).bool("if_unused", m.if_unused).bool("nowait", m.nowait);
                });
            }
            Request::ExchangeBind { method: m, .. } | Request::ExchangeUnbind { method: m, .. } => {
                o.obj("method", |o| {
                    o.str("destination", &m.destination).str("source", &m.source).str("routing_key", &m.routing_key);
                    o.bool("nowait", m.nowait).map("arguments", &m.arguments);
                });
            }
            Request::QueueDeclare { method: m, .. } => {
                o.obj("method", |o| {
                    o.str("queue", &m.queue).bool("passive", m.passive).bool("durable", m.durable).bool("exclusive", m.exclusive);
                    o.bool("auto_delete", m.auto_delete).bool("nowait", m.nowait).map("arguments", &m.arguments);
                });
            }
            Request::QueueBind { method: m, .. } | Request::QueueUnbind { method: m, .. } => {
                o.obj("method", |o| {
                    o.str("queue", &m.queue).str("exchange", &m.exchange).str("routing_key", &m.routing_key);
                    o.bool("nowait", m.nowait).map("arguments", &m.arguments);
                });
            }
            Request::QueuePurge { queue, .. } => {
                o.str("queue", queue);
            }
            Request::QueueDelete { method: m, .. } => {
                o.obj("method", |o| {
                    o.str("queue", &m.queue).bool("if_unused", m.if_unused).bool("if_empty", m.if_empty).bool("nowait", m.nowait);
                });
            }
            Request::BasicPublish { method: m, properties, .. } => {
                o.obj("method", |o| {
                    o.str("exchange", &m.exchange).str("routing_key", &m.routing_key).bool("mandatory", m.mandatory).bool("immediate", m.immediate);
                });
                properties.write_json(o.key("properties"));
            }
            Request::BasicGet { queue, no_ack, .. } => {
                o.str("queue", queue).bool("no_ack", *no_ack);
            }
            Request::BasicConsume { method: m, .. } => {
                o.obj("method", |o| {
                    o.str("queue", &m.queue).str("consumer_tag", &m.consumer_tag).bool("no_local", m.no_local).bool("no_ack", m.no_ack);
                    o.bool("exclusive", m.exclusive).bool("nowait", m.nowait).map("arguments", &m.arguments);
                });
            }
            Request::BasicCancel { consumer_tag, .. } => {
                o.str("consumer_tag", consumer_tag);
            }
            Request::BasicAck { delivery_tag, multiple, .. } => {
                o.num("delivery_tag", *delivery_tag).bool("multiple", *multiple);
            }
            Request::BasicReject { delivery_tag, requeue, .. } => {
                o.num("delivery_tag", *delivery_tag).bool("requeue", *requeue);
            }
            Request::BasicNack { delivery_tag, multiple, requeue, .. } => {
                o.num("delivery_tag", *delivery_tag).bool("multiple", *multiple).bool("requeue", *requeue);
            }
            Request::BasicRecover { requeue, .. } => {
                o.bool("requeue", *requeue);
            }
            Request::BasicQos { qos, .. } => {
                o.obj("qos", |o| {
                    o.num("prefetch_size", qos.prefetch_size.into()).num("prefetch_count", qos.prefetch_count.into()).bool("global", qos.global);
                });
            }
            Request::Flow { active, .. } => {
                o.bool("active", *active);
            }
        }
        o.end();
    }
}

/// A client frame's header: the request and its id.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClientHeader {
    /// Correlates the answer.
    pub id: u64,
    /// The request.
    #[serde(flatten)]
    pub request: Request,
}

/// How far an error reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Only this request failed.
    Request,
    /// The channel is closed.
    Channel,
    /// The connection is closed.
    Connection,
}

/// A message as it travels to the client (the body follows the header).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MessageHeader {
    /// Channel-scoped delivery tag.
    pub delivery_tag: u64,
    /// Delivered before and not acknowledged.
    pub redelivered: bool,
    /// Exchange it was published to.
    pub exchange: String,
    /// Routing key it was published with.
    pub routing_key: String,
    /// AMQP properties and headers.
    pub properties: Properties,
}

/// What the server sends: encoded with the derived serializer (the server's side), decoded
/// by [`decode_server`] (the clients').
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op")]
pub enum ServerFrame {
    /// A request succeeded; `result` depends on the request (channel id, declare-ok, counts,
    /// consumer tag, new flow state; `null` otherwise).
    #[serde(rename = "ok")]
    Ok {
        /// The request id.
        id: u64,
        /// The result.
        #[serde(default)]
        result: Value,
    },
    /// `basic.get` found a message (body follows).
    #[serde(rename = "get-ok")]
    GetOk {
        /// The request id.
        id: u64,
        /// Channel id.
        channel: u32,
        /// Messages left.
        message_count: u32,
        /// The message.
        message: MessageHeader,
    },
    /// A request failed, or (without id) the broker closed a channel or the connection.
    #[serde(rename = "error")]
    Error {
        /// The request id, when the error answers a request.
        #[serde(default)]
        id: Option<u64>,
        /// The channel, for channel-scoped errors.
        #[serde(default)]
        channel: Option<u32>,
        /// How far the error reaches.
        scope: Scope,
        /// AMQP reply code, or a gateway code (see the spec).
        code: u16,
        /// Kombu's exception name.
        name: String,
        /// What went wrong.
        text: String,
    },
    /// A delivery for a consumer (body follows).
    #[serde(rename = "deliver")]
    Deliver {
        /// Channel id.
        channel: u32,
        /// Consumer tag.
        consumer_tag: String,
        /// The message.
        message: MessageHeader,
    },
    /// A mandatory message came back unroutable (body follows).
    #[serde(rename = "return")]
    Return {
        /// Channel id.
        channel: u32,
        /// AMQP reply code (312).
        reply_code: u16,
        /// Reply text.
        reply_text: String,
        /// The message (delivery_tag 0).
        message: MessageHeader,
    },
    /// The broker cancelled a consumer.
    #[serde(rename = "cancel")]
    Cancel {
        /// Channel id.
        channel: u32,
        /// Consumer tag.
        consumer_tag: String,
    },
    /// Publisher confirm.
    #[serde(rename = "confirm")]
    Confirm {
        /// Channel id.
        channel: u32,
        /// Publish sequence number.
        delivery_tag: u64,
        /// Up to and including this one.
        multiple: bool,
        /// False: nack.
        ack: bool,
    },
    /// Flow control.
    #[serde(rename = "flow")]
    Flow {
        /// Channel id.
        channel: u32,
        /// False: stop publishing.
        active: bool,
    },
    /// The server is alive (sent when it has sent nothing for half the heartbeat interval
    /// agreed at `hello`).
    #[serde(rename = "heartbeat")]
    Heartbeat,
    /// The broker blocked publishing (AMQP's `connection.blocked`: a resource alarm, such as
    /// a memory high watermark).
    #[serde(rename = "blocked")]
    Blocked {
        /// Why (`low on memory`).
        reason: String,
    },
    /// The broker accepts publishes again (AMQP's `connection.unblocked`).
    #[serde(rename = "unblocked")]
    Unblocked,
}

impl ServerFrame {
    /// The frame's `type` on the wire (`ok`, `get-ok`, `error`, ...), for error messages: a
    /// derived `Debug` of frames would put their whole formatting code in the wasm modules.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerFrame::Ok { .. } => "ok",
            ServerFrame::GetOk { .. } => "get-ok",
            ServerFrame::Error { .. } => "error",
            ServerFrame::Deliver { .. } => "deliver",
            ServerFrame::Return { .. } => "return",
            ServerFrame::Cancel { .. } => "cancel",
            ServerFrame::Confirm { .. } => "confirm",
            ServerFrame::Flow { .. } => "flow",
            ServerFrame::Heartbeat => "heartbeat",
            ServerFrame::Blocked { .. } => "blocked",
            ServerFrame::Unblocked => "unblocked",
        }
    }

    /// The error frame for `e` (answering request `id`, or pushed when `None`).
    pub fn error(id: Option<u64>, channel: Option<u32>, e: &Error) -> ServerFrame {
        let (scope, code, text) = match e {
            Error::Channel { code, text } => (Scope::Channel, code.code(), text.clone()),
            Error::Connection { code, text } => (Scope::Connection, code.code(), text.clone()),
            other => (Scope::Request, gateway_code(other), other.to_string()),
        };
        ServerFrame::Error { id, channel: if scope == Scope::Channel { channel } else { None }, scope, code, name: e.name().to_owned(), text }
    }
}

/// Gateway error codes for errors that are not AMQP exceptions (documented in the spec).
fn gateway_code(e: &Error) -> u16 {
    match e {
        e if e.is_value_error() => 400,
        Error::Decode(_) | Error::Encode(_) => 400,
        Error::NotImplemented(_) => 540,
        Error::LimitExceeded(_) | Error::ChannelLimitExceeded { .. } | Error::ConnectionLimitExceeded { .. } => 429,
        _ => 500,
    }
}

/// The `kombu::Error` an error frame stands for (client side).
pub fn error_from_frame(scope: Scope, code: u16, name: &str, text: &str) -> Error {
    // Gateway authentication/permission codes are AMQP's ACCESS_REFUSED to the Kombu API.
    let code = if code == 401 { ReplyCode::AccessRefused.code() } else { code };
    match scope {
        Scope::Channel => Error::channel(ReplyCode::from_code(code), text.to_owned()),
        Scope::Connection => Error::connection(ReplyCode::from_code(code), text.to_owned()),
        Scope::Request => match name {
            "ValueError" => Error::Value(text.to_owned()),
            "DecodeError" => Error::Decode(text.to_owned()),
            "EncodeError" => Error::Encode(text.to_owned()),
            "NotImplementedError" => Error::NotImplemented(text.to_owned()),
            "LimitExceeded" => Error::LimitExceeded(text.to_owned()),
            "ChannelLimitExceeded" => Error::LimitExceeded(text.to_owned()),
            "AccessRefused" => Error::channel(ReplyCode::AccessRefused, text.to_owned()),
            _ => Error::Operational(format!("{name}: {text}")),
        },
    }
}

/// The first four bytes of a batch message (no frame header is that long).
pub const BATCH_MARKER: [u8; 4] = [0xFF; 4];
/// Frames are batched up to this many bytes per WebSocket message (a larger frame goes alone).
pub const BATCH_BYTES: usize = 64 * 1024;

/// Encode several frames as one WebSocket message: the batch marker, then for each frame its
/// length (u32 big-endian) and its bytes. One frame is returned as it is — unless it starts
/// with the marker itself (no valid frame does), which is wrapped so that [`split_batch`]
/// always gives back what was encoded.
pub fn encode_batch(frames: &[Bytes]) -> Bytes {
    if let [one] = frames {
        if !one.starts_with(&BATCH_MARKER) {
            return one.clone();
        }
    }
    let mut out = BytesMut::with_capacity(4 + frames.iter().map(|f| 4 + f.len()).sum::<usize>());
    out.put_slice(&BATCH_MARKER);
    for f in frames {
        out.put_u32(f.len() as u32);
        out.put_slice(f);
    }
    out.freeze()
}

/// Concatenate byte-stream chunks (AMQP frames sent as one WebSocket message; one chunk is
/// returned as it is).
pub fn concat(chunks: &[Bytes]) -> Bytes {
    match chunks {
        [one] => one.clone(),
        _ => chunks.concat().into(),
    }
}

/// The frames of a WebSocket message: those of a batch, or the message itself. The frames
/// share the message's memory. Errors say what is wrong with a batch.
pub fn split_batch(message: &Bytes) -> Result<Vec<Bytes>> {
    if message.len() < 4 || message[..4] != BATCH_MARKER {
        return Ok(vec![message.clone()]);
    }
    let mut frames = Vec::new();
    let mut at = 4;
    while at < message.len() {
        if at + 4 > message.len() {
            return Err(Error::Decode(format!("gateway batch: a frame length at byte {at} is cut off at {} bytes", message.len())));
        }
        let n = u32::from_be_bytes([message[at], message[at + 1], message[at + 2], message[at + 3]]) as usize;
        at += 4;
        if n > message.len() - at {
            return Err(Error::Decode(format!("gateway batch: a frame of {n} bytes at byte {at} runs past the end of the {}-byte message", message.len())));
        }
        frames.push(message.slice(at..at + n));
        at += n;
    }
    if frames.is_empty() {
        return Err(Error::Decode("gateway batch without frames".into()));
    }
    Ok(frames)
}

/// Encode a frame: header length, JSON header, body.
pub fn encode(header: &impl Header, body: &[u8]) -> Bytes {
    frame_with(|out| header.write_json(out), body)
}

/// A frame whose JSON header `write` appends.
fn frame_with(write: impl FnOnce(&mut Vec<u8>), body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(&[0; 4]);
    write(&mut out);
    let n = out.len() as u32 - 4;
    out[..4].copy_from_slice(&n.to_be_bytes());
    out.extend_from_slice(body);
    out.into()
}

/// Encode the `deliver` frame of `delivery` to `consumer_tag` on `channel`: the bytes
/// [`encode`] gives for [`ServerFrame::Deliver`], written from the delivery as it is (the
/// gateway sends one per message; building the frame first would copy its strings and
/// properties).
pub fn encode_deliver(channel: u32, consumer_tag: &str, delivery: &crate::proto::methods::Delivery) -> Bytes {
    #[derive(Serialize)]
    struct Deliver<'a> {
        op: &'static str,
        channel: u32,
        consumer_tag: &'a str,
        message: Message<'a>,
    }
    #[derive(Serialize)]
    struct Message<'a> {
        delivery_tag: u64,
        redelivered: bool,
        exchange: &'a str,
        routing_key: &'a str,
        properties: &'a Properties,
    }
    let message = Message {
        delivery_tag: delivery.delivery_tag,
        redelivered: delivery.redelivered,
        exchange: &delivery.exchange,
        routing_key: &delivery.routing_key,
        properties: &delivery.content.properties,
    };
    let header = Deliver { op: "deliver", channel, consumer_tag, message };
    frame_with(|out| serde_json::to_writer(out, &header).expect("frame headers always serialize"), &delivery.content.body)
}

/// Decode a frame into its header and body. Errors say what is wrong with the bytes.
pub fn decode<H: for<'de> Deserialize<'de>>(frame: &Bytes) -> Result<(H, Bytes)> {
    let (json, body) = split_header(frame)?;
    Ok((header_from_json(json)?, body))
}

/// Decode a client frame, as [`decode`] does. The frames clients send most — `basic.publish`
/// and `basic.ack`, headers written as this crate writes them (`{"id":N,"op":"...",`) — are
/// read straight into their fields: the derived decoder of a flattened, internally tagged
/// enum first copies the whole header into an intermediate tree (three times the work).
pub fn decode_client(frame: &Bytes) -> Result<(ClientHeader, Bytes)> {
    #[derive(Deserialize)]
    struct Publish {
        id: u64,
        #[serde(rename = "op")]
        _op: serde::de::IgnoredAny,
        channel: u32,
        method: BasicPublish,
        properties: Properties,
    }
    #[derive(Deserialize)]
    struct Ack {
        id: u64,
        #[serde(rename = "op")]
        _op: serde::de::IgnoredAny,
        channel: u32,
        delivery_tag: u64,
        multiple: bool,
    }
    let (json, body) = split_header(frame)?;
    // Natively only (the gateway's path): in wasm builds header_from_json reads a value first,
    // whose duplicate keys are one, the last, so a header with two `op`s would not read as the
    // first one says (and no wasm module decodes client frames).
    let op = if cfg!(target_arch = "wasm32") { None } else { leading_op(json, true) };
    let header = match op {
        Some(b"basic.publish") => header_from_json::<Publish>(json)
            .map(|h| ClientHeader { id: h.id, request: Request::BasicPublish { channel: h.channel, method: h.method, properties: h.properties } })?,
        Some(b"basic.ack") => header_from_json::<Ack>(json)
            .map(|h| ClientHeader { id: h.id, request: Request::BasicAck { channel: h.channel, delivery_tag: h.delivery_tag, multiple: h.multiple } })?,
        _ => header_from_json(json)?,
    };
    Ok((header, body))
}

/// Decode a server frame (the client's side): the header is parsed as one JSON value, whose
/// fields are then taken out by hand — one parser for every frame instead of serde's derived
/// decoder per header type (those were ~20 KB of the wasm module with the WebSocket
/// transports). This is the only decoder of [`ServerFrame`]s: a new frame kind is added here
/// and to the enum (`every_server_frame_round_trips` fails until it is). Errors name what is
/// wrong (the field and the frame).
///
/// A `deliver` header (one per message) as the gateway writes it is read in one pass instead
/// (`message_frame`), to the same frame; any other header is left to the general reader.
pub fn decode_server(frame: &Bytes) -> Result<(ServerFrame, Bytes)> {
    let (json, body) = split_header(frame)?;
    if let Some(frame) = message_frame(json) {
        return Ok((frame, body));
    }
    Ok((server_header(json)?, body))
}

/// The general reader of a server frame's header: parsed as one JSON value, whose fields are
/// then taken out by name.
fn server_header(json: &[u8]) -> Result<ServerFrame> {
    match crate::serialization::json_loads(json) {
        Ok(Value::Object(map)) => server_frame(map),
        Ok(_) => Err(Error::Decode("invalid gateway frame header: not a JSON object".into())),
        Err(e) => Err(Error::Decode(format!("invalid gateway frame header: {e}"))),
    }
}

/// A `deliver` header exactly as the gateway writes it ([`encode_deliver`]: serde_json's
/// compact layout, the fields in [`ServerFrame`]'s order and the message's in
/// [`MessageHeader`]'s), read in one pass when its strings have no escapes and its integers
/// fewer than 20 digits: only the `properties` object is parsed, into a [`Value`] as the
/// general reader parses it. `None` for any other header — another frame, another layout, an
/// escape, a wrong type or bad JSON — which the general reader then reads (and whose errors it
/// names): this gives a frame only when that reader gives the same one. (A serde `Visitor`
/// over the header was tried: its type errors brought core's float formatting into the wasm
/// module, ~20 KB.)
fn message_frame(json: &[u8]) -> Option<ServerFrame> {
    // The message and frame objects close the header; before, the fields, each value after
    // the text that precedes it (with a string's opening quote, or the previous one's closing).
    let [fields @ .., b'}', b'}'] = json else { return None };
    let mut s = Scan { rest: fields };
    s.lit(r#"{"op":"deliver""#);
    let channel = s.int(r#","channel":"#, u32::MAX.into()) as u32;
    let consumer_tag = s.string(r#","consumer_tag":""#);
    let delivery_tag = s.int(r#"","message":{"delivery_tag":"#, u64::MAX);
    s.lit(r#","redelivered":"#);
    let redelivered = s.rest.first() == Some(&b't');
    s.lit(if redelivered { "true" } else { "false" });
    let exchange = s.string(r#","exchange":""#);
    let routing_key = s.string(r#"","routing_key":""#);
    let properties = s.properties(r#"","properties":"#)?;
    Some(ServerFrame::Deliver { channel, consumer_tag, message: MessageHeader { delivery_tag, redelivered, exchange, routing_key, properties } })
}

/// What is left of a header [`message_frame`] reads. Each step takes the text it expects; when
/// it is not there, the scan has failed: nothing is left, so the steps that follow (each
/// expects some text first) fail too and give defaults, and [`Scan::properties`] gives `None`.
/// One return for the whole header, instead of one per field with its own clean-up code (less
/// wasm).
struct Scan<'a> {
    rest: &'a [u8],
}

impl Scan<'_> {
    fn fail<T: Default>(&mut self) -> T {
        self.rest = &[];
        T::default()
    }

    /// `text`, which must be next.
    fn lit(&mut self, text: &str) {
        if self.rest.starts_with(text.as_bytes()) {
            self.rest = &self.rest[text.len()..];
        } else {
            self.fail()
        }
    }

    /// `text`, then an integer up to `max` in at most 19 digits (which never overflow).
    fn int(&mut self, text: &str, max: u64) -> u64 {
        self.lit(text);
        let (mut n, mut digits) = (0u64, 0);
        for &d in self.rest.iter().take_while(|d| d.is_ascii_digit()) {
            n = n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            digits += 1;
        }
        // JSON has no leading zeros.
        match self.rest.get(digits..) {
            Some(rest) if (1..20).contains(&digits) && (digits == 1 || self.rest[0] != b'0') && n <= max => {
                self.rest = rest;
                n
            }
            _ => self.fail(),
        }
    }

    /// `text`, then a string's text up to its closing quote (which the next text starts with),
    /// if it has no escapes (and so no control characters).
    fn string(&mut self, text: &str) -> String {
        self.lit(text);
        let end = self.rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(0);
        let (string, rest) = self.rest.split_at(end);
        self.rest = rest;
        match std::str::from_utf8(string) {
            Ok(string) => string.to_owned(),
            Err(_) => self.fail(),
        }
    }

    /// `text`, then the `properties` object, the rest; `None` if the scan failed (then there
    /// is no object left).
    fn properties(&mut self, text: &str) -> Option<Properties> {
        self.lit(text);
        let rest = std::mem::take(&mut self.rest);
        // The general reader parses this object two levels deeper (in the frame's and the
        // message's): leave it anything that might come near serde_json's nesting limit (128),
        // which it then reaches sooner.
        if rest.iter().filter(|&&b| b == b'[' || b == b'{').count() >= 100 {
            return None;
        }
        match crate::serialization::json_loads(rest) {
            Ok(Value::Object(p)) => Properties::from_json(p).ok(),
            _ => None,
        }
    }
}

/// The fields of a header's JSON object (or of the `message` object in it), taken out by
/// name. A `null` field is a missing one. A field that is missing or of the wrong type reads
/// as a default and records the first such error (naming the field and the frame), which
/// [`server_frame`] then returns: no early return per field, whose clean-up code was most of
/// this decoder's size.
struct Fields<'a> {
    map: serde_json::Map<String, Value>,
    /// The frame's `op` (empty while it is read).
    op: &'a str,
    /// `'s `message``, in the message object.
    within: &'static str,
    /// The first field that was not what it should be.
    err: Option<Error>,
}

impl<'a> Fields<'a> {
    fn new(map: serde_json::Map<String, Value>, op: &'a str, within: &'static str) -> Self {
        Fields { map, op, within, err: None }
    }

    fn fail(&mut self, what: &str, field: &str) {
        if self.err.is_none() {
            let op = self.op;
            let frame = if op.is_empty() { String::new() } else { format!(" in a `{op}` frame{}", self.within) };
            self.err = Some(Error::Decode(format!("invalid gateway frame header: {what} `{field}`{frame}")));
        }
    }

    fn opt(&mut self, field: &str) -> Option<Value> {
        self.map.remove(field).filter(|v| !v.is_null())
    }

    /// A field that must be there.
    fn value(&mut self, field: &str) -> Value {
        self.opt(field).unwrap_or_else(|| {
            self.fail("missing field", field);
            Value::Null
        })
    }

    /// An integer up to `max`, if the field is there.
    fn opt_int(&mut self, field: &str, max: u64) -> Option<u64> {
        let v = self.opt(field)?;
        Some(self.int_of(v, field, max))
    }

    /// An integer up to `max`.
    fn int(&mut self, field: &str, max: u64) -> u64 {
        let v = self.value(field);
        self.int_of(v, field, max)
    }

    fn int_of(&mut self, v: Value, field: &str, max: u64) -> u64 {
        match v.as_u64() {
            Some(n) if n <= max => n,
            _ if v.is_null() => 0,
            _ => {
                self.fail("a non-integer or out-of-range", field);
                0
            }
        }
    }

    fn bool(&mut self, field: &str) -> bool {
        match self.value(field) {
            Value::Bool(b) => b,
            Value::Null => false,
            _ => {
                self.fail("a non-boolean", field);
                false
            }
        }
    }

    fn string(&mut self, field: &str) -> String {
        match self.value(field) {
            Value::String(s) => s,
            Value::Null => String::new(),
            _ => {
                self.fail("a non-string", field);
                String::new()
            }
        }
    }

    fn message(&mut self) -> MessageHeader {
        let map = match self.value("message") {
            Value::Object(map) => map,
            Value::Null => Default::default(),
            _ => {
                self.fail("a non-object", "message");
                Default::default()
            }
        };
        let mut m = Fields::new(map, self.op, "'s `message`");
        let properties = match m.opt("properties") {
            None => Properties::default(),
            Some(Value::Object(p)) => Properties::from_json(p).unwrap_or_else(|e| {
                m.fail(&e, "properties");
                Properties::default()
            }),
            Some(_) => {
                m.fail("a non-object", "properties");
                Properties::default()
            }
        };
        let message = MessageHeader {
            delivery_tag: m.int("delivery_tag", u64::MAX),
            redelivered: m.bool("redelivered"),
            exchange: m.string("exchange"),
            routing_key: m.string("routing_key"),
            properties,
        };
        if let (None, Some(e)) = (&self.err, m.err) {
            self.err = Some(e);
        }
        message
    }
}

/// The frame a header's `op` names; an unknown `op` or a missing field is an error naming it.
fn server_frame(map: serde_json::Map<String, Value>) -> Result<ServerFrame> {
    const U16: u64 = u16::MAX as u64;
    const U32: u64 = u32::MAX as u64;
    let mut f = Fields::new(map, "", "");
    let op = f.string("op");
    if let Some(e) = f.err {
        return Err(e);
    }
    let mut f = Fields::new(f.map, &op, "");
    let frame = match op.as_str() {
        "ok" => ServerFrame::Ok { id: f.int("id", u64::MAX), result: f.opt("result").unwrap_or(Value::Null) },
        "get-ok" => ServerFrame::GetOk { id: f.int("id", u64::MAX), channel: f.int("channel", U32) as u32, message_count: f.int("message_count", U32) as u32, message: f.message() },
        "error" => ServerFrame::Error {
            id: f.opt_int("id", u64::MAX),
            channel: f.opt_int("channel", U32).map(|c| c as u32),
            scope: match f.string("scope").as_str() {
                "request" => Scope::Request,
                "channel" => Scope::Channel,
                "connection" => Scope::Connection,
                _ => {
                    f.fail("an unknown", "scope");
                    Scope::Request
                }
            },
            code: f.int("code", U16) as u16,
            name: f.string("name"),
            text: f.string("text"),
        },
        "deliver" => ServerFrame::Deliver { channel: f.int("channel", U32) as u32, consumer_tag: f.string("consumer_tag"), message: f.message() },
        "return" => ServerFrame::Return { channel: f.int("channel", U32) as u32, reply_code: f.int("reply_code", U16) as u16, reply_text: f.string("reply_text"), message: f.message() },
        "cancel" => ServerFrame::Cancel { channel: f.int("channel", U32) as u32, consumer_tag: f.string("consumer_tag") },
        "confirm" => ServerFrame::Confirm { channel: f.int("channel", U32) as u32, delivery_tag: f.int("delivery_tag", u64::MAX), multiple: f.bool("multiple"), ack: f.bool("ack") },
        "flow" => ServerFrame::Flow { channel: f.int("channel", U32) as u32, active: f.bool("active") },
        "heartbeat" => ServerFrame::Heartbeat,
        "blocked" => ServerFrame::Blocked { reason: f.string("reason") },
        "unblocked" => ServerFrame::Unblocked,
        op => return Err(Error::Decode(format!("invalid gateway frame header: unknown op {op:?}"))),
    };
    match f.err {
        None => Ok(frame),
        Some(e) => Err(e),
    }
}

/// The `op` of a JSON header that starts with it (after `"id":N` for client headers), as
/// written by serde; `None` for any other layout (then the general decoder reads it).
fn leading_op(json: &[u8], id_first: bool) -> Option<&[u8]> {
    let mut rest = json.strip_prefix(b"{")?;
    if id_first {
        rest = rest.strip_prefix(br#""id":"#)?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        rest = rest[digits..].strip_prefix(b",")?;
    }
    let rest = rest.strip_prefix(br#""op":""#)?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    (rest[end] == b'"').then(|| &rest[..end])
}

fn header_from_json<H: for<'de> Deserialize<'de>>(json: &[u8]) -> Result<H> {
    crate::serialization::json_loads_as(json).map_err(|e| Error::Decode(format!("invalid gateway frame header: {e}")))
}

/// A frame's JSON header and its body.
fn split_header(frame: &Bytes) -> Result<(&[u8], Bytes)> {
    if frame.len() < 4 {
        return Err(Error::Decode(format!("gateway frame of {} bytes is shorter than its 4-byte header length", frame.len())));
    }
    let n = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    if n > MAX_HEADER {
        return Err(Error::Decode(format!("gateway frame header of {n} bytes is larger than the limit of {MAX_HEADER}")));
    }
    if 4 + n > frame.len() {
        return Err(Error::Decode(format!("gateway frame header length {n} runs past the end of the {}-byte frame", frame.len())));
    }
    Ok((&frame[4..4 + n], frame.slice(4 + n..)))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn batches_split_back_into_their_frames() {
        let frames: Vec<Bytes> = (0..3u64)
            .map(|id| encode(&ClientHeader { id, request: Request::BasicAck { channel: 1, delivery_tag: id, multiple: false } }, b"body"))
            .collect();
        let batch = encode_batch(&frames);
        assert_eq!(&batch[..4], &BATCH_MARKER);
        assert_eq!(split_batch(&batch).unwrap(), frames);
        assert_eq!(encode_batch(&frames[..1]), frames[0], "one frame is not wrapped");
        assert_eq!(split_batch(&frames[0]).unwrap(), vec![frames[0].clone()]);
        // A lone frame that starts like a batch (found by cargo-fuzz) is wrapped, so that
        // splitting gives it back.
        let odd = Bytes::from_static(&[0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]);
        assert_eq!(split_batch(&encode_batch(std::slice::from_ref(&odd))).unwrap(), vec![odd]);
        let cut = batch.slice(..batch.len() - 1);
        assert!(split_batch(&cut).unwrap_err().to_string().contains("runs past the end"));
        assert!(split_batch(&Bytes::from_static(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0])).unwrap_err().to_string().contains("cut off"));
        assert!(split_batch(&Bytes::from_static(&BATCH_MARKER)).unwrap_err().to_string().contains("without frames"));
        // A batch marker is never a valid single frame header length.
        assert!(decode::<ClientHeader>(&batch).is_err());
    }

    /// A publish's properties are the object the derived `Serialize` gives.
    #[test]
    fn properties_are_written_as_serde_json_writes_them() {
        let full = Properties {
            content_type: Some("application/json".into()),
            content_encoding: Some("utf-8".into()),
            headers: crate::value::headers([("a", Value::from(1)), ("é\"\n", serde_json::json!({"x": [1.5, -2, null, "\u{1f600}"]}))]),
            delivery_mode: Some(2),
            priority: Some(0),
            correlation_id: Some("c\u{0}\"".into()),
            reply_to: Some("r".into()),
            expiration: Some("1000".into()),
            message_id: Some("m".into()),
            timestamp: Some(u64::MAX),
            type_: Some("t".into()),
            user_id: Some("u".into()),
            app_id: Some("a".into()),
            cluster_id: Some("c".into()),
        };
        let some = Properties { priority: Some(255), reply_to: Some("r".into()), ..Default::default() };
        for p in [Properties::default(), full, some] {
            let mut out = Vec::new();
            p.write_json(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&p).unwrap());
        }
    }

    #[test]
    fn requests_round_trip() {
        let reqs = vec![
            Request::Hello { vhost: Some("/".into()), token: None, client: Some("test".into()), heartbeat: Some(10) },
            Request::Heartbeat,
            Request::ChannelOpen,
            Request::QueueDeclare { channel: 1, method: QueueDeclare { queue: "q".into(), durable: true, ..Default::default() } },
            Request::BasicPublish { channel: 1, method: BasicPublish { exchange: "x".into(), routing_key: "k".into(), ..Default::default() }, properties: Properties::default() },
            Request::BasicAck { channel: 1, delivery_tag: 7, multiple: false },
            Request::Close,
        ];
        for (i, r) in reqs.into_iter().enumerate() {
            let h = ClientHeader { id: i as u64, request: r };
            let f = encode(&h, b"\x00body\xff");
            let (back, body): (ClientHeader, Bytes) = decode(&f).unwrap();
            assert_eq!(back, h);
            assert_eq!(&body[..], b"\x00body\xff");
        }
    }

    #[test]
    fn server_frames_round_trip_and_errors_map_back() {
        let e = Error::channel(ReplyCode::NotFound, "NOT_FOUND - no queue 'x'");
        let f = ServerFrame::error(Some(3), Some(1), &e);
        let bytes = encode(&f, b"");
        let (back, _) = decode_server(&bytes).unwrap();
        assert_eq!(back, f);
        let ServerFrame::Error { scope, code, name, text, .. } = back else { panic!() };
        let e2 = error_from_frame(scope, code, &name, &text);
        assert_eq!(e2.name(), "NotFound");
        assert_eq!(error_from_frame(Scope::Request, 400, "ValueError", "bad").name(), "ValueError");
    }

    /// Heartbeats are optional on both sides: a `hello` without `heartbeat` (an older client)
    /// decodes, and the server's `heartbeat` push is `{"op":"heartbeat"}`.
    #[test]
    fn heartbeat_fields_and_frames() {
        let old = encode(&serde_json::json!({"id": 1, "op": "hello", "vhost": "/"}), b"");
        let (h, _) = decode_client(&old).unwrap();
        assert_eq!(h.request, Request::Hello { vhost: Some("/".into()), token: None, client: None, heartbeat: None });
        let beat = encode(&ServerFrame::Heartbeat, b"");
        assert_eq!(&beat[4..], br#"{"op":"heartbeat"}"#);
        assert_eq!(decode_server(&beat).unwrap().0, ServerFrame::Heartbeat);
    }

    #[test]
    fn blocked_and_unblocked_frames_are_as_documented() {
        let blocked = encode(&ServerFrame::Blocked { reason: "low on memory".into() }, b"");
        assert_eq!(&blocked[4..], br#"{"op":"blocked","reason":"low on memory"}"#);
        assert_eq!(decode_server(&blocked).unwrap().0, ServerFrame::Blocked { reason: "low on memory".into() });
        let unblocked = encode(&ServerFrame::Unblocked, b"");
        assert_eq!(&unblocked[4..], br#"{"op":"unblocked"}"#);
        assert_eq!(decode_server(&unblocked).unwrap().0, ServerFrame::Unblocked);
        // A blocked frame without its reason is refused, naming the field.
        let bad = encode(&serde_json::json!({"op": "blocked"}), b"");
        assert!(decode_server(&bad).unwrap_err().to_string().contains("reason"), "{:?}", decode_server(&bad));
    }

    #[test]
    fn bad_frames_are_named() {
        let short = Bytes::from_static(b"\x00\x01");
        assert!(decode::<ClientHeader>(&short).unwrap_err().to_string().contains("shorter"));
        let past = Bytes::from_static(b"\x00\x00\x00\x10{}");
        assert!(decode::<ClientHeader>(&past).unwrap_err().to_string().contains("runs past"));
        let huge = Bytes::from_static(b"\xff\xff\xff\xff");
        assert!(decode::<ClientHeader>(&huge).unwrap_err().to_string().contains("larger than the limit"));
        let bad = encode(&serde_json::json!({"id": 1, "op": "nope"}), b"");
        assert!(decode::<ClientHeader>(&bad).unwrap_err().to_string().contains("invalid gateway frame header"));
    }

    /// `encode_deliver` writes what the general encoder writes for the same delivery.
    #[test]
    fn a_delivery_is_encoded_as_its_frame() {
        let props = Properties { content_type: Some("application/json".into()), priority: Some(3), headers: crate::value::headers([("x", "\"q\"")]), ..Properties::default() };
        for (tag, redelivered, exchange, properties) in [(1, false, "", Properties::default()), (u64::MAX, true, "ex\u{e9}", props)] {
            let content = std::sync::Arc::new(crate::proto::methods::Content { properties, body: Bytes::from_static(b"{\"a\": 1}") });
            let delivery = crate::proto::methods::Delivery { delivery_tag: tag, redelivered, exchange: exchange.into(), routing_key: "a.b".into(), content: content.clone(), extra: None };
            let message = MessageHeader { delivery_tag: tag, redelivered, exchange: exchange.into(), routing_key: "a.b".into(), properties: content.properties.clone() };
            let frame = ServerFrame::Deliver { channel: 3, consumer_tag: "ctag\"1".into(), message };
            assert_eq!(encode_deliver(3, "ctag\"1", &delivery), encode(&frame, &content.body));
        }
    }

    /// The direct paths of `decode_client` give what the general decoder gives — the same
    /// frame or an error of the same kind — for the headers they take and for look-alikes they
    /// must leave to it.
    #[test]
    fn direct_decoding_agrees_with_the_general_decoder() {
        fn agree<H: PartialEq + std::fmt::Debug>(general: Result<(H, Bytes)>, direct: Result<(H, Bytes)>, frame: &Bytes) {
            match (&general, &direct) {
                (Ok(g), Ok(d)) => assert_eq!(g, d),
                (Err(_), Err(d)) => assert!(d.to_string().contains("invalid gateway frame header"), "{d}"),
                _ => panic!("{general:?} vs {direct:?} for {frame:?}"),
            }
        }
        let raw = |json: &str| {
            let mut out = BytesMut::new();
            out.put_u32(json.len() as u32);
            out.put_slice(json.as_bytes());
            out.put_slice(b"body");
            out.freeze()
        };
        let props = Properties { content_type: Some("application/json".into()), headers: crate::value::headers([("x", 1)]), ..Properties::default() };
        let written = [
            encode(&ClientHeader { id: 7, request: Request::BasicPublish { channel: 2, method: BasicPublish { exchange: "e".into(), routing_key: "k".into(), mandatory: true, immediate: false }, properties: props.clone() } }, b"body"),
            encode(&ClientHeader { id: 0, request: Request::BasicAck { channel: 1, delivery_tag: 99, multiple: true } }, b""),
            encode(&ClientHeader { id: 8, request: Request::BasicReject { channel: 1, delivery_tag: 3, requeue: true } }, b""),
        ];
        let client = written.into_iter().chain([
            raw(r#"{"op":"basic.ack","id":3,"channel":1,"delivery_tag":4,"multiple":false}"#),
            raw(r#"{"id":3,"op":"basic.ack","channel":1,"delivery_tag":4}"#),
            raw(r#"{"id":3,"op":"basic.ack","op":"basic.publish","channel":1,"delivery_tag":4,"multiple":false}"#),
            raw(r#"{"id":3,"op":"basic.publish","channel":1,"method":{},"properties":{}}"#),
            raw(r#"{"id":3,"op":"basic.publish","channel":"1","method":{},"properties":{}}"#),
            raw(r#"{"id":3,"op":"basic\u002eack","channel":1,"delivery_tag":4,"multiple":false}"#),
            raw(r#"{"id":-3,"op":"basic.ack","channel":1,"delivery_tag":4,"multiple":false}"#),
            raw(r#"{"id":3,"op":"basic.ack","channel":1,"delivery_tag":4,"multiple":false"#),
        ]);
        for frame in client {
            agree(decode::<ClientHeader>(&frame), decode_client(&frame), &frame);
        }
    }

    /// Every request the client writes by hand is read back by the server's derived decoder as
    /// the same request (the two sides of the wire: `docs/gateway-protocol.md` §4).
    #[test]
    fn every_request_round_trips() {
        let args = crate::value::headers([("x-max-priority", 10)]);
        let requests = [
            Request::Hello { vhost: Some("/".into()), token: Some("t\"ok".into()), client: Some("test".into()), heartbeat: Some(10) },
            Request::Hello { vhost: None, token: None, client: None, heartbeat: None },
            Request::ChannelOpen,
            Request::ChannelClose { channel: 1 },
            Request::ExchangeDeclare { channel: 1, method: ExchangeDeclare { exchange: "x".into(), kind: "x-delayed-message".into(), passive: true, durable: true, auto_delete: true, internal: true, nowait: true, arguments: args.clone() } },
            Request::ExchangeDelete { channel: 1, method: ExchangeDelete { exchange: "x".into(), if_unused: true, nowait: true } },
            Request::ExchangeBind { channel: 1, method: ExchangeBind { destination: "d".into(), source: "s".into(), routing_key: "k".into(), nowait: true, arguments: args.clone() } },
            Request::ExchangeUnbind { channel: 1, method: ExchangeBind { destination: "d".into(), ..Default::default() } },
            Request::QueueDeclare { channel: 2, method: QueueDeclare { queue: "q".into(), passive: true, durable: true, exclusive: true, auto_delete: true, nowait: true, arguments: args.clone() } },
            Request::QueueBind { channel: 2, method: QueueBind { queue: "q".into(), exchange: "x".into(), routing_key: "k".into(), nowait: true, arguments: args.clone() } },
            Request::QueueUnbind { channel: 2, method: QueueBind { queue: "q".into(), ..Default::default() } },
            Request::QueuePurge { channel: 2, queue: "q\u{e9}".into() },
            Request::QueueDelete { channel: 2, method: QueueDelete { queue: "q".into(), if_unused: true, if_empty: true, nowait: true } },
            Request::BasicPublish {
                channel: 3,
                method: BasicPublish { exchange: "x".into(), routing_key: "k".into(), mandatory: true, immediate: true },
                properties: Properties { content_type: Some("application/json".into()), priority: Some(3), type_: Some("t".into()), timestamp: Some(7), headers: args.clone(), ..Properties::default() },
            },
            Request::BasicGet { channel: 3, queue: "q".into(), no_ack: true },
            Request::BasicConsume { channel: 3, method: BasicConsume { queue: "q".into(), consumer_tag: "c".into(), no_local: true, no_ack: true, exclusive: true, nowait: true, arguments: args } },
            Request::BasicCancel { channel: 3, consumer_tag: "c".into() },
            Request::BasicAck { channel: 3, delivery_tag: u64::MAX, multiple: true },
            Request::BasicReject { channel: 3, delivery_tag: 1, requeue: true },
            Request::BasicNack { channel: 3, delivery_tag: 1, multiple: true, requeue: true },
            Request::BasicRecover { channel: 3, requeue: true },
            Request::BasicQos { channel: 3, qos: BasicQos { prefetch_size: 1, prefetch_count: 2, global: true } },
            Request::Flow { channel: u32::MAX, active: true },
            Request::ConfirmSelect { channel: 4 },
            Request::Close,
            Request::Heartbeat,
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (id, request) in requests.into_iter().enumerate() {
            // A new kind of request fails to compile here: add a sample of it above.
            match &request {
                Request::Hello { .. } | Request::ChannelOpen | Request::ChannelClose { .. } | Request::ExchangeDeclare { .. } | Request::ExchangeDelete { .. }
                | Request::ExchangeBind { .. } | Request::ExchangeUnbind { .. } | Request::QueueDeclare { .. } | Request::QueueBind { .. }
                | Request::QueueUnbind { .. } | Request::QueuePurge { .. } | Request::QueueDelete { .. } | Request::BasicPublish { .. }
                | Request::BasicGet { .. } | Request::BasicConsume { .. } | Request::BasicCancel { .. } | Request::BasicAck { .. }
                | Request::BasicReject { .. } | Request::BasicNack { .. } | Request::BasicRecover { .. } | Request::BasicQos { .. }
                | Request::Flow { .. } | Request::ConfirmSelect { .. } | Request::Close | Request::Heartbeat => seen.insert(request.op()),
            };
            let h = ClientHeader { id: id as u64, request };
            let f = encode(&h, b"\x00body\xff");
            assert_eq!(decode::<ClientHeader>(&f).unwrap(), (h.clone(), Bytes::from_static(b"\x00body\xff")), "{}", String::from_utf8_lossy(&f));
            assert_eq!(decode_client(&f).unwrap().0, h);
        }
        assert_eq!(seen.len(), 25, "a sample of every request");
        // As the protocol documents them, `id` and `op` first.
        let ack = encode(&ClientHeader { id: 0, request: Request::BasicAck { channel: 1, delivery_tag: 99, multiple: true } }, b"");
        assert_eq!(&ack[4..], br#"{"id":0,"op":"basic.ack","channel":1,"delivery_tag":99,"multiple":true}"#);
        let publish = encode(&ClientHeader { id: 7, request: Request::BasicPublish { channel: 2, method: BasicPublish { exchange: "".into(), routing_key: "q".into(), ..Default::default() }, properties: Properties::default() } }, b"");
        assert_eq!(&publish[4..], br#"{"id":7,"op":"basic.publish","channel":2,"method":{"exchange":"","routing_key":"q","mandatory":false,"immediate":false},"properties":{"headers":{}}}"#);
    }

    /// Properties with every field set: `headers` and `priority` as given, the rest fixed.
    fn every_property(headers: crate::value::Headers, priority: u8) -> Properties {
        Properties {
            content_type: Some("application/json".into()),
            content_encoding: Some("utf-8".into()),
            headers,
            delivery_mode: Some(2),
            priority: Some(priority),
            correlation_id: Some("c".into()),
            reply_to: Some("r".into()),
            expiration: Some("100".into()),
            message_id: Some("m".into()),
            timestamp: Some(u64::MAX),
            type_: Some("t".into()),
            user_id: Some("u".into()),
            app_id: Some("a".into()),
            cluster_id: Some("k".into()),
        }
    }

    /// Every server frame the server writes is read back by the client as the same frame.
    #[test]
    fn every_server_frame_round_trips() {
        let props = every_property(crate::value::headers([("x", "\"q\"")]), 9);
        let message = MessageHeader { delivery_tag: 5, redelivered: true, exchange: "e".into(), routing_key: "k".into(), properties: props };
        let frames = [
            ServerFrame::Ok { id: 4, result: serde_json::json!({"queue": "q", "message_count": 1}) },
            ServerFrame::Ok { id: 4, result: Value::Null },
            ServerFrame::GetOk { id: 1, channel: 1, message_count: 0, message: message.clone() },
            ServerFrame::error(Some(2), Some(1), &Error::Channel { code: ReplyCode::NotFound, text: "no exchange 'x'".into() }),
            ServerFrame::error(None, None, &Error::Connection { code: ReplyCode::ConnectionForced, text: "bye".into() }),
            ServerFrame::error(Some(3), None, &Error::Value("bad".into())),
            ServerFrame::Deliver { channel: 1, consumer_tag: "ctag".into(), message: message.clone() },
            ServerFrame::Return { channel: 1, reply_code: 312, reply_text: "NO_ROUTE".into(), message: MessageHeader { properties: Properties::default(), ..message } },
            ServerFrame::Cancel { channel: 2, consumer_tag: "c".into() },
            ServerFrame::Confirm { channel: 2, delivery_tag: 9, multiple: true, ack: false },
            ServerFrame::Flow { channel: 2, active: false },
            ServerFrame::Heartbeat,
            ServerFrame::Blocked { reason: "low on memory".into() },
            ServerFrame::Unblocked,
        ];
        let mut seen = std::collections::BTreeSet::new();
        for frame in frames {
            seen.insert(frame.kind());
            // A new kind of frame fails to compile here: add a sample of it above, and read
            // it in `server_frame`.
            match frame {
                ServerFrame::Ok { .. } | ServerFrame::GetOk { .. } | ServerFrame::Error { .. } | ServerFrame::Deliver { .. } | ServerFrame::Return { .. }
                | ServerFrame::Cancel { .. } | ServerFrame::Confirm { .. } | ServerFrame::Flow { .. } | ServerFrame::Heartbeat | ServerFrame::Blocked { .. }
                | ServerFrame::Unblocked => {}
            }
            let bytes = encode(&frame, b"body");
            assert_eq!(decode_server(&bytes).unwrap(), (frame, Bytes::from_static(b"body")));
        }
        assert_eq!(seen.len(), 11, "a sample of every frame");
    }

    /// The client's decoder takes fields in any order and ignores unknown ones; what it
    /// refuses, it names.
    #[test]
    fn server_frame_errors_name_the_field() {
        let raw = |json: &str| {
            let mut out = BytesMut::new();
            out.put_u32(json.len() as u32);
            out.put_slice(json.as_bytes());
            out.put_slice(b"body");
            out.freeze()
        };
        let message = r#"{"delivery_tag":1,"redelivered":false,"exchange":"","routing_key":"q","properties":{"priority":1,"x-new":true,"headers":{"a":[1]}}}"#;
        let deliver = ServerFrame::Deliver {
            channel: 1,
            consumer_tag: "c".into(),
            message: MessageHeader {
                delivery_tag: 1,
                redelivered: false,
                exchange: "".into(),
                routing_key: "q".into(),
                properties: Properties { priority: Some(1), headers: crate::value::headers([("a", serde_json::json!([1]))]), ..Properties::default() },
            },
        };
        let ok = [
            (format!(r#"{{"channel":1,"op":"deliver","consumer_tag":"c","message":{message}}}"#), deliver.clone()),
            (format!(r#"{{"op":"deliver","channel":1,"consumer_tag":"c","message":{message},"extra":null}}"#), deliver),
            (r#"{"op":"ok","id":1}"#.into(), ServerFrame::Ok { id: 1, result: Value::Null }),
            (r#"{"op":"ok","id":1,"result":null,"extra":[1]}"#.into(), ServerFrame::Ok { id: 1, result: Value::Null }),
            (r#"{"op":"error","id":null,"scope":"connection","code":320,"name":"ConnectionForced","text":"t"}"#.into(), ServerFrame::Error { id: None, channel: None, scope: Scope::Connection, code: 320, name: "ConnectionForced".into(), text: "t".into() }),
        ];
        for (json, frame) in ok {
            assert_eq!(decode_server(&raw(&json)).unwrap().0, frame, "{json}");
        }
        let bad = [
            (r#"{"op":"deliver","channel":1,"consumer_tag":"c"}"#, "missing field `message` in a `deliver` frame"),
            (r#"{"op":"deliver","channel":1,"consumer_tag":"c","message":{"delivery_tag":1,"redelivered":false,"exchange":""}}"#, "missing field `routing_key` in a `deliver` frame's `message`"),
            (r#"{"op":"deliver","channel":1,"consumer_tag":"c","message":{"delivery_tag":1,"redelivered":false,"exchange":"","routing_key":"q","properties":{"priority":"high"}}}"#, "`priority` in `properties`"),
            (r#"{"op":"deliver","channel":1,"consumer_tag":"c","message":{"delivery_tag":1,"redelivered":false,"exchange":"","routing_key":"q","properties":{"headers":[]}}}"#, "`headers` in `properties`"),
            (r#"{"op":"deliver","channel":-1,"consumer_tag":"c","message":{}}"#, "`channel` in a `deliver` frame"),
            (r#"{"op":"get-ok","id":1,"channel":4294967296,"message_count":0,"message":{}}"#, "out-of-range `channel`"),
            (r#"{"op":"ok"}"#, "missing field `id` in a `ok` frame"),
            (r#"{"op":"confirm","channel":1,"delivery_tag":1,"multiple":false}"#, "missing field `ack`"),
            (r#"{"op":"error","scope":"channel","code":404,"name":"NotFound"}"#, "missing field `text`"),
            (r#"{"op":"error","scope":"everything","code":404,"name":"NotFound","text":"t"}"#, "`scope`"),
            (r#"{"op":"nope","id":1}"#, "unknown op \"nope\""),
            (r#"{"id":1}"#, "missing field `op`"),
            (r#"{"op":1}"#, "non-string `op`"),
            (r#"{"op":"flow","channel":1,"active":"yes"}"#, "non-boolean `active`"),
            (r#"{"op":"blocked"}"#, "missing field `reason`"),
            (r#"[1]"#, "not a JSON object"),
            (r#"{"op":"ok","id":1"#, "EOF"),
        ];
        for (json, expected) in bad {
            let e = decode_server(&raw(json)).unwrap_err();
            assert!(matches!(e, Error::Decode(_)) && e.to_string().contains("invalid gateway frame header: ") && e.to_string().contains(expected), "{json}: {e}");
        }
    }

    /// `decode_server` on a frame with header `json` gives what the general reader gives — the
    /// same frame or the same error — and never panics. Returns whether the one-pass reader
    /// took the header.
    fn reads_as_the_general_reader(json: &[u8]) -> bool {
        let mut frame = BytesMut::new();
        frame.put_u32(json.len() as u32);
        frame.put_slice(json);
        frame.put_slice(b"body");
        let got = decode_server(&frame.freeze()).map(|(h, body)| (h, body.to_vec())).map_err(|e| e.to_string());
        let general = server_header(json).map(|h| (h, b"body".to_vec())).map_err(|e| e.to_string());
        assert_eq!(got, general, "{}", String::from_utf8_lossy(json));
        let direct = message_frame(json);
        if let Some(frame) = &direct {
            assert_eq!(Ok(frame), general.as_ref().map(|(h, _)| h));
        }
        direct.is_some()
    }

    /// The headers the gateway writes for messages are read in one pass, to the frame the
    /// general reader gives: any strings (escapes, non-ASCII, controls), extreme numbers, any
    /// properties.
    #[test]
    fn message_frames_are_read_in_one_pass() {
        let full = every_property(
            crate::value::headers([("x", serde_json::json!({"a\"\\": [1, -2, 2.5, 1e300, null, "\u{e9}\u{1F600}\n"]})), ("y", serde_json::json!(u64::MAX))]),
            255,
        );
        // Written as they are (serde_json escapes only `"`, `\` and control characters)...
        let plain = "q.\u{e9}\u{1F600}\u{2028}\u{7f}/'";
        // ... and escaped: left to the general reader.
        let escaped = "q\"\\\u{0}\u{1f}\n\t";
        for (text, one_pass) in [("", true), (plain, true), (escaped, false)] {
            for properties in [Properties::default(), full.clone()] {
                for (tag, redelivered) in [(0, false), (10u64.pow(19) - 1, true), (u64::MAX, true)] {
                    // Integers of 20 digits are left to the general reader too.
                    let one_pass = one_pass && tag < 10u64.pow(19);
                    let content = std::sync::Arc::new(crate::proto::methods::Content { properties: properties.clone(), body: Bytes::from_static(b"{}") });
                    let delivery = crate::proto::methods::Delivery { delivery_tag: tag, redelivered, exchange: text.into(), routing_key: "a.b".into(), content, extra: None };
                    let message = MessageHeader { delivery_tag: tag, redelivered, exchange: "a.b".into(), routing_key: text.into(), properties: properties.clone() };
                    let frames = [
                        (encode_deliver(u32::MAX, "c", &delivery), one_pass),
                        (encode_deliver(0, text, &delivery), one_pass),
                        (encode(&ServerFrame::Deliver { channel: 1, consumer_tag: text.into(), message: message.clone() }, b"body"), one_pass),
                        // The other frames with a message: the general reader's.
                        (encode(&ServerFrame::GetOk { id: u64::MAX, channel: u32::MAX, message_count: u32::MAX, message: message.clone() }, b"body"), false),
                        (encode(&ServerFrame::Return { channel: 1, reply_code: u16::MAX, reply_text: "NO_ROUTE".into(), message }, b"body"), false),
                    ];
                    for (frame, one_pass) in frames {
                        let (json, _) = split_header(&frame).unwrap();
                        assert_eq!(reads_as_the_general_reader(json), one_pass, "{}", String::from_utf8_lossy(json));
                    }
                }
            }
        }
        // Escapes, whitespace, other layouts: the general reader's.
        let spaced = " {\n \"op\" : \"deli\\u0076er\" , \"channel\":1,\"consumer_tag\":\"\\u0063\",\"message\": {\"delivery_tag\":1 ,\"redelivered\":false,\"exchange\":\"\",\"routing_key\":\"q\",\"properties\":{ }}}\r\n";
        assert!(!reads_as_the_general_reader(spaced.as_bytes()));
        // Odd properties are parsed as the general reader parses them.
        let properties = r#"{ "headers" : {"a\"":"\ud83d\ude00","b":[1.5e3,-0,18446744073709551616,{"c":null}],"b":2}, "priority":255, "x":[] , "expiration":"\u0031"} "#;
        let json = format!(r#"{{"op":"deliver","channel":1,"consumer_tag":"c","message":{{"delivery_tag":1,"redelivered":false,"exchange":"","routing_key":"q","properties":{properties}}}}}"#);
        assert!(reads_as_the_general_reader(json.as_bytes()));
    }

    /// Headers that are not as the gateway writes them — other layouts, odd values, errors —
    /// give what the general reader gives.
    #[test]
    fn odd_message_headers_read_as_the_general_reader_reads_them() {
        let message = r#"{"delivery_tag":1,"redelivered":false,"exchange":"","routing_key":"q","properties":{"priority":1}}"#;
        let deliver = |fields: &str| format!(r#"{{"op":"deliver","channel":1,"consumer_tag":"c","message":{{{fields}}}}}"#);
        let m = r#""delivery_tag":1,"redelivered":false,"exchange":"","routing_key":"q""#;
        let odd = [
            // Other layouts, the same frame.
            format!(r#"{{"channel":1,"op":"deliver","consumer_tag":"c","message":{message}}}"#),
            format!(r#"{{"op":"deliver","consumer_tag":"c","channel":1,"message":{message}}}"#),
            format!(r#"{{"op":"deliver","channel":1,"message":{message},"consumer_tag":"c"}}"#),
            format!(r#"{{"\u006fp":"deliver","channel":1,"consumer_tag":"c","message":{message}}}"#),
            format!(r#"{{"op":"deliver","channel":1,"consumer_tag":"c","message":{message},"extra":{{"a":[1]}}}}"#),
            format!(r#"{{"op":"deliver","channel":1,"consumer_tag":"c","message":{message},"extra":null}}"#),
            deliver(&format!(r#""properties":{{}},{m}"#)),
            deliver(r#""redelivered":false,"delivery_tag":1,"exchange":"","routing_key":"q","properties":{}"#),
            deliver(m),
            deliver(&format!(r#"{m},"properties":null"#)),
            deliver(&format!(r#"{m},"properties":{{}},"x-new":1"#)),
            deliver(&format!(r#"{m},"properties":{{"body_encoding":"base64","delivery_info":{{"exchange":"e","routing_key":"k"}},"content_type":"text/plain","headers":null}}"#)),
            // Duplicate keys: the last one counts.
            format!(r#"{{"op":"deliver","op":"deliver","channel":1,"consumer_tag":"c","message":{message}}}"#),
            format!(r#"{{"op":"deliver","channel":1,"consumer_tag":"c","message":{message},"channel":2}}"#),
            format!(r#"{{"op":"deliver","channel":"x","consumer_tag":"c","message":{message},"channel":2}}"#),
            format!(r#"{{"op":"deliver","channel":1,"consumer_tag":"c","message":"x","message":{message}}}"#),
            format!(r#"{{"op":"ok","channel":1,"consumer_tag":"c","message":{message},"op":"deliver"}}"#),
            format!(r#"{{"op":"deliver","channel":1,"consumer_tag":"c","message":{message},"op":"ok","id":3}}"#),
            deliver(&format!(r#"{m},"properties":{{}},"delivery_tag":2"#)),
            deliver(&format!(r#"{m},"properties":{{"priority":"x","content_type":1,"priority":2}}"#)),
            deliver(&format!(r#"{m},"properties":{{"headers":{{"a":1,"a":2}}}}"#)),
            // Missing, null and wrong-typed fields.
            r#"{"op":"deliver","channel":1,"consumer_tag":"c"}"#.into(),
            r#"{"op":"deliver","channel":1,"consumer_tag":"c","message":{}}"#.into(),
            format!(r#"{{"op":"deliver","consumer_tag":"c","message":{message}}}"#),
            format!(r#"{{"op":"deliver","channel":null,"consumer_tag":"c","message":{message}}}"#),
            format!(r#"{{"op":"deliver","channel":1,"consumer_tag":null,"message":{message}}}"#),
            r#"{"op":"deliver","channel":1,"consumer_tag":"c","message":null}"#.into(),
            r#"{"op":"deliver","channel":1,"consumer_tag":"c","message":[]}"#.into(),
            r#"{"op":"deliver","channel":"1","consumer_tag":1,"message":"m"}"#.into(),
            deliver(r#""delivery_tag":null,"redelivered":null,"exchange":null,"routing_key":null,"properties":null"#),
            deliver(r#""delivery_tag":"1","redelivered":0,"exchange":1,"routing_key":[],"properties":[]"#),
            deliver(r#""delivery_tag":1,"redelivered":"false","exchange":"","routing_key":"q","properties":{}"#),
            deliver(&format!(r#"{m},"properties":{{"priority":256}}"#)),
            deliver(&format!(r#"{m},"properties":{{"headers":[]}}"#)),
            deliver(&format!(r#"{m},"properties":{{"timestamp":-1,"type":1}}"#)),
            deliver(&format!(r#"{m},"properties":"p""#)),
            r#"{"op":"get-ok","id":1,"channel":1,"message":{}}"#.into(),
            format!(r#"{{"op":"get-ok","id":null,"channel":1,"message_count":0,"message":{message}}}"#),
            format!(r#"{{"op":"return","channel":1,"reply_code":"312","reply_text":"NO_ROUTE","message":{message}}}"#),
            format!(r#"{{"op":"return","channel":1,"reply_code":312,"message":{message}}}"#),
            format!(r#"{{"op":1,"channel":1,"consumer_tag":"c","message":{message}}}"#),
            format!(r#"{{"op":null,"channel":1,"consumer_tag":"c","message":{message}}}"#),
            format!(r#"{{"op":"Deliver","channel":1,"consumer_tag":"c","message":{message}}}"#),
            // Numbers: negative, fractional, exponents, out of range, huge.
            format!(r#"{{"op":"deliver","channel":-1,"consumer_tag":"c","message":{message}}}"#),
            format!(r#"{{"op":"deliver","channel":-0,"consumer_tag":"c","message":{message}}}"#),
            format!(r#"{{"op":"deliver","channel":1.0,"consumer_tag":"c","message":{message}}}"#),
            format!(r#"{{"op":"deliver","channel":1e0,"consumer_tag":"c","message":{message}}}"#),
            format!(r#"{{"op":"deliver","channel":4294967295,"consumer_tag":"c","message":{message}}}"#),
            format!(r#"{{"op":"deliver","channel":4294967296,"consumer_tag":"c","message":{message}}}"#),
            format!(r#"{{"op":"deliver","channel":01,"consumer_tag":"c","message":{message}}}"#),
            format!(r#"{{"op":"return","channel":1,"reply_code":65536,"reply_text":"","message":{message}}}"#),
            format!(r#"{{"op":"get-ok","id":18446744073709551615,"channel":1,"message_count":4294967296,"message":{message}}}"#),
            deliver(r#""delivery_tag":18446744073709551616,"redelivered":false,"exchange":"","routing_key":"q","properties":{}"#),
            deliver(r#""delivery_tag":1e400,"redelivered":false,"exchange":"","routing_key":"q","properties":{}"#),
            deliver(r#""delivery_tag":123456789012345678901234567890,"redelivered":false,"exchange":"","routing_key":"q","properties":{}"#),
            deliver(&format!(r#"{m},"properties":{{"headers":{{"n":1e400}}}}"#)),
            // Strings: escapes, bad escapes, lone surrogates.
            format!(r#"{{"op":"deliver","channel":1,"consumer_tag":"\ud83d\ude00\"\\\/\b\f\n\r\t","message":{message}}}"#),
            format!(r#"{{"op":"deliver","channel":1,"consumer_tag":"\ud800","message":{message}}}"#),
            format!(r#"{{"op":"deliver","channel":1,"consumer_tag":"\x","message":{message}}}"#),
            format!("{{\"op\":\"deliver\",\"channel\":1,\"consumer_tag\":\"a\tb\",\"message\":{message}}}"),
            deliver(r#""deliv\u0065ry_tag":1,"redelivered":false,"exchange":"","routing_key":"q","properties":{}"#),
            // Bad JSON, anywhere.
            format!(r#"{{"op":"deliver","channel":1,"consumer_tag":"c","message":{message}}} x"#),
            format!(r#"{{"op":"deliver","channel":1,"consumer_tag":"c","message":{message}}}}}"#),
            format!(r#"{{"op":"deliver","channel":1,"consumer_tag":"c","message":{message},}}"#),
            format!(r#"{{"op":"deliver","channel":1,,"consumer_tag":"c","message":{message}}}"#),
            format!(r#"{{"op":"deliver","channel":1,"consumer_tag":"c","message":{message}"#),
            deliver(&format!(r#"{m},"properties":{{"headers":{{"a":[1,]}}}}"#)),
            deliver(&format!(r#"{m},"properties":{{"headers":{}{}}}}}"#, "[".repeat(200), "]".repeat(200))),
            deliver(&format!(r#"{m},"properties":{{"headers":{{"a":{}1{}}}}}"#, "[".repeat(120), "]".repeat(120))),
            r#"{"op":"deliver""#.into(),
            "{".into(),
            "".into(),
            "[]".into(),
            "null".into(),
            "{}".into(),
            // Other frames.
            r#"{"op":"ok","id":1,"result":{"message":1}}"#.into(),
            r#"{"op":"cancel","channel":1,"consumer_tag":"c"}"#.into(),
        ];
        // Around serde_json's nesting limit, which the general reader meets at the properties'
        // depth in the header, not at their depth on their own.
        let deep = (118..132).map(|n| deliver(&format!(r#"{m},"properties":{{"headers":{{"a":{}1{}}}}}"#, "[".repeat(n), "]".repeat(n))));
        for json in odd.into_iter().chain(deep) {
            reads_as_the_general_reader(json.as_bytes());
        }
        let mut invalid_utf8 = deliver(m).into_bytes();
        let at = invalid_utf8.iter().position(|&b| b == b'q').unwrap();
        invalid_utf8[at] = 0xff;
        reads_as_the_general_reader(&invalid_utf8);
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod props {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::Index;

        /// Values a field may have: right, wrong, odd.
        const VALUES: &[&str] = &[
            "null", "true", "false", "0", "1", "-1", "-0", "1.0", "1e2", "255", "256", "65535", "65536", "4294967295", "4294967296",
            "18446744073709551615", "18446744073709551616", "1e400", r#""""#, r#""c""#, r#""a\"b\\c\u00e9\n""#, r#""\ud800""#,
            r#""deliver""#, r#""get-ok""#, r#""return""#, "[]", "[1,{}]", "{}", r#"{"a":1}"#,
        ];
        const KEYS: &[&str] = &[
            "op", "id", "channel", "consumer_tag", "message", "message_count", "reply_code", "reply_text", "delivery_tag", "redelivered", "exchange",
            "routing_key", "properties", "headers", "priority", "x", r#"ch\u0061nnel"#,
        ];
        const PROPERTIES: &[&str] = &[
            "{}",
            r#"{"content_type":"application/json","content_encoding":"utf-8","headers":{},"delivery_mode":2,"priority":0}"#,
            r#"{"headers":{"lang":"py","retries":0,"timelimit":[null,null],"eta":null},"correlation_id":"c","reply_to":"r"}"#,
            r#"{"priority":256}"#,
            r#"{"headers":[],"timestamp":1}"#,
            r#"{"type":1,"body_encoding":"base64"}"#,
            r#"{"priority":"x","content_type":1,"priority":2}"#,
            "null",
        ];

        /// A JSON object: `entries` after `edits` (replace a value, drop, insert, swap, append
        /// a duplicate, escape a key).
        fn object(mut entries: Vec<(String, String)>, edits: &[(u8, Index, Index, Index)]) -> String {
            for (kind, a, b, c) in edits {
                let n = entries.len();
                match kind {
                    0 if n > 0 => entries[a.index(n)].1 = b.get(VALUES).to_string(),
                    1 if n > 0 => drop(entries.remove(a.index(n))),
                    2 => entries.insert(a.index(n + 1), (b.get(KEYS).to_string(), c.get(VALUES).to_string())),
                    3 if n > 0 => entries.swap(a.index(n), b.index(n)),
                    4 if n > 0 => entries.push((entries[a.index(n)].0.clone(), b.get(VALUES).to_string())),
                    5 if n > 0 => {
                        let key = &mut entries[a.index(n)].0;
                        let first = key.remove(0);
                        key.insert_str(0, &format!("\\u{:04x}", first as u32));
                    }
                    _ => {}
                }
            }
            let fields: Vec<String> = entries.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", fields.join(","))
        }

        fn entries(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        }

        fn edits() -> impl Strategy<Value = Vec<(u8, Index, Index, Index)>> {
            // Mostly none or one, mostly a value replaced: headers close to the gateway's.
            let kind = prop_oneof![3 => Just(0u8), 2 => 1u8..6];
            prop::collection::vec((kind, any::<Index>(), any::<Index>(), any::<Index>()), 0..3)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(5000))]

            /// Message headers as the gateway writes them, then edited: whatever the one-pass
            /// reader takes, it reads as the general reader does; what it leaves, that reader
            /// reads.
            #[test]
            fn edited_message_headers_read_as_the_general_reader_reads_them(
                op in 0usize..3,
                properties in any::<Index>(),
                message_edits in edits(),
                frame_edits in edits(),
            ) {
                let message = object(
                    entries(&[("delivery_tag", "7"), ("redelivered", "true"), ("exchange", r#""e""#), ("routing_key", r#""k""#), ("properties", *properties.get(PROPERTIES))]),
                    &message_edits,
                );
                let frame = match op {
                    0 => entries(&[("op", r#""deliver""#), ("channel", "1"), ("consumer_tag", r#""c""#), ("message", &message)]),
                    1 => entries(&[("op", r#""get-ok""#), ("id", "2"), ("channel", "1"), ("message_count", "0"), ("message", &message)]),
                    _ => entries(&[("op", r#""return""#), ("channel", "1"), ("reply_code", "312"), ("reply_text", r#""NO_ROUTE""#), ("message", &message)]),
                };
                reads_as_the_general_reader(object(frame, &frame_edits).as_bytes());
            }

            /// A written deliver header with bytes changed, inserted or cut.
            #[test]
            fn mangled_deliver_headers_read_as_the_general_reader_reads_them(
                changes in prop::collection::vec((any::<Index>(), any::<Index>(), any::<bool>()), 1..4),
                cut in any::<Index>(),
                cut_it in any::<bool>(),
            ) {
                const BYTES: &[u8] = b"{}[]\":,\\ 0189-+.eEtrufalsn\xff";
                let properties = Properties { content_type: Some("application/json".into()), headers: crate::value::headers([("a", serde_json::json!([1, "x"]))]), ..Properties::default() };
                let content = std::sync::Arc::new(crate::proto::methods::Content { properties, body: Bytes::new() });
                let delivery = crate::proto::methods::Delivery { delivery_tag: 42, redelivered: false, exchange: "e".into(), routing_key: "k".into(), content, extra: None };
                let frame = encode_deliver(3, "c", &delivery);
                let mut json = split_header(&frame).unwrap().0.to_vec();
                for (at, byte, insert) in changes {
                    let (at, byte) = (at.index(json.len()), *byte.get(BYTES));
                    if insert {
                        json.insert(at, byte);
                    } else {
                        json[at] = byte;
                    }
                }
                if cut_it {
                    json.truncate(cut.index(json.len() + 1));
                }
                reads_as_the_general_reader(&json);
            }
        }
    }

    /// The client's reader of message properties gives what the server's derived decoder gives.
    #[test]
    fn properties_are_read_as_the_derived_decoder_reads_them() {
        for json in [
            serde_json::json!({}),
            serde_json::json!({"content_type": "text/plain", "content_encoding": null, "headers": {"a": {"b": [1, 2.5, "c", null]}}, "delivery_mode": 2, "priority": 0}),
            serde_json::json!({"correlation_id": "c", "reply_to": "r", "expiration": "5", "message_id": "m", "timestamp": 12, "type": "t", "user_id": "u", "app_id": "a", "cluster_id": "k", "unknown": 1}),
        ] {
            let Value::Object(map) = json.clone() else { unreachable!() };
            assert_eq!(Properties::from_json(map).unwrap(), serde_json::from_value::<Properties>(json).unwrap());
        }
        for json in [serde_json::json!({"delivery_mode": 256}), serde_json::json!({"timestamp": -1}), serde_json::json!({"type": 1})] {
            let Value::Object(map) = json.clone() else { unreachable!() };
            assert!(Properties::from_json(map).is_err() && serde_json::from_value::<Properties>(json).is_err());
        }
    }
}
