//! Time: message TTL and queue expiry with the time passed in (no sleeping), the lent
//! clock, and `poll_timeout`.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

#[test]
fn message_ttl_per_queue_and_per_message_with_dead_lettering() {
    let mut t = T::new();
    let c = t.conn();
    t.exchange(c, "dlx", ExchangeType::Fanout);
    t.queue(c, "dead", Headers::new());
    t.bind(c, "dead", "dlx", "");
    t.queue(c, "ttl", headers([("x-message-ttl", serde_json::json!(1000)), ("x-dead-letter-exchange", serde_json::json!("dlx"))]));
    t.publish(c, "", "ttl", "q-ttl", p()).unwrap();
    let mut short = p();
    short.expiration = Some("100".into());
    t.publish(c, "", "ttl", "m-ttl", short).unwrap();
    t.tick(150);
    // Per-message TTL: RabbitMQ expires at the head only, so "m-ttl" waits behind "q-ttl".
    assert_eq!(t.b.queue_depth("/", "ttl"), Some(2));
    t.tick(900);
    assert_eq!(t.b.queue_depth("/", "ttl"), Some(0));
    let first = t.get(c, "dead").unwrap();
    assert_eq!(first.1, "q-ttl");
    let death = &first.2.headers["x-death"][0];
    assert_eq!(death["reason"], "expired");
    assert_eq!(death["queue"], "ttl");
    assert_eq!(death["count"], 1);
    assert_eq!(first.2.headers["x-first-death-reason"], "expired");
    let second = t.get(c, "dead").unwrap();
    assert_eq!(second.1, "m-ttl");
    assert_eq!(second.2.expiration, None);
    assert_eq!(second.2.headers["x-death"][0]["original-expiration"], "100");
    assert!(t.b.poll_timeout().is_none());
}

#[test]
fn a_lent_clock_is_read_once_per_operation_that_needs_the_time() {
    use std::sync::atomic::{AtomicU64, Ordering};
    // Reads: how often the clock was read. Each read is 100 ms after the last.
    static READS: AtomicU64 = AtomicU64::new(0);
    static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    fn clock() -> Now {
        let n = READS.fetch_add(1, Ordering::SeqCst) + 1;
        Now { instant: *T0.get_or_init(Instant::now) + Duration::from_millis(100 * n), unix_ms: 1_700_000_000_000 + 100 * n }
    }
    let mut b = Broker::new();
    b.set_clock(clock);
    let c = b.connect("/");
    let ch = b.open_channel(c).unwrap();
    let declare = |b: &mut Broker, name: &str, args: Headers| {
        b.tick();
        b.queue_declare(c, ch, &QueueDeclare { queue: name.into(), arguments: args, ..Default::default() }).unwrap();
    };
    let publish = |b: &mut Broker, q: &str, props: Properties| {
        b.tick();
        let m = BasicPublish { exchange: "".into(), routing_key: q.into(), ..Default::default() };
        b.basic_publish(c, ch, &m, Arc::new(Content { properties: props, body: "x".into() })).unwrap();
    };
    declare(&mut b, "plain", Headers::new());
    declare(&mut b, "ttl", headers([("x-message-ttl", serde_json::json!(1000))]));
    let after_declares = READS.load(Ordering::SeqCst);
    // Nothing expires on the plain queue: publishing and consuming there need no time.
    publish(&mut b, "plain", p());
    b.tick();
    let tag = b.basic_consume(c, ch, &BasicConsume { queue: "plain".into(), ..Default::default() }).unwrap();
    b.tick();
    b.basic_ack(c, ch, 1, false).unwrap();
    b.tick();
    b.basic_cancel(c, ch, &tag).unwrap();
    let plain = READS.load(Ordering::SeqCst) - after_declares;
    // A message with a TTL is stamped with the time read when it was published (once), and
    // the delivery of a message that can expire checks it against the time of that operation.
    publish(&mut b, "ttl", p());
    assert_eq!(READS.load(Ordering::SeqCst) - after_declares - plain, 1);
    let mut short = p();
    short.expiration = Some("50".into());
    publish(&mut b, "plain", short);
    b.tick();
    // Read once more at the get: 100 ms after the short message's publish, it has expired.
    assert!(b.basic_get(c, ch, "plain", true).unwrap().is_none());
    b.tick();
    // ...while the other, with 1 s to live from a publish 300 ms ago, is still there.
    assert!(b.basic_get(c, ch, "ttl", true).unwrap().is_some());
    // Only the consume and the cancel (which record when the queue was last used) read it.
    assert_eq!(plain, 2);
}

#[test]
fn poll_timeout_reports_next_expiry() {
    let mut t = T::new();
    let c = t.conn();
    t.queue(c, "q", headers([("x-message-ttl", 500)]));
    assert!(t.b.poll_timeout().is_none());
    t.publish(c, "", "q", "x", p()).unwrap();
    let due = t.b.poll_timeout().unwrap();
    assert_eq!(due, t.t0 + Duration::from_millis(500));
}

#[test]
fn queue_expires_when_unused() {
    let mut t = T::new();
    let c = t.conn();
    t.queue(c, "tmp", headers([("x-expires", 1000)]));
    t.tick(500);
    t.get(c, "tmp");
    t.tick(800);
    assert!(t.b.queue_depth("/", "tmp").is_some(), "basic.get counts as use");
    t.tick(300);
    assert!(t.b.queue_depth("/", "tmp").is_none());
    let err = t.b.queue_declare(c.0, c.1, &QueueDeclare { queue: "bad".into(), arguments: headers([("x-expires", 0)]), ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("invalid arg 'x-expires'"), "{err}");
}
