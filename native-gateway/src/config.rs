//! The gateway's settings from the command line, the environment (`KOMBU_GATEWAY_*`) and a
//! TOML file (`--config`, keys as the long options in snake_case): flags and environment win
//! over the file, the file over [`Config`]'s defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

use crate::server::Config;
use crate::GatewayError;

/// kombu-gateway: bridges browser and edge clients (the kombu-wasm npm package) to a broker.
/// With no --broker it runs on its embedded memory:// broker.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "KOMBU_GATEWAY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Broker URL behind the gateway.
    #[arg(long, env = "KOMBU_GATEWAY_BROKER", hide_env_values = true)]
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
    /// Open TCP connections (HTTP and WebSocket) past which new ones are refused with 503
    /// (0: no limit; default 4096). Keep it under the file limit (`ulimit -n`), halved when a
    /// broker is behind (each client has its own broker connection).
    #[arg(long, env = "KOMBU_GATEWAY_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Open TCP connections from one IP address past which its new ones are refused with 429
    /// (0: no limit; default 256).
    #[arg(long, env = "KOMBU_GATEWAY_MAX_CONNECTIONS_PER_ADDRESS")]
    max_connections_per_address: Option<usize>,
    /// Seconds a new WebSocket has to send hello (/gateway) or its first bytes (/amqp)
    /// before it is closed with 1008 (0: none; default 10).
    #[arg(long, env = "KOMBU_GATEWAY_HELLO_TIMEOUT")]
    hello_timeout: Option<f64>,
    /// Seconds an open connection may go without the client being heard (a request, a pong
    /// to the server's ping, or a message it read) before it is closed with 1001 (0: none;
    /// default 60).
    #[arg(long, env = "KOMBU_GATEWAY_IDLE_TIMEOUT")]
    idle_timeout: Option<f64>,
    /// Seconds between the server's WebSocket pings to open connections (0: none; default 20).
    #[arg(long, env = "KOMBU_GATEWAY_PING_INTERVAL")]
    ping_interval: Option<f64>,
    /// Seconds a connection's close may take before its socket is dropped (0: dropped at
    /// once; default 5).
    #[arg(long, env = "KOMBU_GATEWAY_CLOSE_TIMEOUT")]
    close_timeout: Option<f64>,
    /// Seconds a client has to send an HTTP request's headers, or the next request on a kept
    /// connection (default 10).
    #[arg(long, env = "KOMBU_GATEWAY_HEADER_READ_TIMEOUT")]
    header_read_timeout: Option<f64>,
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
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    hello_timeout: Option<f64>,
    idle_timeout: Option<f64>,
    ping_interval: Option<f64>,
    close_timeout: Option<f64>,
    header_read_timeout: Option<f64>,
}

/// `seconds` as a duration, or the error naming `option`.
fn seconds(option: &'static str, seconds: Option<f64>, default: std::time::Duration) -> Result<std::time::Duration, GatewayError> {
    match seconds {
        None => Ok(default),
        Some(s) => std::time::Duration::try_from_secs_f64(s).map_err(|_| GatewayError::Option { option, reason: format!("{s} is not a number of seconds") }),
    }
}

/// What the embedded broker is configured with: `--data-dir` and its limits.
#[derive(Debug, Default)]
pub struct Embedded {
    /// Where the embedded broker keeps its durable state (`--data-dir`).
    pub data_dir: Option<PathBuf>,
    /// Its memory high watermark and caps on declarations.
    pub limits: kombu::broker::Limits,
}

impl Args {
    /// The server's settings: these flags, then the configuration file they name, then the
    /// defaults.
    ///
    /// # Errors
    /// [`GatewayError::Config`] or [`GatewayError::Tokens`] when the configuration file or the
    /// token file cannot be read or parsed, [`GatewayError::TlsPair`] when only one of the TLS
    /// certificate and key is given, [`GatewayError::EmbeddedOnly`] when the embedded broker's
    /// options are given with another broker.
    pub fn config(&self) -> Result<(Config, Embedded), GatewayError> {
        let file: FileConfig = match &self.config {
            Some(p) => {
                let refused = |reason: String| GatewayError::Config { path: p.clone(), reason };
                let text = std::fs::read_to_string(p).map_err(|e| refused(e.to_string()))?;
                toml::from_str(&text).map_err(|e| refused(crate::auth::toml_error(&text, &e)))?
            }
            None => FileConfig::default(),
        };
        let d = Config::default();
        let broker = self.broker.clone().or(file.broker).unwrap_or(d.broker.clone());
        let embedded = Embedded {
            data_dir: self.data_dir.clone().or(file.data_dir),
            limits: kombu::broker::Limits {
                memory_high_watermark: self.memory_high_watermark.or(file.memory_high_watermark),
                max_queues: self.max_queues.or(file.max_queues),
                max_exchanges: self.max_exchanges.or(file.max_exchanges),
                max_bindings: self.max_bindings.or(file.max_bindings),
            },
        };
        let url = kombu::url::parse_url(&broker).map_err(GatewayError::Broker)?;
        let transport = kombu::url::resolve_alias(&url.transport);
        if transport != "memory" {
            if embedded.data_dir.is_some() {
                return Err(GatewayError::EmbeddedOnly { what: "--data-dir keeps the embedded memory:// broker's state", broker: url.transport });
            }
            if embedded.limits != kombu::broker::Limits::default() {
                return Err(GatewayError::EmbeddedOnly {
                    what: "--memory-high-watermark and --max-queues/--max-exchanges/--max-bindings limit the embedded memory:// broker (set the broker's own limits)",
                    broker: url.transport,
                });
            }
        }
        let auth = match self.tokens.clone().or(file.tokens) {
            Some(p) => Some(std::sync::Arc::new(crate::auth::Auth::load(&p)?)),
            None => None,
        };
        let allowed_origins = if self.allow_origin.is_empty() { file.allow_origin.unwrap_or_default() } else { self.allow_origin.clone() };
        let t = d.timeouts;
        let timeouts = crate::server::Timeouts {
            hello: seconds("--hello-timeout", self.hello_timeout.or(file.hello_timeout), t.hello)?,
            idle: seconds("--idle-timeout", self.idle_timeout.or(file.idle_timeout), t.idle)?,
            ping_interval: seconds("--ping-interval", self.ping_interval.or(file.ping_interval), t.ping_interval)?,
            close: seconds("--close-timeout", self.close_timeout.or(file.close_timeout), t.close)?,
            header_read: seconds("--header-read-timeout", self.header_read_timeout.or(file.header_read_timeout), t.header_read)?,
        };
        if timeouts.header_read.is_zero() {
            return Err(GatewayError::Option { option: "--header-read-timeout", reason: "must be above 0".into() });
        }
        let tls = match (self.tls_cert.clone().or(file.tls_cert), self.tls_key.clone().or(file.tls_key)) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(GatewayError::TlsPair),
        };
        Ok((Config {
            tls,
            auth,
            allowed_origins,
            max_channels: self.max_channels.or(file.max_channels).unwrap_or(d.max_channels),
            max_consumers: self.max_consumers.or(file.max_consumers).unwrap_or(d.max_consumers),
            max_unacked: self.max_unacked.or(file.max_unacked).unwrap_or(d.max_unacked),
            listen: self.listen.or(file.listen).unwrap_or(d.listen),
            broker,
            www: self.www.clone().or(file.www),
            pkg: self.pkg.clone().or(file.pkg),
            max_frame: self.max_frame.or(file.max_frame).unwrap_or(d.max_frame),
            outbox: d.outbox,
            max_connections: self.max_connections.or(file.max_connections).unwrap_or(d.max_connections),
            max_connections_per_address: self.max_connections_per_address.or(file.max_connections_per_address).unwrap_or(d.max_connections_per_address),
            timeouts,
        }, embedded))
    }

    /// The log format (`text` or `json`).
    pub fn log_format(&self) -> &str {
        &self.log_format
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn limits_and_timeouts_come_from_flags_then_the_file_then_the_defaults() {
        let (c, _) = Args::parse_from(["kombu-gateway"]).config().unwrap();
        assert_eq!((c.max_connections, c.max_connections_per_address), (4096, 256));
        assert_eq!(c.timeouts, crate::server::Timeouts::default());
        let file = std::env::temp_dir().join(format!("kombu-gateway-config-{}.toml", kombu::uuid()));
        std::fs::write(&file, "max_connections = 10\nmax_connections_per_address = 2\nhello_timeout = 3\nidle_timeout = 0\nping_interval = 1.5\n").unwrap();
        let args = Args::parse_from(["kombu-gateway", "--config", file.to_str().unwrap(), "--max-connections", "0", "--close-timeout", "0.25"]);
        let (c, _) = args.config().unwrap();
        assert_eq!((c.max_connections, c.max_connections_per_address), (0, 2), "the flag wins over the file");
        let t = c.timeouts;
        assert_eq!((t.hello, t.idle, t.ping_interval, t.close), (Duration::from_secs(3), Duration::ZERO, Duration::from_millis(1500), Duration::from_millis(250)));
        assert_eq!(t.header_read, Duration::from_secs(10));
        let _ = std::fs::remove_file(&file);
        for (flag, value, needle) in [("--idle-timeout", "-1", "--idle-timeout: -1 is not a number of seconds"), ("--header-read-timeout", "0", "--header-read-timeout: must be above 0")] {
            let err = Args::parse_from(["kombu-gateway", &format!("{flag}={value}")]).config().unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
