//! Options objects and declarations from JavaScript, read by hand from a JSON value.
//!
//! lib.js has already checked and normalised what the app gave (units, camelCase, classes);
//! this reads the plain objects it sends. Not through serde derives: their visitors, made once
//! per deserializer the facade used (serde-wasm-bindgen's, serde_json's, `&Value`), and the
//! search for the option to blame cost the modules ~21 KB gzipped each (~70 KB before gzip). The reading here still refuses unknown options and wrong types,
//! naming the option, so a call that bypasses lib.js gets a clear `ValueError` too.

use wasm_bindgen::prelude::*;

use super::convert::{value_error, JsResult};
use crate::properties::DeliveryMode;
use crate::retry::RetryPolicy;
use crate::value::{Headers, Json, Value};
use crate::{Binding, Entity, Exchange, Queue};

/// A JSON value from JavaScript: JSON text (what lib.js sends) or a value, which JavaScript's
/// `JSON.stringify` prints. `None` for `undefined`/`null`.
pub(super) fn json_from_js(what: &str, v: &JsValue) -> JsResult<Option<Value>> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    let text = match v.as_string() {
        Some(text) => text,
        None => js_sys::JSON::stringify(v).ok().and_then(|s| s.as_string()).ok_or_else(|| value_error(format!("invalid {what}: not JSON data")))?,
    };
    crate::serialization::json_loads(text.as_bytes()).map(Some).map_err(|e| value_error(format!("invalid {what}: {e}")))
}

/// The fields of an options object, taken one by one; what is left over is refused.
///
/// A wrong option is kept (the first one) rather than returned at once, and [`Fields::done`]
/// returns it: the readers are then a plain sequence of calls, without a return path (and
/// the drops of what was read so far) after each option. Once an option was wrong, the
/// later ones read as absent, so nothing is done with them: the error is the one an early
/// return gave.
pub(super) struct Fields {
    what: String,
    map: Headers,
    /// Also take Kombu's snake_case names (`auto_delete` for `autoDelete`), as the
    /// declarations of the Rust API serialize with them.
    snake: bool,
    /// The names asked for, to list in the error about an unknown one.
    known: Vec<&'static str>,
    /// The first wrong option.
    err: Option<JsValue>,
}

impl Fields {
    /// The options `v` (undefined/null: none) from JavaScript.
    pub(super) fn from_js(what: &str, v: &JsValue) -> JsResult<Fields> {
        Fields::from_value(what, json_from_js(what, v)?.unwrap_or(Value::Null))
    }

    /// An object (null: empty) as fields.
    pub(super) fn from_value(what: &str, v: Value) -> JsResult<Fields> {
        let map = match v {
            Value::Object(map) => map,
            Value::Null => Headers::new(),
            other => return Err(value_error(format!("invalid {what}: expected an object, not {}", Json(&other)))),
        };
        Ok(Fields { what: what.to_owned(), map, snake: false, known: Vec::new(), err: None })
    }

    /// Also take snake_case names.
    pub(super) fn snake(mut self) -> Fields {
        self.snake = true;
        self
    }

    /// The value of `k` (or its snake_case form), with the name it was given under; `None`
    /// when absent or null, or after a wrong option.
    fn take(&mut self, k: &'static str) -> Option<(String, Value)> {
        if self.err.is_some() {
            return None;
        }
        self.known.push(k);
        let mut found = self.map.remove_entry(k);
        if found.is_none() && self.snake {
            let mut s = String::with_capacity(k.len() + 2);
            for c in k.chars() {
                if c.is_ascii_uppercase() {
                    s.push('_');
                }
                s.push(c.to_ascii_lowercase());
            }
            found = self.map.remove_entry(&s);
        }
        found.filter(|(_, v)| !v.is_null())
    }

    /// Keep `e` as the error unless one was kept already.
    fn fail(&mut self, e: JsValue) {
        if self.err.is_none() {
            self.err = Some(e);
        }
    }

    /// The value of `r`, or `None` with its error kept (a nested reader's result).
    pub(super) fn keep<T>(&mut self, r: JsResult<T>) -> Option<T> {
        r.map_err(|e| self.fail(e)).ok()
    }

    /// Keep the error that `key` is not `expected`.
    fn bad(&mut self, key: &str, expected: &str, v: &Value) {
        let e = value_error(format!("invalid {}: `{key}` must be {expected}, not {}", self.what, Json(v)));
        self.fail(e);
    }

    /// Take `k` and convert it with `f`, or keep the error that it is not `expected`.
    pub(super) fn get<T>(&mut self, k: &'static str, expected: &str, f: impl FnOnce(&Value) -> Option<T>) -> Option<T> {
        let (key, v) = self.take(k)?;
        let r = f(&v);
        if r.is_none() {
            self.bad(&key, expected, &v);
        }
        r
    }

    pub(super) fn str(&mut self, k: &'static str) -> Option<String> {
        self.get(k, "a string", |v| v.as_str().map(str::to_owned))
    }

    pub(super) fn bool(&mut self, k: &'static str) -> Option<bool> {
        self.get(k, "a boolean", Value::as_bool)
    }

    /// Set `*slot` to the string `k` when given (the readers' fields with a default).
    pub(super) fn set_str(&mut self, k: &'static str, slot: &mut String) {
        if let Some(v) = self.str(k) {
            *slot = v;
        }
    }

    /// Set `*slot` to the boolean `k` when given.
    pub(super) fn set_bool(&mut self, k: &'static str, slot: &mut bool) {
        if let Some(v) = self.bool(k) {
            *slot = v;
        }
    }

    pub(super) fn f64(&mut self, k: &'static str) -> Option<f64> {
        self.get(k, "a number", Value::as_f64)
    }

    /// An integer from 0 to `max`.
    pub(super) fn uint(&mut self, k: &'static str, max: u64) -> Option<u64> {
        let (key, v) = self.take(k)?;
        let r = v.as_u64().filter(|n| *n <= max);
        if r.is_none() {
            self.bad(&key, &format!("an integer from 0 to {max}"), &v);
        }
        r
    }

    /// An object of JSON values (headers, arguments).
    pub(super) fn map(&mut self, k: &'static str) -> Option<Headers> {
        self.get(k, "an object", |v| v.as_object().cloned())
    }

    pub(super) fn strings(&mut self, k: &'static str) -> Option<Vec<String>> {
        self.get(k, "an array of strings", |v| {
            let mut strings = Vec::new();
            for s in v.as_array()? {
                strings.push(s.as_str()?.to_owned());
            }
            Some(strings)
        })
    }

    /// A nested options object.
    pub(super) fn fields(&mut self, k: &'static str) -> Option<Fields> {
        match self.take(k)? {
            (_, v @ Value::Object(_)) => {
                let what = format!("{}: `{k}`", self.what);
                let r = Fields::from_value(&what, v);
                self.keep(r)
            }
            (key, v) => {
                self.bad(&key, "an object", &v);
                None
            }
        }
    }

    /// The values of an array, each read by `f` as fields named `what[i]`.
    pub(super) fn each<T>(&mut self, k: &'static str, f: impl Fn(Fields) -> JsResult<T>) -> Vec<T> {
        match self.take(k) {
            None => Vec::new(),
            Some((key, Value::Array(items))) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, v) in items.into_iter().enumerate() {
                    match Fields::from_value(&format!("{}: `{key}[{i}]`", self.what), v).and_then(&f) {
                        Ok(t) => out.push(t),
                        Err(e) => {
                            self.fail(e);
                            break;
                        }
                    }
                }
                out
            }
            Some((key, v)) => {
                self.bad(&key, "an array", &v);
                Vec::new()
            }
        }
    }

    pub(super) fn delivery_mode(&mut self, k: &'static str) -> Option<DeliveryMode> {
        self.get(k, "1 (transient), 2 (persistent), \"transient\" or \"persistent\"", |v| match v {
            Value::String(s) => DeliveryMode::parse(s).ok(),
            v => DeliveryMode::try_from(u8::try_from(v.as_u64()?).ok()?).ok(),
        })
    }

    /// An exchange given as a declaration or by name (a direct exchange of that name).
    pub(super) fn exchange(&mut self, k: &'static str) -> Option<Exchange> {
        match self.take(k)? {
            (_, Value::String(name)) => Some(Exchange::direct(name)),
            (_, v @ Value::Object(_)) => {
                let what = format!("{}: `{k}`", self.what);
                let r = Fields::from_value(&what, v).and_then(exchange);
                self.keep(r)
            }
            (key, v) => {
                self.bad(&key, "an exchange or an exchange name", &v);
                None
            }
        }
    }

    pub(super) fn retry_policy(&mut self, k: &'static str) -> Option<RetryPolicy> {
        let r = self.fields(k).map(retry_policy).transpose();
        self.keep(r).flatten()
    }

    /// The object itself (binding arguments and the like: the app's own keys).
    pub(super) fn into_map(self) -> Headers {
        self.map
    }

    /// The wrong option kept, if any.
    pub(super) fn check(&mut self) -> JsResult<()> {
        self.err.take().map_or(Ok(()), Err)
    }

    /// The wrong option kept, else refuse what was not taken.
    pub(super) fn done(mut self) -> JsResult<()> {
        self.check()?;
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => Err(value_error(format!("invalid {}: unknown option `{k}` (expected one of {})", self.what, self.known.join(", ")))),
        }
    }
}

/// An `Exchange` (Kombu's fields and defaults).
pub(super) fn exchange(f: Fields) -> JsResult<Exchange> {
    let mut f = f.snake();
    let mut x = Exchange::default();
    f.set_str("name", &mut x.name);
    if let Some(v) = f.str("type") {
        x.kind = v.into();
    }
    f.set_bool("durable", &mut x.durable);
    f.set_bool("autoDelete", &mut x.auto_delete);
    x.delivery_mode = f.delivery_mode("deliveryMode");
    if let Some(v) = f.map("arguments") {
        x.arguments = v;
    }
    f.set_bool("noDeclare", &mut x.no_declare);
    f.set_bool("passive", &mut x.passive);
    f.done()?;
    Ok(x)
}

/// A `Queue` (Kombu's fields and defaults); every binding must name its exchange (one
/// without would be to the default exchange, which brokers refuse).
pub(super) fn queue(f: Fields) -> JsResult<Queue> {
    let mut f = f.snake();
    let mut q = Queue::default();
    f.set_str("name", &mut q.name);
    if let Some(v) = f.exchange("exchange") {
        q.exchange = v;
    }
    f.set_str("routingKey", &mut q.routing_key);
    f.set_bool("durable", &mut q.durable);
    f.set_bool("exclusive", &mut q.exclusive);
    f.set_bool("autoDelete", &mut q.auto_delete);
    q.expires = f.f64("expires");
    q.message_ttl = f.f64("messageTtl");
    q.max_length = f.uint("maxLength", u64::MAX);
    q.max_length_bytes = f.uint("maxLengthBytes", u64::MAX);
    q.max_priority = f.uint("maxPriority", 255).map(|n| n as u8);
    for (k, slot) in [("queueArguments", &mut q.queue_arguments), ("bindingArguments", &mut q.binding_arguments), ("consumerArguments", &mut q.consumer_arguments)] {
        if let Some(v) = f.map(k) {
            *slot = v;
        }
    }
    q.alias = f.str("alias");
    f.set_bool("noAck", &mut q.no_ack);
    f.set_bool("noDeclare", &mut q.no_declare);
    q.bindings = f.each("bindings", binding);
    f.done()?;
    if q.bindings.iter().any(|b| b.exchange.is_none()) {
        return Err(value_error(format!("a binding of queue '{}' needs an exchange", q.name)));
    }
    Ok(q)
}

fn binding(f: Fields) -> JsResult<Binding> {
    let mut f = f.snake();
    let b = Binding {
        exchange: f.exchange("exchange"),
        routing_key: f.str("routingKey").unwrap_or_default(),
        arguments: f.map("arguments").unwrap_or_default(),
        unbind_arguments: f.map("unbindArguments"),
    };
    f.done()?;
    Ok(b)
}

/// `{exchange: {...}}` or `{queue: {...}}` (what lib.js's `declare` sends).
pub(super) fn entity(mut f: Fields) -> JsResult<Entity> {
    let (x, q) = (f.fields("exchange"), f.fields("queue"));
    f.check()?;
    let e = match (x, q) {
        (Some(x), None) => Entity::Exchange(exchange(x)?),
        (None, Some(q)) => Entity::Queue(queue(q)?),
        _ => return Err(value_error(format!("invalid {}: expected {{exchange: {{...}}}} or {{queue: {{...}}}}", f.what))),
    };
    f.done()?;
    Ok(e)
}

/// Kombu's retry policy (seconds; `Connection.ensure`'s defaults for what is missing).
pub(super) fn retry_policy(f: Fields) -> JsResult<RetryPolicy> {
    let mut f = f.snake();
    let mut r = RetryPolicy::ensure_default();
    for (k, slot) in [("intervalStart", &mut r.interval_start), ("intervalStep", &mut r.interval_step), ("intervalMax", &mut r.interval_max)] {
        if let Some(v) = f.f64(k) {
            *slot = v;
        }
    }
    r.max_retries = f.uint("maxRetries", u32::MAX.into()).map(|n| n as u32);
    r.timeout = f.f64("timeout");
    f.done()?;
    Ok(r)
}

/// An options object of declarations: a queue (`queue`) from JavaScript.
pub(super) fn queue_from_js(what: &str, v: &JsValue) -> JsResult<Queue> {
    queue(Fields::from_js(what, v)?)
}

/// An entity (`{exchange}` / `{queue}`) from JavaScript.
pub(super) fn entity_from_js(v: &JsValue) -> JsResult<Entity> {
    entity(Fields::from_js("declaration", v)?)
}

/// `queues`: an array of queue specs (`undefined`/`null`: none).
pub(super) fn queues_from_js(v: &JsValue) -> JsResult<Vec<Queue>> {
    match json_from_js("queues", v)? {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            let mut queues = Vec::with_capacity(items.len());
            for (i, q) in items.into_iter().enumerate() {
                queues.push(queue(Fields::from_value(&format!("queues[{i}]"), q)?)?);
            }
            Ok(queues)
        }
        Some(other) => Err(value_error(format!("invalid queues: expected an array, not {}", Json(&other)))),
    }
}
