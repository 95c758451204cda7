//! `SimpleQueue` / `SimpleBuffer` (Kombu's simple interface): `put` and `get` on one queue.

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::convert::{body_from_js, js_error, millis, outcome, spawn, JsResult, Outcome};
use super::options::{queue, Fields};
use super::producer::publish_options;
use crate::error::Error;
use crate::value::Value;
use crate::{Connection, Payload, SimpleOptions, SimpleQueue};

/// Kombu's `SimpleQueue`/`SimpleBuffer`: `put` and `get` on one queue.
#[wasm_bindgen(js_name = SimpleQueue)]
pub struct JsSimpleQueue {
    inner: SimpleQueue,
}

impl Outcome for SimpleQueue {
    fn into_js(self) -> JsValue {
        JsSimpleQueue { inner: self }.into()
    }
}

#[wasm_bindgen(js_class = SimpleQueue)]
impl JsSimpleQueue {
    /// Publish to the queue.
    pub fn put(&self, body: JsValue, options: JsValue) -> JsResult<Promise> {
        let body = body_from_js(&body)?;
        self.send(body, options)
    }

    /// Publish structured data given as JSON text (the JS layer's fast path).
    #[wasm_bindgen(js_name = putJson)]
    pub fn put_json(&self, json: &str, options: JsValue) -> JsResult<Promise> {
        let v: Value = crate::serialization::json_loads(json.as_bytes()).map_err(|e| js_error(&Error::Encode(format!("the body is not JSON: {e}"))))?;
        self.send(Payload::Data(v), options)
    }

    fn send(&self, body: Payload, options: JsValue) -> JsResult<Promise> {
        let opts = publish_options("put options", &options)?;
        Ok(self.op(Op::Put(body, opts)))
    }

    /// The next message; with `block` (default true) wait up to `timeoutMs` (forever when
    /// omitted). Rejects with `Empty` when there is none.
    pub fn get(&self, block: Option<bool>, timeout_ms: Option<f64>) -> JsResult<Promise> {
        let t = millis(timeout_ms)?;
        Ok(self.op(Op::Get(block.unwrap_or(true), t)))
    }

    /// The next message without waiting; rejects with `Empty`.
    #[wasm_bindgen(js_name = getNowait)]
    pub fn get_nowait(&self) -> Promise {
        self.op(Op::GetNowait)
    }

    /// How many messages are waiting.
    pub fn qsize(&self) -> Promise {
        self.op(Op::Qsize)
    }

    /// Remove every message; resolves to how many.
    pub fn clear(&self) -> Promise {
        self.op(Op::Clear)
    }

    /// Stop consuming.
    pub fn close(&self) -> Promise {
        self.op(Op::Close)
    }
}

impl JsSimpleQueue {
    /// A Promise for `op` on this queue.
    fn op(&self, op: Op) -> Promise {
        spawn(op.run(self.inner.clone()))
    }

    /// `Connection.SimpleQueue(name, options)`, or `SimpleBuffer` with `buffer`.
    pub(super) fn open(conn: &Connection, name: String, options: JsValue, buffer: bool) -> JsResult<Promise> {
        let mut f = Fields::from_js("SimpleQueue options", &options)?;
        let o = SimpleOptions {
            no_ack: f.bool("noAck"),
            queue: {
                let r = f.fields("queue").map(queue).transpose();
                f.keep(r).flatten()
            },
            queue_args: f.map("queueArgs").unwrap_or_default(),
            exchange: f.exchange("exchange"),
            serializer: f.str("serializer"),
            compression: f.str("compression"),
            accept: f.strings("accept"),
            ..Default::default()
        };
        f.done()?;
        let c = conn.clone();
        Ok(spawn(async move {
            let q = if buffer { SimpleQueue::buffer(&c, &name, o).await } else { SimpleQueue::new(&c, &name, o).await };
            outcome(q)
        }))
    }
}

/// The asynchronous operations of `SimpleQueue`: one enum, so that the module has one future
/// (one state machine) for all of them rather than one per operation. Each value is made
/// once per call and moved into that future, which is as large anyway: boxing the large
/// variant would add an allocation per call and bytes to the module.
#[allow(clippy::large_enum_variant)]
enum Op {
    Put(Payload, crate::PublishOptions),
    Get(bool, Option<std::time::Duration>),
    GetNowait,
    Qsize,
    Clear,
    Close,
}

impl Op {
    async fn run(self, q: SimpleQueue) -> JsResult<JsValue> {
        match self {
            Op::Put(body, opts) => outcome(q.put(body, opts).await),
            Op::Get(block, t) => outcome(q.get(block, t).await),
            Op::GetNowait => outcome(q.get_nowait().await),
            Op::Qsize => outcome(q.qsize().await),
            Op::Clear => outcome(q.clear().await),
            Op::Close => outcome(q.close().await),
        }
    }
}
