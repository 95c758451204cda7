//! A [`Value`] as JSON text exactly as serde_json's serializer writes it: compact (`to_writer`,
//! `to_string`, `Display`), or in the style of Python's `json.dumps` defaults that this
//! crate's bodies use (serialization's `PythonFormatter`: `", "` and `": "`, everything
//! outside printable ASCII as `\uXXXX`, floats as Python's `repr`). Keys in order, integers as
//! they are, floats in their shortest round-trip digits.
//!
//! The wasm modules write JSON with this instead of serde_json's serializer and its integer and
//! float formatters (itoa, zmij with its tables): a float's shortest digits come from
//! JavaScript's `Number.prototype.toString`, which like zmij and Python picks the fewest digits
//! that read back as the double and, of those, the nearest (on a tie, the even one). Native
//! builds keep serde_json's serializer (here natively only the tests use [`print`]) and take
//! the digits from serde_json's float formatter (zmij), as they did.

use serde_json::{Map, Number, Value};

/// How [`print`] writes: serde_json's compact text, or Python's `json.dumps` defaults.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Compact,
    Python,
}

/// `v`'s compact JSON text appended to `out`, as `serde_json::to_writer` writes it: in the wasm
/// modules by [`print`], natively by serde_json.
pub(crate) fn compact(out: &mut Vec<u8>, v: &Value) {
    if cfg!(target_arch = "wasm32") {
        print(out, v, Style::Compact);
    } else {
        serde(out, v);
    }
}

/// [`compact`] of an object.
pub(crate) fn compact_map(out: &mut Vec<u8>, m: &Map<String, Value>) {
    if cfg!(target_arch = "wasm32") {
        object(out, m, Style::Compact);
    } else {
        serde(out, m);
    }
}

/// [`compact`] of a string.
pub(crate) fn compact_str(out: &mut Vec<u8>, s: &str) {
    if cfg!(target_arch = "wasm32") {
        string(out, s, Style::Compact);
    } else {
        serde(out, s);
    }
}

/// [`compact`] of an integer.
pub(crate) fn compact_u64(out: &mut Vec<u8>, n: u64) {
    if cfg!(target_arch = "wasm32") {
        int(out, n, false);
    } else {
        serde(out, &n);
    }
}

/// serde_json's serializer (native builds).
fn serde<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    serde_json::to_writer(out, v).expect("JSON values always serialize");
}

/// `v`'s compact JSON text (`serde_json::to_string`).
pub(crate) fn to_string(v: &Value) -> String {
    let mut out = Vec::new();
    compact(&mut out, v);
    text(out)
}

/// [`to_string`] of an object.
pub(crate) fn map_to_string(m: &Map<String, Value>) -> String {
    let mut out = Vec::new();
    compact_map(&mut out, m);
    text(out)
}

/// Printed JSON as a `String` (it is UTF-8: `&str`s and ASCII).
fn text(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_default()
}

/// Compact JSON object fields, written in order (the first one opens the object): for
/// headers and values written from a struct's fields, without building a [`Value`].
pub(crate) struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    /// The next key (a name without characters to escape), and the buffer to write its value to.
    pub(crate) fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    pub(crate) fn str(&mut self, key: &str, v: &str) -> &mut Self {
        compact_str(self.key(key), v);
        self
    }

    pub(crate) fn num(&mut self, key: &str, v: u64) -> &mut Self {
        compact_u64(self.key(key), v);
        self
    }

    pub(crate) fn bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.key(key).extend_from_slice(if v { b"true" } else { b"false" });
        self
    }

    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))] // (the wasm message's delivery info)
    pub(crate) fn null(&mut self, key: &str) -> &mut Self {
        self.key(key).extend_from_slice(b"null");
        self
    }

    pub(crate) fn map(&mut self, key: &str, v: &Map<String, Value>) -> &mut Self {
        compact_map(self.key(key), v);
        self
    }

    /// A nested object, written by `f`.
    #[cfg_attr(not(feature = "ws-carrier"), allow(dead_code))] // (the gateway client's frames)
    pub(crate) fn obj(&mut self, key: &str, f: impl FnOnce(&mut Obj<'_>)) -> &mut Self {
        let mut inner = Obj::new(self.key(key));
        f(&mut inner);
        inner.out.push(b'}');
        self
    }

    pub(crate) fn end(&mut self) {
        self.out.push(b'}');
    }
}

/// `v` as JSON text in `style`, appended to `out`.
pub(crate) fn print(out: &mut Vec<u8>, v: &Value, style: Style) {
    let sep: &[u8] = if style == Style::Python { b", " } else { b"," };
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => number(out, n, style),
        Value::String(s) => string(out, s, style),
        Value::Array(a) => {
            out.push(b'[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(sep);
                }
                print(out, v, style);
            }
            out.push(b']');
        }
        Value::Object(m) => object(out, m, style),
    }
}

fn object(out: &mut Vec<u8>, m: &Map<String, Value>, style: Style) {
    let python = style == Style::Python;
    out.push(b'{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(if python { b", " } else { b"," });
        }
        string(out, k, style);
        out.extend_from_slice(if python { b": " } else { b":" });
        print(out, v, style);
    }
    out.push(b'}');
}

fn number(out: &mut Vec<u8>, n: &Number, style: Style) {
    if let Some(u) = n.as_u64() {
        int(out, u, false);
    } else if let Some(i) = n.as_i64() {
        int(out, i.unsigned_abs(), i < 0);
    } else {
        float(out, n.as_f64().unwrap_or_default(), style);
    }
}

/// An integer in decimal (itoa's digits).
pub(crate) fn int(out: &mut Vec<u8>, mut n: u64, negative: bool) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// A string, quoted and escaped as serde_json escapes it (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
/// `\t`, other control characters as `\u00XX`), in the Python style also everything from
/// U+007F on, as UTF-16 units (`\u00e9`, `\ud83d\ude00`).
fn string(out: &mut Vec<u8>, s: &str, style: Style) {
    let ascii = style == Style::Python;
    let b = s.as_bytes();
    out.push(b'"');
    let (mut start, mut i) = (0, 0);
    while let Some(&c) = b.get(i) {
        if c >= 0x20 && c != b'"' && c != b'\\' && (c < 0x7f || !ascii) {
            i += 1;
            continue;
        }
        out.extend_from_slice(&b[start..i]);
        if c >= 0x7f {
            // A character's first byte: `i` is on a character boundary.
            let ch = s.get(i..).and_then(|t| t.chars().next()).unwrap_or_default();
            for &mut u in ch.encode_utf16(&mut [0; 2]) {
                out.extend_from_slice(&u_escape(u));
            }
            i += ch.len_utf8();
        } else {
            match c {
                b'"' | b'\\' => out.extend_from_slice(&[b'\\', c]),
                8 => out.extend_from_slice(b"\\b"),
                9 => out.extend_from_slice(b"\\t"),
                10 => out.extend_from_slice(b"\\n"),
                12 => out.extend_from_slice(b"\\f"),
                13 => out.extend_from_slice(b"\\r"),
                _ => out.extend_from_slice(&u_escape(u16::from(c))),
            }
            i += 1;
        }
        start = i;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// The escape `\uXXXX` of a UTF-16 unit (lowercase hex, as serde_json and Python write it).
pub(crate) fn u_escape(u: u16) -> [u8; 6] {
    let hex = |shift: u16| b"0123456789abcdef"[usize::from((u >> shift) & 15)];
    [b'\\', b'u', hex(12), hex(8), hex(4), hex(0)]
}

/// The shortest round-trip digits of a finite `v` other than zero (ASCII, without sign,
/// leading or trailing zeros) and the power of ten of the first: `1.5e-7` gives `("15", -7)`.
pub(crate) fn shortest(v: f64) -> (Vec<u8>, i32) {
    let mut digits = Vec::new();
    // One more for each digit before the point from the first nonzero one on, one less for
    // each zero after the point before it; then the exponent's.
    let mut exp = -1;
    let (mut point, mut e, mut e_sign) = (false, None, 1);
    for c in shortest_text(v.abs()).bytes() {
        match (c, &mut e) {
            (b'e', _) => e = Some(0),
            (b'-', Some(_)) => e_sign = -1,
            (b'0'..=b'9', Some(e)) => *e = *e * 10 + i32::from(c - b'0'),
            (b'.', None) => point = true,
            (b'0', None) if digits.is_empty() => exp -= i32::from(point),
            (_, None) => {
                digits.push(c);
                exp += i32::from(!point);
            }
            _ => {}
        }
    }
    exp += e_sign * e.unwrap_or(0);
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    (digits, exp)
}

/// A positive double's shortest round-trip digits as JavaScript writes them (`String(x)`:
/// `"1.5e-7"`, `"1e+21"`, `"123.25"`).
#[cfg(target_arch = "wasm32")]
fn shortest_text(v: f64) -> String {
    js_sys::Number::from(v).to_string_with_radix(10).map(String::from).unwrap_or_default()
}

/// As the wasm modules' JavaScript digits: natively serde_json's float formatter (zmij:
/// `"1.5e-7"`, `"1e+100"`, `"12345678.9"`).
#[cfg(not(target_arch = "wasm32"))]
fn shortest_text(v: f64) -> String {
    Number::from_f64(v).map(|n| n.to_string()).unwrap_or_default()
}

/// A finite float as serde_json writes it (zmij's format) or, in the Python style, as Python's
/// `repr`: the shortest digits, positional for powers of ten from -5 (Python: -4) to 15, always
/// with a point (`0.00001`, `1e15` as `1000000000000000.0`), else with an exponent: `1.5e-7`,
/// `1e+16` (Python: of at least two digits, `1.5e-07`).
pub(crate) fn float_text(v: f64, style: Style) -> String {
    let mut out = Vec::new();
    float(&mut out, v, style);
    text(out)
}

/// [`float_text`] appended to `out`.
fn float(out: &mut Vec<u8>, v: f64, style: Style) {
    if v.is_sign_negative() {
        out.push(b'-');
    }
    if v == 0.0 {
        out.extend_from_slice(b"0.0");
        return;
    }
    let (d, exp) = shortest(v);
    let python = style == Style::Python;
    if (if python { -4 } else { -5 }..16).contains(&exp) {
        // Each decimal place from the first digit or the units, whichever is higher, to the
        // last digit or the tenths, whichever is lower.
        let mut p = exp.max(0);
        while p >= (exp + 1 - d.len() as i32).min(-1) {
            out.push(usize::try_from(exp - p).ok().and_then(|i| d.get(i)).map_or(b'0', |&c| c));
            if p == 0 {
                out.push(b'.');
            }
            p -= 1;
        }
    } else {
        for (i, &c) in d.iter().enumerate() {
            out.push(c);
            if i == 0 && d.len() > 1 {
                out.push(b'.');
            }
        }
        out.extend_from_slice(if exp < 0 { b"e-" } else { b"e+" });
        if python && exp.abs() < 10 {
            out.push(b'0');
        }
        int(out, exp.unsigned_abs().into(), false);
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn printed(v: &Value, style: Style) -> String {
        let mut out = Vec::new();
        print(&mut out, v, style);
        String::from_utf8(out).unwrap()
    }

    /// Doubles that formatting gets wrong if anything does (the ends of the range and of the
    /// subnormals, where the style changes, ties between two shortest candidates), and random
    /// ones: any bit pattern, and short decimals.
    #[allow(clippy::excessive_precision, clippy::approx_constant)] // (the doubles as written)
    fn floats(n: usize) -> Vec<f64> {
        let mut fs = vec![
            5e-324, -5e-324, 1e-323, 2.2250738585072014e-308, 2.225073858507201e-308, 1.7976931348623157e308, -1.7976931348623157e308, 1e16, 1e15,
            9999999999999998.0, 1e-5, 1e-4, 1e-6, 1e-7, 0.00001234, 0.0001234, 1e21, 1e22, 1e23, 1e20, 123456789012345680000.0, 0.1, 0.2, 0.3,
            0.30000000000000004, 1.5, 2.5, 100.0, 1658206780088562.25, 1658206780088562.75, 9007199254740993.0, 4.35679979e-9, 5e-310, 1e100,
            1e-100, 1e300, 8.98846567431158e307, 3.141592653589793, 1.0 / 3.0, 2.0 / 3.0, 123456.789, 0.0, -0.0,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..n {
            crate::xorshift(&mut x);
            let f = f64::from_bits(x);
            if f.is_finite() {
                fs.push(f);
            }
            // Short decimals, and doubles near 1 and near the style changes.
            fs.push((x % 1_000_000) as f64 / [1.0, 10.0, 1000.0, 1e7][(x >> 60) as usize & 3]);
            fs.push((x >> 11) as f64 / (1u64 << 40) as f64);
            fs.push(f64::from_bits(1e16f64.to_bits() - 8 + (x & 15)));
            fs.push(f64::from_bits(1e-5f64.to_bits() - 8 + (x & 15)));
            fs.push(f64::from_bits(1e21f64.to_bits() - 8 + (x & 15)));
        }
        fs
    }

    /// The digits [`shortest`] takes from JavaScript in the wasm modules are zmij's: every
    /// float is written as serde_json writes it (in the wasm tests serde_json's float formatter
    /// is still there to compare with).
    #[test]
    fn floats_are_written_as_serde_json_writes_them() {
        for f in floats(if cfg!(target_arch = "wasm32") { 20_000 } else { 200_000 }) {
            let want = Number::from_f64(f).unwrap().to_string();
            assert_eq!(float_text(f, Style::Compact), want, "{:?}", f.to_bits());
            // Python's repr has the same digits.
            let python = float_text(f, Style::Python);
            assert_eq!(python.parse::<f64>().map(f64::to_bits), Ok(f.to_bits()), "{python}");
        }
    }

    #[test]
    #[allow(clippy::excessive_precision)] // (ties: the doubles as written)
    fn edge_floats() {
        for (f, compact, python) in [
            (5e-324, "5e-324", "5e-324"),
            (-5e-324, "-5e-324", "-5e-324"),
            (1e16, "1e+16", "1e+16"),
            (1e15, "1000000000000000.0", "1000000000000000.0"),
            (1e-5, "0.00001", "1e-05"),
            (1e-4, "0.0001", "0.0001"),
            (1e-6, "1e-6", "1e-06"),
            (0.0, "0.0", "0.0"),
            (-0.0, "-0.0", "-0.0"),
            (1e21, "1e+21", "1e+21"),
            (1e20, "1e+20", "1e+20"),
            (1.7976931348623157e308, "1.7976931348623157e+308", "1.7976931348623157e+308"),
            (1658206780088562.25, "1658206780088562.2", "1658206780088562.2"),
            (1658206780088562.75, "1658206780088562.8", "1658206780088562.8"),
            (0.30000000000000004, "0.30000000000000004", "0.30000000000000004"),
            (1.5e-7, "1.5e-7", "1.5e-07"),
            (1e100, "1e+100", "1e+100"),
            (123.0, "123.0", "123.0"),
            (-2.5, "-2.5", "-2.5"),
        ] {
            assert_eq!(float_text(f, Style::Compact), compact, "{compact}");
            assert_eq!(float_text(f, Style::Python), python, "{python}");
            assert_eq!(crate::serialization::python_float_repr(f), python);
        }
    }

    /// Values whose text has every kind of escape, integer and float.
    fn samples() -> Vec<Value> {
        use serde_json::json;
        vec![
            json!(null),
            json!({"b": [1, 2.5, -3, null, true, false], "a": {"x": "y\n\"z\u{e9}"}, "": []}),
            json!("\u{0}\u{1}\u{8}\u{9}\u{a}\u{b}\u{c}\u{d}\u{1f} \"\\/\u{7f}\u{80}\u{7ff}\u{800}\u{ffff}\u{10000}\u{1f600}\u{10ffff}"),
            json!([u64::MAX, i64::MIN, i64::MAX, 0, -1, 1u64 << 63, 1e300, -0.0, 5e-324, 1e16, 1e-5]),
            json!({"k": {"k": {"k": [[], {}, [{}], ""]}}}),
        ]
    }

    #[test]
    fn samples_are_written_as_serde_json_writes_them() {
        for v in samples() {
            assert_eq!(printed(&v, Style::Compact), serde_json::to_string(&v).unwrap());
            assert_eq!(to_string(&v), serde_json::to_string(&v).unwrap());
            if let Value::Object(m) = &v {
                assert_eq!(map_to_string(m), serde_json::to_string(m).unwrap());
            }
        }
        assert_eq!(
            printed(&samples()[1], Style::Python),
            r#"{"b": [1, 2.5, -3, null, true, false], "a": {"x": "y\n\"z\u00e9"}, "": []}"#
        );
        assert_eq!(
            printed(&samples()[2], Style::Python),
            r#""\u0000\u0001\b\t\n\u000b\f\r\u001f \"\\/\u007f\u0080\u07ff\u0800\uffff\ud800\udc00\ud83d\ude00\udbff\udfff""#
        );
    }

    /// What serde_json writes (natively the serializer every [`compact`] caller uses, and with
    /// serialization's `PythonFormatter` the Python style).
    #[cfg(not(target_arch = "wasm32"))]
    mod against_serde_json {
        use super::*;
        use proptest::prelude::*;

        fn python_serde(v: &Value) -> String {
            // Native builds write bodies with serde_json and the PythonFormatter.
            String::from_utf8(crate::serialization::json_dumps(v).unwrap()).unwrap()
        }

        fn text() -> impl Strategy<Value = String> {
            let special = prop::sample::select(vec!['"', '\\', '/', '\0', '\u{8}', '\t', '\n', '\u{b}', '\u{c}', '\r', '\u{1f}', ' ', '~', '\u{7f}', '\u{80}', 'é', '\u{7ff}', '\u{800}', '\u{ffff}', '\u{10000}', '😀', '\u{10ffff}', 'a']);
            prop::collection::vec(prop_oneof![special, any::<char>()], 0..12).prop_map(String::from_iter)
        }

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                prop::sample::select(vec![i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX]).prop_map(Value::from),
                prop::sample::select(vec![u64::MAX, u64::MAX - 1, 1 << 63, 10_000_000_000_000_000_000]).prop_map(Value::from),
                any::<u64>().prop_filter_map("finite", |b| Number::from_f64(f64::from_bits(b)).map(Value::Number)),
                any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
                (any::<i32>(), 0u32..20).prop_map(|(n, s)| Value::from(f64::from(n) / 10f64.powi(s as i32))),
                text().prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 64, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::vec((text(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(5000))]

            #[test]
            fn values_are_written_as_serde_json_writes_them(v in value()) {
                prop_assert_eq!(printed(&v, Style::Compact), serde_json::to_string(&v).unwrap());
                prop_assert_eq!(printed(&v, Style::Python), python_serde(&v));
            }

            #[test]
            fn strings_are_written_as_serde_json_writes_them(s in text(), t in any::<String>()) {
                for s in [s, t] {
                    let v = Value::String(s);
                    prop_assert_eq!(printed(&v, Style::Compact), serde_json::to_string(&v).unwrap());
                    prop_assert_eq!(printed(&v, Style::Python), python_serde(&v));
                }
            }

            #[test]
            fn integers_are_written_as_serde_json_writes_them(i in any::<i64>(), u in any::<u64>()) {
                let mut out = Vec::new();
                int(&mut out, u, false);
                prop_assert_eq!(String::from_utf8(out).unwrap(), u.to_string());
                for v in [Value::from(i), Value::from(u)] {
                    prop_assert_eq!(printed(&v, Style::Compact), serde_json::to_string(&v).unwrap());
                }
            }
        }
    }
}
