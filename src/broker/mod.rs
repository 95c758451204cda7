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
//!
//! # Where things are
//!
//! This file holds the broker's state (the [`Broker`] struct and what it owns) and the
//! channel exceptions the operations raise. The operations are `impl Broker` blocks, one
//! file per concern:
//!
//! | file | concern |
//! |---|---|
//! | `connections.rs` | connections and channels: open, close, channel exceptions, event outboxes |
//! | `exchanges.rs` | virtual hosts and their predeclared exchanges; `exchange.declare/delete/bind/unbind` |
//! | `queues.rs` | `queue.declare/bind/unbind/purge/delete` and queue arguments |
//! | `publish.rs` | `basic.publish`: routing, alternate exchanges, overflow, returns, confirms |
//! | `deliver.rs` | consumers and deliveries: `basic.consume/cancel/get/ack/nack/reject/recover/qos`, `channel.flow` |
//! | `dead_letter.rs` | dead-lettering with `x-death` headers |
//! | `time.rs` | [`Now`], message TTL and queue expiry: [`Broker::poll_timeout`], [`Broker::handle_timeout`] |
//! | `journal.rs` | durable state as a journal of [`Record`]s for the caller to keep; [`Broker::restore`] |
//! | `limits.rs` | [`Limits`]: memory high watermark, caps on queues, exchanges and bindings per vhost |
//! | `snapshot.rs` | read-only views for UIs and metrics ([`VHostSnapshot`]) |
//! | `queue.rs` | a queue's ready messages (priorities, expiry, byte accounting) |

mod connections;
mod dead_letter;
mod deliver;
mod exchanges;
mod journal;
mod limits;
mod publish;
mod queue;
mod queues;
mod snapshot;
mod time;

use std::collections::VecDeque;

use serde::Serialize;
use web_time::Instant;

use crate::error::{Error, ReplyCode};
use crate::namemap::SortedMap;
use crate::routing::Router;
use crate::proto::methods::{ExchangeDeclare, Name, ServerEvent};
use crate::value::Headers;

use queue::{QueuedMessage, Ready};
use time::Time;

pub use journal::{DurableBinding, NotRestored, Record, Recovered, StoredMessage};
pub use limits::Limits;
pub use snapshot::{BindingInfo, DestinationType, ExchangeInfo, QueueInfo, VHostSnapshot};
pub use time::Now;

/// A connection handle issued by [`Broker::connect`].
pub type ConnId = u64;
/// A channel id, unique within its connection.
pub type ChannelId = u32;


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
    // (States boxed: inserting into a sorted vector moves the entries after it.)
    exchanges: SortedMap<Name, Box<ExchangeState>>,
    queues: SortedMap<Name, Box<QueueState>>,
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


/// The in-memory AMQP 0-9-1 broker. See the module documentation.
#[derive(Debug)]
pub struct Broker {
    vhosts: SortedMap<Name, VHost>,
    connections: SortedMap<ConnId, ConnState>,
    next_conn: ConnId,
    time: Time,
    woken: Vec<ConnId>,
    closed_outboxes: SortedMap<ConnId, VecDeque<ServerEvent>>,
    names: u64,
    /// Kept between publishes so that routing does not allocate.
    scratch: Scratch,
    /// Changes to durable state not yet taken by the caller; `None` while not journalling.
    journal: Option<Vec<journal::Record>>,
    /// The id of the next persistent message stored.
    next_stored: u64,
    /// Records taken from the journal so far: with the journal's length, its position.
    journal_taken: u64,
    /// The journal position the caller reported kept ([`Broker::journal_kept`]).
    journal_kept: u64,
    /// Publisher confirms waiting for the journal to be kept up to their position, in order.
    held_confirms: VecDeque<(u64, ConnId, ServerEvent)>,
    limits: limits::Limits,
    /// Bytes of message bodies ready in queues, shared with every queue's [`Ready`].
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The memory alarm is raised: the connections were sent `connection.blocked`.
    alarm: bool,
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

// ----- channel exceptions ----------------------------------------------------------

fn not_found_queue(vhost: &str, q: &str) -> Error {
    Error::channel(ReplyCode::NotFound, format!("NOT_FOUND - no queue '{q}' in vhost '{vhost}'"))
}

fn not_found_exchange(vhost: &str, x: &str) -> Error {
    Error::channel(ReplyCode::NotFound, format!("NOT_FOUND - no exchange '{x}' in vhost '{vhost}'"))
}

fn locked(vhost: &str, q: &str) -> Error {
    Error::channel(
        ReplyCode::ResourceLocked,
        format!(
            "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost \
             '{vhost}'. It could be originally declared on another connection or the exclusive \
             property value does not match that of the original declaration."
        ),
    )
}

fn inequivalent(what: &str, arg: &str, name: &str, vhost: &str, received: &str, current: &str) -> Error {
    Error::channel(
        ReplyCode::PreconditionFailed,
        format!(
            "PRECONDITION_FAILED - inequivalent arg '{arg}' for {what} '{name}' in vhost '{vhost}': \
             received '{received}' but current is '{current}'"
        ),
    )
}

fn invalid_arg(arg: &str, name: &str, vhost: &str, why: &str) -> Error {
    Error::channel(
        ReplyCode::PreconditionFailed,
        format!("PRECONDITION_FAILED - invalid arg '{arg}' for queue '{name}' in vhost '{vhost}': {why}"),
    )
}

fn default_exchange_refused() -> Error {
    Error::channel(ReplyCode::AccessRefused, "ACCESS_REFUSED - operation not permitted on the default exchange")
}

impl Broker {
    /// An empty broker with the default virtual host `/` and its predeclared exchanges.
    pub fn new() -> Self {
        let mut b = Broker {
            vhosts: SortedMap::default(),
            connections: SortedMap::default(),
            next_conn: 1,
            time: Time::system(),
            woken: Vec::new(),
            closed_outboxes: SortedMap::default(),
            names: 0,
            scratch: Scratch::default(),
            journal: None,
            next_stored: 1,
            journal_taken: 0,
            journal_kept: 0,
            held_confirms: VecDeque::new(),
            limits: limits::Limits::default(),
            held: Default::default(),
            alarm: false,
        };
        b.vhost_mut("/");
        b
    }
}

#[cfg(test)]
mod tests;
