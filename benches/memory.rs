//! memory:// round trip: publish → consume (prefetch 100) → ack, through the whole Kombu API
//! (serialization, the broker, the transport, Consumer callbacks).
//!
//! `cargo bench --bench memory`. The same workload runs against Python kombu in
//! `bench/memory_vs_python.sh`.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kombu::{Connection, Exchange, Message, Payload, PublishOptions, Queue};
use serde_json::json;

const BATCH: usize = 1_000;

fn round_trip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let exchange = Exchange::direct("bench");
    let queue = Queue::new("bench").exchange(exchange.clone()).routing_key("bench");
    let conn = Connection::new("memory://").unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let (producer, _consumer) = rt.block_on(async {
        let producer = conn.producer().await.unwrap();
        producer.maybe_declare(queue.clone()).await.unwrap();
        let seen = count.clone();
        let consumer = conn
            .consumer(vec![queue.clone()])
            .await
            .unwrap()
            .prefetch_count(100)
            .callback(Arc::new(move |body: &Payload, message: &Message| {
                black_box(body);
                message.ack().unwrap();
                seen.fetch_add(1, Ordering::Relaxed);
            }));
        consumer.consume().await.unwrap();
        (producer, consumer)
    });
    let mut g = c.benchmark_group("memory");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("publish_consume_ack_json_64B_x1000", |b| {
        b.iter(|| {
            rt.block_on(async {
                let start = count.load(Ordering::Relaxed);
                for i in 0..BATCH {
                    producer
                        .publish(
                            json!({"id": i, "task": "bench.add", "args": [1, 2], "kwargs": {}}),
                            PublishOptions::new().exchange(&exchange).routing_key("bench"),
                        )
                        .await
                        .unwrap();
                }
                while count.load(Ordering::Relaxed) < start + BATCH {
                    conn.drain_events(Some(Duration::from_secs(5))).await.unwrap();
                }
            })
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("publish_only_json_64B", |b| {
        let q = Queue::new("bench-publish-only").exchange(Exchange::direct("bench-po")).routing_key("po");
        rt.block_on(producer.maybe_declare(q.clone())).unwrap();
        let ex = Exchange::direct("bench-po");
        let mut n = 0u64;
        b.iter(|| {
            rt.block_on(producer.publish(json!({"id": n, "task": "bench.add", "args": [1, 2], "kwargs": {}}), PublishOptions::new().exchange(&ex).routing_key("po")))
                .unwrap();
            n += 1;
            if n % 10_000 == 0 {
                rt.block_on(q.bind(producer.channel()).purge()).unwrap();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
