//! Broker tests: time is passed in, so TTL and expiry are tested without sleeping.

use std::sync::Arc;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use web_time::{Duration, Instant};

use super::*;
use crate::error::Result;
use crate::properties::Properties;
use crate::spec::{BasicConsume, BasicPublish, BasicQos, Content, ExchangeBind, ExchangeDeclare, ExchangeType, QueueBind, QueueDeclare, QueueDeclareOk, QueueDelete, ServerEvent};
use crate::value::headers;

struct T {
    b: Broker,
    t0: Instant,
    now_ms: u64,
}

impl T {
    fn new() -> Self {
        let b = Broker::new();
        let t0 = Instant::now();
        let mut t = T { b, t0, now_ms: 0 };
        t.tick(0);
        t
    }
    fn tick(&mut self, ms: u64) {
        self.now_ms += ms;
        let now = Now { instant: self.t0 + Duration::from_millis(self.now_ms), unix_ms: 1_700_000_000_000 + self.now_ms };
        self.b.handle_timeout(now);
    }
    fn conn(&mut self) -> (ConnId, ChannelId) {
        let c = self.b.connect("/");
        let ch = self.b.open_channel(c).unwrap();
        (c, ch)
    }
    fn exchange(&mut self, c: (ConnId, ChannelId), name: &str, kind: ExchangeType) {
        self.b
            .exchange_declare(c.0, c.1, &ExchangeDeclare { exchange: name.into(), kind, durable: true, ..Default::default() })
            .unwrap();
    }
    fn queue(&mut self, c: (ConnId, ChannelId), name: &str, args: Headers) -> QueueDeclareOk {
        self.b
            .queue_declare(c.0, c.1, &QueueDeclare { queue: name.into(), durable: true, arguments: args, ..Default::default() })
            .unwrap()
    }
    fn bind(&mut self, c: (ConnId, ChannelId), q: &str, x: &str, rk: &str) {
        self.b
            .queue_bind(c.0, c.1, &QueueBind { queue: q.into(), exchange: x.into(), routing_key: rk.into(), ..Default::default() })
            .unwrap();
    }
    fn publish(&mut self, c: (ConnId, ChannelId), x: &str, rk: &str, body: &str, props: Properties) -> Result<()> {
        self.b.basic_publish(
            c.0,
            c.1,
            &BasicPublish { exchange: x.into(), routing_key: rk.into(), ..Default::default() },
            Arc::new(Content { properties: props, body: body.as_bytes().to_vec().into() }),
        )
    }
    fn get(&mut self, c: (ConnId, ChannelId), q: &str) -> Option<(u64, String, Properties)> {
        self.b.basic_get(c.0, c.1, q, false).unwrap().map(|ok| {
            (
                ok.delivery.delivery_tag,
                String::from_utf8(ok.delivery.content.body.to_vec()).unwrap(),
                ok.delivery.content.properties.clone(),
            )
        })
    }
    fn bodies(&mut self, c: (ConnId, ChannelId), q: &str) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(ok) = self.b.basic_get(c.0, c.1, q, true).unwrap() {
            out.push(String::from_utf8(ok.delivery.content.body.to_vec()).unwrap());
        }
        out
    }
    fn consume(&mut self, c: (ConnId, ChannelId), q: &str, tag: &str, no_ack: bool) -> Name {
        self.b
            .basic_consume(c.0, c.1, &BasicConsume { queue: q.into(), consumer_tag: tag.into(), no_ack, ..Default::default() })
            .unwrap()
    }
    fn deliveries(&mut self, conn: ConnId) -> Vec<(u32, String, u64, String)> {
        let mut v = Vec::new();
        while let Some(ev) = self.b.pop_event(conn) {
            if let ServerEvent::Deliver { channel, consumer_tag, delivery } = ev {
                v.push((channel, consumer_tag.to_string(), delivery.delivery_tag, String::from_utf8(delivery.content.body.to_vec()).unwrap()));
            }
        }
        v
    }
}

fn p() -> Properties {
    Properties::default()
}

#[test]
fn default_exchange_delivers_by_queue_name() {
    let mut t = T::new();
    let c = t.conn();
    t.queue(c, "q1", Headers::new());
    t.publish(c, "", "q1", "hello", p()).unwrap();
    t.publish(c, "", "nope", "lost", p()).unwrap();
    assert_eq!(t.bodies(c, "q1"), vec!["hello"]);
}

#[test]
fn direct_fanout_topic_routing() {
    let mut t = T::new();
    let c = t.conn();
    t.exchange(c, "d", ExchangeType::Direct);
    t.exchange(c, "f", ExchangeType::Fanout);
    t.exchange(c, "t", ExchangeType::Topic);
    for q in ["a", "b", "c"] {
        t.queue(c, q, Headers::new());
    }
    t.bind(c, "a", "d", "k");
    t.bind(c, "a", "f", "");
    t.bind(c, "b", "f", "ignored");
    t.bind(c, "c", "t", "*.stock.#");
    t.bind(c, "a", "t", "#");
    t.publish(c, "d", "k", "direct", p()).unwrap();
    t.publish(c, "d", "other", "nowhere", p()).unwrap();
    t.publish(c, "f", "x", "fan", p()).unwrap();
    t.publish(c, "t", "usd.stock", "t1", p()).unwrap();
    t.publish(c, "t", "stock.nasdaq", "t2", p()).unwrap();
    assert_eq!(t.bodies(c, "a"), vec!["direct", "fan", "t1", "t2"]);
    assert_eq!(t.bodies(c, "b"), vec!["fan"]);
    assert_eq!(t.bodies(c, "c"), vec!["t1"]);
}

#[test]
fn headers_exchange_any_and_all() {
    let mut t = T::new();
    let c = t.conn();
    t.exchange(c, "h", ExchangeType::Headers);
    t.queue(c, "all", Headers::new());
    t.queue(c, "any", Headers::new());
    t.b.queue_bind(c.0, c.1, &QueueBind { queue: "all".into(), exchange: "h".into(), arguments: headers([("x-match", "all"), ("a", "1"), ("b", "2")]), ..Default::default() }).unwrap();
    t.b.queue_bind(c.0, c.1, &QueueBind { queue: "any".into(), exchange: "h".into(), arguments: headers([("x-match", "any"), ("a", "1"), ("b", "2")]), ..Default::default() }).unwrap();
    let mut props = p();
    props.headers = headers([("a", "1")]);
    t.publish(c, "h", "", "one", props.clone()).unwrap();
    props.headers = headers([("a", "1"), ("b", "2")]);
    t.publish(c, "h", "", "both", props).unwrap();
    assert_eq!(t.bodies(c, "all"), vec!["both"]);
    assert_eq!(t.bodies(c, "any"), vec!["one", "both"]);
}

#[test]
fn publishing_to_missing_exchange_closes_the_channel() {
    let mut t = T::new();
    let c = t.conn();
    let err = t.publish(c, "missing", "k", "x", p()).unwrap_err();
    assert_eq!(err.name(), "NotFound");
    assert!(err.to_string().contains("no exchange 'missing' in vhost '/'"));
    assert!(!t.b.is_channel_open(c.0, c.1));
    let err = t.publish(c, "", "q", "x", p()).unwrap_err();
    assert!(matches!(err, Error::Channel { code: ReplyCode::ChannelError, .. }));
}

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
fn reject_dead_letters_with_routing_key_override() {
    let mut t = T::new();
    let c = t.conn();
    t.exchange(c, "dlx", ExchangeType::Direct);
    t.queue(c, "dead", Headers::new());
    t.bind(c, "dead", "dlx", "failed");
    t.queue(c, "work", headers([("x-dead-letter-exchange", "dlx"), ("x-dead-letter-routing-key", "failed")]));
    t.publish(c, "", "work", "bad", p()).unwrap();
    let (tag, ..) = t.get(c, "work").unwrap();
    t.b.basic_reject(c.0, c.1, tag, false).unwrap();
    let m = t.get(c, "dead").unwrap();
    assert_eq!(m.1, "bad");
    assert_eq!(m.2.headers["x-death"][0]["reason"], "rejected");
    assert_eq!(m.2.headers["x-death"][0]["routing-keys"][0], "work");
}

#[test]
fn max_length_drop_head_and_reject_publish() {
    let mut t = T::new();
    let c = t.conn();
    t.queue(c, "dh", headers([("x-max-length", 2)]));
    t.queue(c, "rp", headers([("x-max-length", serde_json::json!(2)), ("x-overflow", serde_json::json!("reject-publish"))]));
    t.queue(c, "bytes", headers([("x-max-length-bytes", 5)]));
    for i in 0..4 {
        t.publish(c, "", "dh", &format!("{i}"), p()).unwrap();
        t.publish(c, "", "rp", &format!("{i}"), p()).unwrap();
    }
    t.publish(c, "", "bytes", "abc", p()).unwrap();
    t.publish(c, "", "bytes", "def", p()).unwrap();
    assert_eq!(t.bodies(c, "dh"), vec!["2", "3"]);
    assert_eq!(t.bodies(c, "rp"), vec!["0", "1"]);
    assert_eq!(t.bodies(c, "bytes"), vec!["def"]);
}

#[test]
fn confirms_nack_on_reject_publish() {
    let mut t = T::new();
    let c = t.conn();
    t.queue(c, "rp", headers([("x-max-length", serde_json::json!(1)), ("x-overflow", serde_json::json!("reject-publish"))]));
    t.b.confirm_select(c.0, c.1).unwrap();
    t.publish(c, "", "rp", "a", p()).unwrap();
    t.publish(c, "", "rp", "b", p()).unwrap();
    let evs: Vec<_> = std::iter::from_fn(|| t.b.pop_event(c.0)).collect();
    assert!(matches!(evs[0], ServerEvent::Ack { delivery_tag: 1, .. }));
    assert!(matches!(evs[1], ServerEvent::Nack { delivery_tag: 2, .. }));
}

#[test]
fn priorities() {
    let mut t = T::new();
    let c = t.conn();
    t.queue(c, "pq", headers([("x-max-priority", 10)]));
    for (b, pr) in [("low", 0u8), ("high", 9), ("mid", 5), ("capped", 200)] {
        let mut props = p();
        props.priority = Some(pr);
        t.publish(c, "", "pq", b, props).unwrap();
    }
    assert_eq!(t.bodies(c, "pq"), vec!["capped", "high", "mid", "low"]);
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

#[test]
fn mandatory_unroutable_returns_and_alternate_exchange() {
    let mut t = T::new();
    let c = t.conn();
    t.exchange(c, "x", ExchangeType::Direct);
    t.b.basic_publish(c.0, c.1, &BasicPublish { exchange: "x".into(), routing_key: "none".into(), mandatory: true, immediate: false }, Arc::new(Content::default())).unwrap();
    match t.b.pop_event(c.0) {
        Some(ServerEvent::Return { returned, .. }) => {
            assert_eq!((returned.reply_code, returned.reply_text.as_str()), (312, "NO_ROUTE"));
        }
        other => panic!("expected a return, got {other:?}"),
    }
    t.exchange(c, "ae", ExchangeType::Fanout);
    t.queue(c, "unrouted", Headers::new());
    t.bind(c, "unrouted", "ae", "");
    t.b.exchange_declare(c.0, c.1, &ExchangeDeclare { exchange: "main".into(), durable: true, arguments: headers([("alternate-exchange", "ae")]), ..Default::default() }).unwrap();
    t.publish(c, "main", "whatever", "to-ae", p()).unwrap();
    assert_eq!(t.bodies(c, "unrouted"), vec!["to-ae"]);
}

#[test]
fn a_queue_matched_by_several_bindings_gets_one_copy_and_routing_keys_are_kept_per_message() {
    let mut t = T::new();
    let c = t.conn();
    t.exchange(c, "t", ExchangeType::Topic);
    t.queue(c, "both", Headers::new());
    t.queue(c, "other", Headers::new());
    t.bind(c, "both", "t", "a.*");
    t.bind(c, "both", "t", "#");
    t.bind(c, "both", "t", "a.b");
    t.bind(c, "other", "t", "*.b");
    t.publish(c, "t", "a.b", "one", p()).unwrap();
    t.publish(c, "t", "x.b", "two", p()).unwrap();
    t.publish(c, "t", "a.b", "three", p()).unwrap();
    assert_eq!(t.bodies(c, "both"), vec!["one", "two", "three"]);
    assert_eq!(t.bodies(c, "other"), vec!["one", "two", "three"]);
    // The channel shares one copy of a repeated routing key; each message keeps its own.
    for (body, key) in [("k1", "a.b"), ("k2", "a.c"), ("k3", "a.b")] {
        t.publish(c, "t", key, body, p()).unwrap();
    }
    let keys: Vec<String> = std::iter::from_fn(|| t.b.basic_get(c.0, c.1, "both", true).unwrap())
        .map(|g| g.delivery.routing_key.to_string())
        .collect();
    assert_eq!(keys, vec!["a.b", "a.c", "a.b"]);
}

#[test]
fn a_wide_fanout_delivers_one_copy_per_queue() {
    let mut t = T::new();
    let c = t.conn();
    t.exchange(c, "wide", ExchangeType::Fanout);
    let names: Vec<String> = (0..12).map(|i| format!("w{i}")).collect();
    for n in &names {
        t.queue(c, n, Headers::new());
        t.bind(c, n, "wide", "");
    }
    t.bind(c, "w3", "wide", "other-key");
    t.publish(c, "wide", "", "all", p()).unwrap();
    for n in &names {
        assert_eq!(t.bodies(c, n), vec!["all"], "{n}");
    }
}

#[test]
fn exchange_to_exchange_bindings_without_loops() {
    let mut t = T::new();
    let c = t.conn();
    t.exchange(c, "src", ExchangeType::Topic);
    t.exchange(c, "dst", ExchangeType::Fanout);
    t.queue(c, "q", Headers::new());
    t.bind(c, "q", "dst", "");
    t.b.exchange_bind(c.0, c.1, &ExchangeBind { destination: "dst".into(), source: "src".into(), routing_key: "a.#".into(), ..Default::default() }).unwrap();
    t.b.exchange_bind(c.0, c.1, &ExchangeBind { destination: "src".into(), source: "dst".into(), routing_key: "".into(), ..Default::default() }).unwrap();
    t.publish(c, "src", "a.b", "yes", p()).unwrap();
    t.publish(c, "src", "b", "no", p()).unwrap();
    assert_eq!(t.bodies(c, "q"), vec!["yes"]);
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

#[test]
fn reject_publish_dlx_counts_a_refused_message_once() {
    let mut t = T::new();
    let c = t.conn();
    t.exchange(c, "dlx", ExchangeType::Fanout);
    t.queue(c, "dead", Headers::new());
    t.bind(c, "dead", "dlx", "");
    t.queue(c, "rp", headers([("x-max-length", serde_json::json!(1)), ("x-overflow", serde_json::json!("reject-publish-dlx")), ("x-dead-letter-exchange", serde_json::json!("dlx"))]));
    t.publish(c, "", "rp", "a", p()).unwrap();
    t.publish(c, "", "rp", "b", p()).unwrap();
    let snap = t.b.snapshot("/").unwrap();
    let q = snap.queues.iter().find(|q| q.name == "rp").unwrap();
    assert_eq!((q.published, q.dropped, q.dead_lettered), (1, 1, 1));
    assert_eq!(t.bodies(c, "dead"), vec!["b"]);
}
