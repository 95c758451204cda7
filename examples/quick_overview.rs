//! The Kombu documentation's "Quick overview", on the embedded memory broker.
//!
//! `cargo run --example quick_overview [URL]` (default `memory://`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kombu::{Connection, Exchange, Message, Payload, PublishOptions, Queue};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> kombu::Result<()> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "memory://".into());
    let media_exchange = Exchange::direct("media").durable(true);
    let video_queue = Queue::new("video").exchange(media_exchange.clone()).routing_key("video");

    let conn = Connection::new(&url)?;

    // produce
    let producer = conn.producer().await?.serializer("json");
    producer
        .publish(
            json!({"name": "/tmp/lolcat1.avi", "size": 1301013}),
            PublishOptions::new().exchange(&media_exchange).routing_key("video").declare(&video_queue),
        )
        .await?;

    // consume
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let consumer = conn.consumer(vec![video_queue]).await?.callback(Arc::new(move |body: &Payload, message: &Message| {
        println!("{}", body.to_value());
        message.ack().expect("ack");
        flag.store(true, Ordering::SeqCst);
    }));
    consumer.consume().await?;
    while !done.load(Ordering::SeqCst) {
        conn.drain_events(Some(Duration::from_secs(5))).await?;
    }
    consumer.cancel().await?;
    conn.release().await
}
