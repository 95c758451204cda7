//! The transports by URL scheme (Kombu's `kombu.transport.TRANSPORT_ALIASES` and
//! `resolve_transport`): the built-in ones and those other crates [`register`].

use std::sync::Arc;

#[cfg(all(target_arch = "wasm32", not(feature = "websocket")))]
use crate::error::Error;
use crate::error::Result;
use crate::namemap::NameMap;

use super::memory;
#[cfg(all(target_arch = "wasm32", feature = "websocket"))]
use super::websocket;
use super::Transport;

type Registry = NameMap<Arc<dyn Transport>>;

fn builtin() -> Registry {
    let mut m: Registry = NameMap::new();
    m.insert("memory".into(), Arc::new(memory::MemoryTransport::global()));
    #[cfg(all(target_arch = "wasm32", feature = "websocket"))]
    {
        m.insert("gateway+ws".into(), Arc::new(websocket::WebSocketTransport));
        m.insert("gateway+wss".into(), Arc::new(websocket::WebSocketTransport));
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
            let known: Vec<&str> = r.keys().map(String::as_str).collect();
            let e = crate::url::unknown_transport(name, &known);
            // The npm package's core module is built without the WebSocket transports.
            #[cfg(all(target_arch = "wasm32", not(feature = "websocket")))]
            let e = match e {
                Error::UnknownTransport { name, known } if name.ends_with("+ws") || name.ends_with("+wss") => Error::UnknownTransport {
                    name,
                    known: format!(r#"{known}; gateway+ws, gateway+wss, amqp+ws and amqps+wss are in "kombu-wasm/ws": import from it instead of "kombu-wasm""#),
                },
                other => other,
            };
            Err(e)
        }
    })
}

/// Names of the registered transports.
pub fn available() -> Vec<String> {
    with_registry(|r| r.keys().cloned().collect())
}
