//! # kombu
//!
//! Kombu, Python's messaging library, rebuilt in Rust: declarations (exchanges, queues,
//! bindings), RabbitMQ-exact routing, serializers and compression, an in-memory broker and
//! the Kombu API (`Connection`, `Producer`, `Consumer`, `SimpleQueue`, ...). The crate has no
//! IO of its own below the transport layer and compiles to `wasm32-unknown-unknown`, where
//! it powers the `kombu-wasm` npm package.
//!
//! Layers, bottom up (nothing reaches up):
//! 1. entities — [`Exchange`], [`Queue`], [`Binding`]: plain declarations;
//! 2. [`routing`] — direct, fanout, topic and headers exchanges;
//! 3. codecs — [`serialization`], [`compression`], and the virtual-transport [`envelope`];
//! 4. [`broker`] — the sans-io in-memory broker and channel semantics;
//! 5. [`transport`] — the transport trait and the `memory://` transport;
//! 6. the Kombu API — [`Connection`], [`Producer`], [`Consumer`], [`SimpleQueue`], ...

#![warn(missing_docs)]
// On wasm32 callbacks are not Send (browser values are not), so the shared state is Arc but !Sync there.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

pub mod amqp;
pub mod broker;
pub mod clocks;
pub mod common;
pub mod compression;
pub mod connection;
pub mod consumer;
pub mod entity;
pub mod envelope;
pub mod error;
pub mod gateway;
pub mod matcher;
pub mod message;
pub mod mixins;
pub mod namemap;
pub mod payload;
pub mod pidbox;
pub mod pools;
pub mod producer;
pub mod properties;
pub mod retry;
pub mod routing;
pub mod rt;
pub mod serialization;
pub mod simple;
mod sort;
pub mod spec;
pub mod transport;
pub mod url;
pub mod value;
#[cfg(all(target_arch = "wasm32", feature = "facade"))]
pub mod wasm;
#[cfg(target_arch = "wasm32")]
pub mod wasm_codecs;

pub use common::{broadcast, eventloop, maybe_declare, uuid, Entity};
pub use connection::{Channel, Connection, ConnectionOptions};
pub use consumer::Consumer;
pub use entity::{binding, Binding, Exchange, Queue};
pub use error::{Error, ReplyCode, Result};
pub use message::{DeliveryInfo, Message, MessageState};
pub use payload::Payload;
pub use producer::{Producer, PublishOptions};
pub use properties::{DeliveryMode, Properties, PERSISTENT_DELIVERY_MODE, TRANSIENT_DELIVERY_MODE};
pub use retry::{FailoverStrategy, RetryPolicy};
pub use simple::{SimpleOptions, SimpleQueue};
pub use spec::ExchangeType;
pub use value::{Headers, Value};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
