//! One client connection of the gateway protocol (`kombu-gateway.v1`,
//! `docs/gateway-protocol.md`) as a state machine without a socket.
//!
//! The server's driver (`super::serve_client`) hands it what the client's WebSocket gave
//! ([`Session::handle_input`]), lets it run the frames received on the broker
//! ([`Session::handle_frame`]: `hello` and authentication, then requests), and sends the frames
//! and the close it produces ([`Session::poll_transmit`]). Deliveries and the broker's other
//! events come from the [`Pump`] it hands over once `hello` is answered
//! ([`Session::poll_pump`]), which the driver runs beside the requests. [`Session::close`] tears
//! the connection down, once: the broker connection closes and its unacknowledged deliveries
//! return to their queues.
//!
//! The session reaches the broker through the core's transport traits (so it is async where
//! they are), not through a socket: its unit tests below run on the embedded memory broker.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kombu::proto::gateway::{self, MessageHeader, Request, Scope, ServerFrame, SUBPROTOCOL};
use kombu::proto::methods::{BasicQos, Content, ServerEvent};
use kombu::transport::{ConnectInfo, RawChannel, RawConnection, Transport};
use kombu::{Error, Value};
use serde_json::json;

use super::Metrics;
use crate::auth::{Admitted, Auth};
use crate::writer::Out;
use crate::{lock, ClientError};

/// What the sessions of one server share.
pub(crate) struct Settings {
    /// The broker behind the gateway (the virtual host is the client's, from `hello`).
    pub(crate) info: ConnectInfo,
    /// Its transport.
    pub(crate) transport: Arc<dyn Transport>,
    /// Identities and permissions (`None`: no authentication).
    pub(crate) auth: Option<Arc<Auth>>,
    /// Largest frame accepted, as told in `hello`'s answer.
    pub(crate) max_frame: usize,
    /// Channels per connection.
    pub(crate) max_channels: usize,
    /// Consumers per channel.
    pub(crate) max_consumers: usize,
    /// Unacknowledged deliveries per channel (0: no limit), see `super::Config::max_unacked`.
    pub(crate) max_unacked: u16,
}

/// What the client's socket gave.
#[derive(Debug)]
pub(crate) enum Input {
    /// A binary message: a frame, or a batch of frames once `hello` is answered.
    Binary(Bytes),
    /// A text message, which is not part of the protocol: the connection closes with 1003.
    Text,
    /// The client closed the socket, or it ended.
    Closed,
    /// The socket failed.
    Failed(String),
    /// A message over the size limit: the connection closes with 1009 and this reason.
    TooBig(String),
    /// The server is shutting down: the connection closes with 1001.
    Shutdown,
    /// A timeout or limit of the driver's (no hello in time, idle, a ping flood): the
    /// connection closes with this code and reason.
    Limit(u16, String),
}

/// What the session gives the client's socket ([`Session::poll_transmit`]).
#[derive(Debug)]
pub(crate) enum Transmit {
    /// Send it now.
    Now(Out),
    /// An error answer: send it once the broker's events already received have been sent (the
    /// driver takes them with [`Pump::try_next`] first). The confirms of the publishes that preceded a failing
    /// request on a channel then reach the client before the error that closes the channel,
    /// as AMQP orders them (basic.ack before channel.close), so that the client does not fail
    /// publishes the broker has.
    AfterEvents(Out),
}

/// One client connection. See the module documentation.
#[must_use = "a session ends with `close`, which returns its unacknowledged deliveries to the broker"]
pub(crate) struct Session {
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    state: State,
    /// Frames received and not run yet.
    frames: VecDeque<Bytes>,
    /// What goes to the client's socket, in order.
    transmits: VecDeque<Transmit>,
    /// The broker's events, until the driver takes them.
    pump: Option<Pump>,
    /// How the connection ended, once it has.
    end: Option<Result<(), ClientError>>,
    /// The heartbeat interval agreed at `hello` (the client's; `None`: no heartbeats).
    heartbeat: Option<Duration>,
}

enum State {
    /// The first frame must be `hello`.
    Hello,
    /// `hello` was answered: the broker connection is open.
    Open(Open),
}

/// What an open connection has on the broker.
struct Open {
    backend: Arc<dyn RawConnection>,
    /// The client's identity, holding one of its connection slots (with authentication).
    admitted: Option<Admitted>,
    channels: HashMap<u32, Arc<dyn RawChannel>>,
    /// Consumers per channel.
    consumers: HashMap<u32, usize>,
    auto_ack: Arc<AutoAck>,
    /// Channels in confirm mode on a backend whose publishes are answered by its store before
    /// `basic_publish` returns (Redis) and that sends no confirms: the gateway confirms each
    /// publish itself, so that `confirm.select` means the same on every backend. The value is
    /// the last sequence number confirmed.
    confirmed_here: HashMap<u32, u64>,
}

/// What a request answers besides errors.
enum Answer {
    /// `ok` with this result.
    Result(Value),
    /// `basic.get`'s message.
    Get(Box<GetFrame>, Bytes),
    /// A publish on a channel the gateway confirms itself: `confirm` with this sequence number.
    Confirm(u32, u64),
}

struct GetFrame {
    channel: u32,
    message_count: u32,
    message: MessageHeader,
}

impl Session {
    /// A connection waiting for `hello`.
    pub(crate) fn new(settings: Arc<Settings>, metrics: Arc<Metrics>) -> Session {
        Session { settings, metrics, state: State::Hello, frames: VecDeque::new(), transmits: VecDeque::new(), pump: None, end: None, heartbeat: None }
    }

    /// Take what the client's socket gave: frames wait for [`Session::handle_frame`]; a
    /// malformed batch, a text message, the socket's end or the server's shutdown end the
    /// connection.
    pub(crate) fn handle_input(&mut self, input: Input) {
        if self.end.is_some() {
            return;
        }
        match input {
            // Before `hello` is answered the client may not batch: the message is the frame.
            Input::Binary(message) if matches!(self.state, State::Hello) => self.frames.push_back(message),
            Input::Binary(message) => match gateway::split_batch(&message) {
                Ok(frames) => self.frames.extend(frames),
                Err(e) => {
                    tracing::warn!("malformed batch: {e}");
                    self.protocol_error(1002, &e.to_string(), ClientError::Malformed(e));
                }
            },
            Input::Text => self.protocol_error(1003, "text frames are not part of kombu-gateway.v1; send binary frames", ClientError::TextMessage),
            Input::Closed => self.finish(Ok(())),
            Input::Failed(e) => self.finish(Err(ClientError::Socket(e))),
            Input::TooBig(reason) => self.protocol_error(1009, &reason, ClientError::TooBig(reason.clone())),
            Input::Shutdown => {
                self.transmits.push_back(Transmit::Now(Out::close(1001, "kombu-gateway is shutting down")));
                self.finish(Ok(()));
            }
            Input::Limit(code, reason) => {
                self.transmits.push_back(Transmit::Now(Out::close(code, &reason)));
                self.finish(Err(ClientError::Limit(reason)));
            }
        }
    }

    /// Run the next frame received — `hello`, then requests, on the broker — leaving its answer
    /// to [`Session::poll_transmit`]. False when there was none to run (or the connection has
    /// ended).
    pub(crate) async fn handle_frame(&mut self) -> bool {
        if self.end.is_some() {
            return false;
        }
        let Some(frame) = self.frames.pop_front() else { return false };
        let (header, body) = match gateway::decode_client(&frame) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("malformed frame: {e}");
                self.protocol_error(1002, &e.to_string(), ClientError::Malformed(e));
                return true;
            }
        };
        match (&self.state, header.request) {
            (State::Hello, Request::Hello { vhost, token, heartbeat, .. }) => self.hello(header.id, vhost, token, heartbeat).await,
            // The client is alive: nothing to answer (the driver heard it).
            (State::Open(_), Request::Heartbeat) => {}
            (State::Hello, _) => self.protocol_error(1008, "the first frame must be hello", ClientError::NoHello),
            (State::Open(_), request) => self.request(header.id, request, body).await,
        }
        true
    }

    /// The heartbeat interval agreed at `hello`: the driver sends a `heartbeat` frame when it
    /// has sent nothing for half of it.
    pub(crate) fn heartbeat(&self) -> Option<Duration> {
        self.heartbeat
    }

    /// The next frame or close for the client's socket.
    #[must_use]
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The broker's events for the client, once `hello` is answered (given once).
    #[must_use]
    pub(crate) fn poll_pump(&mut self) -> Option<Pump> {
        self.pump.take()
    }

    /// True once the connection has ended: the driver sends what is left to transmit, stops
    /// reading and calls [`Session::close`].
    pub(crate) fn is_ended(&self) -> bool {
        self.end.is_some()
    }

    /// Tear the connection down: the broker connection closes (its unacknowledged deliveries
    /// return to their queues) and the gauges drop what it had open. Returns how it ended.
    pub(crate) async fn close(self) -> Result<(), ClientError> {
        if let State::Open(open) = self.state {
            self.metrics.channels.fetch_sub(open.channels.len() as u64, Ordering::Relaxed);
            self.metrics.consumers.fetch_sub(open.consumers.values().sum::<usize>() as u64, Ordering::Relaxed);
            let _ = open.backend.close().await;
        }
        self.end.unwrap_or(Ok(()))
    }

    fn finish(&mut self, end: Result<(), ClientError>) {
        self.frames.clear();
        self.end = Some(end);
    }

    /// A frame that breaks the protocol: the socket closes with `code` and `reason`.
    fn protocol_error(&mut self, code: u16, reason: &str, error: ClientError) {
        self.metrics.protocol_errors.fetch_add(1, Ordering::Relaxed);
        self.transmits.push_back(Transmit::Now(Out::close(code, reason)));
        self.finish(Err(error));
    }

    fn send(&mut self, frame: &ServerFrame, body: &[u8]) {
        self.transmits.push_back(Transmit::Now(Out::Frame(gateway::encode(frame, body))));
    }

    /// `hello`: admit the client's token on its virtual host, open its broker connection. The
    /// `heartbeat` the client asks for is agreed as it is, and said in the answer (a client
    /// that gets none back sends no heartbeat frames).
    async fn hello(&mut self, id: u64, vhost: Option<String>, token: Option<String>, heartbeat: Option<u16>) {
        let mut info = self.settings.info.clone();
        if let Some(v) = vhost {
            info.virtual_host = v;
        }
        let admitted = match &self.settings.auth {
            None => None,
            Some(auth) => match auth.admit(token.as_deref(), &info.virtual_host) {
                Ok(a) => Some(a),
                Err((code, mut text)) => {
                    if token.is_none() {
                        // Where it goes: hello's `token` (the WebSocket URL's query is not read).
                        text.push_str(": send it in hello's \"token\" field (Kombu's clients take it from the URL's ?token=... or its password)");
                    }
                    self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(code, %text, "refused at hello");
                    let name = if code == 429 { "LimitExceeded" } else { "AccessRefused" };
                    self.send(&ServerFrame::Error { id: Some(id), channel: None, scope: Scope::Connection, code, name: name.into(), text: text.clone() }, b"");
                    self.transmits.push_back(Transmit::Now(Out::close(1008, &text)));
                    self.finish(Err(ClientError::Refused { code, text }));
                    return;
                }
            },
        };
        match self.settings.transport.driver_name() {
            "redis" => crate::redis::scope_to_vhost(&mut info, &self.settings.info),
            "sqs" => crate::sqs::scope_to_vhost(&mut info, &self.settings.info),
            _ => {}
        }
        let backend = match self.settings.transport.establish_connection(&info).await {
            Ok(b) => b,
            Err(e) => {
                self.send(&ServerFrame::error(Some(id), None, &e), b"");
                self.transmits.push_back(Transmit::Now(Out::close(1011, &e.to_string())));
                self.finish(Err(ClientError::Broker(e)));
                return;
            }
        };
        let mut hello = json!({"server": format!("kombu-gateway {}", env!("CARGO_PKG_VERSION")), "protocol": SUBPROTOCOL, "max_frame": self.settings.max_frame, "batch": true});
        if let Some(secs) = heartbeat.filter(|&s| s > 0) {
            hello["heartbeat"] = json!(secs);
            self.heartbeat = Some(Duration::from_secs(secs.into()));
        }
        self.send(&ServerFrame::Ok { id, result: hello }, b"");
        let auto_ack = Arc::new(AutoAck::default());
        self.pump = Some(Pump { backend: backend.clone(), auto_ack: auto_ack.clone(), metrics: self.metrics.clone(), closed: false });
        self.state = State::Open(Open { backend, admitted, channels: HashMap::new(), consumers: HashMap::new(), auto_ack, confirmed_here: HashMap::new() });
    }

    /// A request after `hello`: its permission, then the broker; its answer (none for acks and
    /// publishes that succeed) or its error, which closes its channel when it is a channel's.
    async fn request(&mut self, id: u64, request: Request, body: Bytes) {
        let Session { settings, metrics, state, transmits, .. } = self;
        let State::Open(open) = state else { return };
        let started = Instant::now();
        let is_close = matches!(request, Request::Close);
        let channel = request.channel();
        let answer = match open.admitted.as_ref().map(|a| a.authorize(&request)) {
            Some(Err(e)) => Err(e),
            _ => open.run(settings, metrics, request, body).await,
        };
        metrics.observe(started);
        let transmit = match answer {
            Ok(None) => return,
            Ok(Some(Answer::Result(result))) => Transmit::Now(Out::Frame(gateway::encode(&ServerFrame::Ok { id, result }, b""))),
            Ok(Some(Answer::Get(get, body))) => {
                let frame = ServerFrame::GetOk { id, channel: get.channel, message_count: get.message_count, message: get.message };
                Transmit::Now(Out::Frame(gateway::encode(&frame, &body)))
            }
            Ok(Some(Answer::Confirm(channel, delivery_tag))) => {
                Transmit::Now(Out::Frame(gateway::encode(&ServerFrame::Confirm { channel, delivery_tag, multiple: false, ack: true }, b"")))
            }
            Err(e) => {
                metrics.errors.fetch_add(1, Ordering::Relaxed);
                if let (Some(c), Error::Channel { .. }) = (channel, &e) {
                    open.forget_channel(c, metrics);
                }
                // After the confirms (and other events) the broker sent before it failed.
                Transmit::AfterEvents(Out::Frame(gateway::encode(&ServerFrame::error(Some(id), channel, &e), b"")))
            }
        };
        transmits.push_back(transmit);
        if is_close {
            self.finish(Ok(()));
        }
    }
}

impl Open {
    /// Forget `channel` (closed by the client, or by an error): its consumers, and its
    /// deliveries acknowledged by the gateway. Returns it if it was open.
    fn forget_channel(&mut self, channel: u32, metrics: &Metrics) -> Option<Arc<dyn RawChannel>> {
        self.auto_ack.forget_channel(channel);
        self.confirmed_here.remove(&channel);
        metrics.consumers.fetch_sub(self.consumers.remove(&channel).unwrap_or(0) as u64, Ordering::Relaxed);
        let ch = self.channels.remove(&channel);
        if ch.is_some() {
            metrics.channels.fetch_sub(1, Ordering::Relaxed);
        }
        ch
    }

    fn channel(&self, id: u32) -> Result<Arc<dyn RawChannel>, Error> {
        self.channels.get(&id).cloned().ok_or_else(|| Error::channel(kombu::ReplyCode::ChannelError, format!("CHANNEL_ERROR - channel {id} is not open")))
    }

    /// Run one request on the broker: its answer (`None`: none, as for acks).
    async fn run(&mut self, limits: &Settings, metrics: &Metrics, request: Request, body: Bytes) -> Result<Option<Answer>, Error> {
        let unit = |r: Result<(), Error>| r.map(|_| Some(Answer::Result(Value::Null)));
        match &request {
            // Answered as a protocol misuse (400 ValueError), as the protocol specifies.
            Request::Hello { .. } => return Err(Error::Value("hello was already received".into())),
            Request::Close => return Ok(Some(Answer::Result(Value::Null))),
            Request::ChannelOpen => return self.open_channel(limits, metrics).await,
            Request::ChannelClose { channel } => {
                return unit(match self.forget_channel(*channel, metrics) {
                    Some(ch) => ch.close().await,
                    None => Ok(()),
                })
            }
            _ => {}
        }
        let channel = request.channel().expect("every other request names its channel");
        let ch = self.channel(channel)?;
        match request {
            Request::ExchangeDeclare { method, .. } => unit(ch.exchange_declare(&method).await),
            Request::ExchangeDelete { method, .. } => unit(ch.exchange_delete(&method).await),
            Request::ExchangeBind { method, .. } => unit(ch.exchange_bind(&method).await),
            Request::ExchangeUnbind { method, .. } => unit(ch.exchange_unbind(&method).await),
            Request::QueueDeclare { method, .. } => ch.queue_declare(&method).await.map(|ok| Some(Answer::Result(serde_json::to_value(ok).unwrap_or(Value::Null)))),
            Request::QueueBind { method, .. } => unit(ch.queue_bind(&method).await),
            Request::QueueUnbind { method, .. } => unit(ch.queue_unbind(&method).await),
            Request::QueuePurge { queue, .. } => ch.queue_purge(&queue).await.map(|n| Some(Answer::Result(json!({ "message_count": n })))),
            Request::QueueDelete { method, .. } => ch.queue_delete(&method).await.map(|n| Some(Answer::Result(json!({ "message_count": n })))),
            Request::BasicPublish { method, properties, .. } => {
                metrics.published.fetch_add(1, Ordering::Relaxed);
                metrics.published_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                // Like AMQP's basic.publish: no answer unless it fails (or a confirm). A broker
                // socket whose queue this fills makes the publish wait for it to drain (the
                // client is not read meanwhile); so does the embedded broker's store
                // (--data-dir) behind.
                crate::writer::paced(ch.basic_publish(&method, Arc::new(Content { properties, body }))).await?;
                crate::store::room().await;
                Ok(self.confirmed_here.get_mut(&channel).map(|n| {
                    *n += 1;
                    Answer::Confirm(channel, *n)
                }))
            }
            Request::BasicGet { queue, no_ack, .. } => match ch.basic_get(&queue, no_ack).await? {
                None => Ok(Some(Answer::Result(json!({ "empty": true })))),
                Some(g) => {
                    metrics.delivered.fetch_add(1, Ordering::Relaxed);
                    let d = &g.delivery;
                    let m = message_header(d.delivery_tag, d.redelivered, &d.exchange, &d.routing_key, &d.content);
                    Ok(Some(Answer::Get(Box::new(GetFrame { channel, message_count: g.message_count, message: m }), d.content.body.clone())))
                }
            },
            Request::BasicConsume { .. } if self.consumers.get(&channel).copied().unwrap_or(0) >= limits.max_consumers => {
                Err(Error::LimitExceeded(format!("channel {channel} already has its maximum of {} consumers", limits.max_consumers)))
            }
            Request::BasicConsume { mut method, .. } => {
                let auto = method.no_ack && limits.max_unacked > 0;
                if auto {
                    // Registered before the consume so that no delivery can miss it.
                    if method.consumer_tag.is_empty() {
                        method.consumer_tag = format!("amq.ctag-gateway-{}", self.auto_ack.next_tag.fetch_add(1, Ordering::Relaxed) + 1);
                    }
                    method.no_ack = false;
                    lock(&self.auto_ack.consumers).insert((channel, method.consumer_tag.clone()), ch.clone());
                }
                match ch.basic_consume(&method).await {
                    Ok(tag) => {
                        metrics.consumers.fetch_add(1, Ordering::Relaxed);
                        *self.consumers.entry(channel).or_default() += 1;
                        Ok(Some(Answer::Result(json!({ "consumer_tag": tag }))))
                    }
                    Err(e) => {
                        if auto {
                            lock(&self.auto_ack.consumers).remove(&(channel, method.consumer_tag));
                        }
                        Err(e)
                    }
                }
            }
            Request::BasicCancel { consumer_tag, .. } => {
                let r = ch.basic_cancel(&consumer_tag).await;
                lock(&self.auto_ack.consumers).remove(&(channel, consumer_tag));
                if r.is_ok() {
                    metrics.consumers.fetch_sub(1, Ordering::Relaxed);
                    if let Some(n) = self.consumers.get_mut(&channel) {
                        *n = n.saturating_sub(1);
                    }
                }
                unit(r)
            }
            Request::BasicAck { delivery_tag, multiple, .. } => {
                metrics.acked.fetch_add(1, Ordering::Relaxed);
                ch.basic_ack(delivery_tag, multiple).map(|_| None)
            }
            Request::BasicReject { delivery_tag, requeue, .. } => {
                metrics.rejected.fetch_add(1, Ordering::Relaxed);
                ch.basic_reject(delivery_tag, requeue).map(|_| None)
            }
            Request::BasicNack { delivery_tag, multiple, requeue, .. } => {
                metrics.rejected.fetch_add(1, Ordering::Relaxed);
                ch.basic_nack(delivery_tag, multiple, requeue).map(|_| None)
            }
            Request::BasicRecover { requeue, .. } => unit(ch.basic_recover(requeue).await),
            Request::BasicQos { mut qos, .. } => {
                // The channel-wide window never exceeds the gateway's unacked limit.
                if qos.global && limits.max_unacked > 0 && (qos.prefetch_count == 0 || qos.prefetch_count > limits.max_unacked) {
                    qos.prefetch_count = limits.max_unacked;
                }
                unit(ch.basic_qos(qos).await)
            }
            Request::Flow { active, .. } => ch.flow(active).await.map(|a| Some(Answer::Result(json!({ "active": a })))),
            Request::ConfirmSelect { .. } => {
                ch.confirm_select().await?;
                if limits.transport.driver_name() == "redis" {
                    self.confirmed_here.entry(channel).or_insert(0);
                }
                Ok(Some(Answer::Result(Value::Null)))
            }
            Request::Hello { .. } | Request::Close | Request::ChannelOpen | Request::ChannelClose { .. } | Request::Heartbeat => unreachable!("answered above"),
        }
    }

    /// `channel.open`: a broker channel, with the gateway's unacked window as its prefetch.
    async fn open_channel(&mut self, limits: &Settings, metrics: &Metrics) -> Result<Option<Answer>, Error> {
        if self.channels.len() >= limits.max_channels {
            return Err(Error::ChannelLimitExceeded { limit: limits.max_channels });
        }
        let ch = self.backend.open_channel().await?;
        if limits.max_unacked > 0 {
            let window = BasicQos { prefetch_size: 0, prefetch_count: limits.max_unacked, global: true };
            if let Err(e) = ch.basic_qos(window).await {
                let _ = ch.close().await;
                return Err(e);
            }
        }
        let id = ch.channel_id();
        self.channels.insert(id, ch);
        metrics.channels.fetch_add(1, Ordering::Relaxed);
        Ok(Some(Answer::Result(json!({ "channel": id }))))
    }
}

/// The consumers a client asked for with `no_ack`: the gateway consumes them with
/// acknowledgements (so the broker paces them by the prefetch window) and acknowledges each
/// delivery itself once the client's socket writer has taken it ([`OnSent::sent`]).
#[derive(Default)]
struct AutoAck {
    consumers: std::sync::Mutex<HashMap<(u32, String), Arc<dyn RawChannel>>>,
    next_tag: AtomicU64,
}

impl AutoAck {
    fn channel_for(&self, channel: u32, consumer_tag: &str) -> Option<Arc<dyn RawChannel>> {
        let map = lock(&self.consumers);
        if map.is_empty() {
            return None;
        }
        map.get(&(channel, consumer_tag.to_owned())).cloned()
    }

    fn forget_channel(&self, channel: u32) {
        lock(&self.consumers).retain(|(c, _), _| *c != channel);
    }
}

/// The broker connection's events as frames for the client: deliveries, returns, publisher
/// confirms, cancellations, flow, and closed channels and connection. Given by
/// [`Session::poll_pump`]; the driver runs it in a task of its own, so that deliveries flow
/// while a request waits for the broker.
pub(crate) struct Pump {
    backend: Arc<dyn RawConnection>,
    auto_ack: Arc<AutoAck>,
    metrics: Arc<Metrics>,
    /// The connection closed: nothing follows.
    closed: bool,
}

/// What follows handing a pumped frame to the client's socket.
#[must_use = "a delivery to a no_ack consumer is acknowledged upstream once sent: call `sent`"]
pub(crate) struct OnSent(Option<(Arc<dyn RawChannel>, u64)>);

impl OnSent {
    /// The frame is in the socket's queue: acknowledge it upstream if the client's consumer
    /// has `no_ack`.
    pub(crate) fn sent(self) {
        if let Some((ch, tag)) = self.0 {
            let _ = ch.basic_ack(tag, false);
        }
    }
}

impl Pump {
    /// The next event as the frame for the client; `None` once the broker connection is gone
    /// (after the frame saying so).
    pub(crate) async fn next(&mut self) -> Option<(Bytes, OnSent)> {
        if self.closed {
            return None;
        }
        let ev = self.backend.next_event(None).await.ok()?;
        Some(self.message(ev))
    }

    /// The next event the broker connection has already received, without waiting (`None`
    /// when there is none, or once the connection is gone). Cancel-safe, as [`Pump::next`] is:
    /// an event is taken only when it is returned.
    pub(crate) fn try_next(&mut self) -> Option<(Bytes, OnSent)> {
        if self.closed {
            return None;
        }
        let ev = self.backend.try_next_event().ok()??;
        Some(self.message(ev))
    }

    fn message(&mut self, ev: ServerEvent) -> (Bytes, OnSent) {
        self.closed = matches!(ev, ServerEvent::ConnectionClosed { .. });
        // A delivery to a consumer the client asked for with no_ack: acknowledged upstream
        // once the client's socket writer has it.
        let auto = match &ev {
            ServerEvent::Deliver { channel, consumer_tag, delivery } => self.auto_ack.channel_for(*channel, consumer_tag).map(|ch| (ch, delivery.delivery_tag)),
            _ => None,
        };
        (event_message(ev, &self.metrics), OnSent(auto))
    }
}

fn message_header(delivery_tag: u64, redelivered: bool, exchange: &str, routing_key: &str, content: &Content) -> MessageHeader {
    MessageHeader {
        delivery_tag,
        redelivered,
        exchange: exchange.to_owned(),
        routing_key: routing_key.to_owned(),
        properties: content.properties.clone(),
    }
}

/// The frame that carries `ev` to the client.
fn event_message(ev: ServerEvent, metrics: &Metrics) -> Bytes {
    let (frame, body) = match ev {
        ServerEvent::Deliver { channel, consumer_tag, delivery } => {
            metrics.delivered.fetch_add(1, Ordering::Relaxed);
            // One per message: written from the delivery as it is, without building the frame.
            return gateway::encode_deliver(channel, &consumer_tag, &delivery);
        }
        ServerEvent::Return { channel, returned } => {
            let m = message_header(0, false, &returned.exchange, &returned.routing_key, &returned.content);
            (ServerFrame::Return { channel, reply_code: returned.reply_code, reply_text: returned.reply_text, message: m }, returned.content.body.clone())
        }
        ServerEvent::Cancel { channel, consumer_tag } => (ServerFrame::Cancel { channel, consumer_tag: consumer_tag.to_string() }, Bytes::new()),
        ServerEvent::ChannelClosed { channel, error } => (ServerFrame::error(None, Some(channel), &error), Bytes::new()),
        ServerEvent::ConnectionClosed { error } => (ServerFrame::error(None, None, &error), Bytes::new()),
        ServerEvent::Ack { channel, delivery_tag, multiple } => (ServerFrame::Confirm { channel, delivery_tag, multiple, ack: true }, Bytes::new()),
        ServerEvent::Nack { channel, delivery_tag, multiple } => (ServerFrame::Confirm { channel, delivery_tag, multiple, ack: false }, Bytes::new()),
        ServerEvent::Flow { channel, active } => (ServerFrame::Flow { channel, active }, Bytes::new()),
        ServerEvent::Blocked { reason } => (ServerFrame::Blocked { reason }, Bytes::new()),
        ServerEvent::Unblocked => (ServerFrame::Unblocked, Bytes::new()),
    };
    gateway::encode(&frame, &body)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kombu::proto::gateway::ClientHeader;
    use kombu::proto::methods::{BasicConsume, BasicPublish, QueueDeclare};
    use kombu::ReplyCode;

    use super::*;

    fn settings(auth: Option<Arc<Auth>>, max_unacked: u16) -> Arc<Settings> {
        Arc::new(Settings {
            info: kombu::Connection::new("memory://").unwrap().info(),
            transport: kombu::transport::registry::lookup("memory").unwrap(),
            auth,
            max_frame: 1 << 20,
            max_channels: 4,
            max_consumers: 4,
            max_unacked,
        })
    }

    /// What the session transmitted, read as the client reads it.
    #[derive(Debug, PartialEq)]
    #[allow(clippy::large_enum_variant)] // a test's frames
    enum Got {
        Frame(ServerFrame, Bytes),
        Close(u16, String),
    }

    /// A session on the memory broker, in a virtual host of its own, and the client's side of
    /// it: frames in, what the session transmits out.
    struct Client {
        session: Session,
        vhost: String,
        next_id: u64,
    }

    impl Client {
        fn new(settings: Arc<Settings>) -> Client {
            Self::in_vhost(settings, format!("/session-{}", kombu::uuid()))
        }

        fn in_vhost(settings: Arc<Settings>, vhost: String) -> Client {
            Client { session: Session::new(settings, Arc::new(Metrics::default())), vhost, next_id: 0 }
        }

        /// Feed `input` and run the frames it carried: what the session transmitted.
        async fn feed(&mut self, input: Input) -> Vec<Got> {
            self.session.handle_input(input);
            while self.session.handle_frame().await {}
            let mut got = Vec::new();
            while let Some(Transmit::Now(out) | Transmit::AfterEvents(out)) = self.session.poll_transmit() {
                got.push(match out {
                    Out::Frame(f) => {
                        let (frame, body) = gateway::decode_server(&f).unwrap();
                        Got::Frame(frame, body)
                    }
                    Out::Close(Some((code, reason))) => Got::Close(code, reason),
                    other => panic!("unexpected {other:?}"),
                });
            }
            got
        }

        /// Send `request` (with `body`): what the session transmitted.
        async fn send(&mut self, request: Request, body: &[u8]) -> Vec<Got> {
            self.next_id += 1;
            let frame = gateway::encode(&ClientHeader { id: self.next_id, request }, body);
            self.feed(Input::Binary(frame)).await
        }

        /// Send `request`: its `ok` result.
        async fn ok(&mut self, request: Request) -> Value {
            match &self.send(request, b"").await[..] {
                [Got::Frame(ServerFrame::Ok { id, result }, _)] if *id == self.next_id => result.clone(),
                other => panic!("expected ok, got {other:?}"),
            }
        }

        async fn hello(&mut self, token: Option<&str>) -> Vec<Got> {
            let vhost = Some(self.vhost.clone());
            self.send(Request::Hello { vhost, token: token.map(str::to_owned), client: None, heartbeat: None }, b"").await
        }

        /// hello, then a channel with `queue` declared on it.
        async fn open(&mut self, queue: &str) -> u32 {
            assert!(matches!(&self.hello(None).await[..], [Got::Frame(ServerFrame::Ok { .. }, _)]));
            let channel = self.ok(Request::ChannelOpen).await["channel"].as_u64().unwrap() as u32;
            self.ok(Request::QueueDeclare { channel, method: QueueDeclare { queue: queue.into(), ..Default::default() } }).await;
            channel
        }

        async fn publish(&mut self, channel: u32, queue: &str, body: &[u8]) {
            let method = BasicPublish { routing_key: queue.into(), ..Default::default() };
            assert_eq!(self.send(Request::BasicPublish { channel, method, properties: Default::default() }, body).await, [], "a publish has no answer");
        }

        /// Messages ready in `queue` (a passive declare).
        async fn ready(&mut self, channel: u32, queue: &str) -> u64 {
            self.ok(Request::QueueDeclare { channel, method: QueueDeclare { queue: queue.into(), passive: true, ..Default::default() } }).await["message_count"].as_u64().unwrap()
        }
    }

    /// The next frame of the broker's events (the pump), with what follows its sending.
    async fn pumped(pump: &mut Pump) -> (ServerFrame, Bytes, OnSent) {
        let (frame, on_sent) = tokio::time::timeout(Duration::from_secs(5), pump.next()).await.expect("an event").expect("the connection is open");
        let (frame, body) = gateway::decode_server(&frame).unwrap();
        (frame, body, on_sent)
    }

    #[tokio::test]
    async fn hello_opens_the_broker_connection_and_answers_with_the_protocol() {
        let mut c = Client::new(settings(None, 1000));
        let got = c.hello(None).await;
        let [Got::Frame(ServerFrame::Ok { id: 1, result }, _)] = &got[..] else { panic!("{got:?}") };
        assert_eq!((result["protocol"].as_str(), result["batch"].as_bool(), result["max_frame"].as_u64()), (Some(SUBPROTOCOL), Some(true), Some(1 << 20)));
        assert!(c.session.poll_pump().is_some() && c.session.poll_pump().is_none(), "the pump is handed over once");
        // A second hello is a request error (400 ValueError); the connection stays.
        let got = c.hello(None).await;
        let [Got::Frame(ServerFrame::Error { id: Some(2), scope: Scope::Request, code: 400, name, .. }, _)] = &got[..] else { panic!("{got:?}") };
        assert_eq!(name, "ValueError");
        assert!(!c.session.is_ended());
        // Batches are read once hello is answered.
        let (three, four) = (ClientHeader { id: 3, request: Request::ChannelOpen }, ClientHeader { id: 4, request: Request::ChannelOpen });
        let got = c.feed(Input::Binary(gateway::encode_batch(&[gateway::encode(&three, b""), gateway::encode(&four, b"")]))).await;
        assert!(matches!(&got[..], [Got::Frame(ServerFrame::Ok { id: 3, .. }, _), Got::Frame(ServerFrame::Ok { id: 4, .. }, _)]), "{got:?}");
        // close: answered, then the connection ends.
        assert_eq!(c.ok(Request::Close).await, Value::Null);
        assert!(c.session.is_ended());
        c.session.close().await.unwrap();
    }

    #[tokio::test]
    async fn the_first_frame_must_be_hello_and_bad_input_closes_with_its_code() {
        let mut c = Client::new(settings(None, 1000));
        assert_eq!(c.send(Request::ChannelOpen, b"").await, [Got::Close(1008, "the first frame must be hello".into())]);
        assert!(c.session.poll_pump().is_none());
        assert!(matches!(c.session.close().await, Err(ClientError::NoHello)));

        let mut c = Client::new(settings(None, 1000));
        assert_eq!(c.feed(Input::Text).await, [Got::Close(1003, "text frames are not part of kombu-gateway.v1; send binary frames".into())]);
        assert!(matches!(c.session.close().await, Err(ClientError::TextMessage)));

        let mut c = Client::new(settings(None, 1000));
        c.hello(None).await;
        let got = c.feed(Input::Binary(Bytes::from_static(b"\x00\x00\x00\x05{not json"))).await;
        assert!(matches!(&got[..], [Got::Close(1002, _)]), "{got:?}");
        // Nothing runs after the connection ended.
        assert_eq!(c.send(Request::ChannelOpen, b"").await, []);
        assert!(matches!(c.session.close().await, Err(ClientError::Malformed(_))));

        let mut c = Client::new(settings(None, 1000));
        c.hello(None).await;
        assert_eq!(c.feed(Input::Shutdown).await, [Got::Close(1001, "kombu-gateway is shutting down".into())]);
        c.session.close().await.unwrap();

        // The driver's timeouts and limits close with their code and reason.
        let mut c = Client::new(settings(None, 1000));
        assert_eq!(c.feed(Input::Limit(1008, "no hello within 10 s".into())).await, [Got::Close(1008, "no hello within 10 s".into())]);
        assert_eq!(c.send(Request::ChannelOpen, b"").await, [], "nothing runs after it");
        assert!(matches!(c.session.close().await, Err(ClientError::Limit(r)) if r == "no hello within 10 s"));
    }

    #[tokio::test]
    async fn a_refused_token_is_answered_then_the_socket_closes() {
        let auth = Auth::parse("[[identity]]\nname = 'web'\ntoken = 'web-token-123'\nvhosts = ['/web']\nconfigure = 'web\\..*'\n").unwrap();
        let s = settings(Some(Arc::new(auth)), 1000);
        let mut c = Client::in_vhost(s.clone(), "/web".into());
        let got = c.hello(Some("wrong-token")).await;
        let [Got::Frame(ServerFrame::Error { id: Some(1), scope: Scope::Connection, code: 401, name, text, .. }, _), Got::Close(1008, reason)] = &got[..] else { panic!("{got:?}") };
        assert_eq!((name.as_str(), text.as_str(), reason.as_str()), ("AccessRefused", "unknown token", "unknown token"));
        assert!(c.session.poll_pump().is_none(), "no broker connection for a refused client");
        assert!(matches!(c.session.close().await, Err(ClientError::Refused { code: 401, .. })));
        // The right token, another virtual host: 403.
        let mut c = Client::in_vhost(s.clone(), "/admin".into());
        let got = c.hello(Some("web-token-123")).await;
        assert!(matches!(&got[..], [Got::Frame(ServerFrame::Error { code: 403, .. }, _), Got::Close(1008, _)]), "{got:?}");
        // Admitted: requests are checked against the identity's permissions.
        let mut c = Client::in_vhost(s, "/web".into());
        assert!(matches!(&c.hello(Some("web-token-123")).await[..], [Got::Frame(ServerFrame::Ok { .. }, _)]));
        let ch = c.ok(Request::ChannelOpen).await["channel"].as_u64().unwrap() as u32;
        c.ok(Request::QueueDeclare { channel: ch, method: QueueDeclare { queue: "web.jobs".into(), ..Default::default() } }).await;
        let got = c.send(Request::QueueDeclare { channel: ch, method: QueueDeclare { queue: "admin.jobs".into(), ..Default::default() } }, b"").await;
        let [Got::Frame(ServerFrame::Error { scope: Scope::Channel, name, text, .. }, _)] = &got[..] else { panic!("{got:?}") };
        assert_eq!(name, "AccessRefused");
        assert!(text.contains("configure access to queue 'admin.jobs'"), "{text}");
        c.session.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_request_gets_its_answer() {
        let mut c = Client::new(settings(None, 1000));
        let ch = c.open("jobs").await;
        assert_eq!(c.ok(Request::BasicGet { channel: ch, queue: "jobs".into(), no_ack: true }).await, json!({"empty": true}));
        c.publish(ch, "jobs", b"first").await;
        c.publish(ch, "jobs", b"second").await;
        let got = c.send(Request::BasicGet { channel: ch, queue: "jobs".into(), no_ack: true }, b"").await;
        let [Got::Frame(ServerFrame::GetOk { id, channel, message_count: 1, message }, body)] = &got[..] else { panic!("{got:?}") };
        assert_eq!((*id, *channel, message.routing_key.as_str(), &body[..]), (c.next_id, ch, "jobs", &b"first"[..]));
        assert_eq!(c.ok(Request::QueuePurge { channel: ch, queue: "jobs".into() }).await, json!({"message_count": 1}));
        c.session.close().await.unwrap();
    }

    #[tokio::test]
    async fn deliveries_wait_for_credit() {
        // A window of two unacked deliveries per channel.
        let mut c = Client::new(settings(None, 2));
        let ch = c.open("work").await;
        let mut pump = c.session.poll_pump().unwrap();
        for body in [b"one", b"two", b"six"] {
            c.publish(ch, "work", body).await;
        }
        let tag = c.ok(Request::BasicConsume { channel: ch, method: BasicConsume { queue: "work".into(), ..Default::default() } }).await["consumer_tag"].as_str().unwrap().to_owned();
        let mut tags = Vec::new();
        for expected in [&b"one"[..], b"two"] {
            let (frame, body, on_sent) = pumped(&mut pump).await;
            on_sent.sent();
            let ServerFrame::Deliver { channel, consumer_tag, message } = frame else { panic!("{frame:?}") };
            assert_eq!((channel, consumer_tag.as_str(), &body[..]), (ch, tag.as_str(), expected));
            tags.push(message.delivery_tag);
        }
        assert_eq!(c.ready(ch, "work").await, 1, "the third waits for credit");
        assert_eq!(c.send(Request::BasicAck { channel: ch, delivery_tag: tags[0], multiple: false }, b"").await, [], "an ack has no answer");
        let (frame, body, on_sent) = pumped(&mut pump).await;
        on_sent.sent();
        assert!(matches!(frame, ServerFrame::Deliver { .. }) && &body[..] == b"six", "{frame:?}");
        assert_eq!(c.ready(ch, "work").await, 0);
        c.session.close().await.unwrap();
    }

    #[tokio::test]
    async fn no_ack_deliveries_are_acknowledged_upstream_once_sent() {
        // A window of one: the second delivery comes only after the first was sent.
        let mut c = Client::new(settings(None, 1));
        let ch = c.open("fire").await;
        let mut pump = c.session.poll_pump().unwrap();
        c.publish(ch, "fire", b"a").await;
        c.publish(ch, "fire", b"b").await;
        c.ok(Request::BasicConsume { channel: ch, method: BasicConsume { queue: "fire".into(), no_ack: true, ..Default::default() } }).await;
        let (_, body, on_sent) = pumped(&mut pump).await;
        assert_eq!(&body[..], b"a");
        assert_eq!(c.ready(ch, "fire").await, 1, "the window is taken until the delivery is sent");
        on_sent.sent();
        let (_, body, on_sent) = pumped(&mut pump).await;
        on_sent.sent();
        assert_eq!(&body[..], b"b");
        c.session.close().await.unwrap();
    }

    #[tokio::test]
    async fn an_error_answer_follows_the_confirms_already_received() {
        let mut c = Client::new(settings(None, 0));
        let queue = format!("q-{}", kombu::uuid());
        let channel = c.open(&queue).await;
        c.ok(Request::ConfirmSelect { channel }).await;
        c.publish(channel, &queue, b"kept").await;
        c.next_id += 1;
        let method = BasicPublish { exchange: format!("missing-{}", kombu::uuid()), ..Default::default() };
        let failing = ClientHeader { id: c.next_id, request: Request::BasicPublish { channel, method, properties: Default::default() } };
        c.session.handle_input(Input::Binary(gateway::encode(&failing, b"lost")));
        while c.session.handle_frame().await {}
        // The 404 waits for the pump: the confirm of the first publish is already there.
        let Some(Transmit::AfterEvents(Out::Frame(f))) = c.session.poll_transmit() else { panic!("the error answer waits for the events") };
        assert!(matches!(gateway::decode_server(&f).unwrap().0, ServerFrame::Error { code: 404, .. }));
        let mut pump = c.session.poll_pump().unwrap();
        let (frame, on_sent) = pump.try_next().expect("the confirm, without waiting");
        on_sent.sent();
        assert!(matches!(gateway::decode_server(&frame).unwrap().0, ServerFrame::Confirm { delivery_tag: 1, ack: true, .. }));
    }

    #[tokio::test]
    async fn a_channel_error_closes_that_channel_only() {
        let mut c = Client::new(settings(None, 1000));
        let ch = c.open("kept").await;
        let metrics = c.session.metrics.clone();
        assert_eq!(metrics.channels.load(Ordering::Relaxed), 1);
        let got = c.send(Request::QueueDeclare { channel: ch, method: QueueDeclare { queue: "missing".into(), passive: true, ..Default::default() } }, b"").await;
        let [Got::Frame(ServerFrame::Error { channel: Some(c1), scope: Scope::Channel, code, name, .. }, _)] = &got[..] else { panic!("{got:?}") };
        assert_eq!((*c1, *code, name.as_str()), (ch, ReplyCode::NotFound.code(), "NotFound"));
        assert_eq!(metrics.channels.load(Ordering::Relaxed), 0);
        // The channel is gone; a request on it says so, and the gauge stays at zero.
        let got = c.send(Request::BasicGet { channel: ch, queue: "kept".into(), no_ack: true }, b"").await;
        let [Got::Frame(ServerFrame::Error { code, text, .. }, _)] = &got[..] else { panic!("{got:?}") };
        assert_eq!(*code, ReplyCode::ChannelError.code());
        assert!(text.contains("is not open"), "{text}");
        assert_eq!(metrics.channels.load(Ordering::Relaxed), 0);
        // The connection and its other channels go on.
        let other = c.ok(Request::ChannelOpen).await["channel"].as_u64().unwrap() as u32;
        assert_eq!(c.ready(other, "kept").await, 0);
        c.session.close().await.unwrap();
    }

    #[tokio::test]
    async fn teardown_returns_unacked_deliveries() {
        let s = settings(None, 1000);
        let mut c = Client::new(s.clone());
        let ch = c.open("held").await;
        let mut pump = c.session.poll_pump().unwrap();
        c.publish(ch, "held", b"in flight").await;
        c.ok(Request::BasicConsume { channel: ch, method: BasicConsume { queue: "held".into(), ..Default::default() } }).await;
        let (frame, _, on_sent) = pumped(&mut pump).await;
        on_sent.sent();
        assert!(matches!(frame, ServerFrame::Deliver { .. }), "{frame:?}");
        let metrics = c.session.metrics.clone();
        let vhost = c.vhost.clone();
        c.session.close().await.unwrap();
        assert_eq!((metrics.channels.load(Ordering::Relaxed), metrics.consumers.load(Ordering::Relaxed)), (0, 0));
        // Never acked: back in the queue, redelivered.
        let mut again = Client::in_vhost(s, vhost);
        let ch = again.open("held").await;
        assert_eq!(again.ready(ch, "held").await, 1);
        let got = again.send(Request::BasicGet { channel: ch, queue: "held".into(), no_ack: true }, b"").await;
        let [Got::Frame(ServerFrame::GetOk { message, .. }, body)] = &got[..] else { panic!("{got:?}") };
        assert!(message.redelivered);
        assert_eq!(&body[..], b"in flight");
        again.session.close().await.unwrap();
    }
}
