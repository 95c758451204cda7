//! # kombu
//!
//! Kombu, Python's messaging library, rebuilt in Rust: declarations (exchanges, queues,
//! bindings), RabbitMQ-exact routing, serializers and compression, an in-memory broker and
//! the Kombu API (`Connection`, `Producer`, `Consumer`, `SimpleQueue`, ...). The crate has no
//! IO of its own below the transport layer and compiles to `wasm32-unknown-unknown`, where
//! it powers the `kombu-wasm` npm package.
//!
//! Layers, bottom up (nothing reaches up), and where each lives:
//! 1. entities — [`Exchange`], [`Queue`], [`Binding`] ([`entity`]): plain declarations, plus
//!    the [`value`]s, [`properties`] and [`error`]s every layer shares;
//! 2. [`routing`] — direct, fanout, topic and headers exchanges;
//! 3. codecs — [`serialization`], [`compression`], and the virtual-transport [`envelope`];
//! 4. channel semantics without IO — [`proto`] (the AMQP method vocabulary,
//!    [`proto::methods`], and the AMQP 0-9-1 and gateway-protocol codecs) and [`broker`] (the
//!    in-memory broker as a state machine);
//! 5. [`transport`] — the transport contract ([`transport::RawConnection`],
//!    [`transport::RawChannel`]), the registry by URL scheme, the `memory://` transport, the
//!    client engines ([`transport::amqp_client`], [`transport::gateway_client`]) and the
//!    carrier machinery they share with the sockets that drive them ([`transport::carrier`]);
//! 6. the Kombu API, one module per Python `kombu` module — [`connection`], [`channel`],
//!    [`producer`], [`consumer`], [`message`], [`simple`], [`pools`], [`common`], [`mixins`],
//!    [`pidbox`], [`clocks`], [`matcher`], [`retry`], [`url`]. The operations of a bound
//!    declaration (`Exchange::declare`, `Queue::purge`, ...) are defined here, with the
//!    channel, not in [`entity`]; a convenience constructor such as
//!    [`Connection::producer`] lives with the type it makes. Within the layer, imports go
//!    one way: `connection`/`channel` (one concept in two files), then `producer`,
//!    `consumer`, `pools`, `simple`, and `common` and the rest above them.
//!
//! `rt` is the little the API needs from a runtime (timers, `MaybeSend`); `wasm` is the
//! wasm-bindgen facade of the npm package (wasm32 only).

#![warn(missing_docs)]
// On wasm32 callbacks are not Send (browser values are not), so the shared state is Arc but !Sync there.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

#[cfg(any(feature = "memory", not(target_arch = "wasm32")))]
pub mod broker;
pub mod clocks;
pub mod channel;
pub mod common;
pub mod compression;
pub mod connection;
pub mod consumer;
pub mod entity;
pub mod envelope;
pub mod error;
// (The codecs module, without the facade and the transports, prints only values.)
#[cfg_attr(all(target_arch = "wasm32", not(feature = "facade")), allow(dead_code))]
mod json_print;
// (Used by the wasm builds; natively only its tests, against serde_json.)
#[cfg_attr(not(any(test, target_arch = "wasm32")), allow(dead_code))]
mod json_text;
pub mod matcher;
pub mod message;
pub mod mixins;
mod namemap;
pub mod payload;
pub mod pidbox;
pub mod pools;
pub mod producer;
pub mod properties;
pub mod proto;
pub mod retry;
pub mod routing;
pub mod rt;
pub mod serialization;
pub mod simple;
mod sort;
pub mod transport;
pub mod url;
pub mod value;
#[cfg(all(target_arch = "wasm32", feature = "facade"))]
pub mod wasm;
#[cfg(target_arch = "wasm32")]
pub mod wasm_codecs;

/// The wasm modules' allocator: talc, smaller in the module and faster than Rust's default
/// dlmalloc for wasm32.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

pub use common::{broadcast, eventloop, maybe_declare, uuid, Entity};
pub use channel::Channel;
pub use connection::{Connection, ConnectionEvent, ConnectionOptions, EventListener};
pub use consumer::Consumer;
pub use entity::{binding, Binding, Exchange, Queue};
pub use error::{Error, ReplyCode, Result};
pub use message::{DeliveryInfo, Message, MessageState};
pub use payload::Payload;
pub use producer::{Producer, PublishOptions};
pub use properties::{DeliveryMode, Properties, PERSISTENT_DELIVERY_MODE, TRANSIENT_DELIVERY_MODE};
pub use retry::{FailoverStrategy, RetryPolicy};
pub use simple::{SimpleOptions, SimpleQueue};
pub use proto::methods::ExchangeType;
pub use value::{Headers, Value};

/// One xorshift64 step: the tests' reproducible stream of bit patterns (doubles from any bits,
/// and the like).
#[cfg(test)]
pub(crate) fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
