//! Interop with Python kombu 5.7's redis:// transport on the same Redis, both ways: direct,
//! topic and fanout exchanges, priorities, headers and properties, compression, and a
//! message left unacknowledged by a killed consumer on one side that the other side's
//! visibility sweep restores and consumes. The interpreter comes from KOMBU_PYTHON
//! (scripts/test.sh); skipped with a message without it, except under CI. Each test uses its
//! own `global_keyprefix` and deletes its keys.

mod redis_common;
mod support;

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::Duration;

use kombu::{Connection, Exchange, Payload, PublishOptions, Queue, Value};
use redis::AsyncCommands;
use serde_json::json;
use support::{python, PythonPeer};

const WAIT: Option<Duration> = Some(Duration::from_secs(10));

const URL: &str = "redis://127.0.0.1:6379/0";

/// Python kombu on the same Redis (tests/interop/redis_peer.py), with this test's keys.
struct Peer {
    py: PythonPeer,
    prefix: String,
}

impl std::ops::Deref for Peer {
    type Target = PythonPeer;
    fn deref(&self) -> &PythonPeer {
        &self.py
    }
}

impl Peer {
    fn new() -> Option<Peer> {
        kombu_gateway::register_transports();
        let py = PythonPeer::new(python()?, "redis_peer.py", URL.into());
        Some(Peer { py, prefix: format!("kwinterop.{}.", kombu::uuid()) })
    }

    fn options(&self, extra: serde_json::Value) -> serde_json::Value {
        let mut o = json!({"global_keyprefix": self.prefix, "polling_interval": 0.2});
        o.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
        o
    }

    fn connection(&self, extra: &[(&str, Value)]) -> Connection {
        redis_common::connection(URL, &self.prefix, extra)
    }

    async fn cleanup(self) {
        redis_common::cleanup(URL, &self.prefix).await;
    }
}

async fn finish(child: Child, out: BufReader<std::process::ChildStdout>) -> Vec<serde_json::Value> {
    tokio::task::spawn_blocking(move || {
        let mut child = child;
        let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect();
        assert!(child.wait().unwrap().success(), "redis_peer.py failed");
        lines
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn python_publishes_and_rust_consumes() {
    let Some(peer) = Peer::new() else { return };
    let topts = peer.options(json!({}));
    peer.run(
        "publish",
        json!({"transport_options": topts, "messages": [
            {"exchange": "px", "type": "direct", "queue": "pq", "routing_key": "pk", "body": {"from": "python", "n": [1, 2.5]},
             "headers": {"h": "v", "i": 7}, "properties": {"correlation_id": "py-cid", "reply_to": "py-replies", "expiration": 60, "message_id": "m1"}},
            {"exchange": "px", "type": "direct", "queue": "pq", "routing_key": "pk", "body": "zipped text " , "compression": "zlib"},
            {"exchange": "pt", "type": "topic", "queue": "ptq", "routing_key": "a.*.c", "body": "topic"},
            {"exchange": "pt", "type": "topic", "routing_key": "a.b.c", "body": "topic 2"},
            {"queue": "ppri", "routing_key": "ppri", "body": 9, "priority": 9},
            {"queue": "ppri", "routing_key": "ppri", "body": 0, "priority": 0},
            {"queue": "ppri", "routing_key": "ppri", "body": 5, "priority": 5},
            {"queue": "pmp", "routing_key": "pmp", "body": {"packed": [1, 2]}, "serializer": "msgpack"},
        ]}),
    )
    .await;
    let conn = peer.connection(&[]);
    let consumer = conn.consumer(vec![Queue::new("pq").exchange(Exchange::direct("px")).routing_key("pk")]).await.unwrap();
    let m = consumer.next_message(WAIT).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Data(json!({"from": "python", "n": [1, 2.5]})));
    assert_eq!((m.content_type(), m.content_encoding()), (Some("application/json"), Some("utf-8")));
    assert_eq!((m.headers().get("h"), m.headers().get("i")), (Some(&json!("v")), Some(&json!(7))));
    let p = m.properties();
    assert_eq!((p.correlation_id.as_deref(), p.reply_to.as_deref(), p.message_id.as_deref()), (Some("py-cid"), Some("py-replies"), Some("m1")));
    assert_eq!((p.expiration.as_deref(), p.delivery_mode), (Some("60000"), Some(2)));
    assert_eq!((m.delivery_info().exchange.as_str(), m.delivery_info().routing_key.as_str()), ("px", "pk"));
    m.ack().unwrap();
    let m = consumer.next_message(WAIT).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Text("zipped text ".into()));
    m.ack().unwrap();
    consumer.cancel().await.unwrap();

    let topic = conn.consumer(vec![Queue::new("ptq")]).await.unwrap();
    for body in ["topic", "topic 2"] {
        let m = topic.next_message(WAIT).await.unwrap();
        assert_eq!(m.payload().unwrap(), Payload::Text(body.into()));
        m.ack().unwrap();
    }
    topic.cancel().await.unwrap();

    let pri = conn.consumer(vec![Queue::new("ppri")]).await.unwrap().prefetch_count(1);
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = pri.next_message(WAIT).await.unwrap();
        got.push(m.payload().unwrap());
        m.ack().unwrap();
    }
    assert_eq!(got, [0, 5, 9].map(|p| Payload::Data(json!(p))));
    pri.cancel().await.unwrap();

    let mp = conn.consumer(vec![Queue::new("pmp")]).await.unwrap().accept(["json", "msgpack"]).unwrap();
    let m = mp.next_message(WAIT).await.unwrap();
    assert_eq!((m.content_type(), m.payload().unwrap()), (Some("application/x-msgpack"), Payload::Data(json!({"packed": [1, 2]}))));
    m.ack().unwrap();
    conn.release().await.unwrap();
    peer.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_publishes_and_python_consumes() {
    let Some(peer) = Peer::new() else { return };
    let conn = peer.connection(&[]);
    let producer = conn.producer().await.unwrap();
    let x = Exchange::direct("rx");
    let q = Queue::new("rq").exchange(x.clone()).routing_key("rk");
    producer
        .publish(
            json!({"from": "rust", "ok": true}),
            PublishOptions::new().exchange(&x).routing_key("rk").declare(&q).header("h", "v").correlation_id("rs-cid").reply_to("rs-replies").expiration(60.0).priority(0),
        )
        .await
        .unwrap();
    producer.publish("squeezed", PublishOptions::new().exchange(&x).routing_key("rk").compression("zlib")).await.unwrap();
    let t = Exchange::topic("rt");
    let tq = Queue::new("rtq").exchange(t.clone()).routing_key("logs.#");
    producer.publish("deep", PublishOptions::new().exchange(&t).routing_key("logs.a.b").declare(&tq)).await.unwrap();
    for p in [9u8, 0, 5] {
        producer.publish(json!(p), PublishOptions::new().routing_key("rpri").declare(Queue::new("rpri")).priority(p)).await.unwrap();
    }
    conn.release().await.unwrap();

    let topts = peer.options(json!({}));
    let got = peer.run("consume", json!({"transport_options": topts, "queue": "rq", "exchange": "rx", "routing_key": "rk", "count": 2})).await;
    assert_eq!(got[0]["body"], json!({"from": "rust", "ok": true}));
    assert_eq!((&got[0]["content_type"], &got[0]["content_encoding"]), (&json!("application/json"), &json!("utf-8")));
    assert_eq!(got[0]["headers"]["h"], json!("v"));
    let p = &got[0]["properties"];
    assert_eq!((&p["correlation_id"], &p["reply_to"], &p["expiration"], &p["delivery_mode"]), (&json!("rs-cid"), &json!("rs-replies"), &json!("60000"), &json!(2)));
    assert_eq!((&got[0]["delivery_info"]["exchange"], &got[0]["delivery_info"]["routing_key"]), (&json!("rx"), &json!("rk")));
    assert_eq!(got[1]["body"], json!("squeezed"));
    // Python matches topic bindings on the pattern we stored.
    let got = peer.run("consume", json!({"transport_options": topts, "queue": "rtq", "exchange": "rt", "type": "topic", "routing_key": "logs.#"})).await;
    assert_eq!(got[0]["body"], json!("deep"));
    let got = peer.run("consume", json!({"transport_options": topts, "queue": "rpri", "count": 3})).await;
    assert_eq!(got.iter().map(|g| g["body"].clone()).collect::<Vec<_>>(), [json!(0), json!(5), json!(9)]);
    peer.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fanout_both_ways() {
    let Some(peer) = Peer::new() else { return };
    let topts = peer.options(json!({}));
    // Python listens, Rust publishes.
    let (child, out) = peer.start("consume", json!({"transport_options": topts, "queue": "py-news", "exchange": "news", "type": "fanout", "routing_key": ""})).await;
    let conn = peer.connection(&[]);
    let f = Exchange::fanout("news");
    let producer = conn.producer().await.unwrap();
    producer.maybe_declare(f.clone()).await.unwrap();
    producer.publish(json!({"flash": 1}), PublishOptions::new().exchange(&f)).await.unwrap();
    let got = finish(child, out).await;
    assert_eq!(got[0]["body"], json!({"flash": 1}));

    // Rust listens, Python publishes.
    let consumer = conn.consumer(vec![Queue::new("rs-news").exchange(f.clone())]).await.unwrap();
    consumer.consume().await.unwrap(); // subscribed when it returns
    peer.run("publish", json!({"transport_options": topts, "messages": [{"exchange": "news", "type": "fanout", "routing_key": "", "body": "from python"}]})).await;
    let m = consumer.next_message(WAIT).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Text("from python".into()));
    m.ack().unwrap();
    conn.release().await.unwrap();
    peer.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_held_by_a_dead_python_worker_is_restored_by_our_sweep() {
    let Some(peer) = Peer::new() else { return };
    let topts = peer.options(json!({}));
    peer.run("publish", json!({"transport_options": topts, "messages": [{"queue": "held", "routing_key": "held", "body": "orphan"}]})).await;
    // The Python worker takes it and dies without acknowledging.
    let held = peer.run("hold", json!({"transport_options": topts, "queue": "held"})).await;
    assert_eq!(held[0]["body"], json!("orphan"));
    let conn = peer.connection(&[("visibility_timeout", Value::from(1)), ("unacked_restore_interval", Value::from(0.2)), ("unacked_restore_throttle", Value::from(1))]);
    let consumer = conn.consumer(vec![Queue::new("held")]).await.unwrap();
    let m = consumer.next_message(WAIT).await.unwrap();
    assert_eq!((m.payload().unwrap(), m.redelivered()), (Payload::Text("orphan".into()), true));
    m.ack().unwrap();
    conn.release().await.unwrap();
    peer.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_held_by_a_killed_rust_consumer_is_restored_by_pythons_sweep() {
    let Some(peer) = Peer::new() else { return };
    let conn = peer.connection(&[]);
    conn.producer().await.unwrap().publish("mine", PublishOptions::new().routing_key("rheld").declare(Queue::new("rheld"))).await.unwrap();
    conn.release().await.unwrap();
    // A Rust consumer (this test binary, run again as the holder) takes it and is killed.
    let mut holder = redis_common::hold_in_child(&peer.prefix, "rheld", 1);
    let _ = holder.kill();
    let _ = holder.wait();
    // Kombu sweeps in drain_events only when a drain ends before the BRPOP does.
    let topts = peer.options(json!({"visibility_timeout": 1, "unacked_restore_throttle": 1, "polling_interval": 5}));
    let got = peer.run("consume", json!({"transport_options": topts, "queue": "rheld", "timeout": 15, "poll": 1})).await;
    assert_eq!((&got[0]["body"], &got[0]["redelivered"]), (&json!("mine"), &json!(true)));
    peer.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_message_goes_through_the_binding_table_to_a_python_consumer() {
    let Some(peer) = Peer::new() else { return };
    let conn = peer.connection(&[]);
    let x = Exchange::direct("rerx");
    let pa = Queue::new("rera").exchange(x.clone()).routing_key("k");
    let pb = Queue::new("rerb").exchange(x.clone()).routing_key("k");
    conn.producer().await.unwrap().publish("first", PublishOptions::new().exchange(&x).routing_key("k").declare(&pa)).await.unwrap();
    // Held from rera while rerb is bound to the same key, then restored on close: through the
    // binding table as Kombu's _do_restore_message, to both.
    let consumer = conn.consumer(vec![pa.clone()]).await.unwrap().prefetch_count(1);
    let held = consumer.next_message(WAIT).await.unwrap();
    assert_eq!(held.payload().unwrap(), Payload::Text("first".into()));
    let ch = conn.default_channel().await.unwrap();
    pb.bind(&ch).queue_declare(false, false).await.unwrap();
    pb.bind(&ch).queue_bind(false).await.unwrap();
    drop(held);
    conn.release().await.unwrap();
    let topts = peer.options(json!({}));
    let got = peer.run("consume", json!({"transport_options": topts, "queue": "rerb", "exchange": "rerx", "routing_key": "k", "count": 1, "timeout": 10})).await;
    assert_eq!((&got[0]["body"], &got[0]["redelivered"]), (&json!("first"), &json!(true)));
    let mut r = redis::Client::open(URL).unwrap().get_multiplexed_async_connection().await.unwrap();
    let in_a: usize = r.llen(format!("{}rera", peer.prefix)).await.unwrap();
    assert_eq!(in_a, 1);
    peer.cleanup().await;
}
