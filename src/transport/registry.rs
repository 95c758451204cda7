//! The transports by URL scheme (Kombu's `kombu.transport.TRANSPORT_ALIASES` and
//! `resolve_transport`): the built-in ones and those other crates [`register`].

use std::sync::Arc;

#[cfg(all(target_arch = "wasm32", not(all(feature = "websocket", feature = "memory"))))]
use crate::error::Error;
use crate::error::Result;
use crate::namemap::NameMap;

#[cfg(any(feature = "memory", not(target_arch = "wasm32")))]
use super::memory;
#[cfg(all(target_arch = "wasm32", feature = "ws-carrier"))]
use super::websocket;
use super::Transport;

type Registry = NameMap<Arc<dyn Transport>>;

fn builtin() -> Registry {
    #[allow(unused_mut)] // (nothing to add in a wasm32 build without `memory` and the WebSocket transports)
    let mut m: Registry = NameMap::new();
    #[cfg(any(feature = "memory", not(target_arch = "wasm32")))]
    m.insert("memory".into(), Arc::new(memory::MemoryTransport::global()));
    #[cfg(all(target_arch = "wasm32", feature = "gateway-ws"))]
    {
        m.insert("gateway+ws".into(), Arc::new(websocket::WebSocketTransport));
        m.insert("gateway+wss".into(), Arc::new(websocket::WebSocketTransport));
    }
    #[cfg(all(target_arch = "wasm32", feature = "amqp-ws"))]
    {
        m.insert("amqp+ws".into(), Arc::new(websocket::AmqpWebSocketTransport));
        m.insert("amqps+wss".into(), Arc::new(websocket::AmqpWebSocketTransport));
    }
    m
}

/// Run `f` on the registry of transports by scheme name (process-wide natively; per thread
/// in wasm32, where there is one thread and transports are not `Send`).
#[cfg(not(target_arch = "wasm32"))]
fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    use std::sync::{OnceLock, RwLock};
    static REGISTRY: OnceLock<RwLock<Registry>> = OnceLock::new();
    let lock = REGISTRY.get_or_init(|| RwLock::new(builtin()));
    f(&mut crate::rt::write(lock))
}

#[cfg(target_arch = "wasm32")]
fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    thread_local! {
        static REGISTRY: std::cell::RefCell<Registry> = std::cell::RefCell::new(builtin());
    }
    REGISTRY.with(|r| f(&mut r.borrow_mut()))
}

/// Register a transport under a scheme name (replacing any previous one).
pub fn register(name: &str, transport: Arc<dyn Transport>) {
    with_registry(|r| r.insert(name.to_owned(), transport));
}

/// The transport registered under `name`; an unknown name is an error listing the known
/// ones (with a suggestion for a typo).
pub fn lookup(name: &str) -> Result<Arc<dyn Transport>> {
    with_registry(|r| match r.get(name) {
        Some(t) => Ok(t.clone()),
        None => {
            let mut known: Vec<&str> = Vec::new();
            for k in r.keys() {
                known.push(k);
            }
            let e = crate::url::unknown_transport(name, &known);
            #[cfg(all(target_arch = "wasm32", not(all(feature = "websocket", feature = "memory"))))]
            let e = npm_module_hint(e);
            Err(e)
        }
    })
}

/// The npm package's core module ("kombu-wasm") is built without the WebSocket transports,
/// its "kombu-wasm/ws" module without the `memory://` broker, and "kombu-wasm/gateway" and
/// "kombu-wasm/amqp" with one WebSocket transport each: an unknown transport that another
/// module has names it.
#[cfg(all(target_arch = "wasm32", not(all(feature = "websocket", feature = "memory"))))]
fn npm_module_hint(e: Error) -> Error {
    let Error::UnknownTransport { name, .. } = &e else { return e };
    let gateway = name == "gateway+ws" || name == "gateway+wss";
    let amqp = name == "amqp+ws" || name == "amqps+wss";
    let hint = if !cfg!(feature = "ws-carrier") && (gateway || amqp) {
        r#"gateway+ws and gateway+wss are in "kombu-wasm/gateway", amqp+ws and amqps+wss in "kombu-wasm/amqp", all four in "kombu-wasm/ws": import from one of them instead of "kombu-wasm""#
    } else if gateway && !cfg!(feature = "gateway-ws") {
        r#"gateway+ws and gateway+wss are not in "kombu-wasm/amqp" (amqp+ws and amqps+wss only): import from "kombu-wasm/gateway", or from "kombu-wasm/ws" for both"#
    } else if amqp && !cfg!(feature = "amqp-ws") {
        r#"amqp+ws and amqps+wss are not in "kombu-wasm/gateway" (gateway+ws and gateway+wss only): import from "kombu-wasm/amqp", or from "kombu-wasm/ws" for both"#
    } else if !cfg!(feature = "memory") && name == "memory" {
        r#"memory:// (the in-page broker) is in "kombu-wasm", not in "kombu-wasm/ws", "kombu-wasm/gateway" or "kombu-wasm/amqp", which are built for pages that talk to kombu-gateway or RabbitMQ: import from "kombu-wasm" (and not those) for memory://, or use the gateway's embedded broker (gateway+ws://host:port/gateway)"#
    } else {
        return e;
    };
    match e {
        Error::UnknownTransport { name, known } => Error::UnknownTransport { name, known: format!("{known}; {hint}") },
        other => other,
    }
}

/// Names of the registered transports.
pub fn available() -> Vec<String> {
    with_registry(|r| r.keys().cloned().collect())
}
