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
#![allow(missing_docs)] // TEMP while modules are written

pub mod error;
pub mod payload;
pub mod properties;
pub mod broker;
pub mod rt;
pub mod spec;
pub mod transport;
pub mod value;

pub mod compression;
pub mod envelope;
pub mod routing;
pub mod serialization;
pub mod retry;
pub mod url;

pub use error::{Error, ReplyCode, Result};
pub use payload::Payload;
pub use properties::{DeliveryMode, Properties, PERSISTENT_DELIVERY_MODE, TRANSIENT_DELIVERY_MODE};
pub use value::{Headers, Value};
