//! The client side of the gateway protocol as a transport, independent of the socket: request
//! ids and their answers, pushed frames turned into [`ServerEvent`]s, and the
//! [`RawConnection`]/[`RawChannel`] methods. A carrier (tokio-tungstenite natively in
//! `kombu-gateway`, the browser's WebSocket in wasm) only moves frames: it sends the bytes it
//! is given ([`Carrier`]) and feeds what it receives to [`GatewayClient::on_frame`] and, when
//! the socket ends, [`GatewayClient::on_close`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::channel::{mpsc, oneshot};
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::gateway::{self, ClientHeader, MessageHeader, Request, Scope, ServerFrame};
use crate::rt::{self, Duration, MaybeSend, MaybeSync};
use crate::spec::{
    BasicConsume, BasicPublish, BasicQos, Content, Delivery, ExchangeBind, ExchangeDeclare, ExchangeDelete, GetOk, QueueBind,
    QueueDeclare, QueueDeclareOk, QueueDelete, Returned, ServerEvent,
};
use crate::transport::{RawChannel, RawConnection};
use crate::value::Value;

/// Sends frames on a socket.
///
/// A carrier may hold frames back to send several in one WebSocket message (a batch, see
/// [`gateway::encode_batch`]), once the server said it reads batches ([`Carrier::allow_batches`]).
/// It must keep their order, send what it holds when [`Carrier::flush`] is called, and never
/// hold a frame indefinitely (a timer flushes what nothing else does).
pub trait Carrier: MaybeSend + MaybeSync {
    /// Send one binary frame, or queue it. Errors when the socket is closed.
    fn send(&self, frame: Bytes) -> Result<()>;
    /// Send `frame`, an AMQP `basic.ack` with `multiple` on `channel` acknowledging the
    /// oldest delivery the broker waits for: it covers an ack sent this way just before it on
    /// the same channel, so a carrier holding frames back may replace such an ack when it is
    /// the last frame held (messages acknowledged in order go out as one ack). The default
    /// sends it like any frame.
    fn send_ack(&self, _channel: u16, frame: Bytes) -> Result<()> {
        self.send(frame)
    }
    /// Send the frames held back, now: the client is about to wait for the server.
    fn flush(&self) {}
    /// The server reads batches of up to `max_bytes` per WebSocket message.
    fn allow_batches(&self, _max_bytes: usize) {}
    /// Close the socket (after sending what is held back).
    fn close(&self);
}

/// The events a connection's reader pushes, read by `next_event`/`try_next_event`: shared
/// by the carrier-driven transports (the gateway client here, the AMQP client).
pub struct EventQueue {
    rx: futures::lock::Mutex<mpsc::UnboundedReceiver<ServerEvent>>,
    /// "the gateway connection is closed", ... once the reader is gone.
    closed: &'static str,
}

impl EventQueue {
    /// The reading side of `rx`; `closed` is the error text once the sender is gone.
    pub fn new(rx: mpsc::UnboundedReceiver<ServerEvent>, closed: &'static str) -> Self {
        EventQueue { rx: futures::lock::Mutex::new(rx), closed }
    }

    fn closed(&self) -> Error {
        Error::RecoverableConnection(self.closed.into())
    }

    /// The next event, waiting up to `timeout`. When none is ready, `carrier` first sends
    /// what it holds back (acks, publishes): the other side may be waiting for it.
    pub async fn next(&self, timeout: Option<Duration>, carrier: &dyn Carrier) -> Result<ServerEvent> {
        let mut rx = self.rx.lock().await;
        match rx.try_recv() {
            Ok(ev) => return Ok(ev),
            Err(mpsc::TryRecvError::Closed) => return Err(self.closed()),
            Err(mpsc::TryRecvError::Empty) => carrier.flush(),
        }
        let next = match timeout {
            None => rx.next().await,
            Some(t) => {
                let timer = rt::sleep(t);
                futures::pin_mut!(timer);
                match futures::future::select(rx.next(), timer).await {
                    futures::future::Either::Left((ev, _)) => ev,
                    futures::future::Either::Right(_) => return Err(Error::Timeout(None)),
                }
            }
        };
        next.ok_or_else(|| self.closed())
    }

    /// An event if one is ready (never waits).
    pub fn try_next(&self) -> Result<Option<ServerEvent>> {
        match self.rx.try_lock() {
            Some(mut rx) => match rx.try_recv() {
                Ok(ev) => Ok(Some(ev)),
                Err(mpsc::TryRecvError::Closed) => Err(self.closed()),
                Err(mpsc::TryRecvError::Empty) => Ok(None),
            },
            None => Ok(None),
        }
    }
}

type Answer = Result<(ServerFrame, Bytes)>;

/// The protocol state of one gateway connection.
pub struct GatewayClient {
    carrier: Box<dyn Carrier>,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    open: AtomicBool,
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
    }
}

impl GatewayClient {
    /// Protocol state over `carrier`.
    pub fn new(carrier: Box<dyn Carrier>) -> Arc<Self> {
        let (events_tx, events_rx) = mpsc::unbounded();
        Arc::new(GatewayClient {
            carrier,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            open: AtomicBool::new(true),
            events_tx,
            events: EventQueue::new(events_rx, "the gateway connection is closed"),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Answer>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, id: u64, request: Request, body: &[u8]) -> Result<()> {
        if !self.open.load(Ordering::SeqCst) {
            return Err(Error::RecoverableConnection("the gateway connection is closed".into()));
        }
        self.carrier.send(gateway::encode(&ClientHeader { id, request }, body))
    }

    /// Send a request and wait for its answer.
    pub async fn request(&self, request: Request, body: &[u8]) -> Answer {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        self.pending().insert(id, tx);
        if let Err(e) = self.send(id, request, body) {
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
        self.send(id, request, body)
    }

    async fn result(&self, request: Request) -> Result<Value> {
        match self.request(request, b"").await? {
            (ServerFrame::Ok { result, .. }, _) => Ok(result),
            (other, _) => Err(Error::Decode(format!("unexpected answer from the gateway: {other:?}"))),
        }
    }

    /// Say hello (the first request): `vhost` and the authentication `token`.
    pub async fn hello(&self, vhost: &str, token: Option<String>) -> Result<()> {
        let r = self.result(Request::Hello { vhost: Some(vhost.to_owned()), token, client: Some(format!("kombu-wasm {}", env!("CARGO_PKG_VERSION"))) }).await?;
        if r.get("batch").and_then(Value::as_bool) == Some(true) {
            let max_frame = r.get("max_frame").and_then(Value::as_u64).map_or(gateway::BATCH_BYTES, |m| m as usize);
            self.carrier.allow_batches(max_frame.min(gateway::BATCH_BYTES));
        }
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
            let answer = match frame {
                ServerFrame::Error { scope, code, name, text, channel, .. } => {
                    let e = gateway::error_from_frame(scope, code, &name, &text);
                    if let (Scope::Channel, Some(c)) = (scope, channel) {
                        let _ = self.events_tx.unbounded_send(ServerEvent::ChannelClosed { channel: c, error: e.clone() });
                    }
                    Err(e)
                }
                f => Ok((f, body)),
            };
            if let Some(tx) = self.pending().remove(&id) {
                let _ = tx.send(answer);
            }
            return Ok(());
        }
        let ev = match frame {
            ServerFrame::Deliver { channel, consumer_tag, message: m } => {
                ServerEvent::Deliver { channel, consumer_tag: consumer_tag.into(), delivery: message(m, body) }
            }
            ServerFrame::Return { channel, reply_code, reply_text, message: m } => {
                let d = message(m, body);
                ServerEvent::Return { channel, returned: Returned { reply_code, reply_text, exchange: d.exchange, routing_key: d.routing_key, content: d.content } }
            }
            ServerFrame::Cancel { channel, consumer_tag } => ServerEvent::Cancel { channel, consumer_tag: consumer_tag.into() },
            ServerFrame::Confirm { channel, delivery_tag, multiple, ack: true } => ServerEvent::Ack { channel, delivery_tag, multiple },
            ServerFrame::Confirm { channel, delivery_tag, multiple, ack: false } => ServerEvent::Nack { channel, delivery_tag, multiple },
            ServerFrame::Flow { channel, active } => ServerEvent::Flow { channel, active },
            ServerFrame::Error { scope, code, name, text, channel, .. } => {
                let error = gateway::error_from_frame(scope, code, &name, &text);
                match (scope, channel) {
                    (Scope::Channel, Some(c)) => ServerEvent::ChannelClosed { channel: c, error },
                    _ => ServerEvent::ConnectionClosed { error },
                }
            }
            ServerFrame::Ok { .. } | ServerFrame::GetOk { .. } => return Ok(()),
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
        for (_, tx) in self.pending().drain() {
            let _ = tx.send(Err(error.clone()));
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
        let id = r.get("channel").and_then(Value::as_u64).ok_or_else(|| Error::Decode(format!("channel.open answer without a channel: {r}")))?;
        Ok(Arc::new(GatewayChannel { client: self.client.clone(), id: id as u32, open: AtomicBool::new(true) }))
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
}

impl GatewayChannel {
    async fn value(&self, r: Request) -> Result<Value> {
        self.client.result(r).await.inspect_err(|e| {
            if matches!(e, Error::Channel { .. } | Error::Connection { .. }) {
                self.open.store(false, Ordering::SeqCst);
            }
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
        self.open.load(Ordering::SeqCst) && self.client.open.load(Ordering::SeqCst)
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
        serde_json::from_value(v).map_err(|e| Error::Decode(format!("bad queue.declare answer: {e}")))
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
        // an event, so publishes are pipelined.
        if !self.is_open() {
            return Err(Error::channel(crate::ReplyCode::ChannelError, format!("CHANNEL_ERROR - channel {} is closed", self.id)));
        }
        self.client.send_oneway_with_body(Request::BasicPublish { channel: self.id, method: m.clone(), properties: content.properties.clone() }, &content.body)
    }
    async fn basic_get(&self, queue: &str, no_ack: bool) -> Result<Option<GetOk>> {
        match self.client.request(Request::BasicGet { channel: self.id, queue: queue.into(), no_ack }, b"").await? {
            (ServerFrame::GetOk { message_count, message: m, .. }, body) => Ok(Some(GetOk { delivery: message(m, body), message_count })),
            _ => Ok(None),
        }
    }
    async fn basic_consume(&self, m: &BasicConsume) -> Result<String> {
        let v = self.value(Request::BasicConsume { channel: self.id, method: m.clone() }).await?;
        v.get("consumer_tag").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| Error::Decode(format!("basic.consume answer without a tag: {v}")))
    }
    async fn basic_cancel(&self, consumer_tag: &str) -> Result<()> {
        self.unit(Request::BasicCancel { channel: self.id, consumer_tag: consumer_tag.into() }).await
    }
    fn basic_ack(&self, delivery_tag: u64, multiple: bool) -> Result<()> {
        self.client.send_oneway(Request::BasicAck { channel: self.id, delivery_tag, multiple })
    }
    fn basic_reject(&self, delivery_tag: u64, requeue: bool) -> Result<()> {
        self.client.send_oneway(Request::BasicReject { channel: self.id, delivery_tag, requeue })
    }
    fn basic_nack(&self, delivery_tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        self.client.send_oneway(Request::BasicNack { channel: self.id, delivery_tag, multiple, requeue })
    }
    async fn basic_recover(&self, requeue: bool) -> Result<()> {
        self.unit(Request::BasicRecover { channel: self.id, requeue }).await
    }
    async fn basic_qos(&self, qos: BasicQos) -> Result<()> {
        self.unit(Request::BasicQos { channel: self.id, qos }).await
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
            let _ = self.client.result(Request::ChannelClose { channel: self.id }).await;
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

/// The virtual host and token for `hello`: the `vhost` and `token` options (URL query), the
/// password as a fallback token.
pub fn hello_params(info: &crate::transport::ConnectInfo) -> (String, Option<String>) {
    let vhost = info.options.get("vhost").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| "/".into());
    let token = info.options.get("token").and_then(Value::as_str).map(str::to_owned).or_else(|| info.password.clone());
    (vhost, token)
}
