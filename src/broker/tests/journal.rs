//! The journal of durable state and recovery from it: what survives a restart is what
//! RabbitMQ keeps (durable exchanges and queues, bindings between durable ends, persistent
//! messages in durable queues), and nothing that left a queue comes back.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use std::collections::BTreeMap;

/// What a store does with the records: the latest state of each durable thing.
#[derive(Default)]
struct Store {
    exchanges: SortedMap<(String, String), ExchangeDeclare>,
    queues: SortedMap<(String, String), QueueDeclare>,
    bindings: Vec<DurableBinding>,
    messages: BTreeMap<u64, StoredMessage>,
}

impl Store {
    fn apply(&mut self, records: Vec<Record>) {
        for r in records {
            match r {
                Record::ExchangeDeclared { vhost, decl } => {
                    self.exchanges.insert((vhost.to_string(), decl.exchange.clone()), decl);
                }
                Record::ExchangeDeleted { vhost, exchange } => {
                    self.exchanges.remove(&(vhost.to_string(), exchange.to_string()));
                    self.bindings.retain(|b| !(b.vhost == *vhost && (b.source == *exchange || (b.to_exchange && b.destination == *exchange))));
                }
                Record::QueueDeclared { vhost, decl } => {
                    self.queues.insert((vhost.to_string(), decl.queue.clone()), decl);
                }
                Record::QueueDeleted { vhost, queue } => {
                    self.queues.remove(&(vhost.to_string(), queue.to_string()));
                    self.bindings.retain(|b| !(b.vhost == *vhost && !b.to_exchange && b.destination == *queue));
                    self.messages.retain(|_, m| !(m.vhost == vhost && m.queue == queue));
                }
                Record::Bound(b) => {
                    if !self.bindings.contains(&b) {
                        self.bindings.push(b);
                    }
                }
                Record::Unbound(b) => self.bindings.retain(|x| *x != b),
                Record::MessageStored(m) => {
                    self.messages.insert(m.id, m);
                }
                Record::MessageRemoved { id, .. } => {
                    self.messages.remove(&id);
                }
            }
        }
    }

    fn recovered(&self) -> Recovered {
        Recovered {
            exchanges: self.exchanges.iter().map(|((v, _), d)| (v.clone(), d.clone())).collect(),
            queues: self.queues.iter().map(|((v, _), d)| (v.clone(), d.clone())).collect(),
            bindings: self.bindings.clone(),
            messages: self.messages.values().cloned().collect(),
        }
    }
}

fn persistent() -> Properties {
    Properties { delivery_mode: Some(2), ..Default::default() }
}

fn journalled() -> T {
    let mut t = T::new();
    t.b.enable_journal();
    t
}

/// Restart: a new broker from what the store kept.
fn restart(store: &Store) -> T {
    let mut t = journalled();
    let failed = t.b.restore(store.recovered());
    assert!(failed.is_empty(), "{failed:?}");
    t
}

#[test]
fn durable_things_and_persistent_messages_survive_and_nothing_else() {
    let mut t = journalled();
    let mut store = Store::default();
    let c = t.conn();
    t.exchange(c, "orders", ExchangeType::Direct);
    t.b.exchange_declare(c.0, c.1, &ExchangeDeclare { exchange: "scratch".into(), kind: ExchangeType::Fanout, ..Default::default() }).unwrap();
    t.queue(c, "kept", Headers::new());
    t.b.queue_declare(c.0, c.1, &QueueDeclare { queue: "transient-q".into(), ..Default::default() }).unwrap();
    t.b.queue_declare(c.0, c.1, &QueueDeclare { queue: "mine".into(), durable: true, exclusive: true, ..Default::default() }).unwrap();
    t.bind(c, "kept", "orders", "new");
    t.bind(c, "transient-q", "orders", "new");
    t.bind(c, "kept", "scratch", "");
    for i in 0..5 {
        t.publish(c, "orders", "new", &format!("p{i}"), persistent()).unwrap();
    }
    t.publish(c, "orders", "new", "transient", p()).unwrap();
    t.publish(c, "", "mine", "exclusive", persistent()).unwrap();
    // Two settled: acked, and taken with no_ack.
    let (tag, body, _) = t.get(c, "kept").unwrap();
    assert_eq!(body, "p0");
    t.b.basic_ack(c.0, c.1, tag, false).unwrap();
    assert_eq!(t.b.basic_get(c.0, c.1, "kept", true).unwrap().unwrap().delivery.content.body, "p1");
    // One delivered and not acked: it is still the broker's.
    let (_, body, _) = t.get(c, "kept").unwrap();
    assert_eq!(body, "p2");
    store.apply(t.b.take_journal());
    assert!(!t.b.has_journal());

    let mut t = restart(&store);
    let c = t.conn();
    let ok = t.b.queue_declare(c.0, c.1, &QueueDeclare { queue: "kept".into(), passive: true, ..Default::default() }).unwrap();
    assert_eq!(ok.message_count, 3);
    let got = t.b.basic_get(c.0, c.1, "kept", true).unwrap().unwrap();
    assert!(got.delivery.redelivered, "recovered messages may have been seen");
    assert_eq!(got.delivery.content.body, "p2");
    assert_eq!(t.bodies(c, "kept"), ["p3", "p4"]);
    // The binding came back: a new persistent message routes.
    t.publish(c, "orders", "new", "after", persistent()).unwrap();
    assert_eq!(t.bodies(c, "kept"), ["after"]);
    // Neither the transient queue, the exclusive one, nor the transient exchange came back.
    for q in ["transient-q", "mine"] {
        let c = t.conn();
        let err = t.b.queue_declare(c.0, c.1, &QueueDeclare { queue: q.into(), passive: true, ..Default::default() }).unwrap_err();
        assert_eq!(err.name(), "NotFound", "{q}: {err}");
    }
    store.apply(t.b.take_journal());
    // The no_ack gets above removed what they took: a second restart has nothing.
    let mut t = restart(&store);
    let c = t.conn();
    assert!(t.bodies(c, "kept").is_empty());
    let err = t.b.exchange_declare(c.0, c.1, &ExchangeDeclare { exchange: "scratch".into(), passive: true, ..Default::default() }).unwrap_err();
    assert_eq!(err.name(), "NotFound", "{err}");
}

#[test]
fn deletes_purges_dead_letters_and_unbinds_are_journalled() {
    let mut t = journalled();
    let mut store = Store::default();
    let c = t.conn();
    t.exchange(c, "dlx", ExchangeType::Fanout);
    t.exchange(c, "x", ExchangeType::Direct);
    t.queue(c, "dead", Headers::new());
    t.bind(c, "dead", "dlx", "");
    t.queue(c, "work", headers([("x-dead-letter-exchange", "dlx")]));
    t.queue(c, "purged", Headers::new());
    t.queue(c, "gone", Headers::new());
    t.bind(c, "work", "x", "w");
    t.publish(c, "", "work", "rejected", persistent()).unwrap();
    t.publish(c, "", "purged", "a", persistent()).unwrap();
    t.publish(c, "", "gone", "b", persistent()).unwrap();
    let (tag, _, _) = t.get(c, "work").unwrap();
    t.b.basic_reject(c.0, c.1, tag, false).unwrap();
    assert_eq!(t.b.queue_purge(c.0, c.1, "purged").unwrap(), 1);
    t.b.queue_delete(c.0, c.1, &QueueDelete { queue: "gone".into(), ..Default::default() }).unwrap();
    t.b.queue_unbind(c.0, c.1, &QueueBind { queue: "work".into(), exchange: "x".into(), routing_key: "w".into(), ..Default::default() }).unwrap();
    store.apply(t.b.take_journal());

    let mut t = restart(&store);
    let c = t.conn();
    assert!(t.bodies(c, "work").is_empty());
    assert!(t.bodies(c, "purged").is_empty());
    assert_eq!(t.bodies(c, "dead"), ["rejected"], "dead-lettered into a durable queue: kept there");
    let err = t.b.queue_declare(c.0, c.1, &QueueDeclare { queue: "gone".into(), passive: true, ..Default::default() }).unwrap_err();
    assert_eq!(err.name(), "NotFound", "{err}");
    let c = t.conn();
    t.publish(c, "x", "w", "unrouted", persistent()).unwrap();
    assert!(t.bodies(c, "work").is_empty(), "the unbind was kept");
}

#[test]
fn a_broker_without_journal_records_nothing() {
    let mut t = T::new();
    let c = t.conn();
    t.queue(c, "q", Headers::new());
    t.publish(c, "", "q", "m", persistent()).unwrap();
    assert!(!t.b.has_journal());
    assert!(t.b.take_journal().is_empty());
}

#[test]
fn confirms_wait_until_the_journal_is_kept_and_keep_their_order() {
    let mut t = journalled();
    let c = t.conn();
    t.queue(c, "q", Headers::new());
    t.b.confirm_select(c.0, c.1).unwrap();
    t.publish(c, "", "q", "stored", persistent()).unwrap();
    let first = t.b.journal_position();
    t.publish(c, "", "q", "transient", p()).unwrap();
    assert!(t.b.pop_event(c.0).is_none(), "not confirmed before it is kept");
    assert!(t.b.journal_pending());
    let records = t.b.take_journal();
    assert_eq!(records.len(), 2, "the queue and one message: {records:?}");
    t.b.journal_kept(first);
    // The transient publish's confirm came after a held one: it waited too, and both go now.
    let tags: Vec<u64> = std::iter::from_fn(|| t.b.pop_event(c.0))
        .filter_map(|e| if let ServerEvent::Ack { delivery_tag, .. } = e { Some(delivery_tag) } else { None })
        .collect();
    assert_eq!(tags, [1, 2]);
    assert!(!t.b.journal_pending());
    // Nothing pending: confirms go at once.
    t.publish(c, "", "q", "transient again", p()).unwrap();
    assert!(matches!(t.b.pop_event(c.0), Some(ServerEvent::Ack { delivery_tag: 3, .. })));
}
