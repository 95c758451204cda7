//! The JavaScript facade (wasm32 only): wasm-bindgen classes over the Rust API.
//!
//! This is a thin adapter: every call converts its arguments (plain JS objects, validated by
//! serde with camelCase names and unknown options refused), calls the same Rust API the
//! native crate uses, and converts the result back. The npm package's hand-written layer
//! (`js/src/index.js`) turns `Exchange`/`Queue` instances into the plain specs these
//! functions take and adds async iteration, `AbortSignal` and disposal.
//!
//! Errors are JS `Error`s whose `name` is Kombu's exception name (`ContentDisallowed`,
//! `MessageStateError`, `OperationalError`, ...), with a message that says what was wrong.

use std::time::Duration;

use bytes::Bytes;
use js_sys::{Array, Promise, Uint8Array};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::future_to_promise;

use crate::error::Error;
use crate::retry::{FailoverStrategy, RetryPolicy};
use crate::value::{Headers, Value};
use crate::{
    Binding, Connection, ConnectionOptions, Consumer, DeliveryMode, Entity, Exchange, Message, Payload, Producer,
    PublishOptions, Queue, SimpleOptions, SimpleQueue,
};

// ----- errors ---------------------------------------------------------------------------

/// A JS `Error` named after the Kombu exception.
fn js_error(e: &Error) -> JsValue {
    let text = e.to_string();
    // JS prints `${name}: ${message}`; drop the name the Rust message starts with.
    let msg = text.strip_prefix(e.name()).and_then(|m| m.strip_prefix(": ")).unwrap_or(&text);
    let err = js_sys::Error::new(msg);
    err.set_name(e.name());
    err.into()
}

fn value_error(msg: impl Into<String>) -> JsValue {
    js_error(&Error::Value(msg.into()))
}

/// A string argument from JavaScript. Parameters typed `String` in wasm-bindgen trust the
/// caller to pass a string (anything else corrupts the module's memory), so arguments that come
/// from users are taken as values and checked here. `None` for `undefined`/`null`.
fn string_arg(what: &str, v: &JsValue) -> JsResult<Option<String>> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_string().map(Some).ok_or_else(|| value_error(format!("{what} must be a string, not {}", js_type(v))))
}

/// A required string argument (see [`string_arg`]).
fn required_string(what: &str, v: &JsValue) -> JsResult<String> {
    string_arg(what, v)?.ok_or_else(|| value_error(format!("{what} is required (a string)")))
}

/// `typeof`, with arrays and null told apart.
fn js_type(v: &JsValue) -> String {
    if v.is_null() {
        "null".into()
    } else if Array::is_array(v) {
        "an array".into()
    } else {
        v.js_typeof().as_string().unwrap_or_default()
    }
}

type JsResult<T> = std::result::Result<T, JsValue>;

fn kombu<T>(r: crate::Result<T>) -> JsResult<T> {
    r.map_err(|e| js_error(&e))
}

/// A Promise for `fut`, which starts now: when it completes on its first poll (most
/// operations on memory://, publishes on every transport) the Promise is settled at once,
/// without the task and closure `future_to_promise` allocates; otherwise wasm-bindgen-futures
/// drives it from there (polling again with a real waker).
fn promise(fut: impl std::future::Future<Output = JsResult<JsValue>> + 'static) -> Promise {
    let mut fut: Op = Box::pin(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Ok(v)) => Promise::resolve(&v),
        std::task::Poll::Ready(Err(e)) => Promise::reject(&e),
        std::task::Poll::Pending => future_to_promise(fut),
    }
}

/// An operation's future, boxed: wasm-bindgen-futures' machinery is then compiled once for
/// all operations instead of once per future type (~30 KB of the module).
type Op = std::pin::Pin<Box<dyn std::future::Future<Output = JsResult<JsValue>>>>;

/// A Promise for `fut`, driven by wasm-bindgen-futures.
fn spawn(fut: impl std::future::Future<Output = JsResult<JsValue>> + 'static) -> Promise {
    let fut: Op = Box::pin(fut);
    future_to_promise(fut)
}

/// Parse an options object (`undefined`/`null` mean "no options").
fn options<T: DeserializeOwned + Default>(what: &str, v: JsValue) -> JsResult<T> {
    if v.is_undefined() || v.is_null() {
        return Ok(T::default());
    }
    spec(what, v)
}

/// Parse a plain JS object into a spec. Through a JSON value first: serde-wasm-bindgen reads
/// only the fields a struct names, so unknown (misspelt) options would pass silently;
/// serde_json's `deny_unknown_fields` names them.
fn spec<T: DeserializeOwned>(what: &str, v: JsValue) -> JsResult<T> {
    let json: Value = match v.as_string() {
        // The JS layer sends options as JSON text: one boundary crossing instead of one per field.
        Some(text) => serde_json::from_str(&text).map_err(|e| value_error(format!("invalid {what}: {e}")))?,
        None => serde_wasm_bindgen::from_value(v).map_err(|e| value_error(format!("invalid {what}: {e}")))?,
    };
    from_json(what, &json)
}

/// Parse a JSON value into a spec; the error names the option to blame.
fn from_json<T: DeserializeOwned>(what: &str, json: &Value) -> JsResult<T> {
    T::deserialize(json).map_err(|e| invalid(what, culprit::<T>(json), e))
}

/// The error of [`from_json`] (apart, so that it is not repeated for every type).
fn invalid(what: &str, option: Option<String>, e: serde_json::Error) -> JsValue {
    match option {
        Some(field) => value_error(format!("invalid {what}: `{field}`: {e}")),
        None => value_error(format!("invalid {what}: {e}")),
    }
}

/// A JSON value's kind, for messages.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The option whose value makes `json` fail to parse as `T`: the one without which it parses.
/// Only on the error path; errors about unknown options already name them.
fn culprit<T: DeserializeOwned>(json: &Value) -> Option<String> {
    let Value::Object(map) = json else { return None };
    map.keys().find(|k| {
        let mut rest = map.clone();
        rest.remove(*k);
        T::deserialize(&Value::Object(rest)).is_ok()
    }).cloned()
}

fn to_js<T: Serialize + ?Sized>(v: &T) -> JsResult<JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| value_error(format!("cannot convert to a JavaScript value: {e}")))
}

fn millis(ms: Option<f64>) -> JsResult<Option<Duration>> {
    match ms {
        None => Ok(None),
        Some(m) if m.is_finite() && m >= 0.0 => Ok(Some(Duration::from_secs_f64(m / 1000.0))),
        Some(m) => Err(value_error(format!("a timeout must be a number of milliseconds >= 0, not {m}"))),
    }
}

// ----- bodies ---------------------------------------------------------------------------

/// A JS body: a string, a `Uint8Array`/`ArrayBuffer` (raw bytes), or any JSON value.
fn body_from_js(v: &JsValue) -> JsResult<Payload> {
    if let Some(s) = v.as_string() {
        return Ok(Payload::Text(s));
    }
    if let Some(a) = v.dyn_ref::<Uint8Array>() {
        return Ok(Payload::Bytes(Bytes::from(a.to_vec())));
    }
    if let Some(b) = v.dyn_ref::<js_sys::ArrayBuffer>() {
        return Ok(Payload::Bytes(Bytes::from(Uint8Array::new(b).to_vec())));
    }
    if v.is_undefined() {
        return Err(js_error(&Error::Encode("the message body is undefined: pass a JSON value, a string or bytes".into())));
    }
    if v.is_bigint() || v.is_function() || v.is_symbol() {
        return Err(js_error(&Error::Encode(format!(
            "a {} cannot be serialized: send JSON data, a string or a Uint8Array (convert BigInt to a string or number)",
            v.js_typeof().as_string().unwrap_or_default()
        ))));
    }
    serde_wasm_bindgen::from_value::<Value>(v.clone()).map(Payload::Data).map_err(|e| {
        js_error(&Error::Encode(format!(
            "the message body is not JSON data ({e}); send plain objects, arrays, strings, numbers, booleans or null, a string, or a Uint8Array"
        )))
    })
}

fn body_to_js(p: &Payload) -> JsResult<JsValue> {
    match p {
        // JSON.parse builds the object natively, much faster than field-by-field conversion.
        Payload::Data(v) => js_sys::JSON::parse(&v.to_string()).map_err(|_| value_error("cannot convert the payload to a JavaScript value")),
        Payload::Text(s) => Ok(JsValue::from_str(s)),
        Payload::Bytes(b) => Ok(Uint8Array::from(&b[..]).into()),
    }
}

// ----- declarations -----------------------------------------------------------------------

/// `new Exchange(name, options)` as a plain object.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExchangeSpec {
    #[serde(default)]
    name: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    durable: Option<bool>,
    auto_delete: Option<bool>,
    delivery_mode: Option<DeliveryModeSpec>,
    arguments: Option<Headers>,
    no_declare: Option<bool>,
    passive: Option<bool>,
}

/// `deliveryMode`: 1, 2, "transient" or "persistent" — checked when used. (A JSON value rather
/// than an untagged enum: serde's untagged buffering is ~10 KB of the wasm module.)
#[derive(Debug, Deserialize)]
#[serde(transparent)]
struct DeliveryModeSpec(Value);

fn delivery_mode(d: &DeliveryModeSpec) -> JsResult<DeliveryMode> {
    match &d.0 {
        Value::Number(n) => match n.as_u64() {
            Some(1) => Ok(DeliveryMode::Transient),
            Some(2) => Ok(DeliveryMode::Persistent),
            _ => Err(value_error(format!("deliveryMode must be 1 (transient) or 2 (persistent), not {n}"))),
        },
        Value::String(s) => kombu(DeliveryMode::parse(s)),
        other => Err(value_error(format!("deliveryMode must be 1, 2, \"transient\" or \"persistent\", not {other}"))),
    }
}

impl ExchangeSpec {
    fn build(&self) -> JsResult<Exchange> {
        let mut x = Exchange::new(self.name.clone(), self.kind.as_deref().unwrap_or("direct"));
        if let Some(v) = self.durable {
            x = x.durable(v);
        }
        if let Some(v) = self.auto_delete {
            x = x.auto_delete(v);
        }
        if let Some(d) = &self.delivery_mode {
            x = x.delivery_mode(delivery_mode(d)?);
        }
        if let Some(a) = &self.arguments {
            x.arguments = a.clone();
        }
        if let Some(v) = self.no_declare {
            x = x.no_declare(v);
        }
        if let Some(v) = self.passive {
            x = x.passive(v);
        }
        Ok(x)
    }
}

/// An exchange given as a spec or by name (a JSON value, told apart when used).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
struct ExchangeRef(Value);

impl ExchangeRef {
    fn build(&self) -> JsResult<Exchange> {
        match &self.0 {
            Value::String(n) => Ok(Exchange::direct(n.clone())),
            Value::Object(_) => from_json::<ExchangeSpec>("exchange", &self.0)?.build(),
            other => Err(value_error(format!("an exchange is an Exchange or an exchange name, not {}", json_type(other)))),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BindingSpec {
    exchange: Option<ExchangeRef>,
    routing_key: Option<String>,
    arguments: Option<Headers>,
    unbind_arguments: Option<Headers>,
}

/// `new Queue(name, options)` as a plain object.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct QueueSpec {
    #[serde(default)]
    name: String,
    exchange: Option<ExchangeRef>,
    routing_key: Option<String>,
    durable: Option<bool>,
    exclusive: Option<bool>,
    auto_delete: Option<bool>,
    /// Seconds, as in Kombu.
    expires: Option<f64>,
    /// Seconds, as in Kombu.
    message_ttl: Option<f64>,
    max_length: Option<u64>,
    max_length_bytes: Option<u64>,
    max_priority: Option<u8>,
    queue_arguments: Option<Headers>,
    binding_arguments: Option<Headers>,
    consumer_arguments: Option<Headers>,
    alias: Option<String>,
    no_ack: Option<bool>,
    no_declare: Option<bool>,
    bindings: Option<Vec<BindingSpec>>,
}

impl QueueSpec {
    fn build(&self) -> JsResult<Queue> {
        let mut q = Queue::new(self.name.clone());
        if let Some(x) = &self.exchange {
            q = q.exchange(x.build()?);
        }
        if let Some(v) = &self.routing_key {
            q = q.routing_key(v.clone());
        }
        if let Some(v) = self.durable {
            q = q.durable(v);
        }
        if let Some(v) = self.exclusive {
            q = q.exclusive(v);
        }
        if let Some(v) = self.auto_delete {
            q = q.auto_delete(v);
        }
        if let Some(v) = self.expires {
            q = q.expires(v);
        }
        if let Some(v) = self.message_ttl {
            q = q.message_ttl(v);
        }
        if let Some(v) = self.max_length {
            q = q.max_length(v);
        }
        if let Some(v) = self.max_length_bytes {
            q = q.max_length_bytes(v);
        }
        if let Some(v) = self.max_priority {
            q = q.max_priority(v);
        }
        for (k, v) in self.queue_arguments.iter().flatten() {
            q = q.queue_argument(k.clone(), v.clone());
        }
        for (k, v) in self.binding_arguments.iter().flatten() {
            q = q.binding_argument(k.clone(), v.clone());
        }
        for (k, v) in self.consumer_arguments.iter().flatten() {
            q = q.consumer_argument(k.clone(), v.clone());
        }
        if let Some(v) = &self.alias {
            q = q.alias(v.clone());
        }
        if let Some(v) = self.no_ack {
            q = q.no_ack(v);
        }
        if let Some(v) = self.no_declare {
            q = q.no_declare(v);
        }
        for b in self.bindings.iter().flatten() {
            let x = match &b.exchange {
                Some(x) => x.build()?,
                None => return Err(value_error(format!("a binding of queue '{}' needs an exchange", self.name))),
            };
            let mut binding = Binding::new(x, b.routing_key.clone().unwrap_or_default());
            if let Some(a) = &b.arguments {
                binding = binding.arguments(a.clone());
            }
            if let Some(a) = &b.unbind_arguments {
                binding = binding.unbind_arguments(a.clone());
            }
            q = q.binding(binding);
        }
        Ok(q)
    }
}

/// `{exchange: {...}}` or `{queue: {...}}`: what `declare` takes.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(clippy::large_enum_variant)] // parsed once per call
enum EntitySpec {
    Exchange(ExchangeSpec),
    Queue(QueueSpec),
}

impl EntitySpec {
    fn build(&self) -> JsResult<Entity> {
        Ok(match self {
            EntitySpec::Exchange(x) => Entity::Exchange(x.build()?),
            EntitySpec::Queue(q) => Entity::Queue(q.build()?),
        })
    }
}

fn queues_from_js(v: JsValue) -> JsResult<Vec<Queue>> {
    let specs: Vec<QueueSpec> = if v.is_undefined() || v.is_null() {
        Vec::new()
    } else {
        spec("queues", v)?
    };
    specs.iter().map(QueueSpec::build).collect()
}

// ----- connection -----------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConnectionSpec {
    transport_options: Option<Headers>,
    heartbeat: Option<f64>,
    connect_timeout: Option<f64>,
    ssl: Option<bool>,
    login_method: Option<String>,
    failover_strategy: Option<String>,
    alternates: Option<Vec<String>>,
    userid: Option<String>,
    password: Option<String>,
    virtual_host: Option<String>,
    transport: Option<String>,
}

/// `new Connection(url, options)`: a lazy connection (Kombu's `Connection`).
#[wasm_bindgen(js_name = Connection)]
pub struct JsConnection {
    inner: Connection,
}

#[wasm_bindgen(js_class = Connection)]
impl JsConnection {
    /// A connection to `url` (default `memory://`). Nothing is opened until it is needed.
    #[wasm_bindgen(constructor)]
    pub fn new(url: JsValue, options: JsValue) -> JsResult<JsConnection> {
        let url = string_arg("the connection URL", &url)?;
        let spec: ConnectionSpec = options_or_err("Connection options", options)?;
        let failover_strategy = match spec.failover_strategy {
            Some(s) => kombu(FailoverStrategy::parse(&s))?,
            None => FailoverStrategy::default(),
        };
        let o = ConnectionOptions {
            transport_options: spec.transport_options.unwrap_or_default(),
            heartbeat: spec.heartbeat,
            connect_timeout: spec.connect_timeout,
            ssl: spec.ssl,
            login_method: spec.login_method,
            failover_strategy,
            alternates: spec.alternates.unwrap_or_default(),
            userid: spec.userid,
            password: spec.password,
            virtual_host: spec.virtual_host,
            transport: spec.transport,
        };
        let url = url.unwrap_or_else(|| "memory://".into());
        Ok(JsConnection { inner: kombu(Connection::with_options(&url, o))? })
    }

    /// Connect now (Kombu's `connect`).
    pub fn connect(&self) -> Promise {
        let c = self.inner.clone();
        spawn(async move { kombu(c.connect().await).map(|_| JsValue::UNDEFINED) })
    }

    /// True while connected.
    #[wasm_bindgen(getter)]
    pub fn connected(&self) -> bool {
        self.inner.connected()
    }

    /// The URL with the password masked unless `includePassword`.
    #[wasm_bindgen(js_name = asUri)]
    pub fn as_uri(&self, include_password: Option<bool>) -> String {
        self.inner.as_uri(include_password.unwrap_or(false))
    }

    /// Transport, host, port, user, virtual host... (password masked).
    pub fn info(&self) -> JsResult<JsValue> {
        to_js(&self.inner.describe())
    }

    /// Close the connection (channels close; unacked messages return to their queues).
    pub fn release(&self) -> Promise {
        let c = self.inner.clone();
        spawn(async move { kombu(c.release().await).map(|_| JsValue::UNDEFINED) })
    }

    /// Wait up to `timeoutMs` (forever when omitted) for one event and dispatch it to the
    /// consumers' callbacks. Rejects with `TimeoutError` when none came.
    #[wasm_bindgen(js_name = drainEvents)]
    pub fn drain_events(&self, timeout_ms: Option<f64>) -> JsResult<Promise> {
        let t = millis(timeout_ms)?;
        let c = self.inner.clone();
        Ok(spawn(async move { kombu(c.drain_events(t).await).map(|_| JsValue::UNDEFINED) }))
    }

    /// Declare an exchange or queue (`{exchange: {...}}` / `{queue: {...}}`), with its
    /// bindings. Resolves to the queue's name (server-named queues get one) or the exchange's.
    pub fn declare(&self, entity: JsValue) -> JsResult<Promise> {
        let spec: EntitySpec =
            spec("declaration", entity)?;
        let entity = spec.build()?;
        let c = self.inner.clone();
        Ok(spawn(async move {
            let ch = kombu(c.default_channel().await)?;
            match entity {
                Entity::Exchange(x) => {
                    kombu(x.bind(&ch).declare(false, None).await)?;
                    Ok(JsValue::from_str(&x.name))
                }
                Entity::Queue(q) => {
                    let mut q = q.bind(&ch);
                    let name = kombu(q.declare(false).await)?;
                    Ok(JsValue::from_str(&name))
                }
            }
        }))
    }

    /// Delete an exchange or a queue by declaration.
    pub fn delete(&self, entity: JsValue) -> JsResult<Promise> {
        let spec: EntitySpec =
            spec("declaration", entity)?;
        let entity = spec.build()?;
        let c = self.inner.clone();
        Ok(spawn(async move {
            let ch = kombu(c.default_channel().await)?;
            match entity {
                Entity::Exchange(x) => kombu(x.bind(&ch).delete(false).await)?,
                Entity::Queue(q) => {
                    kombu(q.bind(&ch).delete(false, false).await)?;
                }
            }
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// Remove the ready messages of a queue; resolves to how many.
    pub fn purge(&self, queue: JsValue) -> JsResult<Promise> {
        let q: QueueSpec = spec("queue", queue)?;
        let q = q.build()?;
        let c = self.inner.clone();
        Ok(spawn(async move {
            let ch = kombu(c.default_channel().await)?;
            kombu(q.bind(&ch).purge().await).map(|n| JsValue::from_f64(n as f64))
        }))
    }

    /// A producer on the default channel (Kombu's `Connection.Producer`).
    #[wasm_bindgen(js_name = Producer)]
    pub fn producer(&self, options: JsValue) -> JsResult<JsProducer> {
        let spec: ProducerSpec = options_or_err("Producer options", options)?;
        let mut p = Producer::new(&self.inner.default_channel_handle());
        if let Some(x) = &spec.exchange {
            p = p.exchange(x.build()?);
        }
        if let Some(v) = &spec.routing_key {
            p = p.routing_key(v.clone());
        }
        if let Some(v) = &spec.serializer {
            p = p.serializer(v.clone());
        }
        if let Some(v) = &spec.compression {
            p = p.compression(v.clone());
        }
        if let Some(v) = spec.auto_declare {
            p = p.auto_declare(v);
        }
        Ok(JsProducer::new(p))
    }

    /// A consumer of `queues` on the default channel (Kombu's `Connection.Consumer`). It
    /// starts consuming at the first `next()` (or `consume()`).
    #[wasm_bindgen(js_name = Consumer)]
    pub fn consumer(&self, queues: JsValue, options: JsValue) -> JsResult<JsConsumer> {
        let queues = queues_from_js(queues)?;
        let spec: ConsumerSpec = options_or_err("Consumer options", options)?;
        let mut c = Consumer::new(&self.inner.default_channel_handle(), queues);
        if let Some(a) = &spec.accept {
            c = kombu(c.accept(a))?;
        }
        if let Some(v) = spec.no_ack {
            c = c.no_ack(v);
        }
        if let Some(v) = spec.auto_declare {
            c = c.auto_declare(v);
        }
        if let Some(v) = spec.prefetch_count {
            c = c.prefetch_count(v);
        }
        if let Some(v) = &spec.tag_prefix {
            c = c.tag_prefix(v.clone());
        }
        Ok(JsConsumer { inner: c })
    }

    /// A `SimpleQueue` named `name` (Kombu's `Connection.SimpleQueue`).
    #[wasm_bindgen(js_name = SimpleQueue)]
    pub fn simple_queue(&self, name: JsValue, options: JsValue) -> JsResult<Promise> {
        self.simple(required_string("the SimpleQueue name", &name)?, options, false)
    }

    /// A `SimpleBuffer`: transient, auto-deleted, no acks (Kombu's `Connection.SimpleBuffer`).
    #[wasm_bindgen(js_name = SimpleBuffer)]
    pub fn simple_buffer(&self, name: JsValue, options: JsValue) -> JsResult<Promise> {
        self.simple(required_string("the SimpleBuffer name", &name)?, options, true)
    }

    fn simple(&self, name: String, options: JsValue, buffer: bool) -> JsResult<Promise> {
        let spec: SimpleSpec = options_or_err("SimpleQueue options", options)?;
        let mut o = SimpleOptions { no_ack: spec.no_ack, serializer: spec.serializer, compression: spec.compression, accept: spec.accept, ..Default::default() };
        if let Some(q) = &spec.queue {
            o.queue = Some(q.build()?);
        }
        if let Some(x) = &spec.exchange {
            o.exchange = Some(x.build()?);
        }
        o.queue_args = spec.queue_args.unwrap_or_default();
        let c = self.inner.clone();
        Ok(spawn(async move {
            let q = if buffer { SimpleQueue::buffer(&c, &name, o).await } else { SimpleQueue::new(&c, &name, o).await };
            kombu(q).map(|inner| JsSimpleQueue { inner }.into())
        }))
    }

    /// The state of a `memory://` virtual host (exchanges, queues with depths, consumers and
    /// unacked counts, bindings), for dashboards; `undefined` on other transports.
    pub fn snapshot(&self, virtual_host: JsValue) -> JsResult<JsValue> {
        let virtual_host = string_arg("the virtual host", &virtual_host)?;
        if self.inner.transport_name() != "memory" {
            return Ok(JsValue::UNDEFINED);
        }
        let vh = virtual_host.unwrap_or_else(|| self.inner.describe()["virtual_host"].as_str().unwrap_or("/").to_owned());
        match crate::transport::memory::MemoryBroker::global().snapshot(&vh) {
            Some(s) => to_js(&s),
            None => Ok(JsValue::UNDEFINED),
        }
    }
}

fn options_or_err<T: DeserializeOwned + Default>(what: &str, v: JsValue) -> JsResult<T> {
    options(what, v)
}

// ----- producer ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProducerSpec {
    exchange: Option<ExchangeRef>,
    routing_key: Option<String>,
    serializer: Option<String>,
    compression: Option<String>,
    auto_declare: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RetryPolicySpec {
    interval_start: Option<f64>,
    interval_step: Option<f64>,
    interval_max: Option<f64>,
    max_retries: Option<u32>,
    timeout: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PublishSpec {
    exchange: Option<ExchangeRef>,
    routing_key: Option<String>,
    delivery_mode: Option<DeliveryModeSpec>,
    mandatory: Option<bool>,
    priority: Option<u8>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    serializer: Option<String>,
    headers: Option<Headers>,
    compression: Option<String>,
    retry: Option<bool>,
    retry_policy: Option<RetryPolicySpec>,
    declare: Option<Vec<EntitySpec>>,
    /// Seconds.
    expiration: Option<f64>,
    correlation_id: Option<String>,
    reply_to: Option<String>,
    message_id: Option<String>,
    timestamp: Option<u64>,
    #[serde(rename = "type")]
    type_: Option<String>,
    user_id: Option<String>,
    app_id: Option<String>,
}

fn publish_options(spec: PublishSpec) -> JsResult<PublishOptions> {
    let mut o = PublishOptions::new();
    if let Some(x) = &spec.exchange {
        o = o.exchange(x.build()?);
    }
    if let Some(v) = spec.routing_key {
        o = o.routing_key(v);
    }
    if let Some(d) = &spec.delivery_mode {
        o = o.delivery_mode(delivery_mode(d)?);
    }
    if let Some(v) = spec.mandatory {
        o = o.mandatory(v);
    }
    if let Some(v) = spec.priority {
        o = o.priority(v);
    }
    if let Some(v) = spec.content_type {
        o = o.content_type(v);
    }
    if let Some(v) = spec.content_encoding {
        o = o.content_encoding(v);
    }
    if let Some(v) = spec.serializer {
        o = o.serializer(v);
    }
    if let Some(v) = spec.headers {
        o = o.headers(v);
    }
    if let Some(v) = spec.compression {
        o = o.compression(v);
    }
    if spec.retry.unwrap_or(false) || spec.retry_policy.is_some() {
        let policy = spec.retry_policy.map(|r| {
            let d = RetryPolicy::ensure_default();
            RetryPolicy {
                interval_start: r.interval_start.unwrap_or(d.interval_start),
                interval_step: r.interval_step.unwrap_or(d.interval_step),
                interval_max: r.interval_max.unwrap_or(d.interval_max),
                max_retries: r.max_retries,
                timeout: r.timeout,
            }
        });
        o = o.retry(policy);
    }
    for e in spec.declare.iter().flatten() {
        o = o.declare(e.build()?);
    }
    if let Some(v) = spec.expiration {
        o = o.expiration(v);
    }
    if let Some(v) = spec.correlation_id {
        o = o.correlation_id(v);
    }
    if let Some(v) = spec.reply_to {
        o = o.reply_to(Queue::new(v));
    }
    if let Some(v) = spec.message_id {
        o = o.message_id(v);
    }
    o.properties.timestamp = spec.timestamp;
    o.properties.type_ = spec.type_;
    o.properties.user_id = spec.user_id;
    o.properties.app_id = spec.app_id;
    Ok(o)
}

/// Publishes messages (Kombu's `Producer`).
#[wasm_bindgen(js_name = Producer)]
pub struct JsProducer {
    inner: Producer,
    /// The last publish options (their JSON text) and what they parsed to: a loop publishing
    /// with the same options parses them once.
    last_options: std::cell::RefCell<Option<(String, PublishOptions)>>,
}

#[wasm_bindgen(js_class = Producer)]
impl JsProducer {
    /// Publish `body` (JSON data, a string, or bytes) with Kombu's publish options
    /// (`exchange`, `routingKey`, `headers`, `serializer`, `compression`, `declare`,
    /// `priority`, `expiration` in seconds, `correlationId`, `replyTo`, `retry`, ...).
    pub fn publish(&self, body: JsValue, options: JsValue) -> JsResult<Promise> {
        let body = body_from_js(&body)?;
        let opts = self.options(options)?;
        Ok(self.send(body, opts))
    }

    /// Publish structured data given as JSON text (what `JSON.stringify` produced): the fast
    /// path the JS layer uses for objects and arrays.
    #[wasm_bindgen(js_name = publishJson)]
    pub fn publish_json(&self, json: &str, options: JsValue) -> JsResult<Promise> {
        let mut opts = self.options(options)?;
        // With the built-in json serializer, the text is written Python-style as it is,
        // without building a value (the bytes are the same).
        if opts.content_type.is_none() {
            let serializer = opts.serializer.as_deref().or(self.inner.serializer_name());
            if let Some(encoded) = crate::serialization::json_from_text(json, serializer) {
                let e = kombu(encoded)?;
                opts.content_type = Some(e.content_type);
                opts.content_encoding = Some(e.content_encoding);
                return Ok(self.send(Payload::Bytes(e.body), opts));
            }
        }
        let v: Value = serde_json::from_str(json).map_err(|e| js_error(&Error::Encode(format!("the body is not JSON: {e}"))))?;
        Ok(self.send(Payload::Data(v), opts))
    }
}

impl JsProducer {
    fn new(inner: Producer) -> JsProducer {
        JsProducer { inner, last_options: std::cell::RefCell::new(None) }
    }

    /// Parse publish options (JSON text from the JS layer, or an object), reusing the last
    /// result when the text is the same.
    fn options(&self, options: JsValue) -> JsResult<PublishOptions> {
        let Some(text) = options.as_string() else {
            return publish_options(options_or_err("publish options", options)?);
        };
        if let Some((last, parsed)) = &*self.last_options.borrow() {
            if *last == text {
                return Ok(parsed.clone());
            }
        }
        let parsed = publish_options(options_or_err("publish options", options)?)?;
        *self.last_options.borrow_mut() = Some((text, parsed.clone()));
        Ok(parsed)
    }

    fn send(&self, body: Payload, opts: PublishOptions) -> Promise {
        let p = self.inner.clone();
        promise(async move { kombu(p.publish(body, opts).await).map(|_| JsValue::UNDEFINED) })
    }
}

// ----- consumer ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConsumerSpec {
    accept: Option<Vec<String>>,
    no_ack: Option<bool>,
    auto_declare: Option<bool>,
    prefetch_count: Option<u16>,
    tag_prefix: Option<String>,
}

/// Receives messages from queues (Kombu's `Consumer`), one at a time with `next()`.
#[wasm_bindgen(js_name = Consumer)]
pub struct JsConsumer {
    inner: Consumer,
}

#[wasm_bindgen(js_class = Consumer)]
impl JsConsumer {
    /// Declare the queues (unless `autoDeclare: false`) and start consuming.
    pub fn consume(&self) -> Promise {
        let c = self.inner.clone();
        spawn(async move { kombu(c.consume().await).map(|_| JsValue::UNDEFINED) })
    }

    /// The next message, waiting up to `timeoutMs` (forever when omitted); rejects with
    /// `TimeoutError` when none came. Starts consuming if needed.
    pub fn next(&self, timeout_ms: Option<f64>) -> JsResult<Promise> {
        let t = millis(timeout_ms)?;
        let c = self.inner.clone();
        Ok(promise(async move { kombu(c.next_message(t).await).map(|m| JsMessage { inner: m }.into()) }))
    }

    /// A message already received, or `undefined` (never waits): from the consumer's
    /// buffer, or from deliveries the connection holds and has not dispatched yet.
    #[wasm_bindgen(js_name = tryNext)]
    pub fn try_next(&self) -> JsResult<Option<JsMessage>> {
        if let Some(m) = self.inner.try_next() {
            return Ok(Some(JsMessage { inner: m }));
        }
        if let Ok(conn) = self.inner.connection() {
            kombu(conn.drain_nowait())?;
        }
        Ok(self.inner.try_next().map(|m| JsMessage { inner: m }))
    }

    /// Stop consuming; messages handed out and not acknowledged stay unacknowledged until
    /// acked or the connection closes, those received and not handed out are requeued.
    pub fn cancel(&self) -> Promise {
        let c = self.inner.clone();
        spawn(async move { kombu(c.cancel().await).map(|_| JsValue::UNDEFINED) })
    }

    /// Stop consuming from one queue.
    #[wasm_bindgen(js_name = cancelByQueue)]
    pub fn cancel_by_queue(&self, queue: JsValue) -> JsResult<Promise> {
        let queue = required_string("the queue name", &queue)?;
        let c = self.inner.clone();
        Ok(spawn(async move { kombu(c.cancel_by_queue(&queue).await).map(|_| JsValue::UNDEFINED) }))
    }

    /// True while consuming from `queue`.
    #[wasm_bindgen(js_name = consumingFrom)]
    pub fn consuming_from(&self, queue: JsValue) -> JsResult<bool> {
        Ok(self.inner.consuming_from(&required_string("the queue name", &queue)?))
    }

    /// Remove the ready messages of every queue; resolves to how many.
    pub fn purge(&self) -> Promise {
        let c = self.inner.clone();
        spawn(async move { kombu(c.purge().await).map(|n| JsValue::from_f64(n as f64)) })
    }

    /// Set the prefetch window.
    pub fn qos(&self, prefetch_count: u16, apply_global: Option<bool>) -> Promise {
        let c = self.inner.clone();
        spawn(async move { kombu(c.qos(0, prefetch_count, apply_global.unwrap_or(false)).await).map(|_| JsValue::UNDEFINED) })
    }

    /// Redeliver the unacknowledged messages.
    pub fn recover(&self, requeue: Option<bool>) -> Promise {
        let c = self.inner.clone();
        spawn(async move { kombu(c.recover(requeue.unwrap_or(true)).await).map(|_| JsValue::UNDEFINED) })
    }

    /// Names of the queues.
    #[wasm_bindgen(getter)]
    pub fn queues(&self) -> Array {
        self.inner.queues().into_iter().map(|q| JsValue::from_str(&q.name)).collect()
    }
}

impl JsConsumer {
    /// [`JsConsumer::next`] for Rust callers (tests): the message itself, not a Promise.
    pub async fn next_message(&self, timeout_ms: Option<f64>) -> JsResult<JsMessage> {
        let t = millis(timeout_ms)?;
        kombu(self.inner.next_message(t).await).map(|m| JsMessage { inner: m })
    }
}

// ----- message ----------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryInfoJs {
    exchange: String,
    routing_key: String,
    redelivered: bool,
    consumer_tag: Option<String>,
    delivery_tag: u64,
}

/// A received message (Kombu's `Message`).
#[wasm_bindgen(js_name = Message)]
pub struct JsMessage {
    inner: Message,
}

#[wasm_bindgen(js_class = Message)]
impl JsMessage {
    /// The decoded body (Kombu's `payload`): JSON data, a string for text, a `Uint8Array`
    /// for binary. Throws `ContentDisallowed`/`DecodeError` when it cannot be decoded; the
    /// message can still be acked, rejected or requeued.
    #[wasm_bindgen(getter)]
    pub fn payload(&self) -> JsResult<JsValue> {
        match self.inner.decoded() {
            Ok(p) => body_to_js(p),
            Err(e) => Err(js_error(e)),
        }
    }

    /// The raw body bytes (after decompression).
    #[wasm_bindgen(getter)]
    pub fn body(&self) -> Uint8Array {
        Uint8Array::from(&self.inner.body()[..])
    }

    /// `content_type`.
    #[wasm_bindgen(getter, js_name = contentType)]
    pub fn content_type(&self) -> Option<String> {
        self.inner.content_type().map(str::to_owned)
    }

    /// `content_encoding`.
    #[wasm_bindgen(getter, js_name = contentEncoding)]
    pub fn content_encoding(&self) -> Option<String> {
        self.inner.content_encoding().map(str::to_owned)
    }

    /// Application headers.
    #[wasm_bindgen(getter)]
    pub fn headers(&self) -> JsResult<JsValue> {
        to_js(self.inner.headers())
    }

    /// AMQP properties (`correlation_id`, `reply_to`, `priority`, `delivery_mode`, ...).
    #[wasm_bindgen(getter)]
    pub fn properties(&self) -> JsResult<JsValue> {
        to_js(self.inner.properties())
    }

    /// `{exchange, routingKey, redelivered, consumerTag, deliveryTag}`.
    #[wasm_bindgen(getter, js_name = deliveryInfo)]
    pub fn delivery_info(&self) -> JsResult<JsValue> {
        let d = self.inner.delivery_info();
        to_js(&DeliveryInfoJs {
            exchange: d.exchange,
            routing_key: d.routing_key,
            redelivered: d.redelivered,
            consumer_tag: d.consumer_tag,
            delivery_tag: d.delivery_tag,
        })
    }

    /// The channel-scoped delivery tag.
    #[wasm_bindgen(getter, js_name = deliveryTag)]
    pub fn delivery_tag(&self) -> f64 {
        self.inner.delivery_tag() as f64
    }

    /// `RECEIVED`, `ACK`, `REJECTED` or `REQUEUED`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        self.inner.state().to_string()
    }

    /// True once acked, rejected or requeued.
    #[wasm_bindgen(getter)]
    pub fn acknowledged(&self) -> bool {
        self.inner.acknowledged()
    }

    /// Acknowledge. A second settlement throws `MessageStateError`.
    pub fn ack(&self) -> JsResult<()> {
        kombu(self.inner.ack())
    }

    /// Reject (dead-letter or drop; with `requeue`, back to the queue).
    pub fn reject(&self, requeue: Option<bool>) -> JsResult<()> {
        kombu(self.inner.reject(requeue.unwrap_or(false)))
    }

    /// Reject and requeue.
    pub fn requeue(&self) -> JsResult<()> {
        kombu(self.inner.requeue())
    }
}

// ----- simple interface -------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SimpleSpec {
    no_ack: Option<bool>,
    queue: Option<QueueSpec>,
    queue_args: Option<Headers>,
    exchange: Option<ExchangeRef>,
    serializer: Option<String>,
    compression: Option<String>,
    accept: Option<Vec<String>>,
}

/// Kombu's `SimpleQueue`/`SimpleBuffer`: `put` and `get` on one queue.
#[wasm_bindgen(js_name = SimpleQueue)]
pub struct JsSimpleQueue {
    inner: SimpleQueue,
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
        let v: Value = serde_json::from_str(json).map_err(|e| js_error(&Error::Encode(format!("the body is not JSON: {e}"))))?;
        self.send(Payload::Data(v), options)
    }

    fn send(&self, body: Payload, options: JsValue) -> JsResult<Promise> {
        let spec: PublishSpec = options_or_err("put options", options)?;
        let opts = publish_options(spec)?;
        let q = self.inner.clone();
        Ok(spawn(async move { kombu(q.put(body, opts).await).map(|_| JsValue::UNDEFINED) }))
    }

    /// The next message; with `block` (default true) wait up to `timeoutMs` (forever when
    /// omitted). Rejects with `Empty` when there is none.
    pub fn get(&self, block: Option<bool>, timeout_ms: Option<f64>) -> JsResult<Promise> {
        let t = millis(timeout_ms)?;
        let q = self.inner.clone();
        Ok(spawn(async move { kombu(q.get(block.unwrap_or(true), t).await).map(|m| JsMessage { inner: m }.into()) }))
    }

    /// The next message without waiting; rejects with `Empty`.
    #[wasm_bindgen(js_name = getNowait)]
    pub fn get_nowait(&self) -> Promise {
        let q = self.inner.clone();
        spawn(async move { kombu(q.get_nowait().await).map(|m| JsMessage { inner: m }.into()) })
    }

    /// How many messages are waiting.
    pub fn qsize(&self) -> Promise {
        let q = self.inner.clone();
        spawn(async move { kombu(q.qsize().await).map(|n| JsValue::from_f64(n as f64)) })
    }

    /// Remove every message; resolves to how many.
    pub fn clear(&self) -> Promise {
        let q = self.inner.clone();
        spawn(async move { kombu(q.clear().await).map(|n| JsValue::from_f64(n as f64)) })
    }

    /// Stop consuming.
    pub fn close(&self) -> Promise {
        let q = self.inner.clone();
        spawn(async move { kombu(q.close().await).map(|_| JsValue::UNDEFINED) })
    }
}

/// Log Rust panics to the console with their message (a panic is a bug: report it).
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// A JavaScript function kept by the compression or serializer registry, whose entries must
/// be `Send + Sync`: the wasm32 build has one thread and no shared memory, so the function
/// is only ever called on the thread that made it.
struct JsFunction(js_sys::Function);
// SAFETY: wasm32 without the atomics feature is single-threaded (see above).
unsafe impl Send for JsFunction {}
unsafe impl Sync for JsFunction {}

impl JsFunction {
    /// Call with one argument; a throw becomes a message naming the function.
    fn call(&self, what: &str, arg: &JsValue) -> std::result::Result<JsValue, String> {
        self.0.call1(&JsValue::NULL, arg).map_err(|e| {
            let text = e.dyn_ref::<js_sys::Error>().map_or_else(|| format!("{e:?}"), |e| String::from(e.message()));
            format!("the JavaScript {what} function threw: {text}")
        })
    }

    /// Call with bytes; the result must be a `Uint8Array` (or, with `text_ok`, a string:
    /// its UTF-8).
    fn call_bytes(&self, what: &str, arg: &JsValue, text_ok: bool) -> std::result::Result<Vec<u8>, String> {
        let out = self.call(what, arg)?;
        if let Some(a) = out.dyn_ref::<Uint8Array>() {
            return Ok(a.to_vec());
        }
        match out.as_string() {
            Some(s) if text_ok => Ok(s.into_bytes()),
            _ => Err(format!("the JavaScript {what} function must return a Uint8Array{}", if text_ok { " or a string" } else { "" })),
        }
    }
}

/// Register a compression method implemented in JavaScript (Kombu's
/// `kombu.compression.register`): `compress` and `decompress` take a `Uint8Array` and
/// return one. Producers then use it by content type or alias (`compression: "..."`) and
/// consumers decompress bodies whose `compression` header names it.
#[wasm_bindgen(js_name = registerCompression)]
pub fn register_compression(content_type: &str, aliases: Vec<String>, compress: js_sys::Function, decompress: js_sys::Function) -> JsResult<()> {
    if content_type.is_empty() {
        return Err(value_error("registerCompression needs a content type, such as \"application/x-bz2\""));
    }
    let (encode, decode) = (JsFunction(compress), JsFunction(decompress));
    let aliases: Vec<&str> = aliases.iter().map(String::as_str).collect();
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    crate::compression::register(
        content_type,
        &aliases,
        std::sync::Arc::new(move |b: &[u8]| encode.call_bytes("compress", &Uint8Array::from(b).into(), false).map_err(invalid)),
        std::sync::Arc::new(move |b: &[u8]| decode.call_bytes("decompress", &Uint8Array::from(b).into(), false).map_err(invalid)),
    );
    Ok(())
}

/// Register a serializer implemented in JavaScript (Kombu's `kombu.serialization.register`):
/// `encode` takes the body (JSON data, a string or a `Uint8Array`) and returns a `Uint8Array`
/// or a string; `decode` takes the bytes and returns the body. Producers then name it
/// (`serializer: name`) and consumers decode its content type when their `accept` allows it.
#[wasm_bindgen(js_name = registerSerializer)]
pub fn register_serializer(name: &str, content_type: &str, content_encoding: &str, encode: js_sys::Function, decode: js_sys::Function) -> JsResult<()> {
    let (encode, decode) = (JsFunction(encode), JsFunction(decode));
    kombu(crate::serialization::register(
        name,
        content_type,
        content_encoding,
        std::sync::Arc::new(move |p: &Payload| {
            let body = body_to_js(p).map_err(|_| Error::Encode("the body cannot be given to JavaScript".into()))?;
            encode.call_bytes("encode", &body, true).map_err(Error::Encode)
        }),
        std::sync::Arc::new(move |b: &[u8]| {
            let out = decode.call("decode", &Uint8Array::from(b).into()).map_err(Error::Decode)?;
            body_from_js(&out).map_err(|_| Error::Decode("the JavaScript decode function must return JSON data, a string or a Uint8Array".into()))
        }),
    ))
}

/// Register a serializer that a second WebAssembly module implements over JSON (used by
/// `kombu-wasm/codecs` for yaml and msgpack): `fromJson` turns the payload as JSON bytes into
/// the body, `toJson` turns a body into JSON bytes. No JavaScript values are built on the
/// way, so key order and integer/float types survive as with the built-in serializers.
#[wasm_bindgen(js_name = registerJsonCodec)]
pub fn register_json_codec(name: &str, content_type: &str, content_encoding: &str, from_json: js_sys::Function, to_json: js_sys::Function) -> JsResult<()> {
    let (encode, decode) = (JsFunction(from_json), JsFunction(to_json));
    kombu(crate::serialization::register(
        name,
        content_type,
        content_encoding,
        std::sync::Arc::new(move |p: &Payload| {
            let json = crate::serialization::json_bytes(p)?;
            encode.call_bytes("fromJson", &Uint8Array::from(&json[..]).into(), false).map_err(Error::Encode)
        }),
        std::sync::Arc::new(move |b: &[u8]| {
            let json = decode.call_bytes("toJson", &Uint8Array::from(b).into(), false).map_err(Error::Decode)?;
            serde_json::from_slice(&json).map(Payload::Data).map_err(|e| Error::Decode(format!("toJson returned invalid JSON: {e}")))
        }),
    ))
}

/// The compression methods this module knows: `[[contentType, [alias, ...]], ...]`.
#[wasm_bindgen(js_name = compressionMethods)]
pub fn compression_methods() -> Array {
    crate::wasm_codecs::methods_array()
}

/// The crate version.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Validate an `Exchange` spec early (at `new Exchange(...)`): unknown or mistyped options
/// throw `ValueError` naming them.
#[wasm_bindgen(js_name = checkExchange)]
pub fn check_exchange(value: JsValue) -> JsResult<()> {
    let s: ExchangeSpec = spec("Exchange options", value)?;
    s.build().map(|_| ())
}

/// Validate a `Queue` spec early (at `new Queue(...)`).
#[wasm_bindgen(js_name = checkQueue)]
pub fn check_queue(value: JsValue) -> JsResult<()> {
    let s: QueueSpec = spec("Queue options", value)?;
    s.build().map(|_| ())
}
