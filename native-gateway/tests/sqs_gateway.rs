//! sqs:// from the command line and behind the gateway: the `kombu` CLI declares,
//! publishes, gets, consumes, purges and deletes on moto's SQS; a gateway started with
//! `--broker sqs://...` carries gateway+ws:// clients' messages to SQS (where an sqs:// client
//! sees them), maps a client's virtual host to a queue name prefix, and reports the broker
//! link on /healthz. Each test uses its own `queue_name_prefix` and deletes its queues.

mod sqs_common;
mod support;

use std::time::Duration;

use kombu::{Connection, Payload, PublishOptions, Queue};
use serde_json::json;
use sqs_common::{connection, moto_up, port, prefix, Raw};
use support::{args, http_get, kombu_cli, start_gateway};

const WAIT: Option<Duration> = Some(Duration::from_secs(15));

fn broker(prefix: &str) -> String {
    format!("sqs://test:test@127.0.0.1:{}?queue_name_prefix={prefix}&region=us-east-1&wait_time_seconds=1&polling_interval=0.2", port())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_works_on_sqs_urls() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    let url = broker(&p);
    let (code, out, err) = kombu_cli(args!["declare", url, "queue", "errors.q"]).await;
    assert_eq!((code, out.trim()), (0, "errors.q"), "{err}");
    assert_eq!(raw.queues(&p).await, [format!("{p}errors-q")]);
    let (code, _, err) = kombu_cli(args!["publish", url, "--routing-key", "errors.q", "--header", "level=3", r#"{"disk": "full"}"#]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = kombu_cli(args!["publish", url, "--routing-key", "errors.q", "second"]).await;
    assert_eq!(code, 0, "{err}");
    let mut seen = String::new();
    let (code, out, err) = kombu_cli(args!["get", url, "errors.q"]).await;
    assert_eq!(code, 0, "{err}");
    // delivery_info carries Kombu's SQS entries: the raw message and the queue's URL.
    let got: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(got["delivery_info"]["sqs_message"]["ReceiptHandle"].is_string(), "{out}");
    assert_eq!(got["delivery_info"]["sqs_queue"], json!(raw.queue_url(&format!("{p}errors-q"))), "{out}");
    seen.push_str(&out);
    let (code, out, err) = kombu_cli(args!["consume", url, "errors.q", "--count", "1", "--timeout", "10"]).await;
    assert_eq!(code, 0, "{err}");
    seen.push_str(&out);
    assert!(seen.contains("full") && seen.contains("second"), "{seen}");
    let (code, _, err) = kombu_cli(args!["publish", url, "--routing-key", "errors.q", "third"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = kombu_cli(args!["purge", url, "errors.q"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains('1'), "{out}");
    let (code, _, err) = kombu_cli(args!["get", url, "errors.q"]).await;
    assert_eq!(code, 3, "an empty queue: {err}");
    let (code, _, err) = kombu_cli(args!["delete", url, "queue", "errors.q"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(raw.queues(&p).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_clients_publish_and_consume_on_sqs() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    let g = start_gateway(broker(&p)).await;
    let client = Connection::new(&format!("gateway+ws://{}/gateway", g.addr)).unwrap();
    let q = Queue::new("through");
    client.producer().await.unwrap().publish(json!({"via": "gateway"}), PublishOptions::new().routing_key("through").declare(&q)).await.unwrap();
    // It is in SQS: an sqs:// client takes it.
    let direct = connection(&p, &[]);
    let consumer = direct.consumer(vec![q.clone()]).await.unwrap();
    let m = consumer.next_message(WAIT).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Data(json!({"via": "gateway"})));
    m.ack().unwrap();
    consumer.cancel().await.unwrap();
    // And the other way: published on SQS, consumed through the gateway, requeued once.
    direct.producer().await.unwrap().publish("to the browser", PublishOptions::new().routing_key("through")).await.unwrap();
    let consumer = client.consumer(vec![q]).await.unwrap().prefetch_count(5);
    let m = consumer.next_message(WAIT).await.unwrap();
    assert_eq!((m.payload().unwrap(), m.redelivered()), (Payload::Text("to the browser".into()), false));
    // The gateway protocol carries no transport extras (docs/gateway-protocol.md).
    assert!(m.delivery_info().extra.is_none());
    m.requeue().unwrap();
    let m = consumer.next_message(WAIT).await.unwrap();
    assert!(m.redelivered());
    m.ack().unwrap();
    let health = http_get(&g, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200") && health.contains(&format!("broker sqs://test:**@127.0.0.1:{}", port())) && health.ends_with("ok\n"), "{health}");
    // A client's virtual host is a queue name prefix on SQS.
    let shop = Connection::new(&format!("gateway+ws://{}/gateway?vhost=/shop", g.addr)).unwrap();
    shop.producer().await.unwrap().publish("x", PublishOptions::new().routing_key("vq").declare(Queue::new("vq"))).await.unwrap();
    shop.release().await.unwrap();
    client.release().await.unwrap();
    direct.release().await.unwrap();
    let mut names = Vec::new();
    for _ in 0..100 {
        names = raw.queues(&p).await;
        if names.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(names, [format!("{p}shop-vq"), format!("{p}through")]);
    g.shutdown().await;
    raw.cleanup(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_reports_an_sqs_endpoint_that_refuses() {
    kombu_gateway::register_transports();
    // Nothing listens on port 9 (discard) here.
    let g = start_gateway("sqs://test:test@127.0.0.1:9?region=us-east-1".into()).await;
    let health = http_get(&g, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 503") && health.contains("unreachable") && health.contains("127.0.0.1:9"), "{health}");
    g.shutdown().await;
}
