//! Connection, channel and producer pools (Kombu's `kombu.connection.ConnectionPool`,
//! `ChannelPool` and `kombu.pools`).
//!
//! Semantics from the Kombu documentation: resources are created lazily (acquiring does not
//! connect), reuse is LIFO ("the last resource released will be the one acquired next"), a
//! limit of `None`/0 disables pool semantics (each acquire creates a resource and releasing
//! closes it), acquiring beyond the limit raises `ConnectionLimitExceeded` /
//! `ChannelLimitExceeded` unless `block` waits for a release (up to `timeout`), the limit can
//! grow at run time but not shrink below what is in use, and `force_close_all` closes every
//! resource, those in use included.
//!
//! Waiting is async and needs no threads, so pools work in wasm32 too.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
#[cfg(not(target_arch = "wasm32"))]
use std::sync::OnceLock;

use futures::channel::oneshot;
use futures::future::{select, Either};

use crate::channel::Channel;
use crate::connection::Connection;
use crate::rt::lock;
use crate::error::{Error, Result};
use crate::producer::Producer;
use crate::rt::{self, Duration};


/// The default limit of the global pools ([`connections`], [`producers`]).
pub const DEFAULT_LIMIT: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connection,
    Channel,
    Producer,
}

impl Kind {
    fn exceeded(self, limit: usize) -> Error {
        match self {
            Kind::Channel => Error::ChannelLimitExceeded { limit },
            _ => Error::ConnectionLimitExceeded { limit },
        }
    }
}

struct State<R> {
    free: Vec<R>,
    in_use: usize,
    limit: Option<usize>,
    closed: bool,
    waiters: VecDeque<oneshot::Sender<()>>,
    /// Every resource handed out or pooled, to close them all in `force_close_all`.
    all: Vec<R>,
}

struct Shared<R> {
    kind: Kind,
    state: Mutex<State<R>>,
}

/// A pool of resources of type `R` (a [`Connection`], a [`Channel`] or a [`Producer`]).
pub struct Pool<R: Clone> {
    shared: Arc<Shared<R>>,
    factory: Arc<dyn Factory<R>>,
}

impl<R: Clone> Clone for Pool<R> {
    fn clone(&self) -> Self {
        Pool { shared: self.shared.clone(), factory: self.factory.clone() }
    }
}

/// How a pool makes and closes its resources.
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait Factory<R>: crate::rt::MaybeSend + crate::rt::MaybeSync {
    /// A new resource.
    async fn create(&self) -> Result<R>;
    /// Close a resource (released without pool semantics, replaced, or force-closed).
    async fn close(&self, resource: R);
}

/// A pool of connections with the same parameters.
pub type ConnectionPool = Pool<Connection>;
/// A pool of channels of one connection.
pub type ChannelPool = Pool<Channel>;
/// A pool of producers, each on its own pooled connection.
pub type ProducerPool = Pool<Producer>;

struct ConnectionFactory(Connection);

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl Factory<Connection> for ConnectionFactory {
    async fn create(&self) -> Result<Connection> {
        Ok(self.0.clone_params())
    }
    async fn close(&self, c: Connection) {
        let _ = c.release().await;
    }
}

struct ChannelFactory(Connection);

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl Factory<Channel> for ChannelFactory {
    async fn create(&self) -> Result<Channel> {
        self.0.channel().await
    }
    async fn close(&self, c: Channel) {
        let _ = c.close().await;
    }
}

struct ProducerFactory(ConnectionPool);

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl Factory<Producer> for ProducerFactory {
    async fn create(&self) -> Result<Producer> {
        // A producer keeps its connection for its lifetime; the connection counts against
        // the connection pool until the producer is closed.
        let conn = self.0.acquire(false, None).await?.detach();
        Ok(Producer::new(&conn.default_channel_handle()))
    }
    async fn close(&self, p: Producer) {
        if let Ok(c) = p.connection() {
            let _ = c.release().await;
        }
        self.0.forget_one();
    }
}

impl Connection {
    /// A pool of connections like this one (Kombu's `Connection.Pool(limit)`).
    pub fn pool(&self, limit: Option<usize>) -> ConnectionPool {
        ConnectionPool::for_connection(self, limit)
    }

    /// A pool of channels of this connection (Kombu's `Connection.ChannelPool(limit)`).
    pub fn channel_pool(&self, limit: Option<usize>) -> ChannelPool {
        ChannelPool::for_channels(self, limit)
    }
}

impl ConnectionPool {
    /// Connections like `conn` (Kombu's `Connection.Pool(limit)`).
    pub fn for_connection(conn: &Connection, limit: Option<usize>) -> Self {
        Pool::with_factory(Kind::Connection, limit, Arc::new(ConnectionFactory(conn.clone_params())))
    }
}

impl ChannelPool {
    /// Channels of `conn` (Kombu's `Connection.ChannelPool(limit)`).
    pub fn for_channels(conn: &Connection, limit: Option<usize>) -> Self {
        Pool::with_factory(Kind::Channel, limit, Arc::new(ChannelFactory(conn.clone())))
    }
}

impl ProducerPool {
    /// Producers, each on a connection from `connections` (Kombu's `ProducerPool`).
    pub fn for_connections(connections: &ConnectionPool, limit: Option<usize>) -> Self {
        Pool::with_factory(Kind::Producer, limit, Arc::new(ProducerFactory(connections.clone())))
    }
}

impl<R: Clone + 'static> Pool<R> {
    /// A pool making resources with `factory`.
    fn with_factory(kind: Kind, limit: Option<usize>, factory: Arc<dyn Factory<R>>) -> Self {
        Pool {
            shared: Arc::new(Shared {
                kind,
                state: Mutex::new(State {
                    free: Vec::new(),
                    in_use: 0,
                    limit: limit.filter(|l| *l > 0),
                    closed: false,
                    waiters: VecDeque::new(),
                    all: Vec::new(),
                }),
            }),
            factory,
        }
    }

    /// The limit (`None`: no pool semantics).
    pub fn limit(&self) -> Option<usize> {
        lock(&self.shared.state).limit
    }

    /// Resources handed out and not released.
    pub fn in_use(&self) -> usize {
        lock(&self.shared.state).in_use
    }

    /// Resources waiting in the pool.
    pub fn available(&self) -> usize {
        lock(&self.shared.state).free.len()
    }

    /// Change the limit. It can grow at any time; it cannot go below what is in use
    /// (Kombu raises then) unless `force`.
    pub fn resize(&self, limit: Option<usize>, force: bool) -> Result<()> {
        let mut st = lock(&self.shared.state);
        let limit = limit.filter(|l| *l > 0);
        if let Some(l) = limit {
            if l < st.in_use && !force {
                return Err(Error::PoolShrink { limit: l, floor: st.in_use, why: "resources are in use" });
            }
            let keep = l.saturating_sub(st.in_use);
            st.free.truncate(keep);
        }
        st.limit = limit;
        while let Some(w) = st.waiters.pop_front() {
            let _ = w.send(());
        }
        Ok(())
    }

    /// Acquire a resource. Without `block`, a pool at its limit fails at once with
    /// `ConnectionLimitExceeded`/`ChannelLimitExceeded`; with `block`, it waits for a release
    /// up to `timeout` (forever when `None`) and then fails the same way.
    pub async fn acquire(&self, block: bool, timeout: Option<Duration>) -> Result<PoolGuard<R>> {
        let deadline = timeout.map(|t| rt::Instant::now() + t);
        loop {
            enum Next<R> {
                Got(R),
                Create,
                Wait(oneshot::Receiver<()>),
            }
            let next = {
                let mut st = lock(&self.shared.state);
                if st.closed {
                    return Err(Error::PoolClosed);
                }
                if let Some(r) = st.free.pop() {
                    st.in_use += 1;
                    Next::Got(r)
                } else {
                    match st.limit {
                        Some(l) if st.in_use >= l => {
                            if !block {
                                return Err(self.shared.kind.exceeded(l));
                            }
                            let (tx, rx) = oneshot::channel();
                            st.waiters.push_back(tx);
                            Next::Wait(rx)
                        }
                        _ => {
                            st.in_use += 1;
                            Next::Create
                        }
                    }
                }
            };
            let wait = match next {
                Next::Got(r) => return Ok(PoolGuard { pool: self.clone(), resource: Some(r) }),
                Next::Create => {
                    return match self.factory.create().await {
                        Ok(r) => {
                            lock(&self.shared.state).all.push(r.clone());
                            Ok(PoolGuard { pool: self.clone(), resource: Some(r) })
                        }
                        Err(e) => {
                            self.forget_one();
                            Err(e)
                        }
                    };
                }
                Next::Wait(rx) => rx,
            };
            match deadline {
                None => {
                    let _ = wait.await;
                }
                Some(d) => {
                    let now = rt::Instant::now();
                    if d <= now {
                        return Err(self.exceeded());
                    }
                    let timer = rt::sleep(d - now);
                    futures::pin_mut!(timer);
                    if let Either::Right(_) = select(wait, timer).await {
                        return Err(self.exceeded());
                    }
                }
            }
        }
    }

    fn exceeded(&self) -> Error {
        let l = lock(&self.shared.state).limit.unwrap_or(0);
        self.shared.kind.exceeded(l)
    }

    /// One resource in use is gone for good (closed by its holder).
    fn forget_one(&self) {
        let mut st = lock(&self.shared.state);
        st.in_use = st.in_use.saturating_sub(1);
        if let Some(w) = st.waiters.pop_front() {
            let _ = w.send(());
        }
    }

    fn give_back(&self, r: R) -> Option<R> {
        let mut st = lock(&self.shared.state);
        st.in_use = st.in_use.saturating_sub(1);
        if let Some(w) = st.waiters.pop_front() {
            let _ = w.send(());
        }
        if st.limit.is_some() && !st.closed {
            st.free.push(r);
            None
        } else {
            Some(r)
        }
    }

    /// Close every resource, in use or not, and refuse further acquires (Kombu's
    /// `force_close_all`).
    pub async fn force_close_all(&self) {
        let all = {
            let mut st = lock(&self.shared.state);
            st.closed = true;
            st.free.clear();
            while let Some(w) = st.waiters.pop_front() {
                let _ = w.send(());
            }
            std::mem::take(&mut st.all)
        };
        for r in all {
            self.factory.close(r).await;
        }
    }
}

/// A resource acquired from a [`Pool`]. It returns to the pool when released or dropped.
#[must_use = "dropping the guard gives the resource back to the pool at once"]
pub struct PoolGuard<R: Clone + 'static> {
    pool: Pool<R>,
    resource: Option<R>,
}

impl<R: Clone + std::fmt::Debug + 'static> std::fmt::Debug for PoolGuard<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PoolGuard").field(&self.resource).finish()
    }
}

impl<R: Clone + 'static> std::ops::Deref for PoolGuard<R> {
    type Target = R;
    fn deref(&self) -> &R {
        self.resource.as_ref().expect("present until released")
    }
}

impl<R: Clone + 'static> PoolGuard<R> {
    /// Return the resource to the pool; without pool semantics (no limit), close it.
    pub async fn release(mut self) {
        if let Some(r) = self.resource.take() {
            if let Some(r) = self.pool.give_back(r) {
                self.pool.factory.close(r).await;
            }
        }
    }

    /// The resource is broken: close it and free its place in the pool (Kombu's `replace`).
    pub async fn replace(mut self) {
        if let Some(r) = self.resource.take() {
            self.pool.forget_one();
            self.pool.factory.close(r).await;
        }
    }

    /// Keep the resource outside the pool; its place stays taken until the pool forgets it.
    fn detach(mut self) -> R {
        self.resource.take().expect("present until released")
    }
}

impl<R: Clone + 'static> Drop for PoolGuard<R> {
    fn drop(&mut self) {
        // Dropped without `release()`: return it (a resource without pool semantics is just
        // dropped; connections close when their last handle goes).
        if let Some(r) = self.resource.take() {
            drop(self.pool.give_back(r));
        }
    }
}

// ----- global pool groups ---------------------------------------------------------------

struct Groups {
    limit: usize,
    connections: HashMap<String, ConnectionPool>,
    producers: HashMap<String, ProducerPool>,
}

impl Default for Groups {
    fn default() -> Self {
        Groups { limit: DEFAULT_LIMIT, connections: HashMap::new(), producers: HashMap::new() }
    }
}

/// The global groups: process-wide natively, per JS realm in wasm (one thread, values !Send).
#[cfg(not(target_arch = "wasm32"))]
fn with_groups<T>(f: impl FnOnce(&mut Groups) -> T) -> T {
    static G: OnceLock<Mutex<Groups>> = OnceLock::new();
    f(&mut lock(G.get_or_init(Default::default)))
}

#[cfg(target_arch = "wasm32")]
fn with_groups<T>(f: impl FnOnce(&mut Groups) -> T) -> T {
    thread_local! {
        static G: std::cell::RefCell<Groups> = std::cell::RefCell::new(Groups::default());
    }
    G.with(|g| f(&mut g.borrow_mut()))
}

/// The global connection pool for `conn`'s parameters (Kombu's `kombu.pools.connections[conn]`):
/// every connection with the same URLs and transport options gets the same pool.
pub fn connections(conn: &Connection) -> ConnectionPool {
    with_groups(|g| {
        let limit = g.limit;
        g.connections.entry(conn.params_key()).or_insert_with(|| ConnectionPool::for_connection(conn, Some(limit))).clone()
    })
}

/// The global producer pool for `conn`'s parameters (Kombu's `kombu.pools.producers[conn]`).
pub fn producers(conn: &Connection) -> ProducerPool {
    let pool = connections(conn);
    with_groups(|g| {
        let limit = g.limit;
        g.producers.entry(conn.params_key()).or_insert_with(|| ProducerPool::for_connections(&pool, Some(limit))).clone()
    })
}

/// The limit of the global pools (200 by default).
pub fn get_limit() -> usize {
    with_groups(|g| g.limit)
}

/// Change the limit of the global pools. Growing applies to existing pools; shrinking
/// below what a pool has in use fails unless `force` (Kombu's `set_limit`).
pub fn set_limit(limit: usize, force: bool) -> Result<usize> {
    with_groups(|g| {
        if limit < g.limit && !force {
            return Err(Error::PoolShrink { limit, floor: g.limit, why: "is the limit of the global pools now" });
        }
        for p in g.connections.values() {
            p.resize(Some(limit), force)?;
        }
        for p in g.producers.values() {
            p.resize(Some(limit), force)?;
        }
        g.limit = limit;
        Ok(limit)
    })
}

/// Close every resource of the global pools and forget them (Kombu's `pools.reset`).
pub async fn reset() {
    let (c, p) = with_groups(|g| (std::mem::take(&mut g.connections), std::mem::take(&mut g.producers)));
    for pool in p.into_values() {
        pool.force_close_all().await;
    }
    for pool in c.into_values() {
        pool.force_close_all().await;
    }
}
