//! redis:// from the command line and behind the gateway: the `kombu` CLI declares,
//! publishes, gets, consumes, purges and deletes on Redis; a gateway started with
//! `--broker redis://...` carries gateway+ws:// clients' messages to Redis (where a
//! redis:// client sees them), reports the broker link on /healthz and the store's counters
//! on /metrics. Each test uses its own `global_keyprefix` and deletes its keys.

mod redis_common;
mod support;

use std::time::Duration;

use kombu::{Connection, ConnectionOptions, Payload, PublishOptions, Queue, Value};
use redis::AsyncCommands;
use redis_common::{cleanup, redis_up, URL};
use serde_json::json;
use support::{args, http_get, kombu_cli, start_gateway};

const WAIT: Option<Duration> = Some(Duration::from_secs(5));

fn prefix() -> String {
    format!("kwgw.{}.", kombu::uuid())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_works_on_redis_urls() {
    if !redis_up() {
        return;
    }
    let p = prefix();
    let url = format!("redis://127.0.0.1:6379/0?global_keyprefix={p}&polling_interval=0.2");
    let (code, _, err) = kombu_cli(args!["declare", url, "exchange", "logs", "--type", "topic"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = kombu_cli(args!["declare", url, "queue", "errors"]).await;
    assert_eq!((code, out.trim()), (0, "errors"), "{err}");
    // The exchange type is known per connection (as in Kombu): the binding stores the key.
    let (code, _, err) = kombu_cli(args!["declare", url, "binding", "errors", "logs", "--routing-key", "db.error"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = kombu_cli(args!["publish", url, "--exchange", "logs", "--routing-key", "db.error", "--header", "level=3", r#"{"disk": "full"}"#]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = kombu_cli(args!["publish", url, "--routing-key", "errors", "second"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = kombu_cli(args!["get", url, "errors"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("full"), "{out}");
    let (code, out, err) = kombu_cli(args!["consume", url, "errors", "--count", "1", "--timeout", "5"]).await;
    assert_eq!((code, out.trim()), (0, r#""second""#), "{err}");
    let (code, _, err) = kombu_cli(args!["publish", url, "--routing-key", "errors", "third"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = kombu_cli(args!["purge", url, "errors"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains('1'), "{out}");
    let (code, _, err) = kombu_cli(args!["get", url, "errors"]).await;
    assert_eq!(code, 3, "an empty queue: {err}");
    let (code, _, err) = kombu_cli(args!["delete", url, "queue", "errors"]).await;
    assert_eq!(code, 0, "{err}");
    cleanup(URL, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_clients_publish_and_consume_on_redis() {
    if !redis_up() {
        return;
    }
    let p = prefix();
    let g = start_gateway(format!("redis://127.0.0.1:6379/0?global_keyprefix={p}&polling_interval=0.2")).await;
    let client = Connection::new(&format!("gateway+ws://{}/gateway", g.addr)).unwrap();
    let q = Queue::new("through");
    client.producer().await.unwrap().publish(json!({"via": "gateway"}), PublishOptions::new().routing_key("through").declare(&q)).await.unwrap();
    // It is in Redis, in Kombu's envelope: a redis:// client takes it.
    let mut o = ConnectionOptions::default();
    o.transport_options.insert("global_keyprefix".into(), Value::from(p.clone()));
    let direct = Connection::with_options("redis://127.0.0.1:6379/0", o).unwrap();
    // (A gateway publish is not confirmed: it reaches Redis a moment after it returns.)
    let ch = direct.default_channel().await.unwrap();
    let mut m = None;
    for _ in 0..100 {
        m = ch.basic_get("through", false).await.unwrap();
        if m.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = m.expect("the message published through the gateway is in Redis");
    assert_eq!(m.payload().unwrap(), Payload::Data(json!({"via": "gateway"})));
    m.ack().unwrap();
    // And the other way: published on Redis, consumed through the gateway, requeued once.
    direct.producer().await.unwrap().publish("to the browser", PublishOptions::new().routing_key("through")).await.unwrap();
    let consumer = client.consumer(vec![q]).await.unwrap().prefetch_count(5);
    let m = consumer.next_message(WAIT).await.unwrap();
    assert_eq!((m.payload().unwrap(), m.redelivered()), (Payload::Text("to the browser".into()), false));
    m.requeue().unwrap();
    let m = consumer.next_message(WAIT).await.unwrap();
    assert!(m.redelivered());
    m.ack().unwrap();
    let health = http_get(&g, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200") && health.contains("broker redis://127.0.0.1:6379/0") && health.ends_with("ok\n"), "{health}");
    let metrics = http_get(&g, "/metrics").await;
    for needle in ["kombu_gateway_broker_restored_total", "kombu_gateway_broker_requeued_total", "kombu_gateway_broker_redelivered_total"] {
        assert!(metrics.contains(needle), "{needle} in {metrics}");
    }
    client.release().await.unwrap();
    direct.release().await.unwrap();
    g.shutdown().await;
    cleanup(URL, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_reports_an_unreachable_broker() {
    kombu_gateway::register_transports();
    // Nothing listens on port 9 (discard) here.
    let g = start_gateway("redis://127.0.0.1:9/0".into()).await;
    let health = http_get(&g, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 503") && health.contains("unreachable"), "{health}");
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_clients_vhost_is_a_key_prefix_on_redis() {
    if !redis_up() {
        return;
    }
    let p = prefix();
    let g = start_gateway(format!("redis://127.0.0.1:6379/0?global_keyprefix={p}&polling_interval=0.2")).await;
    let mut r = redis::Client::open("redis://127.0.0.1:6379/0").unwrap().get_multiplexed_async_connection().await.unwrap();
    for (vhost, key) in [("/", format!("{p}vq")), ("/shop", format!("{p}shop.vq"))] {
        let client = Connection::new(&format!("gateway+ws://{}/gateway?vhost={vhost}", g.addr)).unwrap();
        client.producer().await.unwrap().publish("x", PublishOptions::new().routing_key("vq").declare(Queue::new("vq"))).await.unwrap();
        client.release().await.unwrap();
        let mut n = 0;
        for _ in 0..100 {
            n = r.llen(&key).await.unwrap();
            if n > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(n, 1, "vhost {vhost} stores under {key:?}");
    }
    g.shutdown().await;
    cleanup(URL, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_sessions_share_one_bounded_redis_pool() {
    if !redis_up() {
        return;
    }
    let p = prefix();
    let name = format!("kwgwpool-{}", kombu::uuid());
    let g = start_gateway(format!("redis://127.0.0.1:6379/0?global_keyprefix={p}&polling_interval=1&client_name={name}&max_connections=4")).await;
    // 12 client sessions, each consuming its own queue: one pool for all of them.
    let mut sessions = Vec::new();
    for i in 0..12 {
        let client = Connection::new(&format!("gateway+ws://{}/gateway", g.addr)).unwrap();
        let consumer = client.consumer(vec![Queue::new(format!("s{i}"))]).await.unwrap();
        consumer.consume().await.unwrap();
        sessions.push((client, consumer));
    }
    let mut r = redis::Client::open("redis://127.0.0.1:6379/0").unwrap().get_multiplexed_async_connection().await.unwrap();
    let count = |list: String| list.lines().filter(|l| l.split(' ').any(|f| f == format!("name={name}"))).count();
    let n = count(redis::cmd("CLIENT").arg("LIST").query_async(&mut r).await.unwrap());
    assert!((1..=4).contains(&n), "12 gateway sessions opened {n} Redis connections (max_connections=4)");
    let producer = sessions[0].0.producer().await.unwrap();
    for i in 0..12 {
        producer.publish(json!(i), PublishOptions::new().routing_key(format!("s{i}"))).await.unwrap();
    }
    for (i, (_, consumer)) in sessions.iter().enumerate() {
        let m = consumer.next_message(WAIT).await.unwrap();
        assert_eq!(m.payload().unwrap(), Payload::Data(json!(i)));
        m.ack().unwrap();
    }
    let n = count(redis::cmd("CLIENT").arg("LIST").query_async(&mut r).await.unwrap());
    assert!(n <= 4, "{n} Redis connections");
    for (client, consumer) in sessions {
        drop(consumer);
        client.release().await.unwrap();
    }
    g.shutdown().await;
    cleanup(URL, &p).await;
}
