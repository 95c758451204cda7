//! The memory high watermark and the caps on declarations.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

#[test]
fn publishes_are_refused_over_the_memory_high_watermark_until_consumers_catch_up() {
    let mut t = T::new();
    t.b.set_limits(Limits { memory_high_watermark: Some(1000), ..Default::default() });
    let c = t.conn();
    t.queue(c, "q", Headers::new());
    let body = "x".repeat(400);
    for _ in 0..3 {
        t.publish(c, "", "q", &body, p()).unwrap();
    }
    assert_eq!(t.b.held_bytes(), 1200);
    // Over the watermark: a channel without confirms is closed with RESOURCE_ERROR...
    let err = t.publish(c, "", "q", &body, p()).unwrap_err();
    assert_eq!(err.name(), "ResourceError", "{err}");
    assert!(err.to_string().contains("memory high watermark reached: queues hold 1200 bytes of messages (limit 1000)"), "{err}");
    assert!(!t.b.is_channel_open(c.0, c.1));
    // ... a channel in confirm mode gets a nack, and stays open.
    let c = t.conn();
    t.b.confirm_select(c.0, c.1).unwrap();
    t.publish(c, "", "q", &body, p()).unwrap();
    // (A connection opened while the alarm is raised is told first, as RabbitMQ does.)
    assert!(matches!(t.b.pop_event(c.0), Some(ServerEvent::Blocked { .. })));
    assert!(matches!(t.b.pop_event(c.0), Some(ServerEvent::Nack { delivery_tag: 1, .. })));
    assert_eq!(t.b.queue_depth("/", "q"), Some(3));
    // Consuming brings it under: publishes are accepted again.
    assert_eq!(t.bodies(c, "q").len(), 3);
    assert_eq!(t.b.held_bytes(), 0);
    assert!(matches!(t.b.pop_event(c.0), Some(ServerEvent::Unblocked)));
    t.publish(c, "", "q", &body, p()).unwrap();
    assert!(matches!(t.b.pop_event(c.0), Some(ServerEvent::Ack { delivery_tag: 2, .. })));
    // A deleted queue's messages are no longer held.
    t.b.queue_delete(c.0, c.1, &QueueDelete { queue: "q".into(), ..Default::default() }).unwrap();
    assert_eq!(t.b.held_bytes(), 0);
}

#[test]
fn every_connection_is_told_when_the_memory_alarm_is_raised_and_when_it_clears() {
    let mut t = T::new();
    t.b.set_limits(Limits { memory_high_watermark: Some(1000), ..Default::default() });
    let publisher = t.conn();
    let other = t.conn();
    t.queue(publisher, "q", Headers::new());
    let body = "x".repeat(400);
    t.publish(publisher, "", "q", &body, p()).unwrap();
    t.publish(publisher, "", "q", &body, p()).unwrap();
    // Under the watermark: nobody is told anything.
    assert!(t.b.pop_event(publisher.0).is_none());
    assert!(t.b.pop_event(other.0).is_none());
    // The publish that crosses it is taken (RabbitMQ's alarm too comes after the memory is
    // used); every connection, publishing or not, is told once.
    t.publish(publisher, "", "q", &body, p()).unwrap();
    for c in [publisher, other] {
        match t.b.pop_event(c.0) {
            Some(ServerEvent::Blocked { reason }) => assert_eq!(reason, "low on memory"),
            ev => panic!("expected connection.blocked, got {ev:?}"),
        }
        assert!(t.b.pop_event(c.0).is_none(), "told once");
    }
    // Still over after a refused publish: not told again.
    let c = t.conn();
    assert!(matches!(t.b.pop_event(c.0), Some(ServerEvent::Blocked { .. })), "a new connection is told at once");
    t.b.confirm_select(c.0, c.1).unwrap();
    t.publish(c, "", "q", &body, p()).unwrap();
    assert!(matches!(t.b.pop_event(c.0), Some(ServerEvent::Nack { .. })));
    assert!(t.b.pop_event(other.0).is_none());
    // One message taken: 800 bytes held, under the watermark: unblocked, once, for everyone.
    let got = t.b.basic_get(other.0, other.1, "q", true).unwrap();
    assert!(got.is_some());
    for conn in [publisher.0, other.0, c.0] {
        assert!(matches!(t.b.pop_event(conn), Some(ServerEvent::Unblocked)), "connection {conn}");
        assert!(t.b.pop_event(conn).is_none());
    }
    // Without a watermark there is no alarm, however much is held.
    t.b.set_limits(Limits::default());
    for _ in 0..10 {
        t.publish(publisher, "", "q", &body, p()).unwrap();
    }
    assert!(t.b.pop_event(publisher.0).is_none());
}

#[test]
fn declarations_past_the_caps_are_refused() {
    let mut t = T::new();
    t.b.set_limits(Limits { max_queues: Some(2), max_exchanges: Some(1), max_bindings: Some(2), ..Default::default() });
    let c = t.conn();
    t.queue(c, "a", Headers::new());
    t.queue(c, "b", Headers::new());
    // Redeclaring is fine; a third queue is not.
    t.queue(c, "a", Headers::new());
    let err = t.b.queue_declare(c.0, c.1, &QueueDeclare { queue: "c".into(), ..Default::default() }).unwrap_err();
    assert_eq!(err.name(), "PreconditionFailed");
    assert!(err.to_string().contains("cannot declare queue 'c' in vhost '/': queue limit (2) is reached"), "{err}");
    let c = t.conn();
    t.exchange(c, "x", ExchangeType::Direct);
    let err = t.b.exchange_declare(c.0, c.1, &ExchangeDeclare { exchange: "y".into(), kind: ExchangeType::Direct, ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("exchange limit (1) is reached"), "{err}");
    let c = t.conn();
    t.bind(c, "a", "x", "1");
    t.bind(c, "b", "x", "1");
    t.bind(c, "a", "x", "1"); // the same binding again
    let err = t.b.queue_bind(c.0, c.1, &QueueBind { queue: "a".into(), exchange: "x".into(), routing_key: "2".into(), ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("binding limit (2) is reached"), "{err}");
    let c = t.conn();
    let err = t.b.exchange_bind(c.0, c.1, &ExchangeBind { destination: "x".into(), source: "amq.direct".into(), routing_key: "k".into(), ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("binding limit (2) is reached"), "{err}");
    // The refused binding was not kept: a message to key 2 routes nowhere.
    let c = t.conn();
    t.publish(c, "x", "2", "m", p()).unwrap();
    assert_eq!(t.b.queue_depth("/", "a"), Some(0));
    // Deleting makes room.
    t.b.queue_delete(c.0, c.1, &QueueDelete { queue: "b".into(), ..Default::default() }).unwrap();
    t.queue(c, "c", Headers::new());
}
