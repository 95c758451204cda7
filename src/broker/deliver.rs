//! Consumers and deliveries: `basic.consume`, `basic.cancel`, `basic.get`, acknowledgements
//! (`basic.ack`, `basic.nack`, `basic.reject`, `basic.recover`), prefetch windows (`basic.qos`)
//! and `channel.flow`.

use web_time::Instant;

use crate::error::{Error, ReplyCode, Result};
use crate::namemap::SortedMap;
use crate::proto::methods::{BasicConsume, BasicQos, Delivery, GetOk, Name, ServerEvent};
use crate::value::Value;

use super::dead_letter::DeathReason;
use super::journal::forget;
use super::queue::QueuedMessage;
use super::{Broker, ChannelId, ChannelState, ConnId, ConsumerRef, ConsumerState, QueueState, Unacked};

/// What the client did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// `basic.ack`.
    Ack,
    /// `basic.reject`/`basic.nack` with `requeue`, or `basic.recover`.
    Requeue,
    /// `basic.reject`/`basic.nack` without `requeue`: dead-lettered or dropped.
    Discard,
}

impl Settle {
    fn reject(requeue: bool) -> Self {
        if requeue {
            Settle::Requeue
        } else {
            Settle::Discard
        }
    }
}

impl QueueState {
    /// A delivered message comes back to the head of its queue, marked redelivered.
    pub(super) fn requeue(&mut self, mut m: QueuedMessage) {
        self.unacked = self.unacked.saturating_sub(1);
        m.redelivered = true;
        self.ready.push_front(m);
    }

    /// A consumer of this queue is gone (cancelled, or its channel closed); true when the
    /// queue is auto-delete and that was its last consumer.
    pub(super) fn remove_consumer(&mut self, conn: ConnId, ch: ChannelId, tag: &str, now: Instant) -> bool {
        self.consumers.retain(|c| !(c.conn == conn && c.channel == ch && &*c.tag == tag));
        // An exclusive consumer is the only one: whichever went, none is exclusive now.
        self.exclusive_consumer = false;
        self.last_used = now;
        self.auto_delete && self.had_consumer && self.consumers.is_empty()
    }

    /// Settle a delivered message of this queue; returns it when it is to be dead-lettered.
    fn settle(&mut self, m: QueuedMessage, outcome: Settle) -> Option<QueuedMessage> {
        match outcome {
            Settle::Ack => {
                self.unacked = self.unacked.saturating_sub(1);
                self.counters.acked += 1;
                None
            }
            Settle::Requeue => {
                self.counters.rejected += 1;
                self.requeue(m);
                None
            }
            Settle::Discard => {
                self.unacked = self.unacked.saturating_sub(1);
                self.counters.rejected += 1;
                Some(m)
            }
        }
    }
}

impl ChannelState {
    /// Hand `msg` of `q` out on this channel, to `consumer` (or to `basic.get`), with the next
    /// delivery tag. Unless `no_ack`, it stays unacknowledged, in the consumer's window too.
    fn deliver(&mut self, q: &mut QueueState, msg: QueuedMessage, consumer: Option<&Name>, no_ack: bool) -> Delivery {
        let tag = self.next_tag;
        self.next_tag += 1;
        let delivery = Delivery {
            delivery_tag: tag,
            redelivered: msg.redelivered,
            exchange: msg.exchange.clone(),
            routing_key: msg.routing_key.clone(),
            content: msg.content.clone(),
            extra: None,
        };
        q.counters.delivered += 1;
        if no_ack {
            q.counters.acked += 1;
        } else {
            if let Some(cs) = consumer.and_then(|t| self.consumers.get_mut(t)) {
                cs.unacked += 1;
            }
            q.unacked += 1;
            self.unacked.insert(tag, Unacked { queue: q.name.clone(), msg, consumer: consumer.cloned() });
        }
        delivery
    }

    /// A delivery of this channel is settled: its consumer's prefetch window opens by one.
    fn release(&mut self, u: &Unacked) {
        if let Some(c) = u.consumer.as_ref().and_then(|t| self.consumers.get_mut(t)) {
            c.unacked = c.unacked.saturating_sub(1);
        }
    }
}

impl Broker {
    /// Deliver ready messages of a queue to its consumers while they have credit.
    pub(super) fn dispatch(&mut self, vhost: &str, qname: &str) {
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
            let no_ack = chs.consumers.get(&c.tag).is_none_or(|cs| cs.no_ack);
            if no_ack {
                forget(&mut self.journal, vhost, &q.name, &msg);
            }
            let delivery = chs.deliver(q, msg, Some(&c.tag), no_ack);
            if conn.push(ServerEvent::Deliver { channel: c.channel, consumer_tag: c.tag, delivery }) {
                self.woken.push(c.conn);
            }
        }
        if !expired.is_empty() {
            let qn = q.name.clone();
            self.dead_letter(vhost, &qn, expired, DeathReason::Expired);
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
                    let message_count = q.ready.len() as u32;
                    let chs = b.connections.get_mut(&conn).and_then(|c| c.channels.get_mut(&ch)).expect("checked");
                    if no_ack {
                        forget(&mut b.journal, &vhost, &q.name, &msg);
                    }
                    let delivery = chs.deliver(q, msg, None, no_ack);
                    Some(GetOk { delivery, message_count })
                }
            };
            if !expired.is_empty() {
                b.dead_letter(&vhost, &qname, expired, DeathReason::Expired);
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
                return Err(Error::channel(
                    ReplyCode::AccessRefused,
                    format!("ACCESS_REFUSED - queue '{}' in vhost '{vhost}' in exclusive use", d.queue),
                ));
            }
            let priority = match d.arguments.get("x-priority") {
                None | Some(Value::Null) => 0,
                Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or(0),
                Some(other) => {
                    return Err(Error::channel(
                        ReplyCode::PreconditionFailed,
                        format!("PRECONDITION_FAILED - invalid arg 'x-priority' for consumer: {}", crate::value::Json(other)),
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
            let delete = v.queues.get_mut(&cs.queue).is_some_and(|q| q.remove_consumer(conn, ch, tag, now));
            if delete {
                b.delete_queue(&vhost, &cs.queue);
            }
            Ok(())
        })
    }

    fn settle(&mut self, conn: ConnId, ch: ChannelId, tag: u64, multiple: bool, outcome: Settle) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            let chs = b.connections.get_mut(&conn).and_then(|c| c.channels.get_mut(&ch)).expect("checked");
            let unknown = || Error::channel(ReplyCode::PreconditionFailed, format!("PRECONDITION_FAILED - unknown delivery tag {tag}"));
            if !multiple && chs.global_prefetch == 0 {
                // The common case (one message, per-consumer prefetch): no allocation.
                let u = chs.unacked.remove(tag).ok_or_else(unknown)?;
                chs.release(&u);
                if outcome == Settle::Ack {
                    forget(&mut b.journal, &vhost, &u.queue, &u.msg);
                }
                let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
                if let Some(q) = v.queues.get_mut(&u.queue) {
                    if let Some(dead) = q.settle(u.msg, outcome) {
                        b.dead_letter(&vhost, &u.queue, vec![dead], DeathReason::Rejected);
                    }
                    b.dispatch(&vhost, &u.queue);
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
                chs.release(u);
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
                if outcome == Settle::Ack {
                    forget(&mut b.journal, &vhost, &u.queue, &u.msg);
                }
                let Some(q) = v.queues.get_mut(&u.queue) else { continue };
                if let Some(m) = q.settle(u.msg, outcome) {
                    dead.get_or_insert_with(u.queue.clone(), Vec::new).push(m);
                }
                if !touched.contains(&u.queue) {
                    touched.push(u.queue);
                }
            }
            for (qn, msgs) in dead {
                let mut msgs = msgs;
                msgs.reverse();
                b.dead_letter(&vhost, &qn, msgs, DeathReason::Rejected);
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
        self.settle(conn, ch, tag, multiple, Settle::Ack)
    }

    /// `basic.nack`: reject one or (with `multiple`) several messages.
    pub fn basic_nack(&mut self, conn: ConnId, ch: ChannelId, tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        self.settle(conn, ch, tag, multiple, Settle::reject(requeue))
    }

    /// `basic.reject`: requeue the message, or discard (dead-letter) it.
    pub fn basic_reject(&mut self, conn: ConnId, ch: ChannelId, tag: u64, requeue: bool) -> Result<()> {
        self.settle(conn, ch, tag, false, Settle::reject(requeue))
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
            self.settle(conn, ch, last, true, Settle::Requeue)
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
}
