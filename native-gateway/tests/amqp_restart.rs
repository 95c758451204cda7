//! The native amqp:// transport across a RabbitMQ restart (`rabbitmqctl stop_app`, then
//! `start_app`): persistent messages in a durable queue survive; `Connection::ensure` with a
//! retry policy reconnects and redeclares, and a consumer resumes on the new connection.
//! Its own test binary, so that nothing else uses RabbitMQ while it restarts. Skipped when
//! RabbitMQ or rabbitmqctl is not there, except under CI, where it fails.

use std::process::Command;
use std::time::Duration;

use kombu::{Connection, DeliveryMode, Exchange, PublishOptions, Queue, RetryPolicy};
use serde_json::json;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672//";

fn rabbitmqctl(args: &[&str]) -> bool {
    Command::new("rabbitmqctl").args(args).output().is_ok_and(|o| o.status.success())
}

fn available() -> bool {
    let up = std::net::TcpStream::connect_timeout(&"127.0.0.1:5672".parse().unwrap(), Duration::from_secs(1)).is_ok();
    let ctl = rabbitmqctl(&["-q", "status"]);
    if !(up && ctl) {
        assert!(std::env::var_os("CI").is_none(), "RabbitMQ and rabbitmqctl must be available under CI");
        eprintln!("skipping: RabbitMQ on 127.0.0.1:5672 with rabbitmqctl is needed");
    }
    up && ctl
}

/// Restart the RabbitMQ application (the Erlang node stays up) and wait until it serves.
fn restart_rabbitmq() {
    assert!(rabbitmqctl(&["-q", "stop_app"]), "rabbitmqctl stop_app");
    assert!(rabbitmqctl(&["-q", "start_app"]), "rabbitmqctl start_app");
    assert!(rabbitmqctl(&["-q", "await_startup"]), "rabbitmqctl await_startup");
}

#[tokio::test]
async fn persistent_messages_survive_a_restart_and_connections_recover() {
    kombu_gateway::register_transports();
    if !available() {
        return;
    }
    let id = kombu::uuid();
    let x = Exchange::direct(format!("kombu-wasm-test.restart.{id}")).durable(true);
    let kept = Queue::new(format!("kombu-wasm-test.restart.kept.{id}")).exchange(x.clone()).routing_key("kept").durable(true);
    let live = Queue::new(format!("kombu-wasm-test.restart.live.{id}")).exchange(x.clone()).routing_key("live").durable(true);
    let policy = RetryPolicy { interval_start: 0.2, interval_step: 0.5, interval_max: 2.0, max_retries: Some(40), timeout: None };

    let producer_conn = Connection::new(URL).unwrap();
    let producer = producer_conn.producer().await.unwrap();
    for i in 0..3 {
        producer
            .publish(json!({"kept": i}), PublishOptions::new().exchange(&x).routing_key("kept").declare(&kept).delivery_mode(DeliveryMode::Persistent))
            .await
            .unwrap();
    }
    let consumer_conn = Connection::new(URL).unwrap();
    let consumer = consumer_conn.consumer(vec![live.clone()]).await.unwrap();
    consumer.consume().await.unwrap();
    // Make sure the publishes reached the broker before it goes away.
    let ch = producer_conn.default_channel().await.unwrap();
    assert_eq!(kept.clone().bind(&ch).queue_declare(false, true).await.unwrap().message_count, 3);

    restart_rabbitmq();

    // The producer's next publish meets the dead connection; ensure reconnects (retrying
    // while the broker finishes starting) and publishes again.
    let mut retries = 0;
    producer_conn
        .ensure(&policy, |_: &kombu::Error, _| retries += 1, || async {
            producer.publish(json!({"live": 1}), PublishOptions::new().exchange(&x).routing_key("live").declare(&live).delivery_mode(DeliveryMode::Persistent)).await
        })
        .await
        .unwrap();
    assert!(retries >= 1, "the publish should have met the restart");

    // The consumer notices the lost connection, reconnects, and its consumer is re-registered.
    let mut got = None;
    for _ in 0..40 {
        match consumer.next_message(Some(Duration::from_secs(2))).await {
            Ok(m) => {
                got = Some(m);
                break;
            }
            Err(e) if e.is_recoverable_connection_error() || e.name() == "TimeoutError" => {
                consumer_conn.ensure_connection(&policy, |_: &kombu::Error, _| {}).await.unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    }
    let m = got.expect("the consumer resumed after the restart");
    assert_eq!(m.payload_as::<serde_json::Value>().unwrap(), json!({"live": 1}));
    m.ack().unwrap();

    // The persistent messages of the durable queue survived.
    let ch = producer_conn.default_channel().await.unwrap();
    let q = kept.clone().bind(&ch);
    let mut kept_bodies = Vec::new();
    for _ in 0..3 {
        let m = q.get(None, None).await.unwrap().expect("a kept message");
        kept_bodies.push(m.payload_as::<serde_json::Value>().unwrap()["kept"].as_i64().unwrap());
        m.ack().unwrap();
    }
    kept_bodies.sort();
    assert_eq!(kept_bodies, vec![0, 1, 2]);

    kept.clone().bind(&ch).delete(false, false).await.unwrap();
    live.clone().bind(&ch).delete(false, false).await.unwrap();
    x.clone().bind(&ch).delete(false).await.unwrap();
    consumer_conn.release().await.unwrap();
    producer_conn.release().await.unwrap();
}
