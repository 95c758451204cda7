//! The in-memory broker: RabbitMQ's AMQP 0-9-1 model as a sans-io state machine.
//!
//! [`Broker`] holds virtual hosts (exchanges, queues, bindings), connections and channels
//! (delivery tags, unacknowledged messages, consumers, prefetch windows) and pushes
//! [`ServerEvent`]s (deliveries, returns, cancellations) into per-connection outboxes. It has
//! no IO, no threads and no clock of its own: the caller passes the time in with
//! [`Broker::set_now`] (or lends a clock the broker reads only when an operation needs the
//! time, [`Broker::set_clock`]) and asks [`Broker::poll_timeout`] when it next needs to be
//! woken for message or queue expiry.
//!
//! Semantics follow RabbitMQ 3.x, which is what Kombu users run in production: channel
//! exceptions (`NotFound`, `PreconditionFailed`, `ResourceLocked`, `AccessRefused`) close the
//! channel and requeue its unacknowledged messages; per-queue and per-message TTL, queue
//! expiry, `x-max-length`/`x-max-length-bytes` with `drop-head`/`reject-publish` overflow,
//! `x-max-priority`, dead-lettering (`x-dead-letter-exchange`, `x-dead-letter-routing-key`,
//! with `x-death` headers), exclusive and auto-delete queues, auto-delete exchanges,
//! alternate exchanges, exchange-to-exchange bindings, consumer priorities (`x-priority`),
//! `basic.qos` per consumer or per channel, publisher confirms, and mandatory returns.
//!
//! The `memory://` transport wraps one `Broker` in a mutex and wakes connections that have
//! new events; the gateway uses the same broker as its embedded backend.

mod queue;

use std::collections::VecDeque;

use crate::namemap::SortedMap;
use crate::proto::methods::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use web_time::{Duration, Instant};

use crate::error::{Error, ReplyCode, Result};
use crate::routing::{RouteKind, Router};
use crate::proto::methods::{
    BasicConsume, BasicPublish, BasicQos, Content, Delivery, ExchangeBind, ExchangeDeclare,
    ExchangeDelete, ExchangeType, GetOk, Name, QueueBind, QueueDeclare, QueueDeclareOk,
    QueueDelete, Returned, ServerEvent,
};
use crate::value::{Headers, Value};

use queue::{QueuedMessage, Ready};

/// A connection handle issued by [`Broker::connect`].
pub type ConnId = u64;
/// A channel id, unique within its connection.
pub type ChannelId = u32;

/// The broker's notion of "now": a monotonic instant for expiry, and wall-clock milliseconds
/// for the `x-death` timestamps it writes.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time.
    pub instant: Instant,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
}

impl Now {
    /// Read the system clocks (the adapters call this; the broker never does).
    pub fn system() -> Self {
        let unix_ms = web_time::SystemTime::now()
            .duration_since(web_time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Now { instant: Instant::now(), unix_ms }
    }
}

/// The time operations see: set by [`Broker::set_now`], or read from the clock lent with
/// [`Broker::set_clock`] on first use after a [`Broker::tick`].
#[derive(Debug)]
struct Time {
    now: Now,
    stale: bool,
    clock: Option<fn() -> Now>,
}

impl Time {
    fn get(&mut self) -> Now {
        if self.stale {
            self.stale = false;
            if let Some(clock) = self.clock {
                self.now = clock();
            }
        }
        self.now
    }
}

/// Where a binding sends messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Dest {
    Queue(Name),
    Exchange(Name),
}

#[derive(Debug)]
struct ExchangeState {
    decl: ExchangeDeclare,
    router: Router<Dest>,
    alternate: Option<Name>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    DropHead,
    RejectPublish,
    RejectPublishDlx,
}

#[derive(Debug, Clone)]
struct ConsumerRef {
    conn: ConnId,
    channel: ChannelId,
    tag: Name,
    priority: i64,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
struct QueueCounters {
    published: u64,
    delivered: u64,
    acked: u64,
    rejected: u64,
    expired: u64,
    dead_lettered: u64,
    dropped: u64,
}

#[derive(Debug)]
struct QueueState {
    name: Name,
    durable: bool,
    auto_delete: bool,
    exclusive_owner: Option<ConnId>,
    arguments: Headers,
    ready: Ready,
    consumers: Vec<ConsumerRef>,
    exclusive_consumer: bool,
    rr: usize,
    had_consumer: bool,
    unacked: u64,
    message_ttl: Option<u64>,
    expires: Option<u64>,
    last_used: Instant,
    max_length: Option<usize>,
    max_length_bytes: Option<usize>,
    overflow: Overflow,
    dlx: Option<Name>,
    dlrk: Option<Name>,
    counters: QueueCounters,
}

#[derive(Debug, Default)]
struct VHost {
    exchanges: HashMap<Name, ExchangeState>,
    queues: HashMap<Name, QueueState>,
}

#[derive(Debug)]
struct Unacked {
    queue: Name,
    msg: QueuedMessage,
    consumer: Option<Name>,
}

/// A channel's unacknowledged deliveries in delivery-tag order. Tags only grow, so deliveries
/// are appended and acks (mostly of the oldest) found by binary search in a deque.
#[derive(Debug, Default)]
struct UnackedLog(VecDeque<(u64, Unacked)>);

impl UnackedLog {
    fn insert(&mut self, tag: u64, u: Unacked) {
        debug_assert!(self.0.back().is_none_or(|(last, _)| *last < tag), "delivery tags grow");
        self.0.push_back((tag, u));
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn remove(&mut self, tag: u64) -> Option<Unacked> {
        let i = self.0.binary_search_by_key(&tag, |(t, _)| *t).ok()?;
        self.0.remove(i).map(|(_, u)| u)
    }

    /// Take every delivery up to and including `tag`, oldest first.
    fn take_through(&mut self, tag: u64) -> Vec<Unacked> {
        let n = self.0.partition_point(|(t, _)| *t <= tag);
        self.0.drain(..n).map(|(_, u)| u).collect()
    }

    fn last_tag(&self) -> Option<u64> {
        self.0.back().map(|(t, _)| *t)
    }

    /// The deliveries, newest first.
    fn into_newest_first(self) -> impl Iterator<Item = Unacked> {
        self.0.into_iter().rev().map(|(_, u)| u)
    }
}

#[derive(Debug)]
struct ConsumerState {
    queue: Name,
    no_ack: bool,
    prefetch: u16,
    unacked: u32,
}

#[derive(Debug)]
struct ChannelState {
    next_tag: u64,
    unacked: UnackedLog,
    consumers: SortedMap<Name, ConsumerState>,
    global_prefetch: u16,
    consumer_prefetch: u16,
    flow_active: bool,
    confirm: bool,
    publish_seq: u64,
    last_routing_key: Option<Name>,
}

impl ChannelState {
    fn new() -> Self {
        ChannelState {
            next_tag: 1,
            unacked: UnackedLog::default(),
            consumers: SortedMap::default(),
            global_prefetch: 0,
            consumer_prefetch: 0,
            flow_active: true,
            confirm: false,
            publish_seq: 0,
            last_routing_key: None,
        }
    }

    fn can_deliver_to(&self, tag: &str) -> bool {
        if !self.flow_active {
            return false;
        }
        let Some(c) = self.consumers.get(tag) else { return false };
        if c.no_ack {
            return true;
        }
        (c.prefetch == 0 || c.unacked < u32::from(c.prefetch))
            && (self.global_prefetch == 0 || self.unacked.len() < usize::from(self.global_prefetch))
    }
}

#[derive(Debug)]
struct ConnState {
    vhost: Name,
    channels: SortedMap<ChannelId, ChannelState>,
    next_channel: ChannelId,
    events: VecDeque<ServerEvent>,
    notify: bool,
}

/// A snapshot of one queue, for UIs and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct QueueInfo {
    /// Queue name.
    pub name: String,
    /// Ready messages.
    pub messages_ready: u64,
    /// Delivered, not yet acknowledged.
    pub messages_unacknowledged: u64,
    /// Bytes of ready message bodies.
    pub bytes_ready: u64,
    /// Active consumers.
    pub consumers: u32,
    /// Durable flag.
    pub durable: bool,
    /// Auto-delete flag.
    pub auto_delete: bool,
    /// Exclusive to a connection.
    pub exclusive: bool,
    /// Declaration arguments.
    pub arguments: Headers,
    /// Messages routed to this queue since it was declared.
    pub published: u64,
    /// Messages delivered (consumers and gets).
    pub delivered: u64,
    /// Messages acknowledged.
    pub acked: u64,
    /// Messages rejected or nacked.
    pub rejected: u64,
    /// Messages that expired.
    pub expired: u64,
    /// Messages dead-lettered from this queue.
    pub dead_lettered: u64,
    /// Messages dropped (overflow, or rejected without a dead-letter exchange).
    pub dropped: u64,
}

/// A snapshot of one exchange, for UIs and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeInfo {
    /// Exchange name (empty: the default exchange).
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Durable flag.
    pub durable: bool,
    /// Auto-delete flag.
    pub auto_delete: bool,
    /// Internal flag.
    pub internal: bool,
    /// Declaration arguments.
    pub arguments: Headers,
}

/// A snapshot of one binding, for UIs and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct BindingInfo {
    /// Source exchange.
    pub source: String,
    /// Destination queue or exchange.
    pub destination: String,
    /// `"queue"` or `"exchange"`.
    pub destination_type: &'static str,
    /// Binding key.
    pub routing_key: String,
    /// Binding arguments.
    pub arguments: Headers,
}

/// A snapshot of a virtual host.
#[derive(Debug, Clone, Serialize)]
pub struct VHostSnapshot {
    /// Exchanges, sorted by name.
    pub exchanges: Vec<ExchangeInfo>,
    /// Queues, sorted by name.
    pub queues: Vec<QueueInfo>,
    /// Bindings, sorted by source, destination and key.
    pub bindings: Vec<BindingInfo>,
}

/// The in-memory AMQP 0-9-1 broker. See the module documentation.
#[derive(Debug)]
pub struct Broker {
    vhosts: SortedMap<Name, VHost>,
    connections: HashMap<ConnId, ConnState>,
    next_conn: ConnId,
    time: Time,
    woken: Vec<ConnId>,
    closed_outboxes: SortedMap<ConnId, VecDeque<ServerEvent>>,
    names: u64,
    /// Kept between publishes so that routing does not allocate.
    scratch: Scratch,
}

/// Reused buffers of `basic_publish`.
#[derive(Debug, Default)]
struct Scratch {
    dests: Vec<Dest>,
    queues: Vec<Name>,
}

impl Default for Broker {
    fn default() -> Self {
        Self::new()
    }
}

const DEFAULT_EXCHANGES: [(&str, ExchangeType); 6] = [
    ("", ExchangeType::Direct),
    ("amq.direct", ExchangeType::Direct),
    ("amq.fanout", ExchangeType::Fanout),
    ("amq.topic", ExchangeType::Topic),
    ("amq.headers", ExchangeType::Headers),
    ("amq.match", ExchangeType::Headers),
];

fn route_kind(t: &ExchangeType) -> Option<RouteKind> {
    match t {
        ExchangeType::Direct => Some(RouteKind::Direct),
        ExchangeType::Fanout => Some(RouteKind::Fanout),
        ExchangeType::Topic => Some(RouteKind::Topic),
        ExchangeType::Headers => Some(RouteKind::Headers),
        ExchangeType::Custom(_) => None,
    }
}

fn chan_err(code: ReplyCode, text: String) -> Error {
    Error::Channel { code, text }
}

fn not_found_queue(vhost: &str, q: &str) -> Error {
    chan_err(ReplyCode::NotFound, format!("NOT_FOUND - no queue '{q}' in vhost '{vhost}'"))
}

fn not_found_exchange(vhost: &str, x: &str) -> Error {
    chan_err(ReplyCode::NotFound, format!("NOT_FOUND - no exchange '{x}' in vhost '{vhost}'"))
}

fn locked(vhost: &str, q: &str) -> Error {
    chan_err(
        ReplyCode::ResourceLocked,
        format!(
            "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost \
             '{vhost}'. It could be originally declared on another connection or the exclusive \
             property value does not match that of the original declaration."
        ),
    )
}

fn inequivalent(what: &str, arg: &str, name: &str, vhost: &str, received: &str, current: &str) -> Error {
    chan_err(
        ReplyCode::PreconditionFailed,
        format!(
            "PRECONDITION_FAILED - inequivalent arg '{arg}' for {what} '{name}' in vhost '{vhost}': \
             received '{received}' but current is '{current}'"
        ),
    )
}

fn invalid_arg(arg: &str, name: &str, vhost: &str, why: &str) -> Error {
    chan_err(
        ReplyCode::PreconditionFailed,
        format!("PRECONDITION_FAILED - invalid arg '{arg}' for queue '{name}' in vhost '{vhost}': {why}"),
    )
}

fn arg_u64(args: &Headers, key: &str, q: &str, vhost: &str, positive: bool) -> Result<Option<u64>> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) if positive => Err(invalid_arg(key, q, vhost, "{value_zero,0}")),
            Some(v) => Ok(Some(v)),
            None => Err(invalid_arg(key, q, vhost, &format!("{{value_negative_or_not_integer,{n}}}"))),
        },
        Some(other) => Err(invalid_arg(key, q, vhost, &format!("{{unacceptable_type,{other}}}"))),
    }
}

fn arg_str(args: &Headers, key: &str, q: &str, vhost: &str) -> Result<Option<Name>> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(Name::from(s.as_str()))),
        Some(other) => Err(invalid_arg(key, q, vhost, &format!("{{unacceptable_type,{other}}}"))),
    }
}

/// Arguments RabbitMQ compares when a queue is re-declared.
const EQUIVALENCE_ARGS: [&str; 9] = [
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-queue-type",
];

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "none".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

impl Broker {
    /// An empty broker with the default virtual host `/` and its predeclared exchanges.
    pub fn new() -> Self {
        let mut b = Broker {
            vhosts: SortedMap::default(),
            connections: HashMap::default(),
            next_conn: 1,
            time: Time { now: Now::system(), stale: false, clock: None },
            woken: Vec::new(),
            closed_outboxes: SortedMap::default(),
            names: 0,
            scratch: Scratch::default(),
        };
        b.vhost_mut("/");
        b
    }

    fn vhost_mut(&mut self, name: &str) -> &mut VHost {
        if !self.vhosts.contains_key(name) {
            let mut v = VHost::default();
            for (x, t) in DEFAULT_EXCHANGES {
                let kind = route_kind(&t).expect("built-in exchange types route");
                v.exchanges.insert(
                    Name::from(x),
                    ExchangeState {
                        decl: ExchangeDeclare {
                            exchange: x.into(),
                            kind: t,
                            durable: true,
                            ..Default::default()
                        },
                        router: Router::new(kind),
                        alternate: None,
                    },
                );
            }
            self.vhosts.insert(Name::from(name), v);
        }
        self.vhosts.get_mut(name).expect("just inserted")
    }

    /// Set the current time. Call before each operation (the memory transport does); expiry
    /// happens lazily on operations and in [`Broker::handle_timeout`].
    pub fn set_now(&mut self, now: Now) {
        self.time.now = now;
        self.time.stale = false;
    }

    /// Read the time from `clock` instead, at most once per operation (after each
    /// [`Broker::tick`]) and only when the operation needs it: most publishes and acks do not.
    pub fn set_clock(&mut self, clock: fn() -> Now) {
        self.time.clock = Some(clock);
        self.time.stale = true;
    }

    /// Time has passed since the last operation: the next one that needs the time reads the
    /// clock given to [`Broker::set_clock`].
    pub fn tick(&mut self) {
        self.time.stale = true;
    }

    /// Open a connection to `vhost` (created on first use, as the memory broker has no users).
    pub fn connect(&mut self, vhost: &str) -> ConnId {
        let vhost = if vhost.is_empty() { "/" } else { vhost };
        self.vhost_mut(vhost);
        let id = self.next_conn;
        self.next_conn += 1;
        self.connections.insert(
            id,
            ConnState {
                vhost: Name::from(vhost),
                channels: SortedMap::default(),
                next_channel: 1,
                events: VecDeque::new(),
                notify: false,
            },
        );
        id
    }

    /// True while the connection is open.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.connections.contains_key(&conn)
    }

    /// Close a connection: its channels close (unacknowledged messages are requeued) and its
    /// exclusive queues are deleted.
    pub fn close_connection(&mut self, conn: ConnId) {
        let Some(c) = self.connections.get(&conn) else { return };
        let vhost = c.vhost.clone();
        let channels: Vec<ChannelId> = c.channels.keys().copied().collect();
        for ch in channels {
            self.drop_channel(conn, ch);
        }
        self.connections.remove(&conn);
        let exclusive: Vec<Name> = self
            .vhosts
            .get(&vhost)
            .map(|v| v.queues.values().filter(|q| q.exclusive_owner == Some(conn)).map(|q| q.name.clone()).collect())
            .unwrap_or_default();
        for q in exclusive {
            self.delete_queue(&vhost, &q);
        }
    }

    /// Close every connection with a `connection.close` event, as a broker restart would.
    /// Tests use it to exercise reconnection.
    pub fn force_close_all(&mut self, reason: &str) {
        let ids: Vec<ConnId> = self.connections.keys().copied().collect();
        for id in ids {
            self.force_close(id, Error::connection(ReplyCode::ConnectionForced, format!("CONNECTION_FORCED - {reason}")));
        }
    }

    fn force_close(&mut self, conn: ConnId, error: Error) {
        // Events queued so far are kept so the client can still read them before the close.
        let events = self.connections.get_mut(&conn).map(|c| std::mem::take(&mut c.events));
        self.close_connection(conn);
        let mut events = events.unwrap_or_default();
        events.push_back(ServerEvent::ConnectionClosed { error });
        self.closed_outboxes.insert(conn, events);
        self.woken.push(conn);
    }

    /// Open a channel on a connection.
    pub fn open_channel(&mut self, conn: ConnId) -> Result<ChannelId> {
        let c = self.conn_mut(conn)?;
        let id = c.next_channel;
        c.next_channel = c.next_channel.checked_add(1).ok_or_else(|| {
            Error::connection(ReplyCode::ResourceError, "RESOURCE_ERROR - channel ids exhausted")
        })?;
        c.channels.insert(id, ChannelState::new());
        Ok(id)
    }

    /// Close a channel: its consumers are cancelled and its unacknowledged messages requeued.
    pub fn close_channel(&mut self, conn: ConnId, ch: ChannelId) -> Result<()> {
        self.conn_mut(conn)?;
        self.drop_channel(conn, ch);
        Ok(())
    }

    /// True while the channel is open.
    pub fn is_channel_open(&self, conn: ConnId, ch: ChannelId) -> bool {
        self.connections.get(&conn).is_some_and(|c| c.channels.contains_key(&ch))
    }

    fn conn_mut(&mut self, conn: ConnId) -> Result<&mut ConnState> {
        self.connections.get_mut(&conn).ok_or_else(|| {
            Error::RecoverableConnection(format!("connection {conn} to the memory broker is closed"))
        })
    }

    fn check_channel(&self, conn: ConnId, ch: ChannelId) -> Result<Name> {
        let c = self.connections.get(&conn).ok_or_else(|| {
            Error::RecoverableConnection(format!("connection {conn} to the memory broker is closed"))
        })?;
        if !c.channels.contains_key(&ch) {
            return Err(chan_err(
                ReplyCode::ChannelError,
                format!("CHANNEL_ERROR - channel {ch} is closed"),
            ));
        }
        Ok(c.vhost.clone())
    }

    /// Run a channel method: a channel exception closes the channel, a connection exception
    /// the connection, as in AMQP.
    fn channel_op<T>(
        &mut self,
        conn: ConnId,
        ch: ChannelId,
        f: impl FnOnce(&mut Self, Name) -> Result<T>,
    ) -> Result<T> {
        let vhost = self.check_channel(conn, ch)?;
        let r = f(self, vhost);
        match &r {
            Err(Error::Channel { code, .. }) if *code != ReplyCode::ChannelError => {
                self.drop_channel(conn, ch);
            }
            Err(e @ Error::Connection { .. }) => {
                let e = e.clone();
                self.force_close(conn, e);
            }
            _ => {}
        }
        r
    }

    fn drop_channel(&mut self, conn: ConnId, ch: ChannelId) {
        let Some(c) = self.connections.get_mut(&conn) else { return };
        let vhost = c.vhost.clone();
        let Some(state) = c.channels.remove(&ch) else { return };
        let mut touched: HashSet<Name> = HashSet::default();
        let Some(v) = self.vhosts.get_mut(&vhost) else { return };
        // Requeue unacknowledged messages, oldest at the head.
        for u in state.unacked.into_newest_first() {
            if let Some(q) = v.queues.get_mut(&u.queue) {
                q.unacked = q.unacked.saturating_sub(1);
                let mut m = u.msg;
                m.redelivered = true;
                q.ready.push_front(m);
                touched.insert(u.queue);
            }
        }
        let mut auto_delete = Vec::new();
        for (tag, cs) in state.consumers {
            if let Some(q) = v.queues.get_mut(&cs.queue) {
                q.consumers.retain(|r| !(r.conn == conn && r.channel == ch && r.tag == tag));
                q.last_used = self.time.get().instant;
                if q.auto_delete && q.had_consumer && q.consumers.is_empty() {
                    auto_delete.push(cs.queue.clone());
                }
                touched.insert(cs.queue);
            }
        }
        for q in auto_delete {
            touched.remove(&q);
            self.delete_queue(&vhost, &q);
        }
        for q in touched {
            self.dispatch(&vhost, &q);
        }
    }

    // ----- exchanges -------------------------------------------------------------------

    /// `exchange.declare`.
    pub fn exchange_declare(&mut self, conn: ConnId, ch: ChannelId, d: &ExchangeDeclare) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            let name = d.exchange.as_str();
            if let Some(x) = v.exchanges.get(name) {
                if d.passive {
                    return Ok(());
                }
                if name.is_empty() || name.starts_with("amq.") {
                    return Err(chan_err(
                        ReplyCode::AccessRefused,
                        format!("ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'"),
                    ));
                }
                let cur = &x.decl;
                if cur.kind != d.kind {
                    return Err(inequivalent("exchange", "type", name, &vhost, d.kind.as_str(), cur.kind.as_str()));
                }
                if cur.durable != d.durable {
                    return Err(inequivalent("exchange", "durable", name, &vhost, &d.durable.to_string(), &cur.durable.to_string()));
                }
                if cur.auto_delete != d.auto_delete {
                    return Err(inequivalent("exchange", "auto_delete", name, &vhost, &d.auto_delete.to_string(), &cur.auto_delete.to_string()));
                }
                if cur.internal != d.internal {
                    return Err(inequivalent("exchange", "internal", name, &vhost, &d.internal.to_string(), &cur.internal.to_string()));
                }
                return Ok(());
            }
            if d.passive {
                return Err(not_found_exchange(&vhost, name));
            }
            if name.is_empty() || name.starts_with("amq.") {
                return Err(chan_err(
                    ReplyCode::AccessRefused,
                    format!("ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'"),
                ));
            }
            let Some(kind) = route_kind(&d.kind) else {
                return Err(Error::connection(
                    ReplyCode::CommandInvalid,
                    format!(
                        "COMMAND_INVALID - unknown exchange type '{}' (the memory broker has direct, fanout, topic and headers)",
                        d.kind
                    ),
                ));
            };
            let alternate = match d.arguments.get("alternate-exchange") {
                Some(Value::String(s)) => Some(Name::from(s.as_str())),
                _ => None,
            };
            v.exchanges.insert(
                Name::from(name),
                ExchangeState {
                    decl: ExchangeDeclare { passive: false, nowait: false, ..d.clone() },
                    router: Router::new(kind),
                    alternate,
                },
            );
            Ok(())
        })
    }

    /// `exchange.delete`. Deleting an exchange that does not exist succeeds, as in RabbitMQ 3.
    pub fn exchange_delete(&mut self, conn: ConnId, ch: ChannelId, d: &ExchangeDelete) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            let name = d.exchange.as_str();
            if name.is_empty() || name.starts_with("amq.") {
                return Err(chan_err(
                    ReplyCode::AccessRefused,
                    format!("ACCESS_REFUSED - operation not permitted on exchange '{name}'"),
                ));
            }
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            let Some(x) = v.exchanges.get(name) else { return Ok(()) };
            let as_dest = Dest::Exchange(Name::from(name));
            let in_use = !x.router.is_empty() || v.exchanges.values().any(|o| o.router.has_destination(&as_dest));
            if d.if_unused && in_use {
                return Err(chan_err(
                    ReplyCode::PreconditionFailed,
                    format!("PRECONDITION_FAILED - exchange '{name}' in vhost '{vhost}' in use"),
                ));
            }
            b.delete_exchange(&vhost, name);
            Ok(())
        })
    }

    fn delete_exchange(&mut self, vhost: &str, name: &str) {
        let Some(v) = self.vhosts.get_mut(vhost) else { return };
        if v.exchanges.remove(name).is_none() {
            return;
        }
        let dest = Dest::Exchange(Name::from(name));
        let mut emptied = Vec::new();
        for (xn, x) in v.exchanges.iter_mut() {
            if x.router.unbind_destination(&dest) > 0 && x.decl.auto_delete && x.router.is_empty() {
                emptied.push(xn.clone());
            }
        }
        for x in emptied {
            self.delete_exchange(vhost, &x);
        }
    }

    /// `exchange.bind`: route messages from `source` to `destination` too.
    pub fn exchange_bind(&mut self, conn: ConnId, ch: ChannelId, d: &ExchangeBind) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            if d.source.is_empty() || d.destination.is_empty() {
                return Err(chan_err(
                    ReplyCode::AccessRefused,
                    "ACCESS_REFUSED - operation not permitted on the default exchange".into(),
                ));
            }
            if !v.exchanges.contains_key(d.destination.as_str()) {
                return Err(not_found_exchange(&vhost, &d.destination));
            }
            let x = v.exchanges.get_mut(d.source.as_str()).ok_or_else(|| not_found_exchange(&vhost, &d.source))?;
            x.router.bind(&d.routing_key, &d.arguments, Dest::Exchange(Name::from(d.destination.as_str())));
            Ok(())
        })
    }

    /// `exchange.unbind`.
    pub fn exchange_unbind(&mut self, conn: ConnId, ch: ChannelId, d: &ExchangeBind) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            if d.source.is_empty() || d.destination.is_empty() {
                return Err(chan_err(
                    ReplyCode::AccessRefused,
                    "ACCESS_REFUSED - operation not permitted on the default exchange".into(),
                ));
            }
            if !v.exchanges.contains_key(d.destination.as_str()) {
                return Err(not_found_exchange(&vhost, &d.destination));
            }
            let x = v.exchanges.get_mut(d.source.as_str()).ok_or_else(|| not_found_exchange(&vhost, &d.source))?;
            let dest = Dest::Exchange(Name::from(d.destination.as_str()));
            if x.router.unbind(&d.routing_key, &d.arguments, &dest) && x.decl.auto_delete && x.router.is_empty() {
                let name = d.source.clone();
                b.delete_exchange(&vhost, &name);
            }
            Ok(())
        })
    }

    // ----- queues ----------------------------------------------------------------------

    fn next_name(&mut self, prefix: &str) -> String {
        self.names += 1;
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        let mut s = String::with_capacity(prefix.len() + 22);
        s.push_str(prefix);
        let mut x = self.names.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ fastrand::u64(..);
        for _ in 0..22 {
            s.push(ALPHABET[(x & 63) as usize] as char);
            x = x.rotate_right(6) ^ fastrand::u64(..);
        }
        s
    }

    fn check_exclusive(q: &QueueState, conn: ConnId, vhost: &str) -> Result<()> {
        match q.exclusive_owner {
            Some(owner) if owner != conn => Err(locked(vhost, &q.name)),
            _ => Ok(()),
        }
    }

    /// `queue.declare`. An empty name gets a server-generated `amq.gen-...` name.
    pub fn queue_declare(&mut self, conn: ConnId, ch: ChannelId, d: &QueueDeclare) -> Result<QueueDeclareOk> {
        self.channel_op(conn, ch, |b, vhost| {
            let now = b.time.get().instant;
            let name: Name = if d.queue.is_empty() && !d.passive {
                Name::from(b.next_name("amq.gen-"))
            } else {
                Name::from(d.queue.as_str())
            };
            b.expire_queue(&vhost, &name);
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            if let Some(q) = v.queues.get_mut(&name) {
                Self::check_exclusive(q, conn, &vhost)?;
                if !d.passive {
                    if q.durable != d.durable {
                        return Err(inequivalent("queue", "durable", &name, &vhost, &d.durable.to_string(), &q.durable.to_string()));
                    }
                    if q.exclusive_owner.is_some() != d.exclusive {
                        return Err(locked(&vhost, &name));
                    }
                    if q.auto_delete != d.auto_delete {
                        return Err(inequivalent("queue", "auto_delete", &name, &vhost, &d.auto_delete.to_string(), &q.auto_delete.to_string()));
                    }
                    for arg in EQUIVALENCE_ARGS {
                        let (new, cur) = (d.arguments.get(arg), q.arguments.get(arg));
                        let same = match (new, cur) {
                            (None | Some(Value::Null), None | Some(Value::Null)) => true,
                            (Some(a), Some(b)) => a == b || (a.as_f64().is_some() && a.as_f64() == b.as_f64()),
                            _ => false,
                        };
                        if !same {
                            return Err(inequivalent("queue", arg, &name, &vhost, &show(new), &show(cur)));
                        }
                    }
                }
                q.last_used = now;
                return Ok(QueueDeclareOk {
                    queue: name.to_string(),
                    message_count: q.ready.len() as u32,
                    consumer_count: q.consumers.len() as u32,
                });
            }
            if d.passive {
                return Err(not_found_queue(&vhost, &name));
            }
            if name.starts_with("amq.") && !d.queue.is_empty() {
                return Err(chan_err(
                    ReplyCode::AccessRefused,
                    format!("ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'"),
                ));
            }
            let args = &d.arguments;
            let message_ttl = arg_u64(args, "x-message-ttl", &name, &vhost, false)?;
            let expires = arg_u64(args, "x-expires", &name, &vhost, true)?;
            let max_length = arg_u64(args, "x-max-length", &name, &vhost, false)?.map(|v| v as usize);
            let max_length_bytes = arg_u64(args, "x-max-length-bytes", &name, &vhost, false)?.map(|v| v as usize);
            let max_priority = match arg_u64(args, "x-max-priority", &name, &vhost, false)? {
                Some(p) if p > 255 => {
                    return Err(invalid_arg("x-max-priority", &name, &vhost, &format!("{{value_out_of_range,{p}}}")))
                }
                Some(p) => p as u8,
                None => 0,
            };
            let overflow = match arg_str(args, "x-overflow", &name, &vhost)?.as_deref() {
                None | Some("drop-head") => Overflow::DropHead,
                Some("reject-publish") => Overflow::RejectPublish,
                Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                Some(other) => {
                    return Err(invalid_arg("x-overflow", &name, &vhost, &format!("{{unknown_overflow_type,{other}}}")))
                }
            };
            let dlx = arg_str(args, "x-dead-letter-exchange", &name, &vhost)?;
            let dlrk = arg_str(args, "x-dead-letter-routing-key", &name, &vhost)?;
            if dlrk.is_some() && dlx.is_none() {
                return Err(invalid_arg(
                    "x-dead-letter-routing-key",
                    &name,
                    &vhost,
                    "Key x-dead-letter-exchange should be present",
                ));
            }
            v.queues.insert(
                name.clone(),
                QueueState {
                    name: name.clone(),
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    exclusive_owner: d.exclusive.then_some(conn),
                    arguments: d.arguments.clone(),
                    ready: Ready::new(max_priority),
                    consumers: Vec::new(),
                    exclusive_consumer: false,
                    rr: 0,
                    had_consumer: false,
                    unacked: 0,
                    message_ttl,
                    expires,
                    last_used: now,
                    max_length,
                    max_length_bytes,
                    overflow,
                    dlx,
                    dlrk,
                    counters: QueueCounters::default(),
                },
            );
            Ok(QueueDeclareOk { queue: name.to_string(), message_count: 0, consumer_count: 0 })
        })
    }

    fn queue_for_op<'a>(v: &'a mut VHost, vhost: &str, name: &str, conn: ConnId) -> Result<&'a mut QueueState> {
        let q = v.queues.get_mut(name).ok_or_else(|| not_found_queue(vhost, name))?;
        Self::check_exclusive(q, conn, vhost)?;
        Ok(q)
    }

    /// `queue.bind`.
    pub fn queue_bind(&mut self, conn: ConnId, ch: ChannelId, d: &QueueBind) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            b.expire_queue(&vhost, &d.queue);
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            Self::queue_for_op(v, &vhost, &d.queue, conn)?;
            if d.exchange.is_empty() {
                return Err(chan_err(
                    ReplyCode::AccessRefused,
                    "ACCESS_REFUSED - operation not permitted on the default exchange".to_string(),
                ));
            }
            let x = v.exchanges.get_mut(d.exchange.as_str()).ok_or_else(|| not_found_exchange(&vhost, &d.exchange))?;
            x.router.bind(&d.routing_key, &d.arguments, Dest::Queue(Name::from(d.queue.as_str())));
            Ok(())
        })
    }

    /// `queue.unbind`. Removing a binding that does not exist succeeds.
    pub fn queue_unbind(&mut self, conn: ConnId, ch: ChannelId, d: &QueueBind) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            Self::queue_for_op(v, &vhost, &d.queue, conn)?;
            if d.exchange.is_empty() {
                return Err(chan_err(
                    ReplyCode::AccessRefused,
                    "ACCESS_REFUSED - operation not permitted on the default exchange".into(),
                ));
            }
            let x = v.exchanges.get_mut(d.exchange.as_str()).ok_or_else(|| not_found_exchange(&vhost, &d.exchange))?;
            let dest = Dest::Queue(Name::from(d.queue.as_str()));
            if x.router.unbind(&d.routing_key, &d.arguments, &dest) && x.decl.auto_delete && x.router.is_empty() {
                let name = d.exchange.clone();
                b.delete_exchange(&vhost, &name);
            }
            Ok(())
        })
    }

    /// `queue.purge`: remove the ready messages; returns how many.
    pub fn queue_purge(&mut self, conn: ConnId, ch: ChannelId, queue: &str) -> Result<u32> {
        self.channel_op(conn, ch, |b, vhost| {
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            let q = Self::queue_for_op(v, &vhost, queue, conn)?;
            Ok(q.ready.clear() as u32)
        })
    }

    /// `queue.delete`: returns the number of ready messages deleted with it. Deleting a queue
    /// that does not exist succeeds with 0.
    pub fn queue_delete(&mut self, conn: ConnId, ch: ChannelId, d: &QueueDelete) -> Result<u32> {
        self.channel_op(conn, ch, |b, vhost| {
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            let Some(q) = v.queues.get(d.queue.as_str()) else { return Ok(0) };
            Self::check_exclusive(q, conn, &vhost)?;
            if d.if_unused && !q.consumers.is_empty() {
                return Err(chan_err(
                    ReplyCode::PreconditionFailed,
                    format!("PRECONDITION_FAILED - queue '{}' in vhost '{vhost}' in use", d.queue),
                ));
            }
            if d.if_empty && !q.ready.is_empty() {
                return Err(chan_err(
                    ReplyCode::PreconditionFailed,
                    format!("PRECONDITION_FAILED - queue '{}' in vhost '{vhost}' not empty", d.queue),
                ));
            }
            let n = q.ready.len() as u32;
            b.delete_queue(&vhost, &d.queue);
            Ok(n)
        })
    }

    fn delete_queue(&mut self, vhost: &str, name: &str) {
        let Some(v) = self.vhosts.get_mut(vhost) else { return };
        let Some(q) = v.queues.remove(name) else { return };
        let dest = Dest::Queue(q.name.clone());
        let mut emptied = Vec::new();
        for (xn, x) in v.exchanges.iter_mut() {
            if x.router.unbind_destination(&dest) > 0 && x.decl.auto_delete && x.router.is_empty() {
                emptied.push(xn.clone());
            }
        }
        for x in emptied {
            self.delete_exchange(vhost, &x);
        }
        // Consumers of a deleted queue are cancelled by the broker (basic.cancel), and the
        // queue's unacknowledged messages are gone with it.
        for c in q.consumers {
            if let Some(conn) = self.connections.get_mut(&c.conn) {
                if let Some(chs) = conn.channels.get_mut(&c.channel) {
                    chs.consumers.remove(&c.tag);
                }
                conn.events.push_back(ServerEvent::Cancel { channel: c.channel, consumer_tag: c.tag });
                if !conn.notify {
                    conn.notify = true;
                    self.woken.push(c.conn);
                }
            }
        }
        // Unacknowledged messages of the queue stay tracked by their channels, so that the
        // client's later ack or reject of them is still valid (and a no-op).
    }

    /// Delete a queue whose `x-expires` has passed.
    fn expire_queue(&mut self, vhost: &str, name: &str) {
        let time = &mut self.time;
        let expired = self.vhosts.get(vhost).and_then(|v| v.queues.get(name)).is_some_and(|q| {
            q.consumers.is_empty()
                && q.expires.is_some_and(|ms| q.last_used + Duration::from_millis(ms) <= time.get().instant)
        });
        if expired {
            self.delete_queue(vhost, name);
        }
    }

    // ----- publishing and routing ------------------------------------------------------

    fn route(v: &VHost, exchange: &str, routing_key: &str, headers: &Headers, dests: &mut Vec<Dest>, out: &mut Vec<Name>) {
        if exchange.is_empty() {
            if let Some((q, _)) = v.queues.get_key_value(routing_key) {
                out.push(q.clone());
            }
            return;
        }
        let Some((xn, x)) = v.exchanges.get_key_value(exchange) else { return };
        dests.clear();
        x.router.route(routing_key, headers, dests);
        // The common case, one exchange routing straight to a few queues, without the sets
        // the general walk needs (exchange-to-exchange bindings, alternate exchanges).
        if dests.len() <= 8 && dests.iter().all(|d| matches!(d, Dest::Queue(_))) {
            let start = out.len();
            for d in dests.drain(..) {
                if let Dest::Queue(q) = d {
                    if v.queues.contains_key(&q) && !out[start..].contains(&q) {
                        out.push(q);
                    }
                }
            }
            if out.len() > start || x.alternate.is_none() {
                return;
            }
        }
        // The general walk, from `exchange`'s destinations (still in `dests`, or consumed
        // above when they led nowhere, leaving its alternate exchange).
        let mut seen_x: HashSet<Name> = HashSet::default();
        seen_x.insert(xn.clone());
        let mut todo: Vec<Name> = Vec::new();
        let mut queues: HashSet<Name> = out.iter().cloned().collect();
        let mut x = x;
        loop {
            let before = queues.len() + todo.len();
            for d in dests.drain(..) {
                match d {
                    Dest::Queue(q) => {
                        if v.queues.contains_key(&q) && queues.insert(q.clone()) {
                            out.push(q);
                        }
                    }
                    Dest::Exchange(e) => todo.push(e),
                }
            }
            // Alternate exchange: only when this exchange routed nowhere.
            if queues.len() + todo.len() == before {
                if let Some(ae) = &x.alternate {
                    todo.push(ae.clone());
                }
            }
            x = loop {
                let Some(xn) = todo.pop() else { return };
                if !seen_x.insert(xn.clone()) {
                    continue;
                }
                if let Some(next) = v.exchanges.get(&xn) {
                    break next;
                }
            };
            x.router.route(routing_key, headers, dests);
        }
    }

    /// `basic.publish`. The message is routed and enqueued (or returned when mandatory and
    /// unroutable). Publishing to a missing exchange is a `NotFound` channel exception.
    pub fn basic_publish(&mut self, conn: ConnId, ch: ChannelId, p: &BasicPublish, content: Arc<Content>) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            if p.immediate {
                return Err(Error::connection(
                    ReplyCode::NotImplemented,
                    "NOT_IMPLEMENTED - immediate=true".to_string(),
                ));
            }
            let v = b.vhosts.get(&vhost).expect("connection vhost exists");
            let (xname, x) =
                v.exchanges.get_key_value(p.exchange.as_str()).ok_or_else(|| not_found_exchange(&vhost, &p.exchange))?;
            if x.decl.internal {
                return Err(chan_err(
                    ReplyCode::AccessRefused,
                    format!("ACCESS_REFUSED - cannot publish to internal exchange '{}' in vhost '{vhost}'", p.exchange),
                ));
            }
            let mut queues = std::mem::take(&mut b.scratch.queues);
            Self::route(v, &p.exchange, &p.routing_key, &content.properties.headers, &mut b.scratch.dests, &mut queues);
            let exchange = xname.clone();
            let chs = b.connections.get_mut(&conn).and_then(|c| c.channels.get_mut(&ch)).expect("checked");
            // Messages published with the same key share one copy of it.
            let routing_key = match &chs.last_routing_key {
                Some(k) if **k == *p.routing_key => k.clone(),
                _ => {
                    let k = Name::from(p.routing_key.as_str());
                    chs.last_routing_key = Some(k.clone());
                    k
                }
            };
            let confirm = {
                chs.confirm.then(|| {
                    chs.publish_seq += 1;
                    chs.publish_seq
                })
            };
            if queues.is_empty() && p.mandatory {
                b.push_event(
                    conn,
                    ServerEvent::Return {
                        channel: ch,
                        returned: Returned {
                            reply_code: 312,
                            reply_text: "NO_ROUTE".into(),
                            exchange: exchange.clone(),
                            routing_key: routing_key.clone(),
                            content: content.clone(),
                        },
                    },
                );
            }
            let mut accepted = true;
            for q in queues.drain(..) {
                accepted &= b.enqueue(&vhost, &q, &content, &exchange, &routing_key);
            }
            b.scratch.queues = queues;
            if let Some(seq) = confirm {
                let ev = if accepted {
                    ServerEvent::Ack { channel: ch, delivery_tag: seq, multiple: false }
                } else {
                    ServerEvent::Nack { channel: ch, delivery_tag: seq, multiple: false }
                };
                b.push_event(conn, ev);
            }
            Ok(())
        })
    }

    /// Put a routed message into a queue; false when `reject-publish` overflow refused it.
    fn enqueue(&mut self, vhost: &str, qname: &Name, content: &Arc<Content>, exchange: &Name, routing_key: &Name) -> bool {
        let Some(q) = self.vhosts.get_mut(vhost).and_then(|v| v.queues.get_mut(qname)) else { return true };
        let msg_ttl = content.properties.expiration_ms();
        let ttl = match (q.message_ttl, msg_ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let max_p = q.ready.max_priority();
        let msg = QueuedMessage {
            content: content.clone(),
            exchange: exchange.clone(),
            routing_key: routing_key.clone(),
            redelivered: false,
            expires_at: ttl.map(|ms| self.time.get().instant + Duration::from_millis(ms)),
            priority: content.properties.priority.unwrap_or(0).min(max_p),
        };
        let full = |q: &QueueState, extra: usize| {
            q.max_length.is_some_and(|m| q.ready.len() + 1 > m)
                || q.max_length_bytes.is_some_and(|m| q.ready.bytes() + extra > m)
        };
        if q.overflow != Overflow::DropHead && full(q, msg.size()) {
            q.counters.dropped += 1;
            let dead = (q.overflow == Overflow::RejectPublishDlx).then_some(msg);
            if let Some(m) = dead {
                let qn = q.name.clone();
                self.dead_letter(vhost, &qn, vec![m], "maxlen");
            }
            return false;
        }
        q.counters.published += 1;
        q.ready.push_back(msg);
        let mut dropped = Vec::new();
        while q.max_length.is_some_and(|m| q.ready.len() > m)
            || q.max_length_bytes.is_some_and(|m| q.ready.bytes() > m)
        {
            match q.ready.pop_oldest() {
                Some(m) => dropped.push(m),
                None => break,
            }
        }
        if !dropped.is_empty() {
            let qn = q.name.clone();
            self.dead_letter(vhost, &qn, dropped, "maxlen");
        }
        self.dispatch(vhost, qname);
        true
    }

    /// Dead-letter `msgs` from queue `qname` for `reason` (`rejected`, `expired`, `maxlen`), or
    /// drop them when the queue has no dead-letter exchange.
    fn dead_letter(&mut self, vhost: &str, qname: &Name, msgs: Vec<QueuedMessage>, reason: &str) {
        let Some(q) = self.vhosts.get_mut(vhost).and_then(|v| v.queues.get_mut(qname)) else { return };
        match reason {
            "expired" => q.counters.expired += msgs.len() as u64,
            "rejected" => {}
            _ => q.counters.dropped += msgs.len() as u64,
        }
        let Some(dlx) = q.dlx.clone() else { return };
        q.counters.dead_lettered += msgs.len() as u64;
        let dlrk = q.dlrk.clone();
        let unix_secs = self.time.get().unix_ms / 1000;
        for m in msgs {
            let mut props = m.content.properties.clone();
            let original_expiration = if reason == "expired" { props.expiration.take() } else { None };
            let mut deaths: Vec<Value> = match props.headers.get("x-death") {
                Some(Value::Array(a)) => a.clone(),
                _ => Vec::new(),
            };
            // A message that cycles back to a queue it already died in, with no rejection on
            // the way, is dropped (RabbitMQ's cycle detection).
            let cycled = deaths.iter().any(|d| {
                d.get("queue").and_then(Value::as_str) == Some(qname) && d.get("reason").and_then(Value::as_str) == Some(reason)
            }) && reason != "rejected"
                && !deaths.iter().any(|d| d.get("reason").and_then(Value::as_str) == Some("rejected"));
            if cycled {
                continue;
            }
            let existing = deaths.iter().position(|d| {
                d.get("queue").and_then(Value::as_str) == Some(qname) && d.get("reason").and_then(Value::as_str) == Some(reason)
            });
            let mut entry = match existing {
                Some(i) => match deaths.remove(i) {
                    Value::Object(o) => o,
                    _ => Headers::new(),
                },
                None => Headers::new(),
            };
            let count = entry.get("count").and_then(Value::as_u64).unwrap_or(0) + 1;
            entry.insert("count".into(), count.into());
            entry.insert("reason".into(), reason.into());
            entry.insert("queue".into(), Value::String(qname.to_string()));
            entry.insert("time".into(), unix_secs.into());
            entry.insert("exchange".into(), Value::String(m.exchange.to_string()));
            entry.insert("routing-keys".into(), Value::Array(vec![Value::String(m.routing_key.to_string())]));
            if let Some(e) = original_expiration {
                entry.insert("original-expiration".into(), Value::String(e));
            }
            deaths.insert(0, Value::Object(entry));
            if !props.headers.contains_key("x-first-death-queue") {
                props.headers.insert("x-first-death-exchange".into(), Value::String(m.exchange.to_string()));
                props.headers.insert("x-first-death-queue".into(), Value::String(qname.to_string()));
                props.headers.insert("x-first-death-reason".into(), reason.into());
            }
            props.headers.insert("x-death".into(), Value::Array(deaths));
            let content = Arc::new(Content { properties: props, body: m.content.body.clone() });
            let rk: Name = dlrk.clone().unwrap_or_else(|| m.routing_key.clone());
            let mut queues = Vec::new();
            if let Some(v) = self.vhosts.get(vhost) {
                if !v.exchanges.contains_key(&dlx) {
                    continue;
                }
                Self::route(v, &dlx, &rk, &content.properties.headers, &mut Vec::new(), &mut queues);
            }
            for dq in queues {
                self.enqueue(vhost, &dq, &content, &dlx, &rk);
            }
        }
    }

    // ----- delivery --------------------------------------------------------------------

    fn push_event(&mut self, conn: ConnId, ev: ServerEvent) {
        if let Some(c) = self.connections.get_mut(&conn) {
            c.events.push_back(ev);
            if !c.notify {
                c.notify = true;
                self.woken.push(conn);
            }
        }
    }

    /// Deliver ready messages of a queue to its consumers while they have credit.
    fn dispatch(&mut self, vhost: &str, qname: &str) {
        let Some(v) = self.vhosts.get_mut(vhost) else { return };
        let Some(q) = v.queues.get_mut(qname) else { return };
        let mut expired = Vec::new();
        if q.ready.next_expiry().is_some() {
            q.ready.pop_expired(self.time.get().instant, &mut expired);
        }
        while !q.ready.is_empty() && !q.consumers.is_empty() {
            let n = q.consumers.len();
            let mut best: Option<(usize, i64)> = None;
            for i in 0..n {
                let idx = (q.rr + i) % n;
                let c = &q.consumers[idx];
                if best.is_some_and(|(_, p)| c.priority <= p) {
                    continue;
                }
                let ok = self
                    .connections
                    .get(&c.conn)
                    .and_then(|cs| cs.channels.get(&c.channel))
                    .is_some_and(|chs| chs.can_deliver_to(&c.tag));
                if ok {
                    best = Some((idx, c.priority));
                }
            }
            let Some((idx, _)) = best else { break };
            q.rr = idx + 1;
            let Some(msg) = q.ready.pop_front() else { break };
            if msg.expires_at.is_some() && msg.is_expired(self.time.get().instant) {
                expired.push(msg);
                continue;
            }
            let c = q.consumers[idx].clone();
            let Some(conn) = self.connections.get_mut(&c.conn) else { break };
            let Some(chs) = conn.channels.get_mut(&c.channel) else { break };
            let tag = chs.next_tag;
            chs.next_tag += 1;
            let no_ack = chs.consumers.get(&c.tag).is_none_or(|cs| cs.no_ack);
            let delivery = Delivery {
                delivery_tag: tag,
                redelivered: msg.redelivered,
                exchange: msg.exchange.clone(),
                routing_key: msg.routing_key.clone(),
                content: msg.content.clone(),
            };
            q.counters.delivered += 1;
            if !no_ack {
                if let Some(cs) = chs.consumers.get_mut(&c.tag) {
                    cs.unacked += 1;
                }
                q.unacked += 1;
                chs.unacked.insert(tag, Unacked { queue: q.name.clone(), msg, consumer: Some(c.tag.clone()) });
            } else {
                q.counters.acked += 1;
            }
            conn.events.push_back(ServerEvent::Deliver { channel: c.channel, consumer_tag: c.tag, delivery });
            if !conn.notify {
                conn.notify = true;
                self.woken.push(c.conn);
            }
        }
        if !expired.is_empty() {
            let qn = q.name.clone();
            self.dead_letter(vhost, &qn, expired, "expired");
        }
    }

    /// `basic.get`: take one message, or `None` when the queue is empty.
    pub fn basic_get(&mut self, conn: ConnId, ch: ChannelId, queue: &str, no_ack: bool) -> Result<Option<GetOk>> {
        self.channel_op(conn, ch, |b, vhost| {
            let now = b.time.get().instant;
            b.expire_queue(&vhost, queue);
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            let q = Self::queue_for_op(v, &vhost, queue, conn)?;
            q.last_used = now;
            let mut expired = Vec::new();
            let msg = loop {
                q.ready.pop_expired(now, &mut expired);
                match q.ready.pop_front() {
                    Some(m) if m.is_expired(now) => expired.push(m),
                    other => break other,
                }
            };
            let qname = q.name.clone();
            let result = match msg {
                None => None,
                Some(msg) => {
                    q.counters.delivered += 1;
                    let message_count = q.ready.len() as u32;
                    if !no_ack {
                        q.unacked += 1;
                    } else {
                        q.counters.acked += 1;
                    }
                    let chs = b.connections.get_mut(&conn).and_then(|c| c.channels.get_mut(&ch)).expect("checked");
                    let tag = chs.next_tag;
                    chs.next_tag += 1;
                    let delivery = Delivery {
                        delivery_tag: tag,
                        redelivered: msg.redelivered,
                        exchange: msg.exchange.clone(),
                        routing_key: msg.routing_key.clone(),
                        content: msg.content.clone(),
                    };
                    if !no_ack {
                        chs.unacked.insert(tag, Unacked { queue: qname.clone(), msg, consumer: None });
                    }
                    Some(GetOk { delivery, message_count })
                }
            };
            if !expired.is_empty() {
                b.dead_letter(&vhost, &qname, expired, "expired");
            }
            Ok(result)
        })
    }

    /// `basic.consume`: returns the consumer tag (generated when empty).
    pub fn basic_consume(&mut self, conn: ConnId, ch: ChannelId, d: &BasicConsume) -> Result<Name> {
        self.channel_op(conn, ch, |b, vhost| {
            let now = b.time.get().instant;
            b.expire_queue(&vhost, &d.queue);
            let tag: Name = if d.consumer_tag.is_empty() {
                Name::from(b.next_name("amq.ctag-"))
            } else {
                Name::from(d.consumer_tag.as_str())
            };
            let chs = b.connections.get(&conn).and_then(|c| c.channels.get(&ch)).expect("checked");
            if chs.consumers.contains_key(&tag) {
                return Err(Error::connection(
                    ReplyCode::NotAllowed,
                    format!("NOT_ALLOWED - attempt to reuse consumer tag '{tag}'"),
                ));
            }
            let prefetch = chs.consumer_prefetch;
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            let q = Self::queue_for_op(v, &vhost, &d.queue, conn)?;
            if (d.exclusive && !q.consumers.is_empty()) || q.exclusive_consumer {
                return Err(chan_err(
                    ReplyCode::AccessRefused,
                    format!("ACCESS_REFUSED - queue '{}' in vhost '{vhost}' in exclusive use", d.queue),
                ));
            }
            let priority = match d.arguments.get("x-priority") {
                None | Some(Value::Null) => 0,
                Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or(0),
                Some(other) => {
                    return Err(chan_err(
                        ReplyCode::PreconditionFailed,
                        format!("PRECONDITION_FAILED - invalid arg 'x-priority' for consumer: {other}"),
                    ))
                }
            };
            q.exclusive_consumer = d.exclusive;
            q.consumers.push(ConsumerRef { conn, channel: ch, tag: tag.clone(), priority });
            q.had_consumer = true;
            q.last_used = now;
            let qname = q.name.clone();
            let chs = b.connections.get_mut(&conn).and_then(|c| c.channels.get_mut(&ch)).expect("checked");
            chs.consumers.insert(tag.clone(), ConsumerState { queue: qname.clone(), no_ack: d.no_ack, prefetch, unacked: 0 });
            b.dispatch(&vhost, &qname);
            Ok(tag)
        })
    }

    /// `basic.cancel`. Cancelling an unknown tag succeeds. Messages delivered to the consumer
    /// and not yet acknowledged stay unacknowledged on the channel.
    pub fn basic_cancel(&mut self, conn: ConnId, ch: ChannelId, tag: &str) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            let chs = b.connections.get_mut(&conn).and_then(|c| c.channels.get_mut(&ch)).expect("checked");
            let Some(cs) = chs.consumers.remove(tag) else { return Ok(()) };
            let now = b.time.get().instant;
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            let mut delete = false;
            if let Some(q) = v.queues.get_mut(&cs.queue) {
                q.consumers.retain(|c| !(c.conn == conn && c.channel == ch && &*c.tag == tag));
                q.exclusive_consumer = false;
                q.last_used = now;
                delete = q.auto_delete && q.had_consumer && q.consumers.is_empty();
            }
            if delete {
                b.delete_queue(&vhost, &cs.queue);
            }
            Ok(())
        })
    }

    fn settle(&mut self, conn: ConnId, ch: ChannelId, tag: u64, multiple: bool, outcome: Option<bool>) -> Result<()> {
        // outcome: None = ack, Some(requeue) = reject/nack.
        self.channel_op(conn, ch, |b, vhost| {
            let chs = b.connections.get_mut(&conn).and_then(|c| c.channels.get_mut(&ch)).expect("checked");
            let unknown = || chan_err(ReplyCode::PreconditionFailed, format!("PRECONDITION_FAILED - unknown delivery tag {tag}"));
            if !multiple && chs.global_prefetch == 0 {
                // The common case (one message, per-consumer prefetch): no allocation.
                let u = chs.unacked.remove(tag).ok_or_else(unknown)?;
                if let Some(c) = u.consumer.as_ref().and_then(|t| chs.consumers.get_mut(t)) {
                    c.unacked = c.unacked.saturating_sub(1);
                }
                let qname = u.queue.clone();
                let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
                if let Some(q) = v.queues.get_mut(&u.queue) {
                    q.unacked = q.unacked.saturating_sub(1);
                    match outcome {
                        None => q.counters.acked += 1,
                        Some(true) => {
                            q.counters.rejected += 1;
                            let mut m = u.msg;
                            m.redelivered = true;
                            q.ready.push_front(m);
                        }
                        Some(false) => {
                            q.counters.rejected += 1;
                            b.dead_letter(&vhost, &qname, vec![u.msg], "rejected");
                        }
                    }
                    b.dispatch(&vhost, &qname);
                }
                return Ok(());
            }
            let settled: Vec<Unacked> = if multiple {
                let taken = chs.unacked.take_through(if tag == 0 { u64::MAX } else { tag });
                if tag != 0 && taken.is_empty() {
                    return Err(unknown());
                }
                taken
            } else {
                vec![chs.unacked.remove(tag).ok_or_else(unknown)?]
            };
            let mut touched: Vec<Name> = Vec::new();
            for u in &settled {
                if let Some(c) = u.consumer.as_ref().and_then(|t| chs.consumers.get_mut(t)) {
                    c.unacked = c.unacked.saturating_sub(1);
                }
            }
            // With a channel-wide prefetch window every consumer of the channel may resume.
            let channel_queues: Vec<Name> = if chs.global_prefetch > 0 {
                chs.consumers.values().map(|c| c.queue.clone()).collect()
            } else {
                Vec::new()
            };
            let mut dead: SortedMap<Name, Vec<QueuedMessage>> = SortedMap::default();
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            for u in settled.into_iter().rev() {
                let Some(q) = v.queues.get_mut(&u.queue) else { continue };
                q.unacked = q.unacked.saturating_sub(1);
                match outcome {
                    None => q.counters.acked += 1,
                    Some(true) => {
                        q.counters.rejected += 1;
                        let mut m = u.msg;
                        m.redelivered = true;
                        q.ready.push_front(m);
                    }
                    Some(false) => {
                        q.counters.rejected += 1;
                        dead.get_or_insert_with(u.queue.clone(), Vec::new).push(u.msg);
                    }
                }
                if !touched.contains(&u.queue) {
                    touched.push(u.queue);
                }
            }
            for (qn, msgs) in dead {
                let mut msgs = msgs;
                msgs.reverse();
                b.dead_letter(&vhost, &qn, msgs, "rejected");
            }
            for q in channel_queues {
                if !touched.contains(&q) {
                    touched.push(q);
                }
            }
            for q in touched {
                b.dispatch(&vhost, &q);
            }
            Ok(())
        })
    }

    /// `basic.ack`. `multiple` acknowledges every outstanding tag up to `tag` (all when 0).
    /// An unknown tag is a `PreconditionFailed` channel exception.
    pub fn basic_ack(&mut self, conn: ConnId, ch: ChannelId, tag: u64, multiple: bool) -> Result<()> {
        self.settle(conn, ch, tag, multiple, None)
    }

    /// `basic.nack`: reject one or (with `multiple`) several messages.
    pub fn basic_nack(&mut self, conn: ConnId, ch: ChannelId, tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        self.settle(conn, ch, tag, multiple, Some(requeue))
    }

    /// `basic.reject`: requeue the message, or discard (dead-letter) it.
    pub fn basic_reject(&mut self, conn: ConnId, ch: ChannelId, tag: u64, requeue: bool) -> Result<()> {
        self.settle(conn, ch, tag, false, Some(requeue))
    }

    /// `basic.recover`: requeue every unacknowledged message of the channel. `requeue=false`
    /// (redeliver to the same consumer) is not implemented, as in Kombu's virtual transports.
    pub fn basic_recover(&mut self, conn: ConnId, ch: ChannelId, requeue: bool) -> Result<()> {
        if !requeue {
            self.check_channel(conn, ch)?;
            return Err(Error::NotImplemented(
                "basic.recover with requeue=false is not supported by the memory broker; use requeue=true".into(),
            ));
        }
        let last = self.connections.get(&conn).and_then(|c| c.channels.get(&ch)).and_then(|chs| chs.unacked.last_tag());
        if let Some(last) = last {
            self.settle(conn, ch, last, true, Some(true))
        } else {
            self.check_channel(conn, ch).map(|_| ())
        }
    }

    /// `basic.qos`: `global=false` sets the window of consumers created afterwards on this
    /// channel, `global=true` the window of the channel as a whole (RabbitMQ semantics).
    /// `prefetch_size` is not supported (RabbitMQ refuses it too).
    pub fn basic_qos(&mut self, conn: ConnId, ch: ChannelId, qos: BasicQos) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            if qos.prefetch_size != 0 {
                return Err(Error::connection(
                    ReplyCode::NotImplemented,
                    format!("NOT_IMPLEMENTED - prefetch_size!=0 ({})", qos.prefetch_size),
                ));
            }
            let chs = b.connections.get_mut(&conn).and_then(|c| c.channels.get_mut(&ch)).expect("checked");
            if qos.global {
                chs.global_prefetch = qos.prefetch_count;
            } else {
                chs.consumer_prefetch = qos.prefetch_count;
            }
            let queues: Vec<Name> = chs.consumers.values().map(|c| c.queue.clone()).collect();
            for q in queues {
                b.dispatch(&vhost, &q);
            }
            Ok(())
        })
    }

    /// `channel.flow` from the client: pause (false) or resume (true) deliveries.
    pub fn channel_flow(&mut self, conn: ConnId, ch: ChannelId, active: bool) -> Result<bool> {
        self.channel_op(conn, ch, |b, vhost| {
            let chs = b.connections.get_mut(&conn).and_then(|c| c.channels.get_mut(&ch)).expect("checked");
            chs.flow_active = active;
            let queues: Vec<Name> = chs.consumers.values().map(|c| c.queue.clone()).collect();
            if active {
                for q in queues {
                    b.dispatch(&vhost, &q);
                }
            }
            Ok(active)
        })
    }

    /// `confirm.select`: from now on every publish on the channel is confirmed with an
    /// [`ServerEvent::Ack`] (or [`ServerEvent::Nack`] when overflow refused it).
    pub fn confirm_select(&mut self, conn: ConnId, ch: ChannelId) -> Result<()> {
        self.channel_op(conn, ch, |b, _| {
            let chs = b.connections.get_mut(&conn).and_then(|c| c.channels.get_mut(&ch)).expect("checked");
            chs.confirm = true;
            Ok(())
        })
    }

    // ----- events and time -------------------------------------------------------------

    /// The next event for a connection. After the connection was closed by the broker, its
    /// last events end with [`ServerEvent::ConnectionClosed`].
    pub fn pop_event(&mut self, conn: ConnId) -> Option<ServerEvent> {
        if let Some(c) = self.connections.get_mut(&conn) {
            let ev = c.events.pop_front();
            if c.events.is_empty() {
                c.notify = false;
            }
            return ev;
        }
        let q = self.closed_outboxes.get_mut(&conn)?;
        let ev = q.pop_front();
        if q.is_empty() {
            self.closed_outboxes.remove(&conn);
        }
        ev
    }

    /// Move every event waiting for a connection to `out` (oldest first).
    pub fn take_events(&mut self, conn: ConnId, out: &mut VecDeque<ServerEvent>) {
        if let Some(c) = self.connections.get_mut(&conn) {
            out.append(&mut c.events);
            c.notify = false;
            return;
        }
        if let Some(mut q) = self.closed_outboxes.remove(&conn) {
            out.append(&mut q);
        }
    }

    /// True when the connection has events waiting.
    pub fn has_events(&self, conn: ConnId) -> bool {
        self.connections.get(&conn).is_some_and(|c| !c.events.is_empty()) || self.closed_outboxes.contains_key(&conn)
    }

    /// Connections that received events since the last call (the adapter wakes them).
    pub fn take_woken(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.woken)
    }

    /// Like [`Broker::take_woken`], without giving up the buffer.
    pub fn drain_woken(&mut self) -> std::vec::Drain<'_, ConnId> {
        self.woken.drain(..)
    }

    /// When the broker next needs [`Broker::handle_timeout`]: the earliest message expiry at
    /// the head of a queue, or queue expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        for v in self.vhosts.values() {
            for q in v.queues.values() {
                let mut t = q.ready.next_expiry();
                if let (Some(ms), true) = (q.expires, q.consumers.is_empty()) {
                    let e = q.last_used + Duration::from_millis(ms);
                    t = Some(t.map_or(e, |x| x.min(e)));
                }
                if let Some(t) = t {
                    best = Some(best.map_or(t, |b| b.min(t)));
                }
            }
        }
        best
    }

    /// Expire messages and queues whose time has come.
    pub fn handle_timeout(&mut self, now: Now) {
        self.set_now(now);
        let mut expired_queues = Vec::new();
        let mut queues_with_expiry = Vec::new();
        for (vn, v) in self.vhosts.iter() {
            for q in v.queues.values() {
                if q.consumers.is_empty() && q.expires.is_some_and(|ms| q.last_used + Duration::from_millis(ms) <= now.instant) {
                    expired_queues.push((vn.clone(), q.name.clone()));
                } else if q.ready.next_expiry().is_some_and(|t| t <= now.instant) {
                    queues_with_expiry.push((vn.clone(), q.name.clone()));
                }
            }
        }
        for (v, q) in expired_queues {
            self.delete_queue(&v, &q);
        }
        for (v, q) in queues_with_expiry {
            let mut expired = Vec::new();
            if let Some(qs) = self.vhosts.get_mut(&v).and_then(|vh| vh.queues.get_mut(&q)) {
                qs.ready.pop_expired(now.instant, &mut expired);
            }
            if !expired.is_empty() {
                self.dead_letter(&v, &q, expired, "expired");
            }
            self.dispatch(&v, &q);
        }
    }

    // ----- introspection ---------------------------------------------------------------

    /// A snapshot of a virtual host: exchanges, queues with depths and counters, bindings.
    pub fn snapshot(&self, vhost: &str) -> Option<VHostSnapshot> {
        let v = self.vhosts.get(vhost)?;
        let mut exchanges: Vec<ExchangeInfo> = v
            .exchanges
            .values()
            .map(|x| ExchangeInfo {
                name: x.decl.exchange.clone(),
                kind: x.decl.kind.to_string(),
                durable: x.decl.durable,
                auto_delete: x.decl.auto_delete,
                internal: x.decl.internal,
                arguments: x.decl.arguments.clone(),
            })
            .collect();
        crate::sort::sort_by(&mut exchanges, |a, b| a.name.cmp(&b.name));
        let mut queues: Vec<QueueInfo> = v
            .queues
            .values()
            .map(|q| {
                let arguments = q.arguments.clone();
                QueueInfo {
                    name: q.name.to_string(),
                    messages_ready: q.ready.len() as u64,
                    messages_unacknowledged: q.unacked,
                    bytes_ready: q.ready.bytes() as u64,
                    consumers: q.consumers.len() as u32,
                    durable: q.durable,
                    auto_delete: q.auto_delete,
                    exclusive: q.exclusive_owner.is_some(),
                    arguments,
                    published: q.counters.published,
                    delivered: q.counters.delivered,
                    acked: q.counters.acked,
                    rejected: q.counters.rejected,
                    expired: q.counters.expired,
                    dead_lettered: q.counters.dead_lettered,
                    dropped: q.counters.dropped,
                }
            })
            .collect();
        crate::sort::sort_by(&mut queues, |a, b| a.name.cmp(&b.name));
        let mut bindings = Vec::new();
        for x in v.exchanges.values() {
            for (key, args, dest) in x.router.bindings() {
                let (destination, destination_type) = match dest {
                    Dest::Queue(q) => (q.to_string(), "queue"),
                    Dest::Exchange(e) => (e.to_string(), "exchange"),
                };
                bindings.push(BindingInfo {
                    source: x.decl.exchange.clone(),
                    destination,
                    destination_type,
                    routing_key: key.to_string(),
                    arguments: args.clone(),
                });
            }
        }
        crate::sort::sort_by(&mut bindings, |a, b| {
            (a.source.as_str(), a.destination.as_str(), a.routing_key.as_str())
                .cmp(&(b.source.as_str(), b.destination.as_str(), b.routing_key.as_str()))
        });
        Some(VHostSnapshot { exchanges, queues, bindings })
    }

    /// Ready messages of a queue (for UIs and tests).
    pub fn queue_depth(&self, vhost: &str, queue: &str) -> Option<usize> {
        self.vhosts.get(vhost)?.queues.get(queue).map(|q| q.ready.len())
    }

    /// Open connections.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }
}

#[cfg(test)]
mod tests;
