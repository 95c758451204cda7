//! `Producer` (Kombu's `Producer`) and the publish options it shares with `SimpleQueue.put`.

use std::borrow::Cow;

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::convert::{body_from_js, js_error, kombu, outcome, promise, spawn, JsResult};
use super::options::{entity, entity_from_js, Fields};
use crate::error::Error;
use crate::value::Value;
use crate::{Connection, Payload, Producer, Properties, PublishOptions};

/// The publish options lib.js sends (`expiration` and the retry policy in seconds).
pub(super) fn publish_options(what: &str, options: &JsValue) -> JsResult<PublishOptions> {
    let mut f = Fields::from_js(what, options)?;
    let retry_policy = f.retry_policy("retryPolicy");
    let o = PublishOptions {
        exchange: f.exchange("exchange"),
        routing_key: f.str("routingKey"),
        delivery_mode: f.delivery_mode("deliveryMode"),
        mandatory: f.bool("mandatory").unwrap_or(false),
        priority: f.uint("priority", 255).map(|n| n as u8),
        content_type: f.str("contentType").map(Cow::Owned),
        content_encoding: f.str("contentEncoding").map(Cow::Owned),
        serializer: f.str("serializer"),
        headers: f.map("headers").unwrap_or_default(),
        compression: f.str("compression"),
        retry: f.bool("retry").unwrap_or(false) || retry_policy.is_some(),
        retry_policy,
        declare: f.each("declare", entity),
        expiration: f.f64("expiration"),
        properties: Properties {
            correlation_id: f.str("correlationId"),
            reply_to: f.str("replyTo"),
            message_id: f.str("messageId"),
            timestamp: f.uint("timestamp", u64::MAX),
            type_: f.str("type"),
            user_id: f.str("userId"),
            app_id: f.str("appId"),
            ..Properties::default()
        },
        ..PublishOptions::default()
    };
    f.done()?;
    Ok(o)
}

/// Publishes messages (Kombu's `Producer`).
#[wasm_bindgen(js_name = Producer)]
pub struct JsProducer {
    inner: Producer,
    /// The last publish options (their JSON text, as the JS string it came in) and what they
    /// parsed to: a loop publishing with the same options parses them once, and finds them
    /// the same with one `===` in JS instead of copying the text into the module first.
    last_options: std::cell::RefCell<Option<(JsValue, PublishOptions)>>,
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
        let v: Value = crate::serialization::json_loads(json.as_bytes()).map_err(|e| js_error(&Error::Encode(format!("the body is not JSON: {e}"))))?;
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
        let e = entity_from_js(&entity)?;
        Ok(spawn(Op::MaybeDeclare(e).run(self.inner.clone())))
    }
}

impl JsProducer {
    /// `Connection.Producer(options)`: a producer on the connection's default channel.
    pub(super) fn open(conn: &Connection, options: JsValue) -> JsResult<JsProducer> {
        let mut f = Fields::from_js("Producer options", &options)?;
        let mut p = Producer::new(&conn.default_channel_handle());
        if let Some(x) = f.exchange("exchange") {
            p = p.exchange(x);
        }
        if let Some(v) = f.str("routingKey") {
            p = p.routing_key(v);
        }
        if let Some(v) = f.str("serializer") {
            p = p.serializer(v);
        }
        if let Some(v) = f.str("compression") {
            p = p.compression(v);
        }
        if let Some(v) = f.bool("autoDeclare") {
            p = p.auto_declare(v);
        }
        f.done()?;
        Ok(JsProducer { inner: p, last_options: std::cell::RefCell::new(None) })
    }

    /// Parse publish options (JSON text from the JS layer, or an object), reusing the last
    /// result when the text is the same.
    fn options(&self, options: JsValue) -> JsResult<PublishOptions> {
        if !options.is_string() {
            return publish_options("publish options", &options);
        }
        if let Some((last, parsed)) = &*self.last_options.borrow() {
            // `===` on two strings compares their text.
            if *last == options {
                return Ok(parsed.clone());
            }
        }
        let parsed = publish_options("publish options", &options)?;
        *self.last_options.borrow_mut() = Some((options, parsed.clone()));
        Ok(parsed)
    }

    fn send(&self, body: Payload, opts: PublishOptions) -> Promise {
        promise(Op::Publish(body, opts).run(self.inner.clone()))
    }
}

/// The asynchronous operations of `Producer`: one enum, one future for both.
enum Op {
    Publish(Payload, PublishOptions),
    MaybeDeclare(crate::Entity),
}

impl Op {
    async fn run(self, p: Producer) -> JsResult<JsValue> {
        match self {
            Op::Publish(body, opts) => outcome(p.publish(body, opts).await),
            Op::MaybeDeclare(e) => kombu(p.maybe_declare(e).await).map(JsValue::from),
        }
    }
}
