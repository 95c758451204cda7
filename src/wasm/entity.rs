//! `Exchange` and `Queue` declarations from JS: the plain specs the JS layer sends (see
//! `js/lib.js`'s `toSpec`), and the early checks `new Exchange(...)` / `new Queue(...)` run.
//!
//! The specs deserialize straight into [`Exchange`], [`Queue`] and [`Entity`], whose serde
//! attributes take the camelCase names, refuse unknown fields and take an exchange by name:
//! the fields are listed once, in [`crate::entity`]. This file adds the one check serde does
//! not make.

use wasm_bindgen::prelude::*;

use super::convert::{spec, value_error, JsResult};
use crate::{Entity, Exchange, Queue};

/// A queue whose bindings all name their exchange (a binding without one would be to the
/// default exchange, which brokers refuse).
pub(super) fn checked(q: Queue) -> JsResult<Queue> {
    if q.bindings.iter().any(|b| b.exchange.is_none()) {
        return Err(value_error(format!("a binding of queue '{}' needs an exchange", q.name)));
    }
    Ok(q)
}

/// An exchange, or a queue [`checked`].
pub(super) fn checked_entity(e: Entity) -> JsResult<Entity> {
    match e {
        Entity::Queue(q) => checked(q).map(Entity::Queue),
        x => Ok(x),
    }
}

/// `queues`: an array of queue specs (`undefined`/`null`: none).
pub(super) fn queues_from_js(v: JsValue) -> JsResult<Vec<Queue>> {
    if v.is_undefined() || v.is_null() {
        return Ok(Vec::new());
    }
    spec::<Vec<Queue>>("queues", v)?.into_iter().map(checked).collect()
}

/// Validate an `Exchange` spec early (at `new Exchange(...)`): unknown or mistyped options
/// throw `ValueError` naming them.
#[wasm_bindgen(js_name = checkExchange)]
pub fn check_exchange(value: JsValue) -> JsResult<()> {
    spec::<Exchange>("Exchange options", value).map(|_| ())
}

/// Validate a `Queue` spec early (at `new Queue(...)`).
#[wasm_bindgen(js_name = checkQueue)]
pub fn check_queue(value: JsValue) -> JsResult<()> {
    checked(spec("Queue options", value)?).map(|_| ())
}
