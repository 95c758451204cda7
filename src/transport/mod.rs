//! Transports: how the Kombu API reaches a broker.
//!
//! A [`Transport`] opens [`RawConnection`]s; a connection opens [`RawChannel`]s and yields the
//! broker's pushed [`ServerEvent`]s. The methods mirror AMQP 0-9-1 (the vocabulary is in
//! [`crate::proto::methods`]). Futures are `Send` natively (tokio) and `?Send` in wasm32 (browser
//! WebSockets are not `Send`); see [`crate::rt::MaybeSend`].
//!
//! Transports are found by URL scheme in the [`registry`]. It holds `memory` (in wasm32 with
//! the `memory` feature) and, in wasm32 with the `websocket` feature, the browser's WebSocket transports; other crates (the
//! gateway's native AMQP, Redis and SQS transports) register theirs.
//!
//! This module is the contract only (the traits and [`ConnectInfo`]): the engines and carriers
//! beside it depend on it, never the other way round.

#[cfg(any(feature = "ws-carrier", not(target_arch = "wasm32")))]
pub mod amqp_client;
#[cfg(any(feature = "ws-carrier", not(target_arch = "wasm32")))]
pub mod carrier;
#[cfg(any(feature = "ws-carrier", not(target_arch = "wasm32")))]
pub mod gateway_client;
#[cfg(any(feature = "memory", not(target_arch = "wasm32")))]
pub mod memory;
pub mod registry;
pub mod virtual_channel;
#[cfg(all(target_arch = "wasm32", feature = "ws-carrier"))]
pub mod websocket;

use std::sync::Arc;

use crate::error::Result;
use crate::rt::{Duration, MaybeSend, MaybeSync};
use crate::proto::methods::{
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

impl Implements {
    /// An asynchronous transport that routes the four exchange types (direct, topic, fanout,
    /// headers): every transport of this crate and of the gateway; `heartbeats` says whether
    /// it sends and checks them.
    pub fn all_exchange_types(heartbeats: bool) -> Self {
        Implements {
            asynchronous: true,
            exchange_types: vec![ExchangeType::Direct, ExchangeType::Topic, ExchangeType::Fanout, ExchangeType::Headers],
            heartbeats,
        }
    }
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

impl ConnectInfo {
    /// A boolean transport option (`confirm_publish`, ...): `true`, a non-zero number, or
    /// `"1"`/`"true"`/`"yes"` (as given in a URL query).
    pub fn flag(&self, name: &str) -> bool {
        self.options.get(name).is_some_and(|v| v.as_bool().unwrap_or(false) || v.as_i64().is_some_and(|i| i != 0) || v.as_str().is_some_and(|s| matches!(s, "1" | "true" | "yes")))
    }
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

#[allow(dead_code)]
fn _assert_object_safe(_: &dyn Transport, _: &dyn RawConnection, _: &dyn RawChannel) {}

