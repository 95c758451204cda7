//! Durability without IO: the broker's journal of durable state, and recovery from it.
//!
//! With [`Broker::enable_journal`], every change to what RabbitMQ keeps across a restart is
//! appended to the journal as a [`Record`]: durable exchanges and queues declared or deleted,
//! bindings between durable ends, persistent messages (`delivery_mode` 2) entering or leaving
//! a durable queue. The caller takes the records with [`Broker::take_journal`] after each
//! operation, keeps them wherever it keeps them, and reports how far it has kept them with
//! [`Broker::journal_kept`]. Publisher confirms ([`ServerEvent::Ack`], `Nack`) wait for
//! that: a confirm reaches its connection's outbox only once every record produced up to its
//! publish is kept, so the broker confirms only what was kept, and the caller can keep
//! records in batches (group commit) without holding up anything else. Other events
//! (deliveries, declare answers) do not wait. See [`crate::transport::memory::Persist`].
//!
//! [`Broker::restore`] rebuilds a broker from what was kept: exchanges, queues, bindings, then
//! messages, each queue's messages in the order they were stored.
//!
//! As in RabbitMQ: exclusive queues are not durable whatever their flag; a binding is durable
//! when both its ends are; a message is kept when it is persistent and routed to a durable
//! queue, and it is kept once per queue it was routed to.
//!


use std::sync::Arc;

use serde::{Deserialize, Serialize};
use web_time::Duration;

use crate::error::Error;
use crate::properties::PERSISTENT_DELIVERY_MODE;
use crate::proto::methods::{Content, ExchangeBind, ExchangeDeclare, Name, QueueBind, QueueDeclare, ServerEvent};
use crate::value::Headers;

use super::queue::QueuedMessage;
use super::{Broker, ChannelId, ConnId, QueueState};

/// A binding between two durable ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DurableBinding {
    /// The virtual host.
    pub vhost: String,
    /// The source exchange.
    pub source: String,
    /// The destination queue or exchange.
    pub destination: String,
    /// True when the destination is an exchange.
    pub to_exchange: bool,
    /// The binding key.
    pub routing_key: String,
    /// The binding arguments.
    pub arguments: Headers,
}

/// A persistent message in a durable queue.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// Unique in the broker (and in what it recovered from); grows with each message stored,
    /// so a queue's messages in id order are its messages in publish order.
    pub id: u64,
    /// The virtual host.
    pub vhost: Name,
    /// The queue it is in.
    pub queue: Name,
    /// The exchange it was published to.
    pub exchange: Name,
    /// The routing key it was published with.
    pub routing_key: Name,
    /// Properties and body.
    pub content: Arc<Content>,
}

/// One change to the broker's durable state.
#[derive(Debug, Clone)]
pub enum Record {
    /// A durable exchange was declared.
    ExchangeDeclared {
        /// The virtual host.
        vhost: Name,
        /// The declaration (not passive).
        decl: ExchangeDeclare,
    },
    /// A durable exchange was deleted, with every binding from or to it.
    ExchangeDeleted {
        /// The virtual host.
        vhost: Name,
        /// The exchange.
        exchange: Name,
    },
    /// A durable queue was declared.
    QueueDeclared {
        /// The virtual host.
        vhost: Name,
        /// The declaration (not passive, with the queue's name).
        decl: QueueDeclare,
    },
    /// A durable queue was deleted, with its bindings and its messages.
    QueueDeleted {
        /// The virtual host.
        vhost: Name,
        /// The queue.
        queue: Name,
    },
    /// A binding between durable ends was made.
    Bound(DurableBinding),
    /// A binding was removed.
    Unbound(DurableBinding),
    /// A persistent message entered a durable queue.
    MessageStored(StoredMessage),
    /// A stored message left its queue (acknowledged, dead-lettered, expired, dropped,
    /// purged, or delivered with `no_ack`).
    MessageRemoved {
        /// The virtual host.
        vhost: Name,
        /// The queue it was in.
        queue: Name,
        /// Its [`StoredMessage::id`].
        id: u64,
    },
}

/// What a broker is rebuilt from: the durable state its journal described.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Durable exchanges by virtual host.
    pub exchanges: Vec<(String, ExchangeDeclare)>,
    /// Durable queues by virtual host.
    pub queues: Vec<(String, QueueDeclare)>,
    /// Bindings between durable ends.
    pub bindings: Vec<DurableBinding>,
    /// Messages, in id order.
    pub messages: Vec<StoredMessage>,
}

/// Something [`Broker::restore`] could not put back, and why.
#[derive(Debug)]
pub struct NotRestored {
    /// What it was (`queue 'x' in vhost '/'`, ...).
    pub what: String,
    /// The broker's refusal.
    pub error: Error,
}

impl QueueState {
    /// Whether this queue keeps persistent messages across a restart.
    pub(super) fn is_durable(&self) -> bool {
        self.durable && self.exclusive_owner.is_none()
    }
}

/// Note that `m` left queue `queue`, if it was stored. A free function over the journal
/// field, so that it can be called while other parts of the broker are borrowed.
pub(super) fn forget(journal: &mut Option<Vec<Record>>, vhost: &str, queue: &Name, m: &QueuedMessage) {
    if let (Some(j), Some(id)) = (journal.as_mut(), m.stored) {
        j.push(Record::MessageRemoved { vhost: Name::from(vhost), queue: queue.clone(), id });
    }
}

/// Whether a message of `content` entering a queue (durable or not) is kept, and its id if so.
pub(super) fn store_id(journal: &Option<Vec<Record>>, next: &mut u64, durable_queue: bool, content: &Content) -> Option<u64> {
    if journal.is_none() || !durable_queue || content.properties.delivery_mode != Some(PERSISTENT_DELIVERY_MODE) {
        return None;
    }
    let id = *next;
    *next += 1;
    Some(id)
}

impl Broker {
    /// From now on, record changes to durable state in the journal (see the module
    /// documentation). Off by default: a broker nobody persists keeps no journal. With the
    /// journal on, publisher confirms wait for [`Broker::journal_kept`]: the caller must
    /// report what it kept.
    pub fn enable_journal(&mut self) {
        if self.journal.is_none() {
            self.journal = Some(Vec::new());
        }
    }

    /// True when the journal has records not yet taken.
    pub fn has_journal(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| !j.is_empty())
    }

    /// Take the journal's records, oldest first.
    pub fn take_journal(&mut self) -> Vec<Record> {
        let records = self.journal.as_mut().map(std::mem::take).unwrap_or_default();
        self.journal_taken += records.len() as u64;
        records
    }

    /// The journal's position: how many records it has produced (taken or not). The records
    /// returned by a [`Broker::take_journal`] end at the position it returns just after.
    pub fn journal_position(&self) -> u64 {
        self.journal_taken + self.journal.as_ref().map_or(0, |j| j.len() as u64)
    }

    /// True when records were produced that the caller has not reported kept.
    pub fn journal_pending(&self) -> bool {
        self.journal.is_some() && self.journal_position() > self.journal_kept
    }

    /// The caller has kept the journal up to `position`: the publisher confirms that waited
    /// for it go to their connections.
    pub fn journal_kept(&mut self, position: u64) {
        self.journal_kept = self.journal_kept.max(position);
        while self.held_confirms.front().is_some_and(|(p, _, _)| *p <= self.journal_kept) {
            if let Some((_, conn, ev)) = self.held_confirms.pop_front() {
                self.push_event(conn, ev);
            }
        }
    }

    /// Send a publisher confirm, or hold it until the journal is kept up to here: a confirm
    /// promises that what the publish stored is kept. Confirms keep their order.
    pub(super) fn confirm(&mut self, conn: ConnId, ev: ServerEvent) {
        if self.journal.is_some() {
            let position = self.journal_position();
            if position > self.journal_kept || !self.held_confirms.is_empty() {
                self.held_confirms.push_back((position, conn, ev));
                return;
            }
        }
        self.push_event(conn, ev);
    }

    pub(super) fn journal(&mut self, r: impl FnOnce() -> Record) {
        if let Some(j) = self.journal.as_mut() {
            j.push(r());
        }
    }


    /// Rebuild durable state: declare the exchanges, queues and bindings (validated as the
    /// declarations were), then put the messages back in their queues, in id order, marked
    /// redelivered (they may have been delivered before the restart, as RabbitMQ marks them).
    /// Message TTLs count from now. Nothing is journalled while restoring. Returns what could
    /// not be restored (a binding to an exchange that is gone, ...), which the caller reports.
    pub fn restore(&mut self, r: Recovered) -> Vec<NotRestored> {
        let journal = self.journal.take();
        let mut failed = Vec::new();
        let mut session: Option<(Name, ConnId, ChannelId)> = None;
        // Each declaration on a channel of the right vhost; a refused one closes its channel.
        let mut on = |b: &mut Broker, vhost: &str, what: String, op: &mut dyn FnMut(&mut Broker, ConnId, ChannelId) -> crate::Result<()>| {
            let (conn, ch) = match &session {
                Some((v, c, ch)) if &**v == vhost && b.is_channel_open(*c, *ch) => (*c, *ch),
                _ => {
                    if let Some((_, c, _)) = session.take() {
                        b.close_connection(c);
                    }
                    let c = b.connect(vhost);
                    let ch = b.open_channel(c).expect("a new connection opens a channel");
                    session = Some((Name::from(vhost), c, ch));
                    (c, ch)
                }
            };
            if let Err(error) = op(b, conn, ch) {
                failed.push(NotRestored { what, error });
            }
        };
        for (vhost, decl) in &r.exchanges {
            let what = format!("exchange '{}' in vhost '{vhost}'", decl.exchange);
            on(self, vhost, what, &mut |b, c, ch| b.exchange_declare(c, ch, decl));
        }
        for (vhost, decl) in &r.queues {
            let what = format!("queue '{}' in vhost '{vhost}'", decl.queue);
            on(self, vhost, what, &mut |b, c, ch| b.queue_declare(c, ch, decl).map(|_| ()));
        }
        for d in &r.bindings {
            let what = format!("binding of '{}' to '{}' ('{}') in vhost '{}'", d.source, d.destination, d.routing_key, d.vhost);
            on(self, &d.vhost, what, &mut |b, c, ch| {
                if d.to_exchange {
                    let m = ExchangeBind {
                        destination: d.destination.clone(),
                        source: d.source.clone(),
                        routing_key: d.routing_key.clone(),
                        arguments: d.arguments.clone(),
                        ..Default::default()
                    };
                    b.exchange_bind(c, ch, &m)
                } else {
                    let m = QueueBind {
                        queue: d.destination.clone(),
                        exchange: d.source.clone(),
                        routing_key: d.routing_key.clone(),
                        arguments: d.arguments.clone(),
                        ..Default::default()
                    };
                    b.queue_bind(c, ch, &m)
                }
            });
        }
        if let Some((_, c, _)) = session.take() {
            self.close_connection(c);
        }
        let now = self.time.get().instant;
        for m in r.messages {
            self.next_stored = self.next_stored.max(m.id + 1);
            let Some(q) = self.vhosts.get_mut(&*m.vhost).and_then(|v| v.queues.get_mut(&m.queue)) else {
                failed.push(NotRestored {
                    what: format!("message {} of queue '{}' in vhost '{}'", m.id, m.queue, m.vhost),
                    error: super::not_found_queue(&m.vhost, &m.queue),
                });
                continue;
            };
            let ttl = match (q.message_ttl, m.content.properties.expiration_ms()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let priority = m.content.properties.priority.unwrap_or(0).min(q.ready.max_priority());
            q.ready.push_back(QueuedMessage {
                content: m.content,
                exchange: m.exchange,
                routing_key: m.routing_key,
                redelivered: true,
                expires_at: ttl.map(|ms| now + Duration::from_millis(ms)),
                priority,
                stored: Some(m.id),
            });
        }
        self.journal = journal;
        failed
    }
}
