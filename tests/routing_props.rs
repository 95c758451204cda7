#![cfg(not(target_arch = "wasm32"))]
//! Property tests for `kombu::routing`: the trie-based topic router and `topic_matches`
//! agree with a naive recursive matcher, and any sequence of bind/unbind operations keeps
//! every router kind consistent with a plain list of bindings.

use std::collections::BTreeSet;

use kombu::routing::{headers_match, topic_matches, RouteKind, Router};
use kombu::Headers;
use proptest::prelude::*;
use serde_json::json;

/// The straightforward definition: split on '.', the empty string being zero words; `*`
/// eats one word, `#` zero or more, anything else must be equal.
fn reference_matches(pattern: &str, key: &str) -> bool {
    fn words(s: &str) -> Vec<&str> {
        if s.is_empty() {
            Vec::new()
        } else {
            s.split('.').collect()
        }
    }
    fn go(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|skip| go(rest, &k[skip..])),
            Some((&"*", rest)) => !k.is_empty() && go(rest, &k[1..]),
            Some((w, rest)) => k.first() == Some(w) && go(rest, &k[1..]),
        }
    }
    go(&words(pattern), &words(key))
}

/// Topic patterns: 0..6 words from a small alphabet with the empty word and wildcards.
fn pattern() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["", "*", "#", "a", "b"]), 0..6)
        .prop_map(|w| w.join("."))
}

/// Routing keys: like patterns, but wildcards in keys are rare (and are plain words there).
fn key() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!["", "a", "b", "a", "b", "c", "*", "#"]),
        0..7,
    )
    .prop_map(|w| w.join("."))
}

fn args() -> impl Strategy<Value = Headers> {
    prop::sample::select(vec![
        json!({}),
        json!({"a": 1}),
        json!({"a": 1.0}),
        json!({"b": "x", "a": 1}),
        json!({"x-match": "any", "a": 1, "b": "x"}),
        json!({"x-match": "any", "a": null}),
        json!({"x-match": "all-with-x", "x-q": true}),
    ])
    .prop_map(|v| v.as_object().cloned().unwrap())
}

fn headers() -> impl Strategy<Value = Headers> {
    prop::sample::select(vec![
        json!({}),
        json!({"a": 1}),
        json!({"a": 2, "b": "x"}),
        json!({"a": 1.0, "b": "x"}),
        json!({"x-q": true, "a": "1"}),
    ])
    .prop_map(|v| v.as_object().cloned().unwrap())
}

fn kind() -> impl Strategy<Value = RouteKind> {
    prop::sample::select(vec![RouteKind::Direct, RouteKind::Fanout, RouteKind::Topic, RouteKind::Headers])
}

#[derive(Debug, Clone)]
enum Op {
    Bind(String, Headers, u8),
    Unbind(String, Headers, u8),
    UnbindDest(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (pattern(), args(), 0u8..6).prop_map(|(k, a, d)| Op::Bind(k, a, d)),
        3 => (pattern(), args(), 0u8..6).prop_map(|(k, a, d)| Op::Unbind(k, a, d)),
        1 => (0u8..6).prop_map(Op::UnbindDest),
    ]
}

/// A binding as the model keeps it: arguments compared as a set of top-level pairs.
type ModelBinding = (String, Headers, u8);

fn same_args(a: &Headers, b: &Headers) -> bool {
    // serde_json's map equality ignores key order, as RabbitMQ does for the top level
    // (the generated arguments have no nested tables), and keeps `1` and `1.0` apart.
    a == b
}

/// What a router of `kind` holding exactly `bindings` must route.
fn model_route(kind: RouteKind, bindings: &[ModelBinding], key: &str, headers: &Headers) -> Vec<u8> {
    let set: BTreeSet<u8> = bindings
        .iter()
        .filter(|(k, a, _)| match kind {
            RouteKind::Direct => k == key,
            RouteKind::Fanout => true,
            RouteKind::Topic => reference_matches(k, key),
            RouteKind::Headers => headers_match(a, headers),
        })
        .map(|b| b.2)
        .collect();
    set.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn topic_matches_agrees_with_reference(p in pattern(), k in key()) {
        prop_assert_eq!(topic_matches(&p, &k), reference_matches(&p, &k), "pattern {:?} key {:?}", p, k);
    }

    #[test]
    fn trie_router_agrees_with_reference(
        patterns in prop::collection::vec((pattern(), 0u8..12), 0..40),
        keys in prop::collection::vec(key(), 1..20),
    ) {
        let mut r = Router::new(RouteKind::Topic);
        for (p, d) in &patterns {
            r.bind(p, &Headers::new(), *d);
        }
        for k in &keys {
            let mut got = Vec::new();
            r.route(k, &Headers::new(), &mut got);
            let want: BTreeSet<u8> =
                patterns.iter().filter(|(p, _)| reference_matches(p, k)).map(|(_, d)| *d).collect();
            prop_assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "key {:?}", k);
        }
    }

    #[test]
    fn bind_unbind_sequences_stay_consistent(
        kind in kind(),
        ops in prop::collection::vec(op(), 0..60),
        probes in prop::collection::vec((key(), headers()), 1..12),
    ) {
        let mut r: Router<u8> = Router::new(kind);
        let mut model: Vec<ModelBinding> = Vec::new();
        for op in &ops {
            match op {
                Op::Bind(k, a, d) => {
                    let fresh = !model.iter().any(|(mk, ma, md)| mk == k && same_args(ma, a) && md == d);
                    prop_assert_eq!(r.bind(k, a, *d), fresh);
                    if fresh {
                        model.push((k.clone(), a.clone(), *d));
                    }
                }
                Op::Unbind(k, a, d) => {
                    let pos = model.iter().position(|(mk, ma, md)| mk == k && same_args(ma, a) && md == d);
                    prop_assert_eq!(r.unbind(k, a, d), pos.is_some());
                    if let Some(i) = pos {
                        model.remove(i);
                    }
                }
                Op::UnbindDest(d) => {
                    let before = model.len();
                    model.retain(|b| b.2 != *d);
                    prop_assert_eq!(r.unbind_destination(d), before - model.len());
                }
            }
            prop_assert_eq!(r.len(), model.len());
            prop_assert_eq!(r.is_empty(), model.is_empty());
            for d in 0u8..6 {
                prop_assert_eq!(r.has_destination(&d), model.iter().any(|b| b.2 == d));
            }
            for (k, h) in &probes {
                let mut got = Vec::new();
                r.route(k, h, &mut got);
                prop_assert_eq!(got, model_route(kind, &model, k, h));
            }
        }
        // The listing is the model, ordered by destination, key, arguments.
        let mut listed: Vec<ModelBinding> = r.bindings().map(|(k, a, d)| (k.to_owned(), a.clone(), *d)).collect();
        prop_assert_eq!(listed.len(), model.len());
        for b in &model {
            let i = listed.iter().position(|l| l.0 == b.0 && same_args(&l.1, &b.1) && l.2 == b.2);
            prop_assert!(i.is_some(), "missing binding {:?}", b);
            listed.remove(i.unwrap());
        }
        let order: Vec<u8> = r.bindings().map(|b| *b.2).collect();
        prop_assert!(order.windows(2).all(|w| w[0] <= w[1]));
    }
}
