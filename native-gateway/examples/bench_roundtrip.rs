//! Round trip on any transport URL (amqp://, gateway+ws://, memory://): publish N JSON
//! messages of ~64 bytes, consume them with
//! prefetch 100 and ack each. Prints one JSON line with the rate.
//!
//! `cargo run --release -p kombu-gateway --example bench_roundtrip URL [N] [ROUND] [WINDOW]`.
//! `bench/amqp_vs_python.sh` runs it beside Python kombu (pyamqp) on the same workload.
//! ROUND (default N): publish and consume in rounds of that many messages, so the queue is
//! never deeper than ROUND (moto's cost per call grows with its queue's depth;
//! `bench/sqs_vs_python.sh`). WINDOW (default 1): publishes in flight at once (on sqs://,
//! publishes issued together go out as SendMessageBatch).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kombu::{Connection, Exchange, Message, Payload, PublishOptions, Queue};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> kombu::Result<()> {
    kombu_gateway::register_transports();
    let url = std::env::args().nth(1).unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672//".into());
    let n: usize = std::env::args().nth(2).map(|s| s.parse().expect("N must be a number")).unwrap_or(20_000);
    let round: usize = std::env::args().nth(3).map(|s| s.parse().expect("ROUND must be a number")).unwrap_or(n).max(1);
    let window: usize = std::env::args().nth(4).map(|s| s.parse().expect("WINDOW must be a number")).unwrap_or(1).max(1);
    let name = format!("bench-{}", std::process::id());
    let exchange = Exchange::direct(&name).durable(false).auto_delete(true);
    let queue = Queue::new(&name).exchange(exchange.clone()).routing_key("bench").durable(false).auto_delete(true);
    let conn = Connection::new(&url)?;
    let producer = conn.producer().await?;
    producer.maybe_declare(queue.clone()).await?;

    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let consumer = conn
        .consumer(vec![queue])
        .await?
        .prefetch_count(100)
        .callback(Arc::new(move |_body: &Payload, message: &Message| {
            message.ack().expect("ack");
            seen.fetch_add(1, Ordering::Relaxed);
        }));
    let started = Instant::now();
    let mut published = Duration::ZERO;
    let mut consuming = false;
    for first in (0..n).step_by(round) {
        let last = (first + round).min(n);
        let t = Instant::now();
        // {"id": 12345, "task": "bench.add", "args": [1, 2], "kwargs": {}} ~ 64 bytes
        let publish = |i: usize| producer.publish(json!({"id": i, "task": "bench.add", "args": [1, 2], "kwargs": {}}), PublishOptions::new().exchange(&exchange).routing_key("bench"));
        for from in (first..last).step_by(window) {
            if window == 1 {
                publish(from).await?;
                continue;
            }
            for r in futures::future::join_all((from..(from + window).min(last)).map(publish)).await {
                r?;
            }
        }
        published += t.elapsed();
        if !consuming {
            consumer.consume().await?;
            consuming = true;
        }
        while count.load(Ordering::Relaxed) < last {
            conn.drain_events(Some(Duration::from_secs(30))).await?;
        }
    }
    let total = started.elapsed();
    consumer.cancel().await?;
    conn.release().await?;
    println!(
        "{}",
        json!({
            "impl": format!("kombu-wasm (Rust, native) on {}", conn.transport_name()),
            "messages": n,
            "publish_seconds": published.as_secs_f64(),
            "total_seconds": total.as_secs_f64(),
            "msgs_per_sec": n as f64 / total.as_secs_f64(),
        })
    );
    Ok(())
}
