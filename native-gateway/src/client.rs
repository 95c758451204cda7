//! The native `gateway+ws://host:port/path` transport: the Kombu API over a kombu-gateway,
//! with tokio-tungstenite. Requests carry ids and wait for their answer; pushed frames
//! (deliveries, returns, cancels, channel and connection closes) become `ServerEvent`s.
//! The virtual host comes from the `vhost` query option (default `/`); the URL path is the
//! gateway endpoint (`/gateway` when empty).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use kombu::gateway::{self, ClientHeader, MessageHeader, Request, Scope, ServerFrame, SUBPROTOCOL};
use kombu::spec::{
    BasicConsume, BasicPublish, BasicQos, Content, Delivery, ExchangeBind, ExchangeDeclare, ExchangeDelete, ExchangeType, GetOk,
    QueueBind, QueueDeclare, QueueDeclareOk, QueueDelete, Returned, ServerEvent,
};
use kombu::transport::{ConnectInfo, Implements, RawChannel, RawConnection, Transport};
use kombu::{Error, Result, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// The `gateway+ws` transport.
#[derive(Debug, Default)]
pub struct GatewayTransport;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<(ServerFrame, Bytes)>>>>>;

struct Inner {
    next_id: AtomicU64,
    pending: Pending,
    out: mpsc::UnboundedSender<Message>,
    open: Arc<AtomicBool>,
}

impl Inner {
    fn send_frame(&self, request: Request, body: &[u8]) -> Result<u64> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.send_with_id(id, request, body)
    }

    fn send_with_id(&self, id: u64, request: Request, body: &[u8]) -> Result<u64> {
        if !self.open.load(Ordering::SeqCst) {
            return Err(Error::RecoverableConnection("the gateway connection is closed".into()));
        }
        let frame = gateway::encode(&ClientHeader { id, request }, body);
        self.out.send(Message::Binary(frame)).map_err(|_| Error::RecoverableConnection("the gateway connection is closed".into()))?;
        Ok(id)
    }

    async fn request(&self, request: Request, body: &[u8]) -> Result<(ServerFrame, Bytes)> {
        let (tx, rx) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        // Register before sending so that a fast answer is never missed.
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        match self.send_with_id(id, request, body) {
            Ok(_) => {}
            Err(e) => {
                self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                return Err(e);
            }
        }
        rx.await.unwrap_or_else(|_| Err(Error::RecoverableConnection("the gateway connection closed before answering".into())))
    }

    async fn result(&self, request: Request) -> Result<Value> {
        match self.request(request, b"").await? {
            (ServerFrame::Ok { result, .. }, _) => Ok(result),
            (other, _) => Err(Error::Decode(format!("unexpected answer from the gateway: {other:?}"))),
        }
    }
}

/// A connection to a gateway.
pub struct GatewayConnection {
    inner: Arc<Inner>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<ServerEvent>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for GatewayConnection {
    fn drop(&mut self) {
        self.inner.open.store(false, Ordering::SeqCst);
        let _ = self.inner.out.send(Message::Close(None));
        self.reader.abort();
    }
}

fn content(m: MessageHeader, body: Bytes) -> (Delivery, Arc<Content>) {
    let content = Arc::new(Content { properties: m.properties, body });
    (
        Delivery { delivery_tag: m.delivery_tag, redelivered: m.redelivered, exchange: m.exchange.into(), routing_key: m.routing_key.into(), content: content.clone() },
        content,
    )
}

#[async_trait::async_trait]
impl Transport for GatewayTransport {
    fn driver_name(&self) -> &'static str {
        "gateway"
    }
    fn default_port(&self) -> Option<u16> {
        Some(8765)
    }
    fn implements(&self) -> Implements {
        Implements { asynchronous: true, exchange_types: vec![ExchangeType::Direct, ExchangeType::Topic, ExchangeType::Fanout, ExchangeType::Headers], heartbeats: false }
    }

    async fn establish_connection(&self, info: &ConnectInfo) -> Result<Arc<dyn RawConnection>> {
        let scheme = if info.transport.ends_with("wss") || info.ssl { "wss" } else { "ws" };
        let path = info.path.as_deref().filter(|p| !p.is_empty() && *p != "/").unwrap_or("/gateway");
        let url = format!("{scheme}://{}:{}{path}", info.hostname, info.port.unwrap_or(8765));
        let mut req = url.as_str().into_client_request().map_err(|e| Error::Value(format!("invalid gateway URL {url}: {e}")))?;
        req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(SUBPROTOCOL));
        let timeout = Duration::from_secs_f64(info.connect_timeout.unwrap_or(5.0));
        let (ws, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(req))
            .await
            .map_err(|_| Error::RecoverableConnection(format!("timed out connecting to {url}")))?
            .map_err(|e| Error::RecoverableConnection(format!("cannot connect to {url}: {e}")))?;
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let closing = matches!(m, Message::Close(_));
                if sink.send(m).await.is_err() || closing {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let open = Arc::new(AtomicBool::new(true));
        let (ev_tx, ev_rx) = mpsc::unbounded_channel::<ServerEvent>();
        let reader = {
            let pending = pending.clone();
            let open = open.clone();
            tokio::spawn(async move {
                let reason = loop {
                    let bytes = match stream.next().await {
                        Some(Ok(Message::Binary(b))) => b,
                        Some(Ok(Message::Close(f))) => break f.map(|f| f.reason.to_string()).unwrap_or_else(|| "closed by the gateway".into()),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => break format!("WebSocket error: {e}"),
                        None => break "the gateway closed the connection".into(),
                    };
                    let (frame, body) = match gateway::decode::<ServerFrame>(&bytes) {
                        Ok(x) => x,
                        Err(e) => break format!("malformed frame from the gateway: {e}"),
                    };
                    let answer_id = match &frame {
                        ServerFrame::Ok { id, .. } | ServerFrame::GetOk { id, .. } => Some(*id),
                        ServerFrame::Error { id: Some(id), .. } => Some(*id),
                        _ => None,
                    };
                    if let Some(id) = answer_id {
                        let tx = pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                        let r = match frame {
                            ServerFrame::Error { scope, code, name, text, channel, .. } => {
                                let e = gateway::error_from_frame(scope, code, &name, &text);
                                if let (Scope::Channel, Some(c)) = (scope, channel) {
                                    let _ = ev_tx.send(ServerEvent::ChannelClosed { channel: c, error: e.clone() });
                                }
                                Err(e)
                            }
                            f => Ok((f, body)),
                        };
                        match tx {
                            Some(tx) => {
                                let _ = tx.send(r);
                            }
                            // An ack/reject that failed: the channel error arrives as an event.
                            None => tracing::debug!("answer for unknown request {id}"),
                        }
                        continue;
                    }
                    let ev = match frame {
                        ServerFrame::Deliver { channel, consumer_tag, message } => {
                            let (delivery, _) = content(message, body);
                            ServerEvent::Deliver { channel, consumer_tag: consumer_tag.into(), delivery }
                        }
                        ServerFrame::Return { channel, reply_code, reply_text, message } => {
                            let (d, c) = content(message, body);
                            ServerEvent::Return { channel, returned: Returned { reply_code, reply_text, exchange: d.exchange, routing_key: d.routing_key, content: c } }
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
                        ServerFrame::Ok { .. } | ServerFrame::GetOk { .. } => continue,
                    };
                    if ev_tx.send(ev).is_err() {
                        break "the connection was dropped".into();
                    }
                };
                open.store(false, Ordering::SeqCst);
                let error = Error::RecoverableConnection(format!("gateway connection lost: {reason}"));
                for (_, tx) in pending.lock().unwrap_or_else(|e| e.into_inner()).drain() {
                    let _ = tx.send(Err(error.clone()));
                }
                let _ = ev_tx.send(ServerEvent::ConnectionClosed { error });
            })
        };
        let inner = Arc::new(Inner { next_id: AtomicU64::new(1), pending, out, open });
        let vhost = info.options.get("vhost").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| "/".into());
        let token = info.options.get("token").and_then(Value::as_str).map(str::to_owned).or_else(|| info.password.clone());
        let conn = GatewayConnection { inner: inner.clone(), events: tokio::sync::Mutex::new(ev_rx), reader };
        inner.result(Request::Hello { vhost: Some(vhost), token, client: Some(format!("kombu-wasm {}", env!("CARGO_PKG_VERSION"))) }).await?;
        Ok(Arc::new(conn))
    }
}

#[async_trait::async_trait]
impl RawConnection for GatewayConnection {
    async fn open_channel(&self) -> Result<Arc<dyn RawChannel>> {
        let r = self.inner.result(Request::ChannelOpen).await?;
        let id = r.get("channel").and_then(Value::as_u64).ok_or_else(|| Error::Decode(format!("channel.open answer without a channel: {r}")))?;
        Ok(Arc::new(GatewayChannel { inner: self.inner.clone(), id: id as u32, open: AtomicBool::new(true) }))
    }

    async fn next_event(&self, timeout: Option<Duration>) -> Result<ServerEvent> {
        let mut rx = self.events.lock().await;
        let next = match timeout {
            Some(t) => tokio::time::timeout(t, rx.recv()).await.map_err(|_| Error::Timeout(None))?,
            None => rx.recv().await,
        };
        next.ok_or_else(|| Error::RecoverableConnection("the gateway connection is closed".into()))
    }

    fn try_next_event(&self) -> Result<Option<ServerEvent>> {
        match self.events.try_lock() {
            Ok(mut rx) => match rx.try_recv() {
                Ok(ev) => Ok(Some(ev)),
                Err(mpsc::error::TryRecvError::Empty) => Ok(None),
                Err(mpsc::error::TryRecvError::Disconnected) => Err(Error::RecoverableConnection("the gateway connection is closed".into())),
            },
            Err(_) => Ok(None),
        }
    }

    fn is_open(&self) -> bool {
        self.inner.open.load(Ordering::SeqCst)
    }

    async fn close(&self) -> Result<()> {
        if self.inner.open.load(Ordering::SeqCst) {
            let _ = self.inner.result(Request::Close).await;
            self.inner.open.store(false, Ordering::SeqCst);
            let _ = self.inner.out.send(Message::Close(None));
        }
        Ok(())
    }
}

/// A channel of a [`GatewayConnection`].
pub struct GatewayChannel {
    inner: Arc<Inner>,
    id: u32,
    open: AtomicBool,
}

impl GatewayChannel {
    async fn unit(&self, r: Request) -> Result<()> {
        self.inner.result(r).await.map(|_| ()).inspect_err(|e| self.note(e))
    }

    fn note(&self, e: &Error) {
        if matches!(e, Error::Channel { .. } | Error::Connection { .. }) {
            self.open.store(false, Ordering::SeqCst);
        }
    }

    fn count(v: &Value) -> u32 {
        v.get("message_count").and_then(Value::as_u64).unwrap_or(0) as u32
    }
}

#[async_trait::async_trait]
impl RawChannel for GatewayChannel {
    fn channel_id(&self) -> u32 {
        self.id
    }
    fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst) && self.inner.open.load(Ordering::SeqCst)
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
        let v = self.inner.result(Request::QueueDeclare { channel: self.id, method: m.clone() }).await.inspect_err(|e| self.note(e))?;
        serde_json::from_value(v).map_err(|e| Error::Decode(format!("bad queue.declare answer: {e}")))
    }
    async fn queue_bind(&self, m: &QueueBind) -> Result<()> {
        self.unit(Request::QueueBind { channel: self.id, method: m.clone() }).await
    }
    async fn queue_unbind(&self, m: &QueueBind) -> Result<()> {
        self.unit(Request::QueueUnbind { channel: self.id, method: m.clone() }).await
    }
    async fn queue_purge(&self, queue: &str) -> Result<u32> {
        let v = self.inner.result(Request::QueuePurge { channel: self.id, queue: queue.into() }).await.inspect_err(|e| self.note(e))?;
        Ok(Self::count(&v))
    }
    async fn queue_delete(&self, m: &QueueDelete) -> Result<u32> {
        let v = self.inner.result(Request::QueueDelete { channel: self.id, method: m.clone() }).await.inspect_err(|e| self.note(e))?;
        Ok(Self::count(&v))
    }
    async fn basic_publish(&self, m: &BasicPublish, content: Arc<Content>) -> Result<()> {
        let r = self.inner.request(Request::BasicPublish { channel: self.id, method: m.clone(), properties: content.properties.clone() }, &content.body).await;
        r.map(|_| ()).inspect_err(|e| self.note(e))
    }
    async fn basic_get(&self, queue: &str, no_ack: bool) -> Result<Option<GetOk>> {
        match self.inner.request(Request::BasicGet { channel: self.id, queue: queue.into(), no_ack }, b"").await.inspect_err(|e| self.note(e))? {
            (ServerFrame::GetOk { message_count, message, .. }, body) => {
                let (delivery, _) = content(message, body);
                Ok(Some(GetOk { delivery, message_count }))
            }
            _ => Ok(None),
        }
    }
    async fn basic_consume(&self, m: &BasicConsume) -> Result<String> {
        let v = self.inner.result(Request::BasicConsume { channel: self.id, method: m.clone() }).await.inspect_err(|e| self.note(e))?;
        v.get("consumer_tag").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| Error::Decode(format!("basic.consume answer without a tag: {v}")))
    }
    async fn basic_cancel(&self, consumer_tag: &str) -> Result<()> {
        self.unit(Request::BasicCancel { channel: self.id, consumer_tag: consumer_tag.into() }).await
    }
    fn basic_ack(&self, delivery_tag: u64, multiple: bool) -> Result<()> {
        self.inner.send_frame(Request::BasicAck { channel: self.id, delivery_tag, multiple }, b"").map(|_| ())
    }
    fn basic_reject(&self, delivery_tag: u64, requeue: bool) -> Result<()> {
        self.inner.send_frame(Request::BasicReject { channel: self.id, delivery_tag, requeue }, b"").map(|_| ())
    }
    fn basic_nack(&self, delivery_tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        self.inner.send_frame(Request::BasicNack { channel: self.id, delivery_tag, multiple, requeue }, b"").map(|_| ())
    }
    async fn basic_recover(&self, requeue: bool) -> Result<()> {
        self.unit(Request::BasicRecover { channel: self.id, requeue }).await
    }
    async fn basic_qos(&self, qos: BasicQos) -> Result<()> {
        self.unit(Request::BasicQos { channel: self.id, qos }).await
    }
    async fn flow(&self, active: bool) -> Result<bool> {
        let v = self.inner.result(Request::Flow { channel: self.id, active }).await.inspect_err(|e| self.note(e))?;
        Ok(v.get("active").and_then(Value::as_bool).unwrap_or(active))
    }
    async fn confirm_select(&self) -> Result<()> {
        self.unit(Request::ConfirmSelect { channel: self.id }).await
    }
    async fn close(&self) -> Result<()> {
        if self.open.swap(false, Ordering::SeqCst) {
            let _ = self.inner.result(Request::ChannelClose { channel: self.id }).await;
        }
        Ok(())
    }
}
