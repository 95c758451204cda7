//! Interop with Python kombu 5.7's sqs:// transport on the same moto server, both ways:
//! bodies, headers and properties, queue-name mangling, FIFO groups, message attributes,
//! bodies that are not envelopes, and a message requeued or left unacknowledged by one side
//! that the other side receives again. The interpreter comes from KOMBU_PYTHON
//! (scripts/test.sh); skipped with a message without it, except under CI. Each test uses its
//! own `queue_name_prefix` and deletes its queues.

mod sqs_common;
mod support;

use std::io::BufRead;
use std::time::Duration;

use kombu::{Exchange, Payload, PublishOptions, Queue, Value};
use serde_json::json;
use sqs_common::{connection, moto_up, prefix, url, Raw};
use support::{python, PythonPeer};

const WAIT: Option<Duration> = Some(Duration::from_secs(15));

/// Python kombu on the same moto (tests/interop/sqs_peer.py), with this test's queues.
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
        if !moto_up() {
            return None;
        }
        Some(Peer { py: PythonPeer::new(python()?, "sqs_peer.py", url()), prefix: prefix() })
    }

    fn options(&self, extra: serde_json::Value) -> serde_json::Value {
        let mut o = json!({"queue_name_prefix": self.prefix, "region": "us-east-1", "is_secure": false, "wait_time_seconds": 1, "polling_interval": 0.2});
        o.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
        o
    }

    fn connection(&self, extra: &[(&str, Value)]) -> kombu::Connection {
        connection(&self.prefix, extra)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_kombu_publishes_and_rust_consumes() {
    let Some(peer) = Peer::new() else { return };
    let raw = Raw::new();
    peer.run(
        "publish",
        json!({"transport_options": peer.options(json!({})), "messages": [
            {"exchange": "py.ex", "queue": "py.q:1", "routing_key": "rk", "body": {"hello": "sqs"}, "headers": {"x-custom": "h1"},
             "properties": {"correlation_id": "c1", "reply_to": "r1", "message_attributes": {"myattr": {"DataType": "String", "StringValue": "v"}}}},
            {"queue": "py.jobs.fifo", "routing_key": "py.jobs.fifo", "body": 0, "properties": {"MessageGroupId": "g1"}},
            {"queue": "py.jobs.fifo", "routing_key": "py.jobs.fifo", "body": 1, "properties": {"MessageGroupId": "g2"}},
            {"queue": "py.jobs.fifo", "routing_key": "py.jobs.fifo", "body": 2, "properties": {"MessageGroupId": "g1"}},
        ]}),
    )
    .await;
    // Python kombu's name mangling: "py.q:1" → "<prefix>py-q_1"; ".fifo" is kept.
    assert_eq!(raw.queues(&peer.prefix).await, [format!("{}py-jobs.fifo", peer.prefix), format!("{}py-q_1", peer.prefix)]);
    let conn = peer.connection(&[("fetch_message_attributes", json!({"MessageAttributeNames": ["All"]}))]);
    let consumer = conn.consumer(vec![Queue::new("py.q:1").exchange(Exchange::direct("py.ex")).routing_key("rk")]).await.unwrap();
    let m = consumer.next_message(WAIT).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Data(json!({"hello": "sqs"})));
    assert_eq!(m.headers().get("x-custom"), Some(&json!("h1")));
    assert_eq!((m.properties().correlation_id.as_deref(), m.properties().reply_to.as_deref()), (Some("c1"), Some("r1")));
    assert_eq!((m.delivery_info().exchange.as_str(), m.delivery_info().routing_key.as_str()), ("py.ex", "rk"));
    // Kombu's SQS entries of delivery_info, with the attribute Python sent.
    let extra = m.delivery_info().extra.expect("sqs_message and sqs_queue");
    assert_eq!(extra["sqs_queue"], json!(raw.queue_url(&format!("{}py-q_1", peer.prefix))));
    assert_eq!(extra["sqs_message"]["MessageAttributes"]["myattr"]["StringValue"], json!("v"));
    m.ack().unwrap();
    consumer.cancel().await.unwrap();
    conn.release().await.unwrap();
    // Python's FIFO groups: order kept within a group; the group SQS recorded, asked for as a
    // system attribute (fetch_message_attributes as a list).
    let conn = peer.connection(&[("fetch_message_attributes", json!(["MessageGroupId"]))]);
    let consumer = conn.consumer(vec![Queue::new("py.jobs.fifo")]).await.unwrap().prefetch_count(10);
    let mut order = Vec::new();
    while order.len() < 3 {
        let m = consumer.next_message(WAIT).await.unwrap();
        let extra = m.delivery_info().extra.expect("sqs_message");
        order.push((extra["sqs_message"]["Attributes"]["MessageGroupId"].clone(), m.payload_as::<i64>().unwrap()));
        m.ack().unwrap();
    }
    let g1: Vec<i64> = order.iter().filter(|(g, _)| *g == json!("g1")).map(|(_, n)| *n).collect();
    assert_eq!(g1, [0, 2], "{order:?}");
    assert!(order.iter().any(|(g, n)| *g == json!("g2") && *n == 1), "{order:?}");
    consumer.cancel().await.unwrap();
    conn.release().await.unwrap();
    raw.cleanup(&peer.prefix).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_publishes_and_python_kombu_consumes_with_fifo_groups_and_attributes() {
    let Some(peer) = Peer::new() else { return };
    let raw = Raw::new();
    let conn = peer.connection(&[]);
    let producer = conn.producer().await.unwrap();
    let q = Queue::new("rs.q@1");
    producer
        .publish(
            json!({"from": "rust"}),
            PublishOptions::new().routing_key("rs.q@1").declare(&q).header("x-custom", "h2").correlation_id("c2").header(
                "message_attributes",
                json!({"myattr": {"DataType": "String", "StringValue": "w"}}),
            ),
        )
        .await
        .unwrap();
    let fifo = Queue::new("rs.jobs.fifo");
    for (i, g) in ["g1", "g2", "g1"].iter().enumerate() {
        producer.publish(json!(i), PublishOptions::new().routing_key("rs.jobs.fifo").declare(&fifo).header("MessageGroupId", *g)).await.unwrap();
    }
    conn.release().await.unwrap();
    let got = peer.run("consume", json!({"transport_options": peer.options(json!({"fetch_message_attributes": {"MessageAttributeNames": ["myattr"]}})), "queue": "rs.q@1", "count": 1})).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["body"], json!({"from": "rust"}));
    assert_eq!(got[0]["headers"]["x-custom"], json!("h2"));
    assert_eq!(got[0]["properties"]["correlation_id"], json!("c2"));
    assert_eq!(got[0]["routing_key"], json!("rs.q@1"));
    assert_eq!(got[0]["message_attributes"]["myattr"]["StringValue"], json!("w"));
    assert!(got[0]["sqs_queue"].as_str().unwrap().ends_with(&format!("{}rs-q_1", peer.prefix)));
    let got = peer.run("consume", json!({"transport_options": peer.options(json!({})), "queue": "rs.jobs.fifo", "count": 3})).await;
    let order: Vec<(String, i64)> = got.iter().map(|g| (g["properties"]["MessageGroupId"].as_str().unwrap().to_owned(), g["body"].as_i64().unwrap())).collect();
    let g1: Vec<i64> = order.iter().filter(|(g, _)| g == "g1").map(|(_, n)| *n).collect();
    assert_eq!(g1, [0, 2], "{order:?}");
    assert!(order.iter().any(|(g, n)| g == "g2" && *n == 1), "{order:?}");
    raw.cleanup(&peer.prefix).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_requeued_or_abandoned_by_python_is_redelivered_to_rust_and_back() {
    let Some(peer) = Peer::new() else { return };
    let raw = Raw::new();
    let conn = peer.connection(&[("visibility_timeout", Value::from(2))]);
    let producer = conn.producer().await.unwrap();
    let q = Queue::new("bounce");
    producer.publish(json!("one"), PublishOptions::new().routing_key("bounce").declare(&q)).await.unwrap();
    // Python requeues it (ChangeMessageVisibility to wait_time_seconds)...
    let got = peer.run("requeue", json!({"transport_options": peer.options(json!({})), "queue": "bounce"})).await;
    assert_eq!(got[0]["body"], json!("one"));
    // ... and Rust receives it again, marked redelivered.
    let consumer = conn.consumer(vec![q.clone()]).await.unwrap().prefetch_count(1);
    let m = consumer.next_message(WAIT).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Data(json!("one")));
    assert!(m.redelivered());
    // Rust requeues it; Python receives it again (receive count 3).
    m.requeue().unwrap();
    consumer.cancel().await.unwrap();
    conn.release().await.unwrap();
    let got = peer.run("consume", json!({"transport_options": peer.options(json!({})), "queue": "bounce", "count": 1})).await;
    assert_eq!(got[0]["body"], json!("one"));
    let receives: u32 = got[0]["receive_count"].as_str().unwrap().parse().unwrap();
    assert!(receives >= 3, "received {receives} times");

    // A Python worker dies holding a message: it comes back after the visibility timeout.
    let conn = peer.connection(&[]);
    conn.producer().await.unwrap().publish(json!("two"), PublishOptions::new().routing_key("bounce")).await.unwrap();
    let (mut holder, mut out) = peer.start("hold", json!({"transport_options": peer.options(json!({})), "queue": "bounce"})).await;
    let held = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        holder.wait().unwrap();
        line
    })
    .await
    .unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&held).unwrap()["body"], json!("two"));
    let consumer = conn.consumer(vec![q]).await.unwrap().prefetch_count(1);
    let m = consumer.next_message(WAIT).await.unwrap();
    assert_eq!((m.payload().unwrap(), m.redelivered()), (Payload::Data(json!("two")), true));
    m.ack().unwrap();
    consumer.cancel().await.unwrap();
    conn.release().await.unwrap();
    raw.cleanup(&peer.prefix).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_json_envelopes_both_ways_with_sqs_base64_encoding_off() {
    let Some(peer) = Peer::new() else { return };
    let raw = Raw::new();
    let opts = json!({"sqs_base64_encoding": false});
    peer.run("publish", json!({"transport_options": peer.options(opts.clone()), "messages": [{"queue": "plain", "routing_key": "plain", "body": "from python"}]})).await;
    let conn = peer.connection(&[("sqs_base64_encoding", Value::Bool(false))]);
    let stored = raw.peek(&format!("{}plain", peer.prefix)).await;
    assert!(stored[0]["Body"].as_str().unwrap().starts_with('{'), "kombu sent the envelope as JSON text");
    let consumer = conn.consumer(vec![Queue::new("plain")]).await.unwrap();
    let m = consumer.next_message(WAIT).await.unwrap();
    // kombu sends a str body as text/plain.
    assert_eq!(m.payload().unwrap(), Payload::Text("from python".into()));
    m.ack().unwrap();
    consumer.cancel().await.unwrap();
    conn.producer().await.unwrap().publish(json!("from rust"), PublishOptions::new().routing_key("plain")).await.unwrap();
    conn.release().await.unwrap();
    assert!(raw.peek(&format!("{}plain", peer.prefix)).await[0]["Body"].as_str().unwrap().starts_with('{'));
    let got = peer.run("consume", json!({"transport_options": peer.options(opts), "queue": "plain", "count": 1})).await;
    assert_eq!(got[0]["body"], json!("from rust"));
    raw.cleanup(&peer.prefix).await;
}
