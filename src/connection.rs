//! `Connection` and `Channel`: the Kombu API's handles on a broker.
//!
//! A [`Connection`] is created from a URL (or a `;`-separated failover list) and connects
//! lazily, the first time something needs the broker. [`Connection::drain_events`] waits for
//! one event from the broker and dispatches it to the consumer it is for. Channels survive
//! reconnection: after [`Connection::ensure_connection`] (or [`Connection::ensure`]) re-opens
//! the transport, every live [`Channel`] re-opens, re-applies its `basic.qos` and
//! re-establishes its consumers (re-declaring their queues first).

use crate::namemap::SortedMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::channel::{Channel, ChannelInner};
use crate::rt::lock;
use crate::error::{Error, ReplyCode, Result};
use crate::message::Message;
use crate::retry::{FailoverCycle, FailoverStrategy, RetryPolicy};
use crate::rt::{self, Duration, Instant};
use crate::proto::methods::{Delivery, Name, ServerEvent};
use crate::transport::{self, ConnectInfo, RawChannel, RawConnection};
use crate::url;
use crate::value::Headers;

/// Options of a [`Connection`] besides its URL (Kombu's keyword arguments).
#[derive(Debug, Clone, Default)]
pub struct ConnectionOptions {
    /// Transport options (merged with the URL's query options; these win).
    pub transport_options: Headers,
    /// Heartbeat interval in seconds (0 or none: off).
    pub heartbeat: Option<f64>,
    /// Seconds to wait for a connection (Kombu's default is 5).
    pub connect_timeout: Option<f64>,
    /// Use TLS.
    pub ssl: Option<bool>,
    /// Login method (`AMQPLAIN`, `PLAIN`, `EXTERNAL`).
    pub login_method: Option<String>,
    /// How to go through the failover URLs (round-robin by default).
    pub failover_strategy: FailoverStrategy,
    /// More URLs to fail over to (Kombu's `alternates`).
    pub alternates: Vec<String>,
    /// User name, when the URL has none.
    pub userid: Option<String>,
    /// Password, when the URL has none.
    pub password: Option<String>,
    /// Virtual host, when the URL has none.
    pub virtual_host: Option<String>,
    /// A transport name that overrides the URL scheme.
    pub transport: Option<String>,
    /// Reconnect automatically with this policy: a consumer waiting for messages and a
    /// publish that meet a lost connection re-establish it ([`Connection::ensure_connection`]:
    /// channels reopen, declared exchanges, queues and bindings are declared again, consumers
    /// resume) and carry on (Kombu's `ensure` semantics).
    pub reconnect: Option<RetryPolicy>,
}

/// What happens to a [`Connection`], for an application to show ([`Connection::on_event`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// Connected (or reconnected) to the broker.
    Connected,
    /// The connection was lost, with the error that said so.
    Disconnected(Error),
    /// Connecting failed with `error`: the next attempt is in `interval` seconds.
    Reconnecting {
        /// Why the last attempt failed.
        error: Error,
        /// Seconds until the next attempt.
        interval: f64,
    },
    /// The broker blocked this connection's publishes (`connection.blocked`, Kombu's
    /// `on_blocked`): a resource alarm such as a memory high watermark. Publishes wait (on
    /// RabbitMQ) or are refused (on the embedded broker) until [`ConnectionEvent::Unblocked`].
    Blocked {
        /// The broker's reason (`low on memory`).
        reason: String,
    },
    /// The broker accepts publishes again (`connection.unblocked`, Kombu's `on_unblocked`).
    Unblocked,
}

/// Called with each [`ConnectionEvent`].
#[cfg(not(target_arch = "wasm32"))]
pub type EventListener = Arc<dyn Fn(&ConnectionEvent) + Send + Sync>;
/// Called with each [`ConnectionEvent`].
#[cfg(target_arch = "wasm32")]
pub type EventListener = Arc<dyn Fn(&ConnectionEvent)>;

struct State {
    current: usize,
    cycle: FailoverCycle,
    transport: Option<Arc<dyn RawConnection>>,
    generation: u64,
    default_channel: Option<Channel>,
    /// The open channels of the current transport, by channel id.
    slots: SortedMap<u32, Slot>,
}

struct Slot {
    channel: Weak<ChannelInner>,
    raw: Arc<dyn RawChannel>,
}

#[derive(Default)]
struct Orphans {
    consumers: Vec<(Arc<dyn RawChannel>, Name)>,
    held: Vec<(Arc<dyn RawChannel>, u64)>,
}

impl Orphans {
    /// Whether the consumer `tag` on `raw` is an orphan not cancelled yet.
    fn has(&self, raw: &Arc<dyn RawChannel>, tag: &str) -> bool {
        self.consumers.iter().any(|(r, t)| Arc::ptr_eq(r, raw) && **t == *tag)
    }
}

pub(crate) struct ConnInner {
    infos: Vec<ConnectInfo>,
    urls: Vec<String>,
    options: ConnectionOptions,
    state: Mutex<State>,
    connecting: futures::lock::Mutex<()>,
    declared: Mutex<SortedMap<u64, ()>>,
    channels: Mutex<Vec<Weak<ChannelInner>>>,
    /// Consumers whose handles were all dropped, to cancel at the broker at the next wait for
    /// events, and the deliveries held for them until then ([`Connection::orphaned`]).
    orphans: Mutex<Orphans>,
    has_orphans: AtomicBool,
    closed: AtomicBool,
    listeners: Mutex<Vec<EventListener>>,
    /// The exchanges and queues (with their bindings) declared on this connection, declared
    /// again after a reconnect.
    topology: Mutex<Vec<crate::Entity>>,
}

/// A connection to a broker (Kombu's `kombu.Connection`). Cheap to clone: clones share the
/// underlying connection.
#[derive(Clone)]
pub struct Connection {
    pub(crate) inner: Arc<ConnInner>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Connection: {} at {:p}>", self.as_uri(false), Arc::as_ptr(&self.inner))
    }
}

impl Connection {
    /// A connection to `url` (or several `;`-separated failover URLs). Nothing is opened
    /// until the broker is needed.
    ///
    /// ```
    /// use kombu::Connection;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kombu::Result<()> {
    /// let conn = Connection::new("memory://")?;
    /// assert!(!conn.connected(), "lazy: nothing is open yet");
    /// conn.connect().await?;
    /// assert!(conn.connected());
    /// conn.release().await?;
    ///
    /// let err = Connection::new("amqq://localhost//").unwrap_err();
    /// assert_eq!(err.name(), "UnknownTransport");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `InvalidURL` names the bad part of a malformed URL; `UnknownTransport` lists the
    /// known transports.
    pub fn new(url: &str) -> Result<Connection> {
        Self::with_options(url, ConnectionOptions::default())
    }

    /// A connection with options (Kombu's keyword arguments).
    pub fn with_options(url: &str, options: ConnectionOptions) -> Result<Connection> {
        let mut urls = url::split_failover(url);
        for alternate in &options.alternates {
            urls.extend(url::split_failover(alternate));
        }
        if urls.is_empty() {
            urls.push("amqp://".to_owned());
        }
        let mut infos = Vec::with_capacity(urls.len());
        for u in &urls {
            infos.push(connect_info(u, &options)?);
        }
        for info in &infos {
            transport::registry::lookup(&info.transport)?;
        }
        let cycle = FailoverCycle::new(urls.len(), options.failover_strategy);
        Ok(Connection {
            inner: Arc::new(ConnInner {
                infos,
                urls,
                options,
                state: Mutex::new(State {
                    current: 0,
                    cycle,
                    transport: None,
                    generation: 0,
                    default_channel: None,
                    slots: SortedMap::default(),
                }),
                connecting: futures::lock::Mutex::new(()),
                declared: Mutex::new(SortedMap::default()),
                channels: Mutex::new(Vec::new()),
                orphans: Mutex::default(),
                has_orphans: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                listeners: Mutex::new(Vec::new()),
                topology: Mutex::new(Vec::new()),
            }),
        })
    }

    /// A new, unconnected connection with the same URLs and options (Kombu's
    /// `Connection.clone()`; a Rust `clone()` shares this connection instead).
    pub fn clone_params(&self) -> Connection {
        let urls = self.inner.urls.join(";");
        // The alternates are already part of `urls`.
        let options = ConnectionOptions { alternates: Vec::new(), ..self.inner.options.clone() };
        Connection::with_options(&urls, options).expect("the parameters parsed once already")
    }

    /// The key that identifies these parameters (URLs with passwords, transport options):
    /// connections with equal keys share a pool in [`crate::pools`].
    pub fn params_key(&self) -> String {
        format!("{}|{}", self.inner.urls.join(";"), crate::value::Json(&serde_json::Value::Object(self.inner.options.transport_options.clone())))
    }

    /// The options this connection was created with.
    pub fn options(&self) -> &ConnectionOptions {
        &self.inner.options
    }

    /// What the transport is given to connect to the current URL: the URL read with this
    /// connection's options (the transport resolved from the scheme's alias, its default port,
    /// TLS for `amqps`/`rediss`/`*+wss` unless the URL or the options say otherwise,
    /// `heartbeat`, `connect_timeout`, `login_method` and transport options from the query).
    ///
    /// ```
    /// let conn = kombu::Connection::new("memory://broker.example/?heartbeat=30").unwrap();
    /// let info = conn.info();
    /// assert_eq!((info.transport.as_str(), info.hostname.as_str(), info.heartbeat), ("memory", "broker.example", Some(30.0)));
    /// ```
    pub fn info(&self) -> ConnectInfo {
        let i = lock(&self.inner.state).current;
        self.inner.infos[i].clone()
    }

    /// The transport name of the current URL (`memory`, `amqp`, ...).
    pub fn transport_name(&self) -> String {
        self.info().transport
    }

    /// `host:port` of the current URL.
    pub fn host(&self) -> String {
        let i = self.info();
        match i.port {
            Some(p) => format!("{}:{p}", i.hostname),
            None => i.hostname,
        }
    }

    /// The current URL; the password is masked with `**` unless `include_password`.
    pub fn as_uri(&self, include_password: bool) -> String {
        let i = lock(&self.inner.state).current;
        url::as_uri_str(&self.inner.urls[i], include_password, "**")
    }

    /// All URLs, in failover order.
    pub fn alt(&self) -> Vec<String> {
        let mut alt = Vec::with_capacity(self.inner.urls.len());
        for u in &self.inner.urls {
            alt.push(url::as_uri_str(u, false, "**"));
        }
        alt
    }

    /// Describe the connection (Kombu's `Connection.info()`), password masked.
    pub fn describe(&self) -> serde_json::Value {
        let i = self.info();
        // Values converted directly and inserted in one loop, rather than `json!`'s
        // serializer per field (`to_value` of the options table) and an insert per key.
        let fields: [(&str, serde_json::Value); 13] = [
            ("transport", i.transport.into()),
            ("hostname", i.hostname.into()),
            ("port", i.port.into()),
            ("userid", i.userid.into()),
            ("virtual_host", i.virtual_host.into()),
            ("ssl", i.ssl.into()),
            ("heartbeat", i.heartbeat.into()),
            ("connect_timeout", i.connect_timeout.into()),
            ("login_method", i.login_method.into()),
            ("transport_options", serde_json::Value::Object(i.options)),
            ("alternates", self.alt().into()),
            ("failover_strategy", self.inner.options.failover_strategy.as_str().into()),
            ("uri", self.as_uri(false).into()),
        ];
        let mut m = serde_json::Map::new();
        for (k, v) in fields {
            m.insert(k.to_owned(), v);
        }
        serde_json::Value::Object(m)
    }

    /// True when the transport supports `exchange_type`.
    pub fn supports_exchange_type(&self, kind: &crate::proto::methods::ExchangeType) -> bool {
        transport::registry::lookup(&self.info().transport)
            .map(|t| t.implements().exchange_types.contains(kind))
            .unwrap_or(false)
    }

    /// True when connected and the connection is open.
    pub fn connected(&self) -> bool {
        lock(&self.inner.state).transport.as_ref().is_some_and(|t| t.is_open())
    }

    pub(crate) fn generation(&self) -> u64 {
        lock(&self.inner.state).generation
    }

    /// Connect now (Kombu's `connect()`): tries each URL once, starting with the current.
    pub async fn connect(&self) -> Result<()> {
        self.transport().await.map(|_| ())
    }

    /// The open transport connection, connecting lazily (each failover URL once).
    pub(crate) async fn transport(&self) -> Result<Arc<dyn RawConnection>> {
        if let Some(t) = self.live_transport() {
            return Ok(t);
        }
        let _guard = self.inner.connecting.lock().await;
        if let Some(t) = self.live_transport() {
            return Ok(t);
        }
        let mut last = None;
        for _ in 0..self.inner.urls.len() {
            match self.connect_once().await {
                Ok(t) => return Ok(t),
                Err(e) => {
                    tracing::warn!("connection to {} failed: {e}", self.as_uri(false));
                    last = Some(e);
                    self.maybe_switch_next();
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::RecoverableConnection("no broker URL to connect to".into())))
    }

    pub(crate) fn live_transport(&self) -> Option<Arc<dyn RawConnection>> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return None;
        }
        let st = lock(&self.inner.state);
        st.transport.as_ref().filter(|t| t.is_open()).cloned()
    }

    async fn connect_once(&self) -> Result<Arc<dyn RawConnection>> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::RecoverableConnection("the connection was closed (release/close)".into()));
        }
        let info = self.info();
        let transport = transport::registry::lookup(&info.transport)?;
        let timeout = info.connect_timeout.unwrap_or(5.0);
        let connect = transport.establish_connection(&info);
        let raw = if timeout > 0.0 {
            let timer = rt::sleep(Duration::from_secs_f64(timeout));
            futures::pin_mut!(connect, timer);
            match futures::future::select(connect, timer).await {
                futures::future::Either::Left((r, _)) => r?,
                futures::future::Either::Right(_) => {
                    return Err(Error::RecoverableConnection(format!(
                        "timed out after {}s connecting to {}",
                        crate::serialization::seconds_text(timeout),
                        self.as_uri(false)
                    )))
                }
            }
        } else {
            connect.await?
        };
        let (old, channels) = {
            let mut st = lock(&self.inner.state);
            let old = st.transport.replace(raw.clone());
            st.generation += 1;
            st.slots.clear();
            let mut live = Vec::new();
            for w in lock(&self.inner.channels).iter() {
                if let Some(inner) = w.upgrade() {
                    live.push(Channel { inner });
                }
            }
            (old, live)
        };
        lock(&self.inner.declared).clear();
        if let Some(old) = old {
            let _ = old.close().await;
        }
        let generation = self.generation();
        if generation > 1 {
            self.restore_topology(&raw).await;
        }
        // Revive the channels that were open on the previous transport.
        for ch in channels {
            if ch.was_opened() && !ch.user_closed() {
                if let Err(e) = ch.revive_on(raw.clone(), generation).await {
                    tracing::warn!("could not revive channel after reconnect: {e}");
                }
            }
        }
        self.emit(ConnectionEvent::Connected);
        Ok(raw)
    }

    /// After a reconnect: declare again what was declared on this connection (a restarted
    /// broker may have lost it), on a transport channel of its own. What fails is logged and
    /// skipped (a refusal closes that channel: the next declaration gets another).
    async fn restore_topology(&self, raw: &Arc<dyn RawConnection>) {
        let entities = lock(&self.inner.topology).clone();
        let mut ch: Option<Arc<dyn RawChannel>> = None;
        for entity in entities {
            let c = match ch.take() {
                Some(c) if c.is_open() => c,
                _ => match raw.open_channel().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("could not declare again after reconnect: {e}");
                        return;
                    }
                },
            };
            let r = match entity {
                crate::Entity::Exchange(x) => x.declare_raw(&*c, false, false).await,
                crate::Entity::Queue(mut q) => q.declare_raw(&*c, false).await.map(drop),
            };
            if let Err(e) = r {
                tracing::warn!("could not declare again after reconnect: {e}");
            }
            ch = Some(c);
        }
        if let Some(c) = ch {
            let _ = c.close().await;
        }
    }

    /// Remember a declaration to make again after a reconnect (replacing one of the same
    /// kind and name).
    pub(crate) fn remember(&self, mut entity: crate::Entity) {
        // Unbound: a declaration must not keep its channel alive.
        match &mut entity {
            crate::Entity::Exchange(x) => x.channel = None,
            crate::Entity::Queue(q) => {
                q.channel = None;
                q.exchange.channel = None;
                for b in &mut q.bindings {
                    if let Some(x) = &mut b.exchange {
                        x.channel = None;
                    }
                }
            }
        }
        let mut t = lock(&self.inner.topology);
        t.retain(|e| !e.same_kind_and_name(&entity));
        t.push(entity);
    }

    /// Forget a declaration (deleted).
    pub(crate) fn forget(&self, entity: &crate::Entity) {
        lock(&self.inner.topology).retain(|e| !e.same_kind_and_name(entity));
    }

    /// Call `listener` with each [`ConnectionEvent`] of this connection: connected,
    /// disconnected, reconnecting, blocked, unblocked (the last two as the connection's events
    /// are drained: [`Connection::drain_events`], a consumer waiting).
    pub fn on_event(&self, listener: EventListener) {
        lock(&self.inner.listeners).push(listener);
    }

    fn emit(&self, ev: ConnectionEvent) {
        let listeners = lock(&self.inner.listeners).clone();
        for l in listeners {
            l(&ev);
        }
    }

    /// The transport was lost (`e` says how): forget it, and say so once.
    fn lost(&self, e: &Error) {
        let had = lock(&self.inner.state).transport.take().is_some();
        if had && !self.inner.closed.load(Ordering::SeqCst) {
            self.emit(ConnectionEvent::Disconnected(e.clone()));
        }
    }

    /// Switch to the next failover URL (Kombu's `maybe_switch_next`). Does not reconnect.
    pub fn maybe_switch_next(&self) {
        let mut st = lock(&self.inner.state);
        if self.inner.urls.len() > 1 {
            st.current = st.cycle.next_index();
        }
    }

    /// Forget the transport after a connection error, without closing channels (Kombu's
    /// `collect`); the next use reconnects.
    pub fn collect(&self) {
        let mut st = lock(&self.inner.state);
        st.transport = None;
    }

    /// Ensure a connection, retrying with the policy (Kombu's defaults for this method:
    /// `interval_start=2`, `interval_step=2`, `interval_max=30`, retry forever), going
    /// through the failover URLs. `errback(error, interval)` is called before each sleep.
    pub async fn ensure_connection<E>(&self, policy: &RetryPolicy, mut errback: E) -> Result<()>
    where
        E: FnMut(&Error, f64),
    {
        if self.live_transport().is_some() {
            return Ok(());
        }
        let mut st = Reconnect { started: Instant::now(), intervals: policy.intervals(), retries: 0, failed: None };
        // The attempts are made by one non-generic future; only the errback's call is here,
        // in each errback type's copy.
        while !self.reconnect_step(policy, &mut st).await? {
            if let Some((e, interval)) = &st.failed {
                errback(e, *interval);
            }
        }
        Ok(())
    }

    /// One attempt of [`Connection::ensure_connection`], after announcing the failure before
    /// it (which the errback has seen) and waiting its interval: true when connected, false
    /// when it failed and is to be retried (the failure and the interval are in `st.failed`).
    async fn reconnect_step(&self, policy: &RetryPolicy, st: &mut Reconnect) -> Result<bool> {
        if let Some((e, interval)) = st.failed.take() {
            self.emit(ConnectionEvent::Reconnecting { error: e, interval });
            st.retries += 1;
            rt::sleep(Duration::from_secs_f64(interval)).await;
        }
        let retries = st.retries;
        match self.transport().await {
            Ok(_) => Ok(true),
            // What cannot work however often it is tried: not retried.
            Err(e) if matches!(e, Error::UnknownTransport { .. } | Error::InvalidUrl { .. } | Error::NotImplemented(_)) => Err(e),
            Err(e) => {
                if policy.max_retries.is_some_and(|m| m > 0 && retries >= m) {
                    return Err(Error::Operational(format!(
                        "failed to connect to {} after {} attempts: {e}",
                        self.as_uri(false),
                        retries + 1
                    )));
                }
                let interval = st.intervals.next().unwrap_or(policy.interval_max);
                if let Some(t) = policy.timeout {
                    if st.started.elapsed().as_secs_f64() + interval > t {
                        return Err(Error::Operational(format!(
                            "timed out after {}s connecting to {}: {e}",
                            crate::serialization::seconds_text(t),
                            self.as_uri(false)
                        )));
                    }
                }
                st.failed = Some((e, interval));
                Ok(false)
            }
        }
    }

    /// Run `fun` with Kombu's `ensure` semantics: on a recoverable connection error, the
    /// connection is re-established (channels revive, consumers resume) and `fun` runs
    /// again, up to `policy.max_retries` times (Kombu's defaults for this method:
    /// `interval_start=1`, `interval_step=1`, `interval_max=1`). Errors that remain are
    /// raised as `OperationalError`; channel errors are raised as they are.
    ///
    /// ```
    /// use kombu::{Connection, Error, RetryPolicy};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kombu::Result<()> {
    /// let conn = Connection::new("memory://")?;
    /// let mut attempts = 0;
    /// let policy = RetryPolicy::ensure_default().max_retries(3);
    /// let answer = conn
    ///     .ensure(&policy, |e: &Error, _interval: f64| eprintln!("retrying after: {e}"), || {
    ///         attempts += 1;
    ///         let first = attempts == 1;
    ///         async move {
    ///             if first {
    ///                 // What a lost broker connection looks like: reconnect, run again.
    ///                 Err(Error::RecoverableConnection("connection reset".into()))
    ///             } else {
    ///                 Ok(42)
    ///             }
    ///         }
    ///     })
    ///     .await?;
    /// assert_eq!((answer, attempts), (42, 2));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ensure<T, E, F, Fut>(&self, policy: &RetryPolicy, mut errback: E, mut fun: F) -> Result<T>
    where
        E: FnMut(&Error, f64),
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut retries: u32 = 0;
        loop {
            match fun().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_recoverable_connection_error() => {
                    if policy.max_retries.is_some_and(|m| retries >= m) {
                        return Err(as_library_error(e));
                    }
                    tracing::debug!("ensure connection error: {e}");
                    self.lost(&e);
                    errback(&e, 0.0);
                    let remaining = policy.max_retries.map(|m| m.saturating_sub(retries).max(1));
                    let conn_policy = RetryPolicy { max_retries: remaining, ..policy.clone() };
                    self.ensure_connection(&conn_policy, &mut errback).await?;
                    retries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Kombu's `autoretry`: run `fun` with the default channel under [`Connection::ensure`]
    /// with the default retry policy.
    ///
    /// ```
    /// use kombu::{Connection, Queue};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kombu::Result<()> {
    /// let conn = Connection::new("memory://")?;
    /// let tasks = Queue::new("autoretry-tasks");
    /// let name = conn
    ///     .autoretry(|channel| {
    ///         let mut queue = tasks.bind(&channel);
    ///         async move { queue.declare(false).await }
    ///     })
    ///     .await?;
    /// assert_eq!(name, "autoretry-tasks");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn autoretry<T, F, Fut>(&self, mut fun: F) -> Result<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let policy = RetryPolicy::ensure_default();
        self.ensure(&policy, crate::connection::no_errback, || fun(self.default_channel_handle())).await
    }

    /// A new channel.
    pub async fn channel(&self) -> Result<Channel> {
        let ch = Channel::new(self, false);
        ch.raw().await?;
        Ok(ch)
    }

    /// The default channel: created on first use, re-opened when the broker closed it, and
    /// closed with the connection.
    pub async fn default_channel(&self) -> Result<Channel> {
        let ch = self.default_channel_handle();
        ch.raw().await?;
        Ok(ch)
    }

    /// The default channel without opening it (it opens on first use).
    pub fn default_channel_handle(&self) -> Channel {
        let mut st = lock(&self.inner.state);
        match &st.default_channel {
            Some(ch) => ch.clone(),
            None => {
                let ch = Channel::new(self, true);
                st.default_channel = Some(ch.clone());
                ch
            }
        }
    }

    /// Wait for a single event from the broker and dispatch it (a delivery goes to its
    /// consumer's callbacks). `Err(TimeoutError)` when `timeout` passes first.
    pub async fn drain_events(&self, timeout: Option<Duration>) -> Result<()> {
        // A transport the broker closed still holds its last events (ending with the close),
        // so it is read rather than replaced; only without one do we connect.
        let current = lock(&self.inner.state).transport.clone();
        let t = match current {
            Some(t) => t,
            None => self.transport().await?,
        };
        if self.inner.has_orphans.swap(false, Ordering::SeqCst) {
            // Boxed: its state stays out of every wait's future.
            Box::pin(self.cancel_orphans()).await;
        }
        // An event already waiting is taken without the transport's wait (and its timer).
        let next = match t.try_next_event() {
            Ok(Some(ev)) => Ok(ev),
            Ok(None) => t.next_event(timeout).await,
            Err(e) => Err(e),
        };
        match next {
            Ok(ev) => self.dispatch(ev),
            Err(e) => Err(self.connection_failed(e)),
        }
    }

    /// Dispatch every event already waiting, without blocking; returns how many.
    pub fn drain_nowait(&self) -> Result<usize> {
        let current = lock(&self.inner.state).transport.clone();
        let Some(t) = current else { return Ok(0) };
        let mut n = 0;
        loop {
            match t.try_next_event() {
                Ok(Some(ev)) => {
                    self.dispatch(ev)?;
                    n += 1;
                }
                Ok(None) => return Ok(n),
                Err(e) => return Err(self.connection_failed(e)),
            }
        }
    }

    /// The consumer `tag` on the transport channel `raw` lost every handle (or its channel
    /// did): nothing will take what the broker sends it. Each delivery to it would be
    /// requeued and sent to it again at once, without end — an event always waiting, so a
    /// wait for events would never yield. It is cancelled at the broker by the next
    /// [`Connection::drain_events`]; until then its deliveries are held ([`Connection::hold`]).
    pub(crate) fn orphaned(&self, raw: Arc<dyn RawChannel>, tag: Name) {
        let mut o = lock(&self.inner.orphans);
        if !o.has(&raw, &tag) {
            o.consumers.push((raw, tag));
        }
        self.inner.has_orphans.store(true, Ordering::SeqCst);
    }

    /// Requeue the delivery `delivery_tag` on `raw` once the orphaned consumers are cancelled.
    pub(crate) fn hold(&self, raw: Arc<dyn RawChannel>, delivery_tag: u64) {
        lock(&self.inner.orphans).held.push((raw, delivery_tag));
    }

    /// Hold the delivery when it is for an orphaned consumer not cancelled yet.
    pub(crate) fn hold_for_orphan(&self, raw: &Arc<dyn RawChannel>, tag: &str, delivery_tag: u64) -> bool {
        let mut o = lock(&self.inner.orphans);
        let orphan = o.has(raw, tag);
        if orphan {
            o.held.push((raw.clone(), delivery_tag));
        }
        orphan
    }

    /// Cancel the orphaned consumers at the broker, then requeue the deliveries held for them.
    async fn cancel_orphans(&self) {
        let consumers = std::mem::take(&mut lock(&self.inner.orphans).consumers);
        for (raw, tag) in consumers {
            // (A closed channel's consumers are gone and its deliveries requeued already.)
            if raw.is_open() {
                if let Err(e) = raw.basic_cancel(&tag).await {
                    tracing::warn!("could not cancel the dropped consumer {tag}: {e}");
                }
            }
        }
        let held = std::mem::take(&mut lock(&self.inner.orphans).held);
        for (raw, d) in held {
            let _ = raw.basic_reject(d, true);
        }
    }

    pub(crate) fn connection_failed(&self, e: Error) -> Error {
        if e.is_connection_error() {
            self.lost(&e);
        }
        e
    }

    fn slot(&self, channel: u32) -> Option<(Option<Channel>, Arc<dyn RawChannel>)> {
        let st = lock(&self.inner.state);
        st.slots.get(&channel).map(|s| (s.channel.upgrade().map(|inner| Channel { inner }), s.raw.clone()))
    }

    fn dispatch(&self, ev: ServerEvent) -> Result<()> {
        match ev {
            ServerEvent::Deliver { channel, consumer_tag, delivery } => {
                let Some((ch, raw)) = self.slot(channel) else {
                    tracing::warn!("delivery for unknown channel {channel}");
                    return Ok(());
                };
                match ch {
                    Some(ch) => ch.deliver(consumer_tag, delivery, raw),
                    None => {
                        // The channel handle is gone, and with it the consumer's callback:
                        // the message goes back once the consumer is cancelled (requeued now,
                        // it would come straight back to it).
                        self.hold(raw.clone(), delivery.delivery_tag);
                        self.orphaned(raw, consumer_tag);
                        Ok(())
                    }
                }
            }
            ServerEvent::Return { channel, returned } => {
                if let Some((Some(ch), _)) = self.slot(channel) {
                    let err = Error::channel(
                        ReplyCode::from_code(returned.reply_code),
                        format!("basic.return: ({}) {}", returned.reply_code, returned.reply_text),
                    );
                    let delivery = Delivery {
                        delivery_tag: 0,
                        redelivered: false,
                        exchange: returned.exchange.clone(),
                        routing_key: returned.routing_key.clone(),
                        content: returned.content,
                        extra: None,
                    };
                    let msg = Message::from_delivery(delivery, None, None, true);
                    for cb in ch.return_callbacks() {
                        cb(&err, &returned.exchange, &returned.routing_key, &msg);
                    }
                }
                Ok(())
            }
            ServerEvent::Cancel { channel, consumer_tag } => {
                if let Some((Some(ch), _)) = self.slot(channel) {
                    ch.broker_cancelled(&consumer_tag);
                }
                Ok(())
            }
            ServerEvent::ChannelClosed { channel, error } => {
                if let Some((Some(ch), raw)) = self.slot(channel) {
                    ch.broker_closed(&raw, error);
                }
                Ok(())
            }
            ServerEvent::ConnectionClosed { error } => {
                self.lost(&error);
                Err(error)
            }
            ServerEvent::Blocked { reason } => {
                self.emit(ConnectionEvent::Blocked { reason });
                Ok(())
            }
            ServerEvent::Unblocked => {
                self.emit(ConnectionEvent::Unblocked);
                Ok(())
            }
            ServerEvent::Ack { .. } | ServerEvent::Nack { .. } | ServerEvent::Flow { .. } => Ok(()),
        }
    }

    /// Send and check heartbeats (Kombu's `heartbeat_check`); call about once a second on
    /// transports with heartbeats. A no-op otherwise.
    pub async fn heartbeat_check(&self) -> Result<()> {
        match self.live_transport() {
            Some(t) => t.heartbeat_check().await.map_err(|e| self.connection_failed(e)),
            None => Ok(()),
        }
    }

    /// Close the connection (Kombu's `release()` for a connection that is not pooled).
    /// Unacknowledged messages go back to their queues.
    pub async fn release(&self) -> Result<()> {
        self.close().await
    }

    /// Close the connection and its channels. The connection can't be used afterwards.
    pub async fn close(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::SeqCst);
        let t = {
            let mut st = lock(&self.inner.state);
            st.default_channel = None;
            st.slots.clear();
            st.transport.take()
        };
        if let Some(t) = t {
            t.close().await?;
        }
        Ok(())
    }

    /// The declaration cache key set (Kombu's `declared_entities`), cleared on reconnect.
    pub(crate) fn declared(&self) -> MutexGuard<'_, SortedMap<u64, ()>> {
        lock(&self.inner.declared)
    }

    /// Record `raw` as the channel `id` of the current transport, opened for `channel`.
    pub(crate) fn open_slot(&self, id: u32, channel: &Arc<ChannelInner>, raw: Arc<dyn RawChannel>) {
        lock(&self.inner.state).slots.insert(id, Slot { channel: Arc::downgrade(channel), raw });
    }

    /// Forget the channel `id` of the current transport (closed by its owner).
    pub(crate) fn close_slot(&self, id: u32) {
        lock(&self.inner.state).slots.remove(&id);
    }

    pub(crate) fn register_channel(&self, ch: &Arc<ChannelInner>) {
        let mut chans = lock(&self.inner.channels);
        chans.retain(|w| w.strong_count() > 0);
        chans.push(Arc::downgrade(ch));
    }
}

/// The errback of the crate's own retries, which have nothing to report: one function
/// (one type), so that `ensure` and `ensure_connection` are not compiled again for each
/// empty closure.
pub(crate) fn no_errback(_: &Error, _: f64) {}

/// Where [`Connection::ensure_connection`]'s attempts are.
struct Reconnect {
    started: Instant,
    intervals: crate::retry::Intervals,
    retries: u32,
    /// The last attempt's failure and the interval before the next.
    failed: Option<(Error, f64)>,
}

fn as_library_error(e: Error) -> Error {
    match e {
        Error::Operational(_) => e,
        other => Error::Operational(other.to_string()),
    }
}

fn connect_info(raw_url: &str, options: &ConnectionOptions) -> Result<ConnectInfo> {
    let p = url::parse_url(raw_url)?;
    let transport_name = options.transport.clone().unwrap_or_else(|| url::resolve_alias(&p.transport).to_owned());
    let mut opts = p.transport_options();
    for (k, v) in &options.transport_options {
        opts.insert(k.clone(), v.clone());
    }
    let default_port = url::default_port(&transport_name);
    Ok(ConnectInfo {
        hostname: p.hostname.clone().unwrap_or_else(|| "localhost".into()),
        port: p.port.or(default_port),
        userid: p.userid.clone().or_else(|| options.userid.clone()),
        password: p.password.clone().or_else(|| options.password.clone()),
        virtual_host: p
            .virtual_host
            .clone()
            .or_else(|| options.virtual_host.clone())
            .unwrap_or_else(|| "/".into()),
        path: p.path.clone(),
        ssl: options.ssl.or(p.ssl()).unwrap_or(matches!(transport_name.as_str(), "amqps" | "rediss") || transport_name.ends_with("+wss")),
        connect_timeout: options.connect_timeout.or(p.connect_timeout()),
        heartbeat: options.heartbeat.or(p.heartbeat()),
        login_method: options.login_method.clone().or_else(|| p.login_method()),
        options: opts,
        transport: transport_name,
    })
}
