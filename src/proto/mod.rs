//! Wire protocols without IO: the vocabulary of AMQP methods every layer below the Kombu API
//! speaks ([`methods`]), and the codecs that turn it into bytes — AMQP 0-9-1 frames ([`amqp`])
//! and the gateway protocol's frames ([`gateway`], `docs/gateway-protocol.md`).
//!
//! Bytes in, values out; values in, bytes out. The client engines that speak these protocols
//! over a socket are transports ([`crate::transport::amqp_client`],
//! [`crate::transport::gateway_client`]); the gateway's server and relay use the same codecs.

#[cfg(any(feature = "ws-carrier", not(target_arch = "wasm32")))]
pub mod amqp;
#[cfg(any(feature = "ws-carrier", not(target_arch = "wasm32")))]
pub mod gateway;
pub mod methods;
