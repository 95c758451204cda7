//! The Redis store: Kombu's storage hooks over redis-rs, with Kombu's key layout (see the
//! module documentation of [`super`]).
//!
//! Connections: the process's shared [`Link`] to the server (bounded by `max_connections`,
//! see [`super::link`]). A task per store applies the settles in batches (one pipeline per
//! batch) and keeps the visibility of the messages this store still holds.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use kombu::envelope::Envelope;
use kombu::routing::{RouteKind, Router};
use kombu::proto::methods::{Name, QueueDeclare};
use kombu::transport::virtual_channel::{mark_redelivered, BindingRow, FanoutListen, Fetch, Fetched, Outgoing, Settle, Store};
use kombu::transport::ConnectInfo;
use kombu::value::{Headers, Value};
use kombu::{Error, ReplyCode, Result};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, RedisError};
use tokio::sync::{mpsc, oneshot, Notify};

use super::link::{FanoutSink, Link, Slot};
use super::scripts::Scripts;
use super::RedisOptions;

/// Process-wide counters of the Redis stores, for `/metrics`.
#[derive(Debug, Default)]
pub struct StoreCounters {
    /// Messages put back in their queue by a channel or connection closing, `basic.recover`,
    /// or a visibility sweep.
    pub restored: AtomicU64,
    /// Of those, restored by a sweep because their consumer went away.
    pub swept: AtomicU64,
    /// Messages requeued by `basic.reject(requeue=True)` / `basic.nack`.
    pub requeued: AtomicU64,
    /// Deliveries of messages marked `redelivered`.
    pub redelivered: AtomicU64,
    /// Values moved to a dead-letter list because they are not Kombu messages.
    pub dead_lettered: AtomicU64,
    /// Settles that Redis did not take (the messages come back after the visibility timeout).
    pub settle_failures: AtomicU64,
}

impl StoreCounters {
    /// The counters of every Redis store of the process.
    pub fn global() -> &'static StoreCounters {
        static C: std::sync::OnceLock<StoreCounters> = std::sync::OnceLock::new();
        C.get_or_init(StoreCounters::default)
    }
}

impl StoreCounters {
    /// Prometheus text exposition of the counters.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (name, help, v) in [
            ("kombu_gateway_broker_restored_total", "Unacknowledged messages put back in their queue (close, recover, visibility sweep).", &self.restored),
            ("kombu_gateway_broker_swept_total", "Of those, restored by the visibility sweep (their consumer went away).", &self.swept),
            ("kombu_gateway_broker_requeued_total", "Messages requeued by reject or nack.", &self.requeued),
            ("kombu_gateway_broker_redelivered_total", "Deliveries of messages marked redelivered.", &self.redelivered),
            ("kombu_gateway_broker_dead_lettered_total", "Stored values moved to a dead-letter list (not Kombu messages).", &self.dead_lettered),
            ("kombu_gateway_broker_settle_failures_total", "Acks and rejects Redis did not take.", &self.settle_failures),
        ] {
            s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n", v.load(Ordering::Relaxed)));
        }
        s
    }
}

fn counters() -> &'static StoreCounters {
    StoreCounters::global()
}

/// A Redis error as the Kombu API's: the connection is gone (reconnect), or Redis refused
/// the command (named).
pub(super) fn redis_err(e: RedisError) -> Error {
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() || e.is_unrecoverable_error() {
        Error::RecoverableConnection(format!("Redis: {e}"))
    } else {
        Error::channel(ReplyCode::InternalError, format!("Redis refused the command: {e}"))
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// A settle on its way to Redis.
enum Op {
    Settle(Fetched, Settle),
    Flush(oneshot::Sender<Result<()>>),
}

/// A fanout subscription and the messages received for it.
struct Listen {
    queue: Name,
    buffer: VecDeque<Bytes>,
    last_fetch: Instant,
}

/// Most messages kept for one fanout listener that does not fetch (the oldest are dropped,
/// with a warning, as a slow pub/sub subscriber is dropped by Redis itself).
const FANOUT_BUFFER: usize = 10_000;

#[derive(Default)]
struct Fanout {
    /// pattern → listeners
    listens: HashMap<String, Vec<Listen>>,
    /// Before Redis 6: this store's own pub/sub connection (else the link's watcher).
    sink: Option<(Arc<tokio::sync::Mutex<redis::aio::PubSubSink>>, Arc<Slot>)>,
}

pub(super) struct Inner {
    opts: RedisOptions,
    /// The shared connections.
    link: Arc<Link>,
    /// `link.cmd`.
    cmd: MultiplexedConnection,
    /// The binding tables' connection: RESP3 with client-side caching where the server
    /// tracks keys (Redis 6+), so that the table read on every publish is local until Redis
    /// says it changed. Table writes go through it too, so their invalidation reaches its
    /// cache before they return.
    tables: MultiplexedConnection,
    tables_cached: bool,
    scripts: Scripts,
    /// `x-expires` (ms) of queues declared here.
    expires: Mutex<HashMap<String, u64>>,
    /// Exchanges this store bound queues to (their table vanishing is an inconsistency).
    bound: Mutex<HashSet<String>>,
    /// Messages fetched and not yet settled or restored: token → message.
    outstanding: Mutex<HashMap<String, Fetched>>,
    ops: mpsc::UnboundedSender<Op>,
    /// A settle batch that failed, reported by the next call.
    failed: Mutex<Option<Error>>,
    last_sweep: Mutex<Option<Instant>>,
    /// Sweep tries so far (`unacked_restore_throttle`: every N-th scans).
    sweep_tries: AtomicU64,
    fanout: Mutex<Fanout>,
    fanout_ready: Notify,
    /// Held while subscribing, so that one pub/sub connection is made.
    subscribing: tokio::sync::Mutex<()>,
}

/// Kombu's Redis storage hooks for one connection.
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("db", &self.inner.opts.db).finish_non_exhaustive()
    }
}

/// Where to connect: the address (sentinel: the master it names, asked again on every
/// connect) and the TLS material.
async fn connection_client(info: &ConnectInfo, opts: &RedisOptions) -> Result<Client> {
    let sock = info.transport.contains("socket");
    let host = info.hostname.clone();
    let port = info.port.unwrap_or(if info.transport == "sentinel" { 26379 } else { 6379 });
    let verify = match info.options.get("ssl_cert_reqs").and_then(Value::as_str).map(str::to_ascii_lowercase) {
        None => true,
        Some(s) if matches!(s.as_str(), "required" | "cert_required" | "ssl.cert_required" | "optional" | "cert_optional") => true,
        Some(s) if matches!(s.as_str(), "none" | "cert_none" | "ssl.cert_none") => false,
        Some(s) => return Err(Error::InvalidTransportOption { option: "ssl_cert_reqs".into(), reason: format!("{s:?} is not one of required, optional, none") }),
    };
    let (host, port) = if info.transport == "sentinel" { sentinel_master(info, &host, port, opts).await? } else { (host, port) };
    let addr = if sock {
        let path = info.path.clone().filter(|p| !p.is_empty()).ok_or_else(|| Error::InvalidUrl {
            url: format!("{}://", info.transport),
            reason: "a Unix socket URL needs the socket's path (redis+socket:///run/redis.sock)".into(),
        })?;
        ConnectionAddr::Unix(path.into())
    } else if info.ssl {
        ConnectionAddr::TcpTls { host, port, insecure: !verify, tls_params: None }
    } else {
        ConnectionAddr::Tcp(host, port)
    };
    let mut redis_info = RedisConnectionInfo::default().set_db(opts.db);
    if let Some(u) = &info.userid {
        redis_info = redis_info.set_username(u);
    }
    if let Some(p) = &info.password {
        redis_info = redis_info.set_password(p);
    }
    let conn_info = addr.into_connection_info().map_err(redis_err)?.set_redis_settings(redis_info);
    if info.ssl {
        let read = |name: &str| -> Result<Option<Vec<u8>>> {
            match info.options.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(path) => std::fs::read(path).map(Some).map_err(|e| Error::InvalidTransportOption { option: name.into(), reason: format!("cannot read {path}: {e}") }),
            }
        };
        let root_cert = read("ssl_ca_certs")?;
        let client_tls = match (read("ssl_certfile")?, read("ssl_keyfile")?) {
            (Some(client_cert), Some(client_key)) => Some(redis::ClientTlsConfig { client_cert, client_key }),
            (None, None) => None,
            _ => return Err(Error::InvalidTransportOption { option: "ssl_certfile".into(), reason: "ssl_certfile and ssl_keyfile go together".into() }),
        };
        Client::build_with_tls(conn_info, redis::TlsCertificates { client_tls, root_cert }).map_err(redis_err)
    } else {
        Client::open(conn_info).map_err(redis_err)
    }
}

/// Ask the sentinel at `host:port` where the master `master_name` is now.
async fn sentinel_master(info: &ConnectInfo, host: &str, port: u16, opts: &RedisOptions) -> Result<(String, u16)> {
    let name = info.options.get("master_name").and_then(Value::as_str).ok_or_else(|| Error::InvalidTransportOption {
        option: "master_name".into(),
        reason: "sentinel:// needs the transport option master_name (the monitored master's name)".into(),
    })?;
    let client = Client::open(ConnectionAddr::Tcp(host.to_owned(), port)).map_err(redis_err)?;
    let config = AsyncConnectionConfig::new().set_connection_timeout(Some(opts.socket_connect_timeout)).set_response_timeout(Some(opts.socket_timeout));
    let mut c = client.get_multiplexed_async_connection_with_config(&config).await.map_err(redis_err)?;
    let addr: Option<(String, u16)> = redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(name).query_async(&mut c).await.map_err(redis_err)?;
    addr.ok_or_else(|| Error::RecoverableConnection(format!("the sentinel at {host}:{port} knows no master named {name:?}")))
}

impl RedisStore {
    /// Connect to the Redis server `info` names (or the master its sentinel names).
    pub async fn connect(info: &ConnectInfo, opts: RedisOptions) -> Result<RedisStore> {
        // rustls is built without a default crypto provider: the process gets ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = connection_client(info, &opts).await?;
        let ssl_key: String = ["ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile"].iter().map(|k| format!("{:?};", info.options.get(*k))).collect();
        let link = Link::get(client, ssl_key, &opts).await?;
        let (ops, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            opts,
            cmd: link.cmd.clone(),
            tables: link.tables.clone(),
            tables_cached: link.tables_cached,
            link,
            scripts: Scripts::new(),
            expires: Mutex::new(HashMap::new()),
            bound: Mutex::new(HashSet::new()),
            outstanding: Mutex::new(HashMap::new()),
            ops,
            failed: Mutex::new(None),
            last_sweep: Mutex::new(None),
            sweep_tries: AtomicU64::new(0),
            fanout: Mutex::new(Fanout::default()),
            fanout_ready: Notify::new(),
            subscribing: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(settle_loop(Arc::downgrade(&inner), inner.cmd.clone(), rx));
        Ok(RedisStore { inner })
    }

    /// The options in use.
    pub fn options(&self) -> &RedisOptions {
        &self.inner.opts
    }
}

impl Inner {
    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.opts.global_keyprefix)
    }

    fn table_key(&self, exchange: &str) -> String {
        self.key(&format!("_kombu.binding.{exchange}"))
    }

    fn permanent_key(&self, exchange: &str) -> String {
        self.key(&format!("_kombu.binding_permanent.{exchange}"))
    }

    fn step_keys(&self, queue: &str) -> Vec<String> {
        self.opts.priority_steps.iter().map(|s| self.key(&self.opts.step_key(queue, *s))).collect()
    }

    fn row_member(&self, row: &BindingRow) -> String {
        let sep = &self.opts.sep;
        format!("{}{sep}{}{sep}{}", row.routing_key, row.pattern, row.queue)
    }

    /// The pub/sub channel of a fanout exchange and routing key (Kombu's
    /// `_get_publish_topic`), also the pattern a listener subscribes with.
    fn fanout_topic(&self, exchange: &str, routing_key: &str) -> String {
        if !routing_key.is_empty() && self.opts.fanout_patterns {
            self.key(&format!("{}{exchange}/{routing_key}", self.opts.fanout_prefix))
        } else {
            self.key(&format!("{}{exchange}", self.opts.fanout_prefix))
        }
    }

    fn take_failure(&self) -> Result<()> {
        match lock(&self.failed).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn queue_expires(&self, queue: &str) -> Option<u64> {
        lock(&self.expires).get(queue).copied()
    }

    /// The queues a message published to `exchange` with `routing_key` reaches now, by the
    /// binding table (for restoring a message whose queue was not recorded): topic rows
    /// carry a pattern, other rows route as direct.
    async fn lookup(&self, exchange: &str, routing_key: &str) -> Result<Vec<String>> {
        lookup_on(&self.tables, self.tables_cached, &self.opts, exchange, routing_key).await
    }

    /// The lists a message taken from `m.queue` goes back to when restored or requeued.
    async fn restore_keys(&self, m: &Fetched) -> Result<Vec<String>> {
        restore_keys_on(&self.tables, self.tables_cached, &self.opts, &m.queue, &m.payload).await
    }

    /// Restore messages left unacknowledged longer than the visibility timeout by consumers
    /// that are gone (Kombu's `restore_visible`), under the `unacked_mutex` lock.
    async fn sweep(&self) -> Result<usize> {
        let mut c = self.cmd.clone();
        let mutex = self.key(&self.opts.unacked_mutex_key);
        let token = kombu::uuid();
        let got: Option<String> = redis::cmd("SET").arg(&mutex).arg(&token).arg("NX").arg("EX").arg(self.opts.unacked_mutex_expire).query_async(&mut c).await.map_err(redis_err)?;
        if got.is_none() {
            return Ok(0);
        }
        let result = self.sweep_locked(&mut c).await;
        let _: i64 = self.scripts.unlock.key(&mutex).arg(&token).invoke_async(&mut c).await.map_err(redis_err)?;
        result
    }

    async fn sweep_locked(&self, c: &mut MultiplexedConnection) -> Result<usize> {
        let ceil = unix_now() - self.opts.visibility_timeout.as_secs_f64();
        let index = self.key(&self.opts.unacked_index_key);
        let unacked = self.key(&self.opts.unacked_key);
        let mut q = redis::cmd("ZRANGE");
        q.arg(&index).arg("-inf").arg(ceil).arg("BYSCORE");
        if let Some(n) = self.opts.unacked_restore_limit {
            q.arg("LIMIT").arg(0).arg(n);
        }
        let tags: Vec<String> = q.query_async(c).await.map_err(redis_err)?;
        let mut restored = 0;
        for tag in tags {
            if lock(&self.outstanding).contains_key(&tag) {
                continue; // ours, and still being worked on
            }
            let record: Option<String> = redis::cmd("HGET").arg(&unacked).arg(&tag).query_async(c).await.map_err(redis_err)?;
            let Some(record) = record else {
                let _: i64 = redis::cmd("ZREM").arg(&index).arg(&tag).query_async(c).await.map_err(redis_err)?;
                continue;
            };
            let (payload, priority, exchange, routing_key) = match parse_record(&record) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(tag, error = %e, "an unacked record is not Kombu's [message, exchange, routing_key]; moved aside");
                    let dead = self.key(&format!("{}unacked", self.opts.dead_letter_prefix));
                    let _: i64 = self.scripts.restore.key(&unacked).key(&index).key(dead).arg(&tag).arg(&record).arg("1").arg("1").invoke_async(c).await.map_err(redis_err)?;
                    counters().dead_lettered.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let queues = self.lookup(&exchange, &routing_key).await?;
            let mut inv = self.scripts.restore.prepare_invoke();
            inv.key(&unacked).key(&index);
            if queues.is_empty() {
                tracing::error!(tag, exchange, routing_key, "a message to restore routes to no queue now; moved to the dead-letter list");
                inv.key(self.key(&format!("{}unroutable", self.opts.dead_letter_prefix)));
            }
            for queue in &queues {
                inv.key(self.key(&self.opts.bucket(queue, priority)));
            }
            inv.arg(&tag).arg(&payload).arg("0").arg("1");
            let done: i64 = inv.invoke_async(c).await.map_err(redis_err)?;
            restored += done as usize;
        }
        if restored > 0 {
            tracing::warn!(restored, "restored messages unacknowledged for longer than the visibility timeout ({} s)", self.opts.visibility_timeout.as_secs_f64());
            counters().restored.fetch_add(restored as u64, Ordering::Relaxed);
            counters().swept.fetch_add(restored as u64, Ordering::Relaxed);
        }
        Ok(restored)
    }

    async fn maybe_sweep(&self) {
        if !self.opts.ack_emulation {
            return;
        }
        {
            let mut last = lock(&self.last_sweep);
            if last.is_some_and(|t| t.elapsed() < self.opts.unacked_restore_interval) {
                return;
            }
            *last = Some(Instant::now());
        }
        // kombu 5.7's restore_visible: the first try and every N-th after it scan.
        if self.sweep_tries.fetch_add(1, Ordering::Relaxed) % self.opts.unacked_restore_throttle != 0 {
            return;
        }
        if let Err(e) = self.sweep().await {
            tracing::warn!(error = %e, "the visibility sweep failed; it runs again later");
        }
    }

    /// Pop up to `max` messages atomically into the unacked records.
    async fn pop(&self, fetch: &Fetch, max: usize) -> Result<Vec<Fetched>> {
        let nq = fetch.queues.len();
        let steps = &self.opts.priority_steps;
        let mut inv = self.scripts.fetch.prepare_invoke();
        inv.key(self.key(&self.opts.unacked_key)).key(self.key(&self.opts.unacked_index_key));
        for s in steps {
            for q in &fetch.queues {
                inv.key(self.key(&self.opts.step_key(q, *s)));
            }
        }
        for q in &fetch.queues {
            inv.key(self.key(&format!("{}{q}", self.opts.dead_letter_prefix)));
        }
        inv.arg(max).arg(nq).arg(steps.len()).arg(if self.opts.ack_emulation { "1" } else { "0" }).arg(if fetch.round_robin { "1" } else { "0" });
        for q in &fetch.queues {
            inv.arg(self.queue_expires(q).unwrap_or(0));
        }
        let mut c = self.cmd.clone();
        let (got, dead): (Vec<redis::Value>, Vec<redis::Value>) = inv.invoke_async(&mut c).await.map_err(redis_err)?;
        for pair in dead.chunks(2) {
            let q = pair.first().and_then(|v| redis::from_redis_value_ref::<usize>(v).ok()).and_then(|i| fetch.queues.get(i.wrapping_sub(1)));
            let why: String = pair.get(1).and_then(|v| redis::from_redis_value_ref(v).ok()).unwrap_or_default();
            let q = q.map_or("?", |q| &**q);
            counters().dead_lettered.fetch_add(1, Ordering::Relaxed);
            tracing::error!(queue = q, reason = why, "a value in the queue is not a Kombu message ({why}); moved to the list {}{q}", self.opts.dead_letter_prefix);
        }
        let mut out = Vec::with_capacity(got.len() / 2);
        for pair in got.chunks(2) {
            let [i, msg] = pair else { continue };
            let (Ok(i), Ok(payload)) = (redis::from_redis_value_ref::<usize>(i), redis::from_redis_value_ref::<Vec<u8>>(msg)) else {
                return Err(Error::Decode("the fetch script answered in an unexpected shape".into()));
            };
            let Some(queue) = fetch.queues.get(i.wrapping_sub(1)) else { continue };
            let token = Envelope::from_json(&payload).ok().and_then(|e| e.delivery_tag().map(str::to_owned)).unwrap_or_default();
            out.push(Fetched { queue: queue.clone(), token, payload: Bytes::from(payload), broadcast: false, extra: None });
        }
        if self.opts.ack_emulation {
            let mut o = lock(&self.outstanding);
            for m in &out {
                o.insert(m.token.clone(), m.clone());
            }
        }
        Ok(out)
    }

    /// Wait up to `d` for something to fetch, raced with the fanout listeners. On Redis 6+
    /// the link's watcher waits on every list of the fetch at once and is woken by Redis's
    /// push when one changes (see [`super::link`]); before, a non-destructive blocking wait
    /// on the first list (BLMOVE of a list onto itself), at most `POLL` with several lists.
    async fn wait(&self, fetch: &Fetch, d: Duration) -> Result<()> {
        const POLL: Duration = Duration::from_millis(100);
        let notified = self.fanout_ready.notified();
        if fetch.queues.is_empty() {
            let _ = tokio::time::timeout(d, notified).await;
            return Ok(());
        }
        if let Some(w) = &self.link.watcher {
            let keys: Vec<String> = fetch.queues.iter().flat_map(|q| self.step_keys(q)).collect();
            return w.wait(&keys, d, notified).await;
        }
        let lists = fetch.queues.len() * self.opts.priority_steps.len();
        let d = if lists > 1 { d.min(POLL) } else { d };
        let first = self.key(&fetch.queues[0]);
        let Some((mut conn, slot)) = self.link.blocking_conn().await? else {
            // Every connection of the budget is in use: poll.
            let _ = tokio::time::timeout(d.min(POLL), notified).await;
            return Ok(());
        };
        conn.set_response_timeout(d + self.opts.socket_timeout);
        let mut blmove = redis::cmd("BLMOVE");
        blmove.arg(&first).arg(&first).arg("RIGHT").arg("RIGHT").arg(d.as_secs_f64().max(0.001));
        let wait = blmove.query_async::<Option<Vec<u8>>>(&mut conn);
        tokio::select! {
            r = wait => {
                r.map_err(redis_err)?;
                self.link.give_back((conn, slot));
            }
            // The blocking connection is dropped: its answer is still on the way.
            _ = notified => {}
        }
        Ok(())
    }

    /// A fanout message for the listeners of `pattern`.
    fn deliver_fanout(&self, pattern: &str, payload: Bytes) {
        let mut f = lock(&self.fanout);
        if let Some(listens) = f.listens.get_mut(pattern) {
            // A listener whose consumer went away (no fetch for a minute, its buffer
            // full) is forgotten, as Redis forgets a subscriber that is gone.
            listens.retain(|l| {
                let gone = l.buffer.len() >= FANOUT_BUFFER && l.last_fetch.elapsed() > Duration::from_secs(60);
                if gone {
                    tracing::warn!(queue = %l.queue, dropped = l.buffer.len(), "a fanout listener stopped fetching: forgotten with its messages");
                }
                !gone
            });
            for l in listens.iter_mut() {
                if l.buffer.len() >= FANOUT_BUFFER {
                    l.buffer.pop_front();
                }
                l.buffer.push_back(payload.clone());
            }
        }
        drop(f);
        self.fanout_ready.notify_waiters();
    }

    /// Subscribe to the fanout patterns of `fetch` not subscribed yet; take their messages.
    async fn fanout_take(self: &Arc<Inner>, fetch: &Fetch, max: usize) -> Result<Vec<Fetched>> {
        if fetch.fanout.is_empty() {
            return Ok(Vec::new());
        }
        let mut new_patterns = Vec::new();
        let mut out = Vec::new();
        let sink = {
            let mut f = lock(&self.fanout);
            for l in &fetch.fanout {
                let pattern = self.fanout_topic(&l.exchange, &l.routing_key);
                let listens = f.listens.entry(pattern.clone()).or_default();
                if listens.is_empty() {
                    new_patterns.push(pattern.clone());
                }
                match listens.iter_mut().find(|x| x.queue == l.queue) {
                    Some(x) => {
                        x.last_fetch = Instant::now();
                        while out.len() < max {
                            let Some(p) = x.buffer.pop_front() else { break };
                            out.push(Fetched { queue: l.queue.clone(), token: String::new(), payload: p, broadcast: true, extra: None });
                        }
                    }
                    None => listens.push(Listen { queue: l.queue.clone(), buffer: VecDeque::new(), last_fetch: Instant::now() }),
                }
            }
            f.sink.as_ref().map(|(s, _)| s.clone())
        };
        if new_patterns.is_empty() {
            return Ok(out);
        }
        if let Some(w) = &self.link.watcher {
            let me: Weak<dyn FanoutSink> = Arc::downgrade(self) as Weak<dyn FanoutSink>;
            for p in new_patterns {
                w.subscribe(&p, me.clone()).await?;
            }
        } else {
            let _one_at_a_time = self.subscribing.lock().await;
            let sink = match sink.or_else(|| lock(&self.fanout).sink.as_ref().map(|(s, _)| s.clone())) {
                Some(s) => s,
                None => self.start_pubsub().await?,
            };
            let mut s = sink.lock().await;
            for p in new_patterns {
                s.psubscribe(&p).await.map_err(redis_err)?;
            }
        }
        Ok(out)
    }

    async fn start_pubsub(self: &Arc<Inner>) -> Result<Arc<tokio::sync::Mutex<redis::aio::PubSubSink>>> {
        let (pubsub, slot) = self.link.pubsub().await?;
        let (sink, mut stream) = pubsub.split();
        let sink = Arc::new(tokio::sync::Mutex::new(sink));
        lock(&self.fanout).sink = Some((sink.clone(), Arc::new(slot)));
        // The reader hands messages to the listeners of their pattern.
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                let Some(inner) = me.upgrade() else { break };
                let pattern: Option<String> = msg.get_pattern().ok();
                let Some(pattern) = pattern else { continue };
                inner.deliver_fanout(&pattern, Bytes::copy_from_slice(msg.get_payload_bytes()));
            }
            // Its listeners would wait forever: the next call fails, the connection is made again.
            if let Some(inner) = me.upgrade() {
                tracing::warn!("the Redis pub/sub connection closed");
                *lock(&inner.failed) = Some(Error::RecoverableConnection("the Redis pub/sub connection closed".into()));
                inner.fanout_ready.notify_waiters();
            }
        });
        Ok(sink)
    }

}

impl FanoutSink for Inner {
    fn on_message(&self, pattern: &str, payload: Bytes) {
        self.deliver_fanout(pattern, payload);
    }

    fn on_failure(&self) {
        self.fanout_ready.notify_waiters();
    }
}

/// `[message, exchange, routing_key]` of an unacked record: the message marked
/// redelivered, its priority, exchange and routing key.
fn parse_record(record: &str) -> Result<(String, u8, String, String)> {
    let v: Value = serde_json::from_str(record).map_err(|e| Error::Decode(format!("unacked record is not JSON: {e}")))?;
    let Value::Array(items) = v else { return Err(Error::Decode("unacked record is not a list".into())) };
    let [m, ex, rk] = items.as_slice() else { return Err(Error::Decode(format!("unacked record has {} items, not 3", items.len()))) };
    let m_text = kombu::serialization::json_dumps(m)?;
    let payload = mark_redelivered(&m_text)?;
    let priority = m.get("properties").and_then(|p| p.get("priority")).and_then(Value::as_u64).unwrap_or(0).min(255) as u8;
    Ok((payload, priority, ex.as_str().unwrap_or_default().to_owned(), rk.as_str().unwrap_or_default().to_owned()))
}

async fn read_table(inner: &Inner, exchange: &str) -> Result<Vec<BindingRow>> {
    read_table_on(&inner.tables, inner.tables_cached, &inner.opts, exchange).await
}

async fn read_table_on(tables: &MultiplexedConnection, cached: bool, opts: &RedisOptions, exchange: &str) -> Result<Vec<BindingRow>> {
    let mut c = tables.clone();
    let mut smembers = redis::cmd("SMEMBERS");
    smembers.arg(format!("{}_kombu.binding.{exchange}", opts.global_keyprefix));
    if cached {
        smembers.set_cache_config(redis::CommandCacheConfig::new().set_enable_cache(true));
    }
    let members: Vec<String> = smembers.query_async(&mut c).await.map_err(redis_err)?;
    let sep = &opts.sep;
    Ok(members
        .into_iter()
        .filter_map(|m| {
            let mut parts = m.splitn(3, sep.as_str());
            Some(BindingRow { routing_key: parts.next()?.to_owned(), pattern: parts.next()?.to_owned(), queue: parts.next()?.to_owned() })
        })
        .collect())
}

/// The queues a message published to `exchange` with `routing_key` reaches now, by the
/// binding table (Kombu's `_lookup`): topic rows carry a pattern, other rows route as direct.
async fn lookup_on(tables: &MultiplexedConnection, cached: bool, opts: &RedisOptions, exchange: &str, routing_key: &str) -> Result<Vec<String>> {
    if exchange.is_empty() {
        return Ok(vec![routing_key.to_owned()]);
    }
    let rows = read_table_on(tables, cached, opts, exchange).await?;
    let kind = if rows.iter().any(|r| !r.pattern.is_empty()) { RouteKind::Topic } else { RouteKind::Direct };
    let mut router: Router<String> = Router::new(kind);
    let none = Headers::new();
    for r in rows {
        router.bind(&r.routing_key, &none, r.queue);
    }
    let mut out = Vec::new();
    router.route(routing_key, &none, &mut out);
    Ok(out)
}

/// The lists (prefixed, priority bucket included) a message taken from `queue` goes back to
/// when it is restored or requeued — Kombu's `_do_restore_message`: through its exchange and
/// routing key (`delivery_info`) and the binding table as it is now, so a queue unbound
/// meanwhile does not get it and every queue bound since does. A message that routes nowhere
/// now goes to the dead-letter list `<dead_letter_prefix>unroutable` (Kombu drops it). A
/// message without an exchange or routing key (not published by Kombu) goes back to `queue`.
async fn restore_keys_on(tables: &MultiplexedConnection, cached: bool, opts: &RedisOptions, queue: &str, payload: &[u8]) -> Result<Vec<String>> {
    let env = Envelope::from_json(payload).ok();
    let priority = env.as_ref().map_or(0, |e| e.priority());
    let (exchange, routing_key) = env.as_ref().map_or((String::new(), String::new()), |e| (e.exchange().to_owned(), e.routing_key().to_owned()));
    let queues = if exchange.is_empty() && routing_key.is_empty() { vec![queue.to_owned()] } else { lookup_on(tables, cached, opts, &exchange, &routing_key).await? };
    if queues.is_empty() {
        tracing::error!(queue, exchange, routing_key, "a message to restore routes to no queue now; moved to the dead-letter list");
        return Ok(vec![format!("{}{}unroutable", opts.global_keyprefix, opts.dead_letter_prefix)]);
    }
    Ok(queues.iter().map(|q| format!("{}{}", opts.global_keyprefix, opts.bucket(q, priority))).collect())
}

/// Apply queued settles in batches, one pipeline per batch; keep the visibility of the
/// messages still held.
async fn settle_loop(me: Weak<Inner>, mut c: MultiplexedConnection, mut rx: mpsc::UnboundedReceiver<Op>) {
    let refresh_every = me.upgrade().map_or(Duration::from_secs(60), |i| (i.opts.visibility_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(300)));
    let mut tick = tokio::time::interval(refresh_every);
    tick.tick().await;
    loop {
        let first = tokio::select! {
            op = rx.recv() => match op { Some(op) => op, None => break },
            _ = tick.tick() => {
                let Some(inner) = me.upgrade() else { break };
                refresh_visibility(&inner, &mut c).await;
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < 1000 {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let Some(inner) = me.upgrade() else { break };
        let result = apply(&inner, &mut c, &batch).await;
        if let Err(e) = &result {
            let n = batch.iter().filter(|o| matches!(o, Op::Settle(..))).count();
            counters().settle_failures.fetch_add(n as u64, Ordering::Relaxed);
            tracing::error!(error = %e, settles = n, "Redis did not take these acks/rejects; the messages come back after the visibility timeout");
            *lock(&inner.failed) = Some(e.clone());
        }
        for op in batch {
            if let Op::Flush(tx) = op {
                let _ = tx.send(result.clone());
            }
        }
    }
}

async fn apply(inner: &Inner, c: &mut MultiplexedConnection, batch: &[Op]) -> Result<()> {
    let mut pipe = redis::pipe();
    let unacked = inner.key(&inner.opts.unacked_key);
    let index = inner.key(&inner.opts.unacked_index_key);
    let guard = if inner.opts.ack_emulation { "1" } else { "0" };
    let mut any = false;
    for op in batch {
        let Op::Settle(m, how) = op else { continue };
        lock(&inner.outstanding).remove(&m.token);
        let (targets, payload) = match how {
            Settle::Ack | Settle::Reject => {
                if inner.opts.ack_emulation {
                    pipe.cmd("ZREM").arg(&index).arg(&m.token).ignore();
                    pipe.cmd("HDEL").arg(&unacked).arg(&m.token).ignore();
                    any = true;
                }
                continue;
            }
            Settle::Requeue => {
                counters().requeued.fetch_add(1, Ordering::Relaxed);
                (inner.restore_keys(m).await?, mark_redelivered(&m.payload)?)
            }
            Settle::DeadLetter(reason) => {
                counters().dead_lettered.fetch_add(1, Ordering::Relaxed);
                let key = inner.key(&format!("{}{}", inner.opts.dead_letter_prefix, m.queue));
                tracing::error!(queue = %m.queue, reason, "a message could not be decoded; moved to the list {key}");
                (vec![key], String::from_utf8_lossy(&m.payload).into_owned())
            }
        };
        pipe.cmd("EVALSHA").arg(inner.scripts.restore.get_hash()).arg(2 + targets.len()).arg(&unacked).arg(&index).arg(&targets).arg(&m.token).arg(&payload).arg("1").arg(guard).ignore();
        any = true;
    }
    if any {
        pipe.query_async::<()>(c).await.map_err(redis_err)?;
    }
    Ok(())
}

/// Raise the `unacked_index` score of the messages this store still holds, so that no
/// sweep (ours or Python kombu's) restores them while they are being worked on.
async fn refresh_visibility(inner: &Inner, c: &mut MultiplexedConnection) {
    if !inner.opts.ack_emulation {
        return;
    }
    let tags: Vec<String> = lock(&inner.outstanding).keys().cloned().collect();
    if tags.is_empty() {
        return;
    }
    let index = inner.key(&inner.opts.unacked_index_key);
    let now = unix_now();
    let mut pipe = redis::pipe();
    for chunk in tags.chunks(500) {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(&index).arg("XX");
        for t in chunk {
            cmd.arg(now).arg(t);
        }
        pipe.add_command(cmd).ignore();
    }
    if let Err(e) = pipe.query_async::<()>(c).await {
        tracing::warn!(error = %e, "could not extend the visibility of held messages; retrying later");
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropped without close: give back what is still held, if Redis is there.
        let held: Vec<Fetched> = lock(&self.outstanding).drain().map(|(_, m)| m).collect();
        if held.is_empty() || !self.opts.ack_emulation {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let mut c = self.cmd.clone();
        let (tables, cached, opts) = (self.tables.clone(), self.tables_cached, self.opts.clone());
        let (unacked, index) = (self.key(&self.opts.unacked_key), self.key(&self.opts.unacked_index_key));
        let hash = self.scripts.restore.get_hash().to_owned();
        rt.spawn(async move {
            let mut targets = Vec::new();
            for m in held {
                let Ok(payload) = mark_redelivered(&m.payload) else { continue };
                match restore_keys_on(&tables, cached, &opts, &m.queue, &m.payload).await {
                    Ok(keys) => targets.push((keys, m.token, payload)),
                    Err(e) => tracing::warn!(error = %e, "could not route a message of a dropped connection; it comes back after the visibility timeout"),
                }
            }
            let mut pipe = redis::pipe();
            for (keys, tag, payload) in &targets {
                pipe.cmd("EVALSHA").arg(&hash).arg(2 + keys.len()).arg(&unacked).arg(&index).arg(keys).arg(tag).arg(payload).arg("0").arg("1").ignore();
            }
            match pipe.query_async::<()>(&mut c).await {
                Ok(()) => {
                    counters().restored.fetch_add(targets.len() as u64, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, held = targets.len(), "could not restore the messages of a dropped connection; they come back after the visibility timeout"),
            }
        });
    }
}

#[async_trait::async_trait]
impl Store for RedisStore {
    fn supports_fanout(&self) -> bool {
        true
    }

    async fn new_queue(&self, declare: &QueueDeclare) -> Result<()> {
        let expires = declare.arguments.get("x-expires").and_then(Value::as_u64);
        let mut e = lock(&self.inner.expires);
        match expires {
            Some(ms) => e.insert(declare.queue.clone(), ms),
            None => e.remove(&declare.queue),
        };
        Ok(())
    }

    async fn has_queue(&self, queue: &str) -> Result<bool> {
        self.inner.take_failure()?;
        let mut pipe = redis::pipe();
        for k in self.inner.step_keys(queue) {
            pipe.cmd("EXISTS").arg(k);
        }
        let found: Vec<i64> = pipe.query_async(&mut self.inner.cmd.clone()).await.map_err(redis_err)?;
        Ok(found.iter().any(|n| *n > 0))
    }

    async fn size(&self, queue: &str) -> Result<u32> {
        let mut pipe = redis::pipe();
        for k in self.inner.step_keys(queue) {
            pipe.cmd("LLEN").arg(k);
        }
        let sizes: Vec<u64> = pipe.query_async(&mut self.inner.cmd.clone()).await.map_err(redis_err)?;
        Ok(sizes.iter().sum::<u64>().min(u64::from(u32::MAX)) as u32)
    }

    async fn purge(&self, queue: &str) -> Result<u32> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for k in self.inner.step_keys(queue) {
            pipe.cmd("LLEN").arg(&k).cmd("DEL").arg(&k).ignore();
        }
        let sizes: Vec<u64> = pipe.query_async(&mut self.inner.cmd.clone()).await.map_err(redis_err)?;
        Ok(sizes.iter().sum::<u64>().min(u64::from(u32::MAX)) as u32)
    }

    async fn delete(&self, queue: &str, bindings: &[(String, BindingRow)]) -> Result<()> {
        let mut pipe = redis::pipe();
        for (exchange, row) in bindings {
            let member = self.inner.row_member(row);
            pipe.cmd("SREM").arg(self.inner.table_key(exchange)).arg(&member).ignore();
            pipe.cmd("SREM").arg(self.inner.permanent_key(exchange)).arg(&member).ignore();
        }
        pipe.cmd("DEL").arg(self.inner.step_keys(queue)).ignore();
        pipe.query_async::<()>(&mut self.inner.tables.clone()).await.map_err(redis_err)?;
        lock(&self.inner.expires).remove(queue);
        let mut bound = lock(&self.inner.bound);
        for (exchange, _) in bindings {
            bound.remove(exchange);
        }
        Ok(())
    }

    async fn bindings(&self, exchange: &str) -> Result<Vec<BindingRow>> {
        let rows = read_table(&self.inner, exchange).await?;
        if rows.is_empty() && lock(&self.inner.bound).contains(exchange) {
            return Err(Error::Inconsistency(format!(
                "the binding table {} of exchange {exchange:?} is gone from Redis though queues were bound to it on this connection: \
                 was it evicted? Kombu's keys must not be evicted: set Redis's maxmemory-policy to noeviction (or a volatile-* policy)",
                self.inner.table_key(exchange)
            )));
        }
        Ok(rows)
    }

    async fn bind(&self, exchange: &str, row: &BindingRow, expires: Option<u64>) -> Result<()> {
        let member = self.inner.row_member(row);
        let mut c = self.inner.tables.clone();
        match expires {
            Some(ms) => {
                let ttl = (ms.saturating_mul(2)).max(3_600_000);
                let _: i64 = self.inner.scripts.refresh_binding
                    .key(self.inner.table_key(exchange))
                    .key(self.inner.key("_kombu.binding_deadlines"))
                    .arg(&member)
                    .arg(exchange)
                    .arg(ttl)
                    .invoke_async(&mut c)
                    .await
                    .map_err(redis_err)?;
            }
            None => {
                let mut pipe = redis::pipe();
                pipe.cmd("SADD").arg(self.inner.table_key(exchange)).arg(&member).ignore();
                pipe.cmd("SADD").arg(self.inner.permanent_key(exchange)).arg(&member).ignore();
                pipe.query_async::<()>(&mut c).await.map_err(redis_err)?;
            }
        }
        lock(&self.inner.bound).insert(exchange.to_owned());
        Ok(())
    }

    async fn unbind(&self, exchange: &str, row: &BindingRow) -> Result<()> {
        let member = self.inner.row_member(row);
        let mut pipe = redis::pipe();
        pipe.cmd("SREM").arg(self.inner.table_key(exchange)).arg(&member).ignore();
        pipe.cmd("SREM").arg(self.inner.permanent_key(exchange)).arg(&member).ignore();
        pipe.query_async::<()>(&mut self.inner.tables.clone()).await.map_err(redis_err)?;
        Ok(())
    }

    async fn put(&self, queues: &[&str], message: &Outgoing) -> Result<()> {
        self.inner.take_failure()?;
        self.inner.link.check()?;
        let mut pipe = redis::pipe();
        for q in queues {
            pipe.cmd("LPUSH").arg(self.inner.key(&self.inner.opts.bucket(q, message.priority))).arg(&*message.json).ignore();
            if let Some(ms) = self.inner.queue_expires(q) {
                for k in self.inner.step_keys(q) {
                    pipe.cmd("PEXPIRE").arg(k).arg(ms).ignore();
                }
            }
        }
        pipe.query_async::<()>(&mut self.inner.cmd.clone()).await.map_err(redis_err)
    }

    async fn put_fanout(&self, exchange: &str, routing_key: &str, message: &Outgoing) -> Result<Option<u64>> {
        let topic = self.inner.fanout_topic(exchange, routing_key);
        let n: u64 = redis::cmd("PUBLISH").arg(topic).arg(&*message.json).query_async(&mut self.inner.cmd.clone()).await.map_err(redis_err)?;
        Ok(Some(n))
    }

    async fn listen(&self, listen: &FanoutListen) -> Result<()> {
        let subscribe = Fetch { queues: Vec::new(), fanout: vec![listen.clone()], max: 0, round_robin: false, wait: None };
        self.inner.fanout_take(&subscribe, 0).await.map(|_| ())
    }

    async fn fetch(&self, fetch: &Fetch) -> Result<Vec<Fetched>> {
        self.inner.take_failure()?;
        if fetch.wait.is_some() {
            self.inner.maybe_sweep().await;
        }
        let deadline = fetch.wait.map(|w| Instant::now() + w);
        loop {
            self.inner.take_failure()?;
            self.inner.link.check()?;
            let mut out = self.inner.fanout_take(fetch, fetch.max).await?;
            if out.len() < fetch.max && !fetch.queues.is_empty() {
                out.extend(self.inner.pop(fetch, fetch.max - out.len()).await?);
            }
            let now = Instant::now();
            match deadline {
                _ if !out.is_empty() => {
                    let redelivered = out.iter().filter(|m| is_redelivered(&m.payload)).count();
                    counters().redelivered.fetch_add(redelivered as u64, Ordering::Relaxed);
                    return Ok(out);
                }
                Some(d) if d > now => self.inner.wait(fetch, d - now).await?,
                _ => return Ok(out),
            }
        }
    }

    fn settle(&self, message: &Fetched, how: Settle) -> Result<()> {
        if message.broadcast {
            return Ok(());
        }
        self.inner.ops.send(Op::Settle(message.clone(), how)).map_err(|_| Error::RecoverableConnection("the Redis store is closed".into()))?;
        match lock(&self.inner.failed).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn restore(&self, messages: &[Fetched]) -> Result<()> {
        let inner = &self.inner;
        let unacked = inner.key(&inner.opts.unacked_key);
        let index = inner.key(&inner.opts.unacked_index_key);
        let guard = if inner.opts.ack_emulation { "1" } else { "0" };
        let mut pipe = redis::pipe();
        let mut n = 0;
        for m in messages.iter().filter(|m| !m.broadcast) {
            lock(&inner.outstanding).remove(&m.token);
            let payload = mark_redelivered(&m.payload)?;
            let keys = inner.restore_keys(m).await?;
            pipe.cmd("EVALSHA").arg(inner.scripts.restore.get_hash()).arg(2 + keys.len()).arg(&unacked).arg(&index).arg(&keys).arg(&m.token).arg(payload).arg("0").arg(guard);
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        let done: Vec<i64> = pipe.query_async(&mut inner.cmd.clone()).await.map_err(redis_err)?;
        counters().restored.fetch_add(done.iter().sum::<i64>().max(0) as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.inner.ops.send(Op::Flush(tx)).is_err() {
            return Err(Error::RecoverableConnection("the Redis store is closed".into()));
        }
        rx.await.map_err(|_| Error::RecoverableConnection("the Redis store is closed".into()))?
    }
}

fn is_redelivered(payload: &[u8]) -> bool {
    // Cheap check first: most messages were never restored.
    payload.windows(11).any(|w| w == b"redelivered") && Envelope::from_json(payload).is_ok_and(|e| {
        e.headers.get("redelivered").and_then(Value::as_bool).unwrap_or(false)
            || e.properties.get("delivery_info").and_then(|d| d.get("redelivered")).and_then(Value::as_bool).unwrap_or(false)
    })
}
