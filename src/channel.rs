//! [`Channel`]: a lightweight connection within a [`Connection`] (Kombu's channel object),
//! with the AMQP methods the Kombu API uses, its consumers and their callbacks, and the state
//! it restores after a reconnect (qos, consumers, return callbacks).
//!
//! The operations of declarations bound to a channel ([`Exchange::declare`],
//! [`Queue::purge`], ...) and [`crate::maybe_declare`] are in the `bound` submodule.

pub(crate) mod bound;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::connection::{ConnInner, Connection};
use crate::entity::{Exchange, Queue};
use crate::error::{Error, ReplyCode, Result};
use crate::message::Message;
use crate::namemap::SortedMap;
use crate::proto::methods::{BasicConsume, BasicPublish, BasicQos, Content, Delivery, ExchangeBind, ExchangeDelete, Name, QueueBind, QueueDelete};
use crate::rt::lock;
use crate::transport::{RawChannel, RawConnection};

/// Called with each message delivered to a consumer; an error is returned by
/// `drain_events`.
#[cfg(not(target_arch = "wasm32"))]
pub type DeliveryCallback = Arc<dyn Fn(Message) -> Result<()> + Send + Sync>;
/// Called with each message delivered to a consumer.
#[cfg(target_arch = "wasm32")]
pub type DeliveryCallback = Arc<dyn Fn(Message) -> Result<()>>;
/// Called with each message the broker returned: `(exception, exchange, routing_key, message)`.
#[cfg(not(target_arch = "wasm32"))]
pub type ReturnCallback = Arc<dyn Fn(&Error, &str, &str, &Message) + Send + Sync>;
/// Called with each message the broker returned: `(exception, exchange, routing_key, message)`.
#[cfg(target_arch = "wasm32")]
pub type ReturnCallback = Arc<dyn Fn(&Error, &str, &str, &Message)>;
/// Called when the broker cancels a consumer (its queue was deleted), with the tag.
#[cfg(not(target_arch = "wasm32"))]
pub type CancelCallback = Arc<dyn Fn(&str) + Send + Sync>;
/// Called when the broker cancels a consumer (its queue was deleted), with the tag.
#[cfg(target_arch = "wasm32")]
pub type CancelCallback = Arc<dyn Fn(&str)>;


struct ConsumerEntry {
    args: BasicConsume,
    callback: DeliveryCallback,
    /// Queue to re-declare before consuming again after a reconnect.
    redeclare: Option<Queue>,
    on_cancel: Option<CancelCallback>,
}

pub(crate) struct ChannelInner {
    conn: Weak<ConnInner>,
    raw: Mutex<Option<(Arc<dyn RawChannel>, u64)>>,
    reviving: futures::lock::Mutex<()>,
    consumers: Mutex<SortedMap<String, ConsumerEntry>>,
    /// Cancelled consumers (tag → no_ack), so that deliveries still in flight are requeued.
    cancelled: Mutex<SortedMap<String, bool>>,
    qos: Mutex<Option<BasicQos>>,
    on_return: Mutex<Vec<ReturnCallback>>,
    closed: Mutex<Option<Error>>,
    user_closed: AtomicBool,
    auto_reopen: bool,
    id: AtomicU64,
}

/// A channel (Kombu's channel object): a lightweight connection within a [`Connection`].
/// Cheap to clone; clones are the same channel.
#[derive(Clone)]
pub struct Channel {
    pub(crate) inner: Arc<ChannelInner>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Channel {}>", self.channel_id())
    }
}

impl PartialEq for Channel {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &o.inner)
    }
}

impl Channel {
    pub(crate) fn new(conn: &Connection, auto_reopen: bool) -> Channel {
        let inner = Arc::new(ChannelInner {
            conn: Arc::downgrade(&conn.inner),
            raw: Mutex::new(None),
            reviving: futures::lock::Mutex::new(()),
            consumers: Mutex::new(SortedMap::default()),
            cancelled: Mutex::new(SortedMap::default()),
            qos: Mutex::new(None),
            on_return: Mutex::new(Vec::new()),
            closed: Mutex::new(None),
            user_closed: AtomicBool::new(false),
            auto_reopen,
            id: AtomicU64::new(0),
        });
        conn.register_channel(&inner);
        Channel { inner }
    }

    /// The channel id on the current transport connection (0 before it is opened).
    pub fn channel_id(&self) -> u32 {
        self.inner.id.load(Ordering::Relaxed) as u32
    }

    /// The connection of this channel.
    pub fn connection(&self) -> Result<Connection> {
        self.inner
            .conn
            .upgrade()
            .map(|inner| Connection { inner })
            .ok_or_else(|| Error::RecoverableConnection("the channel's connection was dropped".into()))
    }

    pub(crate) fn was_opened(&self) -> bool {
        lock(&self.inner.raw).is_some()
    }

    pub(crate) fn user_closed(&self) -> bool {
        self.inner.user_closed.load(Ordering::SeqCst)
    }

    /// True while usable (not closed by the user or by a channel exception).
    pub fn is_open(&self) -> bool {
        !self.user_closed() && lock(&self.inner.closed).is_none()
    }

    /// The transport channel, opening it (and the connection) when needed, and re-opening
    /// it after a reconnect.
    pub async fn raw(&self) -> Result<Arc<dyn RawChannel>> {
        if self.user_closed() {
            return Err(Error::channel(ReplyCode::ChannelError, "CHANNEL_ERROR - the channel was closed"));
        }
        let conn = self.connection()?;
        let gen = conn.generation();
        if let Some((raw, g)) = lock(&self.inner.raw).clone() {
            if g == gen && conn.live_transport().is_some() {
                match &*lock(&self.inner.closed) {
                    None => return Ok(raw),
                    // Every later operation fails with the broker's reason for closing it.
                    Some(e) if !self.inner.auto_reopen => return Err(e.clone()),
                    Some(_) => {}
                }
            }
        }
        // Connect first: a reconnect revives every channel, this one included.
        let t = conn.transport().await?;
        let gen = conn.generation();
        self.revive_on(t, gen).await
    }

    /// Open a new transport channel on `t` for this handle and restore its state: qos,
    /// consumers (re-declaring their queues first).
    pub(crate) async fn revive_on(&self, t: Arc<dyn RawConnection>, gen: u64) -> Result<Arc<dyn RawChannel>> {
        let conn = self.connection()?;
        let _g = self.inner.reviving.lock().await;
        if let Some((raw, g)) = lock(&self.inner.raw).clone() {
            if g == gen && lock(&self.inner.closed).is_none() {
                return Ok(raw);
            }
        }
        let raw = t.open_channel().await.map_err(|e| conn.connection_failed(e))?;
        let id = raw.channel_id();
        self.inner.id.store(u64::from(id), Ordering::Relaxed);
        *lock(&self.inner.raw) = Some((raw.clone(), gen));
        *lock(&self.inner.closed) = None;
        conn.open_slot(id, &self.inner, raw.clone());
        let qos = *lock(&self.inner.qos);
        if let Some(q) = qos {
            raw.basic_qos(q).await?;
        }
        let mut consumers: Vec<(String, BasicConsume, Option<Queue>)> = Vec::new();
        for (t, c) in lock(&self.inner.consumers).iter() {
            consumers.push((t.clone(), c.args.clone(), c.redeclare.clone()));
        }
        for (tag, args, redeclare) in consumers {
            if let Some(mut q) = redeclare {
                q.declare_raw(&*raw, false).await?;
            }
            let new_tag = raw.basic_consume(&args).await?;
            if new_tag != tag {
                let mut cs = lock(&self.inner.consumers);
                if let Some(mut e) = cs.remove(&tag) {
                    e.args.consumer_tag = new_tag.clone();
                    cs.insert(new_tag, e);
                }
            }
        }
        Ok(raw)
    }

    /// The result of an operation on the transport channel ([`Channel::raw`]), with the
    /// channel or connection exception it failed with recorded ([`Channel::note_error`]).
    /// Every broker operation of the Kombu API has this shape:
    /// `let raw = ch.raw().await?; ch.noted(raw.queue_purge(name).await)`; those that
    /// [`RawOp`] names go through [`Channel::call`].
    pub(crate) fn noted<T>(&self, result: Result<T>) -> Result<T> {
        result.map_err(|e| self.note_error(e))
    }

    /// `let raw = self.raw().await?; self.noted(raw.<op>.await)` for the operations of that
    /// shape: one future for them all (a helper taking the operation as a closure was a future
    /// type per call site), rather than `raw()`'s future in each caller's. Counts (purge,
    /// delete) come back as such, `flow`'s answer as 1 or 0, the rest as 0.
    pub(crate) async fn call(&self, op: RawOp<'_>) -> Result<u32> {
        let raw = self.raw().await?;
        let unit = match op {
            RawOp::ExchangeDelete(m) => raw.exchange_delete(m),
            RawOp::ExchangeBind(m) => raw.exchange_bind(m),
            RawOp::ExchangeUnbind(m) => raw.exchange_unbind(m),
            RawOp::QueueBind(m) => raw.queue_bind(m),
            RawOp::QueueUnbind(m) => raw.queue_unbind(m),
            RawOp::Publish(m, content) => raw.basic_publish(m, content),
            RawOp::Cancel(tag) => raw.basic_cancel(tag),
            RawOp::Qos(qos) => raw.basic_qos(qos),
            RawOp::Recover(requeue) => raw.basic_recover(requeue),
            RawOp::QueuePurge(queue) => return self.noted(raw.queue_purge(queue).await),
            RawOp::QueueDelete(m) => return self.noted(raw.queue_delete(m).await),
            RawOp::Flow(active) => return self.noted(raw.flow(active).await).map(u32::from),
        };
        self.noted(unit.await).map(|()| 0)
    }

    /// Record a channel exception from an operation: the broker closed the channel.
    pub(crate) fn note_error(&self, e: Error) -> Error {
        if matches!(&e, Error::Channel { code, .. } if *code != ReplyCode::ChannelError) {
            self.mark_closed(e.clone());
        } else if e.is_connection_error() {
            if let Ok(c) = self.connection() {
                c.connection_failed(e.clone());
            }
        }
        e
    }

    /// The broker closed the transport channel `raw`: recorded unless this channel has
    /// been reopened since (on another transport channel).
    pub(crate) fn broker_closed(&self, raw: &Arc<dyn RawChannel>, e: Error) {
        let current = lock(&self.inner.raw).as_ref().is_some_and(|(r, _)| Arc::ptr_eq(r, raw));
        if current {
            self.mark_closed(e);
        }
    }

    pub(crate) fn mark_closed(&self, e: Error) {
        *lock(&self.inner.closed) = Some(e);
        lock(&self.inner.consumers).clear();
    }

    pub(crate) fn return_callbacks(&self) -> Vec<ReturnCallback> {
        lock(&self.inner.on_return).clone()
    }

    /// Register a callback for messages the broker returns (mandatory, unroutable).
    pub fn on_return(&self, cb: ReturnCallback) {
        lock(&self.inner.on_return).push(cb);
    }

    pub(crate) fn deliver(&self, tag: Name, delivery: Delivery, raw: Arc<dyn RawChannel>) -> Result<()> {
        let entry = lock(&self.inner.consumers).get(&*tag).map(|e| (e.callback.clone(), e.args.no_ack));
        match entry {
            Some((cb, no_ack)) => cb(Message::from_delivery(delivery, Some(tag), Some(raw), no_ack)),
            None => {
                // A delivery for a consumer cancelled after the broker sent it: requeue it
                // (unless it was a no-ack consumer: the broker already forgot it).
                let no_ack = lock(&self.inner.cancelled).get(&*tag).copied().unwrap_or(true);
                if !no_ack {
                    // A consumer dropped and not cancelled at the broker yet: the message waits
                    // for the cancel (requeued now, it would come straight back to it).
                    if let Ok(conn) = self.connection() {
                        if conn.hold_for_orphan(&raw, &tag, delivery.delivery_tag) {
                            return Ok(());
                        }
                    }
                    raw.basic_reject(delivery.delivery_tag, true).map_err(|e| self.note_error(e))?;
                }
                Ok(())
            }
        }
    }

    /// Every handle of the consumer `tag` was dropped: nothing will read its messages. It is
    /// forgotten here at once and cancelled at the broker by the connection's next wait for
    /// events, which then requeues what it was sent (`Connection::orphaned`). Returns the
    /// connection, to hold its buffered messages on (`None`: nothing to do).
    pub(crate) fn consumer_gone(&self, tag: &str) -> Option<Connection> {
        let e = lock(&self.inner.consumers).remove(tag)?;
        lock(&self.inner.cancelled).insert(tag.to_owned(), e.args.no_ack);
        let raw = lock(&self.inner.raw).as_ref()?.0.clone();
        let conn = self.connection().ok()?;
        conn.orphaned(raw, tag.into());
        Some(conn)
    }

    pub(crate) fn broker_cancelled(&self, tag: &str) {
        let e = lock(&self.inner.consumers).remove(tag);
        if let Some(e) = e {
            lock(&self.inner.cancelled).insert(tag.to_owned(), e.args.no_ack);
            if let Some(cb) = e.on_cancel {
                cb(tag);
            }
        }
    }

    /// `basic.consume` with a callback; returns the consumer tag. `redeclare` is the queue
    /// to declare again when the channel revives after a reconnect.
    pub async fn basic_consume(&self, args: BasicConsume, callback: DeliveryCallback, redeclare: Option<Queue>) -> Result<String> {
        self.basic_consume_with_cancel(args, callback, redeclare, None).await
    }

    pub(crate) async fn basic_consume_with_cancel(
        &self,
        mut args: BasicConsume,
        callback: DeliveryCallback,
        redeclare: Option<Queue>,
        on_cancel: Option<CancelCallback>,
    ) -> Result<String> {
        let raw = self.raw().await?;
        if args.consumer_tag.is_empty() {
            // Kombu generates the tag client-side, so that the callback is registered before
            // the first delivery can arrive.
            args.consumer_tag = crate::rt::uuid();
        }
        let tag = args.consumer_tag.clone();
        lock(&self.inner.consumers)
            .insert(tag.clone(), ConsumerEntry { args: args.clone(), callback, redeclare, on_cancel });
        match raw.basic_consume(&args).await {
            Ok(t) => Ok(t),
            Err(e) => {
                lock(&self.inner.consumers).remove(&tag);
                Err(self.note_error(e))
            }
        }
    }

    /// `basic.cancel`. Messages already delivered to the consumer stay unacknowledged;
    /// deliveries still in flight are requeued.
    pub async fn basic_cancel(&self, consumer_tag: &str) -> Result<()> {
        let entry = lock(&self.inner.consumers).remove(consumer_tag);
        let Some(entry) = entry else { return Ok(()) };
        lock(&self.inner.cancelled).insert(consumer_tag.to_owned(), entry.args.no_ack);
        self.call(RawOp::Cancel(consumer_tag)).await.map(drop)
    }

    /// True when a consumer with this tag is registered.
    pub fn has_consumer(&self, consumer_tag: &str) -> bool {
        lock(&self.inner.consumers).contains_key(consumer_tag)
    }

    /// `basic.get` as a [`Message`].
    pub async fn basic_get(&self, queue: &str, no_ack: bool) -> Result<Option<Message>> {
        let raw = self.raw().await?;
        let r = self.noted(raw.basic_get(queue, no_ack).await)?;
        Ok(r.map(|ok| Message::from_delivery(ok.delivery, None, Some(raw), no_ack)))
    }

    /// `basic.qos`; remembered and re-applied after a reconnect.
    pub async fn basic_qos(&self, prefetch_size: u32, prefetch_count: u16, global: bool) -> Result<()> {
        let qos = BasicQos { prefetch_size, prefetch_count, global };
        self.call(RawOp::Qos(qos)).await?;
        *lock(&self.inner.qos) = Some(qos);
        Ok(())
    }

    /// `basic.recover`: redeliver the unacknowledged messages of the channel.
    pub async fn basic_recover(&self, requeue: bool) -> Result<()> {
        self.call(RawOp::Recover(requeue)).await.map(drop)
    }

    /// `channel.flow`: pause (false) or resume (true) deliveries on this channel.
    pub async fn flow(&self, active: bool) -> Result<bool> {
        self.call(RawOp::Flow(active)).await.map(|n| n == 1)
    }

    /// Declare an exchange on this channel.
    pub async fn exchange_declare(&self, exchange: &Exchange) -> Result<()> {
        exchange.declare_on(self, false, None).await
    }

    /// Declare a queue (with its exchange and bindings) on this channel; returns its name.
    pub async fn queue_declare(&self, queue: &mut Queue) -> Result<String> {
        queue.declare_on(self, false).await
    }

    /// Close the channel: its consumers are cancelled and unacknowledged messages return to
    /// their queues.
    pub async fn close(&self) -> Result<()> {
        self.inner.user_closed.store(true, Ordering::SeqCst);
        lock(&self.inner.consumers).clear();
        let raw = lock(&self.inner.raw).take();
        if let Some((raw, _)) = raw {
            if let Ok(conn) = self.connection() {
                conn.close_slot(raw.channel_id());
            }
            raw.close().await?;
        }
        Ok(())
    }
}

/// The operations [`Channel::call`] makes on the transport channel.
pub(crate) enum RawOp<'a> {
    ExchangeDelete(&'a ExchangeDelete),
    ExchangeBind(&'a ExchangeBind),
    ExchangeUnbind(&'a ExchangeBind),
    QueueBind(&'a QueueBind),
    QueueUnbind(&'a QueueBind),
    QueuePurge(&'a str),
    QueueDelete(&'a QueueDelete),
    Publish(&'a BasicPublish, Arc<Content>),
    Cancel(&'a str),
    Qos(BasicQos),
    Recover(bool),
    Flow(bool),
}
