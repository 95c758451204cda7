//! Scale-out: two gateways in front of the same RabbitMQ serve the same queues. A producer
//! on one and a consumer on the other exchange messages; every one arrives, once.

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
