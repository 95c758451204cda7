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
    let opts = [("visibility_timeout", Value::from(2)), ("unacked_restore_interval", Value::from(0.2))];
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
