//! AMQP 0-9-1 without IO: the frame and method codec ([`codec`]) that the native `amqp://`
//! transport (in `kombu-gateway`) drives over TCP. Bytes in, frames out; frames in, bytes
//! out — no sockets, no timers.

pub mod codec;
