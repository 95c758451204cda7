//! The gateway server: `/gateway` (WebSocket, protocol `kombu-gateway.v1`), `/healthz`,
//! `/metrics`, and the playground.
//!
//! Each WebSocket connection gets its own backend connection from the core's transport
//! registry (`memory://` by default), so the broker's semantics apply unchanged: a client
//! that disconnects has its backend connection closed and its unacknowledged deliveries
//! return to their queues.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use kombu::gateway::{self, ClientHeader, MessageHeader, Request, ServerFrame, SUBPROTOCOL};
use kombu::spec::{BasicQos, Content, ServerEvent};
use kombu::transport::{self, ConnectInfo, RawChannel, RawConnection};
use kombu::{Error, Value};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tower_http::services::ServeDir;

use crate::GatewayError;

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

/// Counters exposed at `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    connections: AtomicU64,
    connections_total: AtomicU64,
    channels: AtomicU64,
    consumers: AtomicU64,
    published: AtomicU64,
    published_bytes: AtomicU64,
    delivered: AtomicU64,
    acked: AtomicU64,
    rejected: AtomicU64,
    errors: AtomicU64,
    protocol_errors: AtomicU64,
    requests: AtomicU64,
    /// Request latency histogram buckets (seconds): counts of requests at or below each.
    latency: [AtomicU64; 8],
    latency_sum_us: AtomicU64,
}

const BUCKETS: [f64; 8] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 1.0];

impl Metrics {
    fn observe(&self, started: Instant) {
        let s = started.elapsed().as_secs_f64();
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add((s * 1e6) as u64, Ordering::Relaxed);
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.latency[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = String::new();
        for (name, help, kind, v) in [
            ("kombu_gateway_connections", "Open client connections.", "gauge", g(&self.connections)),
            ("kombu_gateway_connections_total", "Client connections accepted.", "counter", g(&self.connections_total)),
            ("kombu_gateway_channels", "Open channels.", "gauge", g(&self.channels)),
            ("kombu_gateway_consumers", "Active consumers.", "gauge", g(&self.consumers)),
            ("kombu_gateway_published_total", "Messages published.", "counter", g(&self.published)),
            ("kombu_gateway_published_bytes_total", "Body bytes published.", "counter", g(&self.published_bytes)),
            ("kombu_gateway_delivered_total", "Messages delivered to clients.", "counter", g(&self.delivered)),
            ("kombu_gateway_acked_total", "Acknowledgements received (an ack with multiple counts once).", "counter", g(&self.acked)),
            ("kombu_gateway_rejected_total", "Rejections and nacks.", "counter", g(&self.rejected)),
            ("kombu_gateway_errors_total", "Requests that failed.", "counter", g(&self.errors)),
            ("kombu_gateway_protocol_errors_total", "Malformed frames (the connection is closed).", "counter", g(&self.protocol_errors)),
        ] {
            s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"));
        }
        s.push_str("# HELP kombu_gateway_request_seconds Request latency.\n# TYPE kombu_gateway_request_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            s.push_str(&format!("kombu_gateway_request_seconds_bucket{{le=\"{b}\"}} {}\n", g(&self.latency[i])));
        }
        s.push_str(&format!("kombu_gateway_request_seconds_bucket{{le=\"+Inf\"}} {}\n", g(&self.requests)));
        s.push_str(&format!("kombu_gateway_request_seconds_sum {}\n", g(&self.latency_sum_us) as f64 / 1e6));
        s.push_str(&format!("kombu_gateway_request_seconds_count {}\n", g(&self.requests)));
        s
    }
}

struct AppState {
    /// Set on shutdown: client connections end (their unacked deliveries are requeued).
    stopping: tokio::sync::watch::Receiver<bool>,
    config: Config,
    metrics: Arc<Metrics>,
    info: ConnectInfo,
    transport: Arc<dyn transport::Transport>,
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
    let url = kombu::url::parse_url(&config.broker).map_err(GatewayError::Broker)?;
    let transport_name = kombu::url::resolve_alias(&url.transport).to_owned();
    let transport = transport::lookup(&transport_name).map_err(GatewayError::Broker)?;
    let info = ConnectInfo {
        ssl: url.ssl().unwrap_or(matches!(transport_name.as_str(), "amqps" | "rediss")),
        transport: transport_name,
        hostname: url.hostname.clone().unwrap_or_else(|| "localhost".into()),
        port: url.port,
        userid: url.userid.clone(),
        password: url.password.clone(),
        virtual_host: url.virtual_host.clone().unwrap_or_else(|| "/".into()),
        path: url.path.clone(),
        options: url.transport_options(),
        ..Default::default()
    };
    let tls = match &config.tls {
        Some((cert, key)) => Some(crate::tls::server_config(cert, key).map_err(|e| GatewayError::Config("tls".into(), e.to_string()))?),
        None => None,
    };
    let metrics = Arc::new(Metrics::default());
    let (stop_clients, stopping) = tokio::sync::watch::channel(false);
    let relay = matches!(info.transport.as_str(), "amqp" | "amqps").then(|| {
        Arc::new(crate::relay::RelayConfig { upstream: info.clone(), auth: config.auth.clone(), frame_max: u32::try_from(config.max_frame).unwrap_or(u32::MAX) })
    });
    let state = Arc::new(AppState { stopping, config: config.clone(), metrics: metrics.clone(), info, transport, relay });
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

/// `GET /api/snapshot?vhost=/name`: exchanges, queues (depths, consumers, unacked) and
/// bindings of a virtual host of the embedded broker, for the playground. 404 for other
/// brokers or unknown virtual hosts.
async fn snapshot_handler(State(state): State<Arc<AppState>>, axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>) -> Response {
    if state.info.transport != "memory" {
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
    if state.transport.driver_name() == "redis" {
        text.push_str(&crate::redis::StoreCounters::global().render());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `GET /healthz`: `ok`; with a broker other than the embedded one, only when a connection
/// to it opens now (503 naming the error otherwise).
async fn healthz_handler(State(state): State<Arc<AppState>>) -> Response {
    if state.info.transport == "memory" {
        return "ok\n".into_response();
    }
    let broker = kombu::url::sanitize(&state.config.broker, "**");
    let check = tokio::time::timeout(std::time::Duration::from_secs(5), state.transport.establish_connection(&state.info)).await;
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
    ws.on_upgrade(move |socket| async move {
        state.metrics.connections.fetch_add(1, Ordering::Relaxed);
        state.metrics.connections_total.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = crate::relay::relay(socket, relay, state.stopping.clone()).await {
            tracing::debug!("/amqp connection ended: {e}");
        }
        state.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    })
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
    ws.on_upgrade(move |socket| async move {
        state.metrics.connections.fetch_add(1, Ordering::Relaxed);
        state.metrics.connections_total.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = serve_client(socket, state.clone()).await {
            tracing::debug!("client connection ended: {e}");
        }
        state.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    })
}

fn message_header(delivery_tag: u64, redelivered: bool, exchange: &str, routing_key: &str, content: &Content) -> MessageHeader {
    MessageHeader {
        delivery_tag,
        redelivered,
        exchange: exchange.to_owned(),
        routing_key: routing_key.to_owned(),
        properties: content.properties.clone(),
    }
}

/// The WebSocket message that carries `ev` to the client.
fn event_message(ev: ServerEvent, metrics: &Metrics) -> Bytes {
    let (frame, body) = match ev {
        ServerEvent::Deliver { channel, consumer_tag, delivery } => {
            metrics.delivered.fetch_add(1, Ordering::Relaxed);
            // One per message: written from the delivery as it is, without building the frame.
            return gateway::encode_deliver(channel, &consumer_tag, &delivery);
        }
        ServerEvent::Return { channel, returned } => {
            let m = message_header(0, false, &returned.exchange, &returned.routing_key, &returned.content);
            (ServerFrame::Return { channel, reply_code: returned.reply_code, reply_text: returned.reply_text, message: m }, returned.content.body.clone())
        }
        ServerEvent::Cancel { channel, consumer_tag } => (ServerFrame::Cancel { channel, consumer_tag: consumer_tag.to_string() }, Bytes::new()),
        ServerEvent::ChannelClosed { channel, error } => (ServerFrame::error(None, Some(channel), &error), Bytes::new()),
        ServerEvent::ConnectionClosed { error } => (ServerFrame::error(None, None, &error), Bytes::new()),
        ServerEvent::Ack { channel, delivery_tag, multiple } => (ServerFrame::Confirm { channel, delivery_tag, multiple, ack: true }, Bytes::new()),
        ServerEvent::Nack { channel, delivery_tag, multiple } => (ServerFrame::Confirm { channel, delivery_tag, multiple, ack: false }, Bytes::new()),
        ServerEvent::Flow { channel, active } => (ServerFrame::Flow { channel, active }, Bytes::new()),
    };
    gateway::encode(&frame, &body)
}

async fn send(out: &mpsc::Sender<Message>, frame: &ServerFrame, body: &[u8]) -> bool {
    out.send(Message::Binary(gateway::encode(frame, body))).await.is_ok()
}

async fn close_with(out: &mpsc::Sender<Message>, code: u16, reason: String) {
    let _ = out.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

/// One client: hello, then requests until the socket closes.
async fn serve_client(socket: WebSocket, state: Arc<AppState>) -> Result<(), Error> {
    let (sink, mut stream) = socket.split();
    // Bounded: a client that does not read stops the events pump (bounded memory).
    let (out, out_rx) = mpsc::channel::<Message>(state.config.outbox);
    let writer = tokio::spawn(crate::writer::write_socket(sink, out_rx, || gateway::BATCH_BYTES, gateway::encode_batch));
    let metrics = state.metrics.clone();

    // The first frame must be hello.
    let (vhost, token, hello_id) = loop {
        match stream.next().await {
            Some(Ok(Message::Binary(b))) => match gateway::decode_client(&b) {
                Ok((ClientHeader { id, request: Request::Hello { vhost, token, .. } }, _)) => break (vhost, token, id),
                Ok(_) => {
                    metrics.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    close_with(&out, 1008, "the first frame must be hello".into()).await;
                    drop(out);
                    let _ = writer.await;
                    return Err(Error::Value("no hello".into()));
                }
                Err(e) => {
                    metrics.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    close_with(&out, 1002, truncate(e.to_string())).await;
                    drop(out);
                    let _ = writer.await;
                    return Err(e);
                }
            },
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            _ => {
                drop(out);
                let _ = writer.await;
                return Ok(());
            }
        }
    };
    let mut info = state.info.clone();
    if let Some(v) = vhost {
        info.virtual_host = v;
    }
    let admitted = match &state.config.auth {
        None => None,
        Some(auth) => match auth.admit(token.as_deref(), &info.virtual_host) {
            Ok(a) => Some(a),
            Err((code, text)) => {
                state.metrics.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(code, %text, "refused at hello");
                let f = ServerFrame::Error { id: Some(hello_id), channel: None, scope: gateway::Scope::Connection, code, name: if code == 429 { "LimitExceeded".into() } else { "AccessRefused".into() }, text: text.clone() };
                send(&out, &f, b"").await;
                close_with(&out, 1008, truncate(text)).await;
                drop(out);
                let _ = writer.await;
                return Err(Error::Value("refused".into()));
            }
        },
    };
    if state.transport.driver_name() == "redis" {
        crate::redis::scope_to_vhost(&mut info, &state.info);
    }
    let backend = match state.transport.establish_connection(&info).await {
        Ok(b) => b,
        Err(e) => {
            send(&out, &ServerFrame::error(Some(hello_id), None, &e), b"").await;
            close_with(&out, 1011, truncate(e.to_string())).await;
            drop(out);
            let _ = writer.await;
            return Err(e);
        }
    };
    let hello = json!({"server": format!("kombu-gateway {}", env!("CARGO_PKG_VERSION")), "protocol": SUBPROTOCOL, "max_frame": state.config.max_frame, "batch": true});
    send(&out, &ServerFrame::Ok { id: hello_id, result: hello }, b"").await;

    let auto_ack = Arc::new(AutoAck::default());
    // Pump broker events to the client.
    let pump = {
        let auto_ack = auto_ack.clone();
        let backend = backend.clone();
        let out = out.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            while let Ok(ev) = backend.next_event(None).await {
                let closed = matches!(ev, ServerEvent::ConnectionClosed { .. });
                // A delivery to a consumer the client asked for with no_ack: acknowledged
                // upstream once the client's socket writer has it.
                let auto = match &ev {
                    ServerEvent::Deliver { channel, consumer_tag, delivery } => auto_ack.channel_for(*channel, consumer_tag).map(|ch| (ch, delivery.delivery_tag)),
                    _ => None,
                };
                if out.send(Message::Binary(event_message(ev, &metrics))).await.is_err() || closed {
                    break;
                }
                if let Some((ch, tag)) = auto {
                    let _ = ch.basic_ack(tag, false);
                }
            }
        })
    };

    let mut session = Session { channels: HashMap::new(), consumers: HashMap::new(), auto_ack: auto_ack.clone() };
    let mut stopping = state.stopping.clone();
    let result = 'conn: loop {
        let next = tokio::select! {
            // Frames that already arrived are handled before a shutdown ends the connection.
            biased;
            m = stream.next() => m,
            _ = async {
                while !*stopping.borrow_and_update() {
                    if stopping.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            } => {
                close_with(&out, 1001, "kombu-gateway is shutting down".into()).await;
                break Ok(());
            }
        };
        let msg = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => break Err(Error::RecoverableConnection(format!("WebSocket error: {e}"))),
            None => break Ok(()),
        };
        let bytes = match msg {
            Message::Binary(b) => b,
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Close(_) => break Ok(()),
            Message::Text(_) => {
                metrics.protocol_errors.fetch_add(1, Ordering::Relaxed);
                close_with(&out, 1003, "text frames are not part of kombu-gateway.v1; send binary frames".into()).await;
                break Err(Error::Decode("text frame".into()));
            }
        };
        let frames = match gateway::split_batch(&bytes) {
            Ok(f) => f,
            Err(e) => {
                metrics.protocol_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("malformed batch: {e}");
                close_with(&out, 1002, truncate(e.to_string())).await;
                break Err(e);
            }
        };
        for frame in frames {
            let (header, body) = match gateway::decode_client(&frame) {
                Ok(x) => x,
                Err(e) => {
                    metrics.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("malformed frame: {e}");
                    close_with(&out, 1002, truncate(e.to_string())).await;
                    break 'conn Err(e);
                }
            };
            let started = Instant::now();
            let id = header.id;
            let is_close = matches!(header.request, Request::Close);
            let limits = Limits { max_channels: state.config.max_channels, max_consumers: state.config.max_consumers, max_unacked: state.config.max_unacked };
            let (chan, answer) = match admitted.as_ref().map(|a| a.0.authorize(&header.request)) {
                Some(Err(e)) => (request_channel(&header.request), Err(e)),
                _ => handle(&*backend, &mut session, &limits, header.request, body, &metrics).await,
            };
            metrics.observe(started);
            let ok = match answer {
                Ok(None) => true,
                Ok(Some(Answer::Result(result))) => send(&out, &ServerFrame::Ok { id, result }, b"").await,
                Ok(Some(Answer::Get(frame, body))) => send(&out, &frame.with_id(id), &body).await,
                Err(e) => {
                    metrics.errors.fetch_add(1, Ordering::Relaxed);
                    if let Some(c) = chan {
                        if matches!(e, Error::Channel { .. }) {
                            session.auto_ack.forget_channel(c);
                            session.channels.remove(&c);
                            metrics.channels.fetch_sub(1, Ordering::Relaxed);
                            metrics.consumers.fetch_sub(session.consumers.remove(&c).unwrap_or(0) as u64, Ordering::Relaxed);
                        }
                    }
                    send(&out, &ServerFrame::error(Some(id), chan, &e), b"").await
                }
            };
            if !ok || is_close {
                break 'conn Ok(());
            }
        }
    };
    // Closing the backend connection returns unacknowledged deliveries to their queues.
    metrics.channels.fetch_sub(session.channels.len() as u64, Ordering::Relaxed);
    metrics.consumers.fetch_sub(session.consumers.values().sum::<usize>() as u64, Ordering::Relaxed);
    let _ = backend.close().await;
    pump.abort();
    drop(out);
    let _ = writer.await;
    result
}

fn truncate(mut s: String) -> String {
    // WebSocket close reasons are limited to 123 bytes.
    if s.len() > 120 {
        let mut end = 120;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

enum Answer {
    Result(Value),
    Get(Box<GetFrame>, Bytes),
}

struct GetFrame {
    channel: u32,
    message_count: u32,
    message: MessageHeader,
}

impl GetFrame {
    fn with_id(self, id: u64) -> ServerFrame {
        ServerFrame::GetOk { id, channel: self.channel, message_count: self.message_count, message: self.message }
    }
}

/// What one client connection has open.
struct Session {
    channels: HashMap<u32, Arc<dyn RawChannel>>,
    /// Consumers per channel.
    consumers: HashMap<u32, usize>,
    auto_ack: Arc<AutoAck>,
}

struct Limits {
    max_channels: usize,
    max_consumers: usize,
    max_unacked: u16,
}

/// The consumers a client asked for with `no_ack`: the gateway consumes them with
/// acknowledgements (so the broker paces them by the prefetch window) and acknowledges each
/// delivery itself once the client's socket writer has taken it.
#[derive(Default)]
struct AutoAck {
    consumers: std::sync::Mutex<HashMap<(u32, String), Arc<dyn RawChannel>>>,
    next_tag: AtomicU64,
}

impl AutoAck {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(u32, String), Arc<dyn RawChannel>>> {
        self.consumers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn channel_for(&self, channel: u32, consumer_tag: &str) -> Option<Arc<dyn RawChannel>> {
        let map = self.lock();
        if map.is_empty() {
            return None;
        }
        map.get(&(channel, consumer_tag.to_owned())).cloned()
    }

    fn forget_channel(&self, channel: u32) {
        self.lock().retain(|(c, _), _| *c != channel);
    }
}

fn request_channel(r: &Request) -> Option<u32> {
    serde_json::to_value(r).ok().and_then(|v| v.get("channel").and_then(Value::as_u64)).map(|c| c as u32)
}

fn channel_of(channels: &HashMap<u32, Arc<dyn RawChannel>>, id: u32) -> Result<Arc<dyn RawChannel>, Error> {
    channels.get(&id).cloned().ok_or_else(|| Error::channel(kombu::ReplyCode::ChannelError, format!("CHANNEL_ERROR - channel {id} is not open")))
}

/// Run one request on the backend. Returns the channel it concerned (for error frames) and
/// the answer (`None`: no answer, as for acks).
async fn handle(
    backend: &dyn RawConnection,
    session: &mut Session,
    limits: &Limits,
    request: Request,
    body: Bytes,
    metrics: &Metrics,
) -> (Option<u32>, Result<Option<Answer>, Error>) {
    let Session { channels, consumers, auto_ack } = session;
    let unit = |r: Result<(), Error>| r.map(|_| Some(Answer::Result(Value::Null)));
    match request {
        Request::Hello { .. } => (None, Err(Error::Value("hello was already received".into()))),
        Request::ChannelOpen if channels.len() >= limits.max_channels => (None, Err(Error::ChannelLimitExceeded { limit: limits.max_channels })),
        Request::ChannelOpen => match backend.open_channel().await {
            Ok(ch) => {
                if limits.max_unacked > 0 {
                    let window = BasicQos { prefetch_size: 0, prefetch_count: limits.max_unacked, global: true };
                    if let Err(e) = ch.basic_qos(window).await {
                        let _ = ch.close().await;
                        return (None, Err(e));
                    }
                }
                let id = ch.channel_id();
                channels.insert(id, ch);
                metrics.channels.fetch_add(1, Ordering::Relaxed);
                (Some(id), Ok(Some(Answer::Result(json!({ "channel": id })))))
            }
            Err(e) => (None, Err(e)),
        },
        Request::Close => (None, Ok(Some(Answer::Result(Value::Null)))),
        Request::ChannelClose { channel } => {
            auto_ack.forget_channel(channel);
            metrics.consumers.fetch_sub(consumers.remove(&channel).unwrap_or(0) as u64, Ordering::Relaxed);
            let r = match channels.remove(&channel) {
                Some(ch) => {
                    metrics.channels.fetch_sub(1, Ordering::Relaxed);
                    ch.close().await
                }
                None => Ok(()),
            };
            (Some(channel), unit(r))
        }
        other => {
            let channel = match &other {
                Request::ExchangeDeclare { channel, .. }
                | Request::ExchangeDelete { channel, .. }
                | Request::ExchangeBind { channel, .. }
                | Request::ExchangeUnbind { channel, .. }
                | Request::QueueDeclare { channel, .. }
                | Request::QueueBind { channel, .. }
                | Request::QueueUnbind { channel, .. }
                | Request::QueuePurge { channel, .. }
                | Request::QueueDelete { channel, .. }
                | Request::BasicPublish { channel, .. }
                | Request::BasicGet { channel, .. }
                | Request::BasicConsume { channel, .. }
                | Request::BasicCancel { channel, .. }
                | Request::BasicAck { channel, .. }
                | Request::BasicReject { channel, .. }
                | Request::BasicNack { channel, .. }
                | Request::BasicRecover { channel, .. }
                | Request::BasicQos { channel, .. }
                | Request::Flow { channel, .. }
                | Request::ConfirmSelect { channel } => *channel,
                _ => unreachable!("handled above"),
            };
            let ch = match channel_of(channels, channel) {
                Ok(c) => c,
                Err(e) => return (Some(channel), Err(e)),
            };
            let r = match other {
                Request::ExchangeDeclare { method, .. } => unit(ch.exchange_declare(&method).await),
                Request::ExchangeDelete { method, .. } => unit(ch.exchange_delete(&method).await),
                Request::ExchangeBind { method, .. } => unit(ch.exchange_bind(&method).await),
                Request::ExchangeUnbind { method, .. } => unit(ch.exchange_unbind(&method).await),
                Request::QueueDeclare { method, .. } => ch.queue_declare(&method).await.map(|ok| Some(Answer::Result(serde_json::to_value(ok).unwrap_or(Value::Null)))),
                Request::QueueBind { method, .. } => unit(ch.queue_bind(&method).await),
                Request::QueueUnbind { method, .. } => unit(ch.queue_unbind(&method).await),
                Request::QueuePurge { queue, .. } => ch.queue_purge(&queue).await.map(|n| Some(Answer::Result(json!({ "message_count": n })))),
                Request::QueueDelete { method, .. } => ch.queue_delete(&method).await.map(|n| Some(Answer::Result(json!({ "message_count": n })))),
                Request::BasicPublish { method, properties, .. } => {
                    metrics.published.fetch_add(1, Ordering::Relaxed);
                    metrics.published_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                    // Like AMQP's basic.publish: no answer unless it fails.
                    ch.basic_publish(&method, Arc::new(Content { properties, body })).await.map(|_| None)
                }
                Request::BasicGet { queue, no_ack, .. } => match ch.basic_get(&queue, no_ack).await {
                    Ok(None) => Ok(Some(Answer::Result(json!({ "empty": true })))),
                    Ok(Some(g)) => {
                        metrics.delivered.fetch_add(1, Ordering::Relaxed);
                        let d = &g.delivery;
                        let m = message_header(d.delivery_tag, d.redelivered, &d.exchange, &d.routing_key, &d.content);
                        Ok(Some(Answer::Get(Box::new(GetFrame { channel, message_count: g.message_count, message: m }), d.content.body.clone())))
                    }
                    Err(e) => Err(e),
                },
                Request::BasicConsume { .. } if consumers.get(&channel).copied().unwrap_or(0) >= limits.max_consumers => {
                    Err(Error::LimitExceeded(format!("channel {channel} already has its maximum of {} consumers", limits.max_consumers)))
                }
                Request::BasicConsume { mut method, .. } => {
                    let auto = method.no_ack && limits.max_unacked > 0;
                    if auto {
                        // Registered before the consume so that no delivery can miss it.
                        if method.consumer_tag.is_empty() {
                            method.consumer_tag = format!("amq.ctag-gateway-{}", auto_ack.next_tag.fetch_add(1, Ordering::Relaxed) + 1);
                        }
                        method.no_ack = false;
                        auto_ack.lock().insert((channel, method.consumer_tag.clone()), ch.clone());
                    }
                    match ch.basic_consume(&method).await {
                        Ok(tag) => {
                            metrics.consumers.fetch_add(1, Ordering::Relaxed);
                            *consumers.entry(channel).or_default() += 1;
                            Ok(Some(Answer::Result(json!({ "consumer_tag": tag }))))
                        }
                        Err(e) => {
                            if auto {
                                auto_ack.lock().remove(&(channel, method.consumer_tag));
                            }
                            Err(e)
                        }
                    }
                }
                Request::BasicCancel { consumer_tag, .. } => {
                    let r = ch.basic_cancel(&consumer_tag).await;
                    auto_ack.lock().remove(&(channel, consumer_tag.clone()));
                    if r.is_ok() {
                        metrics.consumers.fetch_sub(1, Ordering::Relaxed);
                        if let Some(n) = consumers.get_mut(&channel) {
                            *n = n.saturating_sub(1);
                        }
                    }
                    unit(r)
                }
                Request::BasicAck { delivery_tag, multiple, .. } => {
                    metrics.acked.fetch_add(1, Ordering::Relaxed);
                    ch.basic_ack(delivery_tag, multiple).map(|_| None)
                }
                Request::BasicReject { delivery_tag, requeue, .. } => {
                    metrics.rejected.fetch_add(1, Ordering::Relaxed);
                    ch.basic_reject(delivery_tag, requeue).map(|_| None)
                }
                Request::BasicNack { delivery_tag, multiple, requeue, .. } => {
                    metrics.rejected.fetch_add(1, Ordering::Relaxed);
                    ch.basic_nack(delivery_tag, multiple, requeue).map(|_| None)
                }
                Request::BasicRecover { requeue, .. } => unit(ch.basic_recover(requeue).await),
                Request::BasicQos { mut qos, .. } => {
                    // The channel-wide window never exceeds the gateway's unacked limit.
                    if qos.global && limits.max_unacked > 0 && (qos.prefetch_count == 0 || qos.prefetch_count > limits.max_unacked) {
                        qos.prefetch_count = limits.max_unacked;
                    }
                    unit(ch.basic_qos(qos).await)
                }
                Request::Flow { active, .. } => ch.flow(active).await.map(|a| Some(Answer::Result(json!({ "active": a })))),
                Request::ConfirmSelect { .. } => unit(ch.confirm_select().await),
                _ => unreachable!("handled above"),
            };
            (Some(channel), r)
        }
    }
}
