//! Interop with Python kombu's pyamqp transport on the same RabbitMQ, both directions: body,
//! content_type, content_encoding, headers, priority, delivery_mode, correlation_id, reply_to
//! and expiration arrive as sent. The interpreter comes from KOMBU_PYTHON (scripts/test.sh);
//! skipped with a message without it, except under CI.

mod support;

use std::process::Command;
use std::time::Duration;

use kombu::{Connection, DeliveryMode, Payload, PublishOptions, Queue};
use serde_json::{json, Value};
use support::python;

fn py(python: &str, op: &str, queue: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/interop/pyamqp_peer.py");
    let out = Command::new(python).args([script, op, queue]).output().unwrap();
    assert!(out.status.success(), "pyamqp_peer.py {op} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn python_and_rust_exchange_messages_over_rabbitmq() {
    let Some(python) = python() else { return };
    kombu_gateway::register_transports();
    let url = "amqp://guest:guest@127.0.0.1:5672//";
    let name = format!("kombu-wasm-interop.{}", kombu::uuid());
    let conn = Connection::new(url).unwrap();
    let q = Queue::new(name.clone()).durable(false);

    // Python publishes, we consume.
    let (p2, n2) = (python.clone(), name.clone());
    tokio::task::spawn_blocking(move || py(&p2, "publish", &n2)).await.unwrap();
    let consumer = conn.consumer(vec![q.clone()]).await.unwrap();
    let m = consumer.next_message(Some(Duration::from_secs(10))).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Data(json!({"from": "python", "n": [1, 2.5]})));
    assert_eq!(m.content_type(), Some("application/json"));
    assert_eq!(m.content_encoding(), Some("utf-8"));
    assert_eq!(m.headers().get("h"), Some(&json!("v")));
    assert_eq!(m.headers().get("i"), Some(&json!(7)));
    let p = m.properties();
    assert_eq!((p.correlation_id.as_deref(), p.reply_to.as_deref()), (Some("py-cid"), Some("py-replies")));
    assert_eq!((p.priority, p.delivery_mode, p.expiration.as_deref()), (Some(4), Some(1), Some("60000")));
    m.ack().unwrap();
    consumer.cancel().await.unwrap();

    // We publish, Python consumes.
    conn.producer()
        .await
        .unwrap()
        .publish(
            json!({"from": "rust", "ok": true}),
            PublishOptions::new()
                .routing_key(name.clone())
                .header("h", "r")
                .correlation_id("rs-cid")
                .reply_to(Queue::new("rs-replies"))
                .priority(2)
                .delivery_mode(DeliveryMode::Persistent)
                .expiration(30.0),
        )
        .await
        .unwrap();
    let (p3, n3) = (python.clone(), name.clone());
    let out = tokio::task::spawn_blocking(move || py(&p3, "consume", &n3)).await.unwrap();
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["payload"], json!({"from": "rust", "ok": true}));
    assert_eq!(v["content_type"], "application/json");
    assert_eq!(v["headers"]["h"], "r");
    assert_eq!(v["properties"]["correlation_id"], "rs-cid");
    assert_eq!(v["properties"]["reply_to"], "rs-replies");
    assert_eq!(v["properties"]["priority"], 2);
    assert_eq!(v["properties"]["delivery_mode"], 2);
    assert_eq!(v["properties"]["expiration"], "30000");

    let ch = conn.default_channel().await.unwrap();
    Queue::new(name).bind(&ch).delete(false, false).await.unwrap();
    conn.release().await.unwrap();
}
