//! The SQS store: Kombu's storage hooks as SQS calls (see [`super`]).
//!
//! Receiving: each queue a consumer reads has at most one ReceiveMessage long poll in
//! flight, all of them at once; what they bring is buffered here until a fetch takes it
//! (the prefetch bounds MaxNumberOfMessages). A poll that comes back after the connection
//! closed releases its messages (visibility 0, as Kombu's `_release_messages`).
//!
//! Publishing: publishes to one queue issued while another is on its way go out together
//! in SendMessageBatch calls (10 entries, 256 KiB at most).
//!
//! Settling: acks, rejects and requeues are queued and applied by a task per store, grouped
//! per queue into DeleteMessageBatch / ChangeMessageVisibilityBatch calls of up to 10
//! entries. The same task extends the visibility of messages held (received, buffered or
//! delivered, and not settled) longer than a third of `visibility_timeout` (ChangeMessageVisibilityBatch), so a live consumer's long work is
//! not redelivered; a consumer that dies stops extending and SQS redelivers.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use kombu::proto::methods::{Name, QueueDeclare};
use kombu::transport::virtual_channel::{mark_redelivered, BindingRow, Fetch, Fetched, Outgoing, Settle, Store};
use kombu::transport::ConnectInfo;
use kombu::value::{Headers, Value};
use kombu::{Error, ReplyCode, Result};
use serde_json::{json, Value as Json};
use tokio::sync::{mpsc, oneshot, Notify};

use super::client::{Endpoint, SqsClient, SqsError};
use super::SqsOptions;

/// SQS's largest message when the queue does not say (`MaximumMessageSize`, bytes).
const DEFAULT_MAX_MESSAGE_SIZE: usize = 262_144;
/// SQS takes at most 10 messages per receive and 10 entries per batch call.
const BATCH: usize = 10;
/// The most a SendMessageBatch carries in all (SQS's limit for a batch's total payload).
const BATCH_BYTES: usize = 262_144;

/// Process-wide counts of the SQS calls made, per operation, for `/metrics` and tests.
pub fn calls() -> &'static Mutex<std::collections::BTreeMap<String, u64>> {
    static C: std::sync::OnceLock<Mutex<std::collections::BTreeMap<String, u64>>> = std::sync::OnceLock::new();
    C.get_or_init(Mutex::default)
}

/// Prometheus text of [`calls`].
pub fn render_calls() -> String {
    let mut s = String::from("# HELP kombu_gateway_sqs_calls_total SQS API calls made, per operation.\n# TYPE kombu_gateway_sqs_calls_total counter\n");
    for (op, n) in lock(calls()).iter() {
        s.push_str(&format!("kombu_gateway_sqs_calls_total{{operation=\"{op}\"}} {n}\n"));
    }
    s
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A queue this store knows: its URL, where its calls go, and what SQS allows on it.
#[derive(Debug, Clone)]
struct QueueRef {
    url: String,
    at: Arc<Endpoint>,
    fifo: bool,
    max_size: Option<usize>,
}

enum Op {
    Settle(Fetched, Settle),
    Flush(oneshot::Sender<Result<()>>),
}

struct Inner {
    opts: SqsOptions,
    client: SqsClient,
    default_at: Arc<Endpoint>,
    /// Kombu queue name → its SQS queue.
    queues: Mutex<HashMap<String, QueueRef>>,
    /// Exchange → binding rows (Kombu keeps them in process memory too).
    tables: Mutex<HashMap<String, Vec<BindingRow>>>,
    /// Messages received and not yet taken by a fetch.
    buffer: Mutex<VecDeque<Fetched>>,
    /// Queues with a long poll in flight.
    polling: Mutex<HashMap<String, ()>>,
    /// A long poll that failed, for the next fetch.
    poll_error: Mutex<Option<Error>>,
    arrived: Notify,
    /// Delivered and not yet settled: ReceiptHandle → (queue, since).
    held: Mutex<HashMap<String, (String, Instant)>>,
    ops: mpsc::UnboundedSender<Op>,
    /// A settle batch that failed, for the next call.
    failed: Mutex<Option<Error>>,
    closed: std::sync::atomic::AtomicBool,
    /// Publishes waiting to go out, per queue URL (see [`Inner::send`]).
    sends: Mutex<HashMap<String, PendingSends>>,
}

/// The SendMessage inputs waiting for one queue, and whether a caller is sending them.
#[derive(Default)]
struct PendingSends {
    entries: VecDeque<(Json, oneshot::Sender<Result<()>>)>,
    sending: bool,
}

/// Kombu's SQS storage hooks for one connection.
pub struct SqsStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsStore").field("endpoint", &self.inner.default_at.url).finish_non_exhaustive()
    }
}

impl SqsStore {
    /// Check the endpoint and credentials (ListQueues with the prefix, as Kombu fills its
    /// queue cache; with predefined queues, GetQueueAttributes of the first one) and start
    /// the settle task.
    pub async fn connect(info: &ConnectInfo, opts: SqsOptions) -> Result<SqsStore> {
        let client = SqsClient::new(info, opts.call_timeout, opts.connect_timeout)?;
        let default_at = Arc::new(opts.endpoint.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            opts,
            client,
            default_at,
            queues: Mutex::default(),
            tables: Mutex::default(),
            buffer: Mutex::default(),
            polling: Mutex::default(),
            poll_error: Mutex::default(),
            arrived: Notify::new(),
            held: Mutex::default(),
            ops: tx,
            failed: Mutex::default(),
            closed: Default::default(),
            sends: Mutex::default(),
        });
        match inner.opts.predefined_queues.iter().next() {
            None => {
                let out = inner.call(&inner.default_at, "ListQueues", &json!({"QueueNamePrefix": inner.opts.queue_name_prefix}), 0).await?;
                let mut queues = lock(&inner.queues);
                for url in out.get("QueueUrls").and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str) {
                    let name = url.rsplit('/').next().unwrap_or(url).to_owned();
                    let fifo = name.ends_with(".fifo");
                    // Keyed by SQS name until a Kombu name maps to it.
                    queues.insert(format!("\0{name}"), QueueRef { url: url.to_owned(), at: inner.default_at.clone(), fifo, max_size: None });
                }
            }
            Some((_, q)) => {
                let at = Arc::new(q.endpoint.clone());
                inner.call(&at, "GetQueueAttributes", &json!({"QueueUrl": q.url, "AttributeNames": ["QueueArn"]}), 0).await?;
            }
        }
        tokio::spawn(settle_task(Arc::downgrade(&inner), rx));
        Ok(SqsStore { inner })
    }
}

impl Inner {
    async fn call(&self, at: &Endpoint, op: &str, input: &Json, wait: u32) -> Result<Json> {
        self.sqs_call(at, op, input, wait).await.map_err(Error::from)
    }

    /// A call, counted, with SQS's error as it came.
    async fn sqs_call(&self, at: &Endpoint, op: &str, input: &Json, wait: u32) -> std::result::Result<Json, SqsError> {
        *lock(calls()).entry(op.to_owned()).or_default() += 1;
        self.client.call(at, op, input, Duration::from_secs(u64::from(wait))).await
    }

    fn check_failed(&self) -> Result<()> {
        match lock(&self.failed).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn known(&self, queue: &str) -> Option<QueueRef> {
        lock(&self.queues).get(queue).cloned()
    }

    /// The queue's URL (GetQueueUrl, or the predefined one); `None` when SQS has no such
    /// queue.
    async fn lookup(&self, queue: &str) -> Result<Option<QueueRef>> {
        if let Some(q) = self.known(queue) {
            return Ok(Some(q));
        }
        let name = self.opts.sqs_name(queue);
        if !self.opts.predefined_queues.is_empty() {
            let p = self.opts.predefined_queues.get(&name).or_else(|| self.opts.predefined_queues.get(queue)).ok_or_else(|| {
                Error::channel(
                    ReplyCode::NotFound,
                    format!("SQS queue {name:?} (Kombu queue {queue:?}) is not in predefined_queues; with predefined_queues no other queue is used or created"),
                )
            })?;
            let q = QueueRef { url: p.url.clone(), at: Arc::new(p.endpoint.clone()), fifo: name.ends_with(".fifo"), max_size: None };
            lock(&self.queues).insert(queue.to_owned(), q.clone());
            return Ok(Some(q));
        }
        let cached = lock(&self.queues).remove(&format!("\0{name}"));
        let url = match cached {
            Some(q) => q.url,
            None => match self.sqs_call(&self.default_at, "GetQueueUrl", &json!({"QueueName": name}), 0).await {
                Ok(out) => out.get("QueueUrl").and_then(Json::as_str).map(str::to_owned).ok_or_else(|| Error::Operational("SQS GetQueueUrl answered without QueueUrl".into()))?,
                Err(SqsError::Service { code, .. }) if code == "QueueDoesNotExist" || code.ends_with("NonExistentQueue") => return Ok(None),
                Err(e) => return Err(e.into()),
            },
        };
        let q = QueueRef { url, at: self.default_at.clone(), fifo: name.ends_with(".fifo"), max_size: None };
        lock(&self.queues).insert(queue.to_owned(), q.clone());
        Ok(Some(q))
    }

    /// The queue, created when missing (Kombu's `_new_queue`).
    async fn ensure(&self, queue: &str) -> Result<QueueRef> {
        if let Some(q) = self.lookup(queue).await? {
            return Ok(q);
        }
        let name = self.opts.sqs_name(queue);
        let mut attributes = json!({"VisibilityTimeout": self.opts.visibility_timeout.to_string()});
        if name.ends_with(".fifo") {
            attributes["FifoQueue"] = json!("true");
        }
        let out = self.call(&self.default_at, "CreateQueue", &json!({"QueueName": name, "Attributes": attributes}), 0).await?;
        let url = out.get("QueueUrl").and_then(Json::as_str).ok_or_else(|| Error::Operational("SQS CreateQueue answered without QueueUrl".into()))?;
        let q = QueueRef { url: url.to_owned(), at: self.default_at.clone(), fifo: name.ends_with(".fifo"), max_size: None };
        lock(&self.queues).insert(queue.to_owned(), q.clone());
        Ok(q)
    }

    /// The largest body the queue takes (its `MaximumMessageSize`, asked once).
    async fn max_size(&self, queue: &str, q: &QueueRef) -> Result<usize> {
        if let Some(n) = q.max_size {
            return Ok(n);
        }
        let out = self.call(&q.at, "GetQueueAttributes", &json!({"QueueUrl": q.url, "AttributeNames": ["MaximumMessageSize"]}), 0).await?;
        let n = out.pointer("/Attributes/MaximumMessageSize").and_then(Json::as_str).and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_MAX_MESSAGE_SIZE);
        if let Some(known) = lock(&self.queues).get_mut(queue) {
            known.max_size = Some(n);
        }
        Ok(n)
    }

    /// Send one message (a SendMessage input without QueueUrl). Publishes to the same queue
    /// issued while another is on its way are sent together, up to 10 per
    /// SendMessageBatch: the first caller sends until nothing is left waiting, then every
    /// caller gets its own entry's answer.
    /// (The sending runs in its own task: a caller that gives up does not strand the rest.)
    async fn send(self: &Arc<Self>, q: &QueueRef, input: Json) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut sends = lock(&self.sends);
            let pending = sends.entry(q.url.clone()).or_default();
            pending.entries.push_back((input, tx));
            !std::mem::replace(&mut pending.sending, true)
        };
        if lead {
            let (inner, q) = (self.clone(), q.clone());
            tokio::spawn(async move { inner.drain_sends(&q).await });
        }
        rx.await.unwrap_or_else(|_| Err(Error::Operational("SQS send was abandoned".into())))
    }

    async fn drain_sends(&self, q: &QueueRef) {
        loop {
            let batch: Vec<(Json, oneshot::Sender<Result<()>>)> = {
                let mut sends = lock(&self.sends);
                let pending = sends.entry(q.url.clone()).or_default();
                let mut batch = Vec::new();
                let mut bytes = 0;
                while let Some((input, _)) = pending.entries.front() {
                    let size = input["MessageBody"].as_str().map_or(0, str::len) + input.get("MessageAttributes").map_or(0, |a| a.to_string().len());
                    if batch.len() == BATCH || (!batch.is_empty() && bytes + size > BATCH_BYTES) {
                        break;
                    }
                    bytes += size;
                    batch.push(pending.entries.pop_front().expect("front exists"));
                }
                if batch.is_empty() {
                    sends.remove(&q.url);
                    return;
                }
                batch
            };
            self.send_batch(q, batch).await;
        }
    }

    async fn send_batch(&self, q: &QueueRef, batch: Vec<(Json, oneshot::Sender<Result<()>>)>) {
        if batch.len() == 1 {
            let (mut input, tx) = batch.into_iter().next().expect("one entry");
            input["QueueUrl"] = json!(q.url);
            let _ = tx.send(self.call(&q.at, "SendMessage", &input, 0).await.map(|_| ()));
            return;
        }
        let entries: Vec<Json> = batch
            .iter()
            .enumerate()
            .map(|(i, (input, _))| {
                let mut e = input.clone();
                e["Id"] = json!(i.to_string());
                e
            })
            .collect();
        match self.call(&q.at, "SendMessageBatch", &json!({"QueueUrl": q.url, "Entries": entries}), 0).await {
            Err(e) => {
                for (_, tx) in batch {
                    let _ = tx.send(Err(e.clone()));
                }
            }
            Ok(out) => {
                let mut failed: HashMap<String, String> = HashMap::new();
                for f in out.get("Failed").and_then(Json::as_array).into_iter().flatten() {
                    let id = f.get("Id").and_then(Json::as_str).unwrap_or_default().to_owned();
                    failed.insert(id, format!("{}: {}", f.get("Code").and_then(Json::as_str).unwrap_or("?"), f.get("Message").and_then(Json::as_str).unwrap_or("")));
                }
                for (i, (_, tx)) in batch.into_iter().enumerate() {
                    let r = match failed.remove(&i.to_string()) {
                        None => Ok(()),
                        Some(why) => Err(Error::channel(ReplyCode::PreconditionFailed, format!("SQS SendMessageBatch refused the message: {why}"))),
                    };
                    let _ = tx.send(r);
                }
            }
        }
    }

    /// ReceiveMessage on one queue; the messages as the channel reads them.
    async fn receive(&self, queue: &Name, max: usize, wait: u32) -> Result<Vec<Fetched>> {
        let q = self.ensure(queue).await?;
        let mut input = json!({
            "QueueUrl": q.url,
            "MaxNumberOfMessages": max.clamp(1, BATCH),
            "WaitTimeSeconds": wait,
            "MessageSystemAttributeNames": self.opts.system_attribute_names,
        });
        if !self.opts.message_attribute_names.is_empty() {
            input["MessageAttributeNames"] = json!(self.opts.message_attribute_names);
        }
        let out = self.call(&q.at, "ReceiveMessage", &input, wait).await?;
        let mut got = Vec::new();
        for m in out.get("Messages").and_then(Json::as_array).into_iter().flatten() {
            let (Some(handle), Some(body)) = (m.get("ReceiptHandle").and_then(Json::as_str), m.get("Body").and_then(Json::as_str)) else {
                tracing::warn!(queue = %queue, "SQS returned a message without ReceiptHandle or Body; skipped");
                continue;
            };
            let receives = m.pointer("/Attributes/ApproximateReceiveCount").and_then(Json::as_str).and_then(|s| s.parse::<u64>().ok());
            let payload = to_envelope(body, receives.is_some_and(|n| n > 1));
            let extra = delivery_info_extra(m, &q.url);
            got.push(Fetched { queue: queue.clone(), token: handle.to_owned(), payload: Bytes::from(payload), broadcast: false, extra: Some(extra) });
        }
        // In flight from now on: their visibility is extended while this store holds them
        // (in the buffer or delivered), until settled, restored or released.
        self.hold(&got);
        Ok(got)
    }

    fn release_held(&self, handles: &[(String, String)]) {
        let mut held = lock(&self.held);
        for (_, h) in handles {
            held.remove(h);
        }
    }

    fn hold(&self, got: &[Fetched]) {
        let now = Instant::now();
        let mut held = lock(&self.held);
        for m in got {
            held.insert(m.token.clone(), (m.queue.to_string(), now));
        }
    }

    fn take_buffered(&self, queues: &[Name], max: usize) -> Vec<Fetched> {
        let mut buf = lock(&self.buffer);
        let mut out = Vec::new();
        let mut rest = VecDeque::with_capacity(buf.len());
        while let Some(m) = buf.pop_front() {
            if out.len() < max && queues.contains(&m.queue) {
                out.push(m);
            } else {
                rest.push_back(m);
            }
        }
        *buf = rest;
        out
    }

    /// Set the visibility of messages (0: available at once), in batches per queue.
    async fn change_visibility(&self, messages: &[(String, String)], timeout: u32) -> Result<()> {
        let mut by_queue: HashMap<&str, Vec<&str>> = HashMap::new();
        for (queue, handle) in messages {
            by_queue.entry(queue.as_str()).or_default().push(handle.as_str());
        }
        let mut first_err = None;
        for (queue, handles) in by_queue {
            let Some(q) = self.known(queue) else { continue };
            for chunk in handles.chunks(BATCH) {
                let entries: Vec<Json> = chunk.iter().enumerate().map(|(i, h)| json!({"Id": i.to_string(), "ReceiptHandle": h, "VisibilityTimeout": timeout})).collect();
                let r = self.call(&q.at, "ChangeMessageVisibilityBatch", &json!({"QueueUrl": q.url, "Entries": entries}), 0).await.and_then(|out| batch_failures("ChangeMessageVisibilityBatch", &out));
                if let Err(e) = r {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// The failed entries of a batch call as one error (a receipt handle that is no longer
/// valid, because the message was redelivered elsewhere, is not an error for a settle).
fn batch_failures(op: &str, out: &Json) -> Result<()> {
    let failed: Vec<String> = out
        .get("Failed")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter(|f| f.get("Code").and_then(Json::as_str) != Some("ReceiptHandleIsInvalid"))
        .map(|f| format!("{}: {}", f.get("Code").and_then(Json::as_str).unwrap_or("?"), f.get("Message").and_then(Json::as_str).unwrap_or("")))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::channel(ReplyCode::InternalError, format!("SQS {op}: {} entries failed: {}", failed.len(), failed.join("; "))))
    }
}

/// Kombu's `_optional_b64_decode`: the text decoded when it is canonical base64 of UTF-8.
fn optional_b64_decode(raw: &str) -> Option<String> {
    let candidate = raw.trim();
    if candidate.is_empty() || candidate.len() % 4 != 0 || !candidate.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=') {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(candidate).ok()?;
    String::from_utf8(decoded).ok()
}

/// Kombu's SQS entries of `delivery_info`: `sqs_message`, the message as ReceiveMessage
/// returned it (MessageId, ReceiptHandle, MD5OfBody, Body, Attributes, MessageAttributes...),
/// and `sqs_queue`, the queue's URL.
fn delivery_info_extra(message: &Json, queue_url: &str) -> Arc<Headers> {
    let mut extra = Headers::new();
    extra.insert("sqs_message".into(), message.clone());
    extra.insert("sqs_queue".into(), Value::String(queue_url.to_owned()));
    Arc::new(extra)
}

/// A received body as the envelope JSON the channel reads (Kombu's `_message_to_python` +
/// `_envelope_payload`): base64 or plain JSON envelopes as they are; anything else wrapped
/// as a message whose body is the text. `redelivered` when SQS has delivered it before.
fn to_envelope(body: &str, redelivered: bool) -> Vec<u8> {
    let text = optional_b64_decode(body).unwrap_or_else(|| body.to_owned());
    let parsed: Option<Json> = serde_json::from_str(&text).ok().filter(|v: &Json| v.get("properties").is_some_and(Json::is_object));
    let json = match parsed {
        Some(_) => text,
        None => {
            // Not an envelope: the text is the body (kombu delivers it as the string).
            let wrapped = json!({
                "body": base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
                "content-encoding": "utf-8",
                "content-type": "text/plain",
                "headers": {},
                "properties": {"delivery_info": {"exchange": "", "routing_key": ""}, "body_encoding": "base64", "priority": 0},
            });
            wrapped.to_string()
        }
    };
    if redelivered {
        if let Ok(marked) = mark_redelivered(json.as_bytes()) {
            return marked.into_bytes();
        }
    }
    json.into_bytes()
}

/// The SendMessage fields of a message (Kombu's `_put`): MessageAttributes, group and
/// deduplication ids, delay; taken from the envelope's properties, or from its headers
/// (moved into the properties, where Kombu keeps them). The body is the envelope without
/// `message_attributes`.
fn send_fields(json_text: &str, fifo: bool, base64: bool) -> Result<Json> {
    let mut env: Headers = serde_json::from_str(json_text).map_err(|e| Error::Encode(format!("envelope is not a JSON object: {e}")))?;
    let mut props = match env.shift_remove("properties") {
        Some(Value::Object(p)) => p,
        _ => Headers::new(),
    };
    if let Some(Value::Object(h)) = env.get_mut("headers") {
        for key in ["MessageGroupId", "MessageDeduplicationId", "message_attributes", "delay_seconds", "DelaySeconds"] {
            if let Some(v) = h.shift_remove(key) {
                props.entry(key.to_owned()).or_insert(v);
            }
        }
    }
    let mut fields = json!({});
    if let Some(attrs) = props.shift_remove("message_attributes") {
        fields["MessageAttributes"] = attrs;
    }
    if let Some(g) = props.get("MessageGroupId") {
        fields["MessageGroupId"] = g.clone();
    }
    let delay = ["delay_seconds", "DelaySeconds"].iter().find_map(|k| props.get(*k).filter(|v| !v.is_null())).map(|v| {
        let n = v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()));
        match n {
            Some(n) if n >= 0.0 => Ok((n as u64).min(900)),
            _ => Err(Error::Value(format!("delay_seconds {v} is not a number of seconds from 0 to 900"))),
        }
    });
    let delay = delay.transpose()?;
    if fifo {
        if fields.get("MessageGroupId").is_none() {
            fields["MessageGroupId"] = json!("default");
        }
        fields["MessageDeduplicationId"] = props.get("MessageDeduplicationId").cloned().unwrap_or_else(|| json!(kombu::common::uuid()));
        if delay.is_some() {
            tracing::warn!("SQS FIFO queues take no per-message delay; ignoring delay_seconds");
        }
    } else if let Some(d) = delay {
        fields["DelaySeconds"] = json!(d);
    }
    env.insert("properties".into(), Value::Object(props));
    let text = String::from_utf8(kombu::serialization::json_dumps(&Value::Object(env))?).expect("ensure_ascii output is ASCII");
    fields["MessageBody"] = json!(if base64 { base64::engine::general_purpose::STANDARD.encode(text.as_bytes()) } else { text });
    Ok(fields)
}

/// Apply queued settles in batches; extend the visibility of held messages.
async fn settle_task(inner: Weak<Inner>, mut rx: mpsc::UnboundedReceiver<Op>) {
    let tick = inner.upgrade().map_or(Duration::from_secs(60), |i| Duration::from_secs(u64::from(i.opts.visibility_timeout / 3).clamp(1, 300)));
    let mut extend = tokio::time::interval(tick);
    extend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    extend.tick().await;
    loop {
        let first = tokio::select! {
            op = rx.recv() => match op { Some(op) => Some(op), None => return },
            _ = extend.tick() => None,
        };
        let Some(inner) = inner.upgrade() else { return };
        let Some(first) = first else {
            if inner.opts.extend_visibility {
                let due: Vec<(String, String)> =
                    lock(&inner.held).iter().filter(|(_, (_, since))| since.elapsed() >= tick).map(|(h, (q, _))| (q.clone(), h.clone())).collect();
                if !due.is_empty() {
                    tracing::debug!(messages = due.len(), "extending the visibility of held messages");
                    if let Err(e) = inner.change_visibility(&due, inner.opts.visibility_timeout).await {
                        tracing::warn!(error = %e, "could not extend the visibility of held messages (they may be redelivered)");
                    }
                }
            }
            continue;
        };
        let mut ops = vec![first];
        while let Ok(op) = rx.try_recv() {
            ops.push(op);
        }
        let mut deletes: Vec<(String, String)> = Vec::new();
        let mut requeues: Vec<(String, String)> = Vec::new();
        let mut flushes = Vec::new();
        for op in ops {
            match op {
                Op::Settle(m, how) => {
                    lock(&inner.held).remove(&m.token);
                    match how {
                        Settle::Ack | Settle::Reject => deletes.push((m.queue.to_string(), m.token)),
                        Settle::Requeue => requeues.push((m.queue.to_string(), m.token)),
                        // Left where it is: SQS redelivers it, and a queue's RedrivePolicy
                        // moves it to its dead-letter queue after maxReceiveCount.
                        Settle::DeadLetter(reason) => tracing::error!(queue = %m.queue, %reason, "an SQS message that is not a Kombu message was left in its queue"),
                    }
                }
                Op::Flush(tx) => flushes.push(tx),
            }
        }
        let mut result = Ok(());
        let mut by_queue: HashMap<&str, Vec<&str>> = HashMap::new();
        for (q, h) in &deletes {
            by_queue.entry(q).or_default().push(h);
        }
        for (queue, handles) in by_queue {
            let Some(q) = inner.known(queue) else { continue };
            for chunk in handles.chunks(BATCH) {
                let entries: Vec<Json> = chunk.iter().enumerate().map(|(i, h)| json!({"Id": i.to_string(), "ReceiptHandle": h})).collect();
                let r = inner.call(&q.at, "DeleteMessageBatch", &json!({"QueueUrl": q.url, "Entries": entries}), 0).await.and_then(|out| batch_failures("DeleteMessageBatch", &out));
                if let Err(e) = r {
                    tracing::error!(queue, error = %e, "acks SQS did not take (the messages come back after their visibility timeout)");
                    result = result.and(Err(e));
                }
            }
        }
        if !requeues.is_empty() {
            if let Err(e) = inner.change_visibility(&requeues, inner.opts.wait_time_seconds).await {
                tracing::error!(error = %e, "requeues SQS did not take (the messages come back after their visibility timeout)");
                result = result.and(Err(e));
            }
        }
        if let Err(e) = &result {
            if flushes.is_empty() {
                *lock(&inner.failed) = Some(e.clone());
            }
        }
        for tx in flushes {
            let _ = tx.send(result.clone());
        }
    }
}

/// One long poll of one queue, its messages into the buffer.
fn spawn_poll(inner: &Arc<Inner>, queue: Name, max: usize) {
    let weak = Arc::downgrade(inner);
    let wait = inner.opts.wait_time_seconds;
    tokio::spawn(async move {
        let Some(inner) = weak.upgrade() else { return };
        let r = inner.receive(&queue, max, wait).await;
        lock(&inner.polling).remove(&*queue);
        match r {
            Ok(got) if inner.closed.load(std::sync::atomic::Ordering::SeqCst) => {
                let back: Vec<(String, String)> = got.into_iter().map(|m| (m.queue.to_string(), m.token)).collect();
                inner.release_held(&back);
                if let Err(e) = inner.change_visibility(&back, 0).await {
                    tracing::warn!(error = %e, "could not release messages received after close (they come back after their visibility timeout)");
                }
            }
            Ok(got) => lock(&inner.buffer).extend(got),
            Err(e) => *lock(&inner.poll_error) = Some(e),
        }
        inner.arrived.notify_waiters();
    });
}

#[async_trait::async_trait]
impl Store for SqsStore {
    async fn new_queue(&self, declare: &QueueDeclare) -> Result<()> {
        self.inner.check_failed()?;
        self.inner.ensure(&declare.queue).await.map(|_| ())
    }

    async fn has_queue(&self, queue: &str) -> Result<bool> {
        match self.inner.lookup(queue).await {
            Ok(q) => Ok(q.is_some()),
            Err(e) if e.to_string().contains("predefined_queues") => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn size(&self, queue: &str) -> Result<u32> {
        let Some(q) = self.inner.lookup(queue).await? else { return Ok(0) };
        let out = self.inner.call(&q.at, "GetQueueAttributes", &json!({"QueueUrl": q.url, "AttributeNames": ["ApproximateNumberOfMessages"]}), 0).await?;
        Ok(out.pointer("/Attributes/ApproximateNumberOfMessages").and_then(Json::as_str).and_then(|s| s.parse().ok()).unwrap_or(0))
    }

    async fn purge(&self, queue: &str) -> Result<u32> {
        let n = self.size(queue).await?;
        if let Some(q) = self.inner.lookup(queue).await? {
            self.inner.call(&q.at, "PurgeQueue", &json!({"QueueUrl": q.url}), 0).await?;
        }
        Ok(n)
    }

    async fn delete(&self, queue: &str, bindings: &[(String, BindingRow)]) -> Result<()> {
        {
            let mut tables = lock(&self.inner.tables);
            for (exchange, row) in bindings {
                if let Some(rows) = tables.get_mut(exchange) {
                    rows.retain(|r| r != row);
                }
            }
        }
        if !self.inner.opts.predefined_queues.is_empty() {
            // Not ours to delete (Kombu: predefined queues are never created or deleted).
            return Ok(());
        }
        if let Some(q) = self.inner.lookup(queue).await? {
            match self.inner.sqs_call(&q.at, "DeleteQueue", &json!({"QueueUrl": q.url}), 0).await {
                Ok(_) => {}
                Err(SqsError::Service { code, .. }) if code == "QueueDoesNotExist" || code.ends_with("NonExistentQueue") => {}
                Err(e) => return Err(e.into()),
            }
            lock(&self.inner.queues).remove(queue);
        }
        Ok(())
    }

    async fn bindings(&self, exchange: &str) -> Result<Vec<BindingRow>> {
        Ok(lock(&self.inner.tables).get(exchange).cloned().unwrap_or_default())
    }

    async fn bind(&self, exchange: &str, row: &BindingRow, _expires: Option<u64>) -> Result<()> {
        let mut tables = lock(&self.inner.tables);
        let rows = tables.entry(exchange.to_owned()).or_default();
        if !rows.contains(row) {
            rows.push(row.clone());
        }
        Ok(())
    }

    async fn unbind(&self, exchange: &str, row: &BindingRow) -> Result<()> {
        if let Some(rows) = lock(&self.inner.tables).get_mut(exchange) {
            rows.retain(|r| r != row);
        }
        Ok(())
    }

    async fn put(&self, queues: &[&str], message: &Outgoing) -> Result<()> {
        self.inner.check_failed()?;
        for queue in queues {
            let q = self.inner.ensure(queue).await?;
            let input = send_fields(&message.json, q.fifo, self.inner.opts.base64)?;
            let body_len = input["MessageBody"].as_str().map_or(0, str::len);
            let attrs_len = input.get("MessageAttributes").map_or(0, |a| a.to_string().len());
            let limit = self.inner.max_size(queue, &q).await?;
            if body_len + attrs_len > limit {
                return Err(Error::LimitExceeded(format!(
                    "message too large for SQS queue {:?}: {} bytes (body{}) > the queue's MaximumMessageSize of {limit} bytes; nothing was sent",
                    self.inner.opts.sqs_name(queue),
                    body_len + attrs_len,
                    if self.inner.opts.base64 { " as base64" } else { "" }
                )));
            }
            self.inner.send(&q, input).await?;
        }
        Ok(())
    }

    async fn fetch(&self, fetch: &Fetch) -> Result<Vec<Fetched>> {
        self.inner.check_failed()?;
        let inner = &self.inner;
        let Some(wait) = fetch.wait else {
            // basic_get: what is buffered, else a short receive per queue in order.
            let got = inner.take_buffered(&fetch.queues, fetch.max);
            if !got.is_empty() {
                return Ok(got);
            }
            for q in &fetch.queues {
                let got = inner.receive(q, fetch.max, 0).await?;
                if !got.is_empty() {
                    return Ok(got);
                }
            }
            return Ok(Vec::new());
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let arrived = inner.arrived.notified();
            futures::pin_mut!(arrived);
            arrived.as_mut().enable();
            let got = inner.take_buffered(&fetch.queues, fetch.max);
            if !got.is_empty() {
                return Ok(got);
            }
            if let Some(e) = lock(&inner.poll_error).take() {
                return Err(e);
            }
            {
                let mut polling = lock(&inner.polling);
                for q in &fetch.queues {
                    if !polling.contains_key(&**q) {
                        polling.insert(q.to_string(), ());
                        spawn_poll(inner, q.clone(), fetch.max);
                    }
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    fn settle(&self, message: &Fetched, how: Settle) -> Result<()> {
        self.inner.check_failed()?;
        self.inner.ops.send(Op::Settle(message.clone(), how)).map_err(|_| Error::RecoverableConnection("the SQS store is closed".into()))
    }

    async fn restore(&self, messages: &[Fetched]) -> Result<()> {
        {
            let mut held = lock(&self.inner.held);
            for m in messages {
                held.remove(&m.token);
            }
        }
        let back: Vec<(String, String)> = messages.iter().map(|m| (m.queue.to_string(), m.token.clone())).collect();
        self.inner.change_visibility(&back, self.inner.opts.wait_time_seconds).await
    }

    async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.inner.ops.send(Op::Flush(tx)).map_err(|_| Error::RecoverableConnection("the SQS store is closed".into()))?;
        rx.await.unwrap_or(Ok(()))
    }

    async fn close(&self) -> Result<()> {
        self.inner.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let flushed = self.flush().await;
        // Received but never delivered: available again at once.
        let buffered: Vec<(String, String)> = lock(&self.inner.buffer).drain(..).map(|m| (m.queue.to_string(), m.token)).collect();
        self.inner.release_held(&buffered);
        let released = if buffered.is_empty() { Ok(()) } else { self.inner.change_visibility(&buffered, 0).await };
        flushed.and(released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_from_other_producers_are_accepted_as_kombu_accepts_them() {
        let env = r#"{"body": "e30=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {}, "properties": {"delivery_info": {"exchange": "", "routing_key": "q"}, "body_encoding": "base64", "delivery_tag": "t"}}"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(env);
        assert_eq!(to_envelope(&b64, false), env.as_bytes());
        assert_eq!(to_envelope(env, false), env.as_bytes());
        let raw: Json = serde_json::from_slice(&to_envelope(r#"{"not": "an envelope"}"#, false)).unwrap();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(raw["body"].as_str().unwrap()).unwrap(), br#"{"not": "an envelope"}"#);
        let again: Json = serde_json::from_slice(&to_envelope(&b64, true)).unwrap();
        assert_eq!(again["properties"]["delivery_info"]["redelivered"], json!(true));
        // "abcd" is base64 but not of UTF-8 text that is an envelope: delivered as the text.
        let odd: Json = serde_json::from_slice(&to_envelope("hello world", false)).unwrap();
        assert_eq!(odd["body"], json!(base64::engine::general_purpose::STANDARD.encode("hello world")));
    }

    #[test]
    fn send_fields_are_kombus() {
        let env = r#"{"body": "e30=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"MessageGroupId": "g1", "x": 1}, "properties": {"delivery_info": {"exchange": "", "routing_key": "q"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "t", "message_attributes": {"a": {"DataType": "String", "StringValue": "v"}}}}"#;
        let f = send_fields(env, true, false).unwrap();
        assert_eq!(f["MessageGroupId"], json!("g1"));
        assert_eq!(f["MessageAttributes"]["a"]["StringValue"], json!("v"));
        assert!(f["MessageDeduplicationId"].as_str().unwrap().len() == 36);
        let body: Json = serde_json::from_str(f["MessageBody"].as_str().unwrap()).unwrap();
        assert_eq!(body["properties"]["MessageGroupId"], json!("g1"));
        assert!(body["properties"].get("message_attributes").is_none());
        assert_eq!(body["headers"], json!({"x": 1}));
        let plain = r#"{"body": "e30=", "headers": {"delay_seconds": 5000}, "properties": {}}"#;
        let f = send_fields(plain, false, true).unwrap();
        assert_eq!((f["DelaySeconds"].clone(), f.get("MessageGroupId")), (json!(900), None));
        assert!(base64::engine::general_purpose::STANDARD.decode(f["MessageBody"].as_str().unwrap()).is_ok());
        assert!(send_fields(r#"{"headers": {"delay_seconds": "soon"}, "properties": {}}"#, false, true).is_err());
    }
}
