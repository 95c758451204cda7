//! The Kombu documentation's Hello World (`hello_publisher.py` and `hello_consumer.py`) in
//! one process: `memory://` lives in the process, so publisher and consumer share it.
//!
//! `cargo run --example hello_world [URL]` (default `memory://`).

use std::time::Duration;

use kombu::{Connection, PublishOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> kombu::Result<()> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "memory://".into());

    // hello_publisher
    let conn = Connection::new(&url)?;
    let simple_queue = conn.simple_queue("simple_queue").await?;
    let now = kombu::rt::SystemTime::now()
        .duration_since(kombu::rt::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let message = format!("helloworld, sent at {now}");
    simple_queue.put(message.clone(), PublishOptions::new()).await?;
    println!("Sent: {message}");
    simple_queue.close().await?;

    // hello_consumer
    let simple_queue = conn.simple_queue("simple_queue").await?;
    let message = simple_queue.get(true, Some(Duration::from_secs(1))).await?;
    println!("Received: {}", message.payload()?.as_str().unwrap_or_default());
    message.ack()?;
    simple_queue.close().await?;
    conn.release().await
}
