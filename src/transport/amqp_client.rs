//! The AMQP 0-9-1 client, independent of the socket: the connection handshake (PLAIN or
//! AMQPLAIN login, tune), channels and their RPCs, every method Kombu uses, content split at
//! frame_max and reassembled, publisher confirms, returns, server cancels, flow, and
//! server-initiated closes turned into Kombu's errors — as [`RawConnection`] and
//! [`RawChannel`]. A carrier moves the bytes: it sends what it is given
//! ([`Carrier`], shared with the gateway transport) and feeds what it reads to
//! [`AmqpClient::on_bytes`], then [`AmqpClient::on_close`] when the socket ends. The native
//! `amqp://`/`amqps://` transport (tokio TCP/TLS, in `kombu-gateway`) and `amqp+ws://` (a
//! WebSocket to the gateway's `/amqp` relay, in the browser) are such carriers. Timers
//! (heartbeats, timeouts) are the carrier's, except the timeouts of waits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use futures::channel::{mpsc, oneshot};
use futures::FutureExt;

use crate::proto::amqp::{self, Frame, Method};
use crate::namemap::SortedMap;
use crate::rt::lock;
use crate::error::{Error, ReplyCode, Result};
use crate::properties::Properties;
use crate::rt::{self, Duration};
use crate::proto::methods::{
    BasicConsume, BasicPublish, BasicQos, Content, Delivery, ExchangeBind, ExchangeDeclare, ExchangeDelete, GetOk, QueueBind, QueueDeclare,
    QueueDeclareOk, QueueDelete, Returned, ServerEvent,
};
use crate::transport::carrier::{Carrier, ClosedBy, Confirms, EventQueue, Unsettled};
use crate::transport::{ConnectInfo, RawChannel, RawConnection};
use crate::value::{Headers, Value};

enum Reply {
    Method(Method),
    Get(Method, Box<Properties>, Bytes),
}

impl Reply {
    fn method(self) -> Method {
        match self {
            Reply::Method(m) | Reply::Get(m, ..) => m,
        }
    }
}

/// Where the server's answer to a request arrives.
type Answer = oneshot::Receiver<Result<Reply>>;

/// The answer, or the connection's end.
fn answer(r: std::result::Result<Result<Reply>, oneshot::Canceled>) -> Result<Reply> {
    r.unwrap_or_else(|_| Err(closed()))
}

#[derive(Default)]
struct ChanState {
    pending: VecDeque<oneshot::Sender<Result<Reply>>>,
    content: Option<Incoming>,
    /// Publisher confirms (the `confirm_publish` transport option).
    confirm: Option<Confirms>,
    /// Why the channel ended, shared with its [`AmqpChannel`].
    closed: ClosedBy,
    /// The deliveries the broker waits for us to settle.
    unsettled: Unsettled,
    /// Tags of the consumers that consume without acks (their deliveries are not tracked).
    no_ack_consumers: Vec<String>,
    /// `no_ack` of each `basic.get` waiting for its answer.
    gets: VecDeque<bool>,
}

/// A message being received: its method, properties, announced body size and body so far.
type Incoming = (Method, Properties, u64, BytesMut);

impl ChanState {
    /// The channel ended with `e` (the broker closed it, or the connection is gone): what
    /// waits on it fails with `e`, and so does every later operation of its handle.
    fn fail(self, e: &Error) {
        lock(&self.closed).get_or_insert_with(|| e.clone());
        for tx in self.pending {
            let _ = tx.send(Err(e.clone()));
        }
        if let Some(confirms) = self.confirm {
            confirms.fail(e);
        }
    }

    /// A delivery (`consumer` is `None` for `basic.get-ok`) arrived: track it when the broker
    /// waits for its settlement.
    fn delivered(&mut self, tag: u64, consumer: Option<&str>) {
        let needs_ack = match consumer {
            Some(c) => !self.no_ack_consumers.iter().any(|t| t == c),
            None => !self.gets.pop_front().unwrap_or(true),
        };
        if needs_ack {
            self.unsettled.delivered(tag);
        }
    }

    /// Settle confirms up to `tag` (or only `tag`): true when this channel tracks confirms.
    fn confirmed(&mut self, tag: u64, multiple: bool, ack: bool) -> bool {
        let Some(confirms) = self.confirm.as_mut() else { return false };
        confirms.settle(tag, multiple, ack);
        true
    }
}

struct Inner {
    out: Box<dyn Carrier>,
    frame_max: AtomicU32,
    channel_max: AtomicU16,
    channels: Mutex<SortedMap<u16, ChanState>>,
    open: AtomicBool,
    next_channel: AtomicU16,
    events: mpsc::UnboundedSender<ServerEvent>,
    /// Publishes wait for the broker's confirm (`confirm_publish`, as pyamqp's option).
    confirm_publish: AtomicBool,
}


/// The broker answered `expected` with another method, named by its AMQP class and method
/// ids (not a derived `Debug` of methods, whose formatting code would go into the wasm module).
fn unexpected(expected: &str, got: &Method) -> Error {
    let (class, method) = got.ids();
    Error::Decode(format!("expected {expected}, got AMQP method {class}.{method}"))
}

fn closed() -> Error {
    Error::RecoverableConnection("the AMQP connection is closed".into())
}

impl Inner {
    fn send(&self, bytes: BytesMut) -> Result<()> {
        self.out.send(bytes.freeze()).map_err(|_| closed())
    }

    /// Queue `ev` for the connection's [`RawConnection::next_event`] (dropped once the
    /// connection is gone). One function for every event: each inlined send had its own
    /// drop code for the event it could not queue.
    #[inline(never)]
    fn event(&self, ev: ServerEvent) {
        let _ = self.events.unbounded_send(ev);
    }

    /// Send the answer `m` to a method of the server on `channel` (a send failure means the
    /// socket is closing, which its close reports).
    fn answer_server(&self, channel: u16, m: &Method) -> Result<()> {
        let mut out = BytesMut::new();
        amqp::write_method(channel, m, &mut out)?;
        let _ = self.send(out);
        Ok(())
    }

    /// Send `m` on `channel`; the receiver gets the server's answer.
    fn call(&self, channel: u16, m: &Method) -> Result<Answer> {
        let mut out = BytesMut::new();
        amqp::write_method(channel, m, &mut out)?;
        self.request(channel, out)
    }

    /// Send `out` (frames on `channel`, or the protocol header); the receiver gets the
    /// server's next answer on `channel`. Not async: the futures awaiting the answer then
    /// hold only the receiver (each layer of async functions here had added its own states
    /// and drop code to the wasm module).
    fn request(&self, channel: u16, out: BytesMut) -> Result<Answer> {
        if !self.open.load(Ordering::SeqCst) {
            return Err(closed());
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut chans = lock(&self.channels);
            let st = chans.get_mut(&channel).ok_or_else(|| Error::channel(ReplyCode::ChannelError, format!("CHANNEL_ERROR - channel {channel} is closed")))?;
            st.pending.push_back(tx);
            self.send(out)?;
        }
        self.out.flush();
        Ok(rx)
    }

    async fn method(&self, channel: u16, m: Method) -> Result<Method> {
        let rx = self.call(channel, &m)?;
        drop(m);
        answer(rx.await).map(Reply::method)
    }

    fn fail_all(&self, e: &Error) {
        for (_, st) in std::mem::take(&mut *lock(&self.channels)) {
            st.fail(e);
        }
    }
}

/// The protocol state of one AMQP connection, fed by its carrier.
pub struct AmqpClient {
    inner: Arc<Inner>,
    events_rx: Mutex<Option<mpsc::UnboundedReceiver<ServerEvent>>>,
    /// Bytes read and not yet a whole frame.
    buf: Mutex<BytesMut>,
    /// The negotiated heartbeat interval in seconds (0: none), once tuned.
    heartbeat: AtomicU16,
}

impl AmqpClient {
    /// Protocol state over `carrier`; call [`AmqpClient::handshake`] next.
    pub fn new(carrier: Box<dyn Carrier>) -> Arc<AmqpClient> {
        let (events, events_rx) = mpsc::unbounded();
        Arc::new(AmqpClient {
            inner: Arc::new(Inner {
                out: carrier,
                frame_max: AtomicU32::new(131_072),
                channel_max: AtomicU16::new(2047),
                channels: Mutex::new({
                    let mut channels = SortedMap::new();
                    channels.insert(0u16, ChanState::default());
                    channels
                }),
                open: AtomicBool::new(true),
                next_channel: AtomicU16::new(1),
                events,
                confirm_publish: AtomicBool::new(false),
            }),
            events_rx: Mutex::new(Some(events_rx)),
            buf: Mutex::new(BytesMut::new()),
            heartbeat: AtomicU16::new(0),
        })
    }

    /// The negotiated heartbeat interval in seconds (0: none): the carrier sends
    /// [`AmqpClient::heartbeat`] every half interval and gives up on a broker silent for two.
    pub fn heartbeat_interval(&self) -> u16 {
        self.heartbeat.load(Ordering::Relaxed)
    }

    /// Send a heartbeat frame.
    pub fn heartbeat(&self) -> Result<()> {
        let mut out = BytesMut::new();
        amqp::write_heartbeat(&mut out);
        self.inner.send(out)?;
        self.inner.out.flush();
        Ok(())
    }

    /// Bytes arrived from the broker. An error (a malformed frame, or the broker closing the
    /// connection) means the carrier should close the socket and call [`AmqpClient::on_close`].
    pub fn on_bytes(&self, bytes: &[u8]) -> Result<()> {
        let mut buf = lock(&self.buf);
        buf.extend_from_slice(bytes);
        loop {
            let frame_max = self.inner.frame_max.load(Ordering::Relaxed);
            let (f, n) = match amqp::read_frame(&buf, frame_max) {
                Ok(Some(x)) => x,
                Ok(None) => return Ok(()),
                Err(e) => {
                    let e = Error::connection(ReplyCode::FrameError, format!("malformed frame from the broker: {e}"));
                    self.fail(&e);
                    return Err(e);
                }
            };
            buf.advance(n);
            // During the handshake too: its connection methods answer the handshake's waits
            // on channel 0 as other answers do, and a `connection.close` fails them.
            if let Err(e) = handle_frame(&self.inner, f) {
                self.fail(&e);
                return Err(e);
            }
        }
    }

    fn fail(&self, e: &Error) {
        if self.inner.open.swap(false, Ordering::SeqCst) {
            self.inner.fail_all(e);
            self.inner.event(ServerEvent::ConnectionClosed { error: e.clone() });
        }
    }

    /// The socket ended (`reason` says how).
    pub fn on_close(&self, reason: &str) {
        self.fail(&Error::RecoverableConnection(format!("AMQP connection lost: {reason}")));
    }

    /// Open the connection: protocol header, login (`info.login_method`: PLAIN by default,
    /// or AMQPLAIN), tune (frame_max, channel_max, `info.heartbeat`), `connection.open` of
    /// `info.virtual_host`. The `confirm_publish` transport option makes publishes wait for
    /// the broker's confirms.
    pub async fn handshake(&self, info: &ConnectInfo) -> Result<()> {
        // The steps between the waits are functions of their own, and one wait in a loop
        // serves the three answers: the handshake's future then holds no strings or tables
        // across its wait, and has one state for it (its states and drop code had made the
        // amqp+ws connection's future ~6 KB of the wasm module).
        let mut out = BytesMut::from(&amqp::PROTOCOL_HEADER[..]);
        let (mut channel_max, mut frame_max, mut heartbeat) = (0, 0, 0);
        for step in 0..3 {
            let m = answer(self.inner.request(0, out)?.await)?.method();
            out = match (step, m) {
                (0, start) => start_ok(info, start)?,
                (1, tune) => {
                    let tuned;
                    (tuned, channel_max, frame_max, heartbeat) = tune_ok(info, tune)?;
                    tuned
                }
                (_, Method::ConnectionOpenOk) => BytesMut::new(),
                (_, other) => return Err(unexpected("connection.open-ok", &other)),
            };
        }
        self.inner.frame_max.store(frame_max, Ordering::Relaxed);
        self.inner.channel_max.store(channel_max, Ordering::Relaxed);
        self.heartbeat.store(heartbeat, Ordering::Relaxed);
        self.inner.confirm_publish.store(info.flag("confirm_publish"), Ordering::Relaxed);
        Ok(())
    }

    /// The connection, once the handshake succeeded (call once).
    pub fn connection(self: &Arc<Self>) -> Result<AmqpConnection> {
        let rx = lock(&self.events_rx).take().ok_or_else(|| Error::Value("AmqpClient::connection was already called".into()))?;
        Ok(AmqpConnection { inner: self.inner.clone(), events: EventQueue::new(rx, "the AMQP connection is closed"), _client: self.clone() })
    }
}

/// The client's properties in `connection.start-ok`: its name, version and capabilities.
const CLIENT_PROPERTIES: &str = concat!(
    r#"{"product": "kombu-wasm", "version": ""#,
    env!("CARGO_PKG_VERSION"),
    r#"", "capabilities": {"publisher_confirms": true, "consumer_cancel_notify": true, "basic.nack": true, "connection.blocked": true, "exchange_exchange_bindings": true}}"#
);

/// The answer to `connection.start`: `connection.start-ok` with the login (`info.login_method`:
/// PLAIN by default, or AMQPLAIN) and the client's properties.
fn start_ok(info: &ConnectInfo, start: Method) -> Result<BytesMut> {
    let Method::ConnectionStart { mechanisms, .. } = start else { return Err(unexpected("connection.start", &start)) };
    let offered = |m: &str| mechanisms.split_whitespace().any(|o| o == m);
    let user = info.userid.as_deref().unwrap_or("guest");
    let pass = info.password.as_deref().unwrap_or("guest");
    // login_method as in py-amqp: PLAIN or AMQPLAIN; by default PLAIN, else AMQPLAIN.
    let mechanism = match info.login_method.as_deref().map(str::to_ascii_uppercase) {
        Some(m) if m == "PLAIN" || m == "AMQPLAIN" => m,
        Some(m) => return Err(Error::NotImplemented(format!("login_method {m:?}: this client speaks PLAIN and AMQPLAIN"))),
        None if offered("PLAIN") => "PLAIN".to_owned(),
        None => "AMQPLAIN".to_owned(),
    };
    if !offered(&mechanism) {
        return Err(Error::connection(ReplyCode::AccessRefused, format!("the broker offers the login methods {mechanisms:?}, not {mechanism}")));
    }
    let response = if mechanism == "PLAIN" { format!("\0{user}\0{pass}").into_bytes() } else { amqp::amqplain_response(user, pass)? };
    // Parsed from its JSON text by the parser every module has: a table built in code (or
    // with `json!`) is more of the wasm module.
    let client_properties = match crate::json_text::parse(CLIENT_PROPERTIES.as_bytes()) {
        Ok(Value::Object(p)) => p,
        _ => Headers::new(),
    };
    let mut out = BytesMut::new();
    amqp::write_method(0, &Method::ConnectionStartOk { client_properties, mechanism, response, locale: "en_US".into() }, &mut out)?;
    Ok(out)
}

/// The answer to `connection.tune`: `connection.tune-ok` (frame_max, channel_max, and the
/// lower of both heartbeat wishes) and `connection.open` of `info.virtual_host`, with the
/// negotiated channel_max, frame_max and heartbeat.
fn tune_ok(info: &ConnectInfo, tune: Method) -> Result<(BytesMut, u16, u32, u16)> {
    let Method::ConnectionTune { channel_max, frame_max, heartbeat } = tune else { return Err(unexpected("connection.tune", &tune)) };
    let channel_max = if channel_max == 0 { 2047 } else { channel_max.min(2047) };
    let frame_max = if frame_max == 0 { 131_072 } else { frame_max.min(131_072) };
    let want = info.heartbeat.unwrap_or(0.0).round() as u16;
    // 0 (Kombu's default) disables heartbeats; otherwise the lower of both wishes.
    let heartbeat = if want == 0 { 0 } else if heartbeat == 0 { want } else { want.min(heartbeat) };
    let mut out = BytesMut::new();
    amqp::write_method(0, &Method::ConnectionTuneOk { channel_max, frame_max, heartbeat }, &mut out)?;
    amqp::write_method(0, &Method::ConnectionOpen { virtual_host: info.virtual_host.clone() }, &mut out)?;
    Ok((out, channel_max, frame_max, heartbeat))
}

/// An AMQP connection (see [`AmqpClient`]).
pub struct AmqpConnection {
    inner: Arc<Inner>,
    events: EventQueue,
    /// Keeps the client (which the carrier feeds through a weak reference) alive.
    _client: Arc<AmqpClient>,
}

impl Drop for AmqpConnection {
    fn drop(&mut self) {
        if self.inner.open.swap(false, Ordering::SeqCst) {
            self.inner.out.close();
        }
    }
}

fn deliver(inner: &Inner, channel: u16, m: Method, props: Properties, body: Bytes) {
    let content = Arc::new(Content { properties: props, body });
    match m {
        Method::BasicDeliver { consumer_tag, delivery_tag, redelivered, exchange, routing_key } => {
            let delivery = Delivery { delivery_tag, redelivered, exchange: exchange.into(), routing_key: routing_key.into(), content, extra: None };
            inner.event(ServerEvent::Deliver { channel: u32::from(channel), consumer_tag: consumer_tag.into(), delivery });
        }
        Method::BasicReturn { reply_code, reply_text, exchange, routing_key } => {
            let returned = Returned { reply_code, reply_text, exchange: exchange.into(), routing_key: routing_key.into(), content };
            inner.event(ServerEvent::Return { channel: u32::from(channel), returned });
        }
        m @ Method::BasicGetOk { .. } => {
            let tx = lock(&inner.channels).get_mut(&channel).and_then(|st| st.pending.pop_front());
            if let Some(tx) = tx {
                let _ = tx.send(Ok(Reply::Get(m, Box::new(content.properties.clone()), content.body.clone())));
            }
        }
        _ => {}
    }
}

fn handle_frame(inner: &Inner, f: Frame) -> Result<()> {
    match f {
        Frame::Heartbeat => Ok(()),
        Frame::Method(0, Method::ConnectionClose { reply_code, reply_text, .. }) => {
            inner.answer_server(0, &Method::ConnectionCloseOk)?;
            Err(Error::connection(ReplyCode::from_code(reply_code), reply_text))
        }
        Frame::Method(0, Method::ConnectionBlocked { reason }) => {
            tracing::warn!(%reason, "the broker blocked publishing (connection.blocked)");
            inner.event(ServerEvent::Blocked { reason });
            Ok(())
        }
        Frame::Method(0, Method::ConnectionUnblocked) => {
            tracing::info!("the broker unblocked publishing (connection.unblocked)");
            inner.event(ServerEvent::Unblocked);
            Ok(())
        }
        Frame::Method(ch, Method::ChannelClose { reply_code, reply_text, .. }) => {
            inner.answer_server(ch, &Method::ChannelCloseOk)?;
            let e = Error::channel(ReplyCode::from_code(reply_code), reply_text);
            tracing::debug!(channel = ch, "the broker closed the channel: {e}");
            if let Some(st) = lock(&inner.channels).remove(&ch) {
                st.fail(&e);
            }
            inner.event(ServerEvent::ChannelClosed { channel: u32::from(ch), error: e });
            Ok(())
        }
        Frame::Method(ch, Method::ChannelFlow { active }) => {
            inner.answer_server(ch, &Method::ChannelFlowOk { active })?;
            inner.event(ServerEvent::Flow { channel: u32::from(ch), active });
            Ok(())
        }
        Frame::Method(ch, Method::BasicCancel { consumer_tag, .. }) => {
            inner.event(ServerEvent::Cancel { channel: u32::from(ch), consumer_tag: consumer_tag.into() });
            Ok(())
        }
        Frame::Method(ch, Method::BasicAck { delivery_tag, multiple }) => {
            let tracked = lock(&inner.channels).get_mut(&ch).is_some_and(|st| st.confirmed(delivery_tag, multiple, true));
            if !tracked {
                inner.event(ServerEvent::Ack { channel: u32::from(ch), delivery_tag, multiple });
            }
            Ok(())
        }
        Frame::Method(ch, Method::BasicNack { delivery_tag, multiple, .. }) => {
            let tracked = lock(&inner.channels).get_mut(&ch).is_some_and(|st| st.confirmed(delivery_tag, multiple, false));
            if !tracked {
                inner.event(ServerEvent::Nack { channel: u32::from(ch), delivery_tag, multiple });
            }
            Ok(())
        }
        Frame::Method(ch, m) if m.has_content() => {
            if let Some(st) = lock(&inner.channels).get_mut(&ch) {
                st.content = Some((m, Properties::default(), 0, BytesMut::new()));
            }
            Ok(())
        }
        Frame::Method(ch, m) => {
            let tx = lock(&inner.channels).get_mut(&ch).and_then(|st| {
                if matches!(m, Method::BasicGetEmpty) {
                    st.gets.pop_front();
                }
                st.pending.pop_front()
            });
            match tx {
                Some(tx) => {
                    let _ = tx.send(Ok(Reply::Method(m)));
                }
                None => tracing::debug!(channel = ch, "unexpected {m:?}"),
            }
            Ok(())
        }
        Frame::Header(ch, size, props) => content_frame(inner, ch, Part::Header(size, props)),
        Frame::Body(ch, bytes) => content_frame(inner, ch, Part::Body(bytes)),
    }
}

/// A part of a content: its header (body size, properties) or a body frame.
enum Part {
    Header(u64, Box<Properties>),
    Body(Bytes),
}

/// A content header or body frame on `ch` goes into the content being received, which is
/// delivered once complete. Without a content in progress the frame is out of place. (One
/// function for both parts: a closure per part had made two copies of it.)
fn content_frame(inner: &Inner, ch: u16, part: Part) -> Result<()> {
    let done = {
        let mut chans = lock(&inner.channels);
        let Some(st) = chans.get_mut(&ch) else { return Ok(()) };
        let Some(c) = st.content.as_mut() else {
            let what = if let Part::Body(_) = part { "content body without a header" } else { "content header without a method" };
            return Err(Error::connection(ReplyCode::UnexpectedFrame, format!("{what} on channel {ch}")));
        };
        let complete = match part {
            Part::Header(size, props) => {
                c.1 = *props;
                c.2 = size;
                size == 0
            }
            Part::Body(bytes) => {
                c.3.extend_from_slice(&bytes);
                c.3.len() as u64 >= c.2
            }
        };
        if complete {
            let done = st.content.take();
            match done.as_ref().map(|d| &d.0) {
                Some(Method::BasicDeliver { delivery_tag, consumer_tag, .. }) => st.delivered(*delivery_tag, Some(consumer_tag)),
                Some(Method::BasicGetOk { delivery_tag, .. }) => st.delivered(*delivery_tag, None),
                _ => {}
            }
            done
        } else {
            None
        }
    };
    if let Some((m, p, _, b)) = done {
        deliver(inner, ch, m, p, b.freeze());
    }
    Ok(())
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl RawConnection for AmqpConnection {
    async fn open_channel(&self) -> Result<Arc<dyn RawChannel>> {
        let (id, closed) = loop {
            let id = self.inner.next_channel.fetch_add(1, Ordering::SeqCst);
            let id = if id == 0 || id > self.inner.channel_max.load(Ordering::Relaxed) {
                self.inner.next_channel.store(2, Ordering::SeqCst);
                1
            } else {
                id
            };
            let mut chans = lock(&self.inner.channels);
            let n = chans.iter().count();
            if !chans.contains_key(&id) {
                break (id, chans.get_or_insert_with(id, ChanState::default).closed.clone());
            }
            if n > usize::from(self.inner.channel_max.load(Ordering::Relaxed)) {
                return Err(Error::ChannelLimitExceeded { limit: usize::from(self.inner.channel_max.load(Ordering::Relaxed)) });
            }
        };
        // channel.open, then confirm.select with confirm_publish: one wait in a loop (one
        // state of the future rather than one per wait).
        let steps = if self.inner.confirm_publish.load(Ordering::Relaxed) { 2 } else { 1 };
        for step in 0..steps {
            let m = if step == 0 { Method::ChannelOpen } else { Method::ConfirmSelect { nowait: false } };
            match (step, self.inner.method(id, m).await?) {
                (0, Method::ChannelOpenOk) => {}
                (0, other) => return Err(unexpected("channel.open-ok", &other)),
                _ => {
                    if let Some(st) = lock(&self.inner.channels).get_mut(&id) {
                        st.confirm = Some(Confirms::default());
                    }
                }
            }
        }
        Ok(Arc::new(AmqpChannel { inner: self.inner.clone(), id, open: AtomicBool::new(true), closed }))
    }

    async fn next_event(&self, timeout: Option<Duration>) -> Result<ServerEvent> {
        self.events.next(timeout, &*self.inner.out).await
    }

    fn try_next_event(&self) -> Result<Option<ServerEvent>> {
        self.events.try_next()
    }

    fn is_open(&self) -> bool {
        self.inner.open.load(Ordering::SeqCst)
    }

    async fn close(&self) -> Result<()> {
        if self.inner.open.load(Ordering::SeqCst) {
            let close = Method::ConnectionClose { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 };
            let answer = self.inner.method(0, close);
            let timer = rt::sleep(Duration::from_secs(5));
            futures::pin_mut!(answer, timer);
            let _ = futures::future::select(answer, timer).await;
            self.inner.open.store(false, Ordering::SeqCst);
            self.inner.out.close();
        }
        Ok(())
    }
}

/// A channel of an [`AmqpConnection`].
pub struct AmqpChannel {
    inner: Arc<Inner>,
    id: u16,
    open: AtomicBool,
    /// Why the channel ended, once it has (set by the engine).
    closed: ClosedBy,
}

impl AmqpChannel {
    /// Why the channel can't be used: the error that ended it (the broker's reason for
    /// closing it, or the connection's end), else closed by us.
    fn gone(&self) -> Error {
        match &*lock(&self.closed) {
            Some(e) => e.clone(),
            None if !self.inner.open.load(Ordering::SeqCst) => closed(),
            None => Error::channel(ReplyCode::ChannelError, format!("CHANNEL_ERROR - channel {} is closed", self.id)),
        }
    }

    fn check(&self) -> Result<()> {
        if self.is_open() {
            Ok(())
        } else {
            Err(self.gone())
        }
    }

    /// Call `m` on the channel, for the methods whose answer only says it succeeded: the
    /// trait's methods return this future as it is, without a future of their own around it
    /// (each would add its states and drop code to the wasm module).
    fn unit(&self, m: Method) -> rt::BoxFuture<'_, Result<()>> {
        self.then(m, |_| Ok(()))
    }

    /// Call `m` and make the channel method's result of the answer with `f`: a combinator
    /// rather than a future of each trait method's own, as [`AmqpChannel::unit`].
    fn then<T: 'static>(&self, m: Method, f: fn(Method) -> Result<T>) -> rt::BoxFuture<'_, Result<T>> {
        Box::pin(self.ok(m).map(move |r| r.and_then(f)))
    }

    /// Call `m` on the channel. Boxed: the channel's methods each await it, and a future of
    /// their own holding this one inline would repeat its states and drop code in each (the
    /// wasm module's size).
    fn ok(&self, m: Method) -> rt::BoxFuture<'_, Result<Method>> {
        Box::pin(async move {
            self.check()?;
            // The request itself rather than Inner::method, whose future would nest in this one.
            let sent = self.inner.call(self.id, &m);
            drop(m);
            let answer = match sent {
                Ok(rx) => answer(rx.await).map(Reply::method),
                Err(e) => Err(e),
            };
            answer.map_err(|e| lock(&self.closed).clone().unwrap_or(e)).inspect_err(|e| {
                if matches!(e, Error::Channel { .. } | Error::Connection { .. }) {
                    self.open.store(false, Ordering::SeqCst);
                }
            })
        })
    }

    /// Send a settlement (ack, reject, nack) of `tag` (with `multiple`, of every tag up to
    /// it). Under the channel lock, so that the acks sent as `multiple` follow the wire order.
    fn settle(&self, tag: u64, multiple: bool, m: Method) -> Result<()> {
        // On a channel that is gone the broker forgot the delivery (it is redelivered), and
        // a settlement on a closed channel would be a connection error.
        self.check()?;
        let mut chans = lock(&self.inner.channels);
        let merge = chans.get_mut(&self.id).and_then(|st| st.unsettled.settle(tag, multiple));
        let mut out = BytesMut::new();
        if let (Some(hold), Method::BasicAck { .. }) = (merge, &m) {
            amqp::write_method(self.id, &Method::BasicAck { delivery_tag: tag, multiple: true }, &mut out)?;
            self.inner.out.send_ack(self.id, out.freeze(), hold).map_err(|_| closed())
        } else {
            amqp::write_method(self.id, &m, &mut out)?;
            self.inner.send(out)
        }
    }
}

/// A channel method written without `async` (it builds its request at once and returns a boxed
/// future of the answer), in the signature that `async_trait` gives the trait's `async fn`,
/// which such a method must spell out: `boxed!(fn name(&self, arg: &Type) -> Output { body })`.
macro_rules! boxed {
    (fn $name:ident(&$s:ident, $arg:ident: &$ty:ty) -> $out:ty $body:block) => {
        fn $name<'life0, 'life1, 'async_trait>(&'life0 $s, $arg: &'life1 $ty) -> rt::BoxFuture<'async_trait, $out>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            Self: 'async_trait,
        $body
    };
    (fn $name:ident(&$s:ident $(, $arg:ident: $ty:ty)?) -> $out:ty $body:block) => {
        fn $name<'life0, 'async_trait>(&'life0 $s $(, $arg: $ty)?) -> rt::BoxFuture<'async_trait, $out>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        $body
    };
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl RawChannel for AmqpChannel {
    fn channel_id(&self) -> u32 {
        u32::from(self.id)
    }
    fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst) && self.inner.open.load(Ordering::SeqCst) && lock(&self.closed).is_none()
    }
    boxed!(fn exchange_declare(&self, m: &ExchangeDeclare) -> Result<()> {
        self.unit(Method::ExchangeDeclare {
            exchange: m.exchange.clone(),
            kind: m.kind.to_string(),
            passive: m.passive,
            durable: m.durable,
            auto_delete: m.auto_delete,
            internal: m.internal,
            nowait: false,
            arguments: m.arguments.clone(),
        })
    });
    boxed!(fn exchange_delete(&self, m: &ExchangeDelete) -> Result<()> {
        self.unit(Method::ExchangeDelete { exchange: m.exchange.clone(), if_unused: m.if_unused, nowait: false })
    });
    boxed!(fn exchange_bind(&self, m: &ExchangeBind) -> Result<()> {
        self.unit(Method::ExchangeBind { destination: m.destination.clone(), source: m.source.clone(), routing_key: m.routing_key.clone(), nowait: false, arguments: m.arguments.clone() })
    });
    boxed!(fn exchange_unbind(&self, m: &ExchangeBind) -> Result<()> {
        self.unit(Method::ExchangeUnbind { destination: m.destination.clone(), source: m.source.clone(), routing_key: m.routing_key.clone(), nowait: false, arguments: m.arguments.clone() })
    });
    boxed!(fn queue_declare(&self, m: &QueueDeclare) -> Result<QueueDeclareOk> {
        let m = Method::QueueDeclare { queue: m.queue.clone(), passive: m.passive, durable: m.durable, exclusive: m.exclusive, auto_delete: m.auto_delete, nowait: false, arguments: m.arguments.clone() };
        self.then(m, |answer| match answer {
            Method::QueueDeclareOk { queue, message_count, consumer_count } => Ok(QueueDeclareOk { queue, message_count, consumer_count }),
            other => Err(unexpected("queue.declare-ok", &other)),
        })
    });
    boxed!(fn queue_bind(&self, m: &QueueBind) -> Result<()> {
        self.unit(Method::QueueBind { queue: m.queue.clone(), exchange: m.exchange.clone(), routing_key: m.routing_key.clone(), nowait: false, arguments: m.arguments.clone() })
    });
    boxed!(fn queue_unbind(&self, m: &QueueBind) -> Result<()> {
        self.unit(Method::QueueUnbind { queue: m.queue.clone(), exchange: m.exchange.clone(), routing_key: m.routing_key.clone(), arguments: m.arguments.clone() })
    });
    boxed!(fn queue_purge(&self, queue: &str) -> Result<u32> {
        self.then(Method::QueuePurge { queue: queue.into(), nowait: false }, |answer| match answer {
            Method::QueuePurgeOk { message_count } => Ok(message_count),
            other => Err(unexpected("queue.purge-ok", &other)),
        })
    });
    boxed!(fn queue_delete(&self, m: &QueueDelete) -> Result<u32> {
        self.then(Method::QueueDelete { queue: m.queue.clone(), if_unused: m.if_unused, if_empty: m.if_empty, nowait: false }, |answer| match answer {
            Method::QueueDeleteOk { message_count } => Ok(message_count),
            other => Err(unexpected("queue.delete-ok", &other)),
        })
    });
    async fn basic_publish(&self, m: &BasicPublish, content: Arc<Content>) -> Result<()> {
        self.check()?;
        let mut out = BytesMut::with_capacity(content.body.len() + 256);
        amqp::write_method(self.id, &Method::BasicPublish { exchange: m.exchange.clone(), routing_key: m.routing_key.clone(), mandatory: m.mandatory, immediate: m.immediate }, &mut out)?;
        amqp::write_content(self.id, &content.properties, &content.body, self.inner.frame_max.load(Ordering::Relaxed), &mut out)?;
        let wait = {
            let mut chans = lock(&self.inner.channels);
            // The broker closed the channel meanwhile: nothing may go out on it.
            let Some(st) = chans.get_mut(&self.id) else { return Err(self.gone()) };
            let wait = st.confirm.as_mut().map(Confirms::publish);
            // Sent under the lock so sequence numbers follow the wire order.
            self.inner.send(out)?;
            wait
        };
        match wait {
            // confirm_publish: the publish either is confirmed or raises, never silently lost.
            Some(rx) => rx.await.unwrap_or_else(|_| Err(closed())),
            None => Ok(()),
        }
    }
    async fn basic_get(&self, queue: &str, no_ack: bool) -> Result<Option<GetOk>> {
        self.check()?;
        if let Some(st) = lock(&self.inner.channels).get_mut(&self.id) {
            st.gets.push_back(no_ack);
        }
        let reply = match self.inner.call(self.id, &Method::BasicGet { queue: queue.into(), no_ack }) {
            Ok(rx) => answer(rx.await),
            Err(e) => Err(e),
        };
        match reply.map_err(|e| lock(&self.closed).clone().unwrap_or(e))? {
            Reply::Get(Method::BasicGetOk { delivery_tag, redelivered, exchange, routing_key, message_count }, properties, body) => Ok(Some(GetOk {
                delivery: Delivery { delivery_tag, redelivered, exchange: exchange.into(), routing_key: routing_key.into(), content: Arc::new(Content { properties: *properties, body }), extra: None },
                message_count,
            })),
            _ => Ok(None),
        }
    }
    boxed!(fn basic_consume(&self, m: &BasicConsume) -> Result<String> {
        if m.no_ack {
            // Known before the first delivery: the broker may send it right after consume-ok.
            if let Some(st) = lock(&self.inner.channels).get_mut(&self.id) {
                if m.consumer_tag.is_empty() {
                    // The broker names it: its deliveries cannot be told apart.
                    st.unsettled.stop();
                } else {
                    st.no_ack_consumers.push(m.consumer_tag.clone());
                }
            }
        }
        let m = Method::BasicConsume { queue: m.queue.clone(), consumer_tag: m.consumer_tag.clone(), no_local: m.no_local, no_ack: m.no_ack, exclusive: m.exclusive, nowait: false, arguments: m.arguments.clone() };
        self.then(m, |answer| match answer {
            Method::BasicConsumeOk { consumer_tag } => Ok(consumer_tag),
            other => Err(unexpected("basic.consume-ok", &other)),
        })
    });
    boxed!(fn basic_cancel(&self, consumer_tag: &str) -> Result<()> {
        self.unit(Method::BasicCancel { consumer_tag: consumer_tag.into(), nowait: false })
    });
    fn basic_ack(&self, delivery_tag: u64, multiple: bool) -> Result<()> {
        self.settle(delivery_tag, multiple, Method::BasicAck { delivery_tag, multiple })
    }
    fn basic_reject(&self, delivery_tag: u64, requeue: bool) -> Result<()> {
        self.settle(delivery_tag, false, Method::BasicReject { delivery_tag, requeue })
    }
    fn basic_nack(&self, delivery_tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        self.settle(delivery_tag, multiple, Method::BasicNack { delivery_tag, multiple, requeue })
    }
    boxed!(fn basic_recover(&self, requeue: bool) -> Result<()> {
        // Every unacknowledged delivery goes back (or is sent again with a new tag).
        if let Some(st) = lock(&self.inner.channels).get_mut(&self.id) {
            st.unsettled.clear();
        }
        self.unit(Method::BasicRecover { requeue })
    });
    boxed!(fn basic_qos(&self, qos: BasicQos) -> Result<()> {
        Box::pin(self.ok(Method::BasicQos { prefetch_size: qos.prefetch_size, prefetch_count: qos.prefetch_count, global: qos.global }).map(move |answer| {
            answer?;
            if let Some(st) = lock(&self.inner.channels).get_mut(&self.id) {
                st.unsettled.set_prefetch(qos.prefetch_count);
            }
            Ok(())
        }))
    });
    boxed!(fn flow(&self, active: bool) -> Result<bool> {
        let wanted = active;
        Box::pin(self.ok(Method::ChannelFlow { active }).map(move |answer| Ok(if let Method::ChannelFlowOk { active } = answer? { active } else { wanted })))
    });
    boxed!(fn confirm_select(&self) -> Result<()> {
        self.unit(Method::ConfirmSelect { nowait: false })
    });
    async fn close(&self) -> Result<()> {
        if self.open.swap(false, Ordering::SeqCst) && self.inner.open.load(Ordering::SeqCst) {
            let _ = self.inner.method(self.id, Method::ChannelClose { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 }).await;
            lock(&self.inner.channels).remove(&self.id);
        }
        Ok(())
    }
}
