//! `checkExchange`, `checkQueue`: the early checks `new Exchange(...)` / `new Queue(...)` run
//! on the plain specs lib.js makes of them (see `js/lib.js`'s `toSpec`), read by
//! [`super::options`].

use wasm_bindgen::prelude::*;

use super::convert::JsResult;
use super::options::{exchange, queue_from_js, Fields};

/// Validate an `Exchange` spec early (at `new Exchange(...)`): unknown or mistyped options
/// throw `ValueError` naming them.
#[wasm_bindgen(js_name = checkExchange)]
pub fn check_exchange(value: JsValue) -> JsResult<()> {
    exchange(Fields::from_js("Exchange options", &value)?).map(|_| ())
}

/// Validate a `Queue` spec early (at `new Queue(...)`).
#[wasm_bindgen(js_name = checkQueue)]
pub fn check_queue(value: JsValue) -> JsResult<()> {
    queue_from_js("Queue options", &value).map(|_| ())
}
