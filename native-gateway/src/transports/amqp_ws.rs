//! The native `amqp+ws://` and `amqps+wss://` transport: the core's AMQP client
//! (`kombu::transport::amqp_client`) carried by a WebSocket (tokio-tungstenite) whose binary
//! messages are the AMQP byte stream — to kombu-gateway's `/amqp` relay (the default path;
//! the `ws_path` query option names another) or any AMQP-over-WebSocket endpoint, as the
//! browser build's transport of the same name does. The URL reads as an `amqp://` URL:
//! `amqp+ws://user:password@host:port/vhost` (port 8765 by default); through a gateway with a
//! token file, the password is the gateway token. Heartbeats as over TCP.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kombu::transport::amqp_client::AmqpClient;
use kombu::transport::carrier::Carrier;
use kombu::transport::{ConnectInfo, Implements, RawConnection, Transport};
use kombu::{Error, Result};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::writer::{QueueCarrier, WebSocket};

/// The `amqp+ws` transport.
#[derive(Debug, Default)]
pub struct AmqpWebSocketTransport;

#[async_trait::async_trait]
impl Transport for AmqpWebSocketTransport {
    fn driver_name(&self) -> &'static str {
        "amqp"
    }
    fn default_port(&self) -> Option<u16> {
        Some(8765)
    }
    fn implements(&self) -> Implements {
        Implements::all_exchange_types(true)
    }

    async fn establish_connection(&self, info: &ConnectInfo) -> Result<Arc<dyn RawConnection>> {
        let tls = info.transport.ends_with("wss") || info.ssl;
        let port = info.port.unwrap_or(8765);
        let path = info.options.get("ws_path").and_then(serde_json::Value::as_str).unwrap_or("/amqp");
        let url = format!("{}://{}:{port}{path}", if tls { "wss" } else { "ws" }, info.hostname);
        let req = url.as_str().into_client_request().map_err(|e| Error::InvalidUrl { url: url.clone(), reason: e.to_string() })?;
        let timeout = Duration::from_secs_f64(info.connect_timeout.unwrap_or(5.0));
        let open = async {
            let stream = crate::tls::connect(info, port, tls).await?;
            tokio_tungstenite::client_async(req, stream).await.map_err(|e| Error::RecoverableConnection(format!("cannot connect to {url}: {e}")))
        };
        let (ws, _) = tokio::time::timeout(timeout, open).await.map_err(|_| Error::RecoverableConnection(format!("timed out connecting to {url}")))??;
        let (sink, mut stream) = ws.split();
        // A byte stream: what queues up while the socket is busy goes out in one message.
        let carrier = QueueCarrier::spawn(WebSocket::new(sink), true, 256 * 1024, "the AMQP connection");
        let closer = carrier.clone();
        let client = AmqpClient::new(Box::new(carrier));
        // Reader: messages to the client; with heartbeats, a broker silent for two intervals is gone.
        {
            let client = client.clone();
            tokio::spawn(async move {
                let mut last = tokio::time::Instant::now();
                let reason = loop {
                    match tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
                        Err(_) => {
                            let heartbeat = u64::from(client.heartbeat_interval());
                            if heartbeat > 0 && last.elapsed() > Duration::from_secs(2 * heartbeat) {
                                break format!("missed heartbeats from the broker: nothing received for {} s", 2 * heartbeat);
                            }
                        }
                        Ok(Some(Ok(Message::Binary(b)))) => {
                            last = tokio::time::Instant::now();
                            if client.on_bytes(&b).is_err() {
                                return;
                            }
                        }
                        Ok(Some(Ok(Message::Close(f)))) => break f.map(|f| f.reason.to_string()).unwrap_or_else(|| "closed by the server".into()),
                        Ok(Some(Ok(Message::Text(_)))) => break "the server sent a text message".into(),
                        Ok(Some(Ok(_))) => last = tokio::time::Instant::now(),
                        Ok(Some(Err(e))) => break format!("WebSocket error: {e}"),
                        Ok(None) => break "the server closed the connection".into(),
                    }
                };
                client.on_close(&reason);
            });
        }
        let handshake = tokio::time::timeout(timeout, client.handshake(info))
            .await
            .map_err(|_| Error::RecoverableConnection(format!("timed out in the AMQP handshake with {url}")))
            .and_then(|r| r);
        if let Err(e) = handshake {
            closer.close();
            return Err(e);
        }
        drop(closer);
        super::amqp::send_heartbeats(&client);
        Ok(Arc::new(client.connection()?))
    }
}
