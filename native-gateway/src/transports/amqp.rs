//! The native `amqp://` and `amqps://` transport: the core's AMQP client
//! (`kombu::transport::amqp_client`: handshake with PLAIN or AMQPLAIN login, channels, every method
//! Kombu uses, content split at frame_max, publisher confirms, returns, server cancels and
//! closes) carried over tokio TCP, or TLS (rustls) for amqps://. This carrier adds the
//! timers: heartbeats every half interval, and a broker silent for two intervals is gone.

use std::sync::Arc;
use std::time::Duration;

use kombu::transport::amqp_client::AmqpClient;
use kombu::transport::carrier::Carrier;
use kombu::transport::{ConnectInfo, Implements, RawConnection, Transport};
use kombu::{Error, Result};
use tokio::io::AsyncReadExt;

use crate::writer::{ByteStream, QueueCarrier};

/// The `amqp` transport (also reached as `pyamqp://` and `librabbitmq://`, and `amqps://`).
#[derive(Debug, Default)]
pub struct AmqpTransport;

#[async_trait::async_trait]
impl Transport for AmqpTransport {
    fn driver_name(&self) -> &'static str {
        "amqp"
    }
    fn default_port(&self) -> Option<u16> {
        Some(5672)
    }
    fn implements(&self) -> Implements {
        Implements::all_exchange_types(true)
    }

    async fn establish_connection(&self, info: &ConnectInfo) -> Result<Arc<dyn RawConnection>> {
        let port = info.port.unwrap_or(if info.ssl { 5671 } else { 5672 });
        let addr = format!("{}:{port}", info.hostname);
        let timeout = Duration::from_secs_f64(info.connect_timeout.unwrap_or(5.0));
        let stream = tokio::time::timeout(timeout, crate::tls::connect(info, port, info.ssl))
            .await
            .map_err(|_| Error::RecoverableConnection(format!("timed out connecting to {addr}")))??;
        let (mut rd, wr) = tokio::io::split(stream);
        // What queues up while the socket is busy goes out in one write of up to 256 KiB.
        let carrier = QueueCarrier::spawn(ByteStream(wr), true, 256 * 1024, "the AMQP connection");
        let closer = carrier.clone();
        let client = AmqpClient::new(Box::new(carrier));
        // Reader: bytes to the client; with heartbeats, a broker silent for two intervals is gone.
        {
            let client = client.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut last = tokio::time::Instant::now();
                let reason = loop {
                    // Wake up every second to check the heartbeat deadline (the interval is
                    // only known once the handshake is done).
                    match tokio::time::timeout(Duration::from_secs(1), rd.read(&mut buf)).await {
                        Err(_) => {
                            let heartbeat = u64::from(client.heartbeat_interval());
                            if heartbeat > 0 && last.elapsed() > Duration::from_secs(2 * heartbeat) {
                                break format!("missed heartbeats from the broker: nothing received for {} s", 2 * heartbeat);
                            }
                        }
                        Ok(Ok(0)) => break "the broker closed the connection".to_owned(),
                        Ok(Ok(n)) => {
                            last = tokio::time::Instant::now();
                            if client.on_bytes(&buf[..n]).is_err() {
                                return;
                            }
                        }
                        Ok(Err(e)) => break format!("read failed: {e}"),
                    }
                };
                client.on_close(&reason);
            });
        }
        let handshake = tokio::time::timeout(timeout, client.handshake(info))
            .await
            .map_err(|_| Error::RecoverableConnection(format!("timed out in the AMQP handshake with {addr}")))
            .and_then(|r| r);
        if let Err(e) = handshake {
            closer.close(); // shut the socket: the reader ends with it
            return Err(e);
        }
        drop(closer);
        send_heartbeats(&client);
        Ok(Arc::new(client.connection()?))
    }
}

/// With heartbeats negotiated, send one every half interval until the connection is gone.
pub(super) fn send_heartbeats(client: &Arc<AmqpClient>) {
    let heartbeat = client.heartbeat_interval();
    if heartbeat > 0 {
        let client = client.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(f64::from(heartbeat) / 2.0));
            loop {
                tick.tick().await;
                if client.heartbeat().is_err() {
                    break;
                }
            }
        });
    }
}
