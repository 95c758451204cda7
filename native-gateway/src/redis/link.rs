//! The Redis connections of a process, shared by every store that reaches the same server
//! with the same settings (a gateway's client sessions, a worker's connections): a bounded
//! pool, as Kombu's `max_connections` bounds redis-py's pool.
//!
//! (One set per tokio runtime: a connection's driver task lives on the runtime that made it.)
//!
//! A link keeps
//! - one multiplexed connection for every command that answers at once (publishes, settles,
//!   scripts: concurrent callers share its round trips);
//! - one RESP3 connection for the binding tables, cached on the client (tracking, Redis 6+);
//! - one RESP3 *watcher* connection (Redis 6+) on which every idle consumer waits and every
//!   fanout pattern is subscribed: it reads the lengths of the lists a consumer waits on
//!   with `CLIENT TRACKING` on, and Redis pushes an invalidation the moment one of them
//!   changes (an LPUSH by anyone: Python kombu, Celery, us). A consumer thus waits on all its
//!   queues and priority buckets at once, up to `polling_interval`, and is woken by a push —
//!   without popping anything in the wait (a BRPOP pops; a consumer killed between BRPOP and
//!   recording the message loses it, kombu #305/#1405 — we pop with the Lua fetch script,
//!   which records atomically);
//! - before Redis 6 (no RESP3, no tracking): connections for blocking waits taken from the
//!   budget (`max_connections`), and a pub/sub connection per store with fanout consumers.
//!
//! Every connection counts against `max_connections`; a PING every `health_check_interval`
//! seconds (default 25, as Kombu) keeps them alive through firewalls and finds a dead one
//! (the link is then marked broken: its stores fail with a recoverable error, reconnect, and
//! get a new link). `client_name` names every connection (CLIENT SETNAME).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use kombu::{Error, Result};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, PushInfo, PushKind};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};

use super::scripts::Scripts;
use super::store::{lock, redis_err};
use super::RedisOptions;

/// Who receives the messages of a fanout pattern subscribed on the watcher.
pub(super) trait FanoutSink: Send + Sync {
    /// A message published on a channel matching `pattern`.
    fn on_message(&self, pattern: &str, payload: Bytes);
    /// The watcher connection is gone: wake the waiting consumers.
    fn on_failure(&self);
}

/// A shared set of connections to one Redis server (see the module documentation).
pub(super) struct Link {
    pub(super) client: Client,
    pub(super) config: AsyncConnectionConfig,
    pub(super) cmd: MultiplexedConnection,
    pub(super) tables: MultiplexedConnection,
    pub(super) tables_cached: bool,
    pub(super) watcher: Option<Watcher>,
    budget: Arc<Semaphore>,
    max_connections: usize,
    client_name: Option<String>,
    /// Idle connections for blocking waits (before Redis 6 only).
    blocking: Mutex<Vec<(MultiplexedConnection, Slot)>>,
    broken: Mutex<Option<Error>>,
    /// The budget slots of the fixed connections, held for the link's life.
    _slots: Vec<Slot>,
}

/// The watcher connection and who waits on it.
pub(super) struct Watcher {
    conn: MultiplexedConnection,
    /// List key → the consumers waiting for it to change.
    keys: Mutex<HashMap<String, Vec<Arc<Notify>>>>,
    /// Fanout pattern → its subscribers (stores). A pattern is subscribed once per link.
    patterns: Mutex<HashMap<String, Vec<Weak<dyn FanoutSink>>>>,
    subscribing: tokio::sync::Mutex<()>,
}

type Registry = tokio::sync::Mutex<HashMap<String, Weak<Link>>>;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// The number of Redis connections the links of this process keep open now (for tests and
/// `/metrics`).
pub fn open_connections() -> usize {
    OPEN.load(std::sync::atomic::Ordering::Relaxed)
}

static OPEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A connection's place in the budget: released (and counted down) when dropped.
pub(super) struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Slot {
    fn new(p: OwnedSemaphorePermit) -> Slot {
        OPEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Slot(p)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn too_many(max: usize) -> Error {
    Error::RecoverableConnection(format!(
        "Redis: too many connections: this process's pool to the server is at max_connections={max} (raise the transport option max_connections)"
    ))
}

async fn name_connection(c: &mut MultiplexedConnection, name: &Option<String>) -> Result<()> {
    if let Some(n) = name {
        redis::cmd("CLIENT").arg("SETNAME").arg(n).query_async::<()>(c).await.map_err(redis_err)?;
    }
    Ok(())
}

impl Link {
    /// The link for `client` with these options: the live one of the process, or a new one.
    pub(super) async fn get(client: Client, ssl_key: String, opts: &RedisOptions) -> Result<Arc<Link>> {
        // Per runtime too: a connection's driver task runs on the runtime that made it.
        let runtime = tokio::runtime::Handle::try_current().map(|h| h.id().to_string()).unwrap_or_default();
        let key = format!(
            "{runtime}|{:?}|{ssl_key}|{}|{:?}|{:?}|{:?}|{:?}",
            client.get_connection_info(),
            opts.max_connections,
            opts.health_check_interval,
            opts.client_name,
            opts.socket_timeout,
            opts.socket_connect_timeout
        );
        let mut links = registry().lock().await;
        if let Some(link) = links.get(&key).and_then(Weak::upgrade) {
            if link.check().is_ok() && redis::cmd("PING").query_async::<()>(&mut link.cmd.clone()).await.is_ok() {
                return Ok(link);
            }
            link.fail(Error::RecoverableConnection("Redis: the shared connection did not answer PING".into()));
        }
        let link = Link::open(client, opts).await?;
        links.retain(|_, l| l.strong_count() > 0);
        links.insert(key, Arc::downgrade(&link));
        Ok(link)
    }

    async fn open(client: Client, opts: &RedisOptions) -> Result<Arc<Link>> {
        let budget = Arc::new(Semaphore::new(opts.max_connections));
        let take = |budget: &Arc<Semaphore>| budget.clone().try_acquire_owned().map_err(|_| too_many(opts.max_connections));
        let config = AsyncConnectionConfig::new().set_connection_timeout(Some(opts.socket_connect_timeout)).set_response_timeout(Some(opts.socket_timeout));
        let first = take(&budget)?;
        let mut cmd = client.get_multiplexed_async_connection_with_config(&config).await.map_err(redis_err)?;
        name_connection(&mut cmd, &opts.client_name).await?;
        let mut load = redis::pipe();
        for s in Scripts::new().all() {
            load.cmd("SCRIPT").arg("LOAD").arg(s).ignore();
        }
        load.query_async::<()>(&mut cmd).await.map_err(redis_err)?;
        let mut slots = vec![Slot::new(first)];
        let resp3 = {
            let info = client.get_connection_info().clone();
            let settings = info.redis_settings().clone().set_protocol(redis::ProtocolVersion::RESP3);
            Client::open(info.set_redis_settings(settings)).ok()
        };
        // The binding tables: RESP3 with client-side caching, or the command connection.
        let mut tables = None;
        if let (Some(c3), Ok(permit)) = (&resp3, take(&budget)) {
            let cfg = config.clone().set_cache_config(redis::caching::CacheConfig::new().set_mode(redis::caching::CacheMode::OptIn));
            match c3.get_multiplexed_async_connection_with_config(&cfg).await {
                Ok(mut c) => {
                    name_connection(&mut c, &opts.client_name).await?;
                    slots.push(Slot::new(permit));
                    tables = Some(c);
                }
                Err(e) => tracing::debug!(error = %e, "no client-side caching of binding tables (Redis 6+ has it)"),
            }
        }
        let tables_cached = tables.is_some();
        let tables = tables.unwrap_or_else(|| cmd.clone());
        // The watcher: RESP3 with pushes (tracking invalidations, pattern messages).
        let (tx, rx) = mpsc::unbounded_channel::<PushInfo>();
        let mut watcher = None;
        if tables_cached {
            if let (Some(c3), Ok(permit)) = (&resp3, take(&budget)) {
                let cfg = config.clone().set_push_sender(tx);
                let made = async {
                    let mut c = c3.get_multiplexed_async_connection_with_config(&cfg).await?;
                    redis::cmd("CLIENT").arg("TRACKING").arg("ON").query_async::<()>(&mut c).await?;
                    Ok::<_, redis::RedisError>(c)
                };
                match made.await {
                    Ok(mut c) => {
                        name_connection(&mut c, &opts.client_name).await?;
                        slots.push(Slot::new(permit));
                        watcher = Some(Watcher { conn: c, keys: Mutex::default(), patterns: Mutex::default(), subscribing: tokio::sync::Mutex::new(()) });
                    }
                    Err(e) => tracing::debug!(error = %e, "no watcher connection (Redis 6+): idle consumers poll"),
                }
            }
        }
        let link = Arc::new(Link {
            client,
            config,
            cmd,
            tables,
            tables_cached,
            watcher,
            budget,
            max_connections: opts.max_connections,
            client_name: opts.client_name.clone(),
            blocking: Mutex::new(Vec::new()),
            broken: Mutex::new(None),
            _slots: slots,
        });
        if link.watcher.is_some() {
            tokio::spawn(dispatch(Arc::downgrade(&link), rx));
        }
        if let Some(every) = opts.health_check_interval {
            tokio::spawn(health_checks(Arc::downgrade(&link), every));
        }
        Ok(link)
    }

    /// An error when the link is known to be broken.
    pub(super) fn check(&self) -> Result<()> {
        match &*lock(&self.broken) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Mark the link broken and wake everyone waiting on it.
    pub(super) fn fail(&self, e: Error) {
        {
            let mut b = lock(&self.broken);
            if b.is_some() {
                return;
            }
            tracing::warn!(error = %e, "the shared Redis connections are broken; their users reconnect");
            *b = Some(e);
        }
        if let Some(w) = &self.watcher {
            for ns in lock(&w.keys).values() {
                for n in ns {
                    n.notify_one();
                }
            }
            let sinks: Vec<Arc<dyn FanoutSink>> = lock(&w.patterns).values().flatten().filter_map(Weak::upgrade).collect();
            for s in sinks {
                s.on_failure();
            }
        }
    }

    /// A connection for a blocking wait (before Redis 6), within the budget; `None` when
    /// the budget is spent (the caller polls instead).
    pub(super) async fn blocking_conn(&self) -> Result<Option<(MultiplexedConnection, Slot)>> {
        if let Some(c) = lock(&self.blocking).pop() {
            return Ok(Some(c));
        }
        let Ok(permit) = self.budget.clone().try_acquire_owned() else { return Ok(None) };
        let mut c = self.client.get_multiplexed_async_connection_with_config(&self.config).await.map_err(redis_err)?;
        name_connection(&mut c, &self.client_name).await?;
        Ok(Some((c, Slot::new(permit))))
    }

    pub(super) fn give_back(&self, c: (MultiplexedConnection, Slot)) {
        lock(&self.blocking).push(c);
    }

    /// A pub/sub connection within the budget (before Redis 6: one per store with fanout
    /// consumers).
    pub(super) async fn pubsub(&self) -> Result<(redis::aio::PubSub, Slot)> {
        let permit = self.budget.clone().try_acquire_owned().map_err(|_| too_many(self.max_connections))?;
        let p = self.client.get_async_pubsub().await.map_err(redis_err)?;
        Ok((p, Slot::new(permit)))
    }
}

impl Watcher {
    /// Wait up to `d` for one of `keys` (lists) to be non-empty: returns at once when one
    /// is, else when Redis pushes that one changed, or after `d`.
    pub(super) async fn wait(&self, keys: &[String], d: Duration, also: impl std::future::Future<Output = ()>) -> Result<()> {
        let me = Arc::new(Notify::new());
        {
            let mut k = lock(&self.keys);
            for key in keys {
                k.entry(key.clone()).or_default().push(me.clone());
            }
        }
        let result = async {
            let mut pipe = redis::pipe();
            for key in keys {
                pipe.cmd("LLEN").arg(key);
            }
            let sizes: Vec<u64> = pipe.query_async(&mut self.conn.clone()).await.map_err(redis_err)?;
            if sizes.iter().all(|n| *n == 0) {
                tokio::select! {
                    _ = tokio::time::timeout(d, me.notified()) => {}
                    _ = also => {}
                }
            }
            Ok(())
        }
        .await;
        let mut k = lock(&self.keys);
        for key in keys {
            if let Some(v) = k.get_mut(key) {
                v.retain(|n| !Arc::ptr_eq(n, &me));
                if v.is_empty() {
                    k.remove(key);
                }
            }
        }
        result
    }

    /// Subscribe `sink` to a fanout pattern (PSUBSCRIBE once per link).
    pub(super) async fn subscribe(&self, pattern: &str, sink: Weak<dyn FanoutSink>) -> Result<()> {
        let _one_at_a_time = self.subscribing.lock().await;
        let new = {
            let mut p = lock(&self.patterns);
            let subs = p.entry(pattern.to_owned()).or_default();
            subs.retain(|s| s.strong_count() > 0);
            let new = subs.is_empty();
            subs.push(sink);
            new
        };
        if new {
            if let Err(e) = self.conn.clone().psubscribe(pattern).await {
                lock(&self.patterns).remove(pattern);
                return Err(redis_err(e));
            }
        }
        Ok(())
    }
}

/// Hand the watcher's pushes to their waiters and subscribers.
async fn dispatch(link: Weak<Link>, mut rx: mpsc::UnboundedReceiver<PushInfo>) {
    while let Some(push) = rx.recv().await {
        let Some(l) = link.upgrade() else { break };
        let Some(w) = &l.watcher else { break };
        match push.kind {
            PushKind::Invalidate => {
                let keys = lock(&w.keys);
                match push.data.first() {
                    Some(redis::Value::Array(changed)) => {
                        for key in changed {
                            let Ok(key) = redis::from_redis_value_ref::<String>(key) else { continue };
                            for n in keys.get(&key).into_iter().flatten() {
                                n.notify_one();
                            }
                        }
                    }
                    // Nil: the server flushed its tracking table (FLUSHDB...): wake everyone.
                    _ => keys.values().flatten().for_each(|n| n.notify_one()),
                }
            }
            PushKind::PMessage => {
                let [pattern, _channel, payload] = push.data.as_slice() else { continue };
                let (Ok(pattern), Ok(payload)) = (redis::from_redis_value_ref::<String>(pattern), redis::from_redis_value_ref::<Vec<u8>>(payload)) else { continue };
                let sinks: Vec<Arc<dyn FanoutSink>> = {
                    let mut p = lock(&w.patterns);
                    let Some(subs) = p.get_mut(&pattern) else { continue };
                    subs.retain(|s| s.strong_count() > 0);
                    subs.iter().filter_map(Weak::upgrade).collect()
                };
                if sinks.is_empty() {
                    // Nobody listens any more: forget the pattern.
                    let _one_at_a_time = w.subscribing.lock().await;
                    let gone = lock(&w.patterns).get(&pattern).is_some_and(|s| s.iter().all(|s| s.strong_count() == 0));
                    if gone {
                        lock(&w.patterns).remove(&pattern);
                        let _ = w.conn.clone().punsubscribe(&pattern).await;
                    }
                    continue;
                }
                let payload = Bytes::from(payload);
                for s in sinks {
                    s.on_message(&pattern, payload.clone());
                }
            }
            PushKind::Disconnection => {
                l.fail(Error::RecoverableConnection("Redis: the connection for waits and fanout closed".into()));
                break;
            }
            _ => {}
        }
    }
}

/// PING the link's connections every `every`; a connection that does not answer breaks the
/// link (its stores reconnect).
async fn health_checks(link: Weak<Link>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(l) = link.upgrade() else { break };
        if l.check().is_err() {
            break;
        }
        let mut conns = vec![l.cmd.clone()];
        if l.tables_cached {
            conns.push(l.tables.clone());
        }
        if let Some(w) = &l.watcher {
            conns.push(w.conn.clone());
        }
        let idle: Vec<(MultiplexedConnection, Slot)> = std::mem::take(&mut *lock(&l.blocking));
        drop(l);
        let mut failed = None;
        for mut c in conns {
            if let Err(e) = redis::cmd("PING").query_async::<()>(&mut c).await {
                failed = Some(e);
                break;
            }
        }
        let mut alive = Vec::new();
        for (mut c, p) in idle {
            if redis::cmd("PING").query_async::<()>(&mut c).await.is_ok() {
                alive.push((c, p));
            }
        }
        let Some(l) = link.upgrade() else { break };
        lock(&l.blocking).extend(alive);
        if let Some(e) = failed {
            l.fail(Error::RecoverableConnection(format!("Redis: health check failed: {e}")));
            break;
        }
    }
}
