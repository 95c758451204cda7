//! sqs:// when things go wrong: an endpoint that refuses, credentials SQS rejects, a body
//! over the queue's maximum size, predefined queues that do not exist, and at-least-once
//! when a consumer or a gateway holding messages is killed with SIGKILL (each message comes
//! back after a short visibility timeout, exactly once in the count).
//!
//! moto does not check credentials (any key signs valid requests unless its IAM emulation
//! is switched on), so SQS's answer to unknown credentials is served by a stub HTTP server
//! with the status, header and body AWS sends (`InvalidClientTokenId`).

mod sqs_common;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use kombu::{Connection, ConnectionOptions, PublishOptions, Value};
use serde_json::json;
use sqs_common::{connection, hold_in_child, moto_up, port, prefix, Raw};
use support::{collect_redelivered, hold_through_gateway_and_kill, kill, publish_numbers, spawn_gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A connection that makes one attempt (the errors are the point).
fn once(url: &str) -> Connection {
    let mut o = ConnectionOptions::default();
    o.transport_options.insert("region".into(), Value::from("us-east-1"));
    o.connect_timeout = Some(2.0);
    Connection::with_options(url, o).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_that_refuses_is_named() {
    kombu_gateway::register_transports();
    let conn = once("sqs://test:test@127.0.0.1:9");
    let e = conn.default_channel().await.unwrap_err();
    assert!(e.to_string().contains("http://127.0.0.1:9") && e.to_string().contains("unreachable"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_sqs_rejects_are_named_with_its_error_code() {
    kombu_gateway::register_transports();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stub = tokio::spawn(async move {
        // AWS's answer to a request signed with an unknown access key (JSON protocol).
        let body = r#"{"__type":"com.amazon.coral.service#InvalidClientTokenId","message":"The security token included in the request is invalid."}"#;
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 65536];
            let _ = s.read(&mut buf).await;
            let resp = format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-query-error: InvalidClientTokenId;Sender\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    let conn = once(&format!("sqs://AKIDUNKNOWN:wrong@{addr}"));
    let e = conn.default_channel().await.unwrap_err();
    assert!(e.to_string().contains("InvalidClientTokenId") && e.to_string().contains("ListQueues"), "{e}");
    stub.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_queues_maximum_is_refused_before_sending() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    raw.call("CreateQueue", json!({"QueueName": format!("{p}small"), "Attributes": {"MaximumMessageSize": "1024"}})).await;
    let conn = connection(&p, &[]);
    let producer = conn.producer().await.unwrap();
    let e = producer.publish(json!("x".repeat(2000)), PublishOptions::new().routing_key("small")).await.unwrap_err();
    assert!(matches!(e, kombu::Error::LimitExceeded(_)), "{e:?}");
    assert!(e.to_string().contains("1024") && e.to_string().contains(&format!("{p}small")), "{e}");
    assert!(raw.peek(&format!("{p}small")).await.is_empty(), "nothing was sent");
    // A body that fits goes.
    producer.publish(json!("x".repeat(100)), PublishOptions::new().routing_key("small")).await.unwrap();
    assert_eq!(raw.peek(&format!("{p}small")).await.len(), 1);
    conn.release().await.unwrap();
    raw.cleanup(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_predefined_queue_that_does_not_exist_is_refused_with_sqs_error_code() {
    if !moto_up() {
        return;
    }
    let p = prefix();
    let url = format!("http://127.0.0.1:{}/123456789012/{p}missing", port());
    let mut o = ConnectionOptions::default();
    o.transport_options.insert("predefined_queues".into(), json!({ format!("{p}missing"): {"url": url} }));
    let conn = Connection::with_options(&sqs_common::url(), o).unwrap();
    let e = conn.default_channel().await.unwrap_err();
    assert!(e.to_string().contains("QueueDoesNotExist") || e.to_string().contains("NonExistentQueue"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_held_by_a_consumer_killed_with_sigkill_comes_back() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    // The queue's visibility timeout is 2 s.
    let conn = connection(&p, &[("visibility_timeout", Value::from(2))]);
    publish_numbers(&conn, "jobs", 8).await;
    let holder = hold_in_child(&p, "jobs", 8, 2);
    kill(holder);
    let got = collect_redelivered(&conn, "jobs", 8, 10, Duration::from_secs(30)).await;
    assert_eq!(got.numbers, (0..8).collect::<BTreeSet<i64>>());
    assert_eq!(got.deliveries, 8, "each came back once");
    conn.release().await.unwrap();
    raw.cleanup(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_held_through_a_gateway_killed_with_sigkill_comes_back() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    let conn = connection(&p, &[("visibility_timeout", Value::from(2))]);
    publish_numbers(&conn, "via-gw", 6).await;
    let broker = format!("sqs://test:test@127.0.0.1:{}?queue_name_prefix={p}&region=us-east-1&wait_time_seconds=1&polling_interval=0.2", port());
    let (gateway, gw_port) = spawn_gateway(&broker).await;
    // A browser-like client holds every message through the gateway when the gateway dies.
    hold_through_gateway_and_kill(gateway, gw_port, "via-gw", 6, Duration::from_secs(15)).await;
    let got = collect_redelivered(&conn, "via-gw", 6, 10, Duration::from_secs(30)).await;
    assert_eq!(got.numbers, (0..6).collect::<BTreeSet<i64>>());
    assert_eq!(got.deliveries, 6, "each came back once");
    conn.release().await.unwrap();
    raw.cleanup(&p).await;
}
