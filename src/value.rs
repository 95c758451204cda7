//! Header and argument values.
//!
//! Kombu headers, exchange/queue/binding arguments and consumer arguments are JSON-like
//! tables: [`serde_json::Value`] with insertion order preserved. Integers, floats, strings,
//! booleans, null, arrays and tables keep their type, which is what headers-exchange routing
//! and the AMQP field-table encoding need.

pub use serde_json::Value;

/// An ordered table of header or argument values (Kombu's `dict`).
pub type Headers = serde_json::Map<String, Value>;

/// Build a [`Headers`] table from `(key, value)` pairs.
pub fn headers<K, V, I>(pairs: I) -> Headers
where
    K: Into<String>,
    V: Into<Value>,
    I: IntoIterator<Item = (K, V)>,
{
    pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect()
}

/// Parse a [`Value`] from any serde format, like `Value::deserialize` but with objects and
/// arrays allocated once at their final size for small ones (serde_json grows every object
/// from empty: a table and an entry vector reallocated as keys arrive), which is most of what
/// decoding a typical message body costs. Same values, same errors.
pub(crate) fn deserialize_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    d.deserialize_any(ValueVisitor)
}

/// Capacity given to an object or array whose size the format does not announce (JSON text):
/// enough for typical message bodies and headers, small enough not to waste.
const SMALL: usize = 8;

struct ValueVisitor;

impl<'de> serde::de::DeserializeSeed<'de> for ValueVisitor {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Value, E> {
        serde::Deserialize::deserialize(serde::de::value::I128Deserializer::<E>::new(v)).map(Value::Number)
    }
    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Value, E> {
        serde::Deserialize::deserialize(serde::de::value::U128Deserializer::<E>::new(v)).map(Value::Number)
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(SMALL).min(4096));
        while let Some(e) = seq.next_element_seed(ValueVisitor)? {
            v.push(e);
        }
        Ok(Value::Array(v))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Headers::with_capacity(map.size_hint().unwrap_or(SMALL).min(4096));
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(ValueVisitor)?;
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn deserialize_value_equals_serde_json() {
        for text in [
            r#"{"id": 1, "task": "a.b", "args": [1, 2.5, -3, null, true], "kwargs": {}, "nested": {"z": [], "a": {"b": "c"}}}"#,
            r#"[]"#,
            r#""\u00e9\ud83d\ude00""#,
            r#"18446744073709551615"#,
            r#"-9223372036854775808"#,
            r#"1e400"#,
            r#"{"a": 1, "a": 2}"#,
            r#"[{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9}]"#,
        ] {
            let ours = deserialize_value(&mut serde_json::Deserializer::from_str(text)).map_err(|e| e.to_string());
            let theirs = serde_json::from_str::<Value>(text).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{text}");
            if let Ok(v) = ours {
                // Key order is kept too.
                assert_eq!(serde_json::to_string(&v).unwrap(), serde_json::to_string(&theirs.unwrap()).unwrap());
            }
        }
        for bad in [r#"{"a": }"#, r#"[1, 2"#, r#"{1: 2}"#] {
            let ours = deserialize_value(&mut serde_json::Deserializer::from_str(bad)).unwrap_err().to_string();
            let theirs = serde_json::from_str::<Value>(bad).unwrap_err().to_string();
            assert_eq!(ours, theirs, "{bad}");
        }
    }
}
