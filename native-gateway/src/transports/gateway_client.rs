//! The native `gateway+ws://host:port/path` transport: the core's gateway client
//! (`kombu::transport::gateway_client`) carried by tokio-tungstenite. The virtual host comes from
//! the `vhost` query option (default `/`); the URL path is the gateway endpoint (`/gateway`
//! when empty). Acks taken in order go out merged, as from the browser: the socket writer's
//! outbox keeps the last of those queued one after the other on a channel.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kombu::proto::gateway::SUBPROTOCOL;
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
        client.hello(info).await?;
        Ok(Arc::new(GatewayConnection::new(client)))
    }
}
