//! `Producer`: publishes messages (Kombu's `kombu.Producer`).

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use crate::compression;
use crate::channel::bound::maybe_declare;
use crate::channel::{Channel, ReturnCallback};
use crate::connection::Connection;
use crate::entity::{Entity, Exchange, Queue};
use crate::error::{Error, Result};
use crate::payload::Payload;
use crate::properties::{DeliveryMode, Properties};
use crate::retry::RetryPolicy;
use crate::serialization;
use crate::proto::methods::{BasicPublish, Content};
use crate::value::{Headers, Value};

/// The options of one [`Producer::publish`] call, with Kombu's names and defaults.
///
/// ```
/// use kombu::{Exchange, PublishOptions, Queue};
/// let media = Exchange::direct("media");
/// let video = Queue::new("video").exchange(media.clone()).routing_key("video");
/// let opts = PublishOptions::new().exchange(&media).routing_key("video").declare(&video).priority(5);
/// ```
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Routing key (default: the producer's).
    pub routing_key: Option<String>,
    /// Delivery mode (default: the exchange's, else persistent).
    pub delivery_mode: Option<DeliveryMode>,
    /// Return the message when no queue gets it (see [`Producer::on_return`]).
    pub mandatory: bool,
    /// Not supported by RabbitMQ 3 or the memory broker.
    pub immediate: bool,
    /// Message priority, 0 (default) to the queue's max priority.
    pub priority: Option<u8>,
    /// Content type: when set, the body is not serialized.
    pub content_type: Option<Cow<'static, str>>,
    /// Content encoding of a body sent with `content_type`.
    pub content_encoding: Option<Cow<'static, str>>,
    /// Serializer name (default: the producer's, else json for data and none for text/bytes).
    pub serializer: Option<String>,
    /// Application headers.
    pub headers: Headers,
    /// Compression method (`zlib`, `bzip2`, `lzma`, `brotli`, `zstd`, ...).
    pub compression: Option<String>,
    /// Exchange (default: the producer's); an empty name is the default exchange.
    pub exchange: Option<Exchange>,
    /// Retry publishing (and declaring) if the connection is lost.
    pub retry: bool,
    /// How to retry (the keys of `Connection.ensure`).
    pub retry_policy: Option<RetryPolicy>,
    /// Entities to declare (with `maybe_declare`) before publishing.
    pub declare: Vec<Entity>,
    /// Per-message TTL in seconds.
    pub expiration: Option<f64>,
    /// Other AMQP properties (`correlation_id`, `reply_to`, `message_id`, ...).
    pub properties: Properties,
}

impl PublishOptions {
    /// Default options.
    #[inline(always)]
    pub fn new() -> Self {
        Self::default()
    }
    /// Set the routing key.
    #[inline(always)]
    #[must_use]
    pub fn routing_key(mut self, v: impl Into<String>) -> Self {
        self.routing_key = Some(v.into());
        self
    }
    /// Set the exchange (an [`Exchange`] or a name).
    #[inline(always)]
    #[must_use]
    pub fn exchange(mut self, v: impl Into<Exchange>) -> Self {
        self.exchange = Some(v.into());
        self
    }
    /// Set the delivery mode.
    #[inline(always)]
    #[must_use]
    pub fn delivery_mode(mut self, v: DeliveryMode) -> Self {
        self.delivery_mode = Some(v);
        self
    }
    /// Set `mandatory`.
    #[inline(always)]
    #[must_use]
    pub fn mandatory(mut self, v: bool) -> Self {
        self.mandatory = v;
        self
    }
    /// Set `immediate`.
    #[inline(always)]
    #[must_use]
    pub fn immediate(mut self, v: bool) -> Self {
        self.immediate = v;
        self
    }
    /// Set the priority.
    #[inline(always)]
    #[must_use]
    pub fn priority(mut self, v: u8) -> Self {
        self.priority = Some(v);
        self
    }
    /// Set the content type (the body is then sent unserialized).
    #[inline(always)]
    #[must_use]
    pub fn content_type(mut self, v: impl Into<String>) -> Self {
        self.content_type = Some(Cow::Owned(v.into()));
        self
    }
    /// Set the content encoding.
    #[inline(always)]
    #[must_use]
    pub fn content_encoding(mut self, v: impl Into<String>) -> Self {
        self.content_encoding = Some(Cow::Owned(v.into()));
        self
    }
    /// Set the serializer.
    #[inline(always)]
    #[must_use]
    pub fn serializer(mut self, v: impl Into<String>) -> Self {
        self.serializer = Some(v.into());
        self
    }
    /// Add a header.
    #[inline(always)]
    #[must_use]
    pub fn header(mut self, k: impl Into<String>, v: impl Into<Value>) -> Self {
        self.headers.insert(k.into(), v.into());
        self
    }
    /// Set all headers.
    #[inline(always)]
    #[must_use]
    pub fn headers(mut self, h: Headers) -> Self {
        self.headers = h;
        self
    }
    /// Set the compression method.
    #[inline(always)]
    #[must_use]
    pub fn compression(mut self, v: impl Into<String>) -> Self {
        self.compression = Some(v.into());
        self
    }
    /// Retry with this policy if the connection is lost.
    #[inline(always)]
    #[must_use]
    pub fn retry(mut self, policy: Option<RetryPolicy>) -> Self {
        self.retry = true;
        self.retry_policy = policy;
        self
    }
    /// Declare an entity before publishing.
    #[inline(always)]
    #[must_use]
    pub fn declare(mut self, e: impl Into<Entity>) -> Self {
        self.declare.push(e.into());
        self
    }
    /// Set the per-message TTL in seconds.
    #[inline(always)]
    #[must_use]
    pub fn expiration(mut self, seconds: f64) -> Self {
        self.expiration = Some(seconds);
        self
    }
    /// Set `correlation_id`.
    #[inline(always)]
    #[must_use]
    pub fn correlation_id(mut self, v: impl Into<String>) -> Self {
        self.properties.correlation_id = Some(v.into());
        self
    }
    /// Set `reply_to` (a queue name or a [`Queue`]).
    #[inline(always)]
    #[must_use]
    pub fn reply_to(mut self, v: impl Into<Queue>) -> Self {
        self.properties.reply_to = Some(v.into().name);
        self
    }
    /// Set `message_id`.
    #[inline(always)]
    #[must_use]
    pub fn message_id(mut self, v: impl Into<String>) -> Self {
        self.properties.message_id = Some(v.into());
        self
    }
    /// Set the other AMQP properties (`timestamp`, `type`, `user_id`, `app_id`, ...).
    #[inline(always)]
    #[must_use]
    pub fn properties(mut self, p: Properties) -> Self {
        self.properties = p;
        self
    }
}

/// A message ready to send, and how to send it (see [`Producer::publish`]).
struct Prepared {
    method: BasicPublish,
    content: Arc<Content>,
    /// Entities to declare first.
    declare: Vec<Entity>,
    retry: bool,
    retry_policy: Option<RetryPolicy>,
}

/// The result of [`prepare_body`]: what goes on the wire.
#[derive(Debug, Clone)]
pub struct PreparedBody {
    /// The serialized (and compressed) body.
    pub body: bytes::Bytes,
    /// Content type.
    pub content_type: Cow<'static, str>,
    /// Content encoding.
    pub content_encoding: Cow<'static, str>,
    /// Headers, with `compression` set when compressed.
    pub headers: Headers,
}

/// Serialize and compress a body as `Producer.publish` does (Kombu's `Producer._prepare`).
pub fn prepare_body(
    body: Payload,
    serializer: Option<&str>,
    content_type: Option<Cow<'static, str>>,
    content_encoding: Option<Cow<'static, str>>,
    compression: Option<&str>,
    mut headers: Headers,
) -> Result<PreparedBody> {
    let (body, content_type, content_encoding) = match content_type {
        None => {
            let e = serialization::dumps(&body, serializer)?;
            (e.body, e.content_type, e.content_encoding)
        }
        Some(ct) => match body {
            Payload::Text(s) => {
                let enc = content_encoding.unwrap_or_else(|| "utf-8".into());
                (bytes::Bytes::from(s.into_bytes()), ct, enc)
            }
            Payload::Bytes(b) => (b, ct, content_encoding.unwrap_or_else(|| "binary".into())),
            Payload::Data(_) => {
                return Err(Error::Encode(format!(
                    "content_type {ct:?} means the body is already serialized, but it is structured data: \
                     pass text or bytes, or drop content_type to serialize it"
                )))
            }
        },
    };
    let body = match compression {
        Some(method) => {
            let (compressed, ctype) = compression::compress(&body, method)?;
            headers.insert("compression".into(), Value::String(ctype));
            bytes::Bytes::from(compressed)
        }
        None => body,
    };
    Ok(PreparedBody { body, content_type, content_encoding, headers })
}

impl Connection {
    /// A [`Producer`] on the default channel (Kombu's `Connection.Producer()`).
    pub async fn producer(&self) -> Result<Producer> {
        Ok(Producer::new(&self.default_channel().await?))
    }
}

/// Publishes messages to an exchange (Kombu's `kombu.Producer`).
///
/// Defaults: the default exchange, routing key `""`, the registry's default serializer
/// (json) for structured data, no compression, `auto_declare=true` (the exchange is declared
/// before the first publish).
#[derive(Clone)]
pub struct Producer {
    channel: Channel,
    exchange: Exchange,
    routing_key: String,
    serializer: Option<String>,
    compression: Option<String>,
    auto_declare: bool,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<Producer: {:?}>", self.channel)
    }
}

impl Producer {
    /// A producer on `channel` (use [`Connection::default_channel`] for Kombu's
    /// "connection means its default channel").
    pub fn new(channel: &Channel) -> Self {
        Producer {
            channel: channel.clone(),
            exchange: Exchange::default(),
            routing_key: String::new(),
            serializer: None,
            compression: None,
            auto_declare: true,
        }
    }

    /// Set the default exchange.
    #[must_use]
    pub fn exchange(mut self, exchange: impl Into<Exchange>) -> Self {
        self.exchange = exchange.into();
        self
    }
    /// Set the default routing key.
    #[must_use]
    pub fn routing_key(mut self, key: impl Into<String>) -> Self {
        self.routing_key = key.into();
        self
    }
    /// Set the default serializer.
    #[must_use]
    pub fn serializer(mut self, name: impl Into<String>) -> Self {
        self.serializer = Some(name.into());
        self
    }
    /// Set the default compression.
    #[must_use]
    pub fn compression(mut self, name: impl Into<String>) -> Self {
        self.compression = Some(name.into());
        self
    }
    /// Set `auto_declare`.
    #[must_use]
    pub fn auto_declare(mut self, v: bool) -> Self {
        self.auto_declare = v;
        self
    }
    /// Call `cb(exception, exchange, routing_key, message)` for messages the broker returns
    /// (`mandatory` and unroutable). The producer's connection must drain events to see them.
    #[must_use]
    pub fn on_return(self, cb: ReturnCallback) -> Self {
        self.channel.on_return(cb);
        self
    }

    /// The serializer set with [`Producer::serializer`] (`None`: the registry's default).
    pub fn serializer_name(&self) -> Option<&str> {
        self.serializer.as_deref()
    }
    /// The channel.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }
    /// The connection.
    pub fn connection(&self) -> Result<Connection> {
        self.channel.connection()
    }
    /// The default exchange.
    pub fn default_exchange(&self) -> &Exchange {
        &self.exchange
    }

    /// Use another channel (after a connection loss, Kombu's `revive`).
    pub fn revive(&mut self, channel: &Channel) {
        self.channel = channel.clone();
    }

    /// Declare the default exchange (when it has a name).
    pub async fn declare(&self) -> Result<()> {
        if !self.exchange.name.is_empty() {
            self.exchange.declare_on(&self.channel, false, None).await?;
        }
        Ok(())
    }

    /// Declare `entity` unless this connection already did (Kombu's `maybe_declare`).
    pub async fn maybe_declare(&self, entity: impl Into<Entity>) -> Result<bool> {
        maybe_declare(&entity.into(), &self.channel, None).await
    }

    /// Publish `body` (Kombu's `Producer.publish`).
    ///
    /// Structured data is serialized with the serializer (json by default); text and bytes
    /// are sent as `text/plain` and `application/data` unless a serializer is named; with
    /// `content_type` set, the body is sent as is. Then compression, `declare`, and the
    /// publish itself, retried over reconnects when `retry` is set.
    ///
    /// The message is made (serialized, compressed) when `publish` is called; the future
    /// sends it.
    ///
    /// ```
    /// use kombu::{Connection, Exchange, PublishOptions, Queue, Value};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kombu::Result<()> {
    /// let conn = Connection::new("memory://")?;
    /// let media = Exchange::direct("media");
    /// let video = Queue::new("video").exchange(media.clone()).routing_key("video");
    /// let producer = conn.producer().await?;
    /// producer
    ///     .publish(
    ///         serde_json::json!({"name": "/tmp/lolcat1.avi", "size": 1301013}),
    ///         PublishOptions::new().exchange(&media).routing_key("video").declare(&video),
    ///     )
    ///     .await?;
    /// let message = video.bind(producer.channel()).get(None, None).await?.expect("routed to video");
    /// assert_eq!(message.content_type(), Some("application/json"));
    /// assert_eq!(message.payload_as::<Value>()?["size"], 1301013);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `EncodeError` or `SerializerNotInstalled` when the body cannot be serialized or
    /// compressed (before anything is sent); the broker's channel and connection errors
    /// (`NotFound` for a missing exchange, ...); with `retry`, `OperationalError` once the
    /// policy gives up.
    #[must_use = "the message is sent when the future is awaited"]
    pub fn publish(&self, body: impl Into<Payload>, opts: PublishOptions) -> impl Future<Output = Result<()>> + '_ {
        self.send(self.prepare(body.into(), opts))
    }

    /// [`Producer::publish`] of structured data given as any `Serialize` value (a
    /// `#[derive(Serialize)]` struct...): with the json serializer (the default) it is written
    /// straight to the same bytes `publish(Payload::from_serialize(body)?, opts)` sends,
    /// without building a [`Value`]; other serializers go through the value.
    #[must_use = "the message is sent when the future is awaited"]
    pub fn publish_typed<T: serde::Serialize + ?Sized>(&self, body: &T, mut opts: PublishOptions) -> impl Future<Output = Result<()>> + '_ {
        let prepared = if opts.content_type.is_some() {
            // Refused by prepare, which says why.
            Payload::from_serialize(body).and_then(|body| self.prepare(body, opts))
        } else {
            match serialization::dumps_as(body, opts.serializer.as_deref().or(self.serializer.as_deref())) {
                Ok(encoded) => {
                    opts.content_type = Some(encoded.content_type);
                    opts.content_encoding = Some(encoded.content_encoding);
                    self.prepare(Payload::Bytes(encoded.body), opts)
                }
                Err(e) => Err(e),
            }
        };
        self.send(prepared)
    }

    /// The message `publish` sends, and how: everything `opts` says, resolved against the
    /// producer's defaults (so that the future does not carry the options).
    fn prepare(&self, body: Payload, opts: PublishOptions) -> Result<Prepared> {
        let PublishOptions {
            routing_key,
            delivery_mode,
            mandatory,
            immediate,
            priority,
            content_type,
            content_encoding,
            serializer,
            headers,
            compression,
            exchange,
            retry,
            retry_policy,
            mut declare,
            expiration,
            mut properties,
        } = opts;
        let exchange = exchange.as_ref().unwrap_or(&self.exchange);
        let routing_key = routing_key.unwrap_or_else(|| self.routing_key.clone());
        let serializer = serializer.as_deref().or(self.serializer.as_deref());
        let compression = compression.as_deref().or(self.compression.as_deref());
        let prepared = prepare_body(body, serializer, content_type, content_encoding, compression, headers)?;
        properties.content_type = Some(prepared.content_type);
        properties.content_encoding = Some(prepared.content_encoding);
        properties.headers = prepared.headers;
        properties.delivery_mode =
            Some(delivery_mode.or(exchange.delivery_mode).unwrap_or(DeliveryMode::Persistent).as_u8());
        properties.priority = Some(priority.unwrap_or(0));
        if let Some(exp) = expiration {
            if !(exp >= 0.0 && exp.is_finite()) {
                return Err(Error::InvalidOption { option: "expiration", value: serialization::seconds_text(exp), expected: "a number of seconds >= 0" });
            }
            properties.expiration = Some(((exp * 1000.0) as u64).to_string());
        }
        let content = Arc::new(Content { properties, body: prepared.body });
        let method = BasicPublish { exchange: exchange.name.clone(), routing_key, mandatory, immediate };
        if self.auto_declare && !self.exchange.name.is_empty() {
            let own = Entity::Exchange(self.exchange.clone());
            if !declare.contains(&own) {
                declare.push(own);
            }
        }
        Ok(Prepared { method, content, declare, retry, retry_policy })
    }

    /// Declare what the message needs and publish it, retried over reconnects when asked.
    async fn send(&self, prepared: Result<Prepared>) -> Result<()> {
        let Prepared { method, content, declare, retry, retry_policy } = prepared?;
        let declare_policy = retry_policy.as_ref().filter(|_| retry);
        let once = || {
            let (declare, method, content) = (&declare, &method, content.clone());
            async move {
                for e in declare {
                    maybe_declare(e, &self.channel, declare_policy).await?;
                }
                self.channel.call(crate::channel::RawOp::Publish(method, content)).await.map(drop)
            }
        };
        let conn = self.channel.connection()?;
        // A connection that reconnects by itself retries a publish with its policy.
        let reconnect = conn.options().reconnect.clone().filter(|_| !retry);
        if retry || reconnect.is_some() {
            let policy = retry_policy.clone().or(reconnect).unwrap_or_else(RetryPolicy::ensure_default);
            conn.ensure(&policy, crate::connection::no_errback, once).await
        } else {
            once().await
        }
    }

    /// Nothing to release for a producer that is not pooled; kept for Kombu parity.
    pub async fn release(&self) -> Result<()> {
        Ok(())
    }
}
