//! AMQP 0-9-1 without IO: the frame and method codec ([`codec`]) and the client
//! ([`client`]: handshake, channels, RPCs, content, confirms) that carriers drive — tokio
//! TCP/TLS for `amqp://` in `kombu-gateway`, a WebSocket to the gateway's `/amqp` relay for
//! `amqp+ws://` in the browser. Bytes in, frames out; frames in, bytes out — no sockets.

pub mod client;
pub mod codec;
