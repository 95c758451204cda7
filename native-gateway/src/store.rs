//! `--data-dir`: the embedded broker's durable state on disk.
//!
//! The core broker journals changes to its durable state ([`kombu::broker::Record`]); this
//! store keeps them in a [redb](https://docs.rs/redb) database, `DIR/broker.redb`, and gives
//! them back at start ([`Store::recover`]). A thread of its own writes them: everything
//! journalled since its last commit goes in one transaction (group commit), committed with
//! [`redb::Durability::Immediate`] (fsync'ed before the commit returns); then it tells the
//! broker, which releases the publisher confirms waiting for those records. So a confirm
//! reaches no client before what it confirms is on disk, and the broker's lock is never held
//! during a disk write. An acknowledgement is kept at the next commit (a few milliseconds);
//! a confirm received after it means it is kept. A write that fails stops the gateway (exit
//! code 74) without confirming that batch.
//!
//! Tables: exchanges and queues by `vhost \0 name` (their declaration as JSON), bindings by
//! their JSON, messages by `(vhost \0 queue, id)` (properties as JSON, then the body).
// redb::Error is ~170 bytes, and so is StoreError with it. Every Result here is the store's
// (opening, recovering, one write per group of changes on its own thread), never a hot path
// that returns through many frames: boxing the error would buy nothing.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kombu::broker::{DurableBinding, Record, Recovered, StoredMessage};
use kombu::properties::Properties;
use kombu::proto::methods::{Content, ExchangeDeclare, Name, QueueDeclare};
use kombu::transport::memory::MemoryBroker;
use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

const EXCHANGES: TableDefinition<&str, &[u8]> = TableDefinition::new("exchanges");
const QUEUES: TableDefinition<&str, &[u8]> = TableDefinition::new("queues");
const BINDINGS: TableDefinition<&str, ()> = TableDefinition::new("bindings");
const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");

/// Errors opening or reading the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory could not be created.
    #[error("data directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    /// The database could not be opened, read or written (another gateway holding it
    /// included).
    #[error("data directory {0}: {1}")]
    Db(PathBuf, redb::Error),
    /// A stored entry is not what this version writes.
    #[error("data directory {0}: corrupt entry {1}: {2}")]
    Corrupt(PathBuf, String, String),
}

/// The embedded broker's store (see the module documentation).
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

#[derive(Serialize, Deserialize)]
struct MessageHead {
    vhost: String,
    queue: String,
    exchange: String,
    routing_key: String,
    properties: Properties,
}

fn name_key(vhost: &str, name: &str) -> String {
    format!("{vhost}\0{name}")
}

fn encode_message(m: &StoredMessage) -> Vec<u8> {
    let head = MessageHead {
        vhost: m.vhost.to_string(),
        queue: m.queue.to_string(),
        exchange: m.exchange.to_string(),
        routing_key: m.routing_key.to_string(),
        properties: m.content.properties.clone(),
    };
    let head = serde_json::to_vec(&head).expect("message properties serialize");
    let mut out = Vec::with_capacity(4 + head.len() + m.content.body.len());
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&m.content.body);
    out
}

fn decode_message(id: u64, bytes: &[u8]) -> Result<StoredMessage, String> {
    let len = bytes.get(..4).ok_or("truncated")?;
    let len = u32::from_le_bytes(len.try_into().map_err(|_| "truncated")?) as usize;
    let head = bytes.get(4..4 + len).ok_or("truncated")?;
    let head: MessageHead = serde_json::from_slice(head).map_err(|e| e.to_string())?;
    Ok(StoredMessage {
        id,
        vhost: Name::from(head.vhost),
        queue: Name::from(head.queue),
        exchange: Name::from(head.exchange),
        routing_key: Name::from(head.routing_key),
        content: Arc::new(Content { properties: head.properties, body: bytes[4 + len..].to_vec().into() }),
    })
}

impl Store {
    /// Open (or create) the store in `dir`, creating the directory if needed. Fails when
    /// another process has it open.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Dir(dir.to_owned(), e))?;
        let path = dir.join("broker.redb");
        let db = Database::create(&path).map_err(|e| StoreError::Db(path.clone(), e.into()))?;
        let store = Store { db, path };
        // Create the tables, so that reading a new store finds them.
        store
            .db_op(|| {
                let tx = store.db.begin_write()?;
                tx.open_table(EXCHANGES)?;
                tx.open_table(QUEUES)?;
                tx.open_table(BINDINGS)?;
                tx.open_table(MESSAGES)?;
                tx.commit()?;
                Ok(())
            })?;
        Ok(store)
    }

    fn db_op<T>(&self, f: impl FnOnce() -> Result<T, redb::Error>) -> Result<T, StoreError> {
        f().map_err(|e| StoreError::Db(self.path.clone(), e))
    }

    fn corrupt(&self, what: String, why: impl ToString) -> StoreError {
        StoreError::Corrupt(self.path.clone(), what, why.to_string())
    }

    /// Everything kept: what the broker is rebuilt from.
    pub fn recover(&self) -> Result<Recovered, StoreError> {
        let tx = self.db_op(|| Ok(self.db.begin_read()?))?;
        let mut r = Recovered::default();
        let exchanges = self.db_op(|| Ok(tx.open_table(EXCHANGES)?))?;
        for e in self.db_op(|| Ok(exchanges.iter()?))? {
            let (k, v) = self.db_op(|| Ok(e?))?;
            let (vhost, name) = k.value().split_once('\0').ok_or_else(|| self.corrupt(format!("exchange {:?}", k.value()), "no vhost"))?;
            let decl: ExchangeDeclare = serde_json::from_slice(v.value()).map_err(|e| self.corrupt(format!("exchange {name:?}"), e))?;
            r.exchanges.push((vhost.to_owned(), decl));
        }
        let queues = self.db_op(|| Ok(tx.open_table(QUEUES)?))?;
        for e in self.db_op(|| Ok(queues.iter()?))? {
            let (k, v) = self.db_op(|| Ok(e?))?;
            let (vhost, name) = k.value().split_once('\0').ok_or_else(|| self.corrupt(format!("queue {:?}", k.value()), "no vhost"))?;
            let decl: QueueDeclare = serde_json::from_slice(v.value()).map_err(|e| self.corrupt(format!("queue {name:?}"), e))?;
            r.queues.push((vhost.to_owned(), decl));
        }
        let bindings = self.db_op(|| Ok(tx.open_table(BINDINGS)?))?;
        for e in self.db_op(|| Ok(bindings.iter()?))? {
            let (k, _) = self.db_op(|| Ok(e?))?;
            let b: DurableBinding = serde_json::from_str(k.value()).map_err(|e| self.corrupt(format!("binding {:?}", k.value()), e))?;
            r.bindings.push(b);
        }
        let messages = self.db_op(|| Ok(tx.open_table(MESSAGES)?))?;
        for e in self.db_op(|| Ok(messages.iter()?))? {
            let (k, v) = self.db_op(|| Ok(e?))?;
            let (_, id) = k.value();
            r.messages.push(decode_message(id, v.value()).map_err(|e| self.corrupt(format!("message {id}"), e))?);
        }
        r.messages.sort_by_key(|m| m.id);
        Ok(r)
    }

    /// Keep `records` in one transaction, durable when this returns.
    pub fn write(&mut self, records: &[Record]) -> Result<(), StoreError> {
        self.db_op(|| {
            let mut tx = self.db.begin_write()?;
            tx.set_durability(Durability::Immediate);
            apply(&tx, records)?;
            tx.commit()?;
            Ok(())
        })
    }
}

fn apply(tx: &WriteTransaction, records: &[Record]) -> Result<(), redb::Error> {
    let mut exchanges = tx.open_table(EXCHANGES)?;
    let mut queues = tx.open_table(QUEUES)?;
    let mut bindings = tx.open_table(BINDINGS)?;
    let mut messages = tx.open_table(MESSAGES)?;
    for r in records {
        match r {
            Record::ExchangeDeclared { vhost, decl } => {
                let v = serde_json::to_vec(decl).expect("declarations serialize");
                exchanges.insert(name_key(vhost, &decl.exchange).as_str(), v.as_slice())?;
            }
            Record::ExchangeDeleted { vhost, exchange } => {
                exchanges.remove(name_key(vhost, exchange).as_str())?;
                bindings.retain(|k, _| {
                    serde_json::from_str::<DurableBinding>(k).map_or(true, |b| {
                        !(b.vhost == **vhost && (b.source == **exchange || (b.to_exchange && b.destination == **exchange)))
                    })
                })?;
            }
            Record::QueueDeclared { vhost, decl } => {
                let v = serde_json::to_vec(decl).expect("declarations serialize");
                queues.insert(name_key(vhost, &decl.queue).as_str(), v.as_slice())?;
            }
            Record::QueueDeleted { vhost, queue } => {
                let key = name_key(vhost, queue);
                queues.remove(key.as_str())?;
                bindings.retain(|k, _| {
                    serde_json::from_str::<DurableBinding>(k)
                        .map_or(true, |b| !(b.vhost == **vhost && !b.to_exchange && b.destination == **queue))
                })?;
                messages.retain_in((key.as_str(), 0)..=(key.as_str(), u64::MAX), |_, _| false)?;
            }
            Record::Bound(b) => {
                bindings.insert(serde_json::to_string(b).expect("bindings serialize").as_str(), ())?;
            }
            Record::Unbound(b) => {
                bindings.remove(serde_json::to_string(b).expect("bindings serialize").as_str())?;
            }
            Record::MessageStored(m) => {
                let key = name_key(&m.vhost, &m.queue);
                messages.insert((key.as_str(), m.id), encode_message(m).as_slice())?;
            }
            Record::MessageRemoved { vhost, queue, id } => {
                messages.remove((name_key(vhost, queue).as_str(), *id))?;
            }
        }
    }
    Ok(())
}

/// What the broker journalled and the writer thread has not kept yet; publishers wait on it
/// ([`room`]), so that neither the writer's queue nor the confirms the broker holds until
/// their records are kept grow without bound when the disk is slower than the publishers.
struct Backlog {
    attached: std::sync::atomic::AtomicBool,
    /// Approximate bytes of the records queued to the writer ([`record_size`]).
    bytes: std::sync::atomic::AtomicUsize,
    /// Publishes since the writer's last commit.
    publishes: std::sync::atomic::AtomicUsize,
    kept: tokio::sync::Notify,
}

static BACKLOG: std::sync::LazyLock<Backlog> = std::sync::LazyLock::new(Backlog::default);

impl Default for Backlog {
    fn default() -> Self {
        Backlog { attached: false.into(), bytes: 0.into(), publishes: 0.into(), kept: tokio::sync::Notify::new() }
    }
}

impl Backlog {
    /// A publish happened: wait while the writer is too far behind (see [`room`]).
    async fn room(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.attached.load(Relaxed) {
            return;
        }
        self.publishes.fetch_add(1, Relaxed);
        loop {
            let kept = self.kept.notified();
            let bytes = self.bytes.load(Relaxed);
            if bytes <= MAX_BACKLOG_BYTES && (bytes == 0 || self.publishes.load(Relaxed) <= MAX_BACKLOG_PUBLISHES) {
                return;
            }
            kept.await;
        }
    }

    /// The writer kept `bytes` of records.
    fn kept(&self, bytes: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.bytes.fetch_sub(bytes, Relaxed);
        self.publishes.store(0, Relaxed);
        self.kept.notify_waiters();
    }
}

/// Bytes of records queued to the writer past which publishes wait ([`room`]).
pub const MAX_BACKLOG_BYTES: usize = 16 << 20;
/// Publishes between two commits past which publishes wait ([`room`]): each may hold a
/// confirm until the next commit.
pub const MAX_BACKLOG_PUBLISHES: usize = 20_000;

/// The size a record counts for in the writer's backlog: its body, and a little for the rest.
fn record_size(r: &Record) -> usize {
    256 + match r {
        Record::MessageStored(m) => m.content.body.len(),
        _ => 0,
    }
}

/// After a publish to the embedded broker: with a data directory, wait while the store's
/// writer is behind by more than [`MAX_BACKLOG_BYTES`] or [`MAX_BACKLOG_PUBLISHES`] (the
/// gateway reads nothing more from the publisher meanwhile). At once otherwise.
pub(crate) async fn room() {
    BACKLOG.room().await;
}

/// Bytes of records the store's writer has been given and not kept yet (0 without
/// `--data-dir`): the `kombu_gateway_store_backlog_bytes` gauge.
pub fn backlog_bytes() -> usize {
    BACKLOG.bytes.load(std::sync::atomic::Ordering::Relaxed)
}

/// The broker's side of the store: records are queued to the writer thread.
#[derive(Debug)]
struct Journal {
    tx: std::sync::mpsc::Sender<(u64, Vec<Record>)>,
}

impl kombu::transport::memory::Persist for Journal {
    fn write(&mut self, position: u64, records: Vec<Record>) {
        BACKLOG.bytes.fetch_add(records.iter().map(record_size).sum(), std::sync::atomic::Ordering::Relaxed);
        // The writer only goes away with the process.
        let _ = self.tx.send((position, records));
    }
}

/// The writer thread: whatever has queued up since the last commit goes in one transaction
/// (group commit), then the confirms waiting for it are released.
fn writer(mut store: Store, rx: std::sync::mpsc::Receiver<(u64, Vec<Record>)>, broker: MemoryBroker) {
    while let Ok((mut position, mut records)) = rx.recv() {
        while let Ok((p, more)) = rx.try_recv() {
            position = p;
            records.extend(more);
        }
        if let Err(e) = store.write(&records) {
            // Nothing of this batch is confirmed; stop rather than go on without keeping.
            tracing::error!("cannot keep the broker's durable state, stopping: {e}");
            eprintln!("kombu-gateway: cannot keep the broker's durable state, stopping: {e}");
            std::process::exit(74);
        }
        broker.journal_kept(position);
        BACKLOG.kept(records.iter().map(record_size).sum());
    }
}

/// Open the store in `dir`, rebuild the embedded broker (the process-wide `memory://` one the
/// gateway serves) from it, and keep every later change there, written by a thread of its
/// own. What could not be restored is logged as a warning.
pub fn attach(dir: &Path) -> Result<(), StoreError> {
    let store = Store::open(dir)?;
    let recovered = store.recover()?;
    let (x, q, b, m) = (recovered.exchanges.len(), recovered.queues.len(), recovered.bindings.len(), recovered.messages.len());
    let broker = MemoryBroker::global();
    let (tx, rx) = std::sync::mpsc::channel();
    let failed = broker.persist(recovered, Box::new(Journal { tx }));
    for f in &failed {
        tracing::warn!("data directory {}: not restored: {}: {}", dir.display(), f.what, f.error);
    }
    BACKLOG.attached.store(true, std::sync::atomic::Ordering::Relaxed);
    std::thread::Builder::new()
        .name("kombu-store".into())
        .spawn(move || writer(store, rx, broker))
        .map_err(|e| StoreError::Dir(dir.to_owned(), e))?;
    tracing::info!(data_dir = %dir.display(), exchanges = x, queues = q, bindings = b, messages = m, "recovered the embedded broker's durable state");
    Ok(())
}

/// Wait (up to `timeout`) until everything the embedded broker journalled is kept: at a clean
/// shutdown, so that acknowledgements of the last moments are not lost.
pub fn flush(timeout: std::time::Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while MemoryBroker::global().with(|b| b.journal_pending()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kombu::value::Headers;

    fn message(id: u64, queue: &str, body: &str) -> Record {
        let properties = Properties { delivery_mode: Some(2), content_type: Some("text/plain".into()), ..Default::default() };
        Record::MessageStored(StoredMessage {
            id,
            vhost: "/v".into(),
            queue: queue.into(),
            exchange: "x".into(),
            routing_key: "k".into(),
            content: Arc::new(Content { properties, body: body.as_bytes().to_vec().into() }),
        })
    }

    #[tokio::test]
    async fn publishes_wait_while_the_writer_is_behind_and_go_on_once_it_keeps() {
        use futures::FutureExt;
        use std::sync::atomic::Ordering::Relaxed;
        let b = Backlog::default();
        // Without a data directory, never.
        b.bytes.store(usize::MAX / 2, Relaxed);
        assert!(b.room().now_or_never().is_some());
        b.attached.store(true, Relaxed);
        // Too many bytes behind: wait until the writer keeps them.
        b.bytes.store(MAX_BACKLOG_BYTES + 1, Relaxed);
        let mut waiting = Box::pin(b.room());
        assert!(waiting.as_mut().now_or_never().is_none());
        b.kept(MAX_BACKLOG_BYTES + 1);
        assert!(waiting.now_or_never().is_some());
        // Few bytes, but many publishes (each may hold a confirm) since the last commit.
        b.bytes.store(300, Relaxed);
        for _ in 0..MAX_BACKLOG_PUBLISHES - 1 {
            assert!(b.room().now_or_never().is_some());
        }
        let mut waiting = Box::pin(b.room());
        assert!(waiting.as_mut().now_or_never().is_some(), "at the limit");
        let mut waiting_more = Box::pin(b.room());
        assert!(waiting_more.as_mut().now_or_never().is_none(), "past the limit");
        drop(waiting);
        b.kept(300);
        assert!(waiting_more.now_or_never().is_some());
        // Nothing pending: publishes never wait (nothing holds their confirms).
        for _ in 0..2 * MAX_BACKLOG_PUBLISHES {
            assert!(b.room().now_or_never().is_some());
        }
    }

    #[test]
    fn records_are_kept_across_reopening_and_deletes_take_what_depends_on_them() {
        let dir = std::env::temp_dir().join(format!("kombu-store-{}", kombu::uuid()));
        let binding = DurableBinding {
            vhost: "/v".into(),
            source: "x".into(),
            destination: "q".into(),
            to_exchange: false,
            routing_key: "k".into(),
            arguments: Headers::new(),
        };
        {
            let mut s = Store::open(&dir).unwrap();
            s.write(&[
                Record::ExchangeDeclared { vhost: "/v".into(), decl: ExchangeDeclare { exchange: "x".into(), durable: true, ..Default::default() } },
                Record::QueueDeclared { vhost: "/v".into(), decl: QueueDeclare { queue: "q".into(), durable: true, ..Default::default() } },
                Record::QueueDeclared { vhost: "/v".into(), decl: QueueDeclare { queue: "other".into(), durable: true, ..Default::default() } },
                Record::Bound(binding.clone()),
                message(3, "q", "first"),
                message(7, "q", "second"),
                message(8, "other", "elsewhere"),
                message(9, "q", "third"),
            ])
            .unwrap();
            s.write(&[Record::MessageRemoved { vhost: "/v".into(), queue: "q".into(), id: 7 }]).unwrap();
            // One process at a time.
            let err = Store::open(&dir).unwrap_err();
            assert!(err.to_string().contains("broker.redb"), "{err}");
        }
        let mut s = Store::open(&dir).unwrap();
        let r = s.recover().unwrap();
        assert_eq!(r.exchanges.len(), 1);
        assert_eq!(r.queues.iter().map(|(v, q)| (v.as_str(), q.queue.as_str())).collect::<Vec<_>>(), [("/v", "other"), ("/v", "q")]);
        assert_eq!(r.bindings, [binding]);
        let bodies: Vec<(u64, &str, &[u8])> = r.messages.iter().map(|m| (m.id, &*m.queue, &m.content.body[..])).collect();
        assert_eq!(bodies, [(3, "q", &b"first"[..]), (8, "other", b"elsewhere"), (9, "q", b"third")]);
        assert_eq!(r.messages[0].content.properties.content_type.as_deref(), Some("text/plain"));
        s.write(&[Record::QueueDeleted { vhost: "/v".into(), queue: "q".into() }]).unwrap();
        let r = s.recover().unwrap();
        assert_eq!(r.queues.len(), 1);
        assert!(r.bindings.is_empty());
        assert_eq!(r.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [8]);
        s.write(&[Record::ExchangeDeleted { vhost: "/v".into(), exchange: "x".into() }]).unwrap();
        assert!(s.recover().unwrap().exchanges.is_empty());
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
