//! The `/amqp` endpoint: AMQP 0-9-1 over WebSocket, relayed to the RabbitMQ the gateway
//! fronts (`--broker amqp://...`). Binary WebSocket messages carry the raw AMQP byte stream
//! both ways, so any AMQP-over-WebSocket client works through it (e.g. the npm package
//! `@cloudamqp/amqp-client`).
//!
//! Without a token file the relay is transparent: the client logs in to RabbitMQ with its own
//! credentials. With one, the client logs in with its gateway token as the PLAIN password
//! (any user name); the relay checks it, logs in upstream with the broker URL's credentials
//! (the browser never sees them), and checks the virtual host and every method that names an
//! exchange or a queue against the identity's: `filter.rs`, which has no socket. This module
//! is the socket loop around it: one task reads the client's WebSocket, one the broker's
//! socket, and both hand what they read to the connection's filter.

mod filter;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::BytesMut;
use futures::stream::SplitStream;
use futures::StreamExt;
use kombu::transport::carrier::outbox::Outbox;
use kombu::transport::ConnectInfo;
use kombu::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};

use crate::auth::Auth;
use crate::writer::{self, write_socket, Out};
use crate::{lock, ClientError};
use filter::{Filter, Forward, Verdict};

/// What the relay needs from the server.
pub struct RelayConfig {
    /// The upstream broker (an `amqp://` or `amqps://` URL's parts).
    pub upstream: ConnectInfo,
    /// Identities, when the gateway has a token file.
    pub auth: Option<Arc<Auth>>,
    /// Largest AMQP frame accepted from either side.
    pub frame_max: u32,
}

/// How long the client's frames on a channel the relay closed may wait for the broker to
/// confirm the close.
const BROKER_CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Relay one WebSocket connection until either side ends it.
/// Ends (closing both sides) when `stopping` turns true.
///
/// The broker connection opens when the first bytes for it are ready: with a token file, once
/// the client's token is accepted (a client that never logs in costs no broker connection);
/// without one, once the client sent its protocol header.
///
/// # Errors
/// How the connection ended when not by a close: the broker unreachable or failing, a refused
/// login, malformed, oversized or text input.
pub async fn relay(
    socket: WebSocket,
    cfg: Arc<RelayConfig>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    timeouts: crate::server::Timeouts,
    metrics: Arc<crate::server::Metrics>,
) -> Result<(), ClientError> {
    let (ws_tx, ws_rx) = socket.split();
    let (to_client, to_client_rx) = mpsc::channel::<Out>(64);
    // A byte stream: what queues up while the socket is busy goes out as one message (a
    // browser pays per message received).
    let mut writer = tokio::spawn(write_socket(writer::WebSocket::new(ws_tx), to_client_rx, Outbox::new(0, true), || kombu::proto::gateway::BATCH_BYTES));
    let client = ClientSide::new(ws_rx, timeouts, metrics);
    let filter = Arc::new(Mutex::new(Filter::new(&cfg)));
    // Signalled when the broker confirms closing a channel the relay closed.
    let broker_closed = Arc::new(Notify::new());
    let mut upstream = Upstream { cfg, filter: filter.clone(), broker_closed: broker_closed.clone(), to_client: to_client.clone(), link: None };
    let result = client_to_broker(client, &mut upstream, &filter, &broker_closed, &to_client, &mut stopping).await;
    if let Some((mut up_wr, from_broker)) = upstream.link.take() {
        let _ = up_wr.shutdown().await;
        let _ = from_broker.await;
    }
    drop(to_client);
    // A client that reads nothing any more is not waited for past the close timeout.
    if tokio::time::timeout(timeouts.close, &mut writer).await.is_err() {
        writer.abort();
    }
    result
}

type BrokerWriter = tokio::io::WriteHalf<Box<dyn crate::tls::Stream>>;

/// The broker side of a relayed connection, connected on the first write.
struct Upstream {
    cfg: Arc<RelayConfig>,
    filter: Arc<Mutex<Filter>>,
    broker_closed: Arc<Notify>,
    to_client: mpsc::Sender<Out>,
    /// The broker socket's writer and the task reading it (broker -> client).
    link: Option<(BrokerWriter, tokio::task::JoinHandle<()>)>,
}

impl Upstream {
    /// Write `frames` to the broker, connecting first if it is not yet.
    async fn write(&mut self, frames: &[u8]) -> Result<(), ClientError> {
        if self.link.is_none() {
            let info = &self.cfg.upstream;
            let port = info.port.unwrap_or(if info.ssl { 5671 } else { 5672 });
            match crate::tls::connect(info, port, info.ssl).await {
                Ok(socket) => {
                    let (up_rd, up_wr) = tokio::io::split(socket);
                    let from_broker = tokio::spawn(broker_to_client(up_rd, self.filter.clone(), self.broker_closed.clone(), self.to_client.clone()));
                    self.link = Some((up_wr, from_broker));
                }
                Err(e) => {
                    let _ = self.to_client.send(Out::close(1011, &format!("cannot reach the broker: {e}"))).await;
                    return Err(ClientError::Broker(e));
                }
            }
        }
        let Some((up_wr, _)) = self.link.as_mut() else { unreachable!("connected above") };
        if let Err(e) = up_wr.write_all(frames).await {
            let _ = self.to_client.send(Out::close(1011, &format!("broker connection failed: {e}"))).await;
            return Err(ClientError::Broker(Error::RecoverableConnection(e.to_string())));
        }
        Ok(())
    }
}

/// The client's side of the relay: its socket's reading half, read under the liveness rules
/// of `/gateway` (`crate::server::Liveness`), with the client's first bytes for `hello`
/// (RabbitMQ's own handshake timeout bounds the login), the server's pings and the ping limit.
struct ClientSide {
    ws_rx: SplitStream<WebSocket>,
    timeouts: crate::server::Timeouts,
    metrics: Arc<crate::server::Metrics>,
    live: crate::server::Liveness,
    pings: tokio::time::Interval,
}

impl ClientSide {
    fn new(ws_rx: SplitStream<WebSocket>, timeouts: crate::server::Timeouts, metrics: Arc<crate::server::Metrics>) -> ClientSide {
        let interval = if timeouts.ping_interval.is_zero() { Duration::from_secs(3600) } else { timeouts.ping_interval };
        // The first ping one interval after the start (not at once).
        let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let live = crate::server::Liveness::new(timeouts, std::time::Instant::now());
        ClientSide { ws_rx, timeouts, metrics, live, pings }
    }

    /// The client's next binary message; `Err` with how the connection ends otherwise (its
    /// close, a timeout, the ping limit, a text message, the server's shutdown), after the
    /// close frame saying so was queued.
    async fn next(&mut self, to_client: &mpsc::Sender<Out>, stopping: &mut tokio::sync::watch::Receiver<bool>) -> Result<bytes::Bytes, Result<(), ClientError>> {
        use std::time::Instant;
        loop {
            let deadline = self.live.deadline().map(tokio::time::Instant::from_std);
            let next = tokio::select! {
                biased;
                m = self.ws_rx.next() => m,
                () = crate::server::sleep_until(deadline) => {
                    let (code, reason) = self.live.expired("AMQP protocol header");
                    return Err(Err(self.given_up(to_client, code, reason).await));
                }
                _ = self.pings.tick(), if self.live.is_open() && !self.timeouts.ping_interval.is_zero() => {
                    let _ = to_client.try_send(Out::Ping);
                    continue;
                }
                () = crate::server::shutting_down(stopping) => {
                    let _ = to_client.send(Out::close(1001, "kombu-gateway is shutting down")).await;
                    return Err(Ok(()));
                }
            };
            match next {
                Some(Ok(Message::Binary(b))) => {
                    if self.live.is_open() {
                        self.live.heard(Instant::now());
                    } else {
                        self.live.opened(Instant::now());
                    }
                    return Ok(b);
                }
                Some(Ok(Message::Pong(_))) => self.live.heard(Instant::now()),
                Some(Ok(Message::Ping(_))) => {
                    if let Err((code, reason)) = self.live.pinged(Instant::now()) {
                        return Err(Err(self.given_up(to_client, code, reason).await));
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Err(Ok(())),
                Some(Err(e)) => {
                    if let Some(reason) = crate::server::too_big(&e) {
                        let _ = to_client.send(Out::close(1009, &reason)).await;
                        return Err(Err(ClientError::TooBig(reason)));
                    }
                    return Err(Ok(()));
                }
                Some(Ok(Message::Text(_))) => {
                    let _ = to_client.send(Out::close(1003, "AMQP over WebSocket uses binary messages")).await;
                    return Err(Err(ClientError::TextMessage));
                }
            }
        }
    }

    /// Close the client's connection for a timeout or limit.
    async fn given_up(&self, to_client: &mpsc::Sender<Out>, code: u16, reason: String) -> ClientError {
        self.metrics.timed_out.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = tokio::time::timeout(self.timeouts.close, to_client.send(Out::close(code, &reason))).await;
        ClientError::Limit(reason)
    }
}

/// Client -> broker, through the filter, until the client's socket ends, the filter closes
/// it, or the server shuts down.
async fn client_to_broker(
    mut client: ClientSide,
    upstream: &mut Upstream,
    filter: &Mutex<Filter>,
    broker_closed: &Notify,
    to_client: &mpsc::Sender<Out>,
    stopping: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let mut buf = BytesMut::new();
    let mut verdicts = Vec::new();
    loop {
        match client.next(to_client, stopping).await {
            Ok(b) => buf.extend_from_slice(&b),
            Err(end) => return end,
        }
        loop {
            lock(filter).handle_client(&mut buf, &mut verdicts);
            let mut held = None;
            for v in verdicts.drain(..) {
                match v {
                    Verdict::ToBroker(frames) => upstream.write(&frames).await?,
                    Verdict::ToClient(frames) => {
                        let _ = to_client.send(Out::Frame(frames)).await;
                    }
                    Verdict::Close(c) => {
                        let _ = to_client.send(Out::close(c.code, &c.reason)).await;
                        return Err(c.error);
                    }
                    Verdict::Hold(channel) => held = Some(channel),
                }
            }
            let Some(channel) = held else { break };
            let confirmed = tokio::time::timeout(BROKER_CLOSE_WAIT, async {
                loop {
                    let notified = broker_closed.notified();
                    if !lock(filter).broker_closing(channel) {
                        break;
                    }
                    notified.await;
                }
            })
            .await;
            if confirmed.is_err() {
                let text = format!("the broker did not confirm closing channel {channel}");
                let _ = to_client.send(Out::close(1011, &text)).await;
                return Err(ClientError::Broker(Error::RecoverableConnection(text)));
            }
        }
    }
}

/// Broker -> client, through the filter, until the broker's socket ends.
async fn broker_to_client(mut up_rd: impl AsyncRead + Unpin, filter: Arc<Mutex<Filter>>, broker_closed: Arc<Notify>, to_client: mpsc::Sender<Out>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let reason = loop {
        match up_rd.read_buf(&mut buf).await {
            Ok(0) => break "the broker closed the connection".to_owned(),
            Ok(_) => {}
            Err(e) => break format!("broker connection failed: {e}"),
        }
        let forward = lock(&filter).handle_broker(&mut buf);
        match forward {
            Ok(Forward { frames, confirmed }) => {
                if confirmed {
                    broker_closed.notify_waiters();
                }
                if let Some(frames) = frames {
                    if to_client.send(Out::Frame(frames)).await.is_err() {
                        return;
                    }
                }
            }
            Err(c) => {
                let _ = to_client.send(Out::close(c.code, &c.reason)).await;
                return;
            }
        }
    };
    let _ = to_client.send(Out::close(1000, &reason)).await;
}
