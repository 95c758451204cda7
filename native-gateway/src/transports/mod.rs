//! The native transports this crate adds to the core's registry ([`crate::register_transports`]):
//! each carries one of the core's sans-io client engines over tokio sockets.
//!
//! - [`amqp`]: `amqp://` and `amqps://` (the core's AMQP 0-9-1 client over TCP or TLS);
//! - [`gateway_client`]: `gateway+ws://` and `gateway+wss://` (the core's gateway protocol
//!   client over tokio-tungstenite);
//! - [`amqp_ws`]: `amqp+ws://` and `amqps+wss://` (the core's AMQP client over
//!   tokio-tungstenite, to the gateway's `/amqp` relay).

pub mod amqp;
pub mod amqp_ws;
pub mod gateway_client;
