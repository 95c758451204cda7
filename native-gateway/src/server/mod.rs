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
use std::time::{Duration, Instant};

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

mod listen;
mod liveness;
mod metrics;
mod session;

pub use liveness::Timeouts;
pub(crate) use liveness::Liveness;
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
    /// Open TCP connections (HTTP and WebSocket, both endpoints), past which new ones are
    /// refused with 503 (0: no limit).
    pub max_connections: usize,
    /// Open TCP connections from one IP address, past which its new ones are refused with
    /// 429 (0: no limit).
    pub max_connections_per_address: usize,
    /// Hello, idle, close and header-read timeouts and the server's ping interval.
    pub timeouts: Timeouts,
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
            max_connections: 4096,
            max_connections_per_address: 256,
            timeouts: Timeouts::default(),
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
    /// `/api/snapshot`'s recent snapshots.
    snapshots: Snapshots,
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
    let state = Arc::new(AppState { stopping, config: config.clone(), metrics: metrics.clone(), settings, relay, snapshots: Snapshots::default() });
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
    let conns = listen::Conns::new(listen::ConnLimits { max: config.max_connections, per_address: config.max_connections_per_address }, metrics.clone());
    let serve = listen::Serve { listener, tls, app, conns, header_read_timeout: config.timeouts.header_read };
    let task = tokio::spawn(listen::serve(serve, rx));
    // The broker URL with its password masked, as Kombu's as_uri() prints it.
    tracing::info!(%addr, broker = %kombu::url::sanitize(&config.broker, "**"), tls = config.tls.is_some(), "kombu-gateway listening");
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

/// Entries of each list (exchanges, queues, bindings) `/api/snapshot` returns at most.
pub const SNAPSHOT_MAX_ENTRIES: usize = 1000;
/// How long a virtual host's snapshot is reused: however often it is fetched, the broker
/// computes it at most once per this period.
const SNAPSHOT_REUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Snapshots computed recently, by virtual host (the computation runs one at a time).
#[derive(Default)]
struct Snapshots(tokio::sync::Mutex<HashMap<String, (Instant, Arc<kombu::broker::VHostSnapshot>)>>);

impl Snapshots {
    async fn get(&self, vhost: &str) -> Option<Arc<kombu::broker::VHostSnapshot>> {
        let mut recent = self.0.lock().await;
        recent.retain(|_, (at, _)| at.elapsed() < SNAPSHOT_REUSE);
        if let Some((_, s)) = recent.get(vhost) {
            return Some(s.clone());
        }
        let name = vhost.to_owned();
        let s = Arc::new(tokio::task::spawn_blocking(move || kombu::transport::memory::MemoryBroker::global().snapshot(&name)).await.ok()??);
        recent.insert(vhost.to_owned(), (Instant::now(), s.clone()));
        Some(s)
    }
}

/// `GET /api/snapshot?vhost=/name`: exchanges, queues (depths, consumers, unacked) and
/// bindings of a virtual host of the embedded broker, for the playground. 404 for other
/// brokers or unknown virtual hosts. With a token file it needs the token (`Authorization:
/// Bearer TOKEN`; 401 without, 403 for a virtual host the identity may not open) and lists
/// only the exchanges and queues the identity may configure or read (bindings between two of
/// them). Each list holds at most [`SNAPSHOT_MAX_ENTRIES`] entries (`truncated` says whether
/// some were left out), and a snapshot is reused for a second.
async fn snapshot_handler(State(state): State<Arc<AppState>>, headers: axum::http::HeaderMap, axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>) -> Response {
    let vhost = q.get("vhost").cloned().unwrap_or_else(|| "/".into());
    let identity = match &state.config.auth {
        None => None,
        Some(auth) => {
            let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
            match auth.identify(token) {
                Ok(id) if id.may_open(&vhost) => Some(id),
                Ok(id) => return (StatusCode::FORBIDDEN, format!("identity '{}' may not open virtual host '{vhost}'\n", id.name)).into_response(),
                Err((code, text)) => {
                    let hint = if token.is_none() { ": send it as `Authorization: Bearer TOKEN`" } else { "" };
                    return (StatusCode::from_u16(code).unwrap_or(StatusCode::UNAUTHORIZED), format!("{text}{hint}\n")).into_response();
                }
            }
        }
    };
    if state.settings.info.transport != "memory" {
        return (StatusCode::NOT_FOUND, "snapshots exist for the embedded memory:// broker only\n").into_response();
    }
    let Some(s) = state.snapshots.get(&vhost).await else {
        return (StatusCode::NOT_FOUND, format!("no virtual host {vhost:?} (declare something first)\n")).into_response();
    };
    let sees = |kind: &str, name: &str| identity.as_ref().is_none_or(|id| id.may_see(kind, name));
    let mut truncated = false;
    let mut bounded = |items: Vec<serde_json::Value>| {
        truncated |= items.len() > SNAPSHOT_MAX_ENTRIES;
        items.into_iter().take(SNAPSHOT_MAX_ENTRIES).collect::<Vec<_>>()
    };
    let exchanges = bounded(s.exchanges.iter().filter(|x| sees("exchange", &x.name)).take(SNAPSHOT_MAX_ENTRIES + 1).map(|x| serde_json::to_value(x).unwrap_or_default()).collect());
    let queues = bounded(s.queues.iter().filter(|x| sees("queue", &x.name)).take(SNAPSHOT_MAX_ENTRIES + 1).map(|x| serde_json::to_value(x).unwrap_or_default()).collect());
    let bindings = bounded(
        s.bindings
            .iter()
            .filter(|b| {
                let kind = if matches!(b.destination_type, kombu::broker::DestinationType::Queue) { "queue" } else { "exchange" };
                sees("exchange", &b.source) && sees(kind, &b.destination)
            })
            .take(SNAPSHOT_MAX_ENTRIES + 1)
            .map(|x| serde_json::to_value(x).unwrap_or_default())
            .collect(),
    );
    let body = serde_json::json!({"exchanges": exchanges, "queues": queues, "bindings": bindings, "truncated": truncated});
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn metrics_handler(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state.metrics.render();
    match state.settings.transport.driver_name() {
        "redis" => text.push_str(&crate::redis::StoreCounters::global().render()),
        "sqs" => text.push_str(&crate::sqs::render_calls()),
        _ => {}
    }
    if state.settings.info.transport == "memory" {
        let name = "kombu_gateway_store_backlog_bytes";
        text.push_str(&format!("# HELP {name} Bytes the embedded broker's store (--data-dir) has to write.\n# TYPE {name} gauge\n{name} {}\n", crate::store::backlog_bytes()));
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
    // Fail closed: an Origin header given twice or not readable as text is refused, as one
    // that is not allowed; only its absence (a client that is not a browser) passes.
    let mut all = headers.get_all(header::ORIGIN).iter();
    let origin = all.next()?;
    let text = match (origin.to_str(), all.next()) {
        (Ok(o), None) if state.config.allowed_origins.iter().any(|a| a == "*" || a == o) => return None,
        (Ok(o), None) => format!("origin {o} is not allowed"),
        (Ok(_), Some(_)) => "more than one Origin header".to_owned(),
        (Err(_), _) => "an Origin header that is not visible ASCII".to_owned(),
    };
    state.metrics.errors.fetch_add(1, Ordering::Relaxed);
    tracing::warn!("refused: {text}");
    Some((StatusCode::FORBIDDEN, format!("{text}\n")).into_response())
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
    let ws = ws.max_write_buffer_size(max_write_buffer(&state.config));
    let timeouts = state.config.timeouts;
    ws.on_upgrade(move |socket| counted(state.metrics.clone(), "/amqp", crate::relay::relay(socket, relay, state.stopping.clone(), timeouts, state.metrics.clone())))
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
        .write_buffer_size(0)
        .max_write_buffer_size(max_write_buffer(&state.config));
    let proto_ok = ws.selected_protocol().is_some_and(|p| p == SUBPROTOCOL);
    if !proto_ok {
        return (StatusCode::BAD_REQUEST, format!("the WebSocket subprotocol must be {SUBPROTOCOL}\n")).into_response();
    }
    ws.on_upgrade(move |socket| counted(state.metrics.clone(), "/gateway", serve_client(socket, state)))
}

/// The most a WebSocket holds for a client that does not read: one message of the largest
/// size, a batch, and the pongs that fit beside them (tungstenite queues a pong per ping
/// received; past this it keeps only the last).
fn max_write_buffer(config: &Config) -> usize {
    config.max_frame.max(gateway::BATCH_BYTES) + gateway::BATCH_BYTES + 64 * 1024
}

/// One client of `/gateway`: its socket around a [`Session`]. Answers go out in the order of
/// the requests, each before the next request runs; the session's [`Pump`] runs in a task of
/// its own.
///
/// Bounded: the client's queue ([`Config::outbox`] frames) is shared by answers and the
/// pump; while it is full nothing more is read from the client (a publisher that does not
/// read its returns or confirms stops being read), and a request that filled a broker
/// socket's queue waits until it drains ([`writer::paced`]). [`Liveness`] gives the
/// connection up when `hello` is late, when nothing is heard for the idle timeout, or on a
/// ping flood; its close takes at most the close timeout.
async fn serve_client(socket: WebSocket, state: Arc<AppState>) -> Result<(), ClientError> {
    let (sink, mut stream) = socket.split();
    // Bounded: a client that does not read stops the events pump (bounded memory).
    let (out, out_rx) = mpsc::channel::<Out>(state.config.outbox);
    let mut writer = tokio::spawn(write_socket(writer::WebSocket::new(sink), out_rx, Outbox::new(0, false), || gateway::BATCH_BYTES));
    let mut session = Session::new(state.settings.clone(), state.metrics.clone());
    let mut pump: Option<(tokio::task::JoinHandle<()>, mpsc::Sender<oneshot::Sender<()>>)> = None;
    let mut stopping = state.stopping.clone();
    let timeouts = state.config.timeouts;
    let mut live = Liveness::new(timeouts, Instant::now());
    let interval = if timeouts.ping_interval.is_zero() { Duration::from_secs(3600) } else { timeouts.ping_interval };
    // The first ping one interval after the start (not at once).
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Heartbeat frames every half interval, when `hello` agreed on heartbeats (browsers do
    // not show WebSocket pings to the page: these tell the client the gateway is alive).
    let mut beats: Option<tokio::time::Interval> = None;
    let beat = gateway::encode(&gateway::ServerFrame::Heartbeat, b"");
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
                // Once the connection has ended (its close frame), the close timeout applies.
                let deadline = if session.is_ended() { Some(Instant::now() + timeouts.close) } else { live.deadline() };
                match send_until(&out, o, deadline).await {
                    Ok(()) => live.heard(Instant::now()),
                    Err(SendFailed::Closed) => session.handle_input(Input::Closed),
                    Err(SendFailed::Late) if session.is_ended() => break,
                    Err(SendFailed::Late) => timed_out(&mut session, &live, &state.metrics),
                }
            }
            if let Some(p) = session.poll_pump() {
                live.opened(Instant::now());
                if let Some(h) = session.heartbeat() {
                    let half = h / 2;
                    let mut i = tokio::time::interval_at(tokio::time::Instant::now() + half, half);
                    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    beats = Some(i);
                }
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
        let deadline = live.deadline().map(tokio::time::Instant::from_std);
        let input = tokio::select! {
            // Frames that already arrived are handled before a shutdown ends the connection.
            biased;
            // Backpressure: while the client's queue is full, its socket is not read.
            m = stream.next(), if out.capacity() > 0 => match m {
                Some(Ok(Message::Binary(b))) => {
                    live.heard(Instant::now());
                    Input::Binary(b)
                }
                Some(Ok(Message::Text(_))) => Input::Text,
                Some(Ok(Message::Pong(_))) => {
                    live.heard(Instant::now());
                    continue;
                }
                Some(Ok(Message::Ping(_))) => match live.pinged(Instant::now()) {
                    Ok(()) => continue,
                    Err((code, reason)) => {
                        state.metrics.timed_out.fetch_add(1, Ordering::Relaxed);
                        Input::Limit(code, reason)
                    }
                },
                Some(Ok(Message::Close(_))) | None => Input::Closed,
                Some(Err(e)) => match too_big(&e) {
                    Some(reason) => Input::TooBig(reason),
                    None => Input::Failed(e.to_string()),
                },
            },
            permit = out.reserve(), if out.capacity() == 0 => {
                // The client took something: room again.
                drop(permit);
                live.heard(Instant::now());
                continue;
            }
            () = sleep_until(deadline) => {
                timed_out(&mut session, &live, &state.metrics);
                continue;
            }
            _ = pings.tick(), if live.is_open() && !timeouts.ping_interval.is_zero() => {
                let _ = out.try_send(Out::Ping);
                continue;
            }
            _ = tick(&mut beats) => {
                // A full queue is on its way to the client already.
                let _ = out.try_send(Out::Frame(beat.clone()));
                continue;
            }
            () = shutting_down(&mut stopping) => Input::Shutdown,
        };
        session.handle_input(input);
    }
    let result = session.close().await;
    if let Some((p, _)) = pump {
        p.abort();
    }
    drop(out);
    // A client that reads nothing any more is not waited for past the close timeout.
    if tokio::time::timeout(timeouts.close, &mut writer).await.is_err() {
        writer.abort();
        tracing::debug!("/gateway: the client took nothing for {} s after its close; dropped", timeouts.close.as_secs_f64());
    }
    result
}

/// The hello or idle deadline passed: the session ends with the reason.
fn timed_out(session: &mut Session, live: &Liveness, metrics: &Metrics) {
    let (code, reason) = live.expired("hello");
    metrics.timed_out.fetch_add(1, Ordering::Relaxed);
    tracing::debug!("/gateway: {reason}");
    session.handle_input(Input::Limit(code, reason));
}

/// The next tick of `interval` (never without one).
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Sleep until `deadline` (forever without one).
pub(crate) async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

enum SendFailed {
    /// The writer is gone (the socket closed).
    Closed,
    /// The deadline passed with the client's queue full.
    Late,
}

/// Queue `o` for the client's socket, waiting for room until `deadline`.
async fn send_until(out: &mpsc::Sender<Out>, o: Out, deadline: Option<Instant>) -> Result<(), SendFailed> {
    tokio::select! {
        r = out.send(o) => r.map_err(|_| SendFailed::Closed),
        () = sleep_until(deadline.map(tokio::time::Instant::from_std)) => Err(SendFailed::Late),
    }
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

/// Why to close with 1009 (message too big) when a WebSocket read failed on a message over
/// the size limit; `None` for other failures.
pub(crate) fn too_big(e: &axum::Error) -> Option<String> {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(WsError::Capacity(CapacityError::MessageTooLong { size, max_size })) = s.downcast_ref::<WsError>() {
            return Some(format!("a message of {size} bytes is over the limit of {max_size} bytes"));
        }
        source = s.source();
    }
    None
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
