//! `basic.publish`: routing through exchanges (exchange-to-exchange bindings, alternate
//! exchanges), enqueueing with TTL and overflow, mandatory returns and publisher confirms.

use std::sync::Arc;

use web_time::Duration;

use crate::error::{Error, ReplyCode, Result};
use crate::namemap::SortedMap;
use crate::proto::methods::{BasicPublish, Content, Name, Returned, ServerEvent};
use crate::value::Headers;

use super::dead_letter::DeathReason;
use super::queue::QueuedMessage;
use super::{not_found_exchange, Broker, ChannelId, ConnId, Dest, Overflow, QueueState, VHost};

impl QueueState {
    /// Whether `count` messages of `bytes` bytes would break `x-max-length`/`x-max-length-bytes`.
    fn over_limits(&self, count: usize, bytes: usize) -> bool {
        self.max_length.is_some_and(|m| count > m) || self.max_length_bytes.is_some_and(|m| bytes > m)
    }
}

impl Broker {
    pub(super) fn route(v: &VHost, exchange: &str, routing_key: &str, headers: &Headers, dests: &mut Vec<Dest>, out: &mut Vec<Name>) {
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
        // the general walk needs (exchange-to-exchange bindings, alternate exchanges). "A few":
        // deduplicated by a linear scan.
        const FEW: usize = 8;
        if dests.len() <= FEW && dests.iter().all(|d| matches!(d, Dest::Queue(_))) {
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
        // (Sets as sorted maps: one map type fewer in the module than `HashSet`s.)
        let mut seen_x: SortedMap<Name, ()> = SortedMap::new();
        seen_x.insert(xn.clone(), ());
        let mut todo: Vec<Name> = Vec::new();
        let mut queues: SortedMap<Name, ()> = SortedMap::new();
        for q in out.iter() {
            queues.insert(q.clone(), ());
        }
        let mut x = x;
        loop {
            let before = queues.len() + todo.len();
            for d in dests.drain(..) {
                match d {
                    Dest::Queue(q) => {
                        if v.queues.contains_key(&q) && queues.insert(q.clone(), ()).is_none() {
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
                if seen_x.insert(xn.clone(), ()).is_some() {
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
                return Err(Error::channel(
                    ReplyCode::AccessRefused,
                    format!("ACCESS_REFUSED - cannot publish to internal exchange '{}' in vhost '{vhost}'", p.exchange),
                ));
            }
            if let Some(refused) = b.over_watermark() {
                let chs = b.connections.get_mut(&conn).and_then(|c| c.channels.get_mut(&ch)).expect("checked");
                if !chs.confirm {
                    return Err(refused);
                }
                chs.publish_seq += 1;
                let seq = chs.publish_seq;
                b.confirm(conn, ServerEvent::Nack { channel: ch, delivery_tag: seq, multiple: false });
                return Ok(());
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
                            reply_code: ReplyCode::NoRoute.code(),
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
                b.confirm(conn, ev);
            }
            Ok(())
        })
    }

    /// Put a routed message into a queue; false when `reject-publish` overflow refused it.
    pub(super) fn enqueue(&mut self, vhost: &str, qname: &Name, content: &Arc<Content>, exchange: &Name, routing_key: &Name) -> bool {
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
            stored: None,
        };
        if q.overflow != Overflow::DropHead && q.over_limits(q.ready.len() + 1, q.ready.bytes() + msg.size()) {
            if q.overflow == Overflow::RejectPublishDlx {
                // Counted as dropped there.
                let qn = q.name.clone();
                self.dead_letter(vhost, &qn, vec![msg], DeathReason::MaxLen);
            } else {
                q.counters.dropped += 1;
            }
            return false;
        }
        let mut msg = msg;
        msg.stored = super::journal::store_id(&self.journal, &mut self.next_stored, q.is_durable(), content);
        if let (Some(j), Some(id)) = (self.journal.as_mut(), msg.stored) {
            j.push(super::journal::Record::MessageStored(super::journal::StoredMessage {
                id,
                vhost: Name::from(vhost),
                queue: q.name.clone(),
                exchange: exchange.clone(),
                routing_key: routing_key.clone(),
                content: content.clone(),
            }));
        }
        q.counters.published += 1;
        q.ready.push_back(msg);
        let mut dropped = Vec::new();
        while q.over_limits(q.ready.len(), q.ready.bytes()) {
            match q.ready.pop_oldest() {
                Some(m) => dropped.push(m),
                None => break,
            }
        }
        if !dropped.is_empty() {
            let qn = q.name.clone();
            self.dead_letter(vhost, &qn, dropped, DeathReason::MaxLen);
        }
        self.dispatch(vhost, qname);
        true
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
}
