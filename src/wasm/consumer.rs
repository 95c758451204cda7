//! `Consumer` (Kombu's `Consumer`): messages one at a time with `next()`; the JS layer adds
//! async iteration and `AbortSignal`.

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;

use super::convert::{kombu, millis, outcome, promise, required_string, spawn, JsResult};
use super::message::JsMessage;
use super::options::{queue_from_js, queues_from_js, Fields};
use crate::{Connection, Consumer};

/// Receives messages from queues (Kombu's `Consumer`), one at a time with `next()`.
#[wasm_bindgen(js_name = Consumer)]
pub struct JsConsumer {
    inner: Consumer,
}

#[wasm_bindgen(js_class = Consumer)]
impl JsConsumer {
    /// Declare the queues (unless `autoDeclare: false`) and start consuming.
    pub fn consume(&self) -> Promise {
        self.op(Op::Consume)
    }

    /// The next message, waiting up to `timeoutMs` (forever when omitted); rejects with
    /// `TimeoutError` when none came. Starts consuming if needed.
    pub fn next(&self, timeout_ms: Option<f64>) -> JsResult<Promise> {
        let t = millis(timeout_ms)?;
        Ok(promise(Op::Next(t).run(self.inner.clone())))
    }

    /// A message already received, or `undefined` (never waits): from the consumer's
    /// buffer, or from deliveries the connection holds and has not dispatched yet.
    #[wasm_bindgen(js_name = tryNext)]
    pub fn try_next(&self) -> JsResult<Option<JsMessage>> {
        if let Some(m) = self.inner.try_next() {
            return Ok(Some(m.into()));
        }
        if let Ok(conn) = self.inner.connection() {
            kombu(conn.drain_nowait())?;
        }
        Ok(self.inner.try_next().map(JsMessage::from))
    }

    /// Stop consuming; messages handed out and not acknowledged stay unacknowledged until
    /// acked or the connection closes, those received and not handed out are requeued.
    pub fn cancel(&self) -> Promise {
        self.op(Op::Cancel)
    }

    /// Stop consuming from one queue.
    #[wasm_bindgen(js_name = cancelByQueue)]
    pub fn cancel_by_queue(&self, queue: JsValue) -> JsResult<Promise> {
        let queue = required_string("the queue name", &queue)?;
        Ok(self.op(Op::CancelByQueue(queue)))
    }

    /// True while consuming from `queue`.
    #[wasm_bindgen(js_name = consumingFrom)]
    pub fn consuming_from(&self, queue: JsValue) -> JsResult<bool> {
        Ok(self.inner.consuming_from(&required_string("the queue name", &queue)?))
    }

    /// Remove the ready messages of every queue; resolves to how many.
    pub fn purge(&self) -> Promise {
        self.op(Op::Purge)
    }

    /// Set the prefetch window.
    pub fn qos(&self, prefetch_count: u16, apply_global: Option<bool>) -> Promise {
        self.op(Op::Qos(prefetch_count, apply_global.unwrap_or(false)))
    }

    /// Redeliver the unacknowledged messages.
    pub fn recover(&self, requeue: Option<bool>) -> Promise {
        self.op(Op::Recover(requeue.unwrap_or(true)))
    }

    /// Add a queue (declared unless `autoDeclare: false`); `consume()` then consumes from it
    /// too. Resolves to its name (the broker's for a server-named queue).
    #[wasm_bindgen(js_name = addQueue)]
    pub fn add_queue(&self, queue: JsValue) -> JsResult<Promise> {
        let q = queue_from_js("queue", &queue)?;
        Ok(self.op(Op::AddQueue(Box::new(q))))
    }

    /// Pause (`false`) or resume (`true`) deliveries on the channel (`channel.flow`).
    pub fn flow(&self, active: bool) -> Promise {
        self.op(Op::Flow(active))
    }

    /// Names of the queues.
    #[wasm_bindgen(getter)]
    pub fn queues(&self) -> Array {
        let names = Array::new();
        for q in self.inner.queues() {
            names.push(&JsValue::from_str(&q.name));
        }
        names
    }
}

impl JsConsumer {
    /// `Connection.Consumer(queues, options)`: a consumer on the connection's default channel.
    pub(super) fn open(conn: &Connection, queues: JsValue, options: JsValue) -> JsResult<JsConsumer> {
        let queues = queues_from_js(&queues)?;
        let mut f = Fields::from_js("Consumer options", &options)?;
        let mut c = Consumer::new(&conn.default_channel_handle(), queues);
        if let Some(a) = f.strings("accept") {
            c = kombu(c.accept(&a))?;
        }
        if let Some(v) = f.bool("noAck") {
            c = c.no_ack(v);
        }
        if let Some(v) = f.bool("autoDeclare") {
            c = c.auto_declare(v);
        }
        if let Some(v) = f.uint("prefetchCount", u16::MAX.into()) {
            c = c.prefetch_count(v as u16);
        }
        if let Some(v) = f.str("tagPrefix") {
            c = c.tag_prefix(v);
        }
        f.done()?;
        Ok(JsConsumer { inner: c })
    }

    /// [`JsConsumer::next`] for Rust callers (tests): the message itself, not a Promise.
    pub async fn next_message(&self, timeout_ms: Option<f64>) -> JsResult<JsMessage> {
        let t = millis(timeout_ms)?;
        kombu(self.inner.next_message(t).await).map(JsMessage::from)
    }

    /// A Promise for `op` on this consumer.
    fn op(&self, op: Op) -> Promise {
        spawn(op.run(self.inner.clone()))
    }
}

/// The asynchronous operations of `Consumer`: one enum, so that the module has one future
/// (one state machine) for all of them rather than one per operation.
enum Op {
    Next(Option<std::time::Duration>),
    Consume,
    Cancel,
    CancelByQueue(String),
    Purge,
    Qos(u16, bool),
    Recover(bool),
    AddQueue(Box<crate::Queue>),
    Flow(bool),
}

impl Op {
    async fn run(self, c: Consumer) -> JsResult<JsValue> {
        match self {
            Op::Next(t) => outcome(c.next_message(t).await),
            Op::Consume => outcome(c.consume().await),
            Op::Cancel => outcome(c.cancel().await),
            Op::CancelByQueue(queue) => outcome(c.cancel_by_queue(&queue).await),
            Op::Purge => outcome(c.purge().await),
            Op::Qos(prefetch_count, apply_global) => outcome(c.qos(0, prefetch_count, apply_global).await),
            Op::Recover(requeue) => outcome(c.recover(requeue).await),
            Op::AddQueue(q) => kombu(c.add_queue(*q).await).map(|q| JsValue::from_str(&q.name)),
            Op::Flow(active) => kombu(c.flow(active).await).map(JsValue::from),
        }
    }
}
