//! Transports: how the Kombu API reaches a broker.
//!
//! A [`Transport`] opens [`RawConnection`]s; a connection opens [`RawChannel`]s and yields the
//! broker's pushed [`ServerEvent`]s. The methods mirror AMQP 0-9-1 (the vocabulary is in
//! [`crate::spec`]). Futures are `Send` natively (tokio) and `?Send` in wasm32 (browser
//! WebSockets are not `Send`); see [`crate::rt::MaybeSend`].
//!
//! Transports are found by URL scheme in a registry ([`register`], [`lookup`]). The core
//! registers `memory`; other crates (the gateway's native AMQP, Redis and SQS transports, the
//! browser's WebSocket transports) register theirs.

pub mod gateway;
pub mod memory;
pub mod virtual_channel;
#[cfg(any(test, all(target_arch = "wasm32", feature = "websocket")))]
pub mod outbox;
#[cfg(all(target_arch = "wasm32", feature = "websocket"))]
pub mod websocket;

use crate::namemap::NameMap;
use std::sync::Arc;

#[cfg(all(target_arch = "wasm32", not(feature = "websocket")))]
use crate::error::Error;
use crate::error::Result;
use crate::rt::{Duration, MaybeSend, MaybeSync};
use crate::spec::{
    BasicConsume, BasicPublish, BasicQos, Content, ExchangeBind, ExchangeDeclare, ExchangeDelete,
    ExchangeType, GetOk, QueueBind, QueueDeclare, QueueDeclareOk, QueueDelete, ServerEvent,
};
use crate::value::Headers;

/// What a transport supports (Kombu's `Transport.implements`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Implements {
    /// The transport is driven by an event loop rather than polling.
    pub asynchronous: bool,
    /// Exchange types it can route.
    pub exchange_types: Vec<ExchangeType>,
    /// It sends and checks heartbeats.
    pub heartbeats: bool,
}

/// Everything a transport needs to connect: the resolved URL fields and options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectInfo {
    /// Transport name as resolved from the URL scheme (`memory`, `amqp`, `gateway+ws`, ...).
    pub transport: String,
    /// Host name or address.
    pub hostname: String,
    /// Port, when given or defaulted by the transport.
    pub port: Option<u16>,
    /// User name.
    pub userid: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Virtual host (`/` by default).
    pub virtual_host: String,
    /// Path for transports that have one (`redis+socket:///tmp/x.sock`, `gateway+ws://h/path`).
    pub path: Option<String>,
    /// Use TLS.
    pub ssl: bool,
    /// Seconds to wait for the connection to open.
    pub connect_timeout: Option<f64>,
    /// Heartbeat interval in seconds (0: off).
    pub heartbeat: Option<f64>,
    /// Login method (`AMQPLAIN`, `PLAIN`, `EXTERNAL`).
    pub login_method: Option<String>,
    /// Transport options: `Connection(transport_options=...)` merged with URL query options.
    pub options: Headers,
}

/// A kind of broker connection (Kombu's `Transport` class).
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait Transport: MaybeSend + MaybeSync {
    /// Driver name (`memory`, `amqp`, ...).
    fn driver_name(&self) -> &'static str;
    /// Port used when the URL has none.
    fn default_port(&self) -> Option<u16>;
    /// Capabilities.
    fn implements(&self) -> Implements;
    /// Open a connection.
    async fn establish_connection(&self, info: &ConnectInfo) -> Result<Arc<dyn RawConnection>>;
}

/// An open connection to a broker.
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait RawConnection: MaybeSend + MaybeSync {
    /// Open a channel.
    async fn open_channel(&self) -> Result<Arc<dyn RawChannel>>;
    /// Wait for the next event the broker pushed (deliveries, returns, cancels, closes).
    /// `Err(Error::Timeout)` when `timeout` passes first; a connection error when the
    /// connection is gone.
    async fn next_event(&self, timeout: Option<Duration>) -> Result<ServerEvent>;
    /// The next event if one is already waiting (never blocks).
    fn try_next_event(&self) -> Result<Option<ServerEvent>>;
    /// True while the connection is usable.
    fn is_open(&self) -> bool;
    /// Close the connection (channels close, unacknowledged messages return to their queues).
    async fn close(&self) -> Result<()>;
    /// Send a heartbeat if due and check the peer's; errors when the peer is gone.
    /// A no-op for transports without heartbeats.
    async fn heartbeat_check(&self) -> Result<()> {
        Ok(())
    }
}

/// A channel on a [`RawConnection`]. Methods map one to one to AMQP methods; a channel
/// exception closes the channel (further calls fail).
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait RawChannel: MaybeSend + MaybeSync {
    /// The channel id, unique within its connection.
    fn channel_id(&self) -> u32;
    /// True while the channel is usable.
    fn is_open(&self) -> bool;
    /// `exchange.declare`.
    async fn exchange_declare(&self, m: &ExchangeDeclare) -> Result<()>;
    /// `exchange.delete`.
    async fn exchange_delete(&self, m: &ExchangeDelete) -> Result<()>;
    /// `exchange.bind`.
    async fn exchange_bind(&self, m: &ExchangeBind) -> Result<()>;
    /// `exchange.unbind`.
    async fn exchange_unbind(&self, m: &ExchangeBind) -> Result<()>;
    /// `queue.declare`.
    async fn queue_declare(&self, m: &QueueDeclare) -> Result<QueueDeclareOk>;
    /// `queue.bind`.
    async fn queue_bind(&self, m: &QueueBind) -> Result<()>;
    /// `queue.unbind`.
    async fn queue_unbind(&self, m: &QueueBind) -> Result<()>;
    /// `queue.purge`: the number of messages removed.
    async fn queue_purge(&self, queue: &str) -> Result<u32>;
    /// `queue.delete`: the number of messages deleted.
    async fn queue_delete(&self, m: &QueueDelete) -> Result<u32>;
    /// `basic.publish`.
    async fn basic_publish(&self, m: &BasicPublish, content: Arc<Content>) -> Result<()>;
    /// `basic.get`.
    async fn basic_get(&self, queue: &str, no_ack: bool) -> Result<Option<GetOk>>;
    /// `basic.consume`: the consumer tag.
    async fn basic_consume(&self, m: &BasicConsume) -> Result<String>;
    /// `basic.cancel`.
    async fn basic_cancel(&self, consumer_tag: &str) -> Result<()>;
    /// `basic.ack` (no answer in AMQP, hence not async).
    fn basic_ack(&self, delivery_tag: u64, multiple: bool) -> Result<()>;
    /// `basic.reject`.
    fn basic_reject(&self, delivery_tag: u64, requeue: bool) -> Result<()>;
    /// `basic.nack`.
    fn basic_nack(&self, delivery_tag: u64, multiple: bool, requeue: bool) -> Result<()>;
    /// `basic.recover`.
    async fn basic_recover(&self, requeue: bool) -> Result<()>;
    /// `basic.qos`.
    async fn basic_qos(&self, qos: BasicQos) -> Result<()>;
    /// `channel.flow`: the new state.
    async fn flow(&self, active: bool) -> Result<bool>;
    /// `confirm.select`.
    async fn confirm_select(&self) -> Result<()>;
    /// `channel.close`.
    async fn close(&self) -> Result<()>;
}

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
    f(&mut lock.write().unwrap_or_else(|e| e.into_inner()))
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

#[allow(dead_code)]
fn _assert_object_safe(_: &dyn Transport, _: &dyn RawConnection, _: &dyn RawChannel) {}

