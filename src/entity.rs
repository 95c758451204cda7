//! Declarations: [`Exchange`], [`Queue`] and [`Binding`].
//!
//! They are plain values (serde, equality, cheap to clone) that can live in configuration,
//! with Kombu's defaults exactly. Operations that need a broker (`declare`, `delete`,
//! `purge`, ...) work on a copy bound to a [`Channel`] with [`Exchange::bind`] /
//! [`Queue::bind`]; on an unbound value they fail with [`Error::NotBound`], and the original
//! stays unbound:
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
//! package's camelCase ones (`routingKey`, `messageTtl`, ...): the JavaScript facade reads
//! `new Queue(...)` with these types, so the fields are listed once, here. Unknown fields are
//! refused, and an exchange may be given by name (a direct exchange), as Kombu's
//! `Queue(exchange="name")` allows.

use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::properties::DeliveryMode;
use crate::serialization::Accept;
use crate::transport::RawChannel;
use crate::proto::methods::{
    BasicConsume, ExchangeBind, ExchangeDeclare, ExchangeDelete, ExchangeType, QueueBind,
    QueueDeclare, QueueDeclareOk, QueueDelete,
};
use crate::value::{Headers, Value};

/// An exchange declaration (Kombu's `kombu.Exchange`).
///
/// Defaults: name `""` (the default exchange), type `direct`, `durable=true`,
/// `auto_delete=false`, `delivery_mode=None` (the producer then uses persistent),
/// `no_declare=false`, `passive=false`.
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
    channel: Option<Channel>,
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
    pub fn durable(mut self, v: bool) -> Self {
        self.durable = v;
        self
    }
    /// Set `auto_delete`.
    pub fn auto_delete(mut self, v: bool) -> Self {
        self.auto_delete = v;
        self
    }
    /// Set the default delivery mode.
    pub fn delivery_mode(mut self, v: DeliveryMode) -> Self {
        self.delivery_mode = Some(v);
        self
    }
    /// Add a declaration argument.
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.arguments.insert(key.into(), value.into());
        self
    }
    /// Set `no_declare`.
    pub fn no_declare(mut self, v: bool) -> Self {
        self.no_declare = v;
        self
    }
    /// Set `passive`.
    pub fn passive(mut self, v: bool) -> Self {
        self.passive = v;
        self
    }

    /// A copy bound to `channel` (Kombu's `exchange(channel)`). The original is unchanged.
    pub fn bind(&self, channel: &Channel) -> Exchange {
        Exchange { channel: Some(channel.clone()), ..self.clone() }
    }
    /// Bind to `channel` unless already bound.
    pub fn maybe_bind(&mut self, channel: &Channel) {
        if self.channel.is_none() {
            self.channel = Some(channel.clone());
        }
    }
    /// True when bound to a channel.
    pub fn is_bound(&self) -> bool {
        self.channel.is_some()
    }
    /// The channel this copy is bound to.
    pub fn channel(&self) -> Option<&Channel> {
        self.channel.as_ref()
    }

    fn bound(&self, operation: &'static str) -> Result<&Channel> {
        self.channel.as_ref().ok_or_else(|| Error::NotBound { operation, entity: self.to_string() })
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

    /// Declare the exchange (or, when `passive`, check that it exists). Does nothing for
    /// [`Exchange::skips_declare`] exchanges unless passive.
    pub async fn declare(&self, nowait: bool, passive: Option<bool>) -> Result<()> {
        let ch = self.bound("declare")?;
        self.declare_on(ch, nowait, passive).await
    }

    pub(crate) async fn declare_on(&self, ch: &Channel, nowait: bool, passive: Option<bool>) -> Result<()> {
        let passive = passive.unwrap_or(self.passive);
        if self.skips_declare() && !passive {
            return Ok(());
        }
        let raw = ch.raw().await?;
        self.declare_raw(&*raw, nowait, passive).await.map_err(|e| ch.note_error(e))
    }

    /// Declare on a transport channel directly.
    pub(crate) async fn declare_raw(&self, raw: &dyn RawChannel, nowait: bool, passive: bool) -> Result<()> {
        if self.skips_declare() && !passive {
            return Ok(());
        }
        raw.exchange_declare(&self.to_declare(passive, nowait)).await
    }

    /// Delete the exchange; with `if_unused`, only when it has no bindings.
    pub async fn delete(&self, if_unused: bool) -> Result<()> {
        let ch = self.bound("delete")?;
        ch.raw()
            .await?
            .exchange_delete(&ExchangeDelete { exchange: self.name.clone(), if_unused, nowait: false })
            .await
            .map_err(|e| ch.note_error(e))
    }

    /// Bind this exchange to `source`: messages routed by `source` with `routing_key` also go
    /// through this exchange (exchange-to-exchange binding).
    pub async fn bind_to(&self, source: impl Into<Exchange>, routing_key: &str, arguments: Headers) -> Result<()> {
        let ch = self.bound("bind_to")?;
        let source: Exchange = source.into();
        ch.raw()
            .await?
            .exchange_bind(&ExchangeBind {
                destination: self.name.clone(),
                source: source.name,
                routing_key: routing_key.into(),
                nowait: false,
                arguments,
            })
            .await
            .map_err(|e| ch.note_error(e))
    }

    /// Remove an exchange-to-exchange binding made with [`Exchange::bind_to`].
    pub async fn unbind_from(&self, source: impl Into<Exchange>, routing_key: &str, arguments: Headers) -> Result<()> {
        let ch = self.bound("unbind_from")?;
        let source: Exchange = source.into();
        ch.raw()
            .await?
            .exchange_unbind(&ExchangeBind {
                destination: self.name.clone(),
                source: source.name,
                routing_key: routing_key.into(),
                nowait: false,
                arguments,
            })
            .await
            .map_err(|e| ch.note_error(e))
    }

    /// A binding of a queue to this exchange (Kombu's `exchange.binding(...)`).
    pub fn binding(&self, routing_key: impl Into<String>) -> Binding {
        Binding::new(self.clone(), routing_key)
    }

    /// Publish a raw body to this exchange (Kombu's low-level `Exchange.publish`). The body is
    /// sent as is; use a [`crate::Producer`] to serialize.
    pub async fn publish(
        &self,
        body: impl Into<bytes::Bytes>,
        routing_key: &str,
        properties: crate::Properties,
        mandatory: bool,
    ) -> Result<()> {
        let ch = self.bound("publish")?;
        let mut properties = properties;
        if properties.delivery_mode.is_none() {
            properties.delivery_mode =
                Some(self.delivery_mode.unwrap_or(DeliveryMode::Persistent).as_u8());
        }
        let content = std::sync::Arc::new(crate::proto::methods::Content { properties, body: body.into() });
        ch.raw()
            .await?
            .basic_publish(
                &crate::proto::methods::BasicPublish {
                    exchange: self.name.clone(),
                    routing_key: routing_key.into(),
                    mandatory,
                    immediate: false,
                },
                content,
            )
            .await
            .map_err(|e| ch.note_error(e))
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
    pub fn arguments(mut self, arguments: Headers) -> Self {
        self.arguments = arguments;
        self
    }
    /// Set the arguments used when unbinding.
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
    channel: Option<Channel>,
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
    pub fn exchange(mut self, exchange: impl Into<Exchange>) -> Self {
        self.exchange = exchange.into();
        self
    }
    /// Set the binding key.
    pub fn routing_key(mut self, key: impl Into<String>) -> Self {
        self.routing_key = key.into();
        self
    }
    /// Set `durable`.
    pub fn durable(mut self, v: bool) -> Self {
        self.durable = v;
        self
    }
    /// Set `exclusive` (which also sets `auto_delete`).
    pub fn exclusive(mut self, v: bool) -> Self {
        self.exclusive = v;
        if v {
            self.auto_delete = true;
        }
        self
    }
    /// Set `auto_delete`.
    pub fn auto_delete(mut self, v: bool) -> Self {
        self.auto_delete = v;
        self
    }
    /// Set `expires` in seconds.
    pub fn expires(mut self, seconds: f64) -> Self {
        self.expires = Some(seconds);
        self
    }
    /// Set `message_ttl` in seconds.
    pub fn message_ttl(mut self, seconds: f64) -> Self {
        self.message_ttl = Some(seconds);
        self
    }
    /// Set `max_length`.
    pub fn max_length(mut self, n: u64) -> Self {
        self.max_length = Some(n);
        self
    }
    /// Set `max_length_bytes`.
    pub fn max_length_bytes(mut self, n: u64) -> Self {
        self.max_length_bytes = Some(n);
        self
    }
    /// Set `max_priority`.
    pub fn max_priority(mut self, n: u8) -> Self {
        self.max_priority = Some(n);
        self
    }
    /// Add a `queue.declare` argument.
    pub fn queue_argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.queue_arguments.insert(key.into(), value.into());
        self
    }
    /// Add a `queue.bind` argument.
    pub fn binding_argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.binding_arguments.insert(key.into(), value.into());
        self
    }
    /// Add a `basic.consume` argument.
    pub fn consumer_argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.consumer_arguments.insert(key.into(), value.into());
        self
    }
    /// Set `no_ack`.
    pub fn no_ack(mut self, v: bool) -> Self {
        self.no_ack = v;
        self
    }
    /// Set `no_declare`.
    pub fn no_declare(mut self, v: bool) -> Self {
        self.no_declare = v;
        self
    }
    /// Set `alias`.
    pub fn alias(mut self, v: impl Into<String>) -> Self {
        self.alias = Some(v.into());
        self
    }
    /// Add a binding (a queue can be bound to several exchanges and keys).
    pub fn binding(mut self, b: Binding) -> Self {
        self.bindings.push(b);
        self
    }

    /// A copy bound to `channel`.
    pub fn bind(&self, channel: &Channel) -> Queue {
        let mut q = self.clone();
        q.channel = Some(channel.clone());
        q.exchange = self.exchange.bind(channel);
        q
    }
    /// Bind to `channel` unless already bound.
    pub fn maybe_bind(&mut self, channel: &Channel) {
        if self.channel.is_none() {
            *self = self.bind(channel);
        }
    }
    /// True when bound to a channel.
    pub fn is_bound(&self) -> bool {
        self.channel.is_some()
    }
    /// The channel this copy is bound to.
    pub fn channel(&self) -> Option<&Channel> {
        self.channel.as_ref()
    }

    fn bound(&self, operation: &'static str) -> Result<&Channel> {
        self.channel.as_ref().ok_or_else(|| Error::NotBound { operation, entity: self.to_string() })
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

    /// Declare the exchange, the queue and the bindings. Returns the queue name (generated
    /// by the broker when the name was empty; the name is stored in `self`).
    pub async fn declare(&mut self, nowait: bool) -> Result<String> {
        let ch = self.bound("declare")?.clone();
        self.declare_on(&ch, nowait).await
    }

    pub(crate) async fn declare_on(&mut self, ch: &Channel, nowait: bool) -> Result<String> {
        if self.no_declare {
            return Ok(self.name.clone());
        }
        let raw = ch.raw().await?;
        self.declare_raw(&*raw, nowait).await.map_err(|e| ch.note_error(e))
    }

    /// Declare exchange, queue and bindings on a transport channel directly.
    pub(crate) async fn declare_raw(&mut self, raw: &dyn RawChannel, nowait: bool) -> Result<String> {
        if self.no_declare {
            return Ok(self.name.clone());
        }
        if !self.exchange.name.is_empty() {
            self.exchange.declare_raw(raw, nowait, self.exchange.passive).await?;
        }
        let ok = raw.queue_declare(&self.to_declare(false, nowait)).await?;
        if self.name.is_empty() {
            self.name = ok.queue;
        }
        if !self.exchange.name.is_empty() {
            raw.queue_bind(&self.bind_method(&self.exchange.name, &self.routing_key, &self.binding_arguments, nowait)).await?;
        }
        for b in &self.bindings {
            if let Some(x) = &b.exchange {
                x.declare_raw(raw, nowait, x.passive).await?;
            }
            let xname = b.exchange.as_ref().map(|x| x.name.as_str()).unwrap_or("");
            raw.queue_bind(&self.bind_method(xname, &b.routing_key, &b.arguments, nowait)).await?;
        }
        Ok(self.name.clone())
    }

    fn bind_method(&self, exchange: &str, routing_key: &str, arguments: &Headers, nowait: bool) -> QueueBind {
        QueueBind {
            queue: self.name.clone(),
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            nowait,
            arguments: arguments.clone(),
        }
    }

    /// `queue.declare` only; with `passive`, checks that the queue exists.
    pub async fn queue_declare(&mut self, nowait: bool, passive: bool) -> Result<QueueDeclareOk> {
        let ch = self.bound("queue_declare")?.clone();
        let ok = ch.raw().await?.queue_declare(&self.to_declare(passive, nowait)).await.map_err(|e| ch.note_error(e))?;
        if self.name.is_empty() {
            self.name = ok.queue.clone();
        }
        Ok(ok)
    }

    /// Bind the queue to its exchange with its routing key (not for the default exchange).
    pub async fn queue_bind(&self, nowait: bool) -> Result<()> {
        let ch = self.bound("queue_bind")?;
        self.queue_bind_on(ch, nowait).await
    }

    async fn queue_bind_on(&self, ch: &Channel, nowait: bool) -> Result<()> {
        if self.exchange.name.is_empty() {
            return Ok(());
        }
        self.bind_on(ch, &self.exchange.name, &self.routing_key, &self.binding_arguments, nowait).await
    }

    async fn bind_on(&self, ch: &Channel, exchange: &str, routing_key: &str, arguments: &Headers, nowait: bool) -> Result<()> {
        let m = self.bind_method(exchange, routing_key, arguments, nowait);
        ch.raw().await?.queue_bind(&m).await.map_err(|e| ch.note_error(e))
    }

    /// Remove the queue's binding to its exchange.
    pub async fn queue_unbind(&self, arguments: Option<Headers>) -> Result<()> {
        let ch = self.bound("queue_unbind")?;
        self.unbind_from(self.exchange.name.as_str(), &self.routing_key, arguments.unwrap_or_else(|| self.binding_arguments.clone()))
            .await
            .map_err(|e| ch.note_error(e))
    }

    /// Bind the queue to `exchange` with `routing_key`.
    pub async fn bind_to(&self, exchange: impl Into<Exchange>, routing_key: &str, arguments: Headers) -> Result<()> {
        let ch = self.bound("bind_to")?;
        let x: Exchange = exchange.into();
        self.bind_on(ch, &x.name, routing_key, &arguments, false).await
    }

    /// Unbind the queue from `exchange` / `routing_key`.
    pub async fn unbind_from(&self, exchange: impl Into<Exchange>, routing_key: &str, arguments: Headers) -> Result<()> {
        let ch = self.bound("unbind_from")?;
        let x: Exchange = exchange.into();
        ch.raw()
            .await?
            .queue_unbind(&QueueBind {
                queue: self.name.clone(),
                exchange: x.name,
                routing_key: routing_key.into(),
                nowait: false,
                arguments,
            })
            .await
            .map_err(|e| ch.note_error(e))
    }

    /// Remove all ready messages; returns how many.
    pub async fn purge(&self) -> Result<u32> {
        let ch = self.bound("purge")?;
        ch.raw().await?.queue_purge(&self.name).await.map_err(|e| ch.note_error(e))
    }

    /// Delete the queue (with `if_unused` / `if_empty` conditions); returns the number of
    /// messages deleted with it.
    pub async fn delete(&self, if_unused: bool, if_empty: bool) -> Result<u32> {
        let ch = self.bound("delete")?;
        ch.raw()
            .await?
            .queue_delete(&QueueDelete { queue: self.name.clone(), if_unused, if_empty, nowait: false })
            .await
            .map_err(|e| ch.note_error(e))
    }

    /// Poll one message (`basic.get`), decoding with `accept` when given.
    pub async fn get(&self, no_ack: Option<bool>, accept: Option<Accept>) -> Result<Option<Message>> {
        let ch = self.bound("get")?;
        let no_ack = no_ack.unwrap_or(self.no_ack);
        let msg = ch.basic_get(&self.name, no_ack).await?;
        Ok(msg.map(|m| m.with_accept(accept.map(std::sync::Arc::new))))
    }

    /// Start consuming with `callback`; returns the consumer tag. Prefer [`crate::Consumer`].
    pub async fn consume(
        &self,
        consumer_tag: &str,
        no_ack: Option<bool>,
        callback: crate::channel::DeliveryCallback,
    ) -> Result<String> {
        let ch = self.bound("consume")?;
        let m = BasicConsume {
            queue: self.name.clone(),
            consumer_tag: consumer_tag.into(),
            no_ack: no_ack.unwrap_or(self.no_ack),
            arguments: self.consumer_arguments.clone(),
            ..Default::default()
        };
        ch.basic_consume(m, callback, None).await
    }

    /// Cancel a consumer started with [`Queue::consume`].
    pub async fn cancel(&self, consumer_tag: &str) -> Result<()> {
        let ch = self.bound("cancel")?;
        ch.basic_cancel(consumer_tag).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

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
