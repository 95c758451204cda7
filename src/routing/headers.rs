//! Headers exchanges: binding arguments against message headers (`x-match`).


use crate::value::{Headers, Value};

use super::{BindingId, Stored};

/// The `x-match` mode of a headers binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct XMatch {
    /// `any`/`any-with-x`: one matching argument is enough; else all must match.
    any: bool,
    /// `all-with-x`/`any-with-x`: `x-` arguments take part too.
    with_x: bool,
}

impl XMatch {
    /// The mode of a binding's arguments: `all` unless `x-match` says otherwise.
    fn of(binding_args: &Headers) -> Self {
        let mode = match binding_args.get("x-match") {
            Some(Value::String(s)) => s.as_str(),
            _ => "all",
        };
        match mode {
            "any" => XMatch { any: true, with_x: false },
            "all-with-x" => XMatch { any: false, with_x: true },
            "any-with-x" => XMatch { any: true, with_x: true },
            _ => XMatch { any: false, with_x: false },
        }
    }

    /// Whether a binding argument is compared: never `x-match`, other `x-` keys only in the
    /// `-with-x` modes.
    fn takes_part(self, key: &str) -> bool {
        key != "x-match" && (self.with_x || !key.starts_with("x-"))
    }

    /// The binding's verdict from its arguments' matches, in order: any hit decides `any`,
    /// any miss decides `all`.
    fn decide(self, mut matches: impl Iterator<Item = bool>) -> bool {
        if self.any {
            matches.any(|ok| ok)
        } else {
            matches.all(|ok| ok)
        }
    }
}

/// Whether a header value satisfies a binding argument: a void argument asks for presence
/// only, any other for an equal value.
fn arg_matches(want: &Value, have: &Value) -> bool {
    want.is_null() || loose_eq(want, have)
}

/// A headers binding prepared for routing: the arguments that take part, sorted by key
/// (the way RabbitMQ keeps them), so that a message's sorted headers are merged against
/// them without hashing. Must agree with [`headers_match`].
#[derive(Debug, Clone)]
pub(super) struct HeadersSpec {
    mode: XMatch,
    args: Vec<(String, Value)>,
}

impl HeadersSpec {
    pub(super) fn new(binding_args: &Headers) -> Self {
        let mode = XMatch::of(binding_args);
        let mut args: Vec<(String, Value)> = binding_args
            .iter()
            .filter(|(k, _)| mode.takes_part(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        crate::sort::sort_by(&mut args, |a, b| a.0.cmp(&b.0));
        HeadersSpec { mode, args }
    }

    /// `headers` sorted by key.
    fn matches(&self, headers: &[(&str, &Value)]) -> bool {
        let mut j = 0;
        self.mode.decide(self.args.iter().map(|(key, want)| {
            while j < headers.len() && headers[j].0 < key.as_str() {
                j += 1;
            }
            j < headers.len() && headers[j].0 == key && arg_matches(want, headers[j].1)
        }))
    }
}

/// Append the destinations whose bindings match `headers` to `out`, each once, in order.
pub(super) fn route<D: Clone + PartialEq>(bindings: &crate::namemap::SortedMap<BindingId<D>, Stored>, headers: &Headers, out: &mut Vec<D>) {
    let mut sorted: Vec<(&str, &Value)> = headers.iter().map(|(k, v)| (k.as_str(), v)).collect();
    crate::sort::sort_by(&mut sorted, |a, b| a.0.cmp(b.0));
    let mut last: Option<&D> = None;
    for (id, stored) in bindings.iter() {
        // Bindings are sorted by destination: skip the rest of a matched one's.
        if last == Some(&id.dest) {
            continue;
        }
        if stored.spec.as_ref().is_some_and(|spec| spec.matches(&sorted)) {
            out.push(id.dest.clone());
            last = Some(&id.dest);
        }
    }
}

/// Headers-exchange match of binding arguments against message headers, as RabbitMQ 3.x
/// (`rabbit_exchange_type_headers`) does it.
///
/// * `x-match` (a string) selects the mode: `all` (the default, also for any value
///   RabbitMQ would have rejected), `any`, `all-with-x` or `any-with-x`. The `x-match`
///   argument itself never takes part; other arguments whose key starts with `x-` are
///   ignored by `all`/`any` and compared by the `-with-x` modes.
/// * `all`: every remaining argument matches a header (so no arguments match every
///   message); `any`: at least one does (so no arguments match nothing).
/// * An argument matches when the header of that key exists and either the argument is
///   `null` (AMQP void: presence is enough) or the values are equal the way Erlang's `==`
///   compares the decoded field values: types are *not* compared at the top level, so
///   `1` equals `1.0` (numeric equality), but `1` never equals `"1"` nor `true`, and an
///   empty array equals an empty table. Inside arrays and tables the field types *are*
///   compared (`[1]` is not `[1.0]`) and tables compare in order (`{"p":1,"q":2}` is not
///   `{"q":2,"p":1}`).
pub fn headers_match(binding_args: &Headers, headers: &Headers) -> bool {
    let mode = XMatch::of(binding_args);
    let args = binding_args.iter().filter(|(key, _)| mode.takes_part(key));
    mode.decide(args.map(|(key, want)| headers.get(key).is_some_and(|have| arg_matches(want, have))))
}

/// Top-level field values: Erlang `==` on the values without their type tags.
fn loose_eq(a: &Value, b: &Value) -> bool {
    field_eq(a, b, false)
}

/// Nested field values: `{Type, Value}` pairs, so the types must agree too (an integer is
/// not a float), then the values compare with `==`.
fn typed_eq(a: &Value, b: &Value) -> bool {
    field_eq(a, b, true)
}

/// Erlang `==` on decoded field values, with (`typed`) or without their type tags.
fn field_eq(a: &Value, b: &Value, typed: bool) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => (!typed || x.is_f64() == y.is_f64()) && numbers_eq(x, y),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, Value::Null) => true,
        (Value::Array(x), Value::Array(y)) => elements_eq(x, y),
        (Value::Object(x), Value::Object(y)) => tables_eq(x, y),
        // Untagged, both decode to Erlang lists: only the empty ones are equal.
        (Value::Array(x), Value::Object(y)) | (Value::Object(y), Value::Array(x)) => {
            !typed && x.is_empty() && y.is_empty()
        }
        _ => false,
    }
}

fn elements_eq(x: &[Value], y: &[Value]) -> bool {
    x.len() == y.len() && x.iter().zip(y).all(|(a, b)| typed_eq(a, b))
}

/// Tables are lists of `{Key, Type, Value}`: equal keys and values, in the same order.
fn tables_eq(x: &Headers, y: &Headers) -> bool {
    x.len() == y.len() && x.iter().zip(y).all(|((ka, a), (kb, b))| ka == kb && typed_eq(a, b))
}

/// Exact numeric equality across integers and floats (Erlang compares an integer and a
/// float exactly, as if with unbounded precision).
fn numbers_eq(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    fn int(n: &serde_json::Number) -> Option<i128> {
        n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
    }
    match (int(x), int(y)) {
        (Some(a), Some(b)) => a == b,
        (Some(i), None) => y.as_f64().is_some_and(|f| float_eq_int(f, i)),
        (None, Some(i)) => x.as_f64().is_some_and(|f| float_eq_int(f, i)),
        (None, None) => x.as_f64() == y.as_f64(),
    }
}

fn float_eq_int(f: f64, i: i128) -> bool {
    // |i| < 2^64, so a float outside (-2^65, 2^65) cannot equal it and the cast below is
    // exact for the rest (an integral float in that range is an integer in i128's range).
    f.is_finite() && f.fract() == 0.0 && f.abs() < 3.7e19 && f as i128 == i
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::routing::tests::{h, none, route};
    use crate::routing::{RouteKind, Router};
    use serde_json::json;

    #[test]
    fn headers_all_and_any() {
        let all = h(json!({"x-match": "all", "a": 1, "b": "x"}));
        let any = h(json!({"x-match": "any", "a": 1, "b": "x"}));
        assert!(headers_match(&all, &h(json!({"a": 1, "b": "x", "c": 3}))));
        assert!(!headers_match(&all, &h(json!({"a": 1}))));
        assert!(!headers_match(&all, &h(json!({"a": 1, "b": "y"}))));
        assert!(headers_match(&any, &h(json!({"a": 1}))));
        assert!(headers_match(&any, &h(json!({"b": "x", "a": 2}))));
        assert!(!headers_match(&any, &h(json!({"a": 2, "b": "y"}))));
        assert!(!headers_match(&any, &none()));
        // x-match omitted (or unknown) means all.
        assert!(headers_match(&h(json!({"a": 1})), &h(json!({"a": 1}))));
        assert!(!headers_match(&h(json!({"a": 1, "b": 2})), &h(json!({"a": 1}))));
        assert!(!headers_match(&h(json!({"x-match": "bogus", "a": 1, "b": 2})), &h(json!({"a": 1}))));
        assert!(!headers_match(&h(json!({"x-match": 1, "a": 1, "b": 2})), &h(json!({"a": 1}))));
    }

    #[test]
    fn headers_empty_arguments() {
        assert!(headers_match(&none(), &none()));
        assert!(headers_match(&none(), &h(json!({"a": 1}))));
        assert!(headers_match(&h(json!({"x-match": "all"})), &none()));
        assert!(!headers_match(&h(json!({"x-match": "any"})), &h(json!({"a": 1}))));
        assert!(!headers_match(&h(json!({"x-match": "any-with-x"})), &h(json!({"a": 1}))));
        assert!(headers_match(&h(json!({"x-match": "all-with-x"})), &none()));
    }

    #[test]
    fn headers_x_arguments() {
        let plain_all = h(json!({"x-foo": "1"}));
        let plain_any = h(json!({"x-match": "any", "x-foo": "1", "a": 2}));
        let with_all = h(json!({"x-match": "all-with-x", "x-foo": "1"}));
        let with_any = h(json!({"x-match": "any-with-x", "x-foo": "1", "a": 2}));
        // all/any ignore x- arguments: {x-foo} alone is an empty `all`.
        assert!(headers_match(&plain_all, &none()));
        assert!(!headers_match(&plain_any, &h(json!({"x-foo": "1"}))));
        assert!(headers_match(&plain_any, &h(json!({"a": 2}))));
        assert!(headers_match(&with_all, &h(json!({"x-foo": "1"}))));
        assert!(!headers_match(&with_all, &h(json!({"x-foo": "2"}))));
        assert!(!headers_match(&with_all, &none()));
        assert!(headers_match(&with_any, &h(json!({"x-foo": "1"}))));
        assert!(headers_match(&with_any, &h(json!({"a": 2}))));
        assert!(!headers_match(&with_any, &h(json!({"x-foo": 1}))));
        // Only the "x-" prefix, case-sensitively.
        assert!(!headers_match(&h(json!({"X-foo": "1"})), &none()));
        // The x-match header of a message is just another header.
        assert!(headers_match(&h(json!({"x-match": "all-with-x"})), &h(json!({"x-match": "any"}))));
    }

    #[test]
    fn headers_typed_values() {
        let m = |b: Value, v: Value| headers_match(&h(json!({"a": b})), &h(json!({"a": v})));
        assert!(m(json!(1), json!(1)));
        assert!(m(json!(1), json!(1.0)));
        assert!(m(json!(1.0), json!(1)));
        assert!(m(json!(0), json!(-0.0)));
        assert!(m(json!(-3), json!(-3.0)));
        assert!(!m(json!(1), json!(1.5)));
        assert!(!m(json!(1), json!("1")));
        assert!(!m(json!("1"), json!(1)));
        assert!(!m(json!(1), json!(true)));
        assert!(!m(json!(true), json!(1)));
        assert!(!m(json!(false), json!(0)));
        assert!(!m(json!(true), json!("true")));
        assert!(m(json!(true), json!(true)));
        assert!(!m(json!(true), json!(false)));
        assert!(m(json!("x"), json!("x")));
        assert!(!m(json!("x"), json!("X")));
        assert!(m(json!(u64::MAX), json!(u64::MAX)));
        assert!(!m(json!(u64::MAX), json!(-1)));
        assert!(m(json!(9007199254740992_i64), json!(9007199254740992.0)));
        assert!(!m(json!(9007199254740993_i64), json!(9007199254740992.0)));
        // Containers: types matter inside, order matters in tables, [] == {}.
        assert!(m(json!([1, "a"]), json!([1, "a"])));
        assert!(!m(json!([1]), json!([1.0])));
        assert!(!m(json!([1]), json!([1, 1])));
        assert!(m(json!([]), json!({})));
        assert!(m(json!({}), json!([])));
        assert!(!m(json!([1]), json!({"a": 1})));
        assert!(m(json!({"p": 1, "q": [2]}), json!({"p": 1, "q": [2]})));
        assert!(!m(json!({"p": 1, "q": 2}), json!({"q": 2, "p": 1})));
        assert!(!m(json!({"p": 1}), json!({"p": 1.0})));
        assert!(!m(json!([[]]), json!([{}])));
        assert!(!m(json!("a"), json!(["a"])));
    }

    #[test]
    fn headers_void_means_presence() {
        let b = h(json!({"a": null}));
        for v in [json!(null), json!(0), json!(""), json!(false), json!([]), json!({"x": 1})] {
            assert!(headers_match(&b, &h(json!({ "a": v }))));
        }
        assert!(!headers_match(&b, &h(json!({"b": null}))));
        assert!(!headers_match(&b, &none()));
        // A void header only matches a void (or presence) argument.
        assert!(!headers_match(&h(json!({"a": 0})), &h(json!({"a": null}))));
        assert!(!headers_match(&h(json!({"a": "undefined"})), &h(json!({"a": null}))));
        // any: one present key is enough.
        assert!(headers_match(&h(json!({"x-match": "any", "a": null, "b": 1})), &h(json!({"a": 5}))));
    }

    #[test]
    fn headers_router_dedups_in_order() {
        let mut r = Router::new(RouteKind::Headers);
        r.bind("", &h(json!({"a": 1})), 3u32);
        r.bind("", &h(json!({"x-match": "any", "a": 1, "b": 2})), 3);
        r.bind("ignored", &h(json!({"b": 2})), 1);
        r.bind("", &none(), 2);
        r.bind("", &h(json!({"c": null})), 0);
        assert_eq!(route(&r, "any key", &h(json!({"a": 1, "b": 2}))), vec![1, 2, 3]);
        assert_eq!(route(&r, "", &h(json!({"a": 1.0}))), vec![2, 3]);
        assert_eq!(route(&r, "", &h(json!({"c": "v"}))), vec![0, 2]);
        assert_eq!(route(&r, "", &none()), vec![2]);
        assert_eq!(r.unbind_destination(&3), 2);
        assert_eq!(route(&r, "", &h(json!({"a": 1, "b": 2}))), vec![1, 2]);
    }

}
