//! JS values in and out: errors as named JS `Error`s, string arguments, Promises, and message
//! bodies (options objects are read by `options.rs`).

use std::time::Duration;

use bytes::Bytes;
use js_sys::{Array, Promise, Uint8Array};
use crate::value::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::future_to_promise;

use crate::error::Error;
use crate::Payload;

thread_local! {
    /// `(name, message, code) => Error`: the npm package's error classes (`NotFound`, ...).
    static ERROR_FACTORY: std::cell::RefCell<Option<js_sys::Function>> = const { std::cell::RefCell::new(None) };
}

/// Set the function that makes the errors thrown to JavaScript (see [`js_error`]).
pub(super) fn set_error_factory(f: Option<js_sys::Function>) {
    ERROR_FACTORY.with(|e| *e.borrow_mut() = f);
}

/// A JS `Error` named after the Kombu exception: made by the error factory when one is set
/// (with the AMQP reply code of a connection or channel error), else a plain named `Error`.
pub(super) fn js_error(e: &Error) -> JsValue {
    let text = e.to_string();
    // JS prints `${name}: ${message}`; drop the name the Rust message starts with.
    let msg = text.strip_prefix(e.name()).and_then(|m| m.strip_prefix(": ")).unwrap_or(&text);
    if let Some(f) = ERROR_FACTORY.with(|f| f.borrow().clone()) {
        let code = match e {
            Error::Connection { code, .. } | Error::Channel { code, .. } => JsValue::from(code.code()),
            _ => JsValue::UNDEFINED,
        };
        let args = Array::of3(&JsValue::from_str(e.name()), &JsValue::from_str(msg), &code);
        if let Ok(err) = f.apply(&JsValue::NULL, &args) {
            return err;
        }
    }
    let err = js_sys::Error::new(msg);
    err.set_name(e.name());
    err.into()
}

pub(super) fn value_error(msg: impl Into<String>) -> JsValue {
    js_error(&Error::Value(msg.into()))
}

/// A string argument from JavaScript. Parameters typed `String` in wasm-bindgen trust the
/// caller to pass a string (anything else corrupts the module's memory), so arguments that come
/// from users are taken as values and checked here. `None` for `undefined`/`null`.
pub(super) fn string_arg(what: &str, v: &JsValue) -> JsResult<Option<String>> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_string().map(Some).ok_or_else(|| value_error(format!("{what} must be a string, not {}", js_type(v))))
}

/// A required string argument (see [`string_arg`]).
pub(super) fn required_string(what: &str, v: &JsValue) -> JsResult<String> {
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

pub(super) type JsResult<T> = std::result::Result<T, JsValue>;

pub(super) fn kombu<T>(r: crate::Result<T>) -> JsResult<T> {
    r.map_err(thrown)
}

/// [`js_error`] of an owned error: one copy of the error's drop for every `kombu::<T>`.
#[inline(never)]
fn thrown(e: Error) -> JsValue {
    js_error(&e)
}

/// What an operation's result is in JS: `undefined` for `()`, a number for a count, ...
pub(super) trait Outcome {
    fn into_js(self) -> JsValue;
}

impl Outcome for () {
    fn into_js(self) -> JsValue {
        JsValue::UNDEFINED
    }
}

/// Counts: messages purged, waiting, ...
impl Outcome for u32 {
    fn into_js(self) -> JsValue {
        JsValue::from_f64(self.into())
    }
}

/// An operation's result for a Promise: its [`Outcome`], or the error as a JS `Error`.
pub(super) fn outcome<T: Outcome>(r: crate::Result<T>) -> JsResult<JsValue> {
    kombu(r).map(Outcome::into_js)
}

/// A Promise for `fut`, which starts now: when it completes on its first poll (most
/// operations on memory://, publishes on every transport) the Promise is settled at once,
/// without the task and closure `future_to_promise` allocates; otherwise wasm-bindgen-futures
/// drives it from there (polling again with a real waker).
pub(super) fn promise(fut: impl std::future::Future<Output = JsResult<JsValue>> + 'static) -> Promise {
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
pub(super) fn spawn(fut: impl std::future::Future<Output = JsResult<JsValue>> + 'static) -> Promise {
    let fut: Op = Box::pin(fut);
    future_to_promise(fut)
}

/// `v` as a JavaScript value, through JSON text that the JavaScript engine parses (no
/// serializer to JavaScript values in the module).
pub(super) fn to_js(v: &Value) -> JsResult<JsValue> {
    let mut text = Vec::new();
    crate::json_print::compact(&mut text, v);
    json_to_js(&text)
}

/// The JavaScript value of JSON text written by [`crate::json_print`].
pub(super) fn json_to_js(text: &[u8]) -> JsResult<JsValue> {
    let text = std::str::from_utf8(text).unwrap_or_default();
    js_sys::JSON::parse(text).map_err(|_| value_error("cannot convert to a JavaScript value"))
}

pub(super) fn millis(ms: Option<f64>) -> JsResult<Option<Duration>> {
    match ms {
        None => Ok(None),
        Some(m) if m.is_finite() && m >= 0.0 => Ok(Some(Duration::from_secs_f64(m / 1000.0))),
        // The number as JavaScript writes it (core's float formatting is left out of the module).
        Some(m) => Err(value_error(format!("a timeout must be a number of milliseconds >= 0, not {}", String::from(js_sys::Number::from(m).to_string_with_radix(10).unwrap_or_default())))),
    }
}

/// A JS body: a string, a `Uint8Array`/`ArrayBuffer` (raw bytes), or any JSON value.
pub(super) fn body_from_js(v: &JsValue) -> JsResult<Payload> {
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
    // Printed by the JavaScript engine and parsed here (lib.js has refused what JSON cannot
    // carry as is: NaN, Dates, Maps, ...).
    let text = js_sys::JSON::stringify(v).ok().and_then(|s| s.as_string());
    let parsed = text.map(|t| crate::serialization::json_loads(t.as_bytes()));
    match parsed {
        Some(Ok(v)) => Ok(Payload::Data(v)),
        Some(Err(e)) => Err(not_json(&e.to_string())),
        None => Err(not_json("JSON.stringify refused it")),
    }
}

fn not_json(why: &str) -> JsValue {
    js_error(&Error::Encode(format!(
        "the message body is not JSON data ({why}); send plain objects, arrays, strings, numbers, booleans or null, a string, or a Uint8Array"
    )))
}

pub(super) fn body_to_js(p: &Payload) -> JsResult<JsValue> {
    match p {
        // JSON.parse builds the object natively, much faster than field-by-field conversion.
        Payload::Data(v) => to_js(v).map_err(|_| value_error("cannot convert the payload to a JavaScript value")),
        Payload::Text(s) => Ok(JsValue::from_str(s)),
        Payload::Bytes(b) => Ok(Uint8Array::from(&b[..]).into()),
    }
}
