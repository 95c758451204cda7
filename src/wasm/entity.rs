//! `Exchange` and `Queue` declarations from JS: the plain specs the JS layer sends (see
//! `js/lib.js`'s `toSpec`), and the early checks `new Exchange(...)` / `new Queue(...)` run.

use serde::Deserialize;
use wasm_bindgen::prelude::*;

use super::convert::{from_json, json_type, kombu, spec, value_error, JsResult};
use crate::value::{Headers, Value};
use crate::{Binding, DeliveryMode, Entity, Exchange, Queue};

/// `new Exchange(name, options)` as a plain object.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ExchangeSpec {
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
pub(super) struct DeliveryModeSpec(Value);

pub(super) fn delivery_mode(d: &DeliveryModeSpec) -> JsResult<DeliveryMode> {
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
pub(super) struct ExchangeRef(Value);

impl ExchangeRef {
    pub(super) fn build(&self) -> JsResult<Exchange> {
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
pub(super) struct QueueSpec {
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
    pub(super) fn build(&self) -> JsResult<Queue> {
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
pub(super) enum EntitySpec {
    Exchange(ExchangeSpec),
    Queue(QueueSpec),
}

impl EntitySpec {
    pub(super) fn build(&self) -> JsResult<Entity> {
        Ok(match self {
            EntitySpec::Exchange(x) => Entity::Exchange(x.build()?),
            EntitySpec::Queue(q) => Entity::Queue(q.build()?),
        })
    }
}

pub(super) fn queues_from_js(v: JsValue) -> JsResult<Vec<Queue>> {
    let specs: Vec<QueueSpec> = if v.is_undefined() || v.is_null() {
        Vec::new()
    } else {
        spec("queues", v)?
    };
    specs.iter().map(QueueSpec::build).collect()
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
