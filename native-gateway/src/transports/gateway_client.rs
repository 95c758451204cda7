//! The native `gateway+ws://host:port/path` transport: the core's gateway client
//! (`kombu::transport::gateway_client`) carried by tokio-tungstenite. The virtual host comes from
//! the `vhost` query option (default `/`); the URL path is the gateway endpoint (`/gateway`
//! when empty). Acks taken in order go out merged, as from the browser: the socket writer's
//! outbox keeps the last of those queued one after the other on a channel. With Kombu's
//! `heartbeat` connection argument (`?heartbeat=10`), as for `amqp://`: a heartbeat frame
//! every half interval, and a gateway silent for two intervals (frozen, or behind a network
//! that drops everything) is gone — the connection fails with a recoverable connection error.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kombu::proto::gateway::SUBPROTOCOL;
use kombu::transport::carrier::Carrier;
use kombu::transport::gateway_client::{endpoint, GatewayClient, GatewayConnection};
use kombu::transport::{ConnectInfo, Implements, RawConnection, Transport};
use kombu::{Error, Result};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::writer::{QueueCarrier, WebSocket};

/// The `gateway+ws` transport.
#[derive(Debug, Default)]
pub struct GatewayTransport;

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
        let mut req = url.as_str().into_client_request().map_err(|e| Error::InvalidUrl { url: url.clone(), reason: e.to_string() })?;
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
        // Frames queued while the socket was busy go out as one batch, once the gateway allows it.
        let carrier = QueueCarrier::spawn(WebSocket::new(sink), false, 0, "the gateway connection");
        let closer = carrier.clone();
        let client = GatewayClient::new(Box::new(carrier));
        let reader_client = client.clone();
        tokio::spawn(async move {
            let mut last = tokio::time::Instant::now();
            let reason = loop {
                // Wake up every second to check the heartbeat deadline (the interval is only
                // known once `hello` is answered).
                let Ok(next) = tokio::time::timeout(Duration::from_secs(1), stream.next()).await else {
                    let heartbeat = u64::from(reader_client.heartbeat_interval());
                    if heartbeat > 0 && last.elapsed() > Duration::from_secs(2 * heartbeat) {
                        closer.close();
                        break format!("missed heartbeats from the gateway: nothing received for {:.1} s (heartbeat {heartbeat} s)", last.elapsed().as_secs_f64());
                    }
                    continue;
                };
                last = tokio::time::Instant::now();
                match next {
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
        client.hello(info).await?;
        let heartbeat = client.heartbeat_interval();
        if heartbeat > 0 {
            let client = Arc::downgrade(&client);
            tokio::spawn(async move {
                let half = Duration::from_secs_f64(f64::from(heartbeat) / 2.0);
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + half, half);
                loop {
                    tick.tick().await;
                    // Until the connection is dropped or closed.
                    if client.upgrade().is_none_or(|c| c.heartbeat().is_err()) {
                        break;
                    }
                }
            });
        }
        Ok(Arc::new(GatewayConnection::new(client)))
    }
}
