//! The client side of the gateway protocol as a transport, independent of the socket: request
//! ids and their answers, pushed frames turned into [`ServerEvent`]s, and the
//! [`RawConnection`]/[`RawChannel`] methods. A carrier (tokio-tungstenite natively in
//! `kombu-gateway`, the browser's WebSocket in wasm) only moves frames: it sends the bytes it
//! is given ([`Carrier`]) and feeds what it receives to [`GatewayClient::on_frame`] and, when
//! the socket ends, [`GatewayClient::on_close`].

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::channel::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::namemap::SortedMap;
use crate::proto::gateway::{self, ClientHeader, MessageHeader, Request, Scope, ServerFrame};
use super::carrier::{Carrier, ClosedBy, Confirms, EventQueue, Unsettled};
use crate::rt::Duration;
use crate::proto::methods::{
    BasicConsume, BasicPublish, BasicQos, Content, Delivery, ExchangeBind, ExchangeDeclare, ExchangeDelete, GetOk, QueueBind,
    QueueDeclare, QueueDeclareOk, QueueDelete, Returned, ServerEvent,
};
use crate::transport::{RawChannel, RawConnection};
use crate::value::Value;


type Answer = Result<(ServerFrame, Bytes)>;

/// The protocol state of one gateway connection.
pub struct GatewayClient {
    carrier: Box<dyn Carrier>,
    next_id: AtomicU64,
    /// Requests waiting for their answer; true for a `basic.get` with acks (its message is
    /// then one the channel must settle).
    pending: Mutex<SortedMap<u64, (oneshot::Sender<Answer>, bool)>>,
    /// Per channel, the deliveries waiting for our ack.
    unsettled: Mutex<SortedMap<u32, Unsettled>>,
    /// The open channels: why each ends (shared with its handle) and its publisher confirms.
    channels: Mutex<SortedMap<u32, (ClosedBy, Option<Confirms>)>>,
    /// Channels open in confirm mode, their publishes waiting for the broker's confirms
    /// (the `confirm_publish` transport option, given to [`GatewayClient::hello`]).
    confirm_publish: AtomicBool,
    open: AtomicBool,
    /// The heartbeat interval agreed at `hello` (seconds; 0: none).
    heartbeat: AtomicU16,
    events_tx: mpsc::UnboundedSender<ServerEvent>,
    events: EventQueue,
}

fn lost(reason: &str) -> Error {
    Error::RecoverableConnection(format!("gateway connection lost: {reason}"))
}

fn message(m: MessageHeader, body: Bytes) -> Delivery {
    Delivery {
        delivery_tag: m.delivery_tag,
        redelivered: m.redelivered,
        exchange: m.exchange.into(),
        routing_key: m.routing_key.into(),
        content: Arc::new(Content { properties: m.properties, body }),
        extra: None,
    }
}

impl GatewayClient {
    /// Protocol state over `carrier`.
    pub fn new(carrier: Box<dyn Carrier>) -> Arc<Self> {
        let (events_tx, events_rx) = mpsc::unbounded();
        Arc::new(GatewayClient {
            carrier,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(SortedMap::new()),
            unsettled: Mutex::new(SortedMap::new()),
            channels: Mutex::new(SortedMap::new()),
            confirm_publish: AtomicBool::new(false),
            open: AtomicBool::new(true),
            heartbeat: AtomicU16::new(0),
            events_tx,
            events: EventQueue::new(events_rx, "the gateway connection is closed"),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, SortedMap<u64, (oneshot::Sender<Answer>, bool)>> {
        crate::rt::lock(&self.pending)
    }

    fn unsettled(&self) -> std::sync::MutexGuard<'_, SortedMap<u32, Unsettled>> {
        crate::rt::lock(&self.unsettled)
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, SortedMap<u32, (ClosedBy, Option<Confirms>)>> {
        crate::rt::lock(&self.channels)
    }

    /// The broker (or the gateway) closed `channel` with `error`: its deliveries are gone, its
    /// publishes waiting for a confirm fail, and so does every later operation of its
    /// handle, with `error`. The application learns it from the `ChannelClosed` event too.
    fn channel_closed(&self, channel: u32, error: Error) {
        self.unsettled().remove(&channel);
        if let Some((closed, confirms)) = self.channels().remove(&channel) {
            crate::rt::lock(&closed).get_or_insert_with(|| error.clone());
            if let Some(c) = confirms {
                c.fail(&error);
            }
        }
        let _ = self.events_tx.unbounded_send(ServerEvent::ChannelClosed { channel, error });
    }

    /// Send request `id`; `ack`: an ack the carrier may merge, its channel and hold
    /// ([`Carrier::send_ack`]).
    fn send(&self, id: u64, request: Request, body: &[u8], ack: Option<(u16, u32)>) -> Result<()> {
        if !self.open.load(Ordering::SeqCst) {
            return Err(Error::RecoverableConnection("the gateway connection is closed".into()));
        }
        let frame = gateway::encode(&ClientHeader { id, request }, body);
        match ack {
            Some((ch, hold)) => self.carrier.send_ack(ch, frame, hold),
            None => self.carrier.send(frame),
        }
    }

    /// Send a request and wait for its answer.
    pub async fn request(&self, request: Request, body: &[u8]) -> Answer {
        self.request_tracked(request, body, false).await
    }

    /// [`GatewayClient::request`]; `ack_get`: a `basic.get` with acks, whose message the
    /// channel tracks until it is settled.
    async fn request_tracked(&self, request: Request, body: &[u8], ack_get: bool) -> Answer {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        self.pending().insert(id, (tx, ack_get));
        if let Err(e) = self.send(id, request, body, None) {
            self.pending().remove(&id);
            return Err(e);
        }
        self.carrier.flush();
        rx.await.unwrap_or_else(|_| Err(Error::RecoverableConnection("the gateway connection closed before answering".into())))
    }

    /// Send a request that is answered only when it fails (publishes and acks).
    pub fn send_oneway(&self, request: Request) -> Result<()> {
        self.send_oneway_with_body(request, b"")
    }

    /// [`GatewayClient::send_oneway`] with a body.
    pub fn send_oneway_with_body(&self, request: Request, body: &[u8]) -> Result<()> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.send(id, request, body, None)
    }

    /// Send the settlement `request` (ack, reject, nack) of `tag` on `channel` (with
    /// `multiple`, of every tag up to it). An ack of the oldest delivery the channel waits for
    /// goes out with `multiple`, for the carrier to merge with the ack before it; under the
    /// lock, so that such acks follow the order of the channel's settlements.
    fn settle(&self, channel: u32, tag: u64, multiple: bool, request: Request) -> Result<()> {
        let mut unsettled = self.unsettled();
        let merge = unsettled.get_mut(&channel).and_then(|u| u.settle(tag, multiple));
        match (merge, &request, u16::try_from(channel)) {
            (Some(hold), Request::BasicAck { .. }, Ok(ch)) => {
                let id = self.next_id.fetch_add(1, Ordering::SeqCst);
                self.send(id, Request::BasicAck { channel, delivery_tag: tag, multiple: true }, b"", Some((ch, hold)))
            }
            _ => self.send_oneway(request),
        }
    }

    async fn result(&self, request: Request) -> Result<Value> {
        match self.request(request, b"").await? {
            (ServerFrame::Ok { result, .. }, _) => Ok(result),
            (other, _) => Err(Error::Decode(format!("unexpected answer from the gateway: a {:?} frame", other.kind()))),
        }
    }

    /// Say hello (the first request) with the virtual host, token and heartbeat interval of
    /// `info` ([`hello_params`]); its `confirm_publish` option puts every channel in confirm
    /// mode. The heartbeat agreed is then [`GatewayClient::heartbeat_interval`].
    pub async fn hello(&self, info: &crate::transport::ConnectInfo) -> Result<()> {
        let (vhost, token, heartbeat) = hello_params(info);
        self.confirm_publish.store(info.flag("confirm_publish"), Ordering::Relaxed);
        let ask = (heartbeat > 0).then_some(heartbeat);
        let r = self.result(Request::Hello { vhost: Some(vhost), token, client: Some(format!("kombu-wasm {}", env!("CARGO_PKG_VERSION"))), heartbeat: ask }).await?;
        // A gateway without heartbeats does not answer with one: then none (its silence is
        // no sign of death, and it would refuse our heartbeat frames).
        let agreed = r.get("heartbeat").and_then(Value::as_u64).map_or(0, |h| h.min(u64::from(heartbeat)) as u16);
        self.heartbeat.store(agreed, Ordering::Relaxed);
        if r.get("batch").and_then(Value::as_bool) == Some(true) {
            let max_frame = r.get("max_frame").and_then(Value::as_u64).map_or(gateway::BATCH_BYTES, |m| m as usize);
            self.carrier.allow_batches(max_frame.min(gateway::BATCH_BYTES));
        }
        Ok(())
    }

    /// The heartbeat interval agreed at `hello` (seconds; 0: none). The carrier sends
    /// [`GatewayClient::heartbeat`] every half interval, and gives the connection up
    /// ([`GatewayClient::on_close`]) when nothing arrived for two intervals.
    pub fn heartbeat_interval(&self) -> u16 {
        self.heartbeat.load(Ordering::Relaxed)
    }

    /// Send a heartbeat frame (no answer).
    pub fn heartbeat(&self) -> Result<()> {
        self.send_oneway(Request::Heartbeat)?;
        self.carrier.flush();
        Ok(())
    }

    /// A WebSocket message arrived: one frame or a batch. A malformed frame is an error: the carrier should close the socket
    /// and call [`GatewayClient::on_close`].
    pub fn on_frame(&self, bytes: &Bytes) -> Result<()> {
        if bytes.starts_with(&gateway::BATCH_MARKER) {
            for frame in gateway::split_batch(bytes)? {
                self.on_one_frame(&frame)?;
            }
            return Ok(());
        }
        self.on_one_frame(bytes)
    }

    fn on_one_frame(&self, bytes: &Bytes) -> Result<()> {
        let (frame, body) = gateway::decode_server(bytes)?;
        let answer_id = match &frame {
            ServerFrame::Ok { id, .. } | ServerFrame::GetOk { id, .. } | ServerFrame::Error { id: Some(id), .. } => Some(*id),
            _ => None,
        };
        if let Some(id) = answer_id {
            let waiting = self.pending().remove(&id);
            if let (Some((_, true)), ServerFrame::GetOk { channel, message, .. }) = (&waiting, &frame) {
                // Recorded here, in the order frames arrive, before any later delivery is acked.
                self.unsettled().get_or_insert_with(*channel, Unsettled::default).delivered(message.delivery_tag);
            }
            let answer = match frame {
                ServerFrame::Error { scope, code, name, text, channel, .. } => {
                    let e = gateway::error_from_frame(scope, code, &name, &text);
                    if let (Scope::Channel, Some(c)) = (scope, channel) {
                        self.channel_closed(c, e.clone());
                    }
                    Err(e)
                }
                f => Ok((f, body)),
            };
            if let Some((tx, _)) = waiting {
                let _ = tx.send(answer);
            }
            return Ok(());
        }
        let ev = match frame {
            ServerFrame::Deliver { channel, consumer_tag, message: m } => {
                self.unsettled().get_or_insert_with(channel, Unsettled::default).delivered(m.delivery_tag);
                ServerEvent::Deliver { channel, consumer_tag: consumer_tag.into(), delivery: message(m, body) }
            }
            ServerFrame::Return { channel, reply_code, reply_text, message: m } => {
                let d = message(m, body);
                ServerEvent::Return { channel, returned: Returned { reply_code, reply_text, exchange: d.exchange, routing_key: d.routing_key, content: d.content } }
            }
            ServerFrame::Cancel { channel, consumer_tag } => ServerEvent::Cancel { channel, consumer_tag: consumer_tag.into() },
            ServerFrame::Confirm { channel, delivery_tag, multiple, ack } => {
                // A channel in confirm_publish mode settles its publishes; else an event.
                if let Some((_, Some(confirms))) = self.channels().get_mut(&channel) {
                    confirms.settle(delivery_tag, multiple, ack);
                    return Ok(());
                }
                if ack {
                    ServerEvent::Ack { channel, delivery_tag, multiple }
                } else {
                    ServerEvent::Nack { channel, delivery_tag, multiple }
                }
            }
            ServerFrame::Flow { channel, active } => ServerEvent::Flow { channel, active },
            ServerFrame::Blocked { reason } => ServerEvent::Blocked { reason },
            ServerFrame::Unblocked => ServerEvent::Unblocked,
            ServerFrame::Error { scope, code, name, text, channel, .. } => {
                let error = gateway::error_from_frame(scope, code, &name, &text);
                match (scope, channel) {
                    (Scope::Channel, Some(c)) => {
                        self.channel_closed(c, error);
                        return Ok(());
                    }
                    _ => ServerEvent::ConnectionClosed { error },
                }
            }
            ServerFrame::Ok { .. } | ServerFrame::GetOk { .. } | ServerFrame::Heartbeat => return Ok(()),
        };
        let _ = self.events_tx.unbounded_send(ev);
        Ok(())
    }

    /// The socket ended: pending requests fail, and the connection's last event says why.
    pub fn on_close(&self, reason: &str) {
        if !self.open.swap(false, Ordering::SeqCst) {
            return;
        }
        let error = lost(reason);
        self.unsettled().clear();
        for (_, (tx, _)) in std::mem::take(&mut *self.pending()) {
            let _ = tx.send(Err(error.clone()));
        }
        for (_, (closed, confirms)) in std::mem::take(&mut *self.channels()) {
            crate::rt::lock(&closed).get_or_insert_with(|| error.clone());
            if let Some(c) = confirms {
                c.fail(&error);
            }
        }
        let _ = self.events_tx.unbounded_send(ServerEvent::ConnectionClosed { error });
    }
}

/// A connection over a [`GatewayClient`].
pub struct GatewayConnection {
    client: Arc<GatewayClient>,
}

impl GatewayConnection {
    /// Wrap a client whose `hello` succeeded.
    pub fn new(client: Arc<GatewayClient>) -> Self {
        GatewayConnection { client }
    }
}

impl Drop for GatewayConnection {
    fn drop(&mut self) {
        if self.client.open.swap(false, Ordering::SeqCst) {
            self.client.carrier.close();
        }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl RawConnection for GatewayConnection {
    async fn open_channel(&self) -> Result<Arc<dyn RawChannel>> {
        let r = self.client.result(Request::ChannelOpen).await?;
        let id = r.get("channel").and_then(Value::as_u64).ok_or_else(|| Error::Decode(format!("channel.open answer without a channel: {}", crate::value::Json(&r))))? as u32;
        let closed = ClosedBy::default();
        self.client.channels().insert(id, (closed.clone(), None));
        let ch = GatewayChannel { client: self.client.clone(), id, open: AtomicBool::new(true), closed };
        if self.client.confirm_publish.load(Ordering::Relaxed) {
            ch.unit(Request::ConfirmSelect { channel: id }).await?;
            if let Some(st) = self.client.channels().get_mut(&id) {
                st.1 = Some(Confirms::default());
            }
        }
        Ok(Arc::new(ch))
    }

    async fn next_event(&self, timeout: Option<Duration>) -> Result<ServerEvent> {
        self.client.events.next(timeout, &*self.client.carrier).await
    }

    fn try_next_event(&self) -> Result<Option<ServerEvent>> {
        self.client.events.try_next()
    }

    fn is_open(&self) -> bool {
        self.client.open.load(Ordering::SeqCst)
    }

    async fn close(&self) -> Result<()> {
        if self.client.open.load(Ordering::SeqCst) {
            let _ = self.client.result(Request::Close).await;
            if self.client.open.swap(false, Ordering::SeqCst) {
                self.client.carrier.close();
            }
        }
        Ok(())
    }
}

/// A channel of a [`GatewayConnection`].
pub struct GatewayChannel {
    client: Arc<GatewayClient>,
    id: u32,
    open: AtomicBool,
    /// Why the channel ended, once it has (set by the client).
    closed: ClosedBy,
}

impl GatewayChannel {
    /// Why the channel can't be used: the error that ended it (the broker's reason for
    /// closing it, or the connection's end), else closed by us.
    fn gone(&self) -> Error {
        match &*crate::rt::lock(&self.closed) {
            Some(e) => e.clone(),
            None if !self.client.open.load(Ordering::SeqCst) => lost("the gateway connection is closed"),
            None => Error::channel(crate::ReplyCode::ChannelError, format!("CHANNEL_ERROR - channel {} is closed", self.id)),
        }
    }

    fn check(&self) -> Result<()> {
        if self.is_open() {
            Ok(())
        } else {
            Err(self.gone())
        }
    }

    /// Send `r` and wait for its result. Boxed: the channel's methods each await it, and a
    /// future of their own holding this one inline would repeat its states and drop code in
    /// each (the wasm module's size).
    fn value(&self, r: Request) -> crate::rt::BoxFuture<'_, Result<Value>> {
        Box::pin(async move {
            self.check()?;
            // A request sent before the close arrived is answered 504 by the gateway, which
            // forgot the channel: the close's reason says more.
            self.client.result(r).await.map_err(|e| crate::rt::lock(&self.closed).clone().unwrap_or(e)).inspect_err(|e| {
                if matches!(e, Error::Channel { .. } | Error::Connection { .. }) {
                    self.open.store(false, Ordering::SeqCst);
                }
            })
        })
    }

    async fn unit(&self, r: Request) -> Result<()> {
        self.value(r).await.map(|_| ())
    }

    fn count(v: &Value) -> u32 {
        v.get("message_count").and_then(Value::as_u64).unwrap_or(0) as u32
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl RawChannel for GatewayChannel {
    fn channel_id(&self) -> u32 {
        self.id
    }
    fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst) && self.client.open.load(Ordering::SeqCst) && crate::rt::lock(&self.closed).is_none()
    }
    async fn exchange_declare(&self, m: &ExchangeDeclare) -> Result<()> {
        self.unit(Request::ExchangeDeclare { channel: self.id, method: m.clone() }).await
    }
    async fn exchange_delete(&self, m: &ExchangeDelete) -> Result<()> {
        self.unit(Request::ExchangeDelete { channel: self.id, method: m.clone() }).await
    }
    async fn exchange_bind(&self, m: &ExchangeBind) -> Result<()> {
        self.unit(Request::ExchangeBind { channel: self.id, method: m.clone() }).await
    }
    async fn exchange_unbind(&self, m: &ExchangeBind) -> Result<()> {
        self.unit(Request::ExchangeUnbind { channel: self.id, method: m.clone() }).await
    }
    async fn queue_declare(&self, m: &QueueDeclare) -> Result<QueueDeclareOk> {
        let v = self.value(Request::QueueDeclare { channel: self.id, method: m.clone() }).await?;
        let count = |field: &str| v.get(field).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok());
        match (v.get("queue").and_then(Value::as_str), count("message_count"), count("consumer_count")) {
            (Some(queue), Some(message_count), Some(consumer_count)) => Ok(QueueDeclareOk { queue: queue.to_owned(), message_count, consumer_count }),
            _ => Err(Error::Decode(format!("bad queue.declare answer (not a queue name and two counts): {}", crate::value::Json(&v)))),
        }
    }
    async fn queue_bind(&self, m: &QueueBind) -> Result<()> {
        self.unit(Request::QueueBind { channel: self.id, method: m.clone() }).await
    }
    async fn queue_unbind(&self, m: &QueueBind) -> Result<()> {
        self.unit(Request::QueueUnbind { channel: self.id, method: m.clone() }).await
    }
    async fn queue_purge(&self, queue: &str) -> Result<u32> {
        Ok(Self::count(&self.value(Request::QueuePurge { channel: self.id, queue: queue.into() }).await?))
    }
    async fn queue_delete(&self, m: &QueueDelete) -> Result<u32> {
        Ok(Self::count(&self.value(Request::QueueDelete { channel: self.id, method: m.clone() }).await?))
    }
    async fn basic_publish(&self, m: &BasicPublish, content: Arc<Content>) -> Result<()> {
        // No answer unless it fails (as in AMQP): a failure closes the channel and arrives as
        // an error frame, so publishes are pipelined; on a channel in confirm mode the
        // publish waits for the broker's confirm (or the close that fails it).
        self.check()?;
        let request = Request::BasicPublish { channel: self.id, method: m.clone(), properties: content.properties.clone() };
        let wait = {
            // Numbered and sent under the lock, so that confirms match the wire order.
            let mut channels = self.client.channels();
            let Some((_, confirms)) = channels.get_mut(&self.id) else { return Err(self.gone()) };
            let wait = confirms.as_mut().map(Confirms::publish);
            self.client.send_oneway_with_body(request, &content.body)?;
            wait
        };
        match wait {
            Some(rx) => {
                self.client.carrier.flush();
                rx.await.unwrap_or_else(|_| Err(lost("closed before the broker confirmed the publish")))
            }
            None => Ok(()),
        }
    }
    async fn basic_get(&self, queue: &str, no_ack: bool) -> Result<Option<GetOk>> {
        self.check()?;
        match self.client.request_tracked(Request::BasicGet { channel: self.id, queue: queue.into(), no_ack }, b"", !no_ack).await.map_err(|e| crate::rt::lock(&self.closed).clone().unwrap_or(e))? {
            (ServerFrame::GetOk { message_count, message: m, .. }, body) => Ok(Some(GetOk { delivery: message(m, body), message_count })),
            _ => Ok(None),
        }
    }
    async fn basic_consume(&self, m: &BasicConsume) -> Result<String> {
        if m.no_ack {
            // The gateway may consume it with acks and settle each delivery itself: an ack of
            // ours with `multiple` could then cover one of those. Known before any delivery.
            self.client.unsettled().get_or_insert_with(self.id, Unsettled::default).stop();
        }
        let v = self.value(Request::BasicConsume { channel: self.id, method: m.clone() }).await?;
        v.get("consumer_tag").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| Error::Decode(format!("basic.consume answer without a tag: {}", crate::value::Json(&v))))
    }
    async fn basic_cancel(&self, consumer_tag: &str) -> Result<()> {
        self.unit(Request::BasicCancel { channel: self.id, consumer_tag: consumer_tag.into() }).await
    }
    fn basic_ack(&self, delivery_tag: u64, multiple: bool) -> Result<()> {
        // On a channel that is gone the broker forgot the delivery: it is redelivered.
        self.check()?;
        self.client.settle(self.id, delivery_tag, multiple, Request::BasicAck { channel: self.id, delivery_tag, multiple })
    }
    fn basic_reject(&self, delivery_tag: u64, requeue: bool) -> Result<()> {
        self.check()?;
        self.client.settle(self.id, delivery_tag, false, Request::BasicReject { channel: self.id, delivery_tag, requeue })
    }
    fn basic_nack(&self, delivery_tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        self.check()?;
        self.client.settle(self.id, delivery_tag, multiple, Request::BasicNack { channel: self.id, delivery_tag, multiple, requeue })
    }
    async fn basic_recover(&self, requeue: bool) -> Result<()> {
        // Every unacknowledged delivery goes back (or is sent again with a new tag).
        if let Some(u) = self.client.unsettled().get_mut(&self.id) {
            u.clear();
        }
        self.unit(Request::BasicRecover { channel: self.id, requeue }).await
    }
    async fn basic_qos(&self, qos: BasicQos) -> Result<()> {
        let count = qos.prefetch_count;
        self.unit(Request::BasicQos { channel: self.id, qos }).await?;
        self.client.unsettled().get_or_insert_with(self.id, Unsettled::default).set_prefetch(count);
        Ok(())
    }
    async fn flow(&self, active: bool) -> Result<bool> {
        let v = self.value(Request::Flow { channel: self.id, active }).await?;
        Ok(v.get("active").and_then(Value::as_bool).unwrap_or(active))
    }
    async fn confirm_select(&self) -> Result<()> {
        self.unit(Request::ConfirmSelect { channel: self.id }).await
    }
    async fn close(&self) -> Result<()> {
        if self.open.swap(false, Ordering::SeqCst) {
            self.client.channels().remove(&self.id);
            let _ = self.client.result(Request::ChannelClose { channel: self.id }).await;
            self.client.unsettled().remove(&self.id);
        }
        Ok(())
    }
}

/// The gateway endpoint URL for `info` (`ws://host:port/path`, `/gateway` by default).
pub fn endpoint(info: &crate::transport::ConnectInfo) -> String {
    let scheme = if info.transport.ends_with("wss") || info.ssl { "wss" } else { "ws" };
    let path = info.path.as_deref().filter(|p| !p.is_empty() && *p != "/").unwrap_or("/gateway");
    format!("{scheme}://{}:{}{path}", info.hostname, info.port.unwrap_or(8765))
}

/// The virtual host, token and heartbeat for `hello`: the `vhost` and `token` options (URL
/// query), the password as a fallback token; Kombu's `heartbeat` connection argument
/// (seconds, rounded; none by default, as for `amqp://`).
pub fn hello_params(info: &crate::transport::ConnectInfo) -> (String, Option<String>, u16) {
    let vhost = info.options.get("vhost").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| "/".into());
    let token = info.options.get("token").and_then(Value::as_str).map(str::to_owned).or_else(|| info.password.clone());
    (vhost, token, info.heartbeat.unwrap_or(0.0).round().clamp(0.0, f64::from(u16::MAX)) as u16)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use std::future::Future;
    use std::task::{Context, Poll};

    use super::*;
    use crate::properties::Properties;

    /// What the client sent: the request, and the channel when it went through `send_ack`
    /// (an ack the carrier may merge with the one before it).
    type Sent = Arc<Mutex<Vec<(Option<u16>, Request)>>>;

    /// The holds `send_ack` was given ([`Carrier::send_ack`]).
    type Holds = Arc<Mutex<Vec<u32>>>;

    /// A carrier that records frames (the client under test is sans-io: no socket needed).
    struct Recorder(Sent, Holds);

    impl Recorder {
        fn record(&self, merge: Option<u16>, frame: Bytes) -> Result<()> {
            let (header, _) = gateway::decode_client(&frame)?;
            self.0.lock().unwrap().push((merge, header.request));
            Ok(())
        }
    }

    impl Carrier for Recorder {
        fn send(&self, frame: Bytes) -> Result<()> {
            self.record(None, frame)
        }
        fn send_ack(&self, channel: u16, frame: Bytes, hold: u32) -> Result<()> {
            self.1.lock().unwrap().push(hold);
            self.record(Some(channel), frame)
        }
        fn close(&self) {}
    }

    fn client() -> (Arc<GatewayClient>, Sent) {
        let sent = Sent::default();
        (GatewayClient::new(Box::new(Recorder(sent.clone(), Holds::default()))), sent)
    }

    fn channel(client: &Arc<GatewayClient>, id: u32) -> GatewayChannel {
        let closed = ClosedBy::default();
        client.channels().insert(id, (closed.clone(), None));
        GatewayChannel { client: client.clone(), id, open: AtomicBool::new(true), closed }
    }

    fn header(delivery_tag: u64) -> MessageHeader {
        MessageHeader { delivery_tag, redelivered: false, exchange: "x".into(), routing_key: "k".into(), properties: Properties::default() }
    }

    fn deliver(client: &GatewayClient, channel: u32, consumer_tag: &str, tag: u64) {
        let frame = ServerFrame::Deliver { channel, consumer_tag: consumer_tag.into(), message: header(tag) };
        client.on_frame(&gateway::encode(&frame, b"{}")).unwrap();
    }

    /// Run a request to completion: its first poll sends it, then the gateway's `answer`
    /// (given the request id) arrives.
    fn answered<T>(client: &GatewayClient, request: impl Future<Output = T>, answer: impl FnOnce(u64) -> ServerFrame) -> T {
        let mut request = std::pin::pin!(request);
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        assert!(request.as_mut().poll(&mut cx).is_pending(), "answered before the gateway answered");
        let id = client.next_id.load(Ordering::SeqCst) - 1;
        client.on_frame(&gateway::encode(&answer(id), b"{}")).unwrap();
        match request.as_mut().poll(&mut cx) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the answer did not complete the request"),
        }
    }

    fn ack(delivery_tag: u64, multiple: bool) -> Request {
        Request::BasicAck { channel: 1, delivery_tag, multiple }
    }

    fn take(sent: &Sent) -> Vec<(Option<u16>, Request)> {
        std::mem::take(&mut *sent.lock().unwrap())
    }

    #[test]
    fn an_ack_of_the_oldest_delivery_goes_out_as_a_multiple_ack_the_carrier_may_merge() {
        let (client, sent) = client();
        let ch = channel(&client, 1);
        for tag in 1..=6 {
            deliver(&client, 1, "c", tag);
        }
        ch.basic_ack(1, false).unwrap();
        ch.basic_ack(3, false).unwrap(); // 2 is still waiting: 3 alone
        ch.basic_ack(2, false).unwrap(); // the oldest again: covers 1-2 (3 is settled)
        ch.basic_reject(4, true).unwrap(); // rejects are never merged
        ch.basic_nack(6, false, false).unwrap();
        ch.basic_ack(5, false).unwrap(); // the oldest left
        assert_eq!(
            take(&sent),
            vec![
                (Some(1), ack(1, true)),
                (None, ack(3, false)),
                (Some(1), ack(2, true)),
                (None, Request::BasicReject { channel: 1, delivery_tag: 4, requeue: true }),
                (None, Request::BasicNack { channel: 1, delivery_tag: 6, multiple: false, requeue: false }),
                (Some(1), ack(5, true)),
            ]
        );
        // A multiple ack from the application settles everything up to it.
        for tag in 7..=9 {
            deliver(&client, 1, "c", tag);
        }
        ch.basic_ack(8, true).unwrap();
        ch.basic_ack(9, false).unwrap();
        assert_eq!(take(&sent), vec![(None, ack(8, true)), (Some(1), ack(9, true))]);
    }

    #[test]
    fn a_carrier_may_hold_an_ack_back_for_half_the_prefetch_window() {
        let holds = Holds::default();
        let client = GatewayClient::new(Box::new(Recorder(Sent::default(), holds.clone())));
        let ch = channel(&client, 1);
        let qos = |count: u16| {
            let qos = BasicQos { prefetch_count: count, ..Default::default() };
            answered(&client, ch.basic_qos(qos), |id| ServerFrame::Ok { id, result: Value::Null }).unwrap();
        };
        let mut tag = 0;
        let mut ack_one = || {
            tag += 1;
            deliver(&client, 1, "c", tag);
            ch.basic_ack(tag, false).unwrap();
        };
        // No window: the broker does not wait for acks.
        ack_one();
        qos(100);
        ack_one();
        // A window of one: the broker waits for each ack, which may not wait.
        qos(1);
        ack_one();
        qos(3);
        ack_one();
        // basic.recover forgets the deliveries, not the window.
        answered(&client, ch.basic_recover(true), |id| ServerFrame::Ok { id, result: Value::Null }).unwrap();
        ack_one();
        assert_eq!(*holds.lock().unwrap(), [u32::MAX, 50, 0, 1, 1]);
    }

    #[test]
    fn a_basic_get_with_acks_is_tracked_in_the_order_frames_arrive() {
        let (client, sent) = client();
        let ch = channel(&client, 1);
        deliver(&client, 1, "c", 1);
        let got = answered(&client, ch.basic_get("q", false), |id| ServerFrame::GetOk { id, channel: 1, message_count: 0, message: header(2) });
        assert_eq!(got.unwrap().unwrap().delivery.delivery_tag, 2);
        deliver(&client, 1, "c", 3);
        ch.basic_ack(3, false).unwrap(); // 1 and 2 wait: 3 alone
        ch.basic_ack(1, false).unwrap();
        ch.basic_ack(2, false).unwrap();
        assert_eq!(take(&sent).into_iter().filter(|(_, r)| matches!(r, Request::BasicAck { .. })).collect::<Vec<_>>(), vec![(None, ack(3, false)), (Some(1), ack(1, true)), (Some(1), ack(2, true))]);
        // Without acks the broker settles it: not tracked.
        answered(&client, ch.basic_get("q", true), |id| ServerFrame::GetOk { id, channel: 1, message_count: 0, message: header(4) }).unwrap();
        deliver(&client, 1, "c", 5);
        ch.basic_ack(5, false).unwrap();
        assert_eq!(take(&sent).pop(), Some((Some(1), ack(5, true))));
    }

    #[test]
    fn a_consumer_without_acks_stops_merging_on_its_channel_only() {
        let (client, sent) = client();
        let ch = channel(&client, 1);
        let other = channel(&client, 2);
        deliver(&client, 1, "c", 1);
        // The gateway may consume it with acks and settle its deliveries itself.
        let consume = BasicConsume { queue: "q".into(), no_ack: true, ..Default::default() };
        let tag = answered(&client, ch.basic_consume(&consume), |id| ServerFrame::Ok { id, result: serde_json::json!({ "consumer_tag": "auto" }) });
        assert_eq!(tag.unwrap(), "auto");
        deliver(&client, 1, "auto", 2);
        deliver(&client, 1, "c", 3);
        ch.basic_ack(1, false).unwrap();
        ch.basic_ack(3, false).unwrap();
        deliver(&client, 2, "c", 1);
        other.basic_ack(1, false).unwrap();
        let acks: Vec<_> = take(&sent).into_iter().filter(|(_, r)| matches!(r, Request::BasicAck { .. })).collect();
        assert_eq!(acks, vec![(None, ack(1, false)), (None, ack(3, false)), (Some(2), Request::BasicAck { channel: 2, delivery_tag: 1, multiple: true })]);
    }

    fn poll<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(futures::task::noop_waker_ref()))
    }

    fn confirm(client: &GatewayClient, delivery_tag: u64, multiple: bool, ack: bool) {
        client.on_frame(&gateway::encode(&ServerFrame::Confirm { channel: 1, delivery_tag, multiple, ack }, b"")).unwrap();
    }

    #[test]
    fn in_confirm_mode_a_publish_resolves_on_its_ack_and_fails_on_a_nack_or_the_close() {
        let (client, sent) = client();
        let ch = channel(&client, 1);
        client.channels().get_mut(&1).unwrap().1 = Some(Confirms::default());
        let content = Arc::new(Content { properties: Properties::default(), body: Bytes::from_static(b"m") });
        let m = BasicPublish { exchange: "x".into(), ..Default::default() };
        let mut publishes: Vec<_> = (0..4).map(|_| Box::pin(ch.basic_publish(&m, content.clone()))).collect();
        for p in &mut publishes {
            assert!(poll(p.as_mut()).is_pending(), "sent, waiting for the broker");
        }
        assert_eq!(take(&sent).len(), 4);
        confirm(&client, 2, true, true);
        assert!(matches!(poll(publishes[0].as_mut()), Poll::Ready(Ok(()))));
        assert!(matches!(poll(publishes[1].as_mut()), Poll::Ready(Ok(()))));
        assert!(poll(publishes[2].as_mut()).is_pending());
        confirm(&client, 3, false, false);
        match poll(publishes[2].as_mut()) {
            Poll::Ready(Err(e)) => assert_eq!(e.name(), "MessageNacked", "{e}"),
            other => panic!("a nacked publish must fail: {:?}", other.map(|r| r.map_err(|e| e.to_string()))),
        }
        // The broker closes the channel: the publish still waiting fails with its reason...
        let closed = ServerFrame::Error { id: None, channel: Some(1), scope: Scope::Channel, code: 404, name: "NotFound".into(), text: "NOT_FOUND - no exchange 'x'".into() };
        client.on_frame(&gateway::encode(&closed, b"")).unwrap();
        match poll(publishes[3].as_mut()) {
            Poll::Ready(Err(e)) => assert_eq!((e.name(), e.to_string().contains("no exchange 'x'")), ("NotFound", true), "{e}"),
            other => panic!("a publish on a closed channel must fail: {:?}", other.map(|r| r.map_err(|e| e.to_string()))),
        }
        // ...and so does everything after it, without being sent.
        let again = std::pin::pin!(ch.basic_publish(&m, content.clone()));
        assert!(matches!(poll(again), Poll::Ready(Err(e)) if e.name() == "NotFound"));
        let qd = QueueDeclare::default();
        let declare = std::pin::pin!(ch.queue_declare(&qd));
        assert!(matches!(poll(declare), Poll::Ready(Err(e)) if e.name() == "NotFound"));
        assert_eq!(ch.basic_ack(1, false).unwrap_err().name(), "NotFound");
        assert!(!ch.is_open());
        assert_eq!(take(&sent), vec![]);
        // The application hears of it too.
        assert!(matches!(client.events.try_next(), Ok(Some(ServerEvent::ChannelClosed { channel: 1, .. }))));
    }

    #[test]
    fn without_confirm_mode_confirms_are_events_and_a_lost_connection_fails_waiting_publishes() {
        let (client, _sent) = client();
        let plain = channel(&client, 2);
        let confirmed = channel(&client, 1);
        client.channels().get_mut(&1).unwrap().1 = Some(Confirms::default());
        client.on_frame(&gateway::encode(&ServerFrame::Confirm { channel: 2, delivery_tag: 1, multiple: false, ack: true }, b"")).unwrap();
        assert!(matches!(client.events.try_next(), Ok(Some(ServerEvent::Ack { channel: 2, delivery_tag: 1, .. }))));
        let content = Arc::new(Content { properties: Properties::default(), body: Bytes::new() });
        let m = BasicPublish::default();
        assert!(matches!(poll(std::pin::pin!(plain.basic_publish(&m, content.clone()))), Poll::Ready(Ok(()))), "no confirm to wait for");
        let mut waiting = Box::pin(confirmed.basic_publish(&m, content.clone()));
        assert!(poll(waiting.as_mut()).is_pending());
        client.on_close("reset by peer");
        match poll(waiting.as_mut()) {
            Poll::Ready(Err(e)) => assert!(e.is_recoverable_connection_error(), "{e}"),
            other => panic!("must fail: {:?}", other.map(|r| r.map_err(|e| e.to_string()))),
        }
        assert!(poll(std::pin::pin!(plain.basic_publish(&m, content))).map(|r| r.unwrap_err().is_recoverable_connection_error()) == Poll::Ready(true));
    }

    #[test]
    fn recover_and_a_closed_channel_forget_what_was_unsettled() {
        let (client, sent) = client();
        let ch = channel(&client, 1);
        deliver(&client, 1, "c", 1);
        deliver(&client, 1, "c", 2);
        answered(&client, ch.basic_recover(true), |id| ServerFrame::Ok { id, result: Value::Null }).unwrap();
        // Sent again with new tags: those are the ones waited for.
        deliver(&client, 1, "c", 3);
        ch.basic_ack(3, false).unwrap();
        assert_eq!(take(&sent).pop(), Some((Some(1), ack(3, true))));
        // The broker closes the channel: its deliveries are gone (the id may be reused).
        deliver(&client, 1, "c", 4);
        let closed = ServerFrame::Error { id: None, channel: Some(1), scope: Scope::Channel, code: 406, name: "PreconditionFailed".into(), text: "PRECONDITION_FAILED".into() };
        client.on_frame(&gateway::encode(&closed, b"")).unwrap();
        assert!(client.unsettled().get(&1).is_none());
    }
}
