//! Publishing: routing through each exchange type, exchange-to-exchange and alternate
//! exchanges, mandatory returns, overflow, confirms and message priorities.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

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
