//! A real Celery worker (PyPI `celery`, in the interop venv) with `broker=redis://` and
//! `result_backend="rpc://"` runs tasks published from Rust — directly on redis:// and through
//! a gateway fronting the same Redis, as a browser would — and the results come back over the
//! publisher's reply queue. Celery's task message protocol v2: headers `task`, `id`,
//! `argsrepr`, ..., body `[args, kwargs, embed]`. Skipped without KOMBU_PYTHON, except under
//! CI.

mod redis_common;
mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kombu::{Connection, Payload, PublishOptions, Queue};
use redis_common::{cleanup, connection, URL};
use serde_json::{json, Value};

fn celery() -> Option<String> {
    let python = support::python()?;
    let celery = std::path::Path::new(&python).with_file_name("celery");
    if !celery.exists() {
        assert!(std::env::var_os("CI").is_none(), "celery must be installed in the interop venv under CI");
        eprintln!("skipping: no celery next to {python}");
        return None;
    }
    Some(celery.to_string_lossy().into_owned())
}

/// Celery's task message, protocol v2.
fn task(name: &str, args: Value, kwargs: Value, reply_to: &Queue) -> (Value, PublishOptions, String) {
    let id = kombu::uuid();
    let opts = PublishOptions::new()
        .header("lang", "py")
        .header("task", name)
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
        .header("origin", "kombu-wasm-test")
        .correlation_id(id.as_str())
        .reply_to(reply_to.clone());
    let body = json!([args, kwargs, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]);
    (body, opts, id)
}

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_worker(celery: &str, prefix: &str, queue: &str) -> Worker {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/interop");
    let child = Command::new(celery)
        .args(["-A", "celery_app", "worker", "--pool=solo", "-Q", queue, "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel=WARNING"])
        .current_dir(dir)
        .env("CELERY_BROKER", URL)
        .env("CELERY_KEYPREFIX", prefix)
        .stdout(Stdio::null())
        .spawn()
        .expect("start the celery worker");
    Worker(child)
}

/// Wait for the result of task `id` on the reply queue's consumer.
async fn result_of(consumer: &kombu::Consumer, id: &str) -> Value {
    loop {
        let m = consumer.next_message(Some(Duration::from_secs(60))).await.expect("a result from the worker");
        m.ack().unwrap();
        if m.properties().correlation_id.as_deref() != Some(id) {
            continue;
        }
        let Payload::Data(r) = m.payload().unwrap() else { panic!("a JSON result") };
        if r["status"] == "SUCCESS" || r["status"] == "FAILURE" {
            return r;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_celery_worker_runs_tasks_published_from_rust_and_from_a_gateway_client() {
    kombu_gateway::register_transports();
    let Some(celery) = celery() else { return };
    let prefix = format!("kwcelery.{}.", kombu::uuid());
    let queue = "tasks";
    let _worker = start_worker(&celery, &prefix, queue);

    // From Rust, on redis://.
    let conn = connection(URL, &prefix, &[]);
    let replies = Queue::new(format!("replies.{}", kombu::uuid()));
    let consumer = conn.consumer(vec![replies.clone()]).await.unwrap();
    let (body, opts, id) = task("kombu_wasm.add", json!([2, 3]), json!({}), &replies);
    conn.producer().await.unwrap().publish(body, opts.routing_key(queue)).await.unwrap();
    let r = result_of(&consumer, &id).await;
    assert_eq!((&r["status"], &r["result"], &r["task_id"]), (&json!("SUCCESS"), &json!(5), &json!(id)));

    // From a gateway+ws:// client (what a browser page runs), through a gateway on the same Redis.
    let g = support::start_gateway(format!("{URL}?global_keyprefix={prefix}&polling_interval=0.2")).await;
    let client = Connection::new(&format!("gateway+ws://{}/gateway", g.addr)).unwrap();
    let replies = Queue::new(format!("replies.{}", kombu::uuid()));
    let consumer = client.consumer(vec![replies.clone()]).await.unwrap();
    let (body, opts, id) = task("kombu_wasm.greet", json!(["browser"]), json!({"punctuation": "?"}), &replies);
    client.producer().await.unwrap().publish(body, opts.routing_key(queue)).await.unwrap();
    let r = result_of(&consumer, &id).await;
    assert_eq!((&r["status"], &r["result"]), (&json!("SUCCESS"), &json!("hello browser?")));

    client.release().await.unwrap();
    g.shutdown().await;
    conn.release().await.unwrap();
    drop(_worker);
    cleanup(URL, &prefix).await;
}
