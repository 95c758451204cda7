//! Round-trip latency on any transport URL: K messages sent one at a time (publish, receive
//! with a consumer, ack, next). Prints one JSON line with p50/p99 in milliseconds.
//!
//! `cargo run --release -p kombu-gateway --example bench_pingpong URL [K] [QUEUES]` (default
//! 2000, 1); `bench/gateway_clients.sh` runs it against a gateway. With QUEUES > 1 the
//! consumer reads that many queues and every message goes to the last one: how fast an idle
//! multi-queue consumer is woken (`bench/redis_vs_python.sh`).

use std::time::{Duration, Instant};

use kombu::{Connection, Exchange, PublishOptions, Queue};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> kombu::Result<()> {
    kombu_gateway::register_transports();
    let url = std::env::args().nth(1).unwrap_or_else(|| "gateway+ws://127.0.0.1:8765/gateway".into());
    let k: usize = std::env::args().nth(2).map(|s| s.parse().expect("K must be a number")).unwrap_or(2000);
    let queues_n: usize = std::env::args().nth(3).map(|s| s.parse().expect("QUEUES must be a number")).unwrap_or(1).max(1);
    let name = format!("pingpong-{}", std::process::id());
    let exchange = Exchange::direct(&name).durable(false).auto_delete(true);
    let conn = Connection::new(&url)?;
    let producer = conn.producer().await?;
    let mut queues = Vec::new();
    for i in 0..queues_n {
        // The last queue gets the messages (routing key "k").
        let key = if i + 1 == queues_n { "k".to_owned() } else { format!("idle{i}") };
        let queue = Queue::new(format!("{name}-{i}")).exchange(exchange.clone()).routing_key(&key).durable(false).auto_delete(true);
        producer.maybe_declare(queue.clone()).await?;
        queues.push(queue);
    }
    let consumer = conn.consumer(queues).await?.prefetch_count(100);
    consumer.consume().await?;
    let mut rtts = Vec::with_capacity(k);
    let started = Instant::now();
    for i in 0..k {
        let t = Instant::now();
        producer.publish(json!({"id": i, "task": "bench.add", "args": [1, 2]}), PublishOptions::new().exchange(&exchange).routing_key("k")).await?;
        let m = consumer.next_message(Some(Duration::from_secs(5))).await?;
        m.ack()?;
        rtts.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let total = started.elapsed().as_secs_f64();
    consumer.cancel().await?;
    conn.release().await?;
    rtts.sort_by(f64::total_cmp);
    let pct = |p: usize| rtts[(rtts.len() * p / 100).min(rtts.len() - 1)];
    println!(
        "{}",
        json!({"impl": "kombu-wasm (Rust, native)", "queues": queues_n, "round_trips": k, "round_trips_per_sec": k as f64 / total, "p50_ms": pct(50), "p99_ms": pct(99)})
    );
    Ok(())
}
