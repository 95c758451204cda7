//! Header and argument values.
//!
//! Kombu headers, exchange/queue/binding arguments and consumer arguments are JSON-like
//! tables: [`serde_json::Value`] with insertion order preserved. Integers, floats, strings,
//! booleans, null, arrays and tables keep their type, which is what headers-exchange routing
//! and the AMQP field-table encoding need.

pub use serde_json::Value;

/// An ordered table of header or argument values (Kombu's `dict`).
pub type Headers = serde_json::Map<String, Value>;

/// `{}` of a value in messages: the compact JSON text, as serde_json's `Display` writes it,
/// but written by [`crate::json_print`] (natively `serde_json::to_writer`): that `Display`
/// goes through an `io::Write` adapter (and its `io::Error`), code the wasm modules need for
/// nothing else.
pub(crate) struct Json<'a>(pub(crate) &'a Value);

impl std::fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::json_print::to_string(self.0))
    }
}

/// Build a [`Headers`] table from `(key, value)` pairs.
pub fn headers<K, V, I>(pairs: I) -> Headers
where
    K: Into<String>,
    V: Into<Value>,
    I: IntoIterator<Item = (K, V)>,
{
    pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect()
}

/// `s` read as a float as `str::parse::<f64>` reads it (`1.5`, `-.5`, `+2.`, `1e3`, `inf`,
/// `NaN`, ...: the same values), through the JSON text parser (in the wasm modules
/// [`crate::json_text`], whose floats beyond its exact fast path JavaScript's `parseFloat` reads),
/// instead of core's (`dec2flt` and its tables: ~10 KB of wasm).
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    let (neg, body) = match (s.strip_prefix('-'), s.strip_prefix('+')) {
        (Some(body), _) => (true, body),
        (None, Some(body)) => (false, body),
        (None, None) => (false, s),
    };
    let signed = |v: f64| if neg { -v } else { v };
    if body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("infinity") {
        return Some(signed(f64::INFINITY));
    }
    if body.eq_ignore_ascii_case("nan") {
        return Some(signed(f64::NAN));
    }
    // As JSON: no `+`, no leading zeros, digits on both sides of the point (if any).
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    let (mantissa, exp) = body.split_once(['e', 'E']).map_or((body, None), |(m, e)| (m, Some(e)));
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.len() + frac.len() == 0 || !digits(int) || !digits(frac) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let mut json = String::with_capacity(s.len() + 2);
    json.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        json.push('.');
        json.push_str(frac);
    }
    if let Some(e) = exp {
        let d = e.strip_prefix(['+', '-']).unwrap_or(e);
        if d.is_empty() || !digits(d) {
            return None;
        }
        json.push('e');
        json.push_str(e);
    }
    match crate::serialization::json_loads(json.as_bytes()) {
        Ok(Value::Number(n)) => n.as_f64().map(signed),
        // A well-formed number out of the range of a double: infinite, as `parse` says.
        _ => Some(signed(f64::INFINITY)),
    }
}

/// Parse a [`Value`] from any serde format, like `Value::deserialize` but with objects and
/// arrays allocated once at their final size for small ones (serde_json grows every object
/// from empty: a table and an entry vector reallocated as keys arrive), which is most of what
/// decoding a typical message body costs. Same values, same errors.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))] // (native JSON and msgpack only)
pub(crate) fn deserialize_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    d.deserialize_any(ValueVisitor)
}

/// Capacity given to an object or array whose size the format does not announce (JSON text):
/// enough for typical message bodies and headers, small enough not to waste.
pub(crate) const SMALL: usize = 8;

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
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
    fn parse_float_reads_what_str_parse_reads() {
        let mut cases: Vec<String> = [
            "", ".", "-", "+", "e5", "1e", "1e+", "1e-", "--1", "+-1", "1.2.3", " 1", "1 ", "0x10", "1_0", "١", "inf", "-INF", "+Infinity",
            "infinit", "NaN", "-nan", "nan1", "0", "-0", "+0", "00", "-00.000", "007", "007.5", ".5", "-.5", "5.", "+5.", "5.e3", ".e3",
            "1e400", "-1e400", "1e-400", "0e99999", "1e99999999999999999999", "1E5", "1e+05", "2.5E-3", "9007199254740993",
            "18446744073709551616", "-9223372036854775809", "123456789012345678901234567890", "0.1", "1.7976931348623157e308",
            "1.7976931348623159e308", "2.2250738585072011e-308", "4.9e-324", "2.4e-324", "2.5e-324", "1.5", "1e16", "12.5s", "1,5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..if cfg!(target_arch = "wasm32") { 500 } else { 20_000 } {
            crate::xorshift(&mut x);
            let f = f64::from_bits(x);
            cases.push(format!("{f}"));
            cases.push(format!("{f:e}"));
            cases.push(format!("{}.{}e{}", x % 1000, (x >> 10) % 100_000, (x >> 30) as i64 % 700 - 350));
            cases.push(format!("-0{}.{:0>20}", (x >> 3) % 100, x >> 1));
        }
        for s in &cases {
            let (ours, core) = (parse_float(s), s.parse::<f64>().ok());
            assert_eq!(ours.map(|f| f.is_nan()), core.map(|f| f.is_nan()), "{s:?}");
            if !ours.is_some_and(f64::is_nan) {
                assert_eq!(ours.map(f64::to_bits), core.map(f64::to_bits), "{s:?}");
            }
        }
    }

    #[test]
    fn json_writes_what_display_writes() {
        for v in [
            serde_json::json!({"b": [1, 2.5, -3, null, true], "a": {"x": "y\n\"z\u{e9}"}}),
            serde_json::json!("text"),
            serde_json::json!(1e300),
            serde_json::json!([]),
        ] {
            assert_eq!(Json(&v).to_string(), v.to_string());
        }
    }

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
