//! Common utilities (Kombu's `kombu.common`): declaration caching, unique ids, broadcast
//! queues and event loops.

use std::hash::{Hash, Hasher};

use crate::connection::{Channel, Connection};
use crate::entity::{Exchange, Queue};
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;
use crate::rt::Duration;
use crate::spec::ExchangeType;
use crate::value::Headers;

/// Something `maybe_declare` can declare.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // declarations are built once and passed by reference
pub enum Entity {
    /// An exchange.
    Exchange(Exchange),
    /// A queue (with its exchange and bindings).
    Queue(Queue),
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
        serde_json::to_string(h).unwrap_or_default().hash(state);
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

    fn cache_key(&self) -> u64 {
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
                if !q.bindings.is_empty() {
                    serde_json::to_string(&q.bindings).unwrap_or_default().hash(&mut h);
                }
            }
        }
        h.finish()
    }

    async fn declare(&self, channel: &Channel) -> Result<()> {
        match self {
            Entity::Exchange(x) => x.declare_on(channel, false, None).await,
            Entity::Queue(q) => q.clone().declare_on(channel, false).await.map(|_| ()),
        }
    }
}

/// Declare `entity` on `channel` unless its connection already declared it (Kombu's
/// `maybe_declare`). Returns true when it was declared now. With a retry policy, the
/// declaration is retried over reconnects ([`Connection::ensure`]).
pub async fn maybe_declare(entity: &Entity, channel: &Channel, retry: Option<&RetryPolicy>) -> Result<bool> {
    let conn = channel.connection()?;
    let cacheable = entity.can_cache_declaration();
    let key = entity.cache_key();
    if cacheable && conn.declared().contains(&key) {
        return Ok(false);
    }
    match retry {
        Some(policy) => conn.ensure(policy, |_: &Error, _: f64| {}, || entity.declare(channel)).await?,
        None => entity.declare(channel).await?,
    }
    if cacheable {
        conn.declared().insert(key);
    }
    Ok(true)
}

/// A random UUID version 4 string (Kombu's `uuid()`), for consumer tags, correlation ids and
/// unique queue names.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    let (hi, lo) = (fastrand::u64(..), fastrand::u64(..));
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// A broadcast queue (Kombu's `Broadcast`): every consumer gets its own auto-deleted queue
/// bound to the fanout exchange `name`. Without a queue name, a unique `bcast.<uuid>` name is
/// generated; with `unique`, `<queue>.<uuid>`.
pub fn broadcast(name: &str, queue: Option<&str>, unique: bool) -> Queue {
    let qname = match (queue, unique) {
        (Some(q), true) => format!("{q}.{}", uuid()),
        (Some(q), false) => q.to_owned(),
        (None, _) => format!("bcast.{}", uuid()),
    };
    Queue::new(qname)
        .exchange(Exchange::new(name, ExchangeType::Fanout).auto_delete(true))
        .auto_delete(true)
        .alias(name.to_owned())
}

/// Drain events `limit` times (forever when `None`), each with `timeout` (Kombu's
/// `eventloop`). With `ignore_timeouts`, timeouts end nothing and the loop goes on.
pub async fn eventloop(conn: &Connection, limit: Option<usize>, timeout: Option<Duration>, ignore_timeouts: bool) -> Result<()> {
    let mut n = 0;
    while limit.is_none_or(|l| n < l) {
        match conn.drain_events(timeout).await {
            Ok(()) => {}
            Err(Error::Timeout(_)) if ignore_timeouts => {}
            Err(e) => return Err(e),
        }
        n += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn uuid4_shape() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(uuid(), uuid());
    }

    #[test]
    fn broadcast_names() {
        assert_eq!(broadcast("news", Some("foo"), false).name, "foo");
        assert!(broadcast("news", Some("foo"), true).name.starts_with("foo."));
        let q = broadcast("news", None, false);
        assert!(q.name.starts_with("bcast."));
        assert_eq!(q.exchange.kind, ExchangeType::Fanout);
        assert!(q.auto_delete);
    }

    #[test]
    fn cache_rules() {
        assert!(Entity::from(Exchange::direct("x")).can_cache_declaration());
        assert!(!Entity::from(Exchange::direct("x").auto_delete(true)).can_cache_declaration());
        assert!(Entity::from(Queue::new("q")).can_cache_declaration());
        assert!(!Entity::from(Queue::new("q").expires(10.0)).can_cache_declaration());
        assert!(!Entity::from(Queue::new("")).can_cache_declaration());
        assert_ne!(Entity::from(Queue::new("a")).cache_key(), Entity::from(Queue::new("b")).cache_key());
    }
}
