//! Received messages (Kombu's `kombu.message.Message`).

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use serde::Serialize;

use crate::compression;
use crate::error::{Error, Result};
use crate::payload::Payload;
use crate::properties::Properties;
use crate::serialization::{self, Accept};
use crate::proto::methods::{Content, Delivery, Name};
use crate::rt::lock;
use crate::transport::RawChannel;
use crate::value::Headers;

/// The settlement state of a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageState {
    /// Received, not yet settled.
    Received,
    /// Acknowledged.
    Ack,
    /// Rejected (discarded or dead-lettered).
    Rejected,
    /// Rejected and put back on the queue.
    Requeued,
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageState::Received => "RECEIVED",
            MessageState::Ack => "ACK",
            MessageState::Rejected => "REJECTED",
            MessageState::Requeued => "REQUEUED",
        })
    }
}

/// Where and how a message was delivered (Kombu's `message.delivery_info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryInfo {
    /// The exchange it was published to.
    pub exchange: String,
    /// The routing key it was published with.
    pub routing_key: String,
    /// True when delivered before and not acknowledged.
    pub redelivered: bool,
    /// The consumer it was delivered to (none for `basic.get`).
    pub consumer_tag: Option<String>,
    /// Channel-scoped delivery tag.
    pub delivery_tag: u64,
    /// The transport's own entries, as Kombu's `delivery_info` has them (SQS: `sqs_message`,
    /// the message as ReceiveMessage returned it, and `sqs_queue`, the queue's URL); `None`
    /// on the transports that add none (AMQP, memory://, Redis, the gateway's clients).
    #[serde(flatten)]
    pub extra: Option<Arc<Headers>>,
}

struct Inner {
    content: Arc<Content>,
    /// The decompressed body; `None` when the body was not compressed (it is `content.body`).
    body: Option<Bytes>,
    exchange: Name,
    routing_key: Name,
    redelivered: bool,
    consumer_tag: Option<Name>,
    delivery_tag: u64,
    extra: Option<Arc<Headers>>,
    channel: Option<Arc<dyn RawChannel>>,
    no_ack: bool,
    accept: Option<Arc<Accept>>,
    /// An error found while preparing the body (decompression), reported on decode.
    error: Option<Error>,
    state: Mutex<MessageState>,
    decoded: OnceLock<Result<Payload>>,
}

/// A message received from a queue.
///
/// Cheap to clone: clones share the settlement state, so acknowledging one clone settles
/// them all. The body is already decompressed when the `compression` header asks for it;
/// a body that fails to decompress is kept as received and the error is reported by
/// [`Message::decode`] (and goes to a consumer's `on_decode_error`), so the message can
/// still be rejected or requeued — nothing is lost.
#[derive(Clone)]
pub struct Message {
    inner: Arc<Inner>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<Message object at {:p} with details {{state: {}, content_type: {:?}, delivery_tag: {}, body_length: {}, properties: {{correlation_id: {:?}}}, delivery_info: {{exchange: {:?}, routing_key: {:?}}}}}>",
            Arc::as_ptr(&self.inner),
            self.state(),
            self.content_type(),
            self.inner.delivery_tag,
            self.body().len(),
            self.properties().correlation_id,
            &*self.inner.exchange,
            &*self.inner.routing_key
        )
    }
}

impl Message {
    /// A message from a delivery on `channel`. `no_ack` messages ignore `ack`.
    pub fn from_delivery(
        delivery: Delivery,
        consumer_tag: Option<Name>,
        channel: Option<Arc<dyn RawChannel>>,
        no_ack: bool,
    ) -> Self {
        let content = delivery.content;
        let (body, error) = match content.properties.headers.get("compression").and_then(|v| v.as_str()) {
            Some(method) => match compression::decompress(&content.body, method) {
                Ok(b) => (Some(Bytes::from(b)), None),
                Err(e) => (None, Some(e)),
            },
            None => (None, None),
        };
        Message {
            inner: Arc::new(Inner {
                body,
                exchange: delivery.exchange,
                routing_key: delivery.routing_key,
                redelivered: delivery.redelivered,
                consumer_tag,
                delivery_tag: delivery.delivery_tag,
                extra: delivery.extra,
                channel,
                no_ack,
                accept: None,
                error,
                state: Mutex::new(MessageState::Received),
                decoded: OnceLock::new(),
                content,
            }),
        }
    }

    /// A copy of this message that decodes with `accept` (used by consumers).
    pub(crate) fn with_accept(self, accept: Option<Arc<Accept>>) -> Self {
        if accept.is_none() {
            return self;
        }
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.accept = accept;
                inner.decoded = OnceLock::new();
                Message { inner: Arc::new(inner) }
            }
            Err(shared) => {
                let i = &*shared;
                Message {
                    inner: Arc::new(Inner {
                        content: i.content.clone(),
                        body: i.body.clone(),
                        exchange: i.exchange.clone(),
                        routing_key: i.routing_key.clone(),
                        redelivered: i.redelivered,
                        consumer_tag: i.consumer_tag.clone(),
                        delivery_tag: i.delivery_tag,
                        extra: i.extra.clone(),
                        channel: i.channel.clone(),
                        no_ack: i.no_ack,
                        accept,
                        error: i.error.clone(),
                        state: Mutex::new(*lock(&i.state)),
                        decoded: OnceLock::new(),
                    }),
                }
            }
        }
    }

    /// The body, decompressed if it was compressed.
    pub fn body(&self) -> &Bytes {
        self.inner.body.as_ref().unwrap_or(&self.inner.content.body)
    }

    /// The body exactly as the broker delivered it (still compressed, if it was).
    pub fn raw_body(&self) -> &Bytes {
        &self.inner.content.body
    }

    /// All properties, including headers, content type and encoding.
    pub fn properties(&self) -> &Properties {
        &self.inner.content.properties
    }

    /// The shared content (properties and raw body).
    pub fn content(&self) -> &Arc<Content> {
        &self.inner.content
    }

    /// The content type (`application/json`, ...).
    pub fn content_type(&self) -> Option<&str> {
        self.properties().content_type.as_deref()
    }

    /// The content encoding (`utf-8`, `binary`, ...).
    pub fn content_encoding(&self) -> Option<&str> {
        self.properties().content_encoding.as_deref()
    }

    /// Application headers.
    pub fn headers(&self) -> &Headers {
        &self.properties().headers
    }

    /// The channel-scoped delivery tag.
    pub fn delivery_tag(&self) -> u64 {
        self.inner.delivery_tag
    }

    /// The consumer the message was delivered to (none for `basic.get`).
    pub fn consumer_tag(&self) -> Option<&str> {
        self.inner.consumer_tag.as_deref()
    }

    /// True when the broker does not wait for this message to be settled (a `no_ack`
    /// consumer's or `basic.get`'s).
    pub fn no_ack(&self) -> bool {
        self.inner.no_ack
    }

    /// Where and how the message was delivered.
    pub fn delivery_info(&self) -> DeliveryInfo {
        DeliveryInfo {
            exchange: self.inner.exchange.to_string(),
            routing_key: self.inner.routing_key.to_string(),
            redelivered: self.inner.redelivered,
            consumer_tag: self.inner.consumer_tag.as_deref().map(str::to_owned),
            delivery_tag: self.inner.delivery_tag,
            extra: self.inner.extra.clone(),
        }
    }

    /// The exchange the message was published to.
    pub fn exchange(&self) -> &str {
        &self.inner.exchange
    }

    /// The routing key the message was published with.
    pub fn routing_key(&self) -> &str {
        &self.inner.routing_key
    }

    /// True when the message was delivered before.
    pub fn redelivered(&self) -> bool {
        self.inner.redelivered
    }

    /// The accept list used by [`Message::decode`], if any.
    pub fn accept(&self) -> Option<&Accept> {
        self.inner.accept.as_deref()
    }

    /// The error found while preparing the body (a failed decompression), if any.
    pub fn error(&self) -> Option<&Error> {
        self.inner.error.as_ref()
    }

    /// The settlement state.
    pub fn state(&self) -> MessageState {
        *lock(&self.inner.state)
    }

    /// True once the message was acknowledged, rejected or requeued.
    pub fn acknowledged(&self) -> bool {
        self.state() != MessageState::Received
    }

    /// Deserialize the body with its content type, checking the accept list. Memoized.
    pub fn decode(&self) -> Result<Payload> {
        self.decoded().clone()
    }

    /// The memoized result of decoding, by reference (no copy of the payload).
    pub fn decoded(&self) -> &Result<Payload> {
        self.inner.decoded.get_or_init(|| {
            if let Some(e) = &self.inner.error {
                return Err(e.clone());
            }
            serialization::loads(
                self.body(),
                self.content_type(),
                self.content_encoding(),
                self.inner.accept.as_deref(),
                false,
            )
        })
    }

    /// The decoded body (Kombu's `message.payload`).
    pub fn payload(&self) -> Result<Payload> {
        self.decode()
    }

    /// Deserialize into a typed value: straight from the body when it was not decoded yet
    /// (a JSON body becomes `T` without an intermediate [`Payload`]), with the accept list and
    /// the errors of [`Message::decode`].
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        if let Some(decoded) = self.inner.decoded.get() {
            return decoded.as_ref().map_err(Clone::clone)?.deserialize();
        }
        if let Some(e) = &self.inner.error {
            return Err(e.clone());
        }
        serialization::loads_as(self.body(), self.content_type(), self.content_encoding(), self.inner.accept.as_deref())
    }

    /// The channel and delivery tag to settle this message with, if it came from a broker.
    pub(crate) fn unsettled(&self) -> Option<(Arc<dyn RawChannel>, u64)> {
        self.inner.channel.clone().map(|c| (c, self.inner.delivery_tag))
    }

    /// False once the channel this message came on has closed (its ack could only fail); true
    /// for a message not received from a broker.
    pub(crate) fn channel_open(&self) -> bool {
        self.inner.channel.as_ref().is_none_or(|c| c.is_open())
    }

    fn settle(&self, new: MessageState, f: impl FnOnce(&dyn RawChannel) -> Result<()>) -> Result<()> {
        let mut state = lock(&self.inner.state);
        if *state != MessageState::Received {
            return Err(Error::MessageState { state: state.to_string() });
        }
        let ch = self.inner.channel.as_ref().ok_or_else(|| Error::MessageState {
            state: "no channel: this message was not received from a broker".into(),
        })?;
        f(ch.as_ref())?;
        *state = new;
        Ok(())
    }

    /// Acknowledge the message: the broker forgets it. A no-op for messages of a `no_ack`
    /// consumer. `MessageStateError` when already settled.
    pub fn ack(&self) -> Result<()> {
        self.ack_multiple(false)
    }

    /// Acknowledge this message and, with `multiple`, every earlier unacknowledged one on
    /// the channel.
    pub fn ack_multiple(&self, multiple: bool) -> Result<()> {
        if self.inner.no_ack {
            return Ok(());
        }
        let tag = self.inner.delivery_tag;
        self.settle(MessageState::Ack, |ch| ch.basic_ack(tag, multiple))
    }

    /// Reject the message: the broker discards it (or dead-letters it). With `requeue`, it
    /// is put back instead (see [`Message::requeue`]).
    pub fn reject(&self, requeue: bool) -> Result<()> {
        let tag = self.inner.delivery_tag;
        let state = if requeue { MessageState::Requeued } else { MessageState::Rejected };
        self.settle(state, |ch| ch.basic_reject(tag, requeue))
    }

    /// Reject the message and put it back on the queue. Do not use this to select
    /// messages: it may come back at once.
    pub fn requeue(&self) -> Result<()> {
        self.reject(true)
    }

    /// Acknowledge, logging (instead of returning) a failure.
    pub fn ack_log_error(&self) {
        if let Err(e) = self.ack() {
            tracing::error!("Couldn't ack {}, reason: {e}", self.delivery_tag());
        }
    }

    /// Reject, logging (instead of returning) a failure.
    pub fn reject_log_error(&self, requeue: bool) {
        if let Err(e) = self.reject(requeue) {
            tracing::error!("Couldn't reject {}, reason: {e}", self.delivery_tag());
        }
    }
}
