//! The native `gateway+ws://host:port/path` transport: the core's gateway client
//! (`kombu::transport::gateway_client`) carried by tokio-tungstenite. The virtual host comes from
//! the `vhost` query option (default `/`); the URL path is the gateway endpoint (`/gateway`
//! when empty). Acks taken in order go out merged, as from the browser: the carrier holds the
//! last one back until something else is sent, the client waits for the gateway, or the
//! application's task yields.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use kombu::proto::gateway::SUBPROTOCOL;
use kombu::transport::carrier::Carrier;
use kombu::transport::gateway_client::{endpoint, hello_params, GatewayClient, GatewayConnection};
use kombu::transport::{ConnectInfo, Implements, RawConnection, Transport};
use kombu::{Error, Result};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// The `gateway+ws` transport.
#[derive(Debug, Default)]
pub struct GatewayTransport;

struct TokioCarrier {
    out: mpsc::UnboundedSender<Message>,
    /// Largest batch the server reads (0 until it says it reads batches).
    batch_limit: Arc<AtomicUsize>,
    /// The last ack given to [`Carrier::send_ack`], held back: the next such ack on its
    /// channel replaces it (it covers it), anything else sent first sends it, and so does a
    /// task spawned when it is stored, once the application's task has yielded.
    held_ack: Arc<HeldAck>,
    runtime: tokio::runtime::Handle,
}

fn push(out: &mpsc::UnboundedSender<Message>, frame: Bytes) -> Result<()> {
    out.send(Message::Binary(frame)).map_err(|_| Error::RecoverableConnection("the gateway connection is closed".into()))
}

type HeldAck = Mutex<Option<(u16, Bytes)>>;

fn lock(held: &HeldAck) -> std::sync::MutexGuard<'_, Option<(u16, Bytes)>> {
    held.lock().unwrap_or_else(|e| e.into_inner())
}

/// Send the held ack, if any. Called with its lock held, so that what the caller sends next
/// stays after it.
fn release(held: &mut Option<(u16, Bytes)>, out: &mpsc::UnboundedSender<Message>) -> Result<()> {
    match held.take() {
        Some((_, ack)) => push(out, ack),
        None => Ok(()),
    }
}

impl Carrier for TokioCarrier {
    fn send(&self, frame: Bytes) -> Result<()> {
        let mut held = lock(&self.held_ack);
        release(&mut held, &self.out)?;
        push(&self.out, frame)
    }
    // Not held for more acks to merge (`_hold`, what the browser's carrier does): a native
    // socket write is cheap, and the last ack waits only for the task to yield.
    fn send_ack(&self, channel: u16, frame: Bytes, _hold: u32) -> Result<()> {
        let mut held = lock(&self.held_ack);
        match held.replace((channel, frame)) {
            // Covered by the new one.
            Some((c, _)) if c == channel => {}
            Some((_, other)) => push(&self.out, other)?,
            None => {
                let (held, out) = (self.held_ack.clone(), self.out.clone());
                self.runtime.spawn(async move {
                    tokio::task::yield_now().await;
                    let _ = release(&mut lock(&held), &out);
                });
            }
        }
        Ok(())
    }
    fn flush(&self) {
        let _ = release(&mut lock(&self.held_ack), &self.out);
    }
    fn allow_batches(&self, max_bytes: usize) {
        self.batch_limit.store(max_bytes, Ordering::Relaxed);
    }
    fn close(&self) {
        self.flush();
        let _ = self.out.send(Message::Close(None));
    }
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
        Implements::all_exchange_types(false)
    }

    async fn establish_connection(&self, info: &ConnectInfo) -> Result<Arc<dyn RawConnection>> {
        let url = endpoint(info);
        let mut req = url.as_str().into_client_request().map_err(|e| Error::Value(format!("invalid gateway URL {url}: {e}")))?;
        req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(SUBPROTOCOL));
        let timeout = Duration::from_secs_f64(info.connect_timeout.unwrap_or(5.0));
        let tls = url.starts_with("wss:");
        let port = info.port.unwrap_or(8765);
        let open = async {
            let stream = crate::tls::connect(info, port, tls).await?;
            tokio_tungstenite::client_async(req, stream).await.map_err(|e| Error::RecoverableConnection(format!("cannot connect to {url}: {e}")))
        };
        let (ws, _) = tokio::time::timeout(timeout, open).await.map_err(|_| Error::RecoverableConnection(format!("timed out connecting to {url}")))??;
        let (sink, mut stream) = ws.split();
        let (out, out_rx) = mpsc::unbounded_channel::<Message>();
        let batch_limit = Arc::new(AtomicUsize::new(0));
        let limit = batch_limit.clone();
        // Frames queued while the socket was busy go out as one batch, once the gateway allows it.
        tokio::spawn(crate::writer::write_socket(sink, out_rx, move || limit.load(Ordering::Relaxed), kombu::proto::gateway::encode_batch));
        let carrier = TokioCarrier { out, batch_limit, held_ack: Arc::default(), runtime: tokio::runtime::Handle::current() };
        let client = GatewayClient::new(Box::new(carrier));
        let reader_client = client.clone();
        tokio::spawn(async move {
            let reason = loop {
                match stream.next().await {
                    Some(Ok(Message::Binary(b))) => {
                        if let Err(e) = reader_client.on_frame(&b) {
                            break format!("malformed frame from the gateway: {e}");
                        }
                    }
                    Some(Ok(Message::Close(f))) => break f.map(|f| f.reason.to_string()).unwrap_or_else(|| "closed by the gateway".into()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break format!("WebSocket error: {e}"),
                    None => break "the gateway closed the connection".into(),
                }
            };
            reader_client.on_close(&reason);
        });
        let (vhost, token) = hello_params(info);
        client.hello(&vhost, token).await?;
        Ok(Arc::new(GatewayConnection::new(client)))
    }
}
