//! memory:// round trip: publish N JSON messages of ~64 bytes, consume them with
//! prefetch 100 and ack each. Prints one JSON line with the rate.
//!
//! `cargo run --release --example bench_memory [N] [--typed]` (default 20000).
//! `bench/memory_vs_python.sh` runs it beside Python kombu's memory transport on the same
//! workload.
//!
//! By default the bodies are dynamic JSON values, as Python's dicts: built with `json!`,
//! published with `Producer::publish`, decoded for a callback. With `--typed` they are a
//! `#[derive(Serialize, Deserialize)]` struct, as a Rust application would declare its
//! messages: `Producer::publish_typed`, and `Message::payload_as` in `on_message`. The bytes
//! on the wire are the same, and every body is still decoded before the ack.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kombu::{Connection, Exchange, Message, Payload, PublishOptions, Queue};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The typed form of the benchmark's message.
#[derive(Serialize, Deserialize)]
struct Task {
    id: usize,
    task: String,
    args: Vec<i64>,
    kwargs: serde_json::Map<String, serde_json::Value>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> kombu::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let typed = args.iter().any(|a| a == "--typed");
    let n: usize = args.iter().find(|a| !a.starts_with("--")).map(|s| s.parse().expect("N must be a number")).unwrap_or(20_000);
    let name = format!("bench-{}", std::process::id());
    let exchange = Exchange::direct(&name);
    let queue = Queue::new(&name).exchange(exchange.clone()).routing_key("bench");
    let conn = Connection::new("memory://")?;
    let producer = conn.producer().await?;
    producer.maybe_declare(queue.clone()).await?;

    let started = Instant::now();
    for i in 0..n {
        // {"id": 12345, "task": "bench.add", "args": [1, 2], "kwargs": {}} ~ 64 bytes
        let opts = PublishOptions::new().exchange(&exchange).routing_key("bench");
        if typed {
            let task = Task { id: i, task: "bench.add".into(), args: vec![1, 2], kwargs: Default::default() };
            producer.publish_typed(&task, opts).await?;
        } else {
            producer.publish(json!({"id": i, "task": "bench.add", "args": [1, 2], "kwargs": {}}), opts).await?;
        }
    }
    let published = started.elapsed();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let consumer = conn.consumer(vec![queue]).await?.prefetch_count(100);
    let consumer = if typed {
        consumer.on_message(Arc::new(move |message: &Message| {
            let task: Task = message.payload_as().expect("a task");
            assert_eq!(task.args.len(), 2);
            message.ack().expect("ack");
            seen.fetch_add(1, Ordering::Relaxed);
        }))
    } else {
        consumer.callback(Arc::new(move |_body: &Payload, message: &Message| {
            message.ack().expect("ack");
            seen.fetch_add(1, Ordering::Relaxed);
        }))
    };
    consumer.consume().await?;
    while count.load(Ordering::Relaxed) < n {
        conn.drain_events(Some(Duration::from_secs(5))).await?;
    }
    let total = started.elapsed();
    consumer.cancel().await?;
    conn.release().await?;
    println!(
        "{}",
        json!({
            "impl": if typed { "kombu-wasm (Rust, native, typed)" } else { "kombu-wasm (Rust, native)" },
            "messages": n,
            "publish_seconds": published.as_secs_f64(),
            "total_seconds": total.as_secs_f64(),
            "msgs_per_sec": n as f64 / total.as_secs_f64(),
        })
    );
    Ok(())
}
