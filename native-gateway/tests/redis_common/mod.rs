//! Shared by the redis_* test binaries: a consumer run in a child process (this test binary
//! again) that holds messages unacknowledged until it is killed, and key cleanup.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kombu::{Connection, ConnectionOptions, Queue, Value};
use redis::AsyncCommands;

pub const URL: &str = "redis://127.0.0.1:6379/0";

/// Registers the native transports; false (the test skips) when no Redis listens on 6379,
/// which under CI is a failure instead.
pub fn redis_up() -> bool {
    kombu_gateway::register_transports();
    if std::net::TcpStream::connect_timeout(&"127.0.0.1:6379".parse().unwrap(), Duration::from_secs(1)).is_err() {
        assert!(std::env::var_os("CI").is_none(), "Redis must run on 127.0.0.1:6379 under CI");
        eprintln!("skipping: no Redis on 127.0.0.1:6379");
        return false;
    }
    true
}

/// A redis:// connection whose keys all start with `prefix`.
pub fn connection(url: &str, prefix: &str, extra: &[(&str, Value)]) -> Connection {
    let mut o = ConnectionOptions::default();
    o.transport_options.insert("global_keyprefix".into(), Value::from(prefix));
    o.transport_options.insert("polling_interval".into(), Value::from(0.2));
    for (k, v) in extra {
        o.transport_options.insert((*k).into(), v.clone());
    }
    Connection::with_options(url, o).unwrap()
}

/// Delete every key that starts with `prefix` on the Redis at `url`.
pub async fn cleanup(url: &str, prefix: &str) {
    let mut r = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = r.keys(format!("{prefix}*")).await.unwrap();
    if !keys.is_empty() {
        let _: () = r.del(keys).await.unwrap();
    }
}

/// Run `redis_common::hold_messages_until_killed` in a child process: it consumes `count`
/// messages of `queue` and holds them unacknowledged. Returns once it holds them.
pub fn hold_in_child(prefix: &str, queue: &str, count: usize) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "redis_common::hold_messages_until_killed", "--nocapture", "--test-threads", "1"])
        .env("KOMBU_REDIS_HOLD", format!("{prefix} {queue} {count}"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "the holder exited before holding");
        if line.trim_end().ends_with("HELD") {
            break;
        }
    }
    child
}

/// Not a test on its own: the holder process of `hold_in_child` (does nothing without
/// KOMBU_REDIS_HOLD).
#[tokio::test]
async fn hold_messages_until_killed() {
    let Ok(spec) = std::env::var("KOMBU_REDIS_HOLD") else { return };
    let mut parts = spec.split(' ');
    let (prefix, queue, count) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap().parse::<usize>().unwrap());
    kombu_gateway::register_transports();
    let conn = connection(URL, prefix, &[]);
    let consumer = conn.consumer(vec![Queue::new(queue)]).await.unwrap().prefetch_count(count as u16);
    let mut held = Vec::new();
    for _ in 0..count {
        held.push(consumer.next_message(Some(Duration::from_secs(10))).await.unwrap());
    }
    println!("HELD");
    tokio::time::sleep(Duration::from_secs(3600)).await;
}
