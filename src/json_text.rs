//! JSON text into a [`Value`] exactly as `serde_json::from_slice::<Value>` reads it (with this
//! crate's `preserve_order` and `float_roundtrip`): the same values — integers as u64 or i64
//! when they fit (`-0` and larger ones as floats), floats correctly rounded, keys in order, a
//! duplicate key's last value in its first place — and the same refusals, with serde_json's
//! error text (message, line and column).
//!
//! The wasm modules read JSON text with this instead of serde_json's parser, whose correctly
//! rounding float reader (`serde_json::lexical`) was ~9.6 KB gzipped of each module; floats
//! come back bit for bit all the same: a significand up to 2^53 times or over a power of ten up
//! to 10^22 is one correctly rounded multiply or divide, and any other float is read by
//! JavaScript's `parseFloat` (correctly rounded too), natively by `str::parse` (for the tests:
//! native builds keep serde_json's parser). One pass, no copy of a string without escapes but
//! into its `String`.

use serde_json::{Map, Number, Value};

/// Parse a whole JSON text (whitespace around the value, nothing else).
pub(crate) fn parse(b: &[u8]) -> Result<Value, Error> {
    let mut p = Parser { b, i: 0, depth: 128 };
    let v = p.value().and_then(|v| match p.ws() {
        Some(_) => Err(p.peek_fail(Code::Trailing)),
        None => Ok(v),
    });
    v.map_err(|f| error(b, f))
}

/// Why the text was refused: serde_json's error codes, in its words.
#[derive(Clone, Copy)]
enum Code {
    EofList,
    EofObject,
    EofString,
    EofValue,
    Colon,
    ListCommaOrEnd,
    ObjectCommaOrEnd,
    Ident,
    Value,
    Escape,
    Number,
    OutOfRange,
    InvalidCodePoint,
    Control,
    Key,
    LoneSurrogate,
    TrailingComma,
    Trailing,
    HexEnd,
    Depth,
}

impl Code {
    fn text(self) -> &'static str {
        match self {
            Code::EofList => "EOF while parsing a list",
            Code::EofObject => "EOF while parsing an object",
            Code::EofString => "EOF while parsing a string",
            Code::EofValue => "EOF while parsing a value",
            Code::Colon => "expected `:`",
            Code::ListCommaOrEnd => "expected `,` or `]`",
            Code::ObjectCommaOrEnd => "expected `,` or `}`",
            Code::Ident => "expected ident",
            Code::Value => "expected value",
            Code::Escape => "invalid escape",
            Code::Number => "invalid number",
            Code::OutOfRange => "number out of range",
            Code::InvalidCodePoint => "invalid unicode code point",
            Code::Control => "control character (\\u0000-\\u001F) found while parsing a string",
            Code::Key => "key must be a string",
            Code::LoneSurrogate => "lone leading surrogate in hex escape",
            Code::TrailingComma => "trailing comma",
            Code::Trailing => "trailing characters",
            Code::HexEnd => "unexpected end of hex escape",
            Code::Depth => "recursion limit exceeded",
        }
    }
}

/// A refusal: its code and the byte offset whose line and column serde_json names (less
/// `back` columns: how far before the closing quote invalid UTF-8 starts).
struct Fail {
    code: Code,
    at: usize,
    back: usize,
}

type R<T> = Result<T, Fail>;

/// Text that is not JSON: what serde_json's error says, shown the same way (`{what} at line
/// {line} column {column}`). Its own type rather than a `serde_json::Error`, whose only public
/// constructor (`de::Error::custom`) searches the message for its position again (core's
/// substring search, ~1 KB gzipped of each wasm module).
#[derive(Debug)]
pub(crate) struct Error {
    what: &'static str,
    line: usize,
    column: usize,
}

impl Error {
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn line(&self) -> usize {
        self.line
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn column(&self) -> usize {
        self.column
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at line {} column {}", self.what, self.line, self.column)
    }
}

/// The error for `f`: its line and column as serde_json counts them.
#[cold]
fn error(b: &[u8], f: Fail) -> Error {
    let start = b[..f.at].iter().rposition(|&c| c == b'\n').map_or(0, |n| n + 1);
    let line = 1 + b[..start].iter().filter(|&&c| c == b'\n').count();
    let column = (f.at - start).saturating_sub(f.back);
    Error { what: f.code.text(), line, column }
}

/// Exact powers of ten as doubles (10^22 is the last).
const POW10: [f64; 23] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

/// A float's text (digits, point, exponent; no sign) read correctly rounded, where the
/// multiply or divide by a power of ten is not exact: JavaScript's `parseFloat`.
#[cfg(target_arch = "wasm32")]
fn slow_float(text: &[u8]) -> f64 {
    std::str::from_utf8(text).map_or(f64::NAN, js_sys::parse_float)
}

/// As the wasm modules' `parseFloat`: natively (only the tests parse here) core's parser.
#[cfg(not(target_arch = "wasm32"))]
fn slow_float(text: &[u8]) -> f64 {
    std::str::from_utf8(text).ok().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

/// `sig × 10^scale` for a `sig` past 2^53 (and |scale| up to 22), such as Python's 17-digit
/// floats: the double one multiply or divide gives (an ulp off at most), or its neighbour,
/// whichever exact integer arithmetic shows the value strictly between the midpoints to its
/// neighbours — the correctly rounded one; `None` for a tie or past u128, for [`slow_float`].
fn checked_float(sig: u64, scale: i64) -> Option<f64> {
    use std::cmp::Ordering::{Greater, Less};
    let pow = POW10[scale.unsigned_abs() as usize];
    let mut d = if scale >= 0 { sig as f64 * pow } else { sig as f64 / pow };
    // The value is l / r.
    let (l, r) = if scale >= 0 { (u128::from(sig).checked_mul(pow as u128)?, 1) } else { (u128::from(sig), pow as u128) };
    // The value against the midpoint mid·2^p: l against r·mid·2^p.
    let cmp = |mid: u128, p: i32| {
        let rm = r.checked_mul(mid)?;
        if p >= 0 {
            (rm.leading_zeros() >= p as u32).then(|| l.cmp(&(rm << p)))
        } else {
            (l.leading_zeros() >= p.unsigned_abs()).then(|| (l << -p).cmp(&rm))
        }
    };
    for _ in 0..3 {
        // d = m·2^q, a normal double (from 2^53·10^-22 to 2^64·10^22).
        let bits = d.to_bits();
        let m = u128::from(bits & ((1 << 52) - 1) | 1 << 52);
        let q = (bits >> 52) as i32 - 1075;
        let above = cmp(2 * m + 1, q - 1)?;
        // Below a power of two the neighbour is half as far.
        let below = if m == 1 << 52 { cmp(4 * m - 1, q - 2)? } else { cmp(2 * m - 1, q - 1)? };
        d = f64::from_bits(match (above, below) {
            (Less, Greater) => return Some(d),
            (Greater, _) => bits + 1,
            (_, Less) => bits - 1,
            _ => return None,
        });
    }
    None
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// serde_json's reader, step for step where its errors' positions depend on it: `fail` is
/// serde_json's `error` (at the next byte to read), `peek_fail` its `peek_error` (one further).
struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    /// Arrays and objects that may still open (serde_json's `remaining_depth`).
    depth: u8,
}

impl Parser<'_> {
    fn fail(&self, code: Code) -> Fail {
        Fail { code, at: self.i, back: 0 }
    }

    fn peek_fail(&self, code: Code) -> Fail {
        Fail { code, at: self.b.len().min(self.i + 1), back: 0 }
    }

    // The loops over bytes index the slice themselves: opt-level "z" calls a function that is
    // not inlined, which per byte costs ~20% of a parse.
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// The next byte that is not whitespace, not taken.
    fn ws(&mut self) -> Option<u8> {
        let (b, mut i) = (self.b, self.i);
        while let Some(&c) = b.get(i) {
            if !matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                self.i = i;
                return Some(c);
            }
            i += 1;
        }
        self.i = i;
        None
    }

    /// The next byte, taken.
    #[inline(always)]
    fn next(&mut self, eof: Code) -> R<u8> {
        let c = self.peek().ok_or_else(|| self.fail(eof))?;
        self.i += 1;
        Ok(c)
    }

    fn value(&mut self) -> R<Value> {
        let Some(c) = self.ws() else { return Err(self.peek_fail(Code::EofValue)) };
        Ok(match c {
            b'n' => self.ident(b"null", Value::Null)?,
            b't' => self.ident(b"true", Value::Bool(true))?,
            b'f' => self.ident(b"false", Value::Bool(false))?,
            b'-' => {
                self.i += 1;
                self.number(false)?
            }
            b'0'..=b'9' => self.number(true)?,
            b'"' => {
                self.i += 1;
                Value::String(self.string()?)
            }
            b'[' => {
                self.open()?;
                let v = self.array();
                self.depth += 1;
                Value::Array(v?)
            }
            b'{' => {
                self.open()?;
                let v = self.object();
                self.depth += 1;
                Value::Object(v?)
            }
            _ => return Err(self.peek_fail(Code::Value)),
        })
    }

    /// `word` (whose first letter is next), which reads as `v`.
    fn ident(&mut self, word: &[u8], v: Value) -> R<Value> {
        for &want in word {
            if self.next(Code::EofValue)? != want {
                return Err(self.fail(Code::Ident));
            }
        }
        Ok(v)
    }

    /// An array's or object's opening bracket, within the nesting limit.
    fn open(&mut self) -> R<()> {
        self.depth -= 1;
        if self.depth == 0 {
            return Err(self.peek_fail(Code::Depth));
        }
        self.i += 1;
        Ok(())
    }

    fn array(&mut self) -> R<Vec<Value>> {
        let mut v = Vec::new();
        loop {
            let Some(c) = self.ws() else { return Err(self.peek_fail(Code::EofList)) };
            if c == b']' {
                self.i += 1;
                return Ok(v);
            }
            if !v.is_empty() {
                if c != b',' {
                    return Err(self.peek_fail(Code::ListCommaOrEnd));
                }
                self.i += 1;
                match self.ws() {
                    Some(b']') => return Err(self.peek_fail(Code::TrailingComma)),
                    Some(_) => {}
                    None => return Err(self.peek_fail(Code::EofValue)),
                }
            }
            v.push(self.value()?);
        }
    }

    fn object(&mut self) -> R<Map<String, Value>> {
        let mut m = Map::new();
        loop {
            let Some(c) = self.ws() else { return Err(self.peek_fail(Code::EofObject)) };
            if c == b'}' {
                self.i += 1;
                return Ok(m);
            }
            if m.is_empty() {
                if c != b'"' {
                    return Err(self.peek_fail(Code::Key));
                }
                // Room for a typical message's or header's keys at once.
                m = Map::with_capacity(crate::value::SMALL);
            } else {
                if c != b',' {
                    return Err(self.peek_fail(Code::ObjectCommaOrEnd));
                }
                self.i += 1;
                match self.ws() {
                    Some(b'"') => {}
                    Some(b'}') => return Err(self.peek_fail(Code::TrailingComma)),
                    Some(_) => return Err(self.peek_fail(Code::Key)),
                    None => return Err(self.peek_fail(Code::EofValue)),
                }
            }
            self.i += 1;
            let k = self.string()?;
            match self.ws() {
                Some(b':') => self.i += 1,
                Some(_) => return Err(self.peek_fail(Code::Colon)),
                None => return Err(self.peek_fail(Code::EofObject)),
            }
            let v = self.value()?;
            m.insert(k, v);
        }
    }

    /// A string's contents after its opening quote, and its closing quote. Without escapes
    /// the text is validated and copied once; with them it is built in a buffer, validated as
    /// a whole (as serde_json does, whose error column this gives).
    fn string(&mut self) -> R<String> {
        let b = self.b;
        let mut start = self.i;
        let mut buf = Vec::new();
        loop {
            let mut i = self.i;
            while i < b.len() && !matches!(b[i], b'"' | b'\\' | 0..=0x1f) {
                i += 1;
            }
            self.i = i;
            match self.next(Code::EofString)? {
                b'"' => {
                    let text = if buf.is_empty() {
                        std::str::from_utf8(&b[start..i]).map(str::to_owned).map_err(|e| (i - start, e.valid_up_to()))
                    } else {
                        buf.extend_from_slice(&b[start..i]);
                        String::from_utf8(buf).map_err(|e| (e.as_bytes().len(), e.utf8_error().valid_up_to()))
                    };
                    return text.map_err(|(len, valid)| Fail { code: Code::InvalidCodePoint, at: self.i, back: len - valid });
                }
                b'\\' => {
                    buf.extend_from_slice(&b[start..i]);
                    self.escape(&mut buf)?;
                    start = self.i;
                }
                _ => return Err(self.fail(Code::Control)),
            }
        }
    }

    /// An escape after its backslash, appended to `buf`.
    fn escape(&mut self, buf: &mut Vec<u8>) -> R<()> {
        let c = match self.next(Code::EofString)? {
            c @ (b'"' | b'\\' | b'/') => c,
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let n = match self.hex4()? {
                    0xDC00..=0xDFFF => return Err(self.fail(Code::LoneSurrogate)),
                    n @ 0xD800..=0xDBFF => {
                        // A leading surrogate: its trailing one must follow as `\uDC00`-`\uDFFF`.
                        for want in [b'\\', b'u'] {
                            if self.next(Code::EofString)? != want {
                                return Err(self.fail(Code::HexEnd));
                            }
                        }
                        let n2 = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&n2) {
                            return Err(self.fail(Code::LoneSurrogate));
                        }
                        0x10000 + ((n - 0xD800) << 10) + (n2 - 0xDC00)
                    }
                    n => n,
                };
                let c = char::from_u32(n).unwrap_or(char::REPLACEMENT_CHARACTER);
                buf.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                return Ok(());
            }
            _ => return Err(self.fail(Code::Escape)),
        };
        buf.push(c);
        Ok(())
    }

    /// The four hex digits of a `\u` escape.
    fn hex4(&mut self) -> R<u32> {
        let Some(digits) = self.b.get(self.i..self.i + 4) else {
            self.i = self.b.len();
            return Err(self.fail(Code::EofString));
        };
        self.i += 4;
        let mut n = 0;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(self.fail(Code::Escape)),
            };
            n = n * 16 + u32::from(v);
        }
        Ok(n)
    }

    /// Digits, multiplied into `sig` while it fits a u64 (`long` once it does not); how many.
    fn digits(&mut self, sig: &mut u64, long: &mut bool) -> usize {
        let (b, from) = (self.b, self.i);
        let (mut i, mut s, mut l) = (from, *sig, *long);
        while let Some(&d @ b'0'..=b'9') = b.get(i) {
            match s.checked_mul(10).and_then(|s| s.checked_add(u64::from(d - b'0'))) {
                Some(n) if !l => s = n,
                _ => l = true,
            }
            i += 1;
        }
        (self.i, *sig, *long) = (i, s, l);
        i - from
    }

    /// A number after its sign: an integer as u64 or i64 when it fits (`-0` and any other as
    /// a float), else a float, correctly rounded; out of a double's range refused.
    fn number(&mut self, positive: bool) -> R<Value> {
        let start = self.i;
        let (mut sig, mut long) = (0, false);
        match self.next(Code::EofValue)? {
            b'0' => {
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.peek_fail(Code::Number));
                }
            }
            d @ b'1'..=b'9' => {
                sig = u64::from(d - b'0');
                self.digits(&mut sig, &mut long);
            }
            _ => return Err(self.fail(Code::Number)),
        }
        // The power of ten `sig` is to be scaled by (while it is not `long`).
        let mut scale: i64 = 0;
        let mut is_float = long;
        if self.peek() == Some(b'.') {
            self.i += 1;
            let n = self.digits(&mut sig, &mut long);
            if n == 0 {
                let code = if self.peek().is_some() { Code::Number } else { Code::EofValue };
                return Err(self.peek_fail(code));
            }
            scale = -(n as i64);
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            let negative = self.peek() == Some(b'-');
            if let Some(b'-' | b'+') = self.peek() {
                self.i += 1;
            }
            let d = self.next(Code::EofValue)?;
            if !d.is_ascii_digit() {
                return Err(self.fail(Code::Number));
            }
            let mut exp = i32::from(d - b'0');
            while let Some(d @ b'0'..=b'9') = self.peek() {
                self.i += 1;
                match exp.checked_mul(10).and_then(|e| e.checked_add(i32::from(d - b'0'))) {
                    Some(e) => exp = e,
                    // An exponent past i32, as serde_json reads it: infinite (refused), or zero.
                    None => {
                        if (sig != 0 || long) && !negative {
                            return Err(self.fail(Code::OutOfRange));
                        }
                        while let Some(b'0'..=b'9') = self.peek() {
                            self.i += 1;
                        }
                        return Ok(float(if positive { 0.0 } else { -0.0 }));
                    }
                }
            }
            scale += if negative { -i64::from(exp) } else { i64::from(exp) };
            is_float = true;
        }
        if !is_float {
            if positive {
                return Ok(Value::Number(sig.into()));
            }
            let neg = (sig as i64).wrapping_neg();
            // serde_json: a float for `-0` and below i64::MIN.
            return Ok(if neg >= 0 { float(-(sig as f64)) } else { Value::Number(neg.into()) });
        }
        let f = if !long && sig == 0 {
            0.0
        } else if !long && sig <= 1 << 53 && (-22..=22).contains(&scale) {
            // Exact operands: one correctly rounded operation.
            let pow = POW10[scale.unsigned_abs() as usize];
            if scale >= 0 {
                sig as f64 * pow
            } else {
                sig as f64 / pow
            }
        } else if let Some(f) = (!long && (-22..=22).contains(&scale)).then(|| checked_float(sig, scale)).flatten() {
            f
        } else {
            slow_float(&self.b[start..self.i])
        };
        if f.is_infinite() {
            return Err(self.fail(Code::OutOfRange));
        }
        Ok(float(if positive { f } else { -f }))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// Floats that rounding gets wrong if anything does: 17 significant digits, halfway
    /// cases, the ends of the range and of the subnormals, long significands.
    const HARD_FLOATS: &[&str] = &[
        "0.30000000000000004", "0.1", "0.2", "0.3", "1.5", "2.5e-3", "1e22", "1e23", "9007199254740993.0", "9007199254740993e0",
        "2.2250738585072014e-308", "2.2250738585072011e-308", "2.225073858507201e-308", "4.9406564584124654e-324", "5e-324",
        "2.4703282292062327e-324", "2.4703282292062328e-324", "1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623158079e308",
        "8.98846567431158e307", "123456789012345678901234567890.5", "0.000000000000000000000000000000000000001234567890123456789",
        "7.2057594037927933e16", "9.007199254740993e15", "1.0000000000000002", "0.9999999999999999", "4.35679979e-9", "1e-7", "1e-5",
        "100000000000000000000000.0", "3.141592653589793", "2.718281828459045", "1.1920928955078125e-7", "6.103515625e-5",
        "0.1000000000000000055511151231257827021181583404541015625", "0.1000000000000000055511151231257827021181583404541015626",
        "1448997445238699.0", "1e-400", "0e999", "0.0e-999", "1e0000000000000000000000001",
        "2.47032822920623272088284396434110686182529901307162382212792841250337753635104375932649918180817996189898282347722858865463328355177969898199387398005390939063150356595155702263922908583924491051844359318028499365361525003193704576782492193656236698636584807570015857692699037063119282795585513329278343384093519780155312465972635795746227664652728272200563740064854999770965994704540208281662262378573934507363390079677619305775067401763246736009689513405355374585166611342237666786041621596804619144672918403005300575308490487653917113865916462395249126236538818796362393732804238910186723484976682350898633885879256283027559956575244555072551893136908362547791869486679949683240497058210285131854513962138377228261454376934125320985913276672363281255e-324",
    ];

    /// `f` as Python's `repr` writes it: the shortest digits, positional from 1e-4 to 1e16
    /// (`100.0`), else `1.5e-05` / `1e+16`.
    fn python_repr(f: f64) -> String {
        let sci = format!("{f:e}");
        let (m, x) = sci.split_once('e').unwrap();
        let x: i32 = x.parse().unwrap();
        if (-4..16).contains(&x) {
            let s = format!("{f}");
            if s.contains('.') { s } else { s + ".0" }
        } else {
            format!("{m}e{}{:02}", if x < 0 { '-' } else { '+' }, x.abs())
        }
    }

    /// Float texts: the hard ones, and random doubles written shortest (Rust's `{}`, `{:e}`,
    /// Python's repr), with 17 and 21 significant digits.
    fn float_texts(n: usize) -> Vec<String> {
        let mut texts: Vec<String> = HARD_FLOATS.iter().map(|s| s.to_string()).collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..n {
            crate::xorshift(&mut x);
            let f = f64::from_bits(x);
            if !f.is_finite() {
                continue;
            }
            texts.extend([format!("{f}"), format!("{f:e}"), python_repr(f), format!("{f:.16e}"), format!("{f:.20e}")]);
            // Around 1: mostly the fast path's neighbours.
            let g = (x >> 11) as f64 / (1u64 << 40) as f64;
            texts.extend([python_repr(g), format!("{g:.16e}")]);
        }
        texts
    }

    /// Every float reads as core's parser reads it, bit for bit (in the wasm modules those past
    /// the exact fast path through `parseFloat`), and one out of range is refused.
    #[test]
    fn floats_read_as_str_parse_reads_them() {
        for text in float_texts(if cfg!(target_arch = "wasm32") { 2000 } else { 50_000 }) {
            let want: f64 = text.parse().unwrap();
            let negated = match text.strip_prefix('-') {
                Some(t) => t.to_string(),
                None => format!("-{text}"),
            };
            for (text, want) in [(text, want), (negated, -want)] {
                match parse(text.as_bytes()) {
                    Ok(v) => assert_eq!(v.as_f64().map(f64::to_bits), Some(want.to_bits()), "{text}"),
                    Err(e) => assert!(want.is_infinite() && e.to_string().starts_with("number out of range"), "{text}: {e}"),
                }
            }
        }
    }

    /// 17 significant digits read back by `checked_float` when it answers (all but ties and
    /// products past u128) give the double they were written from; a tie is left to
    /// `slow_float`.
    #[test]
    fn checked_float_answers_only_when_right() {
        let (mut x, mut answered, mut n) = (0x2545_f491_4f6c_dd1du64, 0, 0);
        while n < 20_000 {
            crate::xorshift(&mut x);
            let f = f64::from_bits(x >> 2);
            let text = format!("{f:.16e}");
            let (m, e) = text.split_once('e').unwrap();
            let scale = e.parse::<i64>().unwrap() - 16;
            if !(-22..=22).contains(&scale) {
                continue;
            }
            n += 1;
            if let Some(g) = checked_float(m.replace('.', "").parse().unwrap(), scale) {
                assert_eq!(g.to_bits(), f.to_bits(), "{text}");
                answered += 1;
            }
        }
        assert!(answered > n * 99 / 100, "{answered} of {n}");
        assert_eq!(checked_float(9007199254740993, 0), None);
        assert_eq!(checked_float(30000000000000004, -17), Some(0.30000000000000004));
    }

    #[test]
    fn numbers_keep_serde_jsons_types() {
        let n = |text: &str| parse(text.as_bytes()).unwrap();
        assert_eq!(n("0.30000000000000004").as_f64().unwrap().to_bits(), 0.30000000000000004f64.to_bits());
        assert_eq!(n("2.2250738585072014e-308").as_f64(), Some(f64::MIN_POSITIVE));
        assert_eq!(n("5e-324").as_f64(), Some(f64::from_bits(1)));
        assert_eq!(n("1.7976931348623157e308").as_f64(), Some(f64::MAX));
        assert_eq!(n("9007199254740993").as_u64(), Some(9007199254740993));
        assert_eq!(n("18446744073709551615").as_u64(), Some(u64::MAX));
        let big = n("18446744073709551616");
        assert!(big.is_f64() && big.as_f64() == Some(18446744073709551616.0));
        assert_eq!(n("-9223372036854775808").as_i64(), Some(i64::MIN));
        let below = n("-9223372036854775809");
        assert!(below.is_f64() && below.as_f64() == Some(-9223372036854775808.0));
        for zero in ["-0", "-0.0", "-0e5", "-1e-400"] {
            assert!(n(zero).is_f64() && n(zero).as_f64().unwrap().to_bits() == (-0.0f64).to_bits(), "{zero}");
        }
        assert!(n("0").is_u64() && n("-1").is_i64() && n("1.0").is_f64() && n("1e2").is_f64());
        for refused in ["1e309", "1E400", "-1e400", "1e99999999999", "123456789e2147483647", &"9".repeat(400)] {
            let e = parse(refused.as_bytes()).unwrap_err().to_string();
            assert!(e.starts_with("number out of range at line 1 column"), "{refused}: {e}");
        }
        assert_eq!(n("0e99999999999").as_f64(), Some(0.0));
        assert_eq!(n("1e-99999999999").as_f64(), Some(0.0));
    }

    #[test]
    fn errors_name_what_and_where_as_serde_json_does() {
        let e = |text: &str| parse(text.as_bytes()).unwrap_err().to_string();
        assert_eq!(e("[1, 2"), "EOF while parsing a list at line 1 column 5");
        assert_eq!(e("{\"a\": }"), "expected value at line 1 column 7");
        assert_eq!(e("{1: 2}"), "key must be a string at line 1 column 2");
        assert_eq!(e("[1,]"), "trailing comma at line 1 column 4");
        assert_eq!(e("{}\n x"), "trailing characters at line 2 column 2");
        assert_eq!(e("\"\\ud800\""), "unexpected end of hex escape at line 1 column 8");
        assert_eq!(e("\"\\udc00\""), "lone leading surrogate in hex escape at line 1 column 7");
        assert_eq!(e("\"\u{0}\""), "control character (\\u0000-\\u001F) found while parsing a string at line 1 column 2");
        assert_eq!(e("nul"), "EOF while parsing a value at line 1 column 3");
        assert_eq!(e("01"), "invalid number at line 1 column 2");
        assert_eq!(parse(b"\"\\u0000\"").unwrap(), Value::String("\0".into()));
        assert_eq!(parse("\"\\ud83d\\ude00\"".as_bytes()).unwrap(), Value::String("\u{1f600}".into()));
        let err = parse(b"\"ab\xff\"").unwrap_err();
        assert_eq!((err.to_string().as_str(), err.line(), err.column()), ("invalid unicode code point at line 1 column 4", 1, 4));
        // 127 arrays deep are read, 128 are not.
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(deep(127).as_bytes()).is_ok());
        assert_eq!(parse(deep(128).as_bytes()).unwrap_err().to_string(), "recursion limit exceeded at line 1 column 128");
        // A duplicate key: the last value, in the first key's place.
        let v = parse(br#"{"a": 1, "b": 2, "a": 3}"#).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"a":3,"b":2}"#);
    }

    /// What serde_json (this crate's native features: preserve_order, float_roundtrip) reads.
    #[cfg(not(target_arch = "wasm32"))]
    mod against_serde_json {
        use super::*;
        use proptest::prelude::*;

        /// Equal, floats bit for bit (serde_json's `==` has -0.0 == 0.0), keys in order.
        fn same(a: &Value, b: &Value) -> bool {
            match (a, b) {
                (Value::Number(x), Value::Number(y)) => {
                    (x.as_u64(), x.as_i64(), x.is_f64(), x.as_f64().map(f64::to_bits)) == (y.as_u64(), y.as_i64(), y.is_f64(), y.as_f64().map(f64::to_bits))
                }
                (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
                (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().zip(y).all(|((k, x), (l, y))| k == l && same(x, y)),
                _ => a == b,
            }
        }

        /// The same value, or the same error (text, line and column).
        fn check(text: &[u8]) {
            let (ours, theirs) = (parse(text), serde_json::from_slice::<Value>(text));
            let shown = String::from_utf8_lossy(text);
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => assert!(same(a, b), "{shown:?}: {a} != {b}"),
                (Err(a), Err(b)) => {
                    assert_eq!((a.to_string(), a.line(), a.column()), (b.to_string(), b.line(), b.column()), "{shown:?}")
                }
                _ => panic!("{shown:?}: ours {ours:?}, serde_json's {theirs:?}"),
            }
        }

        #[test]
        fn hard_cases() {
            let mut texts: Vec<String> = [
                "", " ", "null", " true ", "false", "nul", "nulL", "t", "fals", "[", "]", "{", "}", "[1", "[1,", "[1 2]", "[,1]", "[1,]", "{\"a\"", "{\"a\" 1}",
                "{\"a\":", "{\"a\":1", "{\"a\":1,", "{\"a\":1,}", "{\"a\":1 \"b\":2}", "{,}", "{1:1}", "{\"a\":1}x", "1 2", "-", "--1", "-a", "+1", "01", "-01",
                "1.", "1.e5", "1e", "1e+", "1e-", "1ea", ".5", "0.5", "-0", "-0.0", "0e0", "1E400", "1e309", "-1e309", "1e-400", "0e99999999999999",
                "1e99999999999999", "1e-99999999999999", "-0e99999999999999", "1.5e2147483647", "1.5e2147483648", "0.1e-2147483648",
                "9007199254740993", "18446744073709551615", "18446744073709551616", "-9223372036854775808", "-9223372036854775809",
                "-18446744073709551616", "184467440737095516150.5", "1844674407370955161.5", "18446744073709551615.5e-5", "\"", "\"abc",
                "\"\\", "\"\\u", "\"\\u12", "\"\\u12\"", "\"\\uzzzz\"", "\"\\x\"", "\"\\ud800\"", "\"\\ud800\\\"", "\"\\ud800\\u\"", "\"\\ud800\\n\"",
                "\"\\ud800\\ud800\"", "\"\\ud800\\udc00\"", "\"\\udbff\\udfff\"", "\"\\udc00\"", "\"\\u0000\"", "\"\u{1}\"", "\"\u{1f}\"", "\"\t\"",
                "\"a\\/b\\\\c\\\"d\\b\\f\\n\\r\\t\"", "\"\\u00e9\\u00E9é\"", "\n\n  [1,\n  x]", "{\"a\":1,\"a\":2,\"b\":3,\"a\":4}", "[\"\\ud83d\\ude00\"]",
                "\u{feff}1", "[1]\u{0}",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            for n in [1, 126, 127, 128, 129, 200] {
                texts.push(format!("{}{}", "[".repeat(n), "]".repeat(n)));
                texts.push(format!("{}1{}", "{\"a\":[".repeat(n / 2), "]}".repeat(n / 2)));
                texts.push("[".repeat(n));
            }
            texts.extend(float_texts(20_000));
            for t in &texts {
                check(t.as_bytes());
                check(format!("-{t}").as_bytes());
                check(format!(" [{t} , {{\"k\":{t}}}]\n").as_bytes());
            }
            for bad in [&b"\"\xff\""[..], b"\"a\xc3\"", b"\"\xc3\xa9\xe2\x82\"", b"\"\\n\xff\"", b"\"\xed\xa0\x80\"", b"[\"ok\",\n\"\xf0\x9f\x98\"]", b"\xff", b"[\xff]"] {
                check(bad);
            }
        }

        /// Text pieces near and in JSON, for random texts.
        const PIECES: &[&str] = &[
            " ", "\t", "\n", "\r", "\u{c}", "[", "]", "{", "}", ",", ":", "\"", "\\", "\\u", "\\ud83d", "\\ude00", "\\uDBFF", "\\u00e9", "\\n", "\\x",
            "a", "é", "😀", "\u{0}", "\u{1f}", "null", "true", "false", "nul", "0", "1", "-", "+", ".", "e", "E", "9", "00", "1.5", "1e400",
            "18446744073709551616", "-9223372036854775809", "0.30000000000000004", "\"k\"", "\"k\":",
        ];

        /// A JSON text: values nested a few levels, with random whitespace, escapes and
        /// duplicate keys.
        fn json_text() -> impl Strategy<Value = String> {
            let ws = prop::sample::select(vec!["", "", " ", "\n", "\t\r "]);
            let number = prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                any::<u64>().prop_map(|n| n.to_string()),
                any::<u64>().prop_map(f64::from_bits).prop_filter("finite", |f| f.is_finite()).prop_map(python_repr),
                any::<u64>().prop_map(f64::from_bits).prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:.16e}")),
                "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?",
            ];
            let string = "\"([a-z é😀]|\\\\[\"\\\\/bfnrt]|\\\\u[0-9a-fA-F]{4}|\\\\u[dD][89abAB][0-9a-fA-F]{2}\\\\u[dD][c-fC-F][0-9a-fA-F]{2})*\"";
            let leaf = prop_oneof![Just("null".to_string()), Just("true".to_string()), Just("false".to_string()), number, string];
            let ws2 = ws.clone();
            leaf.prop_recursive(4, 64, 6, move |inner| {
                let ws = ws2.clone();
                prop_oneof![
                    prop::collection::vec((inner.clone(), ws.clone()), 0..6).prop_map(|items| {
                        let items: Vec<String> = items.into_iter().map(|(v, w)| format!("{w}{v}{w}")).collect();
                        format!("[{}]", items.join(","))
                    }),
                    prop::collection::vec(("\"(a|b|c|\\\\u0061|k[0-9])\"", inner, ws), 0..6).prop_map(|items| {
                        let items: Vec<String> = items.into_iter().map(|(k, v, w)| format!("{w}{k}{w}:{w}{v}")).collect();
                        format!("{{{}}}", items.join(","))
                    }),
                ]
            })
            .prop_flat_map(move |v| (ws.clone(), Just(v), ws.clone()).prop_map(|(a, v, b)| format!("{a}{v}{b}")))
        }

        /// An edit of a text: `(kind, where, byte)`: cut there, insert or replace a byte, drop one.
        fn edited(text: &str, edits: &[(u8, usize, u8)]) -> Vec<u8> {
            let mut b = text.as_bytes().to_vec();
            for &(kind, at, byte) in edits {
                let at = at % (b.len() + 1);
                match kind {
                    0 => b.truncate(at),
                    1 => b.insert(at, byte),
                    2 if at < b.len() => b[at] = byte,
                    3 if at < b.len() => drop(b.remove(at)),
                    _ => {}
                }
            }
            b
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// JSON texts, and the same texts edited (cut, bytes inserted, replaced or dropped).
            #[test]
            fn json_texts_read_as_serde_json_reads_them(text in json_text(), edits in prop::collection::vec((0u8..4, any::<usize>(), any::<u8>()), 0..3)) {
                check(text.as_bytes());
                check(&edited(&text, &edits));
            }

            /// Texts of pieces of JSON in any order (mostly refused, each where serde_json does).
            #[test]
            fn random_pieces_read_as_serde_json_reads_them(pieces in prop::collection::vec(prop::sample::select(PIECES), 0..24)) {
                check(pieces.concat().as_bytes());
            }

            /// Any bytes.
            #[test]
            fn random_bytes_read_as_serde_json_reads_them(bytes in prop::collection::vec(any::<u8>(), 0..16)) {
                check(&bytes);
            }

            /// Numbers and near-numbers.
            #[test]
            fn numbers_read_as_serde_json_reads_them(text in "-?[0-9]{0,30}\\.?[0-9]{0,30}([eE][+-]?[0-9]{0,12})?", bits in any::<u64>()) {
                check(text.as_bytes());
                let f = f64::from_bits(bits);
                if f.is_finite() {
                    for text in [format!("{f}"), format!("{f:e}"), python_repr(f), format!("{f:.16e}"), format!("{f:.25e}")] {
                        check(text.as_bytes());
                    }
                }
            }
        }
    }
}
