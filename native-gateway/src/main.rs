//! `kombu-gateway`: serve the gateway protocol, the playground and metrics.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use kombu_gateway::server::{self, Config};
use kombu_gateway::GatewayError;
use serde::Deserialize;

/// kombu-gateway: bridges browser and edge clients (the kombu-wasm npm package) to a broker.
/// With no --broker it runs on its embedded memory:// broker.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "KOMBU_GATEWAY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Broker URL behind the gateway.
    #[arg(long, env = "KOMBU_GATEWAY_BROKER")]
    broker: Option<String>,
    /// Directory of the playground page served at /.
    #[arg(long, env = "KOMBU_GATEWAY_WWW")]
    www: Option<PathBuf>,
    /// Directory of the npm package served at /pkg/.
    #[arg(long, env = "KOMBU_GATEWAY_PKG")]
    pkg: Option<PathBuf>,
    /// Largest frame accepted, in bytes.
    #[arg(long, env = "KOMBU_GATEWAY_MAX_FRAME")]
    max_frame: Option<usize>,
    /// Token file (TOML: [[identity]] name, token, vhosts, configure/write/read patterns,
    /// max_connections). Without it, any client is accepted.
    #[arg(long, env = "KOMBU_GATEWAY_TOKENS")]
    tokens: Option<PathBuf>,
    /// Allowed browser Origin (repeatable; default any).
    #[arg(long = "allow-origin", env = "KOMBU_GATEWAY_ALLOW_ORIGIN", value_delimiter = ',')]
    allow_origin: Vec<String>,
    /// Channels per connection.
    #[arg(long, env = "KOMBU_GATEWAY_MAX_CHANNELS")]
    max_channels: Option<usize>,
    /// Consumers per channel.
    #[arg(long, env = "KOMBU_GATEWAY_MAX_CONSUMERS")]
    max_consumers: Option<usize>,
    /// Unacknowledged deliveries per channel (0: no limit): the channel-wide prefetch window
    /// the gateway sets on the broker; no_ack consumers are paced by it too.
    #[arg(long, env = "KOMBU_GATEWAY_MAX_UNACKED")]
    max_unacked: Option<u16>,
    /// Serve HTTPS and wss:// with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "KOMBU_GATEWAY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "KOMBU_GATEWAY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Keep the embedded broker's durable exchanges and queues, their bindings and the
    /// persistent messages (delivery_mode 2) in its durable queues in this directory
    /// (created if needed); they survive a restart or a crash once confirmed. Only with the
    /// embedded memory:// broker. Without it the embedded broker keeps everything in memory
    /// only, and a restart loses it.
    #[arg(long, env = "KOMBU_GATEWAY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Embedded broker: bytes of messages its queues may hold. Past it, publishes are
    /// refused (nacked on channels in confirm mode, otherwise the channel is closed with
    /// RESOURCE_ERROR) until consumers bring it under. Default: no limit.
    #[arg(long, env = "KOMBU_GATEWAY_MEMORY_HIGH_WATERMARK")]
    memory_high_watermark: Option<usize>,
    /// Embedded broker: queues per virtual host (default: no limit).
    #[arg(long, env = "KOMBU_GATEWAY_MAX_QUEUES")]
    max_queues: Option<usize>,
    /// Embedded broker: exchanges per virtual host, besides the predeclared ones (default: no limit).
    #[arg(long, env = "KOMBU_GATEWAY_MAX_EXCHANGES")]
    max_exchanges: Option<usize>,
    /// Embedded broker: bindings per virtual host (default: no limit).
    #[arg(long, env = "KOMBU_GATEWAY_MAX_BINDINGS")]
    max_bindings: Option<usize>,
    /// TOML configuration file (keys as the long options, snake_case); flags win.
    #[arg(long, env = "KOMBU_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "KOMBU_GATEWAY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    broker: Option<String>,
    www: Option<PathBuf>,
    pkg: Option<PathBuf>,
    max_frame: Option<usize>,
    tokens: Option<PathBuf>,
    allow_origin: Option<Vec<String>>,
    max_channels: Option<usize>,
    max_consumers: Option<usize>,
    max_unacked: Option<u16>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    memory_high_watermark: Option<usize>,
    max_queues: Option<usize>,
    max_exchanges: Option<usize>,
    max_bindings: Option<usize>,
}

/// What the embedded broker is configured with: `--data-dir` and its limits.
#[derive(Debug, Default)]
struct Embedded {
    data_dir: Option<PathBuf>,
    limits: kombu::broker::Limits,
}

/// The embedded broker's options, refused with another broker.
fn embedded(args: &Args, file: &FileConfig, broker: &str) -> Result<Embedded, GatewayError> {
    let e = Embedded {
        data_dir: args.data_dir.clone().or(file.data_dir.clone()),
        limits: kombu::broker::Limits {
            memory_high_watermark: args.memory_high_watermark.or(file.memory_high_watermark),
            max_queues: args.max_queues.or(file.max_queues),
            max_exchanges: args.max_exchanges.or(file.max_exchanges),
            max_bindings: args.max_bindings.or(file.max_bindings),
        },
    };
    let url = kombu::url::parse_url(broker).map_err(GatewayError::Broker)?;
    if kombu::url::resolve_alias(&url.transport) != "memory" {
        if e.data_dir.is_some() {
            return Err(GatewayError::Config(
                "data_dir".into(),
                format!("--data-dir keeps the embedded memory:// broker's state; the broker is {}", url.transport),
            ));
        }
        if e.limits != kombu::broker::Limits::default() {
            return Err(GatewayError::Config(
                "limits".into(),
                format!("--memory-high-watermark and --max-queues/--max-exchanges/--max-bindings limit the embedded memory:// broker; the broker is {} (set its own limits)", url.transport),
            ));
        }
    }
    Ok(e)
}

fn config(args: &Args) -> Result<(Config, Embedded), GatewayError> {
    let file: FileConfig = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| GatewayError::Config(p.display().to_string(), e.to_string()))?;
            toml::from_str(&text).map_err(|e| GatewayError::Config(p.display().to_string(), e.to_string()))?
        }
        None => FileConfig::default(),
    };
    let d = Config::default();
    let broker = args.broker.clone().or(file.broker.clone()).unwrap_or(d.broker.clone());
    let embedded = embedded(args, &file, &broker)?;
    let auth = match args.tokens.clone().or(file.tokens) {
        Some(p) => Some(std::sync::Arc::new(kombu_gateway::auth::Auth::load(&p)?)),
        None => None,
    };
    let allowed_origins = if args.allow_origin.is_empty() { file.allow_origin.unwrap_or_default() } else { args.allow_origin.clone() };
    let tls = match (args.tls_cert.clone().or(file.tls_cert), args.tls_key.clone().or(file.tls_key)) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err(GatewayError::Config("tls".into(), "tls_cert and tls_key go together".into())),
    };
    Ok((Config {
        tls,
        auth,
        allowed_origins,
        max_channels: args.max_channels.or(file.max_channels).unwrap_or(d.max_channels),
        max_consumers: args.max_consumers.or(file.max_consumers).unwrap_or(d.max_consumers),
        max_unacked: args.max_unacked.or(file.max_unacked).unwrap_or(d.max_unacked),
        listen: args.listen.or(file.listen).unwrap_or(d.listen),
        broker,
        www: args.www.clone().or(file.www),
        pkg: args.pkg.clone().or(file.pkg),
        max_frame: args.max_frame.or(file.max_frame).unwrap_or(d.max_frame),
        outbox: d.outbox,
    }, embedded))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if args.log_format == "json" {
        tracing_subscriber::fmt().with_env_filter(filter).json().init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    kombu_gateway::register_transports();
    let (cfg, embedded) = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kombu-gateway: {e}");
            std::process::exit(2);
        }
    };
    if let Some(dir) = &embedded.data_dir {
        if let Err(e) = kombu_gateway::store::attach(dir) {
            eprintln!("kombu-gateway: {e}");
            std::process::exit(1);
        }
    }
    // After recovery, which restores whatever was kept whatever the limits.
    kombu::transport::memory::MemoryBroker::global().with(|b| b.set_limits(embedded.limits));
    let tls = cfg.tls.is_some();
    let running = match server::start(cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kombu-gateway: {e}");
            std::process::exit(1);
        }
    };
    let (http, ws) = if tls { ("https", "wss") } else { ("http", "ws") };
    println!("kombu-gateway {} listening on {http}://{}/ (gateway: {ws}://{}/gateway)", env!("CARGO_PKG_VERSION"), running.addr, running.addr);
    let stop = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    };
    stop.await;
    tracing::info!("shutting down: closing client connections (unacked deliveries return to the broker)");
    running.shutdown().await;
    if embedded.data_dir.is_some() {
        kombu_gateway::store::flush(std::time::Duration::from_secs(5));
    }
}
