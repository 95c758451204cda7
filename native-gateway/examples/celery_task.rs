//! Call a Celery task from Rust over Redis and get its result back: Celery's task message
//! protocol v2 published with the Kombu API, and the result read from the reply queue the
//! rpc:// result backend answers to.
//!
//! Start a worker (Python, `pip install celery`) with the app in tests/interop/celery_app.py:
//!
//! ```text
//! cd tests/interop && CELERY_BROKER=redis://127.0.0.1:6379/0 \
//!   celery -A celery_app worker --pool=solo -Q celery --without-heartbeat --without-gossip --without-mingle
//! ```
//!
//! then `cargo run -p kombu-gateway --example celery_task [redis://127.0.0.1:6379/0]`.

use std::time::Duration;

use kombu::{Connection, Payload, PublishOptions, Queue};
use serde_json::{json, Value};

/// Celery's task message (protocol v2): headers name the task, the body is
/// `[args, kwargs, embed]`, `correlation_id` is the task id and `reply_to` the queue the
/// rpc:// backend sends the result to.
fn celery_task(task: &str, args: Value, kwargs: Value, reply_to: &Queue) -> (Value, PublishOptions, String) {
    let id = kombu::uuid();
    let opts = PublishOptions::new()
        .header("lang", "py")
        .header("task", task)
        .header("id", id.as_str())
        .header("root_id", id.as_str())
        .header("parent_id", Value::Null)
        .header("group", Value::Null)
        .header("retries", 0)
        .header("eta", Value::Null)
        .header("expires", Value::Null)
        .header("timelimit", json!([null, null]))
        .header("argsrepr", args.to_string())
        .header("kwargsrepr", kwargs.to_string())
        .header("origin", format!("kombu-wasm@{}", std::process::id()))
        .correlation_id(id.as_str())
        .reply_to(reply_to.clone());
    let body = json!([args, kwargs, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]);
    (body, opts, id)
}

#[tokio::main]
async fn main() -> kombu::Result<()> {
    kombu_gateway::register_transports();
    let url = std::env::args().nth(1).unwrap_or_else(|| "redis://127.0.0.1:6379/0".into());
    let conn = Connection::new(&url)?;
    // The queue the rpc:// backend answers to: ours alone, gone when we are.
    let replies = Queue::new(format!("kombu-wasm.replies.{}", kombu::uuid())).auto_delete(true).durable(false);
    let consumer = conn.consumer(vec![replies.clone()]).await?;
    let (body, opts, id) = celery_task("kombu_wasm.add", json!([2, 3]), json!({}), &replies);
    conn.producer().await?.publish(body, opts.routing_key("celery")).await?;
    println!("sent task kombu_wasm.add(2, 3) id={id}");
    loop {
        let m = consumer.next_message(Some(Duration::from_secs(30))).await?;
        m.ack()?;
        if m.properties().correlation_id.as_deref() != Some(id.as_str()) {
            continue;
        }
        let Payload::Data(result) = m.payload()? else { continue };
        println!("{} -> {}", result["status"], result["result"]);
        if result["status"] == "SUCCESS" || result["status"] == "FAILURE" {
            break;
        }
    }
    conn.release().await
}
