//! Read-only views of the broker for UIs, metrics and tests.

use serde::Serialize;

use crate::proto::methods::ExchangeType;
use crate::value::Headers;

use super::{Broker, Dest};

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
    /// Type (serialized as its name: `"direct"`, `"topic"`, ...).
    #[serde(rename = "type")]
    pub kind: ExchangeType,
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
    /// Whether the destination is a queue or an exchange.
    pub destination_type: DestinationType,
    /// Binding key.
    pub routing_key: String,
    /// Binding arguments.
    pub arguments: Headers,
}

/// What a binding leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationType {
    /// A queue (`queue.bind`); serialized as `"queue"`.
    Queue,
    /// An exchange (`exchange.bind`); serialized as `"exchange"`.
    Exchange,
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

impl VHostSnapshot {
    /// The compact JSON text `serde_json::to_writer` writes for the snapshot (the derived
    /// `Serialize`: fields in order), appended to `out` — in the wasm modules without
    /// serde_json's serializer.
    #[cfg_attr(not(all(target_arch = "wasm32", feature = "facade")), allow(dead_code))] // (the wasm connection's snapshot)
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        use crate::json_print::Obj;
        fn list<T>(out: &mut Vec<u8>, items: &[T], write: impl Fn(&mut Obj<'_>, &T)) {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let mut o = Obj::new(out);
                write(&mut o, item);
                o.end();
            }
            out.push(b']');
        }
        let mut o = Obj::new(out);
        list(o.key("exchanges"), &self.exchanges, |o, x| {
            o.str("name", &x.name).str("type", x.kind.as_str()).bool("durable", x.durable).bool("auto_delete", x.auto_delete);
            o.bool("internal", x.internal).map("arguments", &x.arguments);
        });
        list(o.key("queues"), &self.queues, |o, q| {
            o.str("name", &q.name).num("messages_ready", q.messages_ready).num("messages_unacknowledged", q.messages_unacknowledged);
            o.num("bytes_ready", q.bytes_ready).num("consumers", q.consumers.into()).bool("durable", q.durable).bool("auto_delete", q.auto_delete);
            o.bool("exclusive", q.exclusive).map("arguments", &q.arguments).num("published", q.published).num("delivered", q.delivered);
            o.num("acked", q.acked).num("rejected", q.rejected).num("expired", q.expired).num("dead_lettered", q.dead_lettered).num("dropped", q.dropped);
        });
        list(o.key("bindings"), &self.bindings, |o, b| {
            let kind = match b.destination_type {
                DestinationType::Queue => "queue",
                DestinationType::Exchange => "exchange",
            };
            o.str("source", &b.source).str("destination", &b.destination).str("destination_type", kind);
            o.str("routing_key", &b.routing_key).map("arguments", &b.arguments);
        });
        o.end();
    }
}

impl Broker {
    /// A snapshot of a virtual host: exchanges, queues with depths and counters, bindings.
    pub fn snapshot(&self, vhost: &str) -> Option<VHostSnapshot> {
        let v = self.vhosts.get(vhost)?;
        let mut exchanges: Vec<ExchangeInfo> = v
            .exchanges
            .values()
            .map(|x| ExchangeInfo {
                name: x.decl.exchange.clone(),
                kind: x.decl.kind.clone(),
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
                    Dest::Queue(q) => (q.to_string(), DestinationType::Queue),
                    Dest::Exchange(e) => (e.to_string(), DestinationType::Exchange),
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
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// The snapshot's JSON is the object the derived `Serialize` gives.
    #[test]
    fn snapshots_are_written_as_serde_json_writes_them() {
        let args = crate::value::headers([("x-max-priority", serde_json::json!(10)), ("é\"", serde_json::json!([1.5, null, "\u{0}"]))]);
        let x = |name: &str, kind| ExchangeInfo { name: name.into(), kind, durable: true, auto_delete: false, internal: true, arguments: args.clone() };
        let q = |name: &str| QueueInfo {
            name: name.into(),
            messages_ready: 1,
            messages_unacknowledged: u64::MAX,
            bytes_ready: 3,
            consumers: u32::MAX,
            durable: false,
            auto_delete: true,
            exclusive: true,
            arguments: Headers::new(),
            published: 4,
            delivered: 5,
            acked: 6,
            rejected: 7,
            expired: 8,
            dead_lettered: 9,
            dropped: 10,
        };
        let b = |dest: &str, destination_type| BindingInfo {
            source: "x".into(),
            destination: dest.into(),
            destination_type,
            routing_key: "a.*\n".into(),
            arguments: args.clone(),
        };
        for s in [
            VHostSnapshot { exchanges: vec![], queues: vec![], bindings: vec![] },
            VHostSnapshot {
                exchanges: vec![x("", ExchangeType::Direct), x("t", ExchangeType::Custom("x-delayed-message".into()))],
                queues: vec![q("q1"), q("q\u{1f600}")],
                bindings: vec![b("q1", DestinationType::Queue), b("t", DestinationType::Exchange)],
            },
        ] {
            let mut out = Vec::new();
            s.write_json(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
        }
    }
}
