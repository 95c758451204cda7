//! Message properties: the AMQP 0-9-1 basic properties Kombu uses, plus headers.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::value::Headers;

/// `delivery_mode` 1: the broker may keep the message in memory only.
pub const TRANSIENT_DELIVERY_MODE: u8 = 1;
/// `delivery_mode` 2: the broker writes the message to disk (the default of `Producer.publish`).
pub const PERSISTENT_DELIVERY_MODE: u8 = 2;

/// The delivery mode of a message or the default of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "u8")]
pub enum DeliveryMode {
    /// 1, `"transient"`.
    Transient,
    /// 2, `"persistent"`.
    Persistent,
}

impl DeliveryMode {
    /// The AMQP value (1 or 2).
    pub fn as_u8(self) -> u8 {
        match self {
            DeliveryMode::Transient => TRANSIENT_DELIVERY_MODE,
            DeliveryMode::Persistent => PERSISTENT_DELIVERY_MODE,
        }
    }

    /// Parse Kombu's integer or alias (`1`, `2`, `"transient"`, `"persistent"`).
    pub fn parse(s: &str) -> crate::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "1" | "transient" => Ok(DeliveryMode::Transient),
            "2" | "persistent" => Ok(DeliveryMode::Persistent),
            other => Err(crate::Error::InvalidOption {
                option: "delivery_mode",
                value: format!("{other:?}"),
                expected: "1/\"transient\" or 2/\"persistent\"",
            }),
        }
    }
}

impl TryFrom<u8> for DeliveryMode {
    type Error = crate::Error;
    fn try_from(v: u8) -> crate::Result<Self> {
        match v {
            1 => Ok(DeliveryMode::Transient),
            2 => Ok(DeliveryMode::Persistent),
            other => Err(crate::Error::InvalidOption {
                option: "delivery_mode",
                value: other.to_string(),
                expected: "1 (transient) or 2 (persistent)",
            }),
        }
    }
}

impl From<DeliveryMode> for u8 {
    fn from(v: DeliveryMode) -> u8 {
        v.as_u8()
    }
}

/// From 1, 2, `"transient"` or `"persistent"` (see [`DeliveryMode::parse`]). A visitor rather
/// than an untagged enum, whose buffering costs the wasm module ~10 KB.
impl<'de> Deserialize<'de> for DeliveryMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Mode;
        impl Visitor<'_> for Mode {
            type Value = DeliveryMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("1 (transient), 2 (persistent), \"transient\" or \"persistent\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DeliveryMode, E> {
                u8::try_from(v).ok().and_then(|v| DeliveryMode::try_from(v).ok()).ok_or_else(|| E::invalid_value(Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DeliveryMode, E> {
                u64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self)).and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<DeliveryMode, E> {
                DeliveryMode::parse(s).map_err(|_| E::invalid_value(Unexpected::Str(s), &self))
            }
        }
        if d.is_human_readable() {
            d.deserialize_any(Mode)
        } else {
            d.deserialize_u8(Mode)
        }
    }
}

/// The properties of a message, as AMQP 0-9-1 `basic` properties.
///
/// Field names are Kombu's (and the AMQP spec's); `type` is `type_` in Rust. Missing
/// properties are `None`. Headers are always present (Kombu always sends a table, even empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Properties {
    /// MIME type of the body (`application/json`, ...). Serializers label their bytes with
    /// static strings, which a message then carries without a copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<Cow<'static, str>>,
    /// Character set or `binary`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<Cow<'static, str>>,
    /// Application headers.
    #[serde(default)]
    pub headers: Headers,
    /// 1 transient, 2 persistent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_mode: Option<u8>,
    /// 0 to the queue's max priority; higher is more urgent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// Correlates a reply with its request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Queue to send replies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Per-message TTL in milliseconds, as a decimal string (AMQP `expiration`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    /// Application message id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// Message type name.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Creating user id (validated by RabbitMQ).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Creating application id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Deprecated AMQP cluster id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

impl Properties {
    /// The compact JSON object `serde_json::to_writer` writes for the properties (the derived
    /// `Serialize`: fields in order, missing ones left out, headers always), appended to
    /// `out` — in the wasm modules without serde_json's serializer.
    #[cfg_attr(all(target_arch = "wasm32", not(feature = "facade")), allow(dead_code))] // (the codecs module)
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        let mut o = crate::json_print::Obj::new(out);
        for (key, v) in [("content_type", &self.content_type), ("content_encoding", &self.content_encoding)] {
            if let Some(v) = v {
                o.str(key, v);
            }
        }
        o.map("headers", &self.headers);
        for (key, v) in [("delivery_mode", self.delivery_mode), ("priority", self.priority)] {
            if let Some(v) = v {
                o.num(key, v.into());
            }
        }
        for (key, v) in [("correlation_id", &self.correlation_id), ("reply_to", &self.reply_to), ("expiration", &self.expiration), ("message_id", &self.message_id)] {
            if let Some(v) = v {
                o.str(key, v);
            }
        }
        if let Some(t) = self.timestamp {
            o.num("timestamp", t);
        }
        for (key, v) in [("type", &self.type_), ("user_id", &self.user_id), ("app_id", &self.app_id), ("cluster_id", &self.cluster_id)] {
            if let Some(v) = v {
                o.str(key, v);
            }
        }
        o.end();
    }

    /// The properties of a JSON object as the gateway protocol writes them (the derived
    /// `Deserialize` reads the same object; this is what the wasm client uses instead, on a
    /// header it has already parsed into a value — one JSON parser for every header type).
    /// Unknown fields are ignored and `null` is a missing property, as with the derived
    /// decoder. The error names the property that is not what it should be.
    #[cfg(any(feature = "ws-carrier", not(target_arch = "wasm32")))]
    pub fn from_json(map: serde_json::Map<String, crate::value::Value>) -> Result<Properties, String> {
        use crate::value::Value;
        let mut p = Properties::default();
        // The first property that is not what it should be; the others are still read (no
        // early return: less code in the wasm module).
        let mut err = None;
        for (key, v) in map {
            let mut bad = |what: &str| {
                err.get_or_insert_with(|| format!("{what} `{key}` in `properties`"));
            };
            let small = |v: &Value| v.as_u64().and_then(|n| u8::try_from(n).ok());
            let slot = match key.as_str() {
                "content_type" | "content_encoding" => {
                    let label = match v {
                        Value::String(s) => Some(s.into()),
                        Value::Null => None,
                        _ => {
                            bad("a non-string");
                            None
                        }
                    };
                    if key == "content_type" {
                        p.content_type = label;
                    } else {
                        p.content_encoding = label;
                    }
                    continue;
                }
                "headers" => {
                    match v {
                        Value::Object(h) => p.headers = h,
                        Value::Null => {}
                        _ => bad("a non-object"),
                    }
                    continue;
                }
                "delivery_mode" | "priority" => {
                    let n = if v.is_null() { None } else { small(&v) };
                    if n.is_none() && !v.is_null() {
                        bad("a non-integer or out-of-range");
                    }
                    if key == "priority" {
                        p.priority = n;
                    } else {
                        p.delivery_mode = n;
                    }
                    continue;
                }
                "timestamp" => {
                    p.timestamp = v.as_u64();
                    if p.timestamp.is_none() && !v.is_null() {
                        bad("a non-integer");
                    }
                    continue;
                }
                "correlation_id" => &mut p.correlation_id,
                "reply_to" => &mut p.reply_to,
                "expiration" => &mut p.expiration,
                "message_id" => &mut p.message_id,
                "type" => &mut p.type_,
                "user_id" => &mut p.user_id,
                "app_id" => &mut p.app_id,
                "cluster_id" => &mut p.cluster_id,
                _ => continue,
            };
            *slot = match v {
                Value::String(s) => Some(s),
                Value::Null => None,
                _ => {
                    bad("a non-string");
                    None
                }
            };
        }
        if let Some(e) = err {
            return Err(e);
        }
        Ok(p)
    }

    /// The per-message TTL in milliseconds, when `expiration` holds a valid number.
    pub fn expiration_ms(&self) -> Option<u64> {
        self.expiration.as_deref().and_then(|s| s.trim().parse::<u64>().ok())
    }
}
