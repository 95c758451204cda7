//! `Producer` (Kombu's `Producer`) and the publish options it shares with `SimpleQueue.put`.

use std::borrow::Cow;

use js_sys::Promise;
use serde::Deserialize;
use wasm_bindgen::prelude::*;

use super::convert::{body_from_js, js_error, kombu, outcome, parse_options, promise, spawn, spec, JsResult};
use super::entity::checked_entity;
use crate::entity::opt_exchange_or_name;
use crate::error::Error;
use crate::retry::RetryPolicy;
use crate::value::{Headers, Value};
use crate::{Connection, DeliveryMode, Entity, Exchange, Payload, Producer, Properties, PublishOptions};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProducerSpec {
    #[serde(default, deserialize_with = "opt_exchange_or_name")]
    exchange: Option<Exchange>,
    routing_key: Option<String>,
    serializer: Option<String>,
    compression: Option<String>,
    auto_declare: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PublishSpec {
    #[serde(default, deserialize_with = "opt_exchange_or_name")]
    exchange: Option<Exchange>,
    routing_key: Option<String>,
    delivery_mode: Option<DeliveryMode>,
    mandatory: Option<bool>,
    priority: Option<u8>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    serializer: Option<String>,
    headers: Option<Headers>,
    compression: Option<String>,
    retry: Option<bool>,
    /// Seconds, as the core takes it (lib.js converts the milliseconds apps give).
    retry_policy: Option<RetryPolicy>,
    declare: Option<Vec<Entity>>,
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

pub(super) fn publish_options(spec: PublishSpec) -> JsResult<PublishOptions> {
    let mut o = PublishOptions {
        routing_key: spec.routing_key,
        delivery_mode: spec.delivery_mode,
        mandatory: spec.mandatory.unwrap_or(false),
        priority: spec.priority,
        content_type: spec.content_type.map(Cow::Owned),
        content_encoding: spec.content_encoding.map(Cow::Owned),
        serializer: spec.serializer,
        headers: spec.headers.unwrap_or_default(),
        compression: spec.compression,
        exchange: spec.exchange,
        retry: spec.retry.unwrap_or(false) || spec.retry_policy.is_some(),
        retry_policy: spec.retry_policy,
        expiration: spec.expiration,
        properties: Properties {
            correlation_id: spec.correlation_id,
            reply_to: spec.reply_to,
            message_id: spec.message_id,
            timestamp: spec.timestamp,
            type_: spec.type_,
            user_id: spec.user_id,
            app_id: spec.app_id,
            ..Properties::default()
        },
        ..PublishOptions::default()
    };
    for e in spec.declare.into_iter().flatten() {
        o.declare.push(checked_entity(e)?);
    }
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

    /// Call `f(error, exchange, routingKey, message)` for every message the broker returns
    /// on this producer's channel (published with `mandatory` and routed to no queue), as the
    /// connection's events are drained (lib.js drains them after mandatory publishes).
    #[wasm_bindgen(js_name = onReturn)]
    pub fn on_return(&self, f: js_sys::Function) {
        self.inner.channel().on_return(std::sync::Arc::new(move |e: &Error, exchange: &str, routing_key: &str, m: &crate::Message| {
            let args = js_sys::Array::of4(&js_error(e), &exchange.into(), &routing_key.into(), &super::message::JsMessage::from(m.clone()).into());
            let _ = f.apply(&JsValue::NULL, &args);
        }));
    }

    /// Declare an exchange or queue unless this connection already did (Kombu's
    /// `maybe_declare`); resolves to true when it was declared now.
    #[wasm_bindgen(js_name = maybeDeclare)]
    pub fn maybe_declare(&self, entity: JsValue) -> JsResult<Promise> {
        let e = checked_entity(spec("declaration", entity)?)?;
        let p = self.inner.clone();
        Ok(spawn(async move { kombu(p.maybe_declare(e).await).map(JsValue::from) }))
    }
}

impl JsProducer {
    /// `Connection.Producer(options)`: a producer on the connection's default channel.
    pub(super) fn open(conn: &Connection, options: JsValue) -> JsResult<JsProducer> {
        let spec: ProducerSpec = parse_options("Producer options", options)?;
        let mut p = Producer::new(&conn.default_channel_handle());
        if let Some(x) = spec.exchange {
            p = p.exchange(x);
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
        Ok(JsProducer { inner: p, last_options: std::cell::RefCell::new(None) })
    }

    /// Parse publish options (JSON text from the JS layer, or an object), reusing the last
    /// result when the text is the same.
    fn options(&self, options: JsValue) -> JsResult<PublishOptions> {
        let Some(text) = options.as_string() else {
            return publish_options(parse_options("publish options", options)?);
        };
        if let Some((last, parsed)) = &*self.last_options.borrow() {
            if *last == text {
                return Ok(parsed.clone());
            }
        }
        let parsed = publish_options(parse_options("publish options", options)?)?;
        *self.last_options.borrow_mut() = Some((text, parsed.clone()));
        Ok(parsed)
    }

    fn send(&self, body: Payload, opts: PublishOptions) -> Promise {
        let p = self.inner.clone();
        promise(async move { outcome(p.publish(body, opts).await) })
    }
}
