//! The JavaScript facade (wasm32 only): wasm-bindgen classes over the Rust API.
//!
//! This is a thin adapter: every call converts its arguments (plain JS objects, validated by
//! `options.rs` with camelCase names and unknown options refused), calls the same Rust API the
//! native crate uses, and converts the result back. The npm package's hand-written layer
//! (`js/lib.js`) turns `Exchange`/`Queue` instances into the plain specs these functions take
//! and adds async iteration, `AbortSignal` and disposal.
//!
//! Errors are JS `Error`s whose `name` is Kombu's exception name (`ContentDisallowed`,
//! `MessageStateError`, `OperationalError`, ...), with a message that says what was wrong.
//!
//! The JS exports, by file:
//! - `connection.rs` — `Connection` (`declare`, `delete`, `purge`, `drainEvents`, `snapshot`,
//!   and the factories below);
//! - `producer.rs` — `Producer` (`publish`, `publishJson`) and the publish options;
//! - `consumer.rs` — `Consumer` (`next`, `tryNext`, `cancel`, `qos`, ...);
//! - `message.rs` — `Message` (`payload`, `body`, `properties`, `ack`, `reject`, ...);
//! - `simple.rs` — `SimpleQueue` (`put`, `get`, `qsize`, ...), also for `SimpleBuffer`;
//! - `entity.rs` — `checkExchange`, `checkQueue`: `Exchange`/`Queue` specs from JS;
//! - `codecs.rs` — `registerCompression`, `registerSerializer`, `registerJsonCodec`,
//!   `compressionMethods`;
//! - this file — `version` and the start function (the panic hook);
//! - `convert.rs` — no exports: errors, Promises and bodies between JS and Rust;
//! - `options.rs` — no exports: options objects and declarations from JS.
//!
//! The npm package's separately loaded codecs module is [`crate::wasm_codecs`].

use wasm_bindgen::prelude::*;

mod codecs;
mod connection;
mod consumer;
mod convert;
mod entity;
mod message;
mod options;
mod producer;
mod simple;

pub use codecs::{compression_methods, register_compression, register_json_codec, register_serializer};
pub use connection::JsConnection;
pub use consumer::JsConsumer;
pub use entity::{check_exchange, check_queue};
pub use message::JsMessage;
pub use producer::JsProducer;
pub use simple::JsSimpleQueue;

/// Log Rust panics to the console with their message (a panic is a bug: report it).
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// The crate version.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Set the function `(url, protocol) => Promise<string | undefined>` that explains why a
/// WebSocket failed to open (the npm package sets one in Node, where the runtime's WebSocket
/// reports neither a refused port nor the HTTP status of a refused upgrade).
#[cfg(feature = "ws-carrier")]
#[wasm_bindgen(js_name = setConnectDiagnosis)]
pub fn set_connect_diagnosis(f: Option<js_sys::Function>) {
    crate::transport::websocket::set_diagnosis(f);
}

/// Set the function `(name, message, code) => Error` that makes the errors thrown to
/// JavaScript (the npm package's classes, so that `err instanceof NotFound` works).
#[wasm_bindgen(js_name = setErrorFactory)]
pub fn set_error_factory(f: Option<js_sys::Function>) {
    convert::set_error_factory(f);
}
