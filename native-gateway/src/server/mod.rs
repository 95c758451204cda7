//! The gateway server: `/gateway` (WebSocket, protocol `kombu-gateway.v1`), `/amqp` (the
//! [`crate::relay`]), `/healthz`, `/metrics`, `/api/snapshot` and the playground.
//!
//! Each WebSocket connection gets its own backend connection from the core's transport
//! registry (`memory://` by default), so the broker's semantics apply unchanged: a client
//! that disconnects has its backend connection closed and its unacknowledged deliveries
//! return to their queues.
//!
//! This module is the listener, the routes and the socket loop of a connection
//! (`serve_client`); the protocol itself is `session` (a state machine without a socket) and
//! the counters are [`Metrics`].

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use kombu::proto::gateway::{self, SUBPROTOCOL};
use kombu::transport::carrier::outbox::Outbox;
use kombu::transport::{self, ConnectInfo};
use tokio::sync::{mpsc, oneshot};
use tower_http::services::ServeDir;

use crate::writer::{self, write_socket, Out};
use crate::{ClientError, GatewayError};

mod metrics;
mod session;

pub use metrics::Metrics;
use session::{Input, Pump, Session, Settings, Transmit};

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The broker behind the gateway (`memory://` by default).
    pub broker: String,
    /// The playground directory served at `/` (with the npm package at `/pkg/`).
    pub www: Option<PathBuf>,
    /// The npm package directory served at `/pkg/`.
    pub pkg: Option<PathBuf>,
    /// Largest WebSocket message (frame) accepted, in bytes.
    pub max_frame: usize,
    /// Frames queued for one client before the gateway stops reading its backend.
    pub outbox: usize,
    /// Identities and permissions (`None`: no authentication).
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// Allowed `Origin`s of browser clients (empty: any). Requests without an Origin header
    /// (non-browser clients) are allowed.
    pub allowed_origins: Vec<String>,
    /// Channels per connection.
    pub max_channels: usize,
    /// Consumers per channel.
    pub max_consumers: usize,
    /// Unacknowledged deliveries per channel (0: no limit). The gateway sets it as the
    /// channel-wide prefetch window on the broker and caps the client's own `basic.qos` to it;
    /// `no_ack` consumers are acknowledged upstream by the gateway as their deliveries are
    /// handed to the client's socket, so they are paced by the same window.
    pub max_unacked: u16,
    /// Serve HTTPS/WSS with this PEM certificate chain and private key (`None`: plain HTTP).
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8765".parse().expect("valid address"),
            broker: "memory://".into(),
            www: None,
            pkg: None,
            max_frame: 16 * 1024 * 1024,
            outbox: 256,
            auth: None,
            allowed_origins: Vec::new(),
            max_channels: 64,
            max_consumers: 64,
            max_unacked: 1000,
            tls: None,
        }
    }
}

struct AppState {
    /// Set on shutdown: client connections end (their unacked deliveries are requeued).
    stopping: tokio::sync::watch::Receiver<bool>,
    config: Config,
    metrics: Arc<Metrics>,
    /// What every `/gateway` session needs.
    settings: Arc<Settings>,
    /// The `/amqp` relay, when the broker is RabbitMQ.
    relay: Option<Arc<crate::relay::RelayConfig>>,
}

/// A running gateway.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// Counters.
    pub metrics: Arc<Metrics>,
    shutdown: Option<oneshot::Sender<()>>,
    stop_clients: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stop accepting, let open requests finish, close client connections (their unacked
    /// deliveries return to the broker), and wait for the server to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // WebSocket connections outlive the HTTP server's graceful shutdown: end them here,
        // after their in-flight request, and wait (up to 10 s) until they are gone.
        let _ = self.stop_clients.send(true);
        let _ = self.task.await;
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while self.metrics.connections.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Wait until the server ends (after a signal or `shutdown`).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Start the gateway.
pub async fn start(config: Config) -> Result<Running, GatewayError> {
    let info = broker_info(&config.broker)?;
    let transport = transport::registry::lookup(&info.transport).map_err(GatewayError::Broker)?;
    let tls = match &config.tls {
        Some((cert, key)) => Some(crate::tls::server_config(cert, key).map_err(GatewayError::Tls)?),
        None => None,
    };
    let metrics = Arc::new(Metrics::default());
    let (stop_clients, stopping) = tokio::sync::watch::channel(false);
    let relay = matches!(info.transport.as_str(), "amqp" | "amqps").then(|| {
        Arc::new(crate::relay::RelayConfig { upstream: info.clone(), auth: config.auth.clone(), frame_max: u32::try_from(config.max_frame).unwrap_or(u32::MAX) })
    });
    let settings = Arc::new(Settings {
        info,
        transport,
        auth: config.auth.clone(),
        max_frame: config.max_frame,
        max_channels: config.max_channels,
        max_consumers: config.max_consumers,
        max_unacked: config.max_unacked,
    });
    let state = Arc::new(AppState { stopping, config: config.clone(), metrics: metrics.clone(), settings, relay });
    let mut app = Router::new()
        .route("/gateway", get(ws_handler))
        .route("/amqp", get(amqp_handler))
        .route("/healthz", get(healthz_handler))
        .route("/metrics", get(metrics_handler))
        .route("/api/snapshot", get(snapshot_handler));
    if let Some(pkg) = &config.pkg {
        app = app.nest_service("/pkg", ServeDir::new(pkg));
    }
    if let Some(www) = &config.www {
        app = app.fallback_service(ServeDir::new(www));
    }
    let app = app.with_state(state);
    let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| GatewayError::Listen(config.listen, e))?;
    let addr = listener.local_addr().map_err(|e| GatewayError::Listen(config.listen, e))?;
    let (tx, rx) = oneshot::channel::<()>();
    let stopped = async move {
        let _ = rx.await;
    };
    let task = match tls {
        None => tokio::spawn(async move {
            // Small frames (acks, deliveries) go out at once, not held by Nagle's algorithm
            // until the previous segment is acknowledged (as the TLS listener does too).
            use axum::serve::ListenerExt;
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
                tracing::error!("server error: {e}");
            }
        }),
        Some(tls) => {
            let listener = crate::tls::TlsListener::new(listener, tls).map_err(|e| GatewayError::Listen(config.listen, e))?;
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
                    tracing::error!("server error: {e}");
                }
            })
        }
    };
    tracing::info!(%addr, broker = %config.broker, tls = config.tls.is_some(), "kombu-gateway listening");
    Ok(Running { addr, metrics, shutdown: Some(tx), stop_clients, task })
}

/// What the gateway connects to: the broker URL read as [`kombu::Connection`] reads it
/// ([`kombu::Connection::info`]: the transport's default port, TLS for `amqps://`, heartbeat,
/// login method, connect timeout and transport options from the query).
fn broker_info(broker: &str) -> Result<ConnectInfo, GatewayError> {
    let conn = kombu::Connection::new(broker).map_err(GatewayError::Broker)?;
    match conn.alt().len() {
        1 => Ok(conn.info()),
        urls => Err(GatewayError::FailoverList { urls }),
    }
}

/// `GET /api/snapshot?vhost=/name`: exchanges, queues (depths, consumers, unacked) and
/// bindings of a virtual host of the embedded broker, for the playground. 404 for other
/// brokers or unknown virtual hosts.
async fn snapshot_handler(State(state): State<Arc<AppState>>, axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>) -> Response {
    if state.settings.info.transport != "memory" {
        return (StatusCode::NOT_FOUND, "snapshots exist for the embedded memory:// broker only\n").into_response();
    }
    let vhost = q.get("vhost").cloned().unwrap_or_else(|| "/".into());
    match kombu::transport::memory::MemoryBroker::global().snapshot(&vhost) {
        Some(s) => ([(header::CONTENT_TYPE, "application/json")], serde_json::to_string(&s).unwrap_or_default()).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no virtual host {vhost:?} (declare something first)\n")).into_response(),
    }
}

async fn metrics_handler(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state.metrics.render();
    if state.settings.transport.driver_name() == "redis" {
        text.push_str(&crate::redis::StoreCounters::global().render());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `GET /healthz`: `ok`; with a broker other than the embedded one, only when a connection
/// to it opens now (503 naming the error otherwise).
async fn healthz_handler(State(state): State<Arc<AppState>>) -> Response {
    let settings = &state.settings;
    if settings.info.transport == "memory" {
        return "ok\n".into_response();
    }
    let broker = kombu::url::sanitize(&state.config.broker, "**");
    let check = tokio::time::timeout(std::time::Duration::from_secs(5), settings.transport.establish_connection(&settings.info)).await;
    match check {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            format!("broker {broker}: ok\nok\n").into_response()
        }
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("broker {broker}: unreachable: {e}\n")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, format!("broker {broker}: no answer within 5 s\n")).into_response(),
    }
}

/// The refusal of a browser whose `Origin` is not allowed, if it is not.
fn origin_refused(state: &AppState, headers: &axum::http::HeaderMap) -> Option<Response> {
    if state.config.allowed_origins.is_empty() {
        return None;
    }
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok())?;
    if state.config.allowed_origins.iter().any(|a| a == "*" || a == origin) {
        return None;
    }
    state.metrics.errors.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(%origin, "refused: origin not allowed");
    Some((StatusCode::FORBIDDEN, format!("origin {origin} is not allowed\n")).into_response())
}

/// Count a client connection as open while `connection` runs; log how it ended.
async fn counted<E: std::fmt::Display>(metrics: Arc<Metrics>, endpoint: &str, connection: impl Future<Output = Result<(), E>>) {
    metrics.connections.fetch_add(1, Ordering::Relaxed);
    metrics.connections_total.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = connection.await {
        tracing::debug!("{endpoint} connection ended: {e}");
    }
    metrics.connections.fetch_sub(1, Ordering::Relaxed);
}

/// `/amqp`: AMQP 0-9-1 over WebSocket, relayed to the RabbitMQ behind the gateway.
async fn amqp_handler(ws: WebSocketUpgrade, headers: axum::http::HeaderMap, State(state): State<Arc<AppState>>) -> Response {
    if let Some(refused) = origin_refused(&state, &headers) {
        return refused;
    }
    let Some(relay) = state.relay.clone() else {
        return (StatusCode::NOT_FOUND, "the /amqp relay needs an AMQP broker behind the gateway (--broker amqp://...)\n").into_response();
    };
    // Clients that name a subprotocol for AMQP get it echoed; most name none.
    let ws = ws.protocols(["amqp", "amqpws"]).max_message_size(state.config.max_frame).read_buffer_size(4096).write_buffer_size(0);
    ws.on_upgrade(move |socket| counted(state.metrics.clone(), "/amqp", crate::relay::relay(socket, relay, state.stopping.clone())))
}

async fn ws_handler(ws: WebSocketUpgrade, headers: axum::http::HeaderMap, State(state): State<Arc<AppState>>) -> Response {
    if let Some(refused) = origin_refused(&state, &headers) {
        return refused;
    }
    // Small socket buffers: an idle client should cost little (tungstenite's default read
    // buffer is 128 KiB per connection); large frames still grow them on demand.
    let ws = ws
        .protocols([SUBPROTOCOL])
        .max_message_size(state.config.max_frame)
        .max_frame_size(state.config.max_frame)
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let proto_ok = ws.selected_protocol().is_some_and(|p| p == SUBPROTOCOL);
    if !proto_ok {
        return (StatusCode::BAD_REQUEST, format!("the WebSocket subprotocol must be {SUBPROTOCOL}\n")).into_response();
    }
    ws.on_upgrade(move |socket| counted(state.metrics.clone(), "/gateway", serve_client(socket, state)))
}

/// One client of `/gateway`: its socket around a [`Session`]. Answers go out in the order of
/// the requests, each before the next request runs; the session's [`Pump`] runs in a task of
/// its own.
async fn serve_client(socket: WebSocket, state: Arc<AppState>) -> Result<(), ClientError> {
    let (sink, mut stream) = socket.split();
    // Bounded: a client that does not read stops the events pump (bounded memory).
    let (out, out_rx) = mpsc::channel::<Out>(state.config.outbox);
    let writer = tokio::spawn(write_socket(writer::WebSocket::new(sink), out_rx, Outbox::new(0, false), || gateway::BATCH_BYTES));
    let mut session = Session::new(state.settings.clone(), state.metrics.clone());
    let mut pump: Option<(tokio::task::JoinHandle<()>, mpsc::Sender<oneshot::Sender<()>>)> = None;
    let mut stopping = state.stopping.clone();
    loop {
        loop {
            while let Some(t) = session.poll_transmit() {
                let o = match t {
                    Transmit::Now(o) => o,
                    Transmit::AfterEvents(o) => {
                        // The pump sends what the broker connection has already received
                        // (confirms of earlier publishes...) before this error answer.
                        if let Some((_, flush)) = &pump {
                            let (done, flushed) = oneshot::channel();
                            if flush.send(done).await.is_ok() {
                                let _ = flushed.await;
                            }
                        }
                        o
                    }
                };
                if out.send(o).await.is_err() {
                    session.handle_input(Input::Closed);
                }
            }
            if let Some(p) = session.poll_pump() {
                let (flush, flushes) = mpsc::channel(1);
                pump = Some((tokio::spawn(run_pump(p, out.clone(), flushes)), flush));
            }
            if !session.handle_frame().await {
                break;
            }
        }
        if session.is_ended() {
            break;
        }
        let input = tokio::select! {
            // Frames that already arrived are handled before a shutdown ends the connection.
            biased;
            m = stream.next() => match m {
                Some(Ok(Message::Binary(b))) => Input::Binary(b),
                Some(Ok(Message::Text(_))) => Input::Text,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | None => Input::Closed,
                Some(Err(e)) => Input::Failed(e.to_string()),
            },
            () = shutting_down(&mut stopping) => Input::Shutdown,
        };
        session.handle_input(input);
    }
    let result = session.close().await;
    if let Some((p, _)) = pump {
        p.abort();
    }
    drop(out);
    let _ = writer.await;
    result
}

/// Send the broker's events to the client until its socket or the broker connection is gone.
/// On a request from `flushes`, first send every event already received, then answer it: the
/// driver sends an error answer after them ([`Transmit::AfterEvents`]).
async fn run_pump(mut pump: Pump, out: mpsc::Sender<Out>, mut flushes: mpsc::Receiver<oneshot::Sender<()>>) {
    loop {
        let next = tokio::select! {
            // Pump::next is cancel-safe: no event is lost when a flush comes first.
            biased;
            Some(done) = flushes.recv() => {
                while let Some((frame, on_sent)) = pump.try_next() {
                    if out.send(Out::Frame(frame)).await.is_err() {
                        return;
                    }
                    on_sent.sent();
                }
                let _ = done.send(());
                continue;
            }
            next = pump.next() => next,
        };
        let Some((frame, on_sent)) = next else { break };
        if out.send(Out::Frame(frame)).await.is_err() {
            break;
        }
        on_sent.sent();
    }
}

/// Resolves once the server shuts down (never, if its [`Running`] was dropped without).
pub(crate) async fn shutting_down(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    if stopping.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_url_is_read_as_a_connection_reads_it() {
        crate::register_transports();
        let info = broker_info("amqps://guest:guest@rabbit.example//?heartbeat=30&login_method=PLAIN&connect_timeout=2").unwrap();
        assert_eq!((info.transport.as_str(), info.ssl, info.port), ("amqps", true, Some(5671)));
        assert_eq!((info.heartbeat, info.login_method.as_deref(), info.connect_timeout), (Some(30.0), Some("PLAIN"), Some(2.0)));
        let info = broker_info("amqp://rabbit.example").unwrap();
        assert_eq!((info.ssl, info.port, info.virtual_host.as_str()), (false, Some(5672), "/"));
        assert_eq!(broker_info("memory://").unwrap().transport, "memory");
        assert!(matches!(broker_info("amqp://a//;amqp://b//"), Err(GatewayError::FailoverList { urls: 2 })));
        assert!(matches!(broker_info("rabbit.example:5672"), Err(GatewayError::Broker(kombu::Error::InvalidUrl { .. }))));
    }
}
