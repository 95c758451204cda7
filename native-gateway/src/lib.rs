//! `kombu-gateway`: the native side of kombu-wasm.
//!
//! - [`server`]: the gateway server (`/gateway` WebSocket with the `kombu-gateway.v1`
//!   protocol, `/healthz`, `/metrics`, the playground) over any transport of the core —
//!   the embedded `memory://` broker by default.
//! - [`relay`]: the `/amqp` endpoint, AMQP 0-9-1 over WebSocket relayed to the RabbitMQ the
//!   gateway fronts.
//! - [`transports`]: the native `amqp://` and `gateway+ws://` transports, so the Kombu API in
//!   Rust reaches RabbitMQ or a gateway by URL.
//!
//! Call [`register_transports`] once to make the native transports known to
//! `kombu::Connection`.

#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod redis;
pub mod sqs;
pub mod relay;
pub mod server;
pub mod store;
pub mod tls;
pub mod transports;
mod writer;

use std::sync::Arc;

/// Errors of the gateway binary and server (the Kombu API's errors are `kombu::Error`).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The broker URL is invalid or names an unknown transport.
    #[error("broker: {0}")]
    Broker(kombu::Error),
    /// `--broker` is a `;`-separated failover list: the gateway fronts one broker.
    #[error("the gateway fronts one broker; --broker has {urls} `;`-separated URLs")]
    FailoverList {
        /// How many URLs were given.
        urls: usize,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    /// The configuration file could not be read or parsed.
    #[error("configuration file {}: {reason}", path.display())]
    Config {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The token file could not be read or parsed.
    #[error("token file {}: {reason}", path.display())]
    Tokens {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Only one of the TLS certificate chain and private key was given.
    #[error("tls: tls_cert and tls_key go together")]
    TlsPair,
    /// An option of the embedded memory:// broker was given with another broker.
    #[error("{what}; the broker is {broker}")]
    EmbeddedOnly {
        /// The options and what they do.
        what: &'static str,
        /// The transport of the configured broker.
        broker: String,
    },
    /// An option's value is out of its range.
    #[error("{option}: {reason}")]
    Option {
        /// The option.
        option: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The TLS certificate chain or private key could not be used.
    #[error("tls: {0}")]
    Tls(kombu::Error),
}

/// Why a client connection (`/gateway` or `/amqp`) ended other than by a close: logged, and
/// told to the client before its socket closes.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The first frame of a `/gateway` connection was not `hello` (closed with 1008).
    #[error("the first frame was not hello")]
    NoHello,
    /// The client's token or virtual host was refused (`code`: 401, 403, 429 or 530).
    #[error("refused ({code}): {text}")]
    Refused {
        /// The gateway protocol's error code, or AMQP's reply code on `/amqp`.
        code: u16,
        /// Why.
        text: String,
    },
    /// A text WebSocket message: both protocols are binary (closed with 1003).
    #[error("a text message (the protocol is binary)")]
    TextMessage,
    /// `/amqp` did not start with AMQP 0-9-1's protocol header (closed with 1002).
    #[error("not AMQP 0-9-1")]
    NotAmqp,
    /// A WebSocket message over the size limit (closed with 1009).
    #[error("too big: {0}")]
    TooBig(String),
    /// A malformed frame, batch or method (closed with 1002).
    #[error("malformed: {0}")]
    Malformed(kombu::Error),
    /// The broker could not be reached, failed, or did not answer in time (closed with 1011).
    #[error("broker: {0}")]
    Broker(kombu::Error),
    /// The client's socket failed.
    #[error("WebSocket error: {0}")]
    Socket(String),
    /// A timeout or limit closed the connection (no hello in time, idle, a ping flood).
    #[error("closed: {0}")]
    Limit(String),
}

/// Lock `m`, taking the data even if a panicking thread poisoned the lock: the state guarded
/// in this crate stays consistent between statements.
pub(crate) fn lock<T: ?Sized>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `s` cut to at most `max` bytes, on a character boundary (WebSocket close reasons, AMQP
/// short strings).
pub(crate) fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Register the native transports (`gateway+ws`, `gateway+wss`, `amqp`, `amqps`, `redis`,
/// `rediss`, `redis+socket`, `sentinel`, `sqs`) with the core's transport registry.
pub fn register_transports() {
    redis::register();
    sqs::register();
    kombu::transport::registry::register("gateway+ws", Arc::new(transports::gateway_client::GatewayTransport));
    kombu::transport::registry::register("gateway+wss", Arc::new(transports::gateway_client::GatewayTransport));
    kombu::transport::registry::register("amqp", Arc::new(transports::amqp::AmqpTransport));
    kombu::transport::registry::register("amqps", Arc::new(transports::amqp::AmqpTransport));
    kombu::transport::registry::register("amqp+ws", Arc::new(transports::amqp_ws::AmqpWebSocketTransport));
    kombu::transport::registry::register("amqps+wss", Arc::new(transports::amqp_ws::AmqpWebSocketTransport));
}
