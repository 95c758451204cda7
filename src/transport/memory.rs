//! `memory://`: the in-process broker.
//!
//! All `memory://` connections of a process share one [`MemoryBroker`] (as in Python Kombu,
//! whose memory transport state is process-global); each virtual host is a separate
//! namespace, so `memory:///tests-42` is isolated from `memory://`. A [`MemoryBroker`] can
//! also be created on its own and handed to [`MemoryTransport::new`] (the gateway does this).
//!
//! This module is the thin adapter between the sans-io [`Broker`] and async callers: a mutex
//! around the broker, wakers for connections waiting in `drain_events`, and timers for
//! message expiry.

use crate::namemap::SortedMap;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use super::{ConnectInfo, Implements, RawChannel, RawConnection, Transport};
use crate::broker::{Broker, ChannelId, ConnId, Now, VHostSnapshot};
use crate::error::{Error, Result};
use crate::rt::{self, Duration, Instant};
use crate::proto::methods::{
    BasicConsume, BasicPublish, BasicQos, Content, ExchangeBind, ExchangeDeclare, ExchangeDelete,
    GetOk, QueueBind, QueueDeclare, QueueDeclareOk, QueueDelete, ServerEvent,
};

#[derive(Debug)]
struct Shared {
    broker: Broker,
    wakers: SortedMap<ConnId, Vec<Waker>>,
    persist: Option<Box<dyn Persist>>,
}

/// Where a [`MemoryBroker`] keeps its durable state (see [`crate::broker::Record`]).
///
/// [`MemoryBroker::with`] hands `write` the records of each operation, in order, while it
/// holds the broker's lock; `write` should only queue them. Once they are kept (in order, as
/// durably as the implementation promises), the implementation calls
/// [`MemoryBroker::journal_kept`] with `position`, which releases the publisher confirms
/// waiting for them. An implementation that cannot keep them never reports them kept (the
/// gateway's store stops the process).
pub trait Persist: std::fmt::Debug + Send {
    /// Keep `records`, oldest first; they end at journal position `position`.
    fn write(&mut self, position: u64, records: Vec<crate::broker::Record>);
}

impl Default for Shared {
    fn default() -> Self {
        // Read only by the operations that need the time (expiry, dead-lettering).
        let mut broker = Broker::new();
        broker.set_clock(Now::system);
        Shared { broker, wakers: SortedMap::default(), persist: None }
    }
}

/// A shareable handle to an in-memory [`Broker`].
#[derive(Debug, Clone, Default)]
pub struct MemoryBroker {
    shared: Arc<Mutex<Shared>>,
}

impl MemoryBroker {
    /// A new, empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide broker behind `memory://`.
    pub fn global() -> Self {
        static GLOBAL: OnceLock<MemoryBroker> = OnceLock::new();
        GLOBAL.get_or_init(MemoryBroker::new).clone()
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while the broker was locked leaves it consistent enough to go on: every
        // broker method validates before it mutates.
        crate::rt::lock(&self.shared)
    }

    /// Run `f` on the broker at the current time (read only if `f` needs it), then wake the
    /// connections that received events.
    pub fn with<R>(&self, f: impl FnOnce(&mut Broker) -> R) -> R {
        let mut g = self.lock();
        g.broker.tick();
        let r = f(&mut g.broker);
        if g.broker.has_journal() {
            let s = &mut *g;
            let records = s.broker.take_journal();
            let position = s.broker.journal_position();
            if let Some(p) = s.persist.as_mut() {
                p.write(position, records);
            }
        }
        Self::wake(g);
        r
    }

    /// Release the broker, then wake the connections that received events. Apart from `with`,
    /// which is instantiated for every operation, so that this part exists once.
    fn wake(mut g: MutexGuard<'_, Shared>) {
        let s = &mut *g;
        let mut wake: Vec<Waker> = Vec::new();
        for id in s.broker.drain_woken() {
            if let Some(ws) = s.wakers.remove(&id) {
                wake.extend(ws);
            }
        }
        drop(g);
        for w in wake {
            w.wake();
        }
    }

    /// Rebuild durable state from `recovered` (see [`Broker::restore`]), then keep every later
    /// change with `persist`. Returns what could not be restored.
    pub fn persist(&self, recovered: crate::broker::Recovered, persist: Box<dyn Persist>) -> Vec<crate::broker::NotRestored> {
        let mut g = self.lock();
        let failed = g.broker.restore(recovered);
        g.broker.enable_journal();
        g.persist = Some(persist);
        failed
    }

    /// The [`Persist`] implementation has kept the journal up to `position`.
    pub fn journal_kept(&self, position: u64) {
        self.with(|b| b.journal_kept(position));
    }

    /// A snapshot of a virtual host (exchanges, queues with depths, bindings).
    pub fn snapshot(&self, vhost: &str) -> Option<VHostSnapshot> {
        self.lock().broker.snapshot(vhost)
    }

    /// Close every connection as a broker restart would (for reconnection tests and the
    /// gateway's shutdown).
    pub fn force_close_all(&self, reason: &str) {
        self.with(|b| b.force_close_all(reason));
    }
}

/// The `memory://` transport.
#[derive(Debug, Clone)]
pub struct MemoryTransport {
    broker: MemoryBroker,
}

impl MemoryTransport {
    /// A transport over `broker`.
    pub fn new(broker: MemoryBroker) -> Self {
        MemoryTransport { broker }
    }

    /// The transport over the process-wide broker.
    pub fn global() -> Self {
        Self::new(MemoryBroker::global())
    }

    /// The broker.
    pub fn broker(&self) -> &MemoryBroker {
        &self.broker
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl Transport for MemoryTransport {
    fn driver_name(&self) -> &'static str {
        "memory"
    }

    fn default_port(&self) -> Option<u16> {
        None
    }

    fn implements(&self) -> Implements {
        Implements::all_exchange_types(false)
    }

    async fn establish_connection(&self, info: &ConnectInfo) -> Result<Arc<dyn RawConnection>> {
        let id = self.broker.with(|b| b.connect(&info.virtual_host));
        Ok(Arc::new(MemoryConnection {
            broker: self.broker.clone(),
            id,
            closed: AtomicBool::new(false),
            pending: Mutex::new(VecDeque::new()),
        }))
    }
}

/// A connection to a [`MemoryBroker`].
#[derive(Debug)]
pub struct MemoryConnection {
    broker: MemoryBroker,
    id: ConnId,
    closed: AtomicBool,
    /// Events taken from the broker in one go and not yet handed out: reading a batch under
    /// one lock instead of locking the broker once per event.
    pending: Mutex<VecDeque<ServerEvent>>,
}

impl MemoryConnection {
    /// The broker's id for this connection.
    pub fn id(&self) -> ConnId {
        self.id
    }
}

impl Drop for MemoryConnection {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let id = self.id;
            self.broker.with(|b| b.close_connection(id));
        }
    }
}

/// Resolves when the connection has events (or is gone), registering the waker otherwise.
struct EventsReady<'a> {
    broker: &'a MemoryBroker,
    id: ConnId,
}

impl Future for EventsReady<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut g = self.broker.lock();
        if g.broker.has_events(self.id) || !g.broker.is_open(self.id) {
            return Poll::Ready(());
        }
        let ws = g.wakers.get_or_insert_with(self.id, Vec::new);
        if !ws.iter().any(|w| w.will_wake(cx.waker())) {
            ws.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl RawConnection for MemoryConnection {
    async fn open_channel(&self) -> Result<Arc<dyn RawChannel>> {
        let id = self.id;
        let ch = self.broker.with(|b| b.open_channel(id))?;
        Ok(Arc::new(MemoryChannel { broker: self.broker.clone(), conn: id, id: ch }))
    }

    async fn next_event(&self, timeout: Option<Duration>) -> Result<ServerEvent> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(ev) = self.try_next_event()? {
                return Ok(ev);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| d <= now) {
                return Err(Error::Timeout(None));
            }
            let expiry = self.broker.lock().broker.poll_timeout();
            let wake_at = match (deadline, expiry) {
                (Some(d), Some(e)) => Some(d.min(e)),
                (d, e) => d.or(e),
            };
            let ready = EventsReady { broker: &self.broker, id: self.id };
            match wake_at {
                Some(t) => {
                    let timer = rt::sleep_until(t);
                    futures::pin_mut!(ready, timer);
                    futures::future::select(ready, timer).await;
                }
                None => ready.await,
            }
            if expiry.is_some_and(|e| e <= Instant::now()) {
                self.broker.with(|b| b.handle_timeout(Now::system()));
            }
        }
    }

    fn try_next_event(&self) -> Result<Option<ServerEvent>> {
        let mut pending = crate::rt::lock(&self.pending);
        if let Some(ev) = pending.pop_front() {
            return Ok(Some(ev));
        }
        let id = self.id;
        let open = self.broker.with(|b| {
            b.take_events(id, &mut pending);
            b.is_open(id)
        });
        match pending.pop_front() {
            Some(ev) => Ok(Some(ev)),
            None if !open => Err(Error::RecoverableConnection(if self.closed.load(Ordering::SeqCst) {
                "the connection was closed (release/close)".into()
            } else {
                "the memory broker closed this connection".into()
            })),
            None => Ok(None),
        }
    }

    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::SeqCst) && self.broker.lock().broker.is_open(self.id)
    }

    async fn close(&self) -> Result<()> {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let id = self.id;
            self.broker.with(|b| b.close_connection(id));
        }
        Ok(())
    }
}

/// A channel of a [`MemoryConnection`].
#[derive(Debug)]
pub struct MemoryChannel {
    broker: MemoryBroker,
    conn: ConnId,
    id: ChannelId,
}

impl MemoryChannel {
    fn op<R>(&self, f: impl FnOnce(&mut Broker, ConnId, ChannelId) -> R) -> R {
        let (c, id) = (self.conn, self.id);
        self.broker.with(|b| f(b, c, id))
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl RawChannel for MemoryChannel {
    fn channel_id(&self) -> u32 {
        self.id
    }
    fn is_open(&self) -> bool {
        self.broker.lock().broker.is_channel_open(self.conn, self.id)
    }
    async fn exchange_declare(&self, m: &ExchangeDeclare) -> Result<()> {
        self.op(|b, c, ch| b.exchange_declare(c, ch, m))
    }
    async fn exchange_delete(&self, m: &ExchangeDelete) -> Result<()> {
        self.op(|b, c, ch| b.exchange_delete(c, ch, m))
    }
    async fn exchange_bind(&self, m: &ExchangeBind) -> Result<()> {
        self.op(|b, c, ch| b.exchange_bind(c, ch, m))
    }
    async fn exchange_unbind(&self, m: &ExchangeBind) -> Result<()> {
        self.op(|b, c, ch| b.exchange_unbind(c, ch, m))
    }
    async fn queue_declare(&self, m: &QueueDeclare) -> Result<QueueDeclareOk> {
        self.op(|b, c, ch| b.queue_declare(c, ch, m))
    }
    async fn queue_bind(&self, m: &QueueBind) -> Result<()> {
        self.op(|b, c, ch| b.queue_bind(c, ch, m))
    }
    async fn queue_unbind(&self, m: &QueueBind) -> Result<()> {
        self.op(|b, c, ch| b.queue_unbind(c, ch, m))
    }
    async fn queue_purge(&self, queue: &str) -> Result<u32> {
        self.op(|b, c, ch| b.queue_purge(c, ch, queue))
    }
    async fn queue_delete(&self, m: &QueueDelete) -> Result<u32> {
        self.op(|b, c, ch| b.queue_delete(c, ch, m))
    }
    async fn basic_publish(&self, m: &BasicPublish, content: Arc<Content>) -> Result<()> {
        self.op(|b, c, ch| b.basic_publish(c, ch, m, content))
    }
    async fn basic_get(&self, queue: &str, no_ack: bool) -> Result<Option<GetOk>> {
        self.op(|b, c, ch| b.basic_get(c, ch, queue, no_ack))
    }
    async fn basic_consume(&self, m: &BasicConsume) -> Result<String> {
        self.op(|b, c, ch| b.basic_consume(c, ch, m)).map(|t| t.to_string())
    }
    async fn basic_cancel(&self, consumer_tag: &str) -> Result<()> {
        self.op(|b, c, ch| b.basic_cancel(c, ch, consumer_tag))
    }
    fn basic_ack(&self, delivery_tag: u64, multiple: bool) -> Result<()> {
        self.op(|b, c, ch| b.basic_ack(c, ch, delivery_tag, multiple))
    }
    fn basic_reject(&self, delivery_tag: u64, requeue: bool) -> Result<()> {
        self.op(|b, c, ch| b.basic_reject(c, ch, delivery_tag, requeue))
    }
    fn basic_nack(&self, delivery_tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        self.op(|b, c, ch| b.basic_nack(c, ch, delivery_tag, multiple, requeue))
    }
    async fn basic_recover(&self, requeue: bool) -> Result<()> {
        self.op(|b, c, ch| b.basic_recover(c, ch, requeue))
    }
    async fn basic_qos(&self, qos: BasicQos) -> Result<()> {
        self.op(|b, c, ch| b.basic_qos(c, ch, qos))
    }
    async fn flow(&self, active: bool) -> Result<bool> {
        self.op(|b, c, ch| b.channel_flow(c, ch, active))
    }
    async fn confirm_select(&self) -> Result<()> {
        self.op(|b, c, ch| b.confirm_select(c, ch))
    }
    async fn close(&self) -> Result<()> {
        self.op(|b, c, ch| if b.is_open(c) { b.close_channel(c, ch) } else { Ok(()) })
    }
}
