//! Consumers and deliveries: round robin, prefetch windows, acks, rejects, recover,
//! consumer priorities and exclusive consumers.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

#[test]
fn consumers_round_robin_with_prefetch() {
    let mut t = T::new();
    let (conn, ch1) = t.conn();
    let ch2 = t.b.open_channel(conn).unwrap();
    t.queue((conn, ch1), "work", Headers::new());
    t.b.basic_qos(conn, ch1, BasicQos { prefetch_count: 1, ..Default::default() }).unwrap();
    t.b.basic_qos(conn, ch2, BasicQos { prefetch_count: 1, ..Default::default() }).unwrap();
    t.consume((conn, ch1), "work", "c1", false);
    t.consume((conn, ch2), "work", "c2", false);
    for i in 0..4 {
        t.publish((conn, ch1), "", "work", &format!("m{i}"), p()).unwrap();
    }
    let d = t.deliveries(conn);
    assert_eq!(d.len(), 2, "prefetch 1 each: {d:?}");
    assert_eq!(d[0].1, "c1");
    assert_eq!(d[1].1, "c2");
    assert_eq!(t.b.queue_depth("/", "work"), Some(2));
    t.b.basic_ack(conn, ch2, d[1].2, false).unwrap();
    let d2 = t.deliveries(conn);
    assert_eq!(d2.len(), 1);
    assert_eq!((d2[0].1.as_str(), d2[0].3.as_str()), ("c2", "m2"));
}

#[test]
fn global_prefetch_limits_the_channel() {
    let mut t = T::new();
    let c = t.conn();
    t.queue(c, "a", Headers::new());
    t.queue(c, "b", Headers::new());
    t.b.basic_qos(c.0, c.1, BasicQos { prefetch_count: 3, global: true, ..Default::default() }).unwrap();
    t.consume(c, "a", "ca", false);
    t.consume(c, "b", "cb", false);
    for i in 0..5 {
        t.publish(c, "", "a", &format!("a{i}"), p()).unwrap();
        t.publish(c, "", "b", &format!("b{i}"), p()).unwrap();
    }
    let d = t.deliveries(c.0);
    assert_eq!(d.len(), 3);
    t.b.basic_ack(c.0, c.1, 0, true).unwrap();
    assert_eq!(t.deliveries(c.0).len(), 3);
}

#[test]
fn ack_errors_and_multiple() {
    let mut t = T::new();
    let c = t.conn();
    t.queue(c, "q", Headers::new());
    for i in 0..3 {
        t.publish(c, "", "q", &format!("{i}"), p()).unwrap();
    }
    let (t1, ..) = t.get(c, "q").unwrap();
    let (t2, ..) = t.get(c, "q").unwrap();
    let (t3, ..) = t.get(c, "q").unwrap();
    t.b.basic_ack(c.0, c.1, t2, true).unwrap();
    // t1 and t2 are gone; acking t1 again is an unknown delivery tag.
    let err = t.b.basic_ack(c.0, c.1, t1, false).unwrap_err();
    assert!(err.to_string().contains("unknown delivery tag 1"), "{err}");
    assert!(!t.b.is_channel_open(c.0, c.1));
    // Closing the channel requeued t3.
    let _ = t3;
    let c2 = t.conn();
    assert_eq!(t.bodies(c2, "q"), vec!["2"]);
}

#[test]
fn reject_requeue_and_redelivered() {
    let mut t = T::new();
    let c = t.conn();
    t.queue(c, "q", Headers::new());
    t.publish(c, "", "q", "a", p()).unwrap();
    t.publish(c, "", "q", "b", p()).unwrap();
    let ok = t.b.basic_get(c.0, c.1, "q", false).unwrap().unwrap();
    assert!(!ok.delivery.redelivered);
    t.b.basic_reject(c.0, c.1, ok.delivery.delivery_tag, true).unwrap();
    let ok = t.b.basic_get(c.0, c.1, "q", false).unwrap().unwrap();
    assert_eq!(&ok.delivery.content.body[..], b"a");
    assert!(ok.delivery.redelivered);
    t.b.basic_reject(c.0, c.1, ok.delivery.delivery_tag, false).unwrap();
    assert_eq!(t.bodies(c, "q"), vec!["b"]);
}

#[test]
fn channel_close_and_recover_requeue_in_order() {
    let mut t = T::new();
    let c = t.conn();
    t.queue(c, "q", Headers::new());
    for i in 0..3 {
        t.publish(c, "", "q", &format!("{i}"), p()).unwrap();
    }
    t.consume(c, "q", "ctag", false);
    assert_eq!(t.deliveries(c.0).len(), 3);
    t.b.basic_recover(c.0, c.1, true).unwrap();
    let d = t.deliveries(c.0);
    assert_eq!(d.iter().map(|x| x.3.as_str()).collect::<Vec<_>>(), vec!["0", "1", "2"]);
    assert!(t.b.basic_recover(c.0, c.1, false).is_err());
    t.b.close_channel(c.0, c.1).unwrap();
    let c2 = t.conn();
    assert_eq!(t.bodies(c2, "q"), vec!["0", "1", "2"]);
}

#[test]
fn consumer_priorities() {
    let mut t = T::new();
    let c = t.conn();
    t.queue(c, "q", Headers::new());
    t.b.basic_qos(c.0, c.1, BasicQos { prefetch_count: 1, ..Default::default() }).unwrap();
    t.b.basic_consume(c.0, c.1, &BasicConsume { queue: "q".into(), consumer_tag: "low".into(), ..Default::default() }).unwrap();
    t.b.basic_consume(c.0, c.1, &BasicConsume { queue: "q".into(), consumer_tag: "high".into(), arguments: headers([("x-priority", 10)]), ..Default::default() }).unwrap();
    for i in 0..2 {
        t.publish(c, "", "q", &format!("{i}"), p()).unwrap();
    }
    let d = t.deliveries(c.0);
    assert_eq!(d[0].1, "high");
    assert_eq!(d[1].1, "low", "the high priority consumer is blocked by its prefetch");
}

#[test]
fn an_exclusive_consumer_is_released_when_its_channel_closes() {
    let mut t = T::new();
    let a = t.conn();
    t.queue(a, "q", Headers::new());
    t.b.basic_consume(a.0, a.1, &BasicConsume { queue: "q".into(), consumer_tag: "ex".into(), exclusive: true, ..Default::default() }).unwrap();
    t.b.close_channel(a.0, a.1).unwrap();
    let b = t.conn();
    t.consume(b, "q", "next", true);
}
