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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// A client frame's header: the request and its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientHeader {
    /// Correlates the answer.
    pub id: u64,
    /// The request.
    #[serde(flatten)]
    pub request: Request,
}

/// How far an error reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
pub fn encode<H: Serialize>(header: &H, body: &[u8]) -> Bytes {
    let json = serde_json::to_vec(header).expect("frame headers always serialize");
    let mut out = BytesMut::with_capacity(4 + json.len() + body.len());
    out.put_u32(json.len() as u32);
    out.put_slice(&json);
    out.put_slice(body);
    out.freeze()
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
    encode(&Deliver { op: "deliver", channel, consumer_tag, message }, &delivery.content.body)
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
    let header = match leading_op(json, true) {
        Some(b"basic.publish") => header_from_json::<Publish>(json)
            .map(|h| ClientHeader { id: h.id, request: Request::BasicPublish { channel: h.channel, method: h.method, properties: h.properties } })?,
        Some(b"basic.ack") => header_from_json::<Ack>(json)
            .map(|h| ClientHeader { id: h.id, request: Request::BasicAck { channel: h.channel, delivery_tag: h.delivery_tag, multiple: h.multiple } })?,
        _ => header_from_json(json)?,
    };
    Ok((header, body))
}

/// Decode a server frame, as [`decode`] does; deliveries written as this crate writes them
/// (`{"op":"deliver",`) are read straight into their fields (see [`decode_client`]; it takes
/// a quarter off the browser's cost of a delivery's header), the other frames through
/// [`FlatServerFrame`] (no intermediate tree).
pub fn decode_server(frame: &Bytes) -> Result<(ServerFrame, Bytes)> {
    #[derive(Deserialize)]
    struct Deliver {
        #[serde(rename = "op")]
        _op: serde::de::IgnoredAny,
        channel: u32,
        consumer_tag: String,
        message: MessageHeader,
    }
    let (json, body) = split_header(frame)?;
    let header = match leading_op(json, false) {
        Some(b"deliver") => header_from_json::<Deliver>(json)
            .map(|h| ServerFrame::Deliver { channel: h.channel, consumer_tag: h.consumer_tag, message: h.message })?,
        _ => header_from_json::<FlatServerFrame>(json)?.frame()?,
    };
    Ok((header, body))
}

/// Every field of every server frame, optional: what [`decode_server`] reads the other frames
/// into before building the variant its `op` names. The derived decoder of the internally
/// tagged [`ServerFrame`] buffers the header in serde's intermediate tree first, whose code
/// was ~50 KB of the wasm module with the WebSocket transports.
#[derive(Deserialize)]
struct FlatServerFrame {
    op: String,
    id: Option<u64>,
    channel: Option<u32>,
    result: Option<Value>,
    message_count: Option<u32>,
    message: Option<MessageHeader>,
    scope: Option<Scope>,
    code: Option<u16>,
    name: Option<String>,
    text: Option<String>,
    consumer_tag: Option<String>,
    reply_code: Option<u16>,
    reply_text: Option<String>,
    delivery_tag: Option<u64>,
    multiple: Option<bool>,
    ack: Option<bool>,
    active: Option<bool>,
    reason: Option<String>,
}

impl FlatServerFrame {
    /// The frame its `op` names; an unknown `op` or a missing field is an error naming it.
    fn frame(self) -> Result<ServerFrame> {
        let op = self.op;
        let missing = |field: &str| Error::Decode(format!("invalid gateway frame header: missing field `{field}` in an `{op}` frame"));
        let channel = self.channel.ok_or_else(|| missing("channel"));
        Ok(match op.as_str() {
            "ok" => ServerFrame::Ok { id: self.id.ok_or_else(|| missing("id"))?, result: self.result.unwrap_or(Value::Null) },
            "get-ok" => ServerFrame::GetOk {
                id: self.id.ok_or_else(|| missing("id"))?,
                channel: channel?,
                message_count: self.message_count.ok_or_else(|| missing("message_count"))?,
                message: self.message.ok_or_else(|| missing("message"))?,
            },
            "error" => ServerFrame::Error {
                id: self.id,
                channel: self.channel,
                scope: self.scope.ok_or_else(|| missing("scope"))?,
                code: self.code.ok_or_else(|| missing("code"))?,
                name: self.name.ok_or_else(|| missing("name"))?,
                text: self.text.ok_or_else(|| missing("text"))?,
            },
            "deliver" => ServerFrame::Deliver {
                channel: channel?,
                consumer_tag: self.consumer_tag.ok_or_else(|| missing("consumer_tag"))?,
                message: self.message.ok_or_else(|| missing("message"))?,
            },
            "return" => ServerFrame::Return {
                channel: channel?,
                reply_code: self.reply_code.ok_or_else(|| missing("reply_code"))?,
                reply_text: self.reply_text.ok_or_else(|| missing("reply_text"))?,
                message: self.message.ok_or_else(|| missing("message"))?,
            },
            "cancel" => ServerFrame::Cancel { channel: channel?, consumer_tag: self.consumer_tag.ok_or_else(|| missing("consumer_tag"))? },
            "confirm" => ServerFrame::Confirm {
                channel: channel?,
                delivery_tag: self.delivery_tag.ok_or_else(|| missing("delivery_tag"))?,
                multiple: self.multiple.ok_or_else(|| missing("multiple"))?,
                ack: self.ack.ok_or_else(|| missing("ack"))?,
            },
            "flow" => ServerFrame::Flow { channel: channel?, active: self.active.ok_or_else(|| missing("active"))? },
            "heartbeat" => ServerFrame::Heartbeat,
            "blocked" => ServerFrame::Blocked { reason: self.reason.ok_or_else(|| missing("reason"))? },
            "unblocked" => ServerFrame::Unblocked,
            _ => return Err(Error::Decode(format!("invalid gateway frame header: unknown op {op:?}"))),
        })
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
    serde_json::from_slice(json).map_err(|e| Error::Decode(format!("invalid gateway frame header: {e}")))
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
        let (back, _): (ServerFrame, Bytes) = decode(&bytes).unwrap();
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

    /// The direct paths of `decode_client`/`decode_server` give what the general decoder
    /// gives — the same frame or an error of the same kind — for the headers they take and
    /// for look-alikes they must leave to it.
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
        let message = MessageHeader { delivery_tag: 5, redelivered: true, exchange: "e".into(), routing_key: "k".into(), properties: props };
        let server = [
            encode(&ServerFrame::Deliver { channel: 1, consumer_tag: "ctag".into(), message: message.clone() }, b"body"),
            encode(&ServerFrame::GetOk { id: 1, channel: 1, message_count: 0, message }, b"body"),
            raw(r#"{"op":"deliver","channel":1,"consumer_tag":"c"}"#),
            raw(r#"{"channel":1,"op":"deliver","consumer_tag":"c","message":{"delivery_tag":1,"redelivered":false,"exchange":"","routing_key":"q","properties":{}}}"#),
            raw(r#"{"op":"deliver","op":"deliver","channel":1,"consumer_tag":"c","message":{"delivery_tag":1,"redelivered":false,"exchange":"","routing_key":"q","properties":{}}}"#),
            encode(&ServerFrame::Ok { id: 4, result: crate::value::Value::from(3) }, b""),
            encode(&ServerFrame::Ok { id: 4, result: crate::value::Value::Null }, b""),
            encode(&ServerFrame::error(Some(2), Some(1), &Error::Channel { code: ReplyCode::NotFound, text: "no exchange 'x'".into() }), b""),
            encode(&ServerFrame::error(None, None, &Error::Connection { code: ReplyCode::ConnectionForced, text: "bye".into() }), b""),
            encode(&ServerFrame::Return { channel: 1, reply_code: 312, reply_text: "NO_ROUTE".into(), message: MessageHeader { delivery_tag: 0, redelivered: false, exchange: "e".into(), routing_key: "k".into(), properties: Properties::default() } }, b"b"),
            encode(&ServerFrame::Cancel { channel: 2, consumer_tag: "c".into() }, b""),
            encode(&ServerFrame::Confirm { channel: 2, delivery_tag: 9, multiple: true, ack: false }, b""),
            encode(&ServerFrame::Flow { channel: 2, active: false }, b""),
            encode(&ServerFrame::Heartbeat, b""),
            raw(r#"{"op":"ok","id":1}"#),
            raw(r#"{"op":"ok","id":1,"result":null,"extra":[1]}"#),
            raw(r#"{"op":"ok"}"#),
            raw(r#"{"op":"confirm","channel":1,"delivery_tag":1,"multiple":false}"#),
            raw(r#"{"op":"error","scope":"channel","code":404,"name":"NotFound"}"#),
            raw(r#"{"op":"error","scope":"everything","code":404,"name":"NotFound","text":"t"}"#),
            raw(r#"{"op":"nope","id":1}"#),
            raw(r#"{"id":1}"#),
            raw(r#"{"op":"flow","channel":1,"active":"yes"}"#),
        ];
        for frame in server {
            agree(decode::<ServerFrame>(&frame), decode_server(&frame), &frame);
        }
    }
}
