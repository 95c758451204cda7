//! The storage hooks a virtual transport implements (Kombu's `AbstractChannel`: `_put`,
//! `_get`, `_purge`, `_size`, `_delete`, `_new_queue`, `_has_queue`, `get_table`,
//! `_queue_bind`, `_put_fanout`, plus the ack emulation of Redis's `QoS` and SQS's
//! delete/visibility calls).
//!
//! A store knows named queues of stored messages (the JSON [`crate::envelope::Envelope`]),
//! the binding table of each exchange, and — when it has one — a broadcast channel for
//! fanout exchanges. Everything AMQP-like (delivery tags, prefetch, consumers, routing,
//! returns, restore on close) is done once, above it, by [`super::VirtualConnection`].

use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;
use crate::rt::{Duration, MaybeSend, MaybeSync};
use crate::proto::methods::{Name, QueueDeclare};
use crate::value::Headers;

/// One row of an exchange's binding table, as Kombu stores it: Redis keeps
/// `routing_key + sep + pattern + sep + queue` in the set `_kombu.binding.<exchange>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BindingRow {
    /// The binding key.
    pub routing_key: String,
    /// Kombu's `prepare_bind` pattern: the regular expression of a topic binding
    /// ([`topic_pattern`]), empty for other exchange types. Kept so that Python kombu, which
    /// matches on it, reads our rows; we route on `routing_key` with RabbitMQ's rules.
    pub pattern: String,
    /// The bound queue.
    pub queue: String,
}

/// A message on its way into the store: the envelope's JSON text (the same bytes for every
/// queue it is routed to, as in Kombu) and the priority a store with priority buckets uses.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// `Envelope::to_json()`.
    pub json: Arc<str>,
    /// `properties.priority` (0-255; Kombu clamps it to 0-9 for its buckets).
    pub priority: u8,
}

/// A consumer of a queue bound to a fanout exchange, on a store that broadcasts fanout
/// messages instead of storing them (Redis PUBLISH/PSUBSCRIBE, Kombu's `_fanout_queues`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutListen {
    /// The consumed queue (the deliveries carry its name).
    pub queue: Name,
    /// The fanout exchange.
    pub exchange: String,
    /// The binding key, with `#` replaced by `*` as Kombu subscribes.
    pub routing_key: String,
}

/// What one poll of a channel's consumers asks the store for (Kombu's `_get_many` /
/// BRPOP over the channel's active queues).
#[derive(Debug, Clone, PartialEq)]
pub struct Fetch {
    /// The queues in the order to try them (the channel's cycle: round robin, sorted or
    /// priority). A store with priority buckets tries every queue's first bucket before any
    /// queue's second, as Kombu does.
    pub queues: Vec<Name>,
    /// Fanout subscriptions of this channel (empty unless [`Store::supports_fanout`]).
    pub fanout: Vec<FanoutListen>,
    /// At most this many messages (the channel's prefetch credit; at least 1).
    pub max: usize,
    /// Round robin: within one fetch, take from the queues in turn (the channel rotates
    /// its order the same way); otherwise drain them in the order given.
    pub round_robin: bool,
    /// How long to wait when nothing is there (Kombu's `polling_interval`, the BRPOP
    /// timeout). `None`: return at once.
    pub wait: Option<Duration>,
}

/// A message taken from the store: delivered to a consumer or by `basic_get`, and until it
/// is settled, the store's record of it.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The queue it came from.
    pub queue: Name,
    /// The store's identity of this delivery: Redis: the envelope's `delivery_tag` uuid
    /// (the key of the `unacked` hash); SQS: the ReceiptHandle. The channel maps it to its
    /// own `u64` delivery tag.
    pub token: String,
    /// The envelope's JSON text as stored.
    pub payload: Bytes,
    /// It came from a fanout broadcast: nothing is stored, so there is nothing to settle
    /// or restore (Kombu does not ack fanout messages on Redis).
    pub broadcast: bool,
    /// The store's entries for the message's `delivery_info` (SQS: `sqs_message`,
    /// `sqs_queue`), carried to [`crate::Message::delivery_info`]; `None` when it adds none.
    pub extra: Option<Arc<Headers>>,
}

/// How a delivered message is settled. [`Store::settle`] takes it without waiting: a store
/// whose settle is a round trip buffers it and applies it (pipelined with others) on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// `basic.ack`: forget the message (Redis: ZREM + HDEL; SQS: DeleteMessage).
    Ack,
    /// `basic.reject(requeue=False)`: drop it, as Kombu does.
    Reject,
    /// `basic.reject(requeue=True)`: back to its queue with `redelivered` set (Kombu puts
    /// it at the back of the queue on Redis).
    Requeue,
    /// The message could not be decoded: move it aside (a dead-letter list) with the reason,
    /// never drop it silently.
    DeadLetter(String),
}

/// The storage hooks of a virtual transport. One store serves one connection; its methods
/// may be called concurrently (a fetch is pending while a publish goes out).
///
/// Errors: a store reports the broker being unreachable as
/// `Error::RecoverableConnection`/`Error::Operational` (the connection is then re-established
/// by the Kombu API), and the broker refusing something as the error that names it.
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait Store: MaybeSend + MaybeSync + 'static {
    /// The store broadcasts fanout exchanges itself ([`Store::put_fanout`] and
    /// [`Fetch::fanout`]) rather than storing a copy per bound queue.
    fn supports_fanout(&self) -> bool {
        false
    }

    /// `queue.declare` reached the store (`_new_queue`): remember its arguments
    /// (`x-expires`, ...). Kombu creates nothing until a message arrives.
    async fn new_queue(&self, declare: &QueueDeclare) -> Result<()>;

    /// Whether the queue exists (`_has_queue`), for `queue.declare(passive=True)`.
    async fn has_queue(&self, queue: &str) -> Result<bool>;

    /// Messages ready in the queue (`_size`).
    async fn size(&self, queue: &str) -> Result<u32>;

    /// Remove every ready message (`_purge`); how many were removed.
    async fn purge(&self, queue: &str) -> Result<u32>;

    /// Delete the queue's messages and the binding rows that lead to it (`_delete`).
    async fn delete(&self, queue: &str, bindings: &[(String, BindingRow)]) -> Result<()>;

    /// The rows of an exchange's binding table (`get_table`); empty when it has none.
    async fn bindings(&self, exchange: &str) -> Result<Vec<BindingRow>>;

    /// Add a row to an exchange's binding table (`_queue_bind`). `expires` is the queue's
    /// `x-expires` in milliseconds when it has one.
    async fn bind(&self, exchange: &str, row: &BindingRow, expires: Option<u64>) -> Result<()>;

    /// Remove a row from an exchange's binding table.
    async fn unbind(&self, exchange: &str, row: &BindingRow) -> Result<()>;

    /// Store `message` on every queue in `queues` (`_put`), in one round trip where the
    /// store can.
    async fn put(&self, queues: &[&str], message: &Outgoing) -> Result<()>;

    /// Broadcast `message` to the listeners of a fanout exchange (`_put_fanout`); the number
    /// of listeners that got it, when the store knows.
    async fn put_fanout(&self, _exchange: &str, _routing_key: &str, _message: &Outgoing) -> Result<Option<u64>> {
        Err(crate::Error::NotImplemented("this store does not broadcast fanout exchanges".into()))
    }

    /// A consumer starts on a queue bound to a fanout exchange that the store broadcasts:
    /// subscribe now, so that what is published after `basic.consume` returns reaches it
    /// (Kombu subscribes on the next poll, and misses what comes before).
    async fn listen(&self, _listen: &FanoutListen) -> Result<()> {
        Ok(())
    }

    /// Take up to `fetch.max` messages from the queues (and fanout subscriptions), waiting
    /// up to `fetch.wait` for the first. Every message taken from a queue stays recorded by
    /// the store until [`Store::settle`]d or [`Store::restore`]d (Redis: the `unacked` hash,
    /// moved there atomically with the pop; SQS: in flight until the visibility timeout);
    /// the channel settles the deliveries of `no_ack` consumers at once.
    ///
    /// A message the store cannot read (not JSON, no `properties`) is moved aside and
    /// reported by the store, not returned and not dropped.
    async fn fetch(&self, fetch: &Fetch) -> Result<Vec<Fetched>>;

    /// Settle a delivered message. Synchronous: a store that needs a round trip queues it
    /// and applies it with the next ones (pipelined). A failure to apply it is not silent:
    /// the store logs it and returns it from its next call (the message itself is safe: it
    /// stays recorded and comes back after the visibility timeout).
    fn settle(&self, message: &Fetched, how: Settle) -> Result<()>;

    /// Put unacknowledged messages back where the consumer would take them next, marked
    /// `redelivered` (channel close, `basic.recover(requeue=True)`; Kombu's
    /// `restore_unacked`).
    async fn restore(&self, messages: &[Fetched]) -> Result<()>;

    /// Wait until every settle queued so far is applied; the first error among them.
    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// The connection is closing: release the store's connections.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

/// The stored message with `headers.redelivered` and `properties.delivery_info.redelivered`
/// set, as Kombu's `_do_restore_message` writes it back (Python's JSON formatting, key
/// order kept, new keys last).
pub fn mark_redelivered(payload: &[u8]) -> crate::error::Result<String> {
    use crate::value::{Headers, Value};
    let mut v: Value = crate::serialization::json_loads(payload).map_err(|e| crate::Error::Decode(format!("stored message is not JSON: {e}")))?;
    let Value::Object(m) = &mut v else {
        return Err(crate::Error::Decode("stored message is not a JSON object".into()));
    };
    if let Some(Value::Object(h)) = m.get_mut("headers") {
        h.insert("redelivered".into(), Value::Bool(true));
    }
    if let Some(Value::Object(p)) = m.get_mut("properties") {
        match p.get_mut("delivery_info") {
            Some(Value::Object(d)) => {
                d.insert("redelivered".into(), Value::Bool(true));
            }
            _ => {
                let mut d = Headers::new();
                d.insert("redelivered".into(), Value::Bool(true));
                p.insert("delivery_info".into(), Value::Object(d));
            }
        }
    }
    let bytes = crate::serialization::json_dumps(&v)?;
    Ok(String::from_utf8(bytes).expect("ensure_ascii output is ASCII"))
}

/// Kombu's topic binding pattern (`TopicExchange.key_to_pattern`): the binding key's words
/// with `*` as `[^\.]+` and `#` as `.*?`, every other character but letters and digits
/// escaped, anchored. Stored in the binding table for Python kombu, which matches on it.
pub fn topic_pattern(routing_key: &str) -> String {
    let escaped: String = routing_key
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || ".#*".contains(c) {
                c.to_string()
            } else if c == '\0' {
                "\\000".to_owned()
            } else {
                format!("\\{c}")
            }
        })
        .collect();
    let words: Vec<&str> = escaped
        .split('.')
        .map(|w| match w {
            "*" => r"[^\.]+",
            "#" => ".*?",
            w => w,
        })
        .collect();
    format!("^{}$", words.join(r"\."))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{mark_redelivered, topic_pattern};

    #[test]
    fn redelivered_is_marked_where_kombu_marks_it() {
        let raw = br#"{"body": "e30=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {}, "properties": {"delivery_info": {"exchange": "x", "routing_key": "k"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "t"}}"#;
        assert_eq!(
            mark_redelivered(raw).unwrap(),
            r#"{"body": "e30=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"redelivered": true}, "properties": {"delivery_info": {"exchange": "x", "routing_key": "k", "redelivered": true}, "priority": 0, "body_encoding": "base64", "delivery_tag": "t"}}"#
        );
        assert!(mark_redelivered(b"[1]").is_err());
    }

    #[test]
    fn topic_pattern_is_kombus_regex() {
        // Checked against kombu 5.7's TopicExchange().key_to_pattern.
        assert_eq!(topic_pattern("a.*.b"), r"^a\.[^\.]+\.b$");
        assert_eq!(topic_pattern("#"), "^.*?$");
        assert_eq!(topic_pattern("stock.us-east.#"), r"^stock\.us\-east\..*?$");
        assert_eq!(topic_pattern(""), "^$");
    }
}
