//! Scale-out: two gateways in front of the same RabbitMQ serve the same queues. A producer
//! on one and a consumer on the other exchange messages; every one arrives, once. A client
//! whose gateway goes away fails over to the other (a `;`-separated failover URL) and
//! resumes with nothing lost.

use std::collections::BTreeSet;
use std::time::Duration;

use kombu::{Connection, PublishOptions, Queue};
use kombu_gateway::server::{self, Config, Running};
use serde_json::json;

const RABBITMQ: &str = "amqp://guest:guest@127.0.0.1:5672//";

async fn gateway() -> Running {
    kombu_gateway::register_transports();
    server::start(Config { listen: "127.0.0.1:0".parse().unwrap(), broker: RABBITMQ.into(), ..Config::default() }).await.unwrap()
}

fn url(g: &Running) -> String {
    format!("gateway+ws://{}/gateway?vhost=/", g.addr)
}

#[tokio::test]
async fn two_gateways_on_one_rabbitmq_serve_the_same_queue() {
    let (a, b) = (gateway().await, gateway().await);
    let queue = Queue::new(format!("scale-out-{}", kombu::uuid()));
    const N: u64 = 2_000;

    // The consumer, on gateway B, declares the queue and waits.
    let consumer_conn = Connection::new(&url(&b)).unwrap();
    let consumer = consumer_conn.consumer(vec![queue.clone()]).await.unwrap();
    consumer.consume().await.unwrap();

    // The producer, on gateway A.
    let producer_conn = Connection::new(&url(&a)).unwrap();
    let producer = producer_conn.producer().await.unwrap();
    for i in 0..N {
        producer.publish(json!({ "n": i }), PublishOptions::new().routing_key(&queue.name)).await.unwrap();
    }

    let mut seen = BTreeSet::new();
    while (seen.len() as u64) < N {
        let m = consumer.next_message(Some(Duration::from_secs(20))).await.unwrap_or_else(|e| panic!("after {} of {N}: {e}", seen.len()));
        let n = m.payload_as::<serde_json::Value>().unwrap()["n"].as_u64().unwrap();
        assert!(seen.insert(n), "message {n} arrived twice");
        m.ack().unwrap();
    }
    assert_eq!(seen, (0..N).collect::<BTreeSet<_>>());
    // Nothing left behind, nothing extra: the queue is empty on the broker.
    let ch = producer_conn.default_channel().await.unwrap();
    let mut q = queue.clone().bind(&ch);
    assert_eq!(q.queue_declare(false, true).await.unwrap().message_count, 0);
    consumer_conn.release().await.unwrap();
    q.delete(false, false).await.unwrap();
    producer_conn.release().await.unwrap();
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_client_fails_over_to_the_other_gateway_and_loses_nothing() {
    let (a, b) = (gateway().await, gateway().await);
    let queue = Queue::new(format!("scale-failover-{}", kombu::uuid()));
    const N: u64 = 300;
    let producer_conn = Connection::new(&url(&b)).unwrap();
    let producer = producer_conn.producer().await.unwrap();
    for i in 0..N {
        producer.publish(json!({ "n": i }), PublishOptions::new().routing_key(&queue.name).declare(queue.clone())).await.unwrap();
    }
    // The consumer lists both gateways: it connects to the first, A.
    let conn = Connection::new(&format!("{};{}", url(&a), url(&b))).unwrap();
    let policy = kombu::RetryPolicy { interval_start: 0.05, interval_step: 0.05, interval_max: 0.2, max_retries: Some(40), timeout: None };
    conn.ensure_connection(&policy, |_: &kombu::Error, _| {}).await.unwrap();
    assert!(conn.as_uri(false).contains(&a.addr.to_string()), "{}", conn.as_uri(false));
    let consumer = conn.consumer(vec![queue.clone()]).await.unwrap();
    consumer.qos(0, 10, false).await.unwrap();
    let mut seen = BTreeSet::new();
    let mut a = Some(a);
    while (seen.len() as u64) < N {
        // A failed receive reconnects (to the next URL), revives the channel and the
        // consumer, and receives again.
        let c = &consumer;
        let m = conn
            .ensure(&policy, |_: &kombu::Error, _| {}, || async move { c.next_message(Some(Duration::from_secs(10))).await })
            .await
            .unwrap_or_else(|e| panic!("after {} of {N}: {e}", seen.len()));
        let n = m.payload_as::<serde_json::Value>().unwrap()["n"].as_u64().unwrap();
        // At-least-once: an ack in flight when A went away is lost, and its message comes
        // back marked redelivered.
        assert!(seen.insert(n) || m.redelivered(), "message {n} arrived twice without the redelivered flag");
        m.ack().unwrap();
        if seen.len() == 100 {
            if let Some(a) = a.take() {
                a.shutdown().await;
            }
        }
    }
    assert!(a.is_none(), "gateway A was shut down midway");
    assert!(conn.as_uri(false).contains(&b.addr.to_string()), "failed over to B: {}", conn.as_uri(false));
    assert_eq!(seen, (0..N).collect::<BTreeSet<_>>());
    conn.release().await.unwrap();
    let ch = producer_conn.default_channel().await.unwrap();
    let mut q = queue.clone().bind(&ch);
    assert_eq!(q.queue_declare(false, true).await.unwrap().message_count, 0, "nothing left behind");
    q.delete(false, false).await.unwrap();
    producer_conn.release().await.unwrap();
    b.shutdown().await;
}
