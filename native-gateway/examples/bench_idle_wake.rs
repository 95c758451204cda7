//! How fast an idle consumer is woken: a consumer of QUEUES queues waits (its fetch in flight)
//! while a producer on another connection publishes one message to the *last* queue every
//! 20 ms; the latency is publish start to delivery. Prints one JSON line with p50/p99 in ms.
//!
//! `cargo run --release -p kombu-gateway --example bench_idle_wake URL [K] [QUEUES]` (default
//! 300 messages, 4 queues); `bench/redis_vs_python.sh` runs it on redis://.

use std::time::{Duration, Instant};

use kombu::{Connection, Exchange, PublishOptions, Queue};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> kombu::Result<()> {
    kombu_gateway::register_transports();
    let url = std::env::args().nth(1).unwrap_or_else(|| "redis://127.0.0.1:6379/0".into());
    let k: usize = std::env::args().nth(2).map(|s| s.parse().expect("K must be a number")).unwrap_or(300);
    let n: usize = std::env::args().nth(3).map(|s| s.parse().expect("QUEUES must be a number")).unwrap_or(4).max(1);
    let name = format!("idlewake-{}", std::process::id());
    let exchange = Exchange::direct(&name).durable(false).auto_delete(true);
    let conn = Connection::new(&url)?;
    let pconn = Connection::new(&url)?;
    let producer = pconn.producer().await?;
    let mut queues = Vec::new();
    for i in 0..n {
        let key = if i + 1 == n { "k".to_owned() } else { format!("idle{i}") };
        let queue = Queue::new(format!("{name}-{i}")).exchange(exchange.clone()).routing_key(&key).durable(false).auto_delete(true);
        producer.maybe_declare(queue.clone()).await?;
        queues.push(queue);
    }
    let consumer = conn.consumer(queues).await?.prefetch_count(10);
    consumer.consume().await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    // The consumer keeps waiting for the next message (its fetch in flight) ...
    let consume = async {
        for _ in 0..k {
            let m = consumer.next_message(Some(Duration::from_secs(10))).await?;
            m.ack()?;
            let _ = tx.send(Instant::now());
        }
        Ok::<_, kombu::Error>(())
    };
    // ... while the producer publishes one message every 20 ms.
    let produce = async {
        let mut lat = Vec::with_capacity(k);
        for i in 0..k {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let t = Instant::now();
            producer.publish(json!({"id": i}), PublishOptions::new().exchange(&exchange).routing_key("k")).await?;
            let got = rx.recv().await.expect("the consumer stopped");
            lat.push(got.duration_since(t).as_secs_f64() * 1000.0);
        }
        Ok::<_, kombu::Error>(lat)
    };
    let (c, p) = tokio::join!(consume, produce);
    c?;
    let mut lat = p?;
    consumer.cancel().await?;
    conn.release().await?;
    pconn.release().await?;
    lat.sort_by(f64::total_cmp);
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)];
    println!("{}", json!({"impl": "kombu-wasm (Rust, native)", "queues": n, "messages": k, "p50_ms": pct(50), "p99_ms": pct(99)}));
    Ok(())
}
