//! Shared by the redis_* test binaries (with `support`, which they include too): the Redis
//! connection and key cleanup, and the holder process's Redis side.
#![allow(dead_code)]

use std::process::Child;
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
    crate::support::spawn_holder("redis_common::hold_messages_until_killed", ("KOMBU_REDIS_HOLD", format!("{prefix} {queue} {count}")))
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
    crate::support::hold_forever(&consumer, count, Duration::from_secs(10)).await;
}
