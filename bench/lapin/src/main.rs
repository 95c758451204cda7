//! lapin doing the round trip of native-gateway/examples/bench_roundtrip.rs: publish N JSON
//! messages of ~64 bytes to a direct exchange, consume them with prefetch 100 and ack each.
//! Prints one JSON line. `bench-lapin URL N`.

use std::time::Instant;

use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lapin::Error> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let n: usize = std::env::args().nth(2).map(|s| s.parse().expect("N must be a number")).unwrap_or(20_000);
    let name = format!("bench-lapin-{}", std::process::id());
    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    ch.exchange_declare(name.as_str().into(), ExchangeKind::Direct, ExchangeDeclareOptions { auto_delete: true, ..Default::default() }, FieldTable::default()).await?;
    ch.queue_declare(name.as_str().into(), QueueDeclareOptions { auto_delete: true, ..Default::default() }, FieldTable::default()).await?;
    ch.queue_bind(name.as_str().into(), name.as_str().into(), "bench".into(), QueueBindOptions::default(), FieldTable::default()).await?;
    let props = BasicProperties::default().with_content_type("application/json".into()).with_content_encoding("utf-8".into()).with_delivery_mode(2);
    let started = Instant::now();
    for i in 0..n {
        let body = serde_json::to_vec(&json!({"id": i, "task": "bench.add", "args": [1, 2], "kwargs": {}})).expect("json");
        let _confirm = ch.basic_publish(name.as_str().into(), "bench".into(), BasicPublishOptions::default(), &body, props.clone()).await?;
    }
    let published = started.elapsed();
    ch.basic_qos(100, BasicQosOptions::default()).await?;
    let mut consumer = ch.basic_consume(name.as_str().into(), "bench".into(), BasicConsumeOptions::default(), FieldTable::default()).await?;
    let mut seen = 0;
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        let _: serde_json::Value = serde_json::from_slice(&delivery.data).expect("json body");
        delivery.ack(BasicAckOptions::default()).await?;
        seen += 1;
        if seen == n {
            break;
        }
    }
    let total = started.elapsed();
    conn.close(200, "bye".into()).await?;
    println!(
        "{}",
        json!({
            "impl": "lapin 4 (Rust)",
            "messages": n,
            "publish_seconds": published.as_secs_f64(),
            "total_seconds": total.as_secs_f64(),
            "msgs_per_sec": n as f64 / total.as_secs_f64(),
        })
    );
    Ok(())
}
