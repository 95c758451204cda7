//! `Message` (Kombu's `Message`): the decoded body, the raw bytes, properties and delivery
//! info, and settlement (`ack`, `reject`, `requeue`).

use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;

use super::convert::{body_to_js, js_error, json_to_js, kombu, JsResult, Outcome};
use crate::Message;

/// A received message (Kombu's `Message`).
#[wasm_bindgen(js_name = Message)]
pub struct JsMessage {
    inner: Message,
}

impl From<Message> for JsMessage {
    fn from(inner: Message) -> Self {
        JsMessage { inner }
    }
}

impl Outcome for Message {
    fn into_js(self) -> JsValue {
        JsMessage::from(self).into()
    }
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
        let mut text = Vec::new();
        crate::json_print::compact_map(&mut text, self.inner.headers());
        json_to_js(&text)
    }

    /// AMQP properties (`correlation_id`, `reply_to`, `priority`, `delivery_mode`, ...).
    #[wasm_bindgen(getter)]
    pub fn properties(&self) -> JsResult<JsValue> {
        let mut text = Vec::new();
        self.inner.properties().write_json(&mut text);
        json_to_js(&text)
    }

    /// `{exchange, routingKey, redelivered, consumerTag, deliveryTag}`.
    #[wasm_bindgen(getter, js_name = deliveryInfo)]
    pub fn delivery_info(&self) -> JsResult<JsValue> {
        let d = self.inner.delivery_info();
        let mut text = Vec::new();
        let mut o = crate::json_print::Obj::new(&mut text);
        o.str("exchange", &d.exchange).str("routingKey", &d.routing_key).bool("redelivered", d.redelivered);
        match &d.consumer_tag {
            Some(t) => o.str("consumerTag", t),
            None => o.null("consumerTag"),
        };
        o.num("deliveryTag", d.delivery_tag).end();
        json_to_js(&text)
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

    /// Acknowledge (with `multiple`, every earlier unacknowledged message of the channel
    /// too). A second settlement throws `MessageStateError`.
    pub fn ack(&self, multiple: Option<bool>) -> JsResult<()> {
        kombu(self.inner.ack_multiple(multiple.unwrap_or(false)))
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
