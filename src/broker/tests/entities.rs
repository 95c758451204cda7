//! Exchanges, queues and connections: declare and its equivalence checks, exclusive and
//! auto-delete queues, delete, virtual hosts, forced close, snapshots.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

#[test]
fn passive_declare_and_equivalence() {
    let mut t = T::new();
    let c = t.conn();
    let err = t.b.queue_declare(c.0, c.1, &QueueDeclare { queue: "nope".into(), passive: true, ..Default::default() }).unwrap_err();
    assert_eq!(err.name(), "NotFound");
    let c = t.conn();
    t.queue(c, "q", Headers::new());
    let err = t.b.queue_declare(c.0, c.1, &QueueDeclare { queue: "q".into(), durable: false, ..Default::default() }).unwrap_err();
    assert_eq!(err.name(), "PreconditionFailed");
    assert!(err.to_string().contains("inequivalent arg 'durable'"), "{err}");
    let c = t.conn();
    t.exchange(c, "x", ExchangeType::Direct);
    let err = t.b.exchange_declare(c.0, c.1, &ExchangeDeclare { exchange: "x".into(), kind: ExchangeType::Fanout, durable: true, ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("inequivalent arg 'type' for exchange 'x'"), "{err}");
    let c = t.conn();
    let err = t.b.exchange_declare(c.0, c.1, &ExchangeDeclare { exchange: "amq.mine".into(), ..Default::default() }).unwrap_err();
    assert_eq!(err.name(), "AccessRefused");
    let c = t.conn();
    let err = t.b.exchange_declare(c.0, c.1, &ExchangeDeclare { exchange: "weird".into(), kind: ExchangeType::Custom("x-delayed".into()), ..Default::default() }).unwrap_err();
    assert!(matches!(err, Error::Connection { code: ReplyCode::CommandInvalid, .. }));
    assert!(!t.b.is_open(c.0));
}

#[test]
fn server_named_queue_and_counts() {
    let mut t = T::new();
    let c = t.conn();
    let ok = t.b.queue_declare(c.0, c.1, &QueueDeclare { queue: String::new(), exclusive: true, ..Default::default() }).unwrap();
    assert!(ok.queue.starts_with("amq.gen-"), "{}", ok.queue);
    assert_eq!(ok.queue.len(), "amq.gen-".len() + 22);
    t.publish(c, "", &ok.queue, "m", p()).unwrap();
    t.consume(c, &ok.queue, "", false);
    let again = t.b.queue_declare(c.0, c.1, &QueueDeclare { queue: ok.queue.clone(), passive: true, ..Default::default() }).unwrap();
    assert_eq!((again.message_count, again.consumer_count), (0, 1));
}

#[test]
fn exclusive_queues_are_locked_and_deleted_with_their_connection() {
    let mut t = T::new();
    let a = t.conn();
    let b = t.conn();
    t.b.queue_declare(a.0, a.1, &QueueDeclare { queue: "ex".into(), exclusive: true, ..Default::default() }).unwrap();
    let err = t.b.basic_consume(b.0, b.1, &BasicConsume { queue: "ex".into(), ..Default::default() }).unwrap_err();
    assert_eq!(err.name(), "ResourceLocked");
    t.b.close_connection(a.0);
    assert_eq!(t.b.queue_depth("/", "ex"), None);
}

#[test]
fn auto_delete_queue_goes_with_its_last_consumer_and_exchange_with_its_last_binding() {
    let mut t = T::new();
    let c = t.conn();
    t.b.exchange_declare(c.0, c.1, &ExchangeDeclare { exchange: "ad".into(), kind: ExchangeType::Fanout, auto_delete: true, ..Default::default() }).unwrap();
    t.b.queue_declare(c.0, c.1, &QueueDeclare { queue: "q".into(), auto_delete: true, ..Default::default() }).unwrap();
    t.bind(c, "q", "ad", "");
    // Never consumed: not deleted.
    t.tick(10);
    assert!(t.b.queue_depth("/", "q").is_some());
    let tag = t.consume(c, "q", "", true);
    t.b.basic_cancel(c.0, c.1, &tag).unwrap();
    assert!(t.b.queue_depth("/", "q").is_none());
    let snap = t.b.snapshot("/").unwrap();
    assert!(!snap.exchanges.iter().any(|x| x.name == "ad"));
}

#[test]
fn deleting_a_queue_cancels_its_consumers() {
    let mut t = T::new();
    let c = t.conn();
    t.queue(c, "q", Headers::new());
    t.consume(c, "q", "ct", false);
    t.publish(c, "", "q", "x", p()).unwrap();
    let d = t.deliveries(c.0);
    let n = t.b.queue_delete(c.0, c.1, &QueueDelete { queue: "q".into(), ..Default::default() }).unwrap();
    assert_eq!(n, 0);
    assert!(matches!(t.b.pop_event(c.0), Some(ServerEvent::Cancel { .. })));
    // The delivered message can still be acked.
    t.b.basic_ack(c.0, c.1, d[0].2, false).unwrap();
    assert!(t.b.is_channel_open(c.0, c.1));
}

#[test]
fn queue_delete_conditions() {
    let mut t = T::new();
    let c = t.conn();
    t.queue(c, "q", Headers::new());
    t.publish(c, "", "q", "x", p()).unwrap();
    let err = t.b.queue_delete(c.0, c.1, &QueueDelete { queue: "q".into(), if_empty: true, ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("not empty"));
    let c = t.conn();
    t.consume(c, "q", "", true);
    let c2 = t.conn();
    let err = t.b.queue_delete(c2.0, c2.1, &QueueDelete { queue: "q".into(), if_unused: true, ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("in use"));
}

#[test]
fn vhosts_are_isolated() {
    let mut t = T::new();
    let a = t.b.connect("/a");
    let cha = t.b.open_channel(a).unwrap();
    let b = t.b.connect("/b");
    let chb = t.b.open_channel(b).unwrap();
    t.b.queue_declare(a, cha, &QueueDeclare { queue: "q".into(), ..Default::default() }).unwrap();
    let err = t.b.queue_declare(b, chb, &QueueDeclare { queue: "q".into(), passive: true, ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("in vhost '/b'"));
}

#[test]
fn force_close_all_reports_connection_closed() {
    let mut t = T::new();
    let c = t.conn();
    t.queue(c, "q", Headers::new());
    t.b.force_close_all("broker restart");
    assert!(!t.b.is_open(c.0));
    match t.b.pop_event(c.0) {
        Some(ServerEvent::ConnectionClosed { error }) => assert!(error.is_recoverable_connection_error()),
        other => panic!("{other:?}"),
    }
    assert!(t.b.pop_event(c.0).is_none());
}

#[test]
fn snapshot_types_serialize_as_their_wire_names() {
    let mut t = T::new();
    let c = t.conn();
    t.exchange(c, "src", ExchangeType::Topic);
    t.exchange(c, "dst", ExchangeType::Fanout);
    t.queue(c, "q", Headers::new());
    t.bind(c, "q", "src", "a.#");
    t.b.exchange_bind(c.0, c.1, &ExchangeBind { destination: "dst".into(), source: "src".into(), routing_key: "b".into(), ..Default::default() }).unwrap();
    let snap = t.b.snapshot("/").unwrap();
    let src = snap.exchanges.iter().find(|x| x.name == "src").unwrap();
    assert_eq!(src.kind, ExchangeType::Topic);
    let kinds: Vec<DestinationType> = snap.bindings.iter().map(|b| b.destination_type).collect();
    assert_eq!(kinds, vec![DestinationType::Exchange, DestinationType::Queue]);
    let json = serde_json::to_value(&snap).unwrap();
    let src = json["exchanges"].as_array().unwrap().iter().find(|x| x["name"] == "src").unwrap();
    assert_eq!(src["type"], "topic");
    assert_eq!(json["bindings"][0]["destination_type"], "exchange");
    assert_eq!(json["bindings"][1]["destination_type"], "queue");
}
