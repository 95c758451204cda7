//! Pools, kombu.common helpers and ConsumerProducerMixin on memory:// (native and wasm).
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))] // callbacks are !Send in wasm

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kombu::common::{collect_replies, drain_consumer, ignore_errors, insured, itermessages, send_reply, QoS};
#[cfg(not(target_arch = "wasm32"))]
use kombu::mixins::{ConsumerMixin, ConsumerProducerMixin};
use kombu::pools;
use kombu::rt::{Duration, Instant};
use kombu::{Connection, Consumer, Error, Exchange, Payload, PublishOptions, Queue};
#[cfg(not(target_arch = "wasm32"))]
use kombu::{Channel, Message};
use serde_json::json;

fn url(test: &str) -> String {
    format!("memory:///{test}-{}", kombu::uuid())
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn connection_pool_limits_and_lifo_reuse() {
    let conn = Connection::new(&url("pool")).unwrap();
    let pool = conn.pool(Some(2));
    let a = pool.acquire(false, None).await.unwrap();
    assert!(!a.connected(), "acquiring does not connect");
    a.connect().await.unwrap();
    let b = pool.acquire(false, None).await.unwrap();
    assert_eq!(pool.in_use(), 2);
    let err = pool.acquire(false, None).await.unwrap_err();
    assert_eq!(err.name(), "ConnectionLimitExceeded");
    assert!(err.to_string().contains('2'), "{err}");
    let started = Instant::now();
    let err = pool.acquire(true, Some(Duration::from_millis(50))).await.unwrap_err();
    assert_eq!(err.name(), "ConnectionLimitExceeded");
    assert!(started.elapsed() >= Duration::from_millis(45));
    // LIFO: the last released is the next acquired.
    let a_uri = format!("{:?}", *a);
    b.release().await;
    a.release().await;
    assert_eq!(pool.available(), 2);
    let again = pool.acquire(false, None).await.unwrap();
    assert_eq!(format!("{:?}", *again), a_uri);
    assert!(again.connected());
    // A blocked acquire wakes up on release.
    let other = pool.acquire(false, None).await.unwrap();
    let waiter = pool.acquire(true, Some(Duration::from_secs(5)));
    let release = async {
        kombu::rt::sleep(Duration::from_millis(20)).await;
        other.release().await;
    };
    let (got, ()) = futures::join!(waiter, release);
    assert!(got.is_ok());
    drop(got);
    drop(again);
    assert_eq!(pool.in_use(), 0);
    // grow yes, shrink below in use no
    let held = pool.acquire(false, None).await.unwrap();
    let held2 = pool.acquire(false, None).await.unwrap();
    assert!(pool.resize(Some(1), false).unwrap_err().to_string().contains("in use"));
    pool.resize(Some(3), false).unwrap();
    let third = pool.acquire(false, None).await.unwrap();
    drop((held, held2, third));
    pool.force_close_all().await;
    assert!(pool.acquire(false, None).await.is_err());
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn no_limit_means_no_pool_semantics() {
    let conn = Connection::new(&url("nolimit")).unwrap();
    let pool = conn.pool(None);
    let a = pool.acquire(false, None).await.unwrap();
    a.connect().await.unwrap();
    let probe = (*a).clone();
    a.release().await;
    assert!(!probe.connected(), "released without a limit closes the connection");
    assert_eq!(pool.available(), 0);
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn channel_pool_and_global_groups() {
    let conn = Connection::new(&url("chpool")).unwrap();
    let channels = conn.channel_pool(Some(1));
    let ch = channels.acquire(false, None).await.unwrap();
    assert_eq!(channels.acquire(false, None).await.unwrap_err().name(), "ChannelLimitExceeded");
    let id = ch.channel_id();
    ch.release().await;
    assert_eq!(channels.acquire(false, None).await.unwrap().channel_id(), id);

    let same = Connection::new(&conn.as_uri(true)).unwrap();
    let p1 = pools::connections(&conn);
    let p2 = pools::connections(&same);
    let held = p1.acquire(false, None).await.unwrap();
    assert_eq!(p2.in_use(), 1, "equal parameters share the global pool");
    drop(held);
    assert_eq!(pools::get_limit(), pools::DEFAULT_LIMIT);
    assert!(pools::set_limit(10, false).is_err(), "the limit does not shrink without force");

    let producers = pools::producers(&conn);
    let q = Queue::new("pp");
    {
        let p = producers.acquire(true, None).await.unwrap();
        p.publish("via pooled producer", PublishOptions::new().routing_key("pp").declare(q.clone())).await.unwrap();
        assert_eq!(pools::connections(&conn).in_use(), 1, "a producer holds a pooled connection");
    }
    let got = itermessages(&conn, &q, Some(5), Some(Duration::from_millis(50))).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload().unwrap(), Payload::Text("via pooled producer".into()));
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn rpc_with_send_reply_and_collect_replies() {
    let conn = Connection::new(&url("rpc")).unwrap();
    let requests = Queue::new("rpc.requests");
    let replies = Queue::new("rpc.replies");
    let producer = conn.producer().await.unwrap();
    producer.maybe_declare(replies.clone()).await.unwrap();
    for n in 0..3 {
        producer
            .publish(
                json!({"n": n}),
                PublishOptions::new().routing_key("rpc.requests").declare(requests.clone()).reply_to(replies.clone()).correlation_id(format!("c{n}")),
            )
            .await
            .unwrap();
    }
    let server = Consumer::new(&conn.default_channel().await.unwrap(), vec![requests.clone()]);
    for req in drain_consumer(&server, Some(3), Some(Duration::from_millis(200))).await.unwrap() {
        let n = req.payload_as::<serde_json::Value>().unwrap()["n"].as_i64().unwrap();
        send_reply(&Exchange::default(), &req, json!({"result": n * 2}), &producer, PublishOptions::new()).await.unwrap();
        req.ack().unwrap();
    }
    server.cancel().await.unwrap();
    let got = collect_replies(&conn, &replies, None, Duration::from_millis(100), false).await.unwrap();
    let ids: Vec<_> = got.iter().map(|m| m.properties().correlation_id.clone().unwrap()).collect();
    assert_eq!(ids, vec!["c0", "c1", "c2"]);
    assert_eq!(got[2].payload_as::<serde_json::Value>().unwrap(), json!({"result": 4}));
    // A request without reply_to is a clear error.
    let q = conn.simple_queue("plain").await.unwrap();
    q.put("x", PublishOptions::new()).await.unwrap();
    let m = q.get(true, Some(Duration::from_secs(1))).await.unwrap();
    let e = send_reply(&Exchange::default(), &m, "y", &producer, PublishOptions::new()).await.unwrap_err();
    assert!(e.to_string().contains("reply_to"), "{e}");
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn ignore_errors_insured_and_qos() {
    let conn = Connection::new(&url("misc")).unwrap();
    let ch = conn.default_channel().await.unwrap();
    // Passive declare of a missing queue is a channel error: ignored.
    let missing = Queue::new("missing").bind(&ch);
    let mut m2 = missing.clone();
    assert!(ignore_errors(async move { m2.queue_declare(false, true).await }).await.unwrap().is_none());
    // Other errors are not.
    assert!(ignore_errors(async { Err::<(), _>(Error::Value("x".into())) }).await.is_err());

    let pool = conn.pool(Some(2));
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let n = insured(&pool, |_: &Error, _: f64| {}, move |c: Connection| {
        let calls = c2.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            c.default_channel().await.map(|ch| ch.channel_id())
        }
    })
    .await
    .unwrap();
    assert!(n > 0);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(pool.in_use(), 0);

    let consumer = Consumer::new(&ch, vec![Queue::new("qos")]);
    consumer.consume().await.unwrap();
    let qos = QoS::new(10);
    assert_eq!(qos.increment_eventually(5), 15);
    assert_eq!(qos.decrement_eventually(100), 1);
    qos.update(&consumer).await.unwrap();
    qos.set(&consumer, 4).await.unwrap();
    assert_eq!(QoS::new(0).increment_eventually(3), 0, "unlimited stays unlimited");
}

#[cfg(not(target_arch = "wasm32"))]
struct Worker {
    conn: Connection,
    producer_conn: Connection,
    seen: Arc<AtomicUsize>,
    bodies: Arc<std::sync::Mutex<Vec<Payload>>>,
}

#[cfg(not(target_arch = "wasm32"))]
impl ConsumerMixin for Worker {
    fn connection(&self) -> &Connection {
        &self.conn
    }
    fn get_consumers(&self, channel: &Channel) -> kombu::Result<Vec<Consumer>> {
        let (seen, bodies) = (self.seen.clone(), self.bodies.clone());
        Ok(vec![Consumer::new(channel, vec![Queue::new("cpm.in")]).on_message(Arc::new(move |m: &Message| {
            bodies.lock().unwrap().push(m.payload().unwrap());
            m.ack().unwrap();
            seen.fetch_add(1, Ordering::SeqCst);
        }))])
    }
    fn should_stop(&self) -> bool {
        self.seen.load(Ordering::SeqCst) >= 2
    }
    fn timeout(&self) -> Duration {
        Duration::from_millis(50)
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl ConsumerProducerMixin for Worker {
    fn producer_connection(&self) -> &Connection {
        &self.producer_conn
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[tokio::test]
async fn consumer_producer_mixin_publishes_on_its_own_connection() {
    let conn = Connection::new(&url("cpm")).unwrap();
    let w = Worker { producer_conn: conn.clone_params(), conn: conn.clone(), seen: Arc::new(AtomicUsize::new(0)), bodies: Default::default() };
    let q = conn.simple_queue("cpm.in").await.unwrap();
    q.put("one", PublishOptions::new()).await.unwrap();
    q.put("two", PublishOptions::new()).await.unwrap();
    q.close().await.unwrap();
    w.run().await.unwrap();
    // Results go out through the producer connection, not the consuming one.
    let producer = w.producer();
    assert!(producer.connection().unwrap().params_key() == conn.params_key());
    let bodies = w.bodies.lock().unwrap().clone();
    for b in bodies {
        producer.publish(b, PublishOptions::new().routing_key("cpm.out").declare(Queue::new("cpm.out"))).await.unwrap();
    }
    assert!(w.producer_connection().connected());
    w.close_producer().await.unwrap();
    assert!(!w.producer_connection().connected());
    let out = itermessages(&conn, &Queue::new("cpm.out"), None, Some(Duration::from_millis(100))).await.unwrap();
    assert_eq!(out.len(), 2);
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn pidbox_call_multi_call_cast_and_patterns() {
    use kombu::pidbox::Mailbox;
    use kombu::ExchangeType;
    let conn = Connection::new(&url("pidbox")).unwrap();
    let mailbox = Mailbox::new("celery", ExchangeType::Fanout, &conn);
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
        while n.handle_next(Some(Duration::from_millis(150))).await.unwrap() {
            handled += 1;
        }
        handled
    };
    // call one node: only it replies
    let (replies, ha, hb) = futures::join!(
        mailbox.call(&["a@host"], "ping", json!({}), Duration::from_secs(2)),
        serve(nodes[0].clone()),
        serve(nodes[1].clone())
    );
    let replies = replies.unwrap();
    assert_eq!(replies, vec![json!({"a@host": {"ok": "pong", "from": "a@host"}})]);
    assert_eq!((ha, hb), (1, 1), "both nodes receive the broadcast, only the destination answers");
    assert_eq!(pings.load(Ordering::SeqCst), 1);
    // multi_call: everyone answers; unknown methods answer with an error
    let (replies, _, _) = futures::join!(
        mailbox.multi_call("nope", json!({}), Duration::from_millis(500), Some(2)),
        serve(nodes[0].clone()),
        serve(nodes[1].clone())
    );
    let mut replies = replies.unwrap();
    replies.sort_by_key(|r| r.to_string());
    assert_eq!(replies.len(), 2);
    assert!(replies[0]["a@host"]["error"].as_str().unwrap().contains("No such method: nope"));
    // cast by pattern: only matching nodes run the handler, no replies
    mailbox.cast_pattern("b@*", None, "ping", json!({})).await.unwrap();
    mailbox.abcast("ping", json!({})).await.unwrap();
    let (_, _) = futures::join!(serve(nodes[0].clone()), serve(nodes[1].clone()));
    assert_eq!(pings.load(Ordering::SeqCst), 1 + 1 + 2);
}
