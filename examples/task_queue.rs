//! The Kombu documentation's task queue example (`queues.py`, `worker.py`, `tasks.py`,
//! `client.py`): a `tasks` direct exchange with high, middle and low priority queues, a
//! client sending tasks, and a worker built on [`kombu::mixins::ConsumerMixin`].
//!
//! Python's example uses pickle; here tasks travel as JSON (`{"fun": ..., "args": ...,
//! "kwargs": ...}`) and are compressed with bzip2 as in the original client.
//!
//! `cargo run --example task_queue [URL]` (default `memory://`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use kombu::mixins::ConsumerMixin;
use kombu::{Channel, Connection, Consumer, Exchange, Message, Payload, PublishOptions, Queue};
use serde_json::{json, Value};

/// queues.py
fn task_exchange() -> Exchange {
    Exchange::direct("tasks")
}
fn task_queues() -> Vec<Queue> {
    ["hipri", "midpri", "lopri"]
        .iter()
        .map(|name| Queue::new(*name).exchange(task_exchange()).routing_key(*name))
        .collect()
}

/// tasks.py
fn hello(who: &str) -> String {
    format!("Hello {who}")
}

/// worker.py
struct Worker {
    connection: Connection,
    state: Arc<Progress>,
}

struct Progress {
    done: AtomicUsize,
    expected: usize,
    stop: AtomicBool,
}

impl ConsumerMixin for Worker {
    fn connection(&self) -> &Connection {
        &self.connection
    }

    fn get_consumers(&self, channel: &Channel) -> kombu::Result<Vec<Consumer>> {
        let state = self.state.clone();
        let consumer = Consumer::new(channel, task_queues())
            .accept(["json"])?
            .prefetch_count(1)
            .callback(Arc::new(move |body: &Payload, message: &Message| process_task(&state, body, message)));
        Ok(vec![consumer])
    }

    fn should_stop(&self) -> bool {
        self.state.stop.load(Ordering::SeqCst)
    }
}

fn process_task(state: &Progress, body: &Payload, message: &Message) {
    let task = body.to_value();
    let fun = task["fun"].as_str().unwrap_or_default();
    let args = task["args"].as_array().cloned().unwrap_or_default();
    println!("Got task: {fun}({})", args.iter().map(Value::to_string).collect::<Vec<_>>().join(", "));
    match fun {
        "hello" => println!("{}", hello(args.first().and_then(Value::as_str).unwrap_or("world"))),
        other => eprintln!("task raised exception: unknown task {other:?}"),
    }
    message.ack().expect("ack");
    if state.done.fetch_add(1, Ordering::SeqCst) + 1 == state.expected {
        state.stop.store(true, Ordering::SeqCst);
    }
}

/// client.py
async fn send_as_task(connection: &Connection, fun: &str, args: Value, priority: &str) -> kombu::Result<()> {
    let producer = connection.producer().await?;
    producer
        .publish(
            json!({"fun": fun, "args": args, "kwargs": {}}),
            PublishOptions::new()
                .serializer("json")
                .compression("bzip2")
                .exchange(task_exchange())
                .declare(task_exchange())
                .routing_key(priority),
        )
        .await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> kombu::Result<()> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "memory://".into());
    let connection = Connection::new(&url)?;
    // Declare the queues first, so that the tasks sent before the worker starts are kept.
    let ch = connection.default_channel().await?;
    for q in task_queues() {
        q.bind(&ch).declare(false).await?;
    }
    send_as_task(&connection, "hello", json!(["Kombu"]), "midpri").await?;
    send_as_task(&connection, "hello", json!(["world"]), "hipri").await?;
    let state = Arc::new(Progress { done: AtomicUsize::new(0), expected: 2, stop: AtomicBool::new(false) });
    let worker = Worker { connection: connection.clone(), state };
    worker.run().await?;
    connection.release().await
}
