//! The native `gateway+ws://host:port/path` transport: the core's gateway client
//! (`kombu::transport::gateway_client`) carried by tokio-tungstenite. The virtual host comes from
//! the `vhost` query option (default `/`); the URL path is the gateway endpoint (`/gateway`
//! when empty). Acks taken in order go out merged, as from the browser: the socket writer's
//! outbox keeps the last of those queued one after the other on a channel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use kombu::proto::gateway::SUBPROTOCOL;
use kombu::proto::methods::ExchangeType;
use kombu::transport::carrier::outbox::Outbox;
use kombu::transport::carrier::Carrier;
use kombu::transport::gateway_client::{endpoint, hello_params, GatewayClient, GatewayConnection};
use kombu::transport::{ConnectInfo, Implements, RawConnection, Transport};
use kombu::{Error, Result};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::writer::{write_socket, Out, WebSocket};

/// The `gateway+ws` transport.
#[derive(Debug, Default)]
pub struct GatewayTransport;

struct TokioCarrier {
    out: mpsc::UnboundedSender<Out>,
    /// Largest batch the server reads (0 until it says it reads batches).
    batch_limit: Arc<AtomicUsize>,
}

impl TokioCarrier {
    fn push(&self, o: Out) -> Result<()> {
        self.out.send(o).map_err(|_| Error::RecoverableConnection("the gateway connection is closed".into()))
    }
}

impl Carrier for TokioCarrier {
    fn send(&self, frame: Bytes) -> Result<()> {
        self.push(Out::Frame(frame))
    }
    // Not held for more acks to merge (`_hold`, what the browser's carrier does): the writer's
    // outbox merges the acks queued until it runs — those the application's task sends before
    // it yields — and while the socket is busy.
    fn send_ack(&self, channel: u16, frame: Bytes, _hold: u32) -> Result<()> {
        self.push(Out::Ack(channel, frame))
    }
    fn allow_batches(&self, max_bytes: usize) {
        self.batch_limit.store(max_bytes, Ordering::Relaxed);
    }
    fn close(&self) {
        let _ = self.out.send(Out::Close(None));
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
        Implements { asynchronous: true, exchange_types: vec![ExchangeType::Direct, ExchangeType::Topic, ExchangeType::Fanout, ExchangeType::Headers], heartbeats: false }
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
        let (out, out_rx) = mpsc::unbounded_channel::<Out>();
        let batch_limit = Arc::new(AtomicUsize::new(0));
        let limit = batch_limit.clone();
        // Frames queued while the socket was busy go out as one batch, once the gateway allows it.
        tokio::spawn(write_socket(WebSocket::new(sink), out_rx, Outbox::new(0, false), move || limit.load(Ordering::Relaxed)));
        let carrier = TokioCarrier { out, batch_limit };
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
