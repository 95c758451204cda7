//! `redis://`, `rediss://`, `redis+socket://` and `sentinel://`: Kombu's Redis transport,
//! wire-compatible with kombu 5.7 — the core's virtual channel
//! ([`kombu::transport::virtual_channel`]) over a [`RedisStore`] with Kombu's key layout:
//!
//! - queues are lists (LPUSH to publish, RPOP to consume); priorities go to bucket lists
//!   `queue + sep + step` (`priority_steps`, default `[0, 3, 6, 9]`), and bucket 0 is
//!   consumed first: on Redis a *lower* priority number is served first, the reverse of
//!   AMQP, as in Kombu;
//! - binding tables are the sets `_kombu.binding.<exchange>` (members
//!   `routing_key + sep + pattern + sep + queue`, `sep` = `"\x06\x16"`), with
//!   `_kombu.binding_permanent.<exchange>` for queues without `x-expires`;
//! - unacknowledged messages are in the hash `unacked` (`[message, exchange, routing_key]`)
//!   and the zset `unacked_index` (score: unix time), moved there atomically with the pop
//!   (a Lua script; Kombu records them after BRPOP returned, and loses them when the worker
//!   dies in between); messages left there longer than `visibility_timeout` by a dead
//!   consumer are restored by a sweep under the `unacked_mutex` lock; a live consumer keeps
//!   raising the score of the messages it still holds, so long work is not redelivered
//!   (kombu #337);
//! - fanout exchanges are PUBLISH / PSUBSCRIBE on `/{db}.<exchange>/<routing_key>`, not
//!   stored and not acknowledged;
//! - `global_keyprefix` prefixes every key and channel name.
//!
//! Transport options (Kombu's names): `sep`, `ack_emulation`, `unacked_key`,
//! `unacked_index_key`, `unacked_mutex_key`, `unacked_mutex_expire`, `visibility_timeout`,
//! `unacked_restore_limit`, `unacked_restore_interval`, `unacked_restore_throttle`,
//! `max_connections`, `health_check_interval`, `client_name`, `fanout_prefix`, `fanout_patterns`,
//! `global_keyprefix`, `priority_steps`, `socket_timeout`, `socket_connect_timeout`,
//! `polling_interval`, `queue_order_strategy`, `master_name` (sentinel), and for TLS
//! `ssl_cert_reqs` (`required` by default: certificates are verified unless the URL says
//! `none`), `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`. Beyond Kombu: `dead_letter_prefix`
//! (`_kombu.deadletter.`: where values that are not Kombu messages are moved, per queue).

mod link;
mod scripts;
mod store;

use std::sync::Arc;
use std::time::Duration;

use kombu::proto::methods::ExchangeType;
use kombu::transport::virtual_channel::{seconds_option, VirtualConnection, VirtualOptions};
use kombu::transport::{ConnectInfo, Implements, RawConnection, Transport};
use kombu::value::Value;
use kombu::{Error, Result};

pub use link::open_connections;
pub use store::{RedisStore, StoreCounters};

/// The Redis transport (registered for `redis`, `rediss`, `redis+socket` and `sentinel`).
#[derive(Debug, Default)]
pub struct RedisTransport;

/// The options of the Redis store, with Kombu's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisOptions {
    /// `sep`: between a queue name and its priority step, and the parts of a binding row.
    pub sep: String,
    /// `ack_emulation`: keep delivered messages in `unacked` until acknowledged.
    pub ack_emulation: bool,
    /// `unacked_key`.
    pub unacked_key: String,
    /// `unacked_index_key`.
    pub unacked_index_key: String,
    /// `unacked_mutex_key`.
    pub unacked_mutex_key: String,
    /// `unacked_mutex_expire`, seconds.
    pub unacked_mutex_expire: u64,
    /// `visibility_timeout`: a message unacknowledged this long by a consumer that is gone is
    /// restored.
    pub visibility_timeout: Duration,
    /// `unacked_restore_limit`: the most messages one sweep restores (`None`: all).
    pub unacked_restore_limit: Option<usize>,
    /// `unacked_restore_interval`: how often a consuming connection tries to sweep.
    pub unacked_restore_interval: Duration,
    /// `unacked_restore_throttle`: of those tries, every N-th scans Redis (kombu 5.7: the
    /// sweep period is `unacked_restore_interval * unacked_restore_throttle`; the first try
    /// scans).
    pub unacked_restore_throttle: u64,
    /// `max_connections`: the most Redis connections the process keeps to this server with
    /// these settings (shared by all its connections; at least 3).
    pub max_connections: usize,
    /// `health_check_interval`: PING the shared connections this often (`None`: never).
    pub health_check_interval: Option<Duration>,
    /// `client_name`: CLIENT SETNAME of every connection.
    pub client_name: Option<String>,
    /// `fanout_prefix` with the database number filled in (`/0.`), or empty.
    pub fanout_prefix: String,
    /// `fanout_patterns`: the routing key is part of the fanout channel name.
    pub fanout_patterns: bool,
    /// `global_keyprefix`.
    pub global_keyprefix: String,
    /// `priority_steps`, ascending.
    pub priority_steps: Vec<u8>,
    /// Where undecodable values go: `dead_letter_prefix + queue`.
    pub dead_letter_prefix: String,
    /// `socket_timeout`: the longest a command may take to answer.
    pub socket_timeout: Duration,
    /// `socket_connect_timeout`.
    pub socket_connect_timeout: Duration,
    /// The database number (the URL's virtual host).
    pub db: i64,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            sep: "\x06\x16".into(),
            ack_emulation: true,
            unacked_key: "unacked".into(),
            unacked_index_key: "unacked_index".into(),
            unacked_mutex_key: "unacked_mutex".into(),
            unacked_mutex_expire: 300,
            visibility_timeout: Duration::from_secs(3600),
            unacked_restore_limit: None,
            unacked_restore_interval: Duration::from_secs(10),
            unacked_restore_throttle: 10,
            max_connections: 10,
            health_check_interval: Some(Duration::from_secs(25)),
            client_name: None,
            fanout_prefix: "/0.".into(),
            fanout_patterns: true,
            global_keyprefix: String::new(),
            priority_steps: vec![0, 3, 6, 9],
            dead_letter_prefix: "_kombu.deadletter.".into(),
            socket_timeout: Duration::from_secs(10),
            socket_connect_timeout: Duration::from_secs(5),
            db: 0,
        }
    }
}

fn bad(option: &str, v: &Value, expected: &str) -> Error {
    Error::InvalidTransportOption { option: option.into(), reason: format!("{v} is not {expected}") }
}

fn option_bool(option: &str, v: &Value) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => Ok(n.as_i64() != Some(0)),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(bad(option, v, "a boolean")),
        },
        _ => Err(bad(option, v, "a boolean")),
    }
}

/// A whole number, given as a number or a string (URL query options are strings).
fn whole(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn option_str(option: &str, v: &Value) -> Result<String> {
    v.as_str().map(str::to_owned).ok_or_else(|| bad(option, v, "a string"))
}

impl RedisOptions {
    /// The options in `info`: the database from the virtual host, then the transport options.
    /// Errors name the option and what it accepts.
    pub fn from_connect_info(info: &ConnectInfo) -> Result<RedisOptions> {
        let mut o = RedisOptions { db: database(info)?, ..RedisOptions::default() };
        let opts = &info.options;
        let mut fanout_prefix: Option<String> = Some("/{db}.".into());
        for (k, v) in opts {
            match k.as_str() {
                "sep" => o.sep = option_str(k, v)?,
                "ack_emulation" => o.ack_emulation = option_bool(k, v)?,
                "unacked_key" => o.unacked_key = option_str(k, v)?,
                "unacked_index_key" => o.unacked_index_key = option_str(k, v)?,
                "unacked_mutex_key" => o.unacked_mutex_key = option_str(k, v)?,
                "unacked_mutex_expire" => o.unacked_mutex_expire = v.as_u64().filter(|n| *n > 0).ok_or_else(|| bad(k, v, "a positive number of seconds"))?,
                "visibility_timeout" => o.visibility_timeout = seconds_option(k, v)?,
                "unacked_restore_limit" => {
                    o.unacked_restore_limit = match v {
                        Value::Null => None,
                        _ => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| bad(k, v, "a positive number of messages"))? as usize),
                    }
                }
                "unacked_restore_interval" => o.unacked_restore_interval = seconds_option(k, v)?,
                // 0 scans on every try, as 1 (as Kombu).
                "unacked_restore_throttle" => o.unacked_restore_throttle = whole(v).ok_or_else(|| bad(k, v, "a whole number (every N-th try scans)"))?.max(1),
                "max_connections" => {
                    o.max_connections = whole(v).filter(|n| (3..=100_000).contains(n)).ok_or_else(|| {
                        bad(k, v, "a whole number from 3 (a process keeps up to 3 shared connections: commands, binding tables, waits and fanout)")
                    })? as usize
                }
                "health_check_interval" => {
                    let d = seconds_option(k, v)?;
                    o.health_check_interval = (!d.is_zero()).then_some(d);
                }
                "client_name" => {
                    let n = option_str(k, v)?;
                    if n.is_empty() || n.chars().any(|c| c.is_whitespace() || c.is_control()) {
                        return Err(bad(k, v, "a name without spaces (Redis's CLIENT SETNAME)"));
                    }
                    o.client_name = Some(n);
                }
                "fanout_prefix" => {
                    fanout_prefix = match v {
                        Value::String(s) => Some(s.clone()),
                        other if option_bool(k, other)? => Some("/{db}.".into()),
                        _ => None,
                    }
                }
                "fanout_patterns" => o.fanout_patterns = option_bool(k, v)?,
                "global_keyprefix" => o.global_keyprefix = option_str(k, v)?,
                "dead_letter_prefix" => o.dead_letter_prefix = option_str(k, v)?,
                "priority_steps" => o.priority_steps = priority_steps(k, v)?,
                "socket_timeout" => o.socket_timeout = seconds_option(k, v)?,
                "socket_connect_timeout" => o.socket_connect_timeout = seconds_option(k, v)?,
                _ => {}
            }
        }
        if let Some(t) = info.connect_timeout {
            o.socket_connect_timeout = Duration::from_secs_f64(t.max(0.0));
        }
        o.fanout_prefix = fanout_prefix.map(|p| p.replace("{db}", &o.db.to_string())).unwrap_or_default();
        Ok(o)
    }

    /// The list of `queue` for messages of priority `priority` (Kombu's `_q_for_pri`):
    /// the highest step not above it (clamped to 0-9); step 0 is the queue itself.
    pub fn bucket(&self, queue: &str, priority: u8) -> String {
        let p = priority.min(9);
        let step = self.priority_steps.iter().copied().filter(|s| *s <= p).max().unwrap_or(0);
        self.step_key(queue, step)
    }

    /// The list of `queue` for priority step `step`.
    pub fn step_key(&self, queue: &str, step: u8) -> String {
        if step == 0 {
            queue.to_owned()
        } else {
            format!("{queue}{}{step}", self.sep)
        }
    }
}

fn priority_steps(option: &str, v: &Value) -> Result<Vec<u8>> {
    let Value::Array(items) = v else { return Err(bad(option, v, "a list of priorities from 0 to 9")) };
    let mut steps = Vec::with_capacity(items.len());
    for i in items {
        steps.push(i.as_u64().filter(|n| *n <= 9).ok_or_else(|| bad(option, v, "a list of priorities from 0 to 9"))? as u8);
    }
    steps.sort_unstable();
    steps.dedup();
    if steps.is_empty() {
        return Err(bad(option, v, "a non-empty list of priorities from 0 to 9"));
    }
    Ok(steps)
}

/// The database number: the URL's virtual host (`redis://h/2`), or `db`/`virtual_host` in the
/// query for a Unix socket (`redis+socket:///tmp/r.sock?virtual_host=2`).
fn database(info: &ConnectInfo) -> Result<i64> {
    let from_path = !info.transport.contains("socket");
    let raw = if from_path { Some(info.virtual_host.clone()) } else { None }
        .or_else(|| info.options.get("virtual_host").or_else(|| info.options.get("db")).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        .unwrap_or_default();
    let raw = raw.trim_start_matches('/');
    if raw.is_empty() {
        return Ok(0);
    }
    raw.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| Error::InvalidUrl {
        url: format!("{}://{}/{raw}", info.transport, info.hostname),
        reason: format!("the database (the URL's path) must be a number from 0, not {raw:?}"),
    })
}

#[async_trait::async_trait]
impl Transport for RedisTransport {
    fn driver_name(&self) -> &'static str {
        "redis"
    }
    fn default_port(&self) -> Option<u16> {
        Some(6379)
    }
    fn implements(&self) -> Implements {
        Implements { asynchronous: true, exchange_types: vec![ExchangeType::Direct, ExchangeType::Topic, ExchangeType::Fanout], heartbeats: false }
    }

    async fn establish_connection(&self, info: &ConnectInfo) -> Result<Arc<dyn RawConnection>> {
        let options = RedisOptions::from_connect_info(info)?;
        let virt = VirtualOptions::from_connect_info(info)?;
        let store = RedisStore::connect(info, options).await?;
        Ok(Arc::new(VirtualConnection::new(Arc::new(store), virt)))
    }
}

/// For the gateway: a client's connection to the Redis behind it. Redis has no virtual hosts
/// (the broker URL's path is a database number), so the client's virtual host, which its
/// permissions were checked against, becomes a key prefix instead: `/` (or none) uses the
/// broker's keys as they are, where Python kombu and Celery see them; `/shop` puts every key
/// under `shop.` (after the broker's own `global_keyprefix`), apart from other virtual hosts.
pub fn scope_to_vhost(client: &mut ConnectInfo, broker: &ConnectInfo) {
    let vhost = client.virtual_host.trim_start_matches('/').to_owned();
    client.virtual_host = broker.virtual_host.clone();
    if !vhost.is_empty() {
        let base = broker.options.get("global_keyprefix").and_then(Value::as_str).unwrap_or_default();
        client.options.insert("global_keyprefix".into(), Value::from(format!("{base}{vhost}.")));
    }
}

/// Register the Redis transport under `redis`, `rediss`, `redis+socket` and `sentinel`.
pub fn register() {
    for scheme in ["redis", "rediss", "redis+socket", "sentinel"] {
        kombu::transport::registry::register(scheme, Arc::new(RedisTransport));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(url_path: &str, opts: &[(&str, Value)]) -> ConnectInfo {
        ConnectInfo {
            transport: "redis".into(),
            hostname: "h".into(),
            virtual_host: url_path.into(),
            options: opts.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_kombus() {
        let o = RedisOptions::from_connect_info(&info("/", &[])).unwrap();
        assert_eq!((o.sep.as_str(), o.db, o.fanout_prefix.as_str()), ("\x06\x16", 0, "/0."));
        assert_eq!(o.priority_steps, [0, 3, 6, 9]);
        assert_eq!(o.visibility_timeout, Duration::from_secs(3600));
    }

    #[test]
    fn priority_buckets_are_kombus() {
        let o = RedisOptions::default();
        assert_eq!(o.bucket("q", 0), "q");
        assert_eq!(o.bucket("q", 2), "q");
        assert_eq!(o.bucket("q", 3), "q\x06\x163");
        assert_eq!(o.bucket("q", 8), "q\x06\x166");
        assert_eq!(o.bucket("q", 200), "q\x06\x169");
    }

    #[test]
    fn the_database_is_the_path_and_the_fanout_prefix_names_it() {
        let o = RedisOptions::from_connect_info(&info("2", &[])).unwrap();
        assert_eq!((o.db, o.fanout_prefix.as_str()), (2, "/2."));
        let o = RedisOptions::from_connect_info(&info("/", &[("fanout_prefix", Value::Bool(false))])).unwrap();
        assert_eq!(o.fanout_prefix, "");
        let e = RedisOptions::from_connect_info(&info("abc", &[])).unwrap_err();
        assert!(e.to_string().contains("must be a number"), "{e}");
    }

    #[test]
    fn a_gateway_clients_vhost_is_a_key_prefix_on_the_brokers_database() {
        let broker = info("3", &[("global_keyprefix", Value::from("app."))]);
        let mut client = ConnectInfo { virtual_host: "/".into(), ..broker.clone() };
        scope_to_vhost(&mut client, &broker);
        assert_eq!((client.virtual_host.as_str(), client.options.get("global_keyprefix")), ("3", Some(&Value::from("app."))));
        let mut client = ConnectInfo { virtual_host: "/shop".into(), ..broker.clone() };
        scope_to_vhost(&mut client, &broker);
        assert_eq!((client.virtual_host.as_str(), client.options.get("global_keyprefix")), ("3", Some(&Value::from("app.shop."))));
    }

    #[test]
    fn pool_and_sweep_options_are_kombus() {
        let o = RedisOptions::from_connect_info(&info("/", &[])).unwrap();
        assert_eq!((o.unacked_restore_throttle, o.max_connections, o.health_check_interval, o.client_name), (10, 10, Some(Duration::from_secs(25)), None));
        // URL query options arrive as strings; 0 turns health checks off; a throttle of 0 is 1 (as Kombu).
        let o = RedisOptions::from_connect_info(&info("/", &[("max_connections", Value::from("50")), ("health_check_interval", Value::from("0")), ("unacked_restore_throttle", Value::from(0)), ("client_name", Value::from("web-1"))])).unwrap();
        assert_eq!((o.unacked_restore_throttle, o.max_connections, o.health_check_interval, o.client_name.as_deref()), (1, 50, None, Some("web-1")));
        for (k, v) in [("max_connections", Value::from(2)), ("max_connections", Value::from("many")), ("unacked_restore_throttle", Value::from(-1)), ("client_name", Value::from("a b")), ("client_name", Value::from(""))] {
            let e = RedisOptions::from_connect_info(&info("/", &[(k, v)])).unwrap_err();
            assert!(matches!(&e, Error::InvalidTransportOption { option, .. } if option == k), "{k}: {e}");
        }
    }

    #[test]
    fn bad_option_values_are_named() {
        let e = RedisOptions::from_connect_info(&info("/", &[("visibility_timeout", Value::from("soon"))])).unwrap_err();
        assert!(matches!(&e, Error::InvalidTransportOption { option, .. } if option == "visibility_timeout"), "{e}");
        let e = RedisOptions::from_connect_info(&info("/", &[("priority_steps", serde_json::json!([0, 12]))])).unwrap_err();
        assert!(e.to_string().contains("priority_steps"), "{e}");
    }
}
