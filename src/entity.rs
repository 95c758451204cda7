//! Declarations: [`Exchange`], [`Queue`] and [`Binding`] (and [`Entity`], either of the
//! first two).
//!
//! They are plain values (serde, equality, cheap to clone) that can live in configuration,
//! with Kombu's defaults exactly. Operations that need a broker (`declare`, `delete`,
//! `purge`, ...) work on a copy bound to a [`crate::Channel`] with [`Exchange::bind`] /
//! [`Queue::bind`]; on an unbound value they fail with [`crate::Error::NotBound`], and the
//! original stays unbound:
//!
//! ```
//! use kombu::Exchange;
//! let exchange = Exchange::direct("tasks");
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let err = exchange.delete(false).await.unwrap_err();
//! assert_eq!(err.name(), "NotBoundError");
//! # });
//! ```
//!
//! They serialize with Kombu's (snake_case) names and deserialize from those or the npm
//! package's camelCase ones (`routingKey`, `messageTtl`, ...). Unknown fields are refused, and
//! an exchange may be given by name (a direct exchange), as Kombu's `Queue(exchange="name")`
//! allows. (The JavaScript facade reads `new Queue(...)` by hand with the same names and
//! defaults, in `src/wasm/options.rs`: serde's visitors cost the wasm module too much.)

//!
//! This module is layer 1: it imports nothing from the Kombu API. The operations on bound
//! declarations are defined with the channel (`src/channel/bound.rs`); a bound declaration
//! holds its channel behind the `BoundChannel` handle defined here.

use std::any::Any;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::properties::DeliveryMode;
use crate::proto::methods::{ExchangeDeclare, ExchangeType, QueueBind, QueueDeclare};
use crate::rt::{MaybeSend, MaybeSync};
use crate::value::{Headers, Value};

/// The channel a declaration is bound to, as this layer sees it: a handle to keep and to
/// print, nothing to call. The Kombu API's [`crate::Channel`] is its one implementation and
/// takes itself back out with [`BoundChannel::as_any`].
pub(crate) trait BoundChannel: MaybeSend + MaybeSync {
    /// The channel id (for `Debug`).
    fn channel_id(&self) -> u32;
    /// The handle as `Any`, to downcast to the channel type.
    fn as_any(&self) -> &dyn Any;
}

/// An exchange declaration (Kombu's `kombu.Exchange`).
///
/// Defaults: name `""` (the default exchange), type `direct`, `durable=true`,
/// `auto_delete=false`, `delivery_mode=None` (the producer then uses persistent),
/// `no_declare=false`, `passive=false`.
///
/// A declaration does nothing by itself; a copy bound to a channel declares it, binds it and
/// publishes through it:
///
/// ```
/// use kombu::{Connection, Exchange, Properties, Queue};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kombu::Result<()> {
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel().await?;
/// let news = Exchange::topic("news").durable(false);
/// let bound = news.bind(&channel);
/// bound.declare(false, None).await?;
/// let mut science = Queue::new("science").exchange(news.clone()).routing_key("news.science.#").bind(&channel);
/// science.declare(false).await?;
/// bound.publish("a comet", "news.science.space", Properties::default(), false).await?;
/// bound.publish("an election", "news.politics", Properties::default(), false).await?;
/// let message = science.get(Some(true), None).await?.expect("routed by news.science.#");
/// assert_eq!(&message.body()[..], b"a comet");
/// assert!(science.get(Some(true), None).await?.is_none(), "news.politics goes elsewhere");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Exchange {
    /// Exchange name.
    pub name: String,
    /// Exchange type.
    #[serde(rename = "type")]
    pub kind: ExchangeType,
    /// Survive broker restarts. Default true.
    pub durable: bool,
    /// Delete when no queue is bound any more. Default false.
    #[serde(alias = "autoDelete")]
    pub auto_delete: bool,
    /// Default delivery mode of messages published to it. Default none (persistent).
    #[serde(alias = "deliveryMode")]
    pub delivery_mode: Option<DeliveryMode>,
    /// Extra declaration arguments.
    pub arguments: Headers,
    /// Never declare this exchange (`declare` does nothing). Also implied for `amq.*` names.
    #[serde(alias = "noDeclare")]
    pub no_declare: bool,
    /// Only check that the exchange exists when declaring.
    pub passive: bool,
    #[serde(skip)]
    pub(crate) channel: Option<Arc<dyn BoundChannel>>,
}

impl Default for Exchange {
    fn default() -> Self {
        Exchange {
            name: String::new(),
            kind: ExchangeType::Direct,
            durable: true,
            auto_delete: false,
            delivery_mode: None,
            arguments: Headers::new(),
            no_declare: false,
            passive: false,
            channel: None,
        }
    }
}

impl PartialEq for Exchange {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.kind == o.kind
            && self.arguments == o.arguments
            && self.durable == o.durable
            && self.auto_delete == o.auto_delete
            && self.delivery_mode == o.delivery_mode
    }
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.channel {
            Some(ch) => write!(f, "<Exchange {}({}) bound to chan:{}>", self.name, self.kind, ch.channel_id()),
            None => write!(f, "<unbound Exchange {}({})>", self.name, self.kind),
        }
    }
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Exchange '{}'({})", self.name, self.kind)
    }
}

impl From<&str> for Exchange {
    fn from(name: &str) -> Self {
        Exchange::new(name, ExchangeType::Direct)
    }
}
impl From<String> for Exchange {
    fn from(name: String) -> Self {
        Exchange::new(name, ExchangeType::Direct)
    }
}
impl From<&Exchange> for Exchange {
    fn from(x: &Exchange) -> Self {
        x.clone()
    }
}

impl Exchange {
    /// An exchange of the given type with Kombu's defaults.
    pub fn new(name: impl Into<String>, kind: impl Into<ExchangeType>) -> Self {
        Exchange { name: name.into(), kind: kind.into(), ..Default::default() }
    }
    /// A `direct` exchange.
    pub fn direct(name: impl Into<String>) -> Self {
        Self::new(name, ExchangeType::Direct)
    }
    /// A `topic` exchange.
    pub fn topic(name: impl Into<String>) -> Self {
        Self::new(name, ExchangeType::Topic)
    }
    /// A `fanout` exchange.
    pub fn fanout(name: impl Into<String>) -> Self {
        Self::new(name, ExchangeType::Fanout)
    }
    /// A `headers` exchange.
    pub fn headers(name: impl Into<String>) -> Self {
        Self::new(name, ExchangeType::Headers)
    }

    /// Set `durable`.
    #[must_use]
    pub fn durable(mut self, v: bool) -> Self {
        self.durable = v;
        self
    }
    /// Set `auto_delete`.
    #[must_use]
    pub fn auto_delete(mut self, v: bool) -> Self {
        self.auto_delete = v;
        self
    }
    /// Set the default delivery mode.
    #[must_use]
    pub fn delivery_mode(mut self, v: DeliveryMode) -> Self {
        self.delivery_mode = Some(v);
        self
    }
    /// Add a declaration argument.
    #[must_use]
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.arguments.insert(key.into(), value.into());
        self
    }
    /// Set `no_declare`.
    #[must_use]
    pub fn no_declare(mut self, v: bool) -> Self {
        self.no_declare = v;
        self
    }
    /// Set `passive`.
    #[must_use]
    pub fn passive(mut self, v: bool) -> Self {
        self.passive = v;
        self
    }

    /// True when bound to a channel.
    pub fn is_bound(&self) -> bool {
        self.channel.is_some()
    }

    /// True when declaring it is never needed: `no_declare`, the default exchange, or a
    /// broker-reserved `amq.*` exchange.
    pub fn skips_declare(&self) -> bool {
        self.no_declare || self.name.is_empty() || self.name.starts_with("amq.")
    }

    /// Whether `maybe_declare` may remember this declaration (not for auto-delete exchanges).
    pub fn can_cache_declaration(&self) -> bool {
        !self.auto_delete
    }

    /// The `exchange.declare` arguments for this declaration.
    pub fn to_declare(&self, passive: bool, nowait: bool) -> ExchangeDeclare {
        ExchangeDeclare {
            exchange: self.name.clone(),
            kind: self.kind.clone(),
            passive,
            durable: self.durable,
            auto_delete: self.auto_delete,
            internal: false,
            nowait,
            arguments: self.arguments.clone(),
        }
    }

    /// A binding of a queue to this exchange (Kombu's `exchange.binding(...)`).
    pub fn binding(&self, routing_key: impl Into<String>) -> Binding {
        Binding::new(self.clone(), routing_key)
    }
}

/// A queue's binding to an exchange (Kombu's `kombu.binding`), for queues bound several times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Binding {
    /// The exchange to bind to.
    #[serde(deserialize_with = "opt_exchange_or_name")]
    pub exchange: Option<Exchange>,
    /// Binding key.
    #[serde(alias = "routingKey")]
    pub routing_key: String,
    /// Binding arguments.
    pub arguments: Headers,
    /// Arguments for unbinding (defaults to `arguments`).
    #[serde(alias = "unbindArguments")]
    pub unbind_arguments: Option<Headers>,
}

impl Binding {
    /// A binding to `exchange` with `routing_key`.
    pub fn new(exchange: impl Into<Exchange>, routing_key: impl Into<String>) -> Self {
        Binding { exchange: Some(exchange.into()), routing_key: routing_key.into(), ..Default::default() }
    }
    /// Set the binding arguments.
    #[must_use]
    pub fn arguments(mut self, arguments: Headers) -> Self {
        self.arguments = arguments;
        self
    }
    /// Set the arguments used when unbinding.
    #[must_use]
    pub fn unbind_arguments(mut self, arguments: Headers) -> Self {
        self.unbind_arguments = Some(arguments);
        self
    }
}

/// Kombu's `binding(exchange, routing_key)` function.
pub fn binding(exchange: impl Into<Exchange>, routing_key: impl Into<String>) -> Binding {
    Binding::new(exchange, routing_key)
}

/// An exchange given as a declaration or by name (a direct exchange of that name). Formats
/// that are not self-describing only have the declaration.
struct ExchangeOrName(Exchange);

impl<'de> Deserialize<'de> for ExchangeOrName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Exchange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an exchange or an exchange name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> std::result::Result<Exchange, E> {
                Ok(Exchange::direct(name))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Exchange, A::Error> {
                Exchange::deserialize(MapAccessDeserializer::new(map))
            }
        }
        if d.is_human_readable() {
            d.deserialize_any(V).map(ExchangeOrName)
        } else {
            Exchange::deserialize(d).map(ExchangeOrName)
        }
    }
}

fn exchange_or_name<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Exchange, D::Error> {
    ExchangeOrName::deserialize(d).map(|x| x.0)
}

/// [`Option`]`<`[`Exchange`]`>` given as a declaration, by name or as null, for `deserialize_with`.
pub(crate) fn opt_exchange_or_name<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Exchange>, D::Error> {
    Option::<ExchangeOrName>::deserialize(d).map(|x| x.map(|x| x.0))
}

/// A queue declaration (Kombu's `kombu.Queue`).
///
/// Defaults: name `""` (the broker names it), exchange `Exchange("")`, routing key `""`,
/// `durable=true`, `exclusive=false` (exclusive implies auto-delete), `auto_delete=false`,
/// `no_ack=false`, `no_declare=false`; `expires`, `message_ttl` (seconds), `max_length`,
/// `max_length_bytes` and `max_priority` become RabbitMQ's `x-` arguments.
///
/// ```
/// use kombu::{Connection, Queue};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kombu::Result<()> {
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel().await?;
/// let mut replies = Queue::new("").exclusive(true).message_ttl(60.0).bind(&channel);
/// let name = replies.declare(false).await?;
/// assert!(name.starts_with("amq.gen-"), "the broker named it");
/// assert_eq!(replies.name, name);
/// assert_eq!(replies.purge().await?, 0);
/// replies.delete(false, false).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Queue {
    /// Queue name.
    pub name: String,
    /// The exchange it binds to.
    #[serde(deserialize_with = "exchange_or_name")]
    pub exchange: Exchange,
    /// Binding key.
    #[serde(alias = "routingKey")]
    pub routing_key: String,
    /// Survive broker restarts. Default true.
    pub durable: bool,
    /// Only this connection may use it. Implies `auto_delete`.
    pub exclusive: bool,
    /// Delete when the last consumer is cancelled.
    #[serde(alias = "autoDelete")]
    pub auto_delete: bool,
    /// Seconds the queue may stay unused before the broker deletes it (`x-expires`).
    pub expires: Option<f64>,
    /// Seconds a message may stay in the queue (`x-message-ttl`).
    #[serde(alias = "messageTtl")]
    pub message_ttl: Option<f64>,
    /// Maximum number of ready messages (`x-max-length`).
    #[serde(alias = "maxLength")]
    pub max_length: Option<u64>,
    /// Maximum total body size of ready messages (`x-max-length-bytes`).
    #[serde(alias = "maxLengthBytes")]
    pub max_length_bytes: Option<u64>,
    /// Highest message priority (`x-max-priority`).
    #[serde(alias = "maxPriority")]
    pub max_priority: Option<u8>,
    /// Extra `queue.declare` arguments.
    #[serde(alias = "queueArguments")]
    pub queue_arguments: Headers,
    /// Extra `queue.bind` arguments.
    #[serde(alias = "bindingArguments")]
    pub binding_arguments: Headers,
    /// Extra `basic.consume` arguments (`x-priority`, ...).
    #[serde(alias = "consumerArguments")]
    pub consumer_arguments: Headers,
    /// Unused by Kombu; for applications.
    pub alias: Option<String>,
    /// Consume without acknowledgements.
    #[serde(alias = "noAck")]
    pub no_ack: bool,
    /// Never declare this queue or its bindings.
    #[serde(alias = "noDeclare")]
    pub no_declare: bool,
    /// Further bindings, declared with the queue.
    pub bindings: Vec<Binding>,
    #[serde(skip)]
    pub(crate) channel: Option<Arc<dyn BoundChannel>>,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            name: String::new(),
            exchange: Exchange::default(),
            routing_key: String::new(),
            durable: true,
            exclusive: false,
            auto_delete: false,
            expires: None,
            message_ttl: None,
            max_length: None,
            max_length_bytes: None,
            max_priority: None,
            queue_arguments: Headers::new(),
            binding_arguments: Headers::new(),
            consumer_arguments: Headers::new(),
            alias: None,
            no_ack: false,
            no_declare: false,
            bindings: Vec::new(),
            channel: None,
        }
    }
}

impl PartialEq for Queue {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.exchange == o.exchange
            && self.routing_key == o.routing_key
            && self.queue_arguments == o.queue_arguments
            && self.binding_arguments == o.binding_arguments
            && self.consumer_arguments == o.consumer_arguments
            && self.durable == o.durable
            && self.exclusive == o.exclusive
            && self.auto_delete == o.auto_delete
            && self.expires == o.expires
            && self.message_ttl == o.message_ttl
            && self.max_length == o.max_length
            && self.max_length_bytes == o.max_length_bytes
            && self.max_priority == o.max_priority
            && self.no_ack == o.no_ack
            && self.bindings == o.bindings
    }
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.channel {
            Some(ch) => format!(" bound to chan:{}", ch.channel_id()),
            None => String::new(),
        };
        write!(f, "<Queue {} -> {:?} -> {}{}>", self.name, self.exchange, self.routing_key, state)
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Queue '{}'", self.name)
    }
}

impl From<&str> for Queue {
    fn from(name: &str) -> Self {
        Queue::new(name)
    }
}
impl From<&Queue> for Queue {
    fn from(q: &Queue) -> Self {
        q.clone()
    }
}

fn secs_to_ms(v: f64) -> Value {
    Value::from((v * 1000.0) as i64)
}

impl Queue {
    /// A queue with Kombu's defaults, bound to the default exchange.
    pub fn new(name: impl Into<String>) -> Self {
        Queue { name: name.into(), ..Default::default() }
    }

    /// Set the exchange (an [`Exchange`] or an exchange name, which means a direct exchange).
    #[must_use]
    pub fn exchange(mut self, exchange: impl Into<Exchange>) -> Self {
        self.exchange = exchange.into();
        self
    }
    /// Set the binding key.
    #[must_use]
    pub fn routing_key(mut self, key: impl Into<String>) -> Self {
        self.routing_key = key.into();
        self
    }
    /// Set `durable`.
    #[must_use]
    pub fn durable(mut self, v: bool) -> Self {
        self.durable = v;
        self
    }
    /// Set `exclusive` (which also sets `auto_delete`).
    #[must_use]
    pub fn exclusive(mut self, v: bool) -> Self {
        self.exclusive = v;
        if v {
            self.auto_delete = true;
        }
        self
    }
    /// Set `auto_delete`.
    #[must_use]
    pub fn auto_delete(mut self, v: bool) -> Self {
        self.auto_delete = v;
        self
    }
    /// Set `expires` in seconds.
    #[must_use]
    pub fn expires(mut self, seconds: f64) -> Self {
        self.expires = Some(seconds);
        self
    }
    /// Set `message_ttl` in seconds.
    #[must_use]
    pub fn message_ttl(mut self, seconds: f64) -> Self {
        self.message_ttl = Some(seconds);
        self
    }
    /// Set `max_length`.
    #[must_use]
    pub fn max_length(mut self, n: u64) -> Self {
        self.max_length = Some(n);
        self
    }
    /// Set `max_length_bytes`.
    #[must_use]
    pub fn max_length_bytes(mut self, n: u64) -> Self {
        self.max_length_bytes = Some(n);
        self
    }
    /// Set `max_priority`.
    #[must_use]
    pub fn max_priority(mut self, n: u8) -> Self {
        self.max_priority = Some(n);
        self
    }
    /// Add a `queue.declare` argument.
    #[must_use]
    pub fn queue_argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.queue_arguments.insert(key.into(), value.into());
        self
    }
    /// Add a `queue.bind` argument.
    #[must_use]
    pub fn binding_argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.binding_arguments.insert(key.into(), value.into());
        self
    }
    /// Add a `basic.consume` argument.
    #[must_use]
    pub fn consumer_argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.consumer_arguments.insert(key.into(), value.into());
        self
    }
    /// Set `no_ack`.
    #[must_use]
    pub fn no_ack(mut self, v: bool) -> Self {
        self.no_ack = v;
        self
    }
    /// Set `no_declare`.
    #[must_use]
    pub fn no_declare(mut self, v: bool) -> Self {
        self.no_declare = v;
        self
    }
    /// Set `alias`.
    #[must_use]
    pub fn alias(mut self, v: impl Into<String>) -> Self {
        self.alias = Some(v.into());
        self
    }
    /// Add a binding (a queue can be bound to several exchanges and keys).
    #[must_use]
    pub fn binding(mut self, b: Binding) -> Self {
        self.bindings.push(b);
        self
    }

    /// True when bound to a channel.
    pub fn is_bound(&self) -> bool {
        self.channel.is_some()
    }

    /// Whether `maybe_declare` may remember this declaration: not for auto-delete queues
    /// or queues that expire.
    pub fn can_cache_declaration(&self) -> bool {
        !(self.auto_delete || self.exclusive || self.expires.is_some() || self.queue_arguments.contains_key("x-expires"))
    }

    /// The `queue.declare` arguments: `queue_arguments` plus the `x-` arguments derived from
    /// `expires`, `message_ttl`, `max_length`, `max_length_bytes` and `max_priority`.
    pub fn declare_arguments(&self) -> Headers {
        let mut a = self.queue_arguments.clone();
        if let Some(v) = self.expires {
            a.insert("x-expires".into(), secs_to_ms(v));
        }
        if let Some(v) = self.message_ttl {
            a.insert("x-message-ttl".into(), secs_to_ms(v));
        }
        if let Some(v) = self.max_length {
            a.insert("x-max-length".into(), v.into());
        }
        if let Some(v) = self.max_length_bytes {
            a.insert("x-max-length-bytes".into(), v.into());
        }
        if let Some(v) = self.max_priority {
            a.insert("x-max-priority".into(), v.into());
        }
        a
    }

    /// The `queue.declare` method for this queue.
    pub fn to_declare(&self, passive: bool, nowait: bool) -> QueueDeclare {
        QueueDeclare {
            queue: self.name.clone(),
            passive,
            durable: self.durable,
            exclusive: self.exclusive,
            auto_delete: self.auto_delete || self.exclusive,
            nowait,
            arguments: self.declare_arguments(),
        }
    }

    pub(crate) fn bind_method(&self, exchange: &str, routing_key: &str, arguments: &Headers, nowait: bool) -> QueueBind {
        QueueBind {
            queue: self.name.clone(),
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            nowait,
            arguments: arguments.clone(),
        }
    }
}

/// Something `maybe_declare` can declare. Deserializes from `{"exchange": {...}}` or
/// `{"queue": {...}}` (what the npm package's `declare` sends).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(clippy::large_enum_variant)] // declarations are built once and passed by reference
pub enum Entity {
    /// An exchange.
    Exchange(Exchange),
    /// A queue (with its exchange and bindings).
    Queue(Queue),
}

impl Entity {
    /// True when both declare the same exchange, or the same queue (by name).
    pub(crate) fn same_kind_and_name(&self, o: &Entity) -> bool {
        match (self, o) {
            (Entity::Exchange(a), Entity::Exchange(b)) => a.name == b.name,
            (Entity::Queue(a), Entity::Queue(b)) => a.name == b.name,
            _ => false,
        }
    }
}

impl From<Exchange> for Entity {
    fn from(x: Exchange) -> Self {
        Entity::Exchange(x)
    }
}
impl From<&Exchange> for Entity {
    fn from(x: &Exchange) -> Self {
        Entity::Exchange(x.clone())
    }
}
impl From<Queue> for Entity {
    fn from(q: Queue) -> Self {
        Entity::Queue(q)
    }
}
impl From<&Queue> for Entity {
    fn from(q: &Queue) -> Self {
        Entity::Queue(q.clone())
    }
}

fn hash_headers<H: Hasher>(h: &Headers, state: &mut H) {
    if !h.is_empty() {
        crate::json_print::map_to_string(h).hash(state);
    }
}

fn hash_exchange<H: Hasher>(x: &Exchange, state: &mut H) {
    x.name.hash(state);
    x.kind.as_str().hash(state);
    (x.durable, x.auto_delete, x.passive).hash(state);
    hash_headers(&x.arguments, state);
}

impl Entity {
    /// Whether the declaration may be cached per connection.
    pub fn can_cache_declaration(&self) -> bool {
        match self {
            Entity::Exchange(x) => x.can_cache_declaration(),
            Entity::Queue(q) => !q.name.is_empty() && q.can_cache_declaration(),
        }
    }

    /// The key `maybe_declare` remembers the declaration by: equal for declarations that
    /// declare the same thing.
    pub(crate) fn cache_key(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        match self {
            Entity::Exchange(x) => {
                0u8.hash(&mut h);
                hash_exchange(x, &mut h);
            }
            Entity::Queue(q) => {
                1u8.hash(&mut h);
                q.name.hash(&mut h);
                hash_exchange(&q.exchange, &mut h);
                q.routing_key.hash(&mut h);
                (q.durable, q.exclusive, q.auto_delete, q.no_declare).hash(&mut h);
                hash_headers(&q.declare_arguments(), &mut h);
                hash_headers(&q.binding_arguments, &mut h);
                // Every field of every binding (what its JSON text held).
                q.bindings.len().hash(&mut h);
                for b in &q.bindings {
                    if let Some(x) = &b.exchange {
                        hash_exchange(x, &mut h);
                        (x.delivery_mode.map(u8::from), x.no_declare).hash(&mut h);
                    }
                    b.exchange.is_some().hash(&mut h);
                    b.routing_key.hash(&mut h);
                    hash_headers(&b.arguments, &mut h);
                    if let Some(u) = &b.unbind_arguments {
                        u.len().hash(&mut h);
                        hash_headers(u, &mut h);
                    }
                    b.unbind_arguments.is_some().hash(&mut h);
                }
            }
        }
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn cache_rules() {
        assert!(Entity::from(Exchange::direct("x")).can_cache_declaration());
        assert!(!Entity::from(Exchange::direct("x").auto_delete(true)).can_cache_declaration());
        assert!(Entity::from(Queue::new("q")).can_cache_declaration());
        assert!(!Entity::from(Queue::new("q").expires(10.0)).can_cache_declaration());
        assert!(!Entity::from(Queue::new("")).can_cache_declaration());
        assert_ne!(Entity::from(Queue::new("a")).cache_key(), Entity::from(Queue::new("b")).cache_key());
    }

    #[test]
    fn deserializes_kombu_and_camel_case_names_with_an_exchange_by_name() {
        let snake: Queue = serde_json::from_value(json!({
            "name": "q", "exchange": "x", "routing_key": "k", "message_ttl": 1.5, "max_priority": 9,
            "queue_arguments": {"x-queue-mode": "lazy"}, "no_ack": true,
            "bindings": [{"exchange": {"name": "t", "type": "topic"}, "routing_key": "a.*", "unbind_arguments": {}}],
        }))
        .unwrap();
        let camel: Queue = serde_json::from_value(json!({
            "name": "q", "exchange": "x", "routingKey": "k", "messageTtl": 1.5, "maxPriority": 9,
            "queueArguments": {"x-queue-mode": "lazy"}, "noAck": true,
            "bindings": [{"exchange": {"name": "t", "type": "topic"}, "routingKey": "a.*", "unbindArguments": {}}],
        }))
        .unwrap();
        let built = Queue::new("q")
            .exchange("x")
            .routing_key("k")
            .message_ttl(1.5)
            .max_priority(9)
            .queue_argument("x-queue-mode", "lazy")
            .no_ack(true)
            .binding(Binding::new(Exchange::topic("t"), "a.*").unbind_arguments(Headers::new()));
        assert_eq!(snake, built);
        assert_eq!(camel, built);
        assert_eq!(camel.exchange, Exchange::direct("x"));
        // What a queue serializes to reads back (Kombu's names, the exchange as a declaration).
        assert_eq!(serde_json::from_str::<Queue>(&serde_json::to_string(&built).unwrap()).unwrap(), built);

        let x: Exchange = serde_json::from_value(json!({"name": "x", "autoDelete": true, "deliveryMode": "transient", "noDeclare": true})).unwrap();
        assert!(x.auto_delete && x.no_declare && x.delivery_mode == Some(DeliveryMode::Transient));
        let b: Binding = serde_json::from_value(json!({"exchange": null})).unwrap();
        assert_eq!(b.exchange, None);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused_by_name() {
        let e = serde_json::from_value::<Exchange>(json!({"name": "x", "tpye": "topic"})).unwrap_err().to_string();
        assert!(e.contains("unknown field `tpye`"), "{e}");
        let e = serde_json::from_value::<Queue>(json!({"name": "q", "bindings": [{"exchange": "x", "routingkey": "k"}]})).unwrap_err().to_string();
        assert!(e.contains("unknown field `routingkey`"), "{e}");
        let e = serde_json::from_value::<Queue>(json!({"exchange": 5})).unwrap_err().to_string();
        assert!(e.contains("expected an exchange or an exchange name"), "{e}");
        for (mode, ok) in [(json!(1), true), (json!(2), true), (json!("persistent"), true), (json!(7), false), (json!(-1), false), (json!("often"), false), (json!(true), false)] {
            let r = serde_json::from_value::<Exchange>(json!({"delivery_mode": mode}));
            assert_eq!(r.is_ok(), ok, "{mode}: {r:?}");
        }
    }
}
