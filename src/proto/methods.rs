//! The vocabulary shared by the broker, the transports and the Kombu API: the arguments and
//! results of the AMQP 0-9-1 methods Kombu uses, and what a broker pushes to a client.
//!
//! These are plain values. The in-memory [`crate::broker`] takes them directly, the gateway
//! protocol carries them, and the AMQP engine maps them to frames.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::properties::Properties;
use crate::value::Headers;

/// An interned name (exchange, queue, routing key, consumer tag): cheap to clone per delivery.
pub type Name = Arc<str>;

/// The type of an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(from = "String", into = "String")]
pub enum ExchangeType {
    /// Routing key equals binding key.
    #[default]
    Direct,
    /// Every bound queue gets a copy.
    Fanout,
    /// `.`-separated words with `*` (one word) and `#` (zero or more words).
    Topic,
    /// Matches message headers against binding arguments (`x-match` all/any).
    Headers,
    /// A broker plugin type (`x-delayed-message`, `x-consistent-hash`, ...). The memory
    /// broker refuses these; RabbitMQ accepts the ones it has plugins for.
    Custom(String),
}

impl ExchangeType {
    /// The AMQP name of the type.
    pub fn as_str(&self) -> &str {
        match self {
            ExchangeType::Direct => "direct",
            ExchangeType::Fanout => "fanout",
            ExchangeType::Topic => "topic",
            ExchangeType::Headers => "headers",
            ExchangeType::Custom(s) => s,
        }
    }

    /// Parse a type name. An empty name means `direct`, as in Kombu.
    pub fn parse(s: &str) -> Self {
        match s {
            "" | "direct" => ExchangeType::Direct,
            "fanout" => ExchangeType::Fanout,
            "topic" => ExchangeType::Topic,
            "headers" => ExchangeType::Headers,
            other => ExchangeType::Custom(other.to_owned()),
        }
    }
}

impl From<String> for ExchangeType {
    fn from(s: String) -> Self {
        ExchangeType::parse(&s)
    }
}
impl From<&str> for ExchangeType {
    fn from(s: &str) -> Self {
        ExchangeType::parse(s)
    }
}
impl From<ExchangeType> for String {
    fn from(t: ExchangeType) -> String {
        t.as_str().to_owned()
    }
}
impl std::fmt::Display for ExchangeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `exchange.declare`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExchangeDeclare {
    /// Exchange name.
    pub exchange: String,
    /// Exchange type.
    #[serde(rename = "type")]
    pub kind: ExchangeType,
    /// Only check that the exchange exists.
    pub passive: bool,
    /// Survive a broker restart.
    pub durable: bool,
    /// Delete when the last binding from it is removed.
    pub auto_delete: bool,
    /// Clients may not publish to it directly.
    pub internal: bool,
    /// Do not wait for the broker's answer.
    pub nowait: bool,
    /// Extra arguments (`alternate-exchange`, ...).
    pub arguments: Headers,
}

/// `exchange.delete`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExchangeDelete {
    /// Exchange name.
    pub exchange: String,
    /// Delete only if it has no bindings.
    pub if_unused: bool,
    /// Do not wait for the broker's answer.
    pub nowait: bool,
}

/// `exchange.bind` / `exchange.unbind` (exchange-to-exchange bindings).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExchangeBind {
    /// The exchange that receives the routed messages.
    pub destination: String,
    /// The exchange the messages are published to.
    pub source: String,
    /// Binding key.
    pub routing_key: String,
    /// Do not wait for the broker's answer.
    pub nowait: bool,
    /// Binding arguments.
    pub arguments: Headers,
}

/// `queue.declare`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueDeclare {
    /// Queue name; empty asks the broker for a generated name.
    pub queue: String,
    /// Only check that the queue exists.
    pub passive: bool,
    /// Survive a broker restart.
    pub durable: bool,
    /// Only this connection may use it; deleted when the connection closes.
    pub exclusive: bool,
    /// Delete when the last consumer is cancelled.
    pub auto_delete: bool,
    /// Do not wait for the broker's answer.
    pub nowait: bool,
    /// `x-message-ttl`, `x-expires`, `x-max-length`, `x-max-priority`, `x-dead-letter-*`, ...
    pub arguments: Headers,
}

/// The answer to `queue.declare`: Kombu's `queue_declare_ok_t(queue, message_count, consumer_count)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDeclareOk {
    /// The queue name (generated when the declaration had none).
    pub queue: String,
    /// Messages ready for delivery.
    pub message_count: u32,
    /// Active consumers.
    pub consumer_count: u32,
}

/// `queue.bind` / `queue.unbind`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueBind {
    /// Queue name.
    pub queue: String,
    /// Exchange name.
    pub exchange: String,
    /// Binding key.
    pub routing_key: String,
    /// Do not wait for the broker's answer.
    pub nowait: bool,
    /// Binding arguments (headers exchanges match on these).
    pub arguments: Headers,
}

/// `queue.delete`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueDelete {
    /// Queue name.
    pub queue: String,
    /// Delete only if it has no consumers.
    pub if_unused: bool,
    /// Delete only if it has no messages.
    pub if_empty: bool,
    /// Do not wait for the broker's answer.
    pub nowait: bool,
}

/// `basic.publish`, without the content.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BasicPublish {
    /// Exchange name; empty is the default exchange.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Return the message if no queue gets it.
    pub mandatory: bool,
    /// Return the message if no consumer can take it now (RabbitMQ refuses this).
    pub immediate: bool,
}

/// `basic.consume`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BasicConsume {
    /// Queue name.
    pub queue: String,
    /// Consumer tag; empty asks the broker for one.
    pub consumer_tag: String,
    /// Do not deliver messages published on this connection.
    pub no_local: bool,
    /// Messages are acknowledged on delivery.
    pub no_ack: bool,
    /// Only consumer of the queue.
    pub exclusive: bool,
    /// Do not wait for the broker's answer.
    pub nowait: bool,
    /// Consumer arguments (`x-priority`, ...).
    pub arguments: Headers,
}

/// `basic.qos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BasicQos {
    /// Prefetch window in octets (0 = no limit; RabbitMQ does not implement a non-zero value).
    pub prefetch_size: u32,
    /// Prefetch window in messages (0 = no limit).
    pub prefetch_count: u16,
    /// RabbitMQ semantics: false applies to each new consumer of the channel, true to the
    /// channel as a whole.
    pub global: bool,
}

/// The content of a message: properties and body. Shared between deliveries of the same
/// published message (fanout), so it lives behind an `Arc`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Content {
    /// Properties and headers.
    pub properties: Properties,
    /// The body bytes (serialized and possibly compressed).
    pub body: Bytes,
}

/// A message delivered to a consumer or fetched by `basic.get`.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Channel-scoped delivery tag.
    pub delivery_tag: u64,
    /// True when the message was delivered before and not acknowledged.
    pub redelivered: bool,
    /// The exchange it was published to.
    pub exchange: Name,
    /// The routing key it was published with.
    pub routing_key: Name,
    /// Properties and body.
    pub content: Arc<Content>,
    /// What the transport adds to Kombu's `delivery_info` (SQS: `sqs_message` and
    /// `sqs_queue`); `None` on the transports that add nothing.
    pub extra: Option<Arc<Headers>>,
}

/// The answer to `basic.get` when a message was there.
#[derive(Debug, Clone)]
pub struct GetOk {
    /// The message.
    pub delivery: Delivery,
    /// Messages left in the queue.
    pub message_count: u32,
}

/// A message the broker sent back (`basic.return`): mandatory and unroutable.
#[derive(Debug, Clone)]
pub struct Returned {
    /// AMQP reply code (312 NO_ROUTE).
    pub reply_code: u16,
    /// Reply text (`NO_ROUTE`).
    pub reply_text: String,
    /// The exchange it was published to.
    pub exchange: Name,
    /// The routing key it was published with.
    pub routing_key: Name,
    /// Properties and body.
    pub content: Arc<Content>,
}

/// What a broker pushes to a connection.
#[derive(Debug, Clone)]
pub enum ServerEvent {
    /// A message for a consumer.
    Deliver {
        /// Channel id.
        channel: u32,
        /// The consumer it is for.
        consumer_tag: Name,
        /// The message.
        delivery: Delivery,
    },
    /// An unroutable mandatory message came back.
    Return {
        /// Channel id the message was published on.
        channel: u32,
        /// The message.
        returned: Returned,
    },
    /// The broker cancelled a consumer (its queue was deleted).
    Cancel {
        /// Channel id.
        channel: u32,
        /// The cancelled consumer.
        consumer_tag: Name,
    },
    /// The broker closed a channel because of an exception.
    ChannelClosed {
        /// Channel id.
        channel: u32,
        /// Why.
        error: crate::Error,
    },
    /// Publisher confirm: the broker took responsibility for messages up to `delivery_tag`.
    Ack {
        /// Channel id.
        channel: u32,
        /// Publish sequence number.
        delivery_tag: u64,
        /// All sequence numbers up to this one.
        multiple: bool,
    },
    /// Publisher confirm: the broker refused messages up to `delivery_tag` (`basic.nack`).
    Nack {
        /// Channel id.
        channel: u32,
        /// Publish sequence number.
        delivery_tag: u64,
        /// All sequence numbers up to this one.
        multiple: bool,
    },
    /// The broker closed the whole connection because of an exception.
    ConnectionClosed {
        /// Why.
        error: crate::Error,
    },
    /// Flow control from the broker (`channel.flow`).
    Flow {
        /// Channel id.
        channel: u32,
        /// False: stop publishing.
        active: bool,
    },
    /// The broker stopped reading publishes from this connection (`connection.blocked`: a
    /// resource alarm, such as RabbitMQ's memory high watermark).
    Blocked {
        /// Why, as the broker says it (`low on memory`).
        reason: String,
    },
    /// The alarm is over: publishes are accepted again (`connection.unblocked`).
    Unblocked,
}

/// Hash maps keyed by names inside the crate: foldhash instead of SipHash (keys are short).
/// (The memory:// broker and the Kombu API use `SortedMap`s: less code in the module.)
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
