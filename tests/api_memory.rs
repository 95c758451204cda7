//! The Kombu API on `memory://`: connections, producers, consumers, entities, messages,
//! serialization and compression through the API, retries over reconnects.
//!
//! Every test uses its own virtual host (`memory:///<name>`) so tests running in parallel in
//! this process never see each other's queues. The same file runs natively (tokio) and in
//! wasm32 under Node and headless Chromium (wasm-bindgen-test).
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))] // callbacks are !Send in wasm

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use kombu::rt::{Duration, Instant};
use kombu::transport::memory::MemoryBroker;
use kombu::{
    binding, Connection, Consumer, DeliveryMode, Error, Exchange, ExchangeType, Message, Payload, Producer,
    PublishOptions, Queue, RetryPolicy, Value,
};
use serde_json::json;

fn url(test: &str) -> String {
    format!("memory:///{test}-{}", kombu::uuid())
}

fn vhost(conn: &Connection) -> String {
    conn.describe()["virtual_host"].as_str().unwrap().to_owned()
}

const SECOND: Option<Duration> = Some(Duration::from_secs(1));

/// Drain until `pred` holds (each wait at most a second), failing after 20 events.
async fn drain_until(conn: &Connection, pred: impl Fn() -> bool) {
    for _ in 0..20 {
        if pred() {
            return;
        }
        conn.drain_events(SECOND).await.expect("drain_events");
    }
    assert!(pred(), "condition not reached after 20 events");
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn quick_overview() {
    // The seed's "Quick overview", in Rust.
    let media = Exchange::direct("media").durable(true);
    let video = Queue::new("video").exchange(media.clone()).routing_key("video");
    let conn = Connection::new(&url("quick")).unwrap();
    assert!(!conn.connected(), "connections are lazy");

    let producer = conn.producer().await.unwrap().serializer("json");
    producer
        .publish(
            json!({"name": "/tmp/lolcat1.avi", "size": 1301013}),
            PublishOptions::new().exchange(&media).routing_key("video").declare(&video),
        )
        .await
        .unwrap();
    assert!(conn.connected());

    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let consumer = conn
        .consumer(vec![video.clone()])
        .await
        .unwrap()
        .callback(Arc::new(move |body: &Payload, message: &Message| {
            sink.lock().unwrap().push(body.to_value());
            message.ack().unwrap();
        }));
    consumer.consume().await.unwrap();
    drain_until(&conn, || !got.lock().unwrap().is_empty()).await;
    assert_eq!(got.lock().unwrap()[0], json!({"name": "/tmp/lolcat1.avi", "size": 1301013}));
    conn.release().await.unwrap();
    assert!(!conn.connected());
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn several_queues_on_one_consumer() {
    let media = Exchange::direct("media");
    let video = Queue::new("video").exchange(media.clone()).routing_key("video");
    let image = Queue::new("image").exchange(media.clone()).routing_key("image");
    let conn = Connection::new(&url("multi")).unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    let consumer = conn
        .consumer(vec![video.clone(), image.clone()])
        .await
        .unwrap()
        .callback(Arc::new(move |body: &Payload, m: &Message| {
            sink.lock().unwrap().push(format!("{}:{}", m.routing_key(), body.as_str().unwrap_or("?")));
            m.ack().unwrap();
        }));
    consumer.consume().await.unwrap();
    assert!(consumer.consuming_from("video") && consumer.consuming_from("image"));
    let producer = Producer::new(&conn.default_channel().await.unwrap()).exchange(media.clone());
    producer.publish(json!("v1"), PublishOptions::new().routing_key("video")).await.unwrap();
    producer.publish(json!("i1"), PublishOptions::new().routing_key("image")).await.unwrap();
    drain_until(&conn, || seen.lock().unwrap().len() == 2).await;
    assert_eq!(*seen.lock().unwrap(), vec!["video:v1", "image:i1"]);
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn entities_are_unbound_declarations() {
    let exchange = Exchange::direct("tasks");
    let err = exchange.delete(false).await.unwrap_err();
    assert_eq!(err.name(), "NotBoundError");
    assert_eq!(err.to_string(), "Can't call delete on Exchange 'tasks'(direct) not bound to a channel");
    let conn = Connection::new(&url("bound")).unwrap();
    let ch = conn.default_channel().await.unwrap();
    let bound = exchange.bind(&ch);
    bound.declare(false, None).await.unwrap();
    bound.delete(false).await.unwrap();
    assert!(!exchange.is_bound(), "the original stays unbound");
    assert!(exchange.delete(false).await.is_err());

    // Declarations are plain values: serde round trip and equality ignore the channel.
    let q = Queue::new("science")
        .exchange(Exchange::topic("news"))
        .routing_key("news.science.#")
        .message_ttl(1.5)
        .max_priority(10)
        .binding(binding(Exchange::direct("other"), "science"));
    let text = serde_json::to_string(&q).unwrap();
    let back: Queue = serde_json::from_str(&text).unwrap();
    assert_eq!(back, q);
    assert_eq!(q.bind(&ch), q);
    assert_eq!(q.declare_arguments()["x-message-ttl"], json!(1500));
    assert_eq!(q.declare_arguments()["x-max-priority"], json!(10));
    // Kombu's defaults.
    let d = Queue::default();
    assert!(d.durable && !d.exclusive && !d.auto_delete && !d.no_ack);
    assert_eq!(d.exchange, Exchange::default());
    let x: Exchange = serde_json::from_value(json!({"name": "n"})).unwrap();
    assert!(x.durable && !x.auto_delete && x.kind == ExchangeType::Direct && x.delivery_mode.is_none());
    assert!(Queue::new("e").exclusive(true).auto_delete);
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn queue_operations_when_bound() {
    let conn = Connection::new(&url("qops")).unwrap();
    let ch = conn.default_channel().await.unwrap();
    let news = Exchange::topic("news");
    let mut science = Queue::new("science").exchange(news.clone()).routing_key("news.science.#").bind(&ch);
    science.declare(false).await.unwrap();
    let p = Producer::new(&ch).exchange(news.clone());
    for key in ["news.science.physics", "news.science", "news.sport"] {
        p.publish("x", PublishOptions::new().routing_key(key)).await.unwrap();
    }
    let ok = science.queue_declare(false, true).await.unwrap();
    assert_eq!(ok.message_count, 2);
    let m = science.get(Some(true), None).await.unwrap().unwrap();
    assert_eq!(m.routing_key(), "news.science.physics");
    assert_eq!(science.purge().await.unwrap(), 1);
    assert_eq!(science.delete(false, false).await.unwrap(), 0);

    let mut anon = Queue::new("").exclusive(true).bind(&ch);
    let name = anon.declare(false).await.unwrap();
    assert!(name.starts_with("amq.gen-"));
    assert_eq!(anon.name, name);
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn hello_world_simple_queue() {
    // The seed's hello_publisher.py / hello_consumer.py.
    let conn = Connection::new(&url("hello")).unwrap();
    let queue = conn.simple_queue("simple_queue").await.unwrap();
    let message = format!("helloworld, sent at {}", 1234);
    queue.put(message.clone(), PublishOptions::new()).await.unwrap();
    assert_eq!(queue.qsize().await.unwrap(), 1);
    let m = queue.get(true, Some(Duration::from_secs(1))).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Text(message));
    m.ack().unwrap();
    let err = queue.get(true, Some(Duration::from_millis(50))).await.unwrap_err();
    assert_eq!(err.name(), "Empty");
    let err = queue.get_nowait().await.unwrap_err();
    assert_eq!(err.name(), "Empty");
    queue.put(json!({"n": 1}), PublishOptions::new()).await.unwrap();
    queue.put(json!({"n": 2}), PublishOptions::new()).await.unwrap();
    assert_eq!(queue.clear().await.unwrap(), 2);
    queue.close().await.unwrap();
    conn.release().await.unwrap();
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn simple_buffer_is_transient_and_unacked() {
    let conn = Connection::new(&url("buffer")).unwrap();
    let buf = conn.simple_buffer("logs").await.unwrap();
    assert!(!buf.queue().durable && buf.queue().auto_delete);
    buf.put(json!({"line": 1}), PublishOptions::new()).await.unwrap();
    let m = buf.get(false, None).await.unwrap();
    assert_eq!(m.properties().delivery_mode, Some(1));
    m.ack().unwrap(); // a no-op for no_ack messages, not an error
    assert_eq!(m.state(), kombu::MessageState::Received);
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn simple_queue_logger_example() {
    // The seed's SimpleQueue logger example: put dicts with a serializer and compression.
    let conn = Connection::new(&url("logger")).unwrap();
    let opts = kombu::SimpleOptions { serializer: Some("json".into()), compression: Some("zlib".into()), ..Default::default() };
    let q = kombu::SimpleQueue::new(&conn, "log", opts).await.unwrap();
    for i in 0..3 {
        q.put(json!({"message": format!("line {i}"), "level": "INFO"}), PublishOptions::new()).await.unwrap();
    }
    for i in 0..3 {
        let m = q.get(true, SECOND).await.unwrap();
        assert_eq!(m.headers()["compression"], json!("application/x-gzip"));
        assert_eq!(m.payload().unwrap().to_value()["message"], json!(format!("line {i}")));
        m.ack().unwrap();
    }
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn message_settlement_states() {
    let conn = Connection::new(&url("states")).unwrap();
    let q = conn.simple_queue("q").await.unwrap();
    q.put("a", PublishOptions::new()).await.unwrap();
    let m = q.get(true, SECOND).await.unwrap();
    assert!(!m.acknowledged());
    m.ack().unwrap();
    assert!(m.acknowledged());
    let err = m.ack().unwrap_err();
    assert_eq!(err.name(), "MessageStateError");
    assert_eq!(err.to_string(), "Message already acknowledged with state: ACK");
    assert_eq!(m.reject(false).unwrap_err().name(), "MessageStateError");

    q.put("b", PublishOptions::new()).await.unwrap();
    let m = q.get(true, SECOND).await.unwrap();
    m.requeue().unwrap();
    assert_eq!(m.requeue().unwrap_err().to_string(), "Message already acknowledged with state: REQUEUED");
    let again = q.get(true, SECOND).await.unwrap();
    assert!(again.redelivered());
    assert_eq!(again.body().as_ref(), b"b");
    again.reject(false).unwrap();
    assert_eq!(q.qsize().await.unwrap(), 0);
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn raw_and_text_bodies_bypass_serialization() {
    let conn = Connection::new(&url("raw")).unwrap();
    let q = conn.simple_queue("raw").await.unwrap();
    let jpeg: Vec<u8> = vec![0xff, 0xd8, 0xff, 0x00, 0x10];
    q.put(jpeg.clone(), PublishOptions::new().content_type("image/jpeg").content_encoding("binary")).await.unwrap();
    q.put("plain text", PublishOptions::new()).await.unwrap();
    q.put(b"\x00\x01binary".to_vec(), PublishOptions::new()).await.unwrap();
    q.put("as json", PublishOptions::new().serializer("json")).await.unwrap();
    let m = q.get(true, SECOND).await.unwrap();
    assert_eq!((m.content_type(), m.content_encoding()), (Some("image/jpeg"), Some("binary")));
    assert_eq!(m.body().as_ref(), jpeg.as_slice());
    let m = q.get(true, SECOND).await.unwrap();
    assert_eq!((m.content_type(), m.content_encoding()), (Some("text/plain"), Some("utf-8")));
    let m = q.get(true, SECOND).await.unwrap();
    assert_eq!((m.content_type(), m.content_encoding()), (Some("application/data"), Some("binary")));
    let m = q.get(true, SECOND).await.unwrap();
    assert_eq!(m.content_type(), Some("application/json"));
    assert_eq!(m.body().as_ref(), b"\"as json\"");
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn publish_sets_kombu_properties() {
    let conn = Connection::new(&url("props")).unwrap();
    let q = conn.simple_queue("props").await.unwrap();
    let reply = Queue::new("replies");
    q.put(
        json!({"t": 1}),
        PublishOptions::new()
            .delivery_mode(DeliveryMode::Transient)
            .expiration(60.0)
            .correlation_id("cid")
            .reply_to(&reply)
            .message_id("mid")
            .priority(5)
            .header("x-custom", "h1"),
    )
    .await
    .unwrap();
    q.put("defaults", PublishOptions::new()).await.unwrap();
    let m = q.get(true, SECOND).await.unwrap();
    let p = m.properties();
    assert_eq!(p.delivery_mode, Some(1));
    assert_eq!(p.expiration.as_deref(), Some("60000"));
    assert_eq!(p.correlation_id.as_deref(), Some("cid"));
    assert_eq!(p.reply_to.as_deref(), Some("replies"));
    assert_eq!(p.message_id.as_deref(), Some("mid"));
    assert_eq!(p.priority, Some(5));
    assert_eq!(m.headers()["x-custom"], json!("h1"));
    let m = q.get(true, SECOND).await.unwrap();
    assert_eq!(m.properties().delivery_mode, Some(2), "persistent by default");
    assert_eq!(m.properties().priority, Some(0));
    assert!(m.headers().is_empty());
    assert_eq!(m.delivery_info().exchange, "props");
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn accept_refuses_content_but_loses_nothing() {
    let conn = Connection::new(&url("accept")).unwrap();
    let ch = conn.default_channel().await.unwrap();
    let queue = Queue::new("acc");
    let producer = Producer::new(&ch);
    producer.publish("not json", PublishOptions::new().routing_key("acc").declare(&queue)).await.unwrap();

    let errors: Arc<Mutex<Vec<(String, Message)>>> = Arc::default();
    let sink = errors.clone();
    let consumer = Consumer::new(&ch, vec![queue.clone()])
        .accept(["json"])
        .unwrap()
        .callback(Arc::new(|_: &Payload, _: &Message| panic!("must not be called")))
        .on_decode_error(Arc::new(move |m: &Message, e: &Error| {
            sink.lock().unwrap().push((e.name().to_owned(), m.clone()));
        }));
    consumer.consume().await.unwrap();
    drain_until(&conn, || !errors.lock().unwrap().is_empty()).await;
    let (name, m) = errors.lock().unwrap().pop().unwrap();
    assert_eq!(name, "ContentDisallowed");
    assert_eq!(m.body().as_ref(), b"not json", "the raw body stays readable");
    m.requeue().unwrap();
    consumer.cancel().await.unwrap();

    // Without on_decode_error the error comes out of drain_events, and the message stays
    // unacknowledged: closing the channel puts it back.
    let ch2 = conn.channel().await.unwrap();
    let strict = Consumer::new(&ch2, vec![queue.clone()])
        .accept(["application/json"])
        .unwrap()
        .callback(Arc::new(|_: &Payload, _: &Message| panic!("must not be called")));
    strict.consume().await.unwrap();
    let err = loop {
        match conn.drain_events(SECOND).await {
            Ok(()) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(err.name(), "ContentDisallowed");
    assert!(err.to_string().contains("text/plain"), "{err}");
    ch2.close().await.unwrap();
    let q = queue.bind(&ch);
    let back = q.get(Some(false), None).await.unwrap().expect("requeued on channel close");
    assert_eq!(back.body().as_ref(), b"not json");
    assert!(back.redelivered());
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn iterating_a_consumer_and_decode_errors() {
    let conn = Connection::new(&url("iter")).unwrap();
    let ch = conn.default_channel().await.unwrap();
    let q = Queue::new("it");
    let p = Producer::new(&ch);
    for i in 0..3 {
        p.publish(json!({"i": i}), PublishOptions::new().routing_key("it").declare(&q)).await.unwrap();
    }
    p.publish(b"\x80garbage".to_vec(), PublishOptions::new().routing_key("it").content_type("application/json")).await.unwrap();
    // A body that claims zlib compression but is not: handed out too, payload says why.
    p.publish(b"not zlib".to_vec(), PublishOptions::new().routing_key("it").content_type("application/json").header("compression", "application/x-gzip"))
        .await
        .unwrap();
    let consumer = Consumer::new(&ch, vec![q]).prefetch_count(10);
    for i in 0..3 {
        let m = consumer.next_message(SECOND).await.unwrap();
        assert_eq!(m.payload().unwrap().to_value(), json!({"i": i}));
        m.ack().unwrap();
    }
    let bad = consumer.next_message(SECOND).await.unwrap();
    assert_eq!(bad.payload().unwrap_err().name(), "DecodeError");
    bad.reject(false).unwrap();
    let bad = consumer.next_message(SECOND).await.unwrap();
    let err = bad.payload().unwrap_err();
    assert!(err.to_string().contains("not valid application/x-gzip data"), "{err}");
    assert_eq!(bad.headers()["compression"], json!("application/x-gzip"));
    bad.requeue().unwrap();
    let again = consumer.next_message(SECOND).await.unwrap();
    assert!(again.redelivered(), "requeued, not lost");
    again.reject(false).unwrap();
    let err = consumer.next_message(Some(Duration::from_millis(30))).await.unwrap_err();
    assert_eq!(err.name(), "TimeoutError");
}

// The consumer is a Stream of messages that drains the connection itself: a message published
// while it waits arrives. The handle stays Send + Sync natively.
#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn a_consumer_is_a_stream_of_messages() {
    use futures::StreamExt;
    #[cfg(not(target_arch = "wasm32"))]
    fn send_sync<T: Send + Sync>(_: &T) {}
    let conn = Connection::new(&url("stream")).unwrap();
    let ch = conn.default_channel().await.unwrap();
    let q = Queue::new("st");
    let p = Producer::new(&ch);
    p.publish(json!(1), PublishOptions::new().routing_key("st").declare(&q)).await.unwrap();
    let mut consumer = Consumer::new(&ch, vec![q]);
    #[cfg(not(target_arch = "wasm32"))]
    send_sync(&consumer);
    let m = consumer.next().await.unwrap().unwrap();
    assert_eq!(m.payload().unwrap().to_value(), json!(1));
    m.ack().unwrap();
    let later = async {
        kombu::rt::sleep(Duration::from_millis(20)).await;
        p.publish(json!(2), PublishOptions::new().routing_key("st")).await.unwrap();
    };
    let (got, ()) = futures::join!(consumer.next(), later);
    let m = got.unwrap().unwrap();
    assert_eq!(m.payload().unwrap().to_value(), json!(2));
    m.ack().unwrap();
    consumer.cancel().await.unwrap();
    assert_eq!(Consumer::buffered(&consumer), 0);
}

// Messages as Rust types: publish_typed writes a serde struct as the JSON a value would give,
// payload_as reads it back without an intermediate value, with the accept list and with a
// body of another shape reported while the message stays rejectable.
#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn typed_messages() {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Add {
        id: u32,
        task: String,
        args: Vec<i64>,
    }
    let conn = Connection::new(&url("typed")).unwrap();
    let ch = conn.default_channel().await.unwrap();
    let q = Queue::new("typed");
    let p = Producer::new(&ch);
    let add = Add { id: 1, task: "tasks.add".into(), args: vec![2, 3] };
    p.publish_typed(&add, PublishOptions::new().routing_key("typed").declare(&q)).await.unwrap();
    p.publish(json!({"id": 2, "task": "tasks.add", "args": [4, 5]}), PublishOptions::new().routing_key("typed")).await.unwrap();
    p.publish_typed(&json!({"id": "three"}), PublishOptions::new().routing_key("typed")).await.unwrap();
    let err = p.publish_typed(&add, PublishOptions::new().routing_key("typed").content_type("application/json")).await.unwrap_err();
    assert!(err.to_string().contains("already serialized"), "{err}");

    let q = q.bind(&ch);
    let first = q.get(Some(false), None).await.unwrap().unwrap();
    assert_eq!(first.content_type(), Some("application/json"));
    assert_eq!(first.body().as_ref(), br#"{"id": 1, "task": "tasks.add", "args": [2, 3]}"#, "the bytes json! would give");
    assert_eq!(first.payload_as::<Add>().unwrap(), add);
    first.ack().unwrap();
    let second = q.get(Some(false), None).await.unwrap().unwrap();
    assert_eq!(second.payload_as::<Add>().unwrap(), Add { id: 2, task: "tasks.add".into(), args: vec![4, 5] });
    second.ack().unwrap();
    let third = q.get(Some(false), None).await.unwrap().unwrap();
    let err = third.payload_as::<Add>().unwrap_err();
    assert_eq!(err.name(), "DecodeError");
    assert!(err.to_string().contains("does not match the requested type"), "{err}");
    third.requeue().unwrap();
    let again = q.get(Some(false), None).await.unwrap().expect("requeued, not lost");
    assert_eq!(again.payload().unwrap().to_value(), json!({"id": "three"}));
    again.ack().unwrap();
}

// Deliveries waiting in an iterating consumer's buffer were never seen by the application:
// cancelling the consumer requeues them (else they would stay unacknowledged, held against
// the prefetch window, until the channel closes); the message handed out stays the
// application's to settle. A no_ack consumer's buffered messages stay readable.
#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn cancel_requeues_what_the_buffer_holds() {
    let conn = Connection::new(&url("cancelbuf")).unwrap();
    let ch = conn.default_channel().await.unwrap();
    let q = Queue::new("cb");
    let p = Producer::new(&ch);
    for i in 0..10 {
        p.publish(json!({"i": i}), PublishOptions::new().routing_key("cb").declare(&q)).await.unwrap();
    }
    let first = Consumer::new(&ch, vec![q.clone()]).prefetch_count(10);
    let m0 = first.next_message(SECOND).await.unwrap();
    conn.drain_events(Some(Duration::from_millis(20))).await.ok();
    assert!(first.buffered() > 0, "the rest of the prefetch window waits in the buffer");
    first.cancel().await.unwrap();
    assert_eq!(first.buffered(), 0);
    // Deliveries the connection has not dispatched yet are requeued as they are.
    while conn.drain_events(Some(Duration::from_millis(20))).await.is_ok() {}
    assert_eq!(q.bind(&ch).queue_declare(false, true).await.unwrap().message_count, 9, "all but the one handed out are back");
    m0.ack().unwrap();
    let second = Consumer::new(&ch, vec![q.clone()]);
    let mut seen = Vec::new();
    for _ in 0..9 {
        let m = second.next_message(SECOND).await.unwrap();
        seen.push(m.payload().unwrap().to_value()["i"].as_u64().unwrap());
        m.ack().unwrap();
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..10).collect::<Vec<_>>());
    second.cancel().await.unwrap();

    for i in 0..3 {
        p.publish(json!({"i": i}), PublishOptions::new().routing_key("cb")).await.unwrap();
    }
    let auto = Consumer::new(&ch, vec![q.clone()]).no_ack(true);
    auto.next_message(SECOND).await.unwrap();
    conn.drain_events(Some(Duration::from_millis(20))).await.ok();
    let waiting = auto.buffered();
    assert!(waiting > 0);
    auto.cancel().await.unwrap();
    assert_eq!(auto.buffered(), waiting, "no_ack messages are not requeued: the broker forgot them");
    assert!(auto.try_next().is_some());
}

// A channel exception (here: a publish on the consumer's channel to an exchange that does not
// exist, 404) closes the channel while deliveries wait in the consumer's buffer. The broker
// puts every unacknowledged one back in the queue; the buffered ones were handed out anyway,
// and each was processed twice (its ack failed, and it came back redelivered). Now they are
// dropped: each message reaches the application once more, redelivered, and none is lost.
// A no_ack consumer's buffered messages, which the broker has forgotten, are still handed out.
#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn buffered_messages_of_a_closed_channel_are_not_handed_out() {
    let u = url("closedbuf");
    let conn = Connection::new(&u).unwrap();
    let ch = conn.channel().await.unwrap();
    let q = Queue::new("closedbuf");
    let p = Producer::new(&ch);
    for i in 0..5 {
        p.publish(json!({"i": i}), PublishOptions::new().routing_key("closedbuf").declare(&q)).await.unwrap();
    }
    let first = Consumer::new(&ch, vec![q.clone()]).prefetch_count(10);
    let m0 = first.next_message(SECOND).await.unwrap();
    conn.drain_events(Some(Duration::from_millis(20))).await.ok();
    assert!(first.buffered() > 0, "the rest of the prefetch window waits in the buffer");
    let err = p.publish(json!(1), PublishOptions::new().exchange(Exchange::direct("closedbuf-missing"))).await.unwrap_err();
    assert_eq!(err.name(), "NotFound", "{err}");
    assert!(first.try_next().is_none(), "a message of the closed channel was handed out");
    assert!(m0.ack().is_err(), "the channel is closed: its deliveries cannot be acknowledged");
    conn.release().await.unwrap();

    let conn = Connection::new(&u).unwrap();
    let second = conn.consumer(vec![q.clone()]).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let m = second.next_message(SECOND).await.unwrap();
        assert!(m.redelivered(), "every message was delivered before the channel closed");
        seen.push(m.payload().unwrap().to_value()["i"].as_u64().unwrap());
        m.ack().unwrap();
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..5).collect::<Vec<_>>());
    let err = second.next_message(Some(Duration::from_millis(50))).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");

    // A no_ack consumer's buffered messages are the application's only copy (the broker forgot
    // them when it sent them): the channel closing does not drop them.
    second.cancel().await.unwrap();
    let ch = conn.channel().await.unwrap();
    let p = Producer::new(&ch);
    for i in 0..3 {
        p.publish(json!({"i": i}), PublishOptions::new().routing_key("closedbuf")).await.unwrap();
    }
    let auto = Consumer::new(&ch, vec![q.clone()]).no_ack(true);
    auto.next_message(SECOND).await.unwrap();
    conn.drain_events(Some(Duration::from_millis(20))).await.ok();
    let held = auto.buffered();
    assert!(held > 0);
    let err = p.publish(json!(1), PublishOptions::new().exchange(Exchange::direct("closedbuf-missing"))).await.unwrap_err();
    assert_eq!(err.name(), "NotFound", "{err}");
    assert_eq!(std::iter::from_fn(|| auto.try_next()).count(), held, "a buffered no_ack message was dropped");
    conn.release().await.unwrap();
}

// A consumer dropped with all its handles (in the npm package: a Consumer object garbage
// collected) used to stay registered at the broker: each delivery to it was requeued and at
// once delivered to it again, so the connection always had an event waiting and a
// next_message() or drain_events() on it looped without ever yielding (the npm package's
// random-input test hung at 100% CPU, timing-dependent: it took a garbage collection). Now
// the consumer is cancelled at the broker by the connection's next wait, and what it was sent
// goes back to its queue.
#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn a_dropped_consumer_is_cancelled_and_its_deliveries_requeued() {
    let conn = Connection::new(&url("dropped")).unwrap();
    let ch = conn.default_channel().await.unwrap();
    let q = Queue::new("orphaned");
    let p = Producer::new(&ch);
    for i in 0..3 {
        p.publish(json!({"i": i}), PublishOptions::new().routing_key("orphaned").declare(&q)).await.unwrap();
    }
    let gone = Consumer::new(&ch, vec![q.clone()]);
    // Consuming: the broker sends it the messages (not dispatched yet), and one of them is
    // dispatched into its buffer, never handed out.
    gone.consume().await.unwrap();
    conn.drain_events(SECOND).await.unwrap();
    assert_eq!(gone.buffered(), 1);
    drop(gone);
    // Another consumer of the connection waits on another queue: nothing comes.
    let live = Consumer::new(&ch, vec![Queue::new("orphaned-other")]);
    let err = live.next_message(Some(Duration::from_millis(100))).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    let snap = MemoryBroker::global().snapshot(&vhost(&conn)).unwrap();
    let info = snap.queues.iter().find(|i| i.name == "orphaned").unwrap();
    assert_eq!((info.consumers, info.messages_ready, info.messages_unacknowledged), (0, 3, 0), "{info:?}");
    assert_eq!(info.delivered, 3, "each message was delivered once, not bounced: {info:?}");
    // The sync path does not loop either, and a new consumer gets every message.
    assert_eq!(conn.drain_nowait().unwrap(), 0);
    let next = Consumer::new(&ch, vec![q.clone()]);
    for _ in 0..3 {
        next.next_message(SECOND).await.unwrap().ack().unwrap();
    }
    conn.release().await.unwrap();
}

// The same with the consumer's channel dropped too: the deliveries to the consumer left on
// it were requeued and sent to it again, without end.
#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn a_dropped_channel_stops_receiving() {
    let conn = Connection::new(&url("droppedch")).unwrap();
    let q = Queue::new("orphaned");
    let p = conn.producer().await.unwrap();
    for i in 0..3 {
        p.publish(json!({"i": i}), PublishOptions::new().routing_key("orphaned").declare(&q)).await.unwrap();
    }
    let ch = conn.channel().await.unwrap();
    let gone = Consumer::new(&ch, vec![q.clone()]);
    gone.consume().await.unwrap();
    drop((gone, ch));
    let live = conn.consumer(vec![Queue::new("orphaned-other")]).await.unwrap();
    let err = live.next_message(Some(Duration::from_millis(100))).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    let snap = MemoryBroker::global().snapshot(&vhost(&conn)).unwrap();
    let info = snap.queues.iter().find(|i| i.name == "orphaned").unwrap();
    assert_eq!((info.consumers, info.messages_ready, info.delivered), (0, 3, 3), "{info:?}");
    let next = conn.consumer(vec![q.clone()]).await.unwrap();
    for _ in 0..3 {
        next.next_message(SECOND).await.unwrap().ack().unwrap();
    }
    conn.release().await.unwrap();
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn drain_events_times_out() {
    let conn = Connection::new(&url("timeout")).unwrap();
    let started = Instant::now();
    let err = conn.drain_events(Some(Duration::from_millis(50))).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)));
    assert!(started.elapsed() >= Duration::from_millis(45));
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn consumer_controls() {
    let conn = Connection::new(&url("controls")).unwrap();
    let ch = conn.default_channel().await.unwrap();
    let a = Queue::new("a");
    let b = Queue::new("b");
    let count = Arc::new(AtomicUsize::new(0));
    let c2 = count.clone();
    let consumer = Consumer::new(&ch, vec![a.clone()]).tag_prefix("worker-").callback(Arc::new(move |_: &Payload, m: &Message| {
        c2.fetch_add(1, Ordering::SeqCst);
        m.ack().unwrap();
    }));
    consumer.consume().await.unwrap();
    assert!(consumer.consumer_tags()[0].starts_with("worker-"));
    consumer.add_queue(b.clone()).await.unwrap();
    assert!(!consumer.consuming_from("b"), "add_queue does not start consuming");
    consumer.consume().await.unwrap();
    assert!(consumer.consuming_from("b"));
    let p = Producer::new(&ch);
    p.publish("1", PublishOptions::new().routing_key("a")).await.unwrap();
    p.publish("2", PublishOptions::new().routing_key("b")).await.unwrap();
    drain_until(&conn, || count.load(Ordering::SeqCst) == 2).await;
    consumer.cancel_by_queue("a").await.unwrap();
    assert!(!consumer.consuming_from("a"));
    p.publish("3", PublishOptions::new().routing_key("a")).await.unwrap();
    assert_eq!(a.bind(&ch).queue_declare(false, true).await.unwrap().message_count, 1);
    consumer.flow(false).await.unwrap();
    p.publish("4", PublishOptions::new().routing_key("b")).await.unwrap();
    p.publish("5", PublishOptions::new().routing_key("b")).await.unwrap();
    assert!(conn.drain_events(Some(Duration::from_millis(30))).await.is_err(), "flow off: no deliveries");
    consumer.flow(true).await.unwrap();
    drain_until(&conn, || count.load(Ordering::SeqCst) == 4).await;
    consumer.cancel().await.unwrap();
    assert!(consumer.consumer_tags().is_empty());
    assert_eq!(consumer.purge().await.unwrap(), 0);
    let err = consumer.recover(false).await.unwrap_err();
    assert_eq!(err.name(), "NotImplementedError");
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn prefetch_and_recover() {
    let conn = Connection::new(&url("prefetch")).unwrap();
    let ch = conn.default_channel().await.unwrap();
    let q = Queue::new("pf");
    let p = Producer::new(&ch);
    for i in 0..5 {
        p.publish(json!(i), PublishOptions::new().routing_key("pf").declare(&q)).await.unwrap();
    }
    let held: Arc<Mutex<Vec<Message>>> = Arc::default();
    let sink = held.clone();
    let consumer = Consumer::new(&ch, vec![q.clone()]).prefetch_count(2).callback(Arc::new(move |_: &Payload, m: &Message| {
        sink.lock().unwrap().push(m.clone());
    }));
    consumer.consume().await.unwrap();
    drain_until(&conn, || held.lock().unwrap().len() == 2).await;
    assert!(conn.drain_events(Some(Duration::from_millis(30))).await.is_err(), "window full");
    consumer.recover(true).await.unwrap();
    drain_until(&conn, || held.lock().unwrap().len() == 4).await;
    let msgs = held.lock().unwrap().clone();
    assert!(msgs[2].redelivered() && msgs[3].redelivered());
    // The first two deliveries were requeued by recover: their tags are no longer valid.
    msgs[3].ack().unwrap();
    msgs[2].ack_multiple(true).unwrap();
    drain_until(&conn, || held.lock().unwrap().len() == 6).await;
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn mandatory_returns_reach_on_return() {
    let conn = Connection::new(&url("return")).unwrap();
    let ch = conn.default_channel().await.unwrap();
    let returned: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = returned.clone();
    let x = Exchange::direct("nowhere");
    let producer = Producer::new(&ch).exchange(x).on_return(Arc::new(move |e: &Error, exchange: &str, rk: &str, m: &Message| {
        sink.lock().unwrap().push(format!("{} {exchange} {rk} {}", e.name(), String::from_utf8_lossy(m.body())));
    }));
    producer.publish("lost?", PublishOptions::new().routing_key("k").mandatory(true)).await.unwrap();
    drain_until(&conn, || !returned.lock().unwrap().is_empty()).await;
    assert_eq!(returned.lock().unwrap()[0], "NoRoute nowhere k lost?");
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn channel_errors_close_only_that_channel_and_default_channel_recovers() {
    let conn = Connection::new(&url("chanerr")).unwrap();
    let producer = conn.producer().await.unwrap();
    let err = producer.publish("x", PublishOptions::new().exchange("missing")).await.unwrap_err();
    assert_eq!(err.name(), "NotFound");
    // The default channel re-opens by itself.
    producer.publish("y", PublishOptions::new().routing_key("whatever")).await.unwrap();
    let explicit = conn.channel().await.unwrap();
    let mut q = Queue::new("nope").bind(&explicit);
    assert_eq!(q.queue_declare(false, true).await.unwrap_err().name(), "NotFound");
    let err = q.queue_declare(false, false).await.unwrap_err();
    assert_eq!(err.name(), "NotFound", "an explicit channel stays closed, with the broker's reason: {err}");
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn ttl_and_dead_lettering_through_the_api() {
    let conn = Connection::new(&url("dlx")).unwrap();
    let ch = conn.default_channel().await.unwrap();
    let dlx = Exchange::fanout("dlx");
    let mut dead = Queue::new("dead").exchange(dlx.clone()).bind(&ch);
    dead.declare(false).await.unwrap();
    let mut work = Queue::new("work").message_ttl(0.05).queue_argument("x-dead-letter-exchange", "dlx").bind(&ch);
    work.declare(false).await.unwrap();
    Producer::new(&ch).publish(json!({"job": 1}), PublishOptions::new().routing_key("work")).await.unwrap();
    let consumer = Consumer::new(&ch, vec![dead.clone()]);
    let m = consumer.next_message(SECOND).await.expect("expired message dead-lettered while waiting");
    assert_eq!(m.payload().unwrap().to_value(), json!({"job": 1}));
    assert_eq!(m.headers()["x-death"][0]["reason"], json!("expired"));
    m.ack().unwrap();
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn headers_exchange_through_the_api() {
    let conn = Connection::new(&url("hdrs")).unwrap();
    let ch = conn.default_channel().await.unwrap();
    let x = Exchange::headers("hx");
    let mut pdf = Queue::new("pdf")
        .exchange(x.clone())
        .binding_argument("x-match", "all")
        .binding_argument("format", "pdf")
        .binding_argument("type", "report")
        .bind(&ch);
    pdf.declare(false).await.unwrap();
    let p = Producer::new(&ch).exchange(x);
    p.publish("r1", PublishOptions::new().header("format", "pdf").header("type", "report")).await.unwrap();
    p.publish("r2", PublishOptions::new().header("format", "pdf")).await.unwrap();
    assert_eq!(pdf.queue_declare(false, true).await.unwrap().message_count, 1);
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn maybe_declare_caches_per_connection() {
    let conn = Connection::new(&url("cache")).unwrap();
    let ch = conn.default_channel().await.unwrap();
    let q = Queue::new("cached").exchange(Exchange::direct("cx")).routing_key("k");
    assert!(kombu::maybe_declare(&q.clone().into(), &ch, None).await.unwrap());
    assert!(!kombu::maybe_declare(&q.clone().into(), &ch, None).await.unwrap());
    let ad = Queue::new("ad").auto_delete(true);
    assert!(kombu::maybe_declare(&ad.clone().into(), &ch, None).await.unwrap());
    assert!(kombu::maybe_declare(&ad.into(), &ch, None).await.unwrap(), "auto-delete queues are not cached");
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn publish_with_retry_survives_a_broker_restart() {
    // A private broker, so that closing all its connections only affects this test.
    let broker = MemoryBroker::new();
    kombu::transport::registry::register("memtest-retry", Arc::new(kombu::transport::memory::MemoryTransport::new(broker.clone())));
    let conn = Connection::new("memtest-retry:///").unwrap();
    let q = Queue::new("survive").durable(true);
    let producer = conn.producer().await.unwrap();
    producer.publish(json!(1), PublishOptions::new().routing_key("survive").declare(&q)).await.unwrap();

    let held: Arc<Mutex<Vec<i64>>> = Arc::default();
    let sink = held.clone();
    let consumer = conn.consumer(vec![q.clone()]).await.unwrap().callback(Arc::new(move |b: &Payload, m: &Message| {
        sink.lock().unwrap().push(b.to_value().as_i64().unwrap());
        m.ack().unwrap();
    }));
    consumer.consume().await.unwrap();
    drain_until(&conn, || held.lock().unwrap().len() == 1).await;

    broker.force_close_all("simulated restart");
    let err = conn.drain_events(SECOND).await.unwrap_err();
    assert!(err.is_recoverable_connection_error(), "{err}");

    let errors = Arc::new(AtomicUsize::new(0));
    let e2 = errors.clone();
    let policy = RetryPolicy { interval_start: 0.0, interval_step: 0.01, interval_max: 0.05, max_retries: Some(3), timeout: None };
    conn.ensure(&policy, move |_: &Error, _: f64| { e2.fetch_add(1, Ordering::SeqCst); }, || {
        producer.publish(json!(2), PublishOptions::new().routing_key("survive"))
    })
    .await
    .unwrap();
    // The connection error was already seen by drain_events, so the channel simply reconnects
    // on its next use: ensure had nothing to retry.
    assert_eq!(errors.load(Ordering::SeqCst), 0);
    // The consumer was re-established on the new connection.
    drain_until(&conn, || held.lock().unwrap().len() == 2).await;
    assert_eq!(*held.lock().unwrap(), vec![1, 2]);

    // publish(retry=true) does the same by itself.
    broker.force_close_all("again");
    producer.publish(json!(3), PublishOptions::new().routing_key("survive").retry(Some(policy.clone()))).await.unwrap();
    drain_until(&conn, || held.lock().unwrap().len() == 3).await;
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn ensure_gives_up_as_operational_error() {
    let broker = MemoryBroker::new();
    kombu::transport::registry::register("memtest-giveup", Arc::new(kombu::transport::memory::MemoryTransport::new(broker.clone())));
    let conn = Connection::new("memtest-giveup:///").unwrap();
    conn.connect().await.unwrap();
    let policy = RetryPolicy { interval_start: 0.0, interval_step: 0.0, interval_max: 0.0, max_retries: Some(2), timeout: None };
    let calls = AtomicUsize::new(0);
    let errbacks = AtomicUsize::new(0);
    let err = conn
        .ensure(&policy, |e: &Error, _: f64| {
            assert_eq!(e.name(), "RecoverableConnectionError");
            errbacks.fetch_add(1, Ordering::SeqCst);
        }, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(Error::RecoverableConnection("socket closed".into())) }
        })
        .await
        .unwrap_err();
    assert_eq!(err.name(), "OperationalError");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "one call and two retries");
    assert_eq!(errbacks.load(Ordering::SeqCst), 2);
    let err = conn.ensure(&policy, |_: &Error, _: f64| {}, || async { Err::<(), _>(Error::Value("bad".into())) }).await.unwrap_err();
    assert_eq!(err.name(), "ValueError", "other errors are not retried");
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn autoretry_passes_the_default_channel() {
    let conn = Connection::new(&url("autoretry")).unwrap();
    let n = conn
        .autoretry(|ch| async move {
            let mut q = Queue::new("ar").bind(&ch);
            q.declare(false).await?;
            q.purge().await
        })
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn urls_and_failover() {
    let err = Connection::new("memroy://").unwrap_err();
    assert_eq!(err.name(), "UnknownTransport");
    assert!(err.to_string().contains("memory"), "{err}");
    let err = Connection::new("amqp://guest:secret@localhost:70000//").unwrap_err();
    assert_eq!(err.name(), "InvalidURL");
    assert!(err.to_string().contains("70000"), "{err}");
    assert!(!err.to_string().contains("secret"), "{err}");

    // A transport that never connects, then memory: failover goes to the second URL.
    struct Down;
    #[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
    #[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
    impl kombu::transport::Transport for Down {
        fn driver_name(&self) -> &'static str {
            "down"
        }
        fn default_port(&self) -> Option<u16> {
            Some(1)
        }
        fn implements(&self) -> kombu::transport::Implements {
            kombu::transport::Implements { asynchronous: true, exchange_types: vec![], heartbeats: false }
        }
        async fn establish_connection(&self, _: &kombu::transport::ConnectInfo) -> kombu::Result<Arc<dyn kombu::transport::RawConnection>> {
            Err(Error::RecoverableConnection("connection refused".into()))
        }
    }
    kombu::transport::registry::register("downtest", Arc::new(Down));
    let vh = format!("failover-{}", kombu::uuid());
    let conn = Connection::new(&format!("downtest://user:pw@nohost//; memory:///{vh}")).unwrap();
    assert_eq!(conn.alt().len(), 2);
    assert!(conn.as_uri(false).starts_with("downtest://user:**@nohost"), "{}", conn.as_uri(false));
    conn.connect().await.unwrap();
    assert_eq!(conn.transport_name(), "memory");
    assert_eq!(vhost(&conn), vh);
}

#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn release_ends_a_wait_at_once_whatever_the_next_expiry() {
    // A message that expires in an hour sets the waiter's timer to an hour. Releasing the
    // connection must end the wait now (with the reason), not when that timer fires: an
    // abandoned `drainEvents()` kept Node running for the message's TTL after `release()`.
    let conn = Connection::new(&url("release-wakes")).unwrap();
    let q = Queue::new("far-expiry");
    let producer = conn.producer().await.unwrap();
    producer.publish(json!(1), PublishOptions::new().routing_key("far-expiry").declare(&q).expiration(3600.0)).await.unwrap();
    let waiter = async {
        let started = Instant::now();
        (conn.drain_events(None).await, started.elapsed())
    };
    let closer = async {
        kombu::rt::sleep(Duration::from_millis(50)).await;
        conn.release().await.unwrap();
    };
    // A guard far longer than the wait should take, far shorter than the expiry.
    let guard = kombu::rt::sleep(Duration::from_secs(60));
    let both = futures::future::join(waiter, closer);
    futures::pin_mut!(both, guard);
    let ((result, waited), ()) = match futures::future::select(both, guard).await {
        futures::future::Either::Left((r, _)) => r,
        futures::future::Either::Right(_) => panic!("the wait did not end within 60 s of release()"),
    };
    let err = result.unwrap_err();
    assert!(err.is_recoverable_connection_error(), "{err}");
    assert!(err.to_string().contains("release/close"), "{err}");
    assert!(waited < Duration::from_secs(60));
}

/// `describe()` has every field, in order, with each value's JSON type (a null for an absent
/// option, numbers for the port and timeouts, the options table as an object).
#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
async fn describe_lists_every_field_in_order() {
    let mut options = kombu::ConnectionOptions::default();
    options.transport_options.insert("polling_interval".into(), json!(0.5));
    options.heartbeat = Some(10.0);
    options.alternates = vec!["memory://guest:secret@other:5673/".into()];
    let conn = Connection::with_options("memory://guest:secret@localhost:5672/vh", options).unwrap();
    let d = conn.describe();
    let keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "transport", "hostname", "port", "userid", "virtual_host", "ssl", "heartbeat", "connect_timeout", "login_method",
            "transport_options", "alternates", "failover_strategy", "uri"
        ]
    );
    assert_eq!(d["transport"], json!("memory"));
    assert_eq!(d["hostname"], json!("localhost"));
    assert_eq!(d["port"], json!(5672));
    assert_eq!(d["userid"], json!("guest"));
    assert_eq!(d["virtual_host"], json!("vh"));
    assert_eq!(d["ssl"], json!(false));
    assert_eq!(d["heartbeat"], json!(10.0));
    assert_eq!(d["connect_timeout"], Value::Null);
    assert_eq!(d["transport_options"], json!({"polling_interval": 0.5}));
    assert!(d["alternates"].as_array().is_some_and(|a| a.len() == 2), "{d}");
    assert!(d["failover_strategy"].is_string() && d["uri"].as_str().is_some_and(|u| !u.contains("secret")), "{d}");
}
