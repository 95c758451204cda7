//! The native redis:// transport against the local Redis (127.0.0.1:6379), through the
//! Kombu API. Every test uses its own `global_keyprefix` and deletes its keys afterwards.
//! Skipped with a message when Redis is not listening, except under CI, where it fails.

use std::time::Duration;

use kombu::{Connection, ConnectionOptions, Exchange, Payload, PublishOptions, Queue, SimpleOptions, SimpleQueue, Value};
use redis::AsyncCommands;
use serde_json::json;

const SECOND: Option<Duration> = Some(Duration::from_secs(5));

/// A test's keys: a unique prefix, raw access to Redis, and cleanup.
struct Keys {
    prefix: String,
    redis: redis::aio::MultiplexedConnection,
}

impl Keys {
    async fn new() -> Option<Keys> {
        kombu_gateway::register_transports();
        if std::net::TcpStream::connect_timeout(&"127.0.0.1:6379".parse().unwrap(), Duration::from_secs(1)).is_err() {
            assert!(std::env::var_os("CI").is_none(), "Redis must run on 127.0.0.1:6379 under CI");
            eprintln!("skipping: no Redis on 127.0.0.1:6379");
            return None;
        }
        let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
        let redis = client.get_multiplexed_async_connection().await.unwrap();
        Some(Keys { prefix: format!("kwtest.{}.", kombu::uuid()), redis })
    }

    fn connection(&self, options: &[(&str, Value)]) -> Connection {
        let mut o = ConnectionOptions::default();
        o.transport_options.insert("global_keyprefix".into(), Value::from(self.prefix.clone()));
        o.transport_options.insert("polling_interval".into(), Value::from(0.2));
        for (k, v) in options {
            o.transport_options.insert((*k).into(), v.clone());
        }
        Connection::with_options("redis://127.0.0.1:6379/0", o).unwrap()
    }

    fn k(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn llen(&self, key: &str) -> usize {
        self.redis.clone().llen(self.k(key)).await.unwrap()
    }

    async fn hlen(&self, key: &str) -> usize {
        self.redis.clone().hlen(self.k(key)).await.unwrap()
    }

    async fn cleanup(self) {
        let mut r = self.redis.clone();
        let keys: Vec<String> = r.keys(format!("{}*", self.prefix)).await.unwrap();
        if !keys.is_empty() {
            let _: () = r.del(keys).await.unwrap();
        }
    }
}

#[tokio::test]
async fn producer_and_consumer_on_a_direct_exchange_with_acks() {
    let Some(keys) = Keys::new().await else { return };
    let conn = keys.connection(&[]);
    let x = Exchange::direct("tasks");
    let q = Queue::new("work").exchange(x.clone()).routing_key("work");
    let producer = conn.producer().await.unwrap();
    for i in 0..3 {
        producer.publish(json!({"n": i}), PublishOptions::new().exchange(&x).routing_key("work").declare(&q).header("h", i)).await.unwrap();
    }
    assert_eq!(keys.llen("work").await, 3);
    let members: Vec<String> = keys.redis.clone().smembers(keys.k("_kombu.binding.tasks")).await.unwrap();
    assert_eq!(members, ["work\x06\x16\x06\x16work"]);
    let consumer = conn.consumer(vec![q.clone()]).await.unwrap().prefetch_count(10);
    for i in 0..3 {
        let m = consumer.next_message(SECOND).await.unwrap();
        assert_eq!(m.payload().unwrap(), Payload::Data(json!({"n": i})));
        assert_eq!(m.headers().get("h"), Some(&json!(i)));
        assert_eq!((m.delivery_info().exchange.as_str(), m.delivery_info().routing_key.as_str(), m.redelivered()), ("tasks", "work", false));
        if i == 0 {
            assert_eq!(keys.hlen("unacked").await, 3, "held messages are recorded in the unacked hash");
        }
        m.ack().unwrap();
    }
    consumer.cancel().await.unwrap();
    conn.release().await.unwrap();
    assert_eq!((keys.hlen("unacked").await, keys.llen("work").await), (0, 0));
    keys.cleanup().await;
}

#[tokio::test]
async fn simple_queue_put_get_and_qsize() {
    let Some(keys) = Keys::new().await else { return };
    let conn = keys.connection(&[]);
    let sq = SimpleQueue::new(&conn, "simple", SimpleOptions::default()).await.unwrap();
    sq.put("hello", PublishOptions::new()).await.unwrap();
    sq.put(json!([1, 2]), PublishOptions::new()).await.unwrap();
    assert_eq!(sq.qsize().await.unwrap(), 2);
    let m = sq.get(true, SECOND).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Text("hello".into()));
    m.ack().unwrap();
    let m = sq.get(true, SECOND).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Data(json!([1, 2])));
    m.ack().unwrap();
    assert!(sq.get_nowait().await.is_err());
    sq.close().await.unwrap();
    conn.release().await.unwrap();
    keys.cleanup().await;
}

#[tokio::test]
async fn priorities_use_kombus_buckets_lowest_number_first() {
    let Some(keys) = Keys::new().await else { return };
    let conn = keys.connection(&[]);
    let q = Queue::new("pri");
    let producer = conn.producer().await.unwrap();
    for p in [9u8, 0, 5, 3] {
        producer.publish(json!(p), PublishOptions::new().routing_key("pri").declare(&q).priority(p)).await.unwrap();
    }
    assert_eq!((keys.llen("pri").await, keys.llen("pri\x06\x163").await, keys.llen("pri\x06\x169").await), (1, 2, 1));
    let consumer = conn.consumer(vec![q]).await.unwrap().prefetch_count(1);
    let mut got = Vec::new();
    for _ in 0..4 {
        let m = consumer.next_message(SECOND).await.unwrap();
        got.push(m.payload().unwrap());
        m.ack().unwrap();
    }
    // Bucket 0 first (the reverse of AMQP, as in Kombu); 5 and 3 share bucket 3, FIFO.
    assert_eq!(got, [0, 5, 3, 9].map(|p| Payload::Data(json!(p))));
    conn.release().await.unwrap();
    keys.cleanup().await;
}

#[tokio::test]
async fn topic_and_fanout_exchanges() {
    let Some(keys) = Keys::new().await else { return };
    let conn = keys.connection(&[]);
    let t = Exchange::topic("stocks");
    let us = Queue::new("us").exchange(t.clone()).routing_key("stock.us.*");
    let all = Queue::new("all").exchange(t.clone()).routing_key("stock.#");
    let producer = conn.producer().await.unwrap();
    producer.maybe_declare(us.clone()).await.unwrap();
    producer.maybe_declare(all.clone()).await.unwrap();
    for rk in ["stock.us.goog", "stock.eu.sap"] {
        producer.publish(rk, PublishOptions::new().exchange(&t).routing_key(rk)).await.unwrap();
    }
    assert_eq!((keys.llen("us").await, keys.llen("all").await), (1, 2));
    let rows: Vec<String> = keys.redis.clone().smembers(keys.k("_kombu.binding.stocks")).await.unwrap();
    assert!(rows.contains(&"stock.#\x06\x16^stock\\..*?$\x06\x16all".to_owned()), "{rows:?}");

    let f = Exchange::fanout("news");
    let a = Queue::new("news-a").exchange(f.clone());
    let b = Queue::new("news-b").exchange(f.clone());
    let ca = conn.consumer(vec![a]).await.unwrap();
    let conn2 = keys.connection(&[]);
    let cb = conn2.consumer(vec![b]).await.unwrap();
    // Subscribed when consume returns (Kombu subscribes on its next poll).
    ca.consume().await.unwrap();
    cb.consume().await.unwrap();
    producer.publish("flash", PublishOptions::new().exchange(&f)).await.unwrap();
    for c in [&ca, &cb] {
        let m = c.next_message(SECOND).await.unwrap();
        assert_eq!(m.payload().unwrap(), Payload::Text("flash".into()));
        m.ack().unwrap();
    }
    assert_eq!((keys.llen("news-a").await, keys.hlen("unacked").await), (0, 0), "fanout messages are not stored");
    conn.release().await.unwrap();
    conn2.release().await.unwrap();
    keys.cleanup().await;
}

#[tokio::test]
async fn reject_requeue_and_restore_on_close() {
    let Some(keys) = Keys::new().await else { return };
    let conn = keys.connection(&[]);
    let q = Queue::new("rq");
    let producer = conn.producer().await.unwrap();
    producer.publish("a", PublishOptions::new().routing_key("rq").declare(&q)).await.unwrap();
    producer.publish("b", PublishOptions::new().routing_key("rq")).await.unwrap();
    let consumer = conn.consumer(vec![q.clone()]).await.unwrap().prefetch_count(1);
    let m = consumer.next_message(SECOND).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Text("a".into()));
    m.requeue().unwrap();
    // Requeued to the back (LPUSH), as Kombu does: b comes first.
    let m = consumer.next_message(SECOND).await.unwrap();
    assert_eq!((m.payload().unwrap(), m.redelivered()), (Payload::Text("b".into()), false));
    m.reject(false).unwrap();
    let m = consumer.next_message(SECOND).await.unwrap();
    assert_eq!((m.payload().unwrap(), m.redelivered()), (Payload::Text("a".into()), true));
    // Held when the connection closes: restored, first in line.
    producer.publish("c", PublishOptions::new().routing_key("rq")).await.unwrap();
    conn.release().await.unwrap();
    assert_eq!((keys.llen("rq").await, keys.hlen("unacked").await), (2, 0));
    let conn = keys.connection(&[]);
    let m = conn.default_channel().await.unwrap().basic_get("rq", true).await.unwrap().unwrap();
    assert_eq!((m.payload().unwrap(), m.redelivered()), (Payload::Text("a".into()), true));
    conn.release().await.unwrap();
    keys.cleanup().await;
}

#[tokio::test]
async fn messages_of_a_dead_consumer_are_restored_after_the_visibility_timeout() {
    let Some(keys) = Keys::new().await else { return };
    // What a consumer that died holding a message leaves: the unacked record, one hour old.
    let payload = r#"{"body": "aGVsZA==", "content-encoding": "utf-8", "content-type": "text/plain", "headers": {}, "properties": {"delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "vq"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "dead-1"}}"#;
    let mut r = keys.redis.clone();
    let _: () = r.hset(keys.k("unacked"), "dead-1", format!(r#"[{payload}, "", "vq"]"#)).await.unwrap();
    let old = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() - 3601.0;
    let _: () = r.zadd(keys.k("unacked_index"), "dead-1", old).await.unwrap();
    let conn = keys.connection(&[]);
    let consumer = conn.consumer(vec![Queue::new("vq")]).await.unwrap();
    let m = consumer.next_message(SECOND).await.unwrap();
    assert_eq!((m.payload().unwrap(), m.redelivered()), (Payload::Text("held".into()), true));
    m.ack().unwrap();
    conn.release().await.unwrap();
    assert_eq!(keys.hlen("unacked").await, 0);
    keys.cleanup().await;
}

#[tokio::test]
async fn a_live_consumer_keeps_its_messages_past_the_visibility_timeout() {
    let Some(keys) = Keys::new().await else { return };
    let opts = [("visibility_timeout", Value::from(2)), ("unacked_restore_interval", Value::from(0.2)), ("unacked_restore_throttle", Value::from(1))];
    let conn = keys.connection(&opts);
    let q = Queue::new("long");
    conn.producer().await.unwrap().publish("work", PublishOptions::new().routing_key("long").declare(&q)).await.unwrap();
    let consumer = conn.consumer(vec![q.clone()]).await.unwrap().prefetch_count(1);
    let m = consumer.next_message(SECOND).await.unwrap();
    // Another consumer sweeps all the while; the held message's score keeps rising.
    let other = keys.connection(&opts);
    let c2 = other.consumer(vec![q]).await.unwrap();
    assert!(c2.next_message(Some(Duration::from_millis(4000))).await.is_err(), "the held message was not restored");
    m.ack().unwrap();
    conn.release().await.unwrap();
    other.release().await.unwrap();
    assert_eq!((keys.hlen("unacked").await, keys.llen("long").await), (0, 0));
    keys.cleanup().await;
}

#[tokio::test]
async fn queue_expires_sets_a_ttl_on_the_lists() {
    let Some(keys) = Keys::new().await else { return };
    let conn = keys.connection(&[]);
    let q = Queue::new("exp").expires(5.0);
    conn.producer().await.unwrap().publish("x", PublishOptions::new().routing_key("exp").declare(&q)).await.unwrap();
    let ttl: i64 = keys.redis.clone().pttl(keys.k("exp")).await.unwrap();
    assert!((1..=5000).contains(&ttl), "PEXPIRE from x-expires, got {ttl}");
    conn.release().await.unwrap();
    keys.cleanup().await;
}

#[tokio::test]
async fn values_that_are_not_kombu_messages_are_moved_aside() {
    let Some(keys) = Keys::new().await else { return };
    let mut r = keys.redis.clone();
    let _: () = r.lpush(keys.k("bad"), "not json").await.unwrap();
    let _: () = r.lpush(keys.k("bad"), r#"{"body": "x"}"#).await.unwrap();
    let conn = keys.connection(&[]);
    let q = Queue::new("bad");
    conn.producer().await.unwrap().publish("good", PublishOptions::new().routing_key("bad").declare(&q)).await.unwrap();
    let consumer = conn.consumer(vec![q]).await.unwrap();
    let m = consumer.next_message(SECOND).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Text("good".into()));
    m.ack().unwrap();
    let dead: Vec<String> = r.lrange(keys.k("_kombu.deadletter.bad"), 0, -1).await.unwrap();
    assert_eq!(dead, [r#"{"body": "x"}"#, "not json"]);
    conn.release().await.unwrap();
    keys.cleanup().await;
}

#[tokio::test]
async fn a_vanished_binding_table_is_an_error_naming_maxmemory_policy() {
    let Some(keys) = Keys::new().await else { return };
    let conn = keys.connection(&[]);
    let x = Exchange::direct("evicted");
    let q = Queue::new("ev").exchange(x.clone()).routing_key("k");
    let producer = conn.producer().await.unwrap();
    producer.maybe_declare(q).await.unwrap();
    let _: () = keys.redis.clone().del(keys.k("_kombu.binding.evicted")).await.unwrap();
    // The store caches the table client-side; Redis's invalidation is on its way.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = producer.publish("x", PublishOptions::new().exchange(&x).routing_key("k")).await.unwrap_err();
    assert!(e.to_string().contains("maxmemory-policy"), "{e}");
    conn.release().await.unwrap();
    keys.cleanup().await;
}

#[tokio::test]
async fn pidbox_calls_reach_their_node_over_redis_fanout() {
    use kombu::pidbox::Mailbox;
    use kombu::ExchangeType;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let Some(keys) = Keys::new().await else { return };
    let conn = keys.connection(&[]);
    let mailbox = Mailbox::new("kw", ExchangeType::Fanout, &conn);
    let pings = Arc::new(AtomicUsize::new(0));
    let nodes: Vec<_> = ["a@host", "b@host"].iter().map(|h| mailbox.node(*h)).collect();
    for n in &nodes {
        let host = n.hostname().to_owned();
        let pings = pings.clone();
        n.handler("ping", Arc::new(move |_args: &serde_json::Value| {
            pings.fetch_add(1, Ordering::SeqCst);
            Ok(json!({"ok": "pong", "from": host}))
        }));
        n.listen().await.unwrap();
    }
    let serve = |n: kombu::pidbox::Node| async move {
        let mut handled = 0;
        while n.handle_next(Some(Duration::from_millis(500))).await.unwrap() {
            handled += 1;
        }
        handled
    };
    let (replies, ha, hb) = futures::join!(
        mailbox.call(&["a@host"], "ping", json!({}), Duration::from_secs(3)),
        serve(nodes[0].clone()),
        serve(nodes[1].clone())
    );
    assert_eq!(replies.unwrap(), vec![json!({"a@host": {"ok": "pong", "from": "a@host"}})]);
    assert_eq!((ha, hb, pings.load(Ordering::SeqCst)), (1, 1, 1), "both nodes get the broadcast, only the destination answers");
    conn.release().await.unwrap();
    keys.cleanup().await;
}

/// An unacked record of a consumer that died an hour ago holding a message of `queue`
/// published to `exchange` with `routing_key`.
async fn plant_dead_record(keys: &Keys, tag: &str, exchange: &str, routing_key: &str) {
    let payload = format!(
        r#"{{"body": "aGVsZA==", "content-encoding": "utf-8", "content-type": "text/plain", "headers": {{}}, "properties": {{"delivery_mode": 2, "delivery_info": {{"exchange": "{exchange}", "routing_key": "{routing_key}"}}, "priority": 0, "body_encoding": "base64", "delivery_tag": "{tag}"}}}}"#
    );
    let mut r = keys.redis.clone();
    let _: () = r.hset(keys.k("unacked"), tag, format!(r#"[{payload}, "{exchange}", "{routing_key}"]"#)).await.unwrap();
    let old = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() - 3601.0;
    let _: () = r.zadd(keys.k("unacked_index"), tag, old).await.unwrap();
}

#[tokio::test]
async fn unacked_restore_throttle_scans_on_the_first_and_every_nth_try() {
    let Some(keys) = Keys::new().await else { return };
    // Tries every 0.2 s, but only every 1000th scans: after the first (at the first wait),
    // nothing for minutes.
    let throttled = keys.connection(&[("unacked_restore_interval", Value::from(0.2)), ("unacked_restore_throttle", Value::from(1000))]);
    let c1 = throttled.consumer(vec![Queue::new("thq")]).await.unwrap();
    assert!(c1.next_message(Some(Duration::from_millis(600))).await.is_err());
    plant_dead_record(&keys, "dead-th", "", "thq").await;
    assert!(c1.next_message(Some(Duration::from_millis(2500))).await.is_err(), "a throttled consumer scanned again");
    assert_eq!(keys.hlen("unacked").await, 1);
    // Throttle 1 (and any new consumer: its first try scans) restores it.
    let eager = keys.connection(&[("unacked_restore_interval", Value::from(0.2)), ("unacked_restore_throttle", Value::from(1))]);
    let c2 = eager.consumer(vec![Queue::new("thq2")]).await.unwrap();
    assert!(c2.next_message(Some(Duration::from_millis(300))).await.is_err());
    let m = c1.next_message(SECOND).await.unwrap();
    assert_eq!((m.payload().unwrap(), m.redelivered()), (Payload::Text("held".into()), true));
    m.ack().unwrap();
    // Bad values are named.
    for bad in [Value::from(-1), Value::from("often")] {
        let e = keys.connection(&[("unacked_restore_throttle", bad)]).connect().await.unwrap_err();
        assert!(e.to_string().contains("unacked_restore_throttle"), "{e}");
    }
    throttled.release().await.unwrap();
    eager.release().await.unwrap();
    keys.cleanup().await;
}

/// The connections Redis lists under `name`: (count, the largest `idle` in seconds).
async fn named_clients(keys: &Keys, name: &str) -> (usize, u64) {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut keys.redis.clone()).await.unwrap();
    let mine: Vec<&str> = list.lines().filter(|l| l.split(' ').any(|f| f == format!("name={name}"))).collect();
    let idle = mine.iter().filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("idle="))).filter_map(|v| v.parse::<u64>().ok()).max().unwrap_or(0);
    (mine.len(), idle)
}

#[tokio::test]
async fn health_check_interval_pings_idle_connections_and_zero_turns_it_off() {
    let Some(keys) = Keys::new().await else { return };
    let (checked, unchecked) = (format!("kwhc-{}", kombu::uuid()), format!("kwnohc-{}", kombu::uuid()));
    let a = keys.connection(&[("client_name", Value::from(checked.clone())), ("health_check_interval", Value::from(0.5))]);
    let b = keys.connection(&[("client_name", Value::from(unchecked.clone())), ("health_check_interval", Value::from(0))]);
    a.connect().await.unwrap();
    b.connect().await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (n, idle) = named_clients(&keys, &checked).await;
    assert!(n >= 1 && idle <= 3, "checked connections: {n}, idle {idle} s");
    let (n, idle) = named_clients(&keys, &unchecked).await;
    assert!(n >= 1 && idle >= 4, "unchecked connections: {n}, idle {idle} s");
    let e = keys.connection(&[("health_check_interval", Value::from("never"))]).connect().await.unwrap_err();
    assert!(e.to_string().contains("health_check_interval"), "{e}");
    let e = keys.connection(&[("client_name", Value::from("two words"))]).connect().await.unwrap_err();
    assert!(e.to_string().contains("client_name"), "{e}");
    a.release().await.unwrap();
    b.release().await.unwrap();
    keys.cleanup().await;
}

#[tokio::test]
async fn connections_share_a_pool_bounded_by_max_connections() {
    let Some(keys) = Keys::new().await else { return };
    let name = format!("kwpool-{}", kombu::uuid());
    let opts = [("client_name", Value::from(name.clone())), ("max_connections", Value::from(3)), ("polling_interval", Value::from(1))];
    // 20 connections, each with an idle consumer on its own queue (4 priority buckets each).
    let mut conns = Vec::new();
    let mut consumers = Vec::new();
    for i in 0..20 {
        let c = keys.connection(&opts);
        let consumer = c.consumer(vec![Queue::new(format!("pool{i}"))]).await.unwrap();
        consumer.consume().await.unwrap();
        consumers.push(consumer);
        conns.push(c);
    }
    let (n, _) = named_clients(&keys, &name).await;
    assert!((1..=3).contains(&n), "20 connections opened {n} Redis connections (max_connections=3)");
    let producer = conns[0].producer().await.unwrap();
    for i in 0..20 {
        producer.publish(json!(i), PublishOptions::new().routing_key(format!("pool{i}"))).await.unwrap();
    }
    for (i, c) in consumers.iter().enumerate() {
        let m = c.next_message(SECOND).await.unwrap();
        assert_eq!(m.payload().unwrap(), Payload::Data(json!(i)));
        m.ack().unwrap();
    }
    assert!(named_clients(&keys, &name).await.0 <= 3);
    let e = keys.connection(&[("max_connections", Value::from(2))]).connect().await.unwrap_err();
    assert!(e.to_string().contains("max_connections"), "{e}");
    drop(consumers);
    for c in conns {
        c.release().await.unwrap();
    }
    keys.cleanup().await;
}

#[tokio::test]
async fn requeued_and_restored_messages_are_routed_again_through_the_binding_table() {
    let Some(keys) = Keys::new().await else { return };
    let conn = keys.connection(&[]);
    let x = Exchange::direct("rrx");
    let qa = Queue::new("rra").exchange(x.clone()).routing_key("k");
    let qb = Queue::new("rrb").exchange(x.clone()).routing_key("k");
    let producer = conn.producer().await.unwrap();
    producer.publish("one", PublishOptions::new().exchange(&x).routing_key("k").declare(&qa)).await.unwrap();
    producer.publish("two", PublishOptions::new().exchange(&x).routing_key("k")).await.unwrap();
    let consumer = conn.consumer(vec![qa.clone()]).await.unwrap().prefetch_count(2);
    let one = consumer.next_message(SECOND).await.unwrap();
    let _two = consumer.next_message(SECOND).await.unwrap();
    // The bindings change while the messages are held: rra leaves, rrb joins.
    let ch = conn.default_channel().await.unwrap();
    qb.bind(&ch).queue_declare(false, false).await.unwrap();
    qb.bind(&ch).queue_bind(false).await.unwrap();
    qa.bind(&ch).queue_unbind(None).await.unwrap();
    // A requeue goes where the exchange routes now (Kombu's _do_restore_message), ...
    one.requeue().unwrap();
    consumer.cancel().await.unwrap();
    let other = keys.connection(&[]);
    let ch2 = other.default_channel().await.unwrap();
    let got = get_soon(&ch2, "rrb").await;
    assert_eq!((got.payload().unwrap(), got.redelivered()), (Payload::Text("one".into()), true));
    // ... and so does a message restored when its connection closes.
    conn.release().await.unwrap();
    let got = get_soon(&ch2, "rrb").await;
    assert_eq!((got.payload().unwrap(), got.redelivered()), (Payload::Text("two".into()), true));
    // get_soon's no_ack gets leave unacked records that the store deletes in the background.
    assert_eq!((keys.llen("rra").await, keys.llen("rrb").await, unacked_settled(&keys).await), (0, 0, 0));
    // A held message whose exchange routes nowhere now is moved aside, not dropped.
    producer_to_nowhere(&keys, &other).await;
    other.release().await.unwrap();
    keys.cleanup().await;
}

/// The size of the unacked hash once the background settles have been applied (waiting up to
/// 5 s for it to be empty: a record still there then is a leak, and the caller's assert says so).
async fn unacked_settled(keys: &Keys) -> usize {
    for _ in 0..50 {
        if keys.hlen("unacked").await == 0 {
            return 0;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    keys.hlen("unacked").await
}

/// basic_get until a message is there (settles are applied in the background).
async fn get_soon(ch: &kombu::Channel, queue: &str) -> kombu::Message {
    for _ in 0..50 {
        if let Some(m) = ch.basic_get(queue, true).await.unwrap() {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing arrived in {queue}");
}

async fn producer_to_nowhere(keys: &Keys, conn: &Connection) {
    let x = Exchange::direct("rrgone");
    let q = Queue::new("rrc").exchange(x.clone()).routing_key("k");
    conn.producer().await.unwrap().publish("three", PublishOptions::new().exchange(&x).routing_key("k").declare(&q)).await.unwrap();
    let consumer = conn.consumer(vec![q.clone()]).await.unwrap().prefetch_count(1);
    let m = consumer.next_message(SECOND).await.unwrap();
    q.bind(&conn.default_channel().await.unwrap()).queue_unbind(None).await.unwrap();
    m.requeue().unwrap();
    consumer.cancel().await.unwrap();
    let mut waited = 0;
    while keys.llen("_kombu.deadletter.unroutable").await == 0 && waited < 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!((keys.llen("_kombu.deadletter.unroutable").await, keys.llen("rrc").await), (1, 0));
}
