//! The virtual channel: AMQP emulated in the client over a [`Store`] of named queues, for
//! brokers that have no exchanges (Redis, SQS). Kombu's `kombu.transport.virtual`.
//!
//! (The module is not called `virtual` as in Kombu: that is a reserved word in Rust, and
//! `r#virtual` in every path would be worse than a name that says what it is.)
//!
//! What lives here, once for every store:
//! - delivery tags (`u64` per channel) mapped to the store's token of each delivery (Redis:
//!   the envelope's uuid `delivery_tag`; SQS: the ReceiptHandle);
//! - `basic.qos` prefetch, consumers, and fair cycling across their queues
//!   ([`QueueOrder`]); `basic.get`;
//! - `basic.ack` / `reject` / `nack` (with `multiple`) / `recover`, and the restore of every
//!   unacknowledged message when a channel or the connection closes;
//! - exchanges as Kombu's virtual transports keep them: the declarations in the connection
//!   (the type is not stored in the broker), the binding table in the store, routing with
//!   the core's [`crate::routing::Router`] (direct, topic, and fanout — broadcast by the
//!   store when it [`Store::supports_fanout`]); `mandatory` messages that reach no queue
//!   come back as `basic.return` (312 NO_ROUTE), which Kombu's virtual transports do not do;
//! - messages travel as the [`crate::envelope::Envelope`], byte-compatible with Kombu.
//!
//! Deliveries are driven as Kombu drives them: [`RawConnection::next_event`] asks the store
//! for messages ([`Store::fetch`], waiting up to `polling_interval`) for each channel that
//! has consumers and prefetch credit. A fetch in flight belongs to the connection, not to
//! the `next_event` call: a caller that gives up (timeout, select) loses nothing, the next
//! call picks the answer up.
//!
//! ## Acks are not a round trip here
//!
//! [`RawChannel::basic_ack`] stays synchronous (the trait is unchanged): AMQP's `basic.ack`
//! has no answer either. The channel hands the settle to [`Store::settle`], which a store
//! with IO queues and applies with the next ones in one round trip (pipelining, what a
//! consumer acking each message needs). A store that fails to apply one says so (log, and
//! an error from its next call); the message is safe meanwhile — it stays recorded by the
//! broker and is delivered again after the visibility timeout.

pub mod channel;
pub mod store;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

pub use channel::QueueOrder;
pub use store::{mark_redelivered, topic_pattern, BindingRow, FanoutListen, Fetch, Fetched, Outgoing, Settle, Store};

use channel::{ChannelState, ConsumerEntry};

use super::{ConnectInfo, RawChannel, RawConnection};
use crate::envelope::Envelope;
use crate::error::{Error, ReplyCode, Result};
use crate::routing::{RouteKind, Router};
use crate::rt::{self, BoxFuture, Duration};
use crate::proto::methods::{
    BasicConsume, BasicPublish, BasicQos, Content, Delivery, ExchangeBind, ExchangeDeclare, ExchangeDelete,
    ExchangeType, GetOk, HashMap, Name, QueueBind, QueueDeclare, QueueDeclareOk, QueueDelete, Returned, ServerEvent,
};
use crate::value::{Headers, Value};

/// Options of the virtual layer, read from the transport options (Kombu's names).
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualOptions {
    /// How long one fetch waits for a message (`polling_interval`, Kombu's BRPOP timeout;
    /// default 1 s).
    pub polling_interval: Duration,
    /// `queue_order_strategy`: `round_robin` (default), `sorted`, `priority`.
    pub queue_order: QueueOrder,
    /// The most messages one fetch takes for a channel without a prefetch limit
    /// (`fetch_batch`, default 100).
    pub fetch_batch: usize,
    /// The virtual host, for error texts.
    pub virtual_host: String,
}

impl Default for VirtualOptions {
    fn default() -> Self {
        VirtualOptions {
            polling_interval: Duration::from_secs(1),
            queue_order: QueueOrder::RoundRobin,
            fetch_batch: 100,
            virtual_host: "/".into(),
        }
    }
}

impl VirtualOptions {
    /// The options in `info` (`polling_interval`, `queue_order_strategy`, `fetch_batch`).
    /// Errors name the option and what it accepts.
    pub fn from_connect_info(info: &ConnectInfo) -> Result<VirtualOptions> {
        let mut o = VirtualOptions { virtual_host: info.virtual_host.clone(), ..VirtualOptions::default() };
        if let Some(v) = info.options.get("polling_interval") {
            o.polling_interval = seconds_option("polling_interval", v)?;
        }
        if let Some(v) = info.options.get("queue_order_strategy") {
            o.queue_order = v.as_str().and_then(QueueOrder::parse).ok_or_else(|| Error::InvalidTransportOption {
                option: "queue_order_strategy".into(),
                reason: format!("{v} is not one of round_robin, sorted, priority"),
            })?;
        }
        if let Some(v) = info.options.get("fetch_batch") {
            o.fetch_batch = v.as_u64().filter(|n| (1..=10_000).contains(n)).ok_or_else(|| Error::InvalidTransportOption {
                option: "fetch_batch".into(),
                reason: format!("{v} is not a whole number from 1 to 10000"),
            })? as usize;
        }
        Ok(o)
    }
}

/// A duration option given in seconds (an integer or a float, or such a string).
pub fn seconds_option(name: &str, v: &Value) -> Result<Duration> {
    let secs = v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse::<f64>().ok()));
    match secs {
        Some(s) if (0.0..1e9).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(Error::InvalidTransportOption { option: name.into(), reason: format!("{v} is not a number of seconds") }),
    }
}

type FetchFuture = BoxFuture<'static, Result<Vec<Fetched>>>;

/// A channel's state in the connection, with the fetch it has in flight.
struct ChannelSlot {
    state: ChannelState,
    fetch: Option<FetchFuture>,
}

/// What a connection keeps between calls (Kombu's `BrokerState` is per connection too).
#[derive(Default)]
struct ConnState {
    open: bool,
    /// Why the connection failed (a fetch reached a dead broker).
    failed: Option<Error>,
    last_channel: u32,
    channels: std::collections::BTreeMap<u32, ChannelSlot>,
    /// Exchanges declared on this connection: the type is only known here, as in Kombu
    /// (an exchange this connection did not declare routes as `direct`).
    exchanges: HashMap<String, ExchangeDeclare>,
    /// Bindings made on this connection: queue → (exchange, row), for `queue.delete`.
    bindings: HashMap<String, Vec<(String, BindingRow)>>,
    /// Queues bound to a fanout exchange: queue → (exchange, routing key with `#` → `*`).
    fanout_queues: HashMap<String, (String, String)>,
    /// `x-expires` of the queues declared here, in milliseconds.
    expires: HashMap<String, u64>,
    events: VecDeque<ServerEvent>,
    wakers: Vec<Waker>,
}

impl ConnState {
    fn wake(&mut self) {
        for w in self.wakers.drain(..) {
            w.wake();
        }
    }

    fn channel(&mut self, id: u32) -> Result<&mut ChannelState> {
        match self.channels.get_mut(&id) {
            Some(s) if s.state.open => Ok(&mut s.state),
            _ => Err(Error::channel(ReplyCode::ChannelError, format!("CHANNEL_ERROR - channel {id} is closed"))),
        }
    }

    fn exchange_kind(&self, exchange: &str) -> ExchangeType {
        self.exchanges.get(exchange).map_or(ExchangeType::Direct, |d| d.kind.clone())
    }
}

struct Shared {
    store: Arc<dyn Store>,
    options: VirtualOptions,
    state: Mutex<ConnState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection of a virtual transport: the AMQP methods over a [`Store`].
pub struct VirtualConnection {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for VirtualConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualConnection").field("options", &self.shared.options).finish_non_exhaustive()
    }
}

impl VirtualConnection {
    /// A connection over `store`.
    pub fn new(store: Arc<dyn Store>, options: VirtualOptions) -> Self {
        let state = ConnState { open: true, ..Default::default() };
        VirtualConnection { shared: Arc::new(Shared { store, options, state: Mutex::new(state) }) }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// Poll for the next event: start a fetch for every channel that can take messages,
    /// collect the fetches that finished.
    fn poll_event(&self, cx: &mut Context<'_>) -> Poll<Result<ServerEvent>> {
        let shared = &*self.shared;
        let mut g = shared.lock();
        let st = &mut *g;
        loop {
            if let Some(ev) = st.events.pop_front() {
                return Poll::Ready(Ok(ev));
            }
            if let Some(e) = &st.failed {
                return Poll::Ready(Err(e.clone()));
            }
            if !st.open {
                return Poll::Ready(Err(Error::RecoverableConnection("the connection is closed".into())));
            }
            let mut progressed = false;
            let ids: Vec<u32> = st.channels.keys().copied().collect();
            for id in ids {
                let Some(slot) = st.channels.get_mut(&id) else { continue };
                if slot.fetch.is_none() {
                    slot.fetch = start_fetch(shared, &slot.state, &st.fanout_queues);
                }
                let Some(f) = slot.fetch.as_mut() else { continue };
                let Poll::Ready(r) = f.as_mut().poll(cx) else { continue };
                slot.fetch = None;
                progressed = true;
                match r {
                    Ok(got) => deliver(shared, id, &mut slot.state, got, &mut st.events),
                    Err(e) if e.is_connection_error() => {
                        st.failed = Some(e);
                        st.open = false;
                        break;
                    }
                    Err(e) => {
                        // The store refused the fetch (a Redis error reply...): the channel
                        // closes, as a channel exception would; its messages stay recorded.
                        slot.state.open = false;
                        st.events.push_back(ServerEvent::ChannelClosed { channel: id, error: e });
                    }
                }
            }
            if !progressed {
                if !st.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    st.wakers.push(cx.waker().clone());
                }
                return Poll::Pending;
            }
        }
    }

    fn close_state(&self) -> Vec<(u32, ChannelSlot)> {
        let mut st = self.shared.lock();
        st.open = false;
        st.wake();
        std::mem::take(&mut st.channels).into_iter().collect()
    }
}

/// The fetch a channel should have in flight now, if any: it has consumers and credit.
fn start_fetch(shared: &Shared, ch: &ChannelState, fanout_queues: &HashMap<String, (String, String)>) -> Option<FetchFuture> {
    if !ch.open {
        return None;
    }
    let order = ch.poll_order();
    if order.is_empty() {
        return None;
    }
    let max = match ch.credit() {
        Some(0) => return None,
        Some(n) => n.min(shared.options.fetch_batch),
        None => shared.options.fetch_batch,
    };
    let round_robin = shared.options.queue_order == QueueOrder::RoundRobin;
    let mut fetch = Fetch { queues: Vec::new(), fanout: Vec::new(), max, round_robin, wait: Some(shared.options.polling_interval) };
    let fanout = shared.store.supports_fanout();
    for q in order {
        match fanout_queues.get(&*q).filter(|_| fanout) {
            Some((exchange, rk)) => fetch.fanout.push(FanoutListen { queue: q, exchange: exchange.clone(), routing_key: rk.clone() }),
            None => fetch.queues.push(q),
        }
    }
    let store = shared.store.clone();
    Some(Box::pin(async move { store.fetch(&fetch).await }))
}

/// The message a store returned, decoded: its delivery. A message that does not decode is
/// moved aside by the store (dead-lettered) and reported.
fn decode(store: &dyn Store, m: &Fetched) -> Option<(Delivery, Envelope)> {
    let decoded = Envelope::from_json(&m.payload).and_then(|e| e.content().map(|c| (e, c)));
    match decoded {
        Ok((env, content)) => {
            let info_flag = env.properties.get("delivery_info").and_then(|d| d.get("redelivered")).and_then(Value::as_bool);
            let header_flag = env.headers.get("redelivered").and_then(Value::as_bool);
            let delivery = Delivery {
                delivery_tag: 0,
                redelivered: info_flag.or(header_flag).unwrap_or(false),
                exchange: Name::from(env.exchange()),
                routing_key: Name::from(env.routing_key()),
                content: Arc::new(content),
                extra: m.extra.clone(),
            };
            Some((delivery, env))
        }
        Err(e) => {
            tracing::error!(queue = %m.queue, error = %e, "a stored message could not be decoded; moved aside");
            if !m.broadcast {
                if let Err(e2) = store.settle(m, Settle::DeadLetter(e.to_string())) {
                    tracing::error!(queue = %m.queue, error = %e2, "the undecodable message could not be moved aside");
                }
            }
            None
        }
    }
}

/// Hand fetched messages to the channel's consumers as delivery events.
fn deliver(shared: &Shared, id: u32, ch: &mut ChannelState, got: Vec<Fetched>, events: &mut VecDeque<ServerEvent>) {
    let store = &*shared.store;
    for m in got {
        let consumer = ch.consumer_of(&m.queue).filter(|_| ch.open).cloned();
        let Some(consumer) = consumer else {
            // Its consumer was cancelled while the fetch was in flight: give it back.
            if !m.broadcast {
                if let Err(e) = store.settle(&m, Settle::Requeue) {
                    tracing::error!(queue = %m.queue, error = %e, "could not requeue a message fetched for a cancelled consumer");
                }
            }
            continue;
        };
        let Some((mut delivery, _)) = decode(store, &m) else { continue };
        ch.rotate(&m.queue);
        let tag = ch.next_tag();
        delivery.delivery_tag = tag;
        if consumer.no_ack {
            if !m.broadcast {
                if let Err(e) = store.settle(&m, Settle::Ack) {
                    tracing::error!(queue = %m.queue, error = %e, "could not settle a no_ack delivery");
                }
            }
        } else {
            // Broadcasts too, as Kombu: they count against prefetch until acked, but the
            // store has nothing to settle or restore for them.
            ch.unacked.insert(tag, m);
        }
        events.push_back(ServerEvent::Deliver { channel: id, consumer_tag: consumer.tag.clone(), delivery });
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl RawConnection for VirtualConnection {
    async fn open_channel(&self) -> Result<Arc<dyn RawChannel>> {
        let mut st = self.shared.lock();
        if !st.open {
            return Err(st.failed.clone().unwrap_or_else(|| Error::RecoverableConnection("the connection is closed".into())));
        }
        st.last_channel += 1;
        let id = st.last_channel;
        st.channels.insert(id, ChannelSlot { state: ChannelState::new(self.shared.options.queue_order), fetch: None });
        Ok(Arc::new(VirtualChannel { shared: self.shared.clone(), id }))
    }

    async fn next_event(&self, timeout: Option<Duration>) -> Result<ServerEvent> {
        let next = futures::future::poll_fn(|cx| self.poll_event(cx));
        match timeout {
            None => next.await,
            Some(t) => {
                let timer = rt::sleep(t);
                futures::pin_mut!(next, timer);
                match futures::future::select(next, timer).await {
                    futures::future::Either::Left((r, _)) => r,
                    futures::future::Either::Right(_) => Err(Error::Timeout(None)),
                }
            }
        }
    }

    fn try_next_event(&self) -> Result<Option<ServerEvent>> {
        let mut st = self.shared.lock();
        if let Some(ev) = st.events.pop_front() {
            return Ok(Some(ev));
        }
        match &st.failed {
            Some(e) => Err(e.clone()),
            None => Ok(None),
        }
    }

    fn is_open(&self) -> bool {
        self.shared.lock().open
    }

    async fn close(&self) -> Result<()> {
        let was_open = self.shared.lock().open;
        let failed = self.shared.lock().failed.is_some();
        let slots = self.close_state();
        if !was_open && slots.is_empty() {
            return Ok(());
        }
        let mut first_err = None;
        if !failed {
            for (_, slot) in slots {
                if let Err(e) = restore_slot(&self.shared, slot).await {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Err(e) = self.shared.store.close().await {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Give back what a closing channel holds: the answer of its fetch in flight and its
/// unacknowledged messages (Kombu's `restore_unacked_once`), after its settles are applied.
async fn restore_slot(shared: &Shared, slot: ChannelSlot) -> Result<()> {
    let mut back: Vec<Fetched> = Vec::new();
    if let Some(f) = slot.fetch {
        back.extend(f.await?.into_iter().filter(|m| !m.broadcast));
    }
    back.extend(slot.state.unacked.into_values().filter(|m| !m.broadcast));
    // The settles queued before the close go first; one that failed does not stop the
    // restore of the rest (its message comes back after the visibility timeout).
    let flushed = shared.store.flush().await;
    if back.is_empty() {
        return flushed;
    }
    tracing::info!("Restoring {} unacknowledged message(s)", back.len());
    shared.store.restore(&back).await.and(flushed)
}

/// A channel of a [`VirtualConnection`].
pub struct VirtualChannel {
    shared: Arc<Shared>,
    id: u32,
}

impl std::fmt::Debug for VirtualChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<VirtualChannel {}>", self.id)
    }
}

impl VirtualChannel {
    fn with<R>(&self, f: impl FnOnce(&mut ConnState) -> Result<R>) -> Result<R> {
        let mut st = self.shared.lock();
        st.channel(self.id)?;
        f(&mut st)
    }

    fn store(&self) -> &dyn Store {
        &*self.shared.store
    }

    fn not_found(&self, what: &str, name: &str) -> Error {
        Error::channel(ReplyCode::NotFound, format!("NOT_FOUND - no {what} '{name}' in vhost '{}'", self.shared.options.virtual_host))
    }

    /// Settle the messages `tag` stands for.
    fn settle(&self, tag: u64, multiple: bool, how: impl Fn() -> Settle) -> Result<()> {
        let taken = self.with(|st| {
            let ms = st.channel(self.id)?.take_unacked(tag, multiple)?;
            st.wake();
            Ok(ms)
        })?;
        let mut first_err = None;
        for m in taken.iter().filter(|m| !m.broadcast) {
            if let Err(e) = self.store().settle(m, how()) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The queues `exchange` routes a message with this key and these headers to.
    async fn route(&self, exchange: &str, routing_key: &str, headers: &Headers) -> Result<Vec<String>> {
        let kind = self.shared.lock().exchange_kind(exchange);
        let rows = self.store().bindings(exchange).await?;
        let route_kind = match kind {
            ExchangeType::Topic => RouteKind::Topic,
            ExchangeType::Fanout => RouteKind::Fanout,
            _ => RouteKind::Direct,
        };
        let mut router: Router<String> = Router::new(route_kind);
        let none = Headers::new();
        for row in rows {
            router.bind(&row.routing_key, &none, row.queue);
        }
        let mut out = Vec::new();
        router.route(routing_key, headers, &mut out);
        Ok(out)
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl RawChannel for VirtualChannel {
    fn channel_id(&self) -> u32 {
        self.id
    }

    fn is_open(&self) -> bool {
        let mut st = self.shared.lock();
        st.open && st.channel(self.id).is_ok()
    }

    async fn exchange_declare(&self, m: &ExchangeDeclare) -> Result<()> {
        let name = if m.exchange.is_empty() { format!("amq.{}", m.kind) } else { m.exchange.clone() };
        self.with(|st| {
            if m.passive {
                return match st.exchanges.contains_key(&name) {
                    true => Ok(()),
                    false => Err(self.not_found("exchange", &name)),
                };
            }
            if !matches!(m.kind, ExchangeType::Direct | ExchangeType::Topic | ExchangeType::Fanout) {
                return Err(Error::NotImplemented(format!(
                    "exchange type {:?} is not supported by virtual transports (direct, topic, fanout are)",
                    m.kind.as_str()
                )));
            }
            if let Some(prev) = st.exchanges.get(&name) {
                if prev.kind != m.kind || prev.durable != m.durable || prev.auto_delete != m.auto_delete || prev.arguments != m.arguments {
                    return Err(Error::channel(
                        ReplyCode::PreconditionFailed,
                        format!(
                            "PRECONDITION_FAILED - Cannot redeclare exchange '{name}' in vhost '{}' with different type, durable, autodelete or arguments value",
                            self.shared.options.virtual_host
                        ),
                    ));
                }
                return Ok(());
            }
            st.exchanges.insert(name.clone(), ExchangeDeclare { exchange: name, ..m.clone() });
            Ok(())
        })
    }

    async fn exchange_delete(&self, m: &ExchangeDelete) -> Result<()> {
        self.with(|_| Ok(()))?;
        // As Kombu: the bound queues go too, when they are empty.
        for row in self.store().bindings(&m.exchange).await? {
            let d = QueueDelete { queue: row.queue.clone(), if_unused: true, if_empty: true, nowait: false };
            self.queue_delete(&d).await?;
            self.store().unbind(&m.exchange, &row).await?;
        }
        self.shared.lock().exchanges.remove(&m.exchange);
        Ok(())
    }

    async fn exchange_bind(&self, _m: &ExchangeBind) -> Result<()> {
        Err(Error::NotImplemented("virtual transports do not support exchange_bind".into()))
    }

    async fn exchange_unbind(&self, _m: &ExchangeBind) -> Result<()> {
        Err(Error::NotImplemented("virtual transports do not support exchange_unbind".into()))
    }

    async fn queue_declare(&self, m: &QueueDeclare) -> Result<QueueDeclareOk> {
        self.with(|_| Ok(()))?;
        let mut m = m.clone();
        if m.queue.is_empty() {
            m.queue = format!("amq.gen-{}", crate::common::uuid());
        }
        if m.passive {
            if !self.store().has_queue(&m.queue).await? {
                return Err(self.not_found("queue", &m.queue));
            }
        } else {
            let expires = match m.arguments.get("x-expires") {
                None => None,
                Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                    Error::channel(ReplyCode::PreconditionFailed, format!("PRECONDITION_FAILED - invalid arg 'x-expires' for queue '{}': {v} is not a positive number of milliseconds", m.queue))
                })?),
            };
            self.store().new_queue(&m).await?;
            let mut st = self.shared.lock();
            match expires {
                Some(ms) => st.expires.insert(m.queue.clone(), ms),
                None => st.expires.remove(&m.queue),
            };
        }
        let message_count = self.store().size(&m.queue).await?;
        Ok(QueueDeclareOk { queue: m.queue, message_count, consumer_count: 0 })
    }

    async fn queue_bind(&self, m: &QueueBind) -> Result<()> {
        let exchange = if m.exchange.is_empty() { "amq.direct".to_owned() } else { m.exchange.clone() };
        let (row, expires, fanout) = self.with(|st| {
            let kind = st.exchange_kind(&exchange);
            let pattern = if kind == ExchangeType::Topic { topic_pattern(&m.routing_key) } else { String::new() };
            let row = BindingRow { routing_key: m.routing_key.clone(), pattern, queue: m.queue.clone() };
            Ok((row, st.expires.get(&m.queue).copied(), kind == ExchangeType::Fanout))
        })?;
        self.store().bind(&exchange, &row, expires).await?;
        let mut st = self.shared.lock();
        let known = st.bindings.entry(m.queue.clone()).or_default();
        if !known.iter().any(|(e, r)| *e == exchange && *r == row) {
            known.push((exchange.clone(), row));
        }
        if fanout {
            st.fanout_queues.insert(m.queue.clone(), (exchange, m.routing_key.replace('#', "*")));
        }
        Ok(())
    }

    async fn queue_unbind(&self, m: &QueueBind) -> Result<()> {
        let exchange = if m.exchange.is_empty() { "amq.direct".to_owned() } else { m.exchange.clone() };
        let row = self.with(|st| {
            let pattern = if st.exchange_kind(&exchange) == ExchangeType::Topic { topic_pattern(&m.routing_key) } else { String::new() };
            Ok(BindingRow { routing_key: m.routing_key.clone(), pattern, queue: m.queue.clone() })
        })?;
        self.store().unbind(&exchange, &row).await?;
        let mut st = self.shared.lock();
        if let Some(known) = st.bindings.get_mut(&m.queue) {
            known.retain(|(e, r)| !(*e == exchange && *r == row));
        }
        if st.fanout_queues.get(&m.queue).is_some_and(|(e, _)| *e == exchange) {
            st.fanout_queues.remove(&m.queue);
        }
        Ok(())
    }

    async fn queue_purge(&self, queue: &str) -> Result<u32> {
        self.with(|_| Ok(()))?;
        self.store().purge(queue).await
    }

    async fn queue_delete(&self, m: &QueueDelete) -> Result<u32> {
        self.with(|_| Ok(()))?;
        let size = self.store().size(&m.queue).await?;
        if m.if_empty && size > 0 {
            return Ok(0);
        }
        if m.if_unused && self.shared.lock().channels.values().any(|s| s.state.consumer_of(&m.queue).is_some()) {
            return Ok(0);
        }
        let rows = self.shared.lock().bindings.remove(&m.queue).unwrap_or_default();
        self.store().delete(&m.queue, &rows).await?;
        let mut st = self.shared.lock();
        st.fanout_queues.remove(&m.queue);
        st.expires.remove(&m.queue);
        // Its consumers are cancelled, as a broker does.
        let mut cancelled = Vec::new();
        for (id, slot) in st.channels.iter_mut() {
            let tags: Vec<Name> = slot.state.consumers.iter().filter(|c| *c.queue == *m.queue).map(|c| c.tag.clone()).collect();
            for tag in tags {
                slot.state.remove_consumer(&tag);
                cancelled.push(ServerEvent::Cancel { channel: *id, consumer_tag: tag });
            }
        }
        st.events.extend(cancelled);
        st.wake();
        Ok(size)
    }

    async fn basic_publish(&self, m: &BasicPublish, content: Arc<Content>) -> Result<()> {
        let kind = self.with(|st| Ok(st.exchange_kind(&m.exchange)))?;
        let envelope = Envelope::encode(&content, &m.exchange, &m.routing_key, &crate::common::uuid());
        let out = Outgoing { json: envelope.to_json().into(), priority: content.properties.priority.unwrap_or(0) };
        let delivered = if m.exchange.is_empty() {
            self.store().put(&[m.routing_key.as_str()], &out).await?;
            true
        } else if kind == ExchangeType::Fanout && self.store().supports_fanout() {
            self.store().put_fanout(&m.exchange, &m.routing_key, &out).await? != Some(0)
        } else {
            let queues = self.route(&m.exchange, &m.routing_key, &content.properties.headers).await?;
            if !queues.is_empty() {
                let qs: Vec<&str> = queues.iter().map(String::as_str).collect();
                self.store().put(&qs, &out).await?;
            }
            !queues.is_empty()
        };
        if !delivered && m.mandatory {
            let mut st = self.shared.lock();
            st.events.push_back(ServerEvent::Return {
                channel: self.id,
                returned: Returned {
                    reply_code: ReplyCode::NoRoute.code(),
                    reply_text: "NO_ROUTE".into(),
                    exchange: Name::from(m.exchange.as_str()),
                    routing_key: Name::from(m.routing_key.as_str()),
                    content,
                },
            });
            st.wake();
        }
        Ok(())
    }

    async fn basic_get(&self, queue: &str, no_ack: bool) -> Result<Option<GetOk>> {
        self.with(|_| Ok(()))?;
        let fetch = Fetch { queues: vec![Name::from(queue)], fanout: Vec::new(), max: 1, round_robin: false, wait: None };
        let got = self.store().fetch(&fetch).await?;
        let mut st = self.shared.lock();
        let mut result = None;
        for m in got {
            let Some((mut delivery, _)) = decode(self.store(), &m) else { continue };
            let ch = match st.channel(self.id) {
                Ok(ch) => ch,
                Err(e) => {
                    let _ = self.store().settle(&m, Settle::Requeue);
                    return Err(e);
                }
            };
            delivery.delivery_tag = ch.next_tag();
            if no_ack {
                self.store().settle(&m, Settle::Ack)?;
            } else {
                ch.unacked.insert(delivery.delivery_tag, m);
            }
            result = Some(GetOk { delivery, message_count: 0 });
        }
        Ok(result)
    }

    async fn basic_consume(&self, m: &BasicConsume) -> Result<String> {
        let tag = if m.consumer_tag.is_empty() { format!("amq.ctag-{}", crate::common::uuid()) } else { m.consumer_tag.clone() };
        let listen = self.with(|st| {
            st.channel(self.id)?;
            let fanout = st.fanout_queues.get(&m.queue).filter(|_| self.store().supports_fanout());
            Ok(fanout.map(|(exchange, rk)| FanoutListen { queue: Name::from(m.queue.as_str()), exchange: exchange.clone(), routing_key: rk.clone() }))
        })?;
        if let Some(l) = &listen {
            self.store().listen(l).await?;
        }
        self.with(|st| {
            st.channel(self.id)?.add_consumer(ConsumerEntry { tag: Name::from(tag.as_str()), queue: Name::from(m.queue.as_str()), no_ack: m.no_ack })?;
            st.wake();
            Ok(())
        })?;
        Ok(tag)
    }

    async fn basic_cancel(&self, consumer_tag: &str) -> Result<()> {
        self.with(|st| {
            st.channel(self.id)?.remove_consumer(consumer_tag);
            st.wake();
            Ok(())
        })
    }

    fn basic_ack(&self, delivery_tag: u64, multiple: bool) -> Result<()> {
        self.settle(delivery_tag, multiple, || Settle::Ack)
    }

    fn basic_reject(&self, delivery_tag: u64, requeue: bool) -> Result<()> {
        self.settle(delivery_tag, false, || if requeue { Settle::Requeue } else { Settle::Reject })
    }

    fn basic_nack(&self, delivery_tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        self.settle(delivery_tag, multiple, || if requeue { Settle::Requeue } else { Settle::Reject })
    }

    async fn basic_recover(&self, requeue: bool) -> Result<()> {
        if !requeue {
            return Err(Error::NotImplemented("virtual transports do not support basic_recover(requeue=False)".into()));
        }
        let back = self.with(|st| {
            let ch = st.channel(self.id)?;
            let back: Vec<Fetched> = std::mem::take(&mut ch.unacked).into_values().filter(|m| !m.broadcast).collect();
            st.wake();
            Ok(back)
        })?;
        self.store().flush().await?;
        if back.is_empty() {
            return Ok(());
        }
        self.store().restore(&back).await
    }

    async fn basic_qos(&self, qos: BasicQos) -> Result<()> {
        self.with(|st| {
            st.channel(self.id)?.prefetch = qos.prefetch_count;
            st.wake();
            Ok(())
        })
    }

    async fn flow(&self, _active: bool) -> Result<bool> {
        Err(Error::NotImplemented("virtual channels do not support flow".into()))
    }

    async fn confirm_select(&self) -> Result<()> {
        // Every publish is answered by the store before basic_publish returns.
        self.with(|_| Ok(()))
    }

    async fn close(&self) -> Result<()> {
        let slot = {
            let mut st = self.shared.lock();
            let slot = st.channels.remove(&self.id);
            st.wake();
            slot
        };
        match slot {
            Some(slot) if self.shared.lock().failed.is_none() => restore_slot(&self.shared, slot).await,
            _ => Ok(()),
        }
    }
}
