//! Dead-lettering: messages rejected, expired or dropped by overflow are republished to the
//! queue's dead-letter exchange with an `x-death` history, as RabbitMQ does.

use std::sync::Arc;

use crate::proto::methods::{Content, Name};
use crate::value::{Headers, Value};

use super::queue::QueuedMessage;
use super::Broker;

/// Why a message is dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DeathReason {
    /// `basic.reject` or `basic.nack` without requeue.
    Rejected,
    /// Its message TTL (per queue or per message) passed.
    Expired,
    /// The queue's `x-max-length`/`x-max-length-bytes` overflowed.
    MaxLen,
}

impl DeathReason {
    /// The `reason` RabbitMQ writes in `x-death` entries and `x-first-death-reason`.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::MaxLen => "maxlen",
        }
    }
}

impl Broker {
    /// Dead-letter `msgs` from queue `qname` for `reason`, or drop them when the queue has no
    /// dead-letter exchange.
    pub(super) fn dead_letter(&mut self, vhost: &str, qname: &Name, msgs: Vec<QueuedMessage>, reason: DeathReason) {
        for m in &msgs {
            super::journal::forget(&mut self.journal, vhost, qname, m);
        }
        let Some(q) = self.vhosts.get_mut(vhost).and_then(|v| v.queues.get_mut(qname)) else { return };
        match reason {
            DeathReason::Expired => q.counters.expired += msgs.len() as u64,
            // Counted as rejected when settled.
            DeathReason::Rejected => {}
            DeathReason::MaxLen => q.counters.dropped += msgs.len() as u64,
        }
        let Some(dlx) = q.dlx.clone() else { return };
        q.counters.dead_lettered += msgs.len() as u64;
        let dlrk = q.dlrk.clone();
        let unix_secs = self.time.get().unix_ms / 1000;
        let reason_str = reason.as_str();
        // An `x-death` entry is kept per (queue, reason).
        let same_death = |d: &Value| {
            d.get("queue").and_then(Value::as_str) == Some(qname) && d.get("reason").and_then(Value::as_str) == Some(reason_str)
        };
        for m in msgs {
            let mut props = m.content.properties.clone();
            let original_expiration = if reason == DeathReason::Expired { props.expiration.take() } else { None };
            let mut deaths: Vec<Value> = match props.headers.get("x-death") {
                Some(Value::Array(a)) => a.clone(),
                _ => Vec::new(),
            };
            // A message that cycles back to a queue it already died in, with no rejection on
            // the way, is dropped (RabbitMQ's cycle detection).
            let rejected = Some(DeathReason::Rejected.as_str());
            let cycled = deaths.iter().any(same_death)
                && reason != DeathReason::Rejected
                && !deaths.iter().any(|d| d.get("reason").and_then(Value::as_str) == rejected);
            if cycled {
                continue;
            }
            let existing = deaths.iter().position(same_death);
            let mut entry = match existing {
                Some(i) => match deaths.remove(i) {
                    Value::Object(o) => o,
                    _ => Headers::new(),
                },
                None => Headers::new(),
            };
            let count = entry.get("count").and_then(Value::as_u64).unwrap_or(0) + 1;
            entry.insert("count".into(), count.into());
            entry.insert("reason".into(), reason_str.into());
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
                props.headers.insert("x-first-death-reason".into(), reason_str.into());
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
}
