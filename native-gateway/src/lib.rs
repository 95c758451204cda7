//! `kombu-gateway`: the native side of kombu-wasm.
//!
//! - [`server`]: the gateway server (`/gateway` WebSocket with the `kombu-gateway.v1`
//!   protocol, `/healthz`, `/metrics`, the playground) over any transport of the core —
//!   the embedded `memory://` broker by default.
//! - [`client`]: the native `gateway+ws://` transport, so the Kombu API in Rust reaches a
//!   gateway by URL.
//!
//! Call [`register_transports`] once to make the native transports known to
//! `kombu::Connection`.

#![warn(missing_docs)]

pub mod amqp;
pub mod auth;
pub mod client;
pub mod redis;
pub mod relay;
pub mod server;
pub mod tls;
mod writer;

use std::sync::Arc;

/// Errors of the gateway binary and server (the Kombu API's errors are `kombu::Error`).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The broker URL is invalid or names an unknown transport.
    #[error("broker: {0}")]
    Broker(kombu::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    /// The configuration file could not be read or parsed.
    #[error("configuration file {0}: {1}")]
    Config(String, String),
}

/// Register the native transports (`gateway+ws`, `gateway+wss`, `amqp`, `amqps`, `redis`,
/// `rediss`, `redis+socket`, `sentinel`) with the core's transport registry.
pub fn register_transports() {
    redis::register();
    kombu::transport::register("gateway+ws", Arc::new(client::GatewayTransport));
    kombu::transport::register("gateway+wss", Arc::new(client::GatewayTransport));
    kombu::transport::register("amqp", Arc::new(amqp::AmqpTransport));
    kombu::transport::register("amqps", Arc::new(amqp::AmqpTransport));
}
