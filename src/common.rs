//! Common utilities (Kombu's `kombu.common`): declaration caching, unique ids, broadcast
//! queues and event loops.

pub use crate::channel::bound::maybe_declare;
pub use crate::entity::Entity;
pub use crate::rt::uuid;

use crate::connection::Connection;
use crate::entity::{Exchange, Queue};
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;
use crate::rt::{lock, Duration};
use crate::proto::methods::ExchangeType;

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

/// Messages from `queue`, one `basic.get` at a time, up to `limit` (Kombu's `itermessages`
/// as a list): stops at the first empty poll or after `timeout` per poll.
pub async fn itermessages(conn: &Connection, queue: &Queue, limit: Option<usize>, timeout: Option<Duration>) -> Result<Vec<crate::Message>> {
    let channel = conn.default_channel().await?;
    let consumer = crate::Consumer::new(&channel, vec![queue.clone()]);
    let out = drain_consumer(&consumer, limit, timeout.or(Some(Duration::from_millis(0)))).await?;
    consumer.cancel().await?;
    Ok(out)
}

/// Drain up to `limit` messages (all waiting ones when `None`) from a consumer that has no
/// callbacks, waiting up to `timeout` for each (Kombu's `drain_consumer`).
pub async fn drain_consumer(consumer: &crate::Consumer, limit: Option<usize>, timeout: Option<Duration>) -> Result<Vec<crate::Message>> {
    let mut out = Vec::new();
    while limit.is_none_or(|l| out.len() < l) {
        match consumer.next_message(timeout).await {
            Ok(m) => out.push(m),
            Err(Error::Timeout(_)) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Reply to a request message (Kombu's `send_reply`): publish `body` to the queue named by
/// `req.reply_to` through `exchange`, with the request's `correlation_id`.
pub async fn send_reply(
    exchange: &Exchange,
    req: &crate::Message,
    body: impl Into<crate::Payload>,
    producer: &crate::Producer,
    options: crate::PublishOptions,
) -> Result<()> {
    let reply_to = req
        .properties()
        .reply_to
        .clone()
        .ok_or(Error::MissingArgument { what: "send_reply", needs: "a request with a reply_to property" })?;
    let mut opts = options.exchange(exchange.clone()).routing_key(reply_to);
    if let Some(c) = &req.properties().correlation_id {
        opts = opts.correlation_id(c.clone());
    }
    producer.publish(body, opts).await
}

/// Collect the replies waiting in `queue` (Kombu's `collect_replies`): messages that arrive
/// within `timeout` of each other, acknowledged (unless `no_ack`), up to `limit`.
pub async fn collect_replies(conn: &Connection, queue: &Queue, limit: Option<usize>, timeout: Duration, no_ack: bool) -> Result<Vec<crate::Message>> {
    let channel = conn.default_channel().await?;
    let consumer = crate::Consumer::new(&channel, vec![queue.clone()]).no_ack(no_ack);
    let replies = drain_consumer(&consumer, limit, Some(timeout)).await?;
    if !no_ack {
        for m in &replies {
            m.ack()?;
        }
    }
    consumer.cancel().await?;
    Ok(replies)
}

/// Run `fut`, ignoring connection and channel errors (Kombu's `ignore_errors`: for cleanup
/// only). Other errors are returned.
pub async fn ignore_errors<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<Option<T>> {
    match fut.await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_connection_error() || e.is_channel_error() || e.is_recoverable_connection_error() => {
            tracing::debug!("ignored: {e}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Run `fun` with a connection from `pool`, retrying over connection errors with the default
/// `ensure` policy (Kombu's `insured`). `errback(error, interval)` is called before retries.
pub async fn insured<T, F, Fut, E>(pool: &crate::pools::ConnectionPool, errback: E, mut fun: F) -> Result<T>
where
    F: FnMut(Connection) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
    E: FnMut(&Error, f64),
{
    let conn = pool.acquire(true, None).await?;
    let c = (*conn).clone();
    let r = c.ensure(&RetryPolicy::ensure_default(), errback, || fun(c.clone())).await;
    conn.release().await;
    r
}

/// A prefetch count that can be raised and lowered in steps and applied when it changes
/// (Kombu's `kombu.common.QoS`, used by workers that scale their prefetch).
#[derive(Debug)]
pub struct QoS {
    value: std::sync::atomic::AtomicU32,
    prev: std::sync::Mutex<Option<u32>>,
}

impl QoS {
    /// Start at `initial` (0: unlimited).
    pub fn new(initial: u32) -> Self {
        QoS { value: std::sync::atomic::AtomicU32::new(initial), prev: std::sync::Mutex::new(None) }
    }

    /// The wanted prefetch count.
    pub fn value(&self) -> u32 {
        self.value.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Raise by `n` (applied at the next `update`); unlimited (0) stays unlimited.
    pub fn increment_eventually(&self, n: u32) -> u32 {
        let v = self.value();
        let new = if v == 0 { 0 } else { v + n };
        self.value.store(new, std::sync::atomic::Ordering::SeqCst);
        new
    }

    /// Lower by `n`, never below 1 (0 would mean unlimited).
    pub fn decrement_eventually(&self, n: u32) -> u32 {
        let v = self.value();
        let new = if v == 0 { 0 } else { v.saturating_sub(n).max(1) };
        self.value.store(new, std::sync::atomic::Ordering::SeqCst);
        new
    }

    /// Set the value and apply it to `consumer` now.
    pub async fn set(&self, consumer: &crate::Consumer, value: u32) -> Result<()> {
        self.value.store(value, std::sync::atomic::Ordering::SeqCst);
        self.apply(consumer, value).await
    }

    /// Apply the value to `consumer` if it changed since the last time (Kombu's `update`).
    pub async fn update(&self, consumer: &crate::Consumer) -> Result<()> {
        let v = self.value();
        self.apply(consumer, v).await
    }

    async fn apply(&self, consumer: &crate::Consumer, v: u32) -> Result<()> {
        if *lock(&self.prev) == Some(v) {
            return Ok(());
        }
        let count = u16::try_from(v).unwrap_or(u16::MAX);
        consumer.qos(0, count, false).await?;
        *lock(&self.prev) = Some(v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn broadcast_names() {
        assert_eq!(broadcast("news", Some("foo"), false).name, "foo");
        assert!(broadcast("news", Some("foo"), true).name.starts_with("foo."));
        let q = broadcast("news", None, false);
        assert!(q.name.starts_with("bcast."));
        assert_eq!(q.exchange.kind, ExchangeType::Fanout);
        assert!(q.auto_delete);
    }
}
