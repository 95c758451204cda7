//! The message envelope Python Kombu's virtual transports (Redis, SQS, ...) store: a JSON
//! object with the body base64-encoded and the AMQP properties beside it.
//!
//! ```text
//! {"body": "eyJhIjogMX0=", "content-encoding": "utf-8", "content-type": "application/json",
//!  "headers": {}, "properties": {"correlation_id": "...", "delivery_mode": 2,
//!  "delivery_info": {"exchange": "ex", "routing_key": "rk"}, "priority": 0,
//!  "body_encoding": "base64", "delivery_tag": "<uuid4>"}}
//! ```
//!
//! [`Envelope::to_json`] writes the keys in the order Python kombu 5 writes them and formats
//! JSON as Python's `json.dumps` does, so a stored message is byte-identical to what a Python
//! producer stores for the same message (the AMQP properties a Python caller passes appear in
//! its keyword order; we use the AMQP order: correlation_id, reply_to, message_id, timestamp,
//! type, app_id, user_id, cluster_id). Reading accepts any key order, unknown property keys
//! (kept), and bodies without `body_encoding` (older producers store the text as is).

use base64::Engine as _;
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::properties::Properties;
use crate::serialization::json_dumps;
use crate::proto::methods::Content;
use crate::value::{Headers, Json, Value};

/// A message as a virtual transport stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The body as stored: base64 text when `body_encoding` is `base64`.
    pub body: String,
    /// `content-encoding`.
    pub content_encoding: Option<String>,
    /// `content-type`.
    pub content_type: Option<String>,
    /// Application headers.
    pub headers: Headers,
    /// Properties, in stored order: AMQP properties plus `delivery_info`, `priority`,
    /// `body_encoding`, `delivery_tag` and whatever else the producer wrote.
    pub properties: Headers,
}

const STRING_PROPS: &[&str] = &["correlation_id", "reply_to", "message_id"];

impl Envelope {
    /// Wrap a message published to `exchange` with `routing_key`, as Kombu's
    /// `basic_publish` does (base64 body, `delivery_tag` a uuid the caller chooses).
    pub fn encode(content: &Content, exchange: &str, routing_key: &str, delivery_tag: &str) -> Envelope {
        let p = &content.properties;
        let mut props = Headers::new();
        let fields: [(&str, Option<Value>); 8] = [
            ("correlation_id", p.correlation_id.clone().map(Value::String)),
            ("reply_to", p.reply_to.clone().map(Value::String)),
            ("message_id", p.message_id.clone().map(Value::String)),
            ("timestamp", p.timestamp.map(Value::from)),
            ("type", p.type_.clone().map(Value::String)),
            ("app_id", p.app_id.clone().map(Value::String)),
            ("user_id", p.user_id.clone().map(Value::String)),
            ("cluster_id", p.cluster_id.clone().map(Value::String)),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                props.insert(k.into(), v);
            }
        }
        props.insert("delivery_mode".into(), Value::from(p.delivery_mode.unwrap_or(2)));
        if let Some(e) = &p.expiration {
            props.insert("expiration".into(), Value::String(e.clone()));
        }
        let mut info = Headers::new();
        info.insert("exchange".into(), Value::String(exchange.into()));
        info.insert("routing_key".into(), Value::String(routing_key.into()));
        props.insert("delivery_info".into(), Value::Object(info));
        props.insert("priority".into(), Value::from(p.priority.unwrap_or(0)));
        props.insert("body_encoding".into(), Value::String("base64".into()));
        props.insert("delivery_tag".into(), Value::String(delivery_tag.into()));
        Envelope {
            body: base64::engine::general_purpose::STANDARD.encode(&content.body),
            content_encoding: p.content_encoding.as_deref().map(str::to_owned),
            content_type: p.content_type.as_deref().map(str::to_owned),
            headers: p.headers.clone(),
            properties: props,
        }
    }

    /// The JSON text, byte-identical to Python kombu's for the same message.
    pub fn to_json(&self) -> String {
        let mut m = Headers::new();
        m.insert("body".into(), Value::String(self.body.clone()));
        m.insert("content-encoding".into(), self.content_encoding.clone().map_or(Value::Null, Value::String));
        m.insert("content-type".into(), self.content_type.clone().map_or(Value::Null, Value::String));
        m.insert("headers".into(), Value::Object(self.headers.clone()));
        m.insert("properties".into(), Value::Object(self.properties.clone()));
        let bytes = json_dumps(&Value::Object(m)).expect("JSON values always serialize");
        String::from_utf8(bytes).expect("ensure_ascii output is ASCII")
    }

    /// Parse a stored message. Errors name what is missing or malformed.
    pub fn from_json(raw: &[u8]) -> Result<Envelope> {
        let v: Value = crate::serialization::json_loads(raw).map_err(|e| Error::Decode(format!("stored message is not JSON: {e}")))?;
        let Value::Object(mut m) = v else {
            return Err(Error::Decode("stored message is not a JSON object".into()));
        };
        let body = match m.remove("body") {
            Some(Value::String(s)) => s,
            Some(Value::Null) | None => String::new(),
            Some(other) => return Err(Error::Decode(format!("stored message: 'body' must be a string, not {}", Json(&other)))),
        };
        let text = |m: &mut Headers, k: &str| -> Result<Option<String>> {
            match m.remove(k) {
                Some(Value::String(s)) => Ok(Some(s)),
                Some(Value::Null) | None => Ok(None),
                Some(other) => Err(Error::Decode(format!("stored message: '{k}' must be a string, not {}", Json(&other)))),
            }
        };
        let content_encoding = text(&mut m, "content-encoding")?;
        let content_type = text(&mut m, "content-type")?;
        let table = |m: &mut Headers, k: &str| -> Result<Headers> {
            match m.remove(k) {
                Some(Value::Object(h)) => Ok(h),
                Some(Value::Null) | None => Ok(Headers::new()),
                Some(other) => Err(Error::Decode(format!("stored message: '{k}' must be an object, not {}", Json(&other)))),
            }
        };
        let headers = table(&mut m, "headers")?;
        let properties = table(&mut m, "properties")?;
        Ok(Envelope { body, content_encoding, content_type, headers, properties })
    }

    fn prop_str(&self, k: &str) -> Option<&str> {
        self.properties.get(k).and_then(Value::as_str)
    }

    /// `properties.delivery_info.exchange`.
    pub fn exchange(&self) -> &str {
        self.properties.get("delivery_info").and_then(|d| d.get("exchange")).and_then(Value::as_str).unwrap_or("")
    }

    /// `properties.delivery_info.routing_key`.
    pub fn routing_key(&self) -> &str {
        self.properties.get("delivery_info").and_then(|d| d.get("routing_key")).and_then(Value::as_str).unwrap_or("")
    }

    /// `properties.delivery_tag` (a uuid string in Kombu's virtual transports).
    pub fn delivery_tag(&self) -> Option<&str> {
        self.prop_str("delivery_tag")
    }

    /// `properties.priority` (0 when absent).
    pub fn priority(&self) -> u8 {
        self.properties.get("priority").and_then(Value::as_u64).map_or(0, |p| p.min(255) as u8)
    }

    /// The message: body decoded per `body_encoding`, properties typed.
    pub fn content(&self) -> Result<Content> {
        let body = match self.prop_str("body_encoding") {
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(self.body.trim_end())
                .map_err(|e| Error::Decode(format!("stored message body is not valid base64: {e}")))?,
            None | Some("") => self.body.clone().into_bytes(),
            Some(other) => return Err(Error::Decode(format!("unknown body_encoding {other:?} (known: base64, none)"))),
        };
        let mut p = Properties {
            content_type: self.content_type.clone().map(Into::into),
            content_encoding: self.content_encoding.clone().map(Into::into),
            headers: self.headers.clone(),
            ..Properties::default()
        };
        for k in STRING_PROPS {
            let v = self.prop_str(k).map(str::to_owned);
            match *k {
                "correlation_id" => p.correlation_id = v,
                "reply_to" => p.reply_to = v,
                _ => p.message_id = v,
            }
        }
        p.type_ = self.prop_str("type").map(str::to_owned);
        p.app_id = self.prop_str("app_id").map(str::to_owned);
        p.user_id = self.prop_str("user_id").map(str::to_owned);
        p.cluster_id = self.prop_str("cluster_id").map(str::to_owned);
        p.timestamp = self.properties.get("timestamp").and_then(Value::as_f64).map(|t| t as u64);
        p.delivery_mode = self.properties.get("delivery_mode").and_then(Value::as_u64).map(|d| d.min(255) as u8);
        p.priority = Some(self.priority());
        p.expiration = match self.properties.get("expiration") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Ok(Content { properties: p, body: Bytes::from(body) })
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// Stored by Python kombu 5.7 on Redis: `publish(b"\x00\x01", compression="zlib")`.
    const PY_ZLIB: &str = r#"{"body": "eJxjYAQAAAMAAg==", "content-encoding": "binary", "content-type": "application/data", "headers": {"compression": "application/x-gzip"}, "properties": {"delivery_mode": 2, "delivery_info": {"exchange": "envprobe-x", "routing_key": "rk"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "12b61bf2-5a6e-4758-a0dd-4febc2feb1b0"}}"#;

    #[test]
    fn python_envelope_round_trips_byte_for_byte() {
        let e = Envelope::from_json(PY_ZLIB.as_bytes()).unwrap();
        assert_eq!((e.exchange(), e.routing_key(), e.priority()), ("envprobe-x", "rk", 0));
        assert_eq!(e.delivery_tag(), Some("12b61bf2-5a6e-4758-a0dd-4febc2feb1b0"));
        let c = e.content().unwrap();
        assert_eq!(crate::compression::decompress(&c.body, "application/x-gzip").unwrap(), b"\x00\x01");
        assert_eq!(c.properties.delivery_mode, Some(2));
        // Re-encoding the same message gives Python's bytes.
        let again = Envelope::encode(&c, "envprobe-x", "rk", "12b61bf2-5a6e-4758-a0dd-4febc2feb1b0");
        assert_eq!(again.to_json(), PY_ZLIB);
    }

    #[test]
    fn properties_survive() {
        let mut p = Properties { content_type: Some("application/json".into()), content_encoding: Some("utf-8".into()), ..Default::default() };
        p.correlation_id = Some("cid".into());
        p.reply_to = Some("rq".into());
        p.expiration = Some("10000".into());
        p.priority = Some(3);
        p.headers.insert("h".into(), Value::from(1));
        let c = Content { properties: p, body: Bytes::from_static(br#"{"a": 1}"#) };
        let e = Envelope::encode(&c, "x", "k", "tag");
        let back = Envelope::from_json(e.to_json().as_bytes()).unwrap().content().unwrap();
        assert_eq!(back.body, c.body);
        assert_eq!(back.properties.correlation_id.as_deref(), Some("cid"));
        assert_eq!(back.properties.reply_to.as_deref(), Some("rq"));
        assert_eq!(back.properties.expiration.as_deref(), Some("10000"));
        assert_eq!(back.properties.priority, Some(3));
        assert_eq!(back.properties.headers, c.properties.headers);
    }

    #[test]
    fn bad_input_is_named() {
        for (raw, what) in [
            (&b"nope"[..], "not JSON"),
            (b"[1]", "not a JSON object"),
            (br#"{"body": 5}"#, "'body' must be a string"),
            (br#"{"body": "x", "headers": 3}"#, "'headers' must be an object"),
        ] {
            let e = Envelope::from_json(raw).unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
        }
        let e = Envelope::from_json(br#"{"body": "***", "properties": {"body_encoding": "base64"}}"#).unwrap();
        assert!(e.content().unwrap_err().to_string().contains("base64"));
        // Older producers store text bodies without body_encoding.
        let e = Envelope::from_json(br#"{"body": "hello", "content-type": "text/plain"}"#).unwrap();
        assert_eq!(&e.content().unwrap().body[..], b"hello");
    }
}
