//! The body of a message before serialization and after deserialization.

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};
use crate::value::Value;

/// What a producer publishes and what `Message::payload` returns.
///
/// Kombu serializes structured data with the chosen serializer (JSON by default) and sends
/// `str`/`bytes` bodies without serializing them unless a serializer is named explicitly
/// (`text/plain` and `application/data` respectively).
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Structured data: what json, yaml and msgpack carry.
    Data(Value),
    /// Text. Sent as `text/plain; utf-8` when no serializer is named.
    Text(String),
    /// Raw bytes. Sent as `application/data; binary` when no serializer is named.
    Bytes(Bytes),
}

impl Payload {
    /// Structured data from any `Serialize` value.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        serde_json::to_value(value).map(Payload::Data).map_err(|e| Error::Encode(e.to_string()))
    }

    /// Convert into a typed value. Text becomes a JSON string; bytes become an array of
    /// numbers unless they hold JSON.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        let r = match self {
            Payload::Data(v) => T::deserialize(v),
            Payload::Text(s) => T::deserialize(Value::String(s.clone())),
            Payload::Bytes(b) => crate::serialization::json_loads_as(b),
        };
        r.map_err(|e| Error::Decode(format!("payload does not match the requested type: {e}")))
    }

    /// The structured value, if this is [`Payload::Data`].
    pub fn as_data(&self) -> Option<&Value> {
        match self {
            Payload::Data(v) => Some(v),
            _ => None,
        }
    }

    /// The text, if this is [`Payload::Text`] or a JSON string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Payload::Text(s) => Some(s),
            Payload::Data(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The bytes, if this is [`Payload::Bytes`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Payload::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Convert to a JSON value: text becomes a string, bytes an array of numbers.
    pub fn to_value(&self) -> Value {
        match self {
            Payload::Data(v) => v.clone(),
            Payload::Text(s) => Value::String(s.clone()),
            Payload::Bytes(b) => Value::Array(b.iter().map(|x| Value::from(*x)).collect()),
        }
    }
}

impl From<Value> for Payload {
    fn from(v: Value) -> Self {
        Payload::Data(v)
    }
}
impl From<&str> for Payload {
    fn from(v: &str) -> Self {
        Payload::Text(v.to_owned())
    }
}
impl From<String> for Payload {
    fn from(v: String) -> Self {
        Payload::Text(v)
    }
}
impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Payload::Bytes(Bytes::from(v))
    }
}
impl From<&[u8]> for Payload {
    fn from(v: &[u8]) -> Self {
        Payload::Bytes(Bytes::copy_from_slice(v))
    }
}
impl From<Bytes> for Payload {
    fn from(v: Bytes) -> Self {
        Payload::Bytes(v)
    }
}
