//! At-least-once on redis:// when things die: a consumer killed with SIGKILL while holding
//! messages, a gateway killed the same way, and a Redis server (a private one, with an
//! append-only file) killed and restarted under a running producer and consumer. Every
//! message comes back (after a short visibility timeout) and the count is exact.

mod redis_common;
mod support;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kombu::{PublishOptions, Queue, RetryPolicy, Value};
use redis_common::{cleanup, connection, hold_in_child, redis_up, URL};
use serde_json::json;
use support::{collect_redelivered, hold_through_gateway_and_kill, kill, publish_numbers, GatewayProcess};

fn prefix() -> String {
    format!("kwfail.{}.", kombu::uuid())
}

/// Restore quickly what a dead consumer held.
fn short_visibility() -> [(&'static str, Value); 3] {
    [("visibility_timeout", Value::from(1)), ("unacked_restore_interval", Value::from(0.2)), ("unacked_restore_throttle", Value::from(1))]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_held_by_a_consumer_killed_with_sigkill_comes_back() {
    if !redis_up() {
        return;
    }
    let p = prefix();
    let conn = connection(URL, &p, &short_visibility());
    publish_numbers(&conn, "jobs", 20).await;
    let holder = hold_in_child(&p, "jobs", 20);
    kill(holder);
    let got = collect_redelivered(&conn, "jobs", 20, 50, Duration::from_secs(20)).await;
    assert_eq!(got.numbers, (0..20).collect::<BTreeSet<i64>>());
    conn.release().await.unwrap();
    cleanup(URL, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_held_through_a_gateway_killed_with_sigkill_comes_back() {
    if !redis_up() {
        return;
    }
    let p = prefix();
    let conn = connection(URL, &p, &short_visibility());
    publish_numbers(&conn, "via-gw", 10).await;
    let gateway = GatewayProcess::start(&["--broker", &format!("{URL}?global_keyprefix={p}&polling_interval=0.2")]);
    // A browser-like client holds every message through the gateway when the gateway dies.
    hold_through_gateway_and_kill(gateway, "via-gw", 10, Duration::from_secs(5)).await;
    let got = collect_redelivered(&conn, "via-gw", 10, 50, Duration::from_secs(20)).await;
    assert_eq!(got.numbers, (0..10).collect::<BTreeSet<i64>>());
    conn.release().await.unwrap();
    cleanup(URL, &p).await;
}

/// A private redis-server with an append-only file fsynced on every write.
struct PrivateRedis {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start(port: u16, dir: std::path::PathBuf) -> Option<PrivateRedis> {
        let mut r = PrivateRedis { port, dir, child: None };
        r.child = Some(r.spawn()?);
        Some(r)
    }

    fn spawn(&self) -> Option<Child> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(child)
    }

    fn crash_and_restart(&mut self) {
        kill(self.child.take().unwrap());
        std::thread::sleep(Duration::from_millis(300));
        self.child = Some(self.spawn().expect("redis-server restarts"));
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            kill(c);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_restart_under_a_producer_and_a_consumer_loses_nothing() {
    kombu_gateway::register_transports();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("kombu-redis-aof-{}", kombu::uuid()));
    std::fs::create_dir_all(&dir).unwrap();
    let Some(mut server) = PrivateRedis::start(port, dir) else {
        assert!(std::env::var_os("CI").is_none(), "redis-server must be installed under CI");
        eprintln!("skipping: cannot start redis-server");
        return;
    };
    const N: i64 = 200;
    let url = format!("redis://127.0.0.1:{port}/0");
    let p = prefix();
    let policy = RetryPolicy { interval_start: 0.1, interval_step: 0.2, interval_max: 1.0, max_retries: Some(60), timeout: None };

    let producer_conn = connection(&url, &p, &[]);
    let producer = tokio::spawn({
        let policy = policy.clone();
        async move {
            let producer = producer_conn.producer().await.unwrap();
            let q = Queue::new("durable");
            let mut retries = 0;
            for i in 0..N {
                producer_conn
                    .ensure(&policy, |_: &kombu::Error, _| retries += 1, || async { producer.publish(json!(i), PublishOptions::new().routing_key("durable").declare(&q)).await })
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            producer_conn.release().await.unwrap();
            retries
        }
    });

    let consumer_conn = connection(&url, &p, &short_visibility());
    let consumer = consumer_conn.consumer(vec![Queue::new("durable")]).await.unwrap().prefetch_count(10);
    let mut got = BTreeSet::new();
    let mut deliveries = 0;
    let mut restarted = false;
    let deadline = Instant::now() + Duration::from_secs(90);
    while (got.len() as i64) < N && Instant::now() < deadline {
        if !restarted && got.len() as i64 >= N / 3 {
            tokio::task::block_in_place(|| server.crash_and_restart());
            restarted = true;
        }
        match consumer.next_message(Some(Duration::from_secs(1))).await {
            Ok(m) => {
                deliveries += 1;
                got.insert(m.payload_as::<i64>().unwrap());
                // An ack on a connection that died is not taken: that message comes back.
                let _ = m.ack();
            }
            Err(e) if e.name() == "TimeoutError" => {}
            Err(e) if e.is_recoverable_connection_error() || e.is_connection_error() => {
                consumer_conn.ensure_connection(&policy, |_: &kombu::Error, _| {}).await.unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    }
    let retries = producer.await.unwrap();
    assert!(restarted);
    assert!(retries >= 1, "the producer should have met the restart");
    assert_eq!(got, (0..N).collect::<BTreeSet<i64>>(), "every published message was consumed");
    eprintln!("{N} messages, {deliveries} deliveries ({} again after the restart), producer retries: {retries}", deliveries - N as usize);
    consumer_conn.release().await.unwrap();
    cleanup(&url, &p).await;
}
