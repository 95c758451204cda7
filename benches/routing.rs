//! Exchange routing (`kombu::routing::Router`): one routing decision per iteration.
//!
//! `cargo bench --bench routing`. Destinations are `u32`, so the figures are the routing
//! itself, not the cost of cloning queue names.
//!
//! * topic — 10,000 bindings: 4,000 exact keys `svcS.objO.created`, 3,000 `svcS.objO.*`,
//!   1,500 `logN.#` and 1,500 `*.regionN.#`; plus, for scale, the same 10,000 patterns
//!   matched one by one with `topic_matches` (what a trie avoids);
//! * direct — 10,000 binding keys;
//! * headers — 1,000 bindings (`all` and `any`, 2-3 arguments each), a linear scan.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use kombu::routing::{topic_matches, RouteKind, Router};
use kombu::Headers;
use serde_json::json;

fn topic_patterns() -> Vec<String> {
    let mut p = Vec::with_capacity(10_000);
    for i in 0..4_000 {
        p.push(format!("svc{}.obj{}.created", i % 50, i));
    }
    for i in 0..3_000 {
        p.push(format!("svc{}.obj{}.*", i % 50, i));
    }
    for i in 0..1_500 {
        p.push(format!("log{i}.#"));
    }
    for i in 0..1_500 {
        p.push(format!("*.region{i}.#"));
    }
    p
}

fn topic(c: &mut Criterion) {
    let patterns = topic_patterns();
    let mut r = Router::new(RouteKind::Topic);
    for (i, p) in patterns.iter().enumerate() {
        r.bind(p, &Headers::new(), i as u32);
    }
    let none = Headers::new();
    let mut g = c.benchmark_group("topic_10k");
    let cases = [
        // exact + `svc.obj.*` both match
        ("exact_and_star", "svc7.obj1007.created"),
        // `svc.obj.*` only
        ("star", "svc7.obj1007.deleted"),
        // `logN.#` with a long tail
        ("hash_long_tail", "log42.a.b.c.d.e.f"),
        // `*.regionN.#`
        ("star_hash", "svc7.region42.x.y"),
        // nothing: fails on the first words
        ("miss", "nobody.listens.here"),
    ];
    for (name, key) in cases {
        let mut out = Vec::with_capacity(8);
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                r.route(black_box(key), &none, &mut out);
                black_box(out.len())
            })
        });
    }
    g.bench_function("linear_topic_matches_reference", |b| {
        b.iter(|| patterns.iter().filter(|p| topic_matches(p, black_box("svc7.obj1007.created"))).count())
    });
    g.finish();
}

fn direct(c: &mut Criterion) {
    let mut r = Router::new(RouteKind::Direct);
    for i in 0..10_000u32 {
        r.bind(&format!("tasks.worker{i}"), &Headers::new(), i);
    }
    let none = Headers::new();
    let mut g = c.benchmark_group("direct_10k");
    for (name, key) in [("hit", "tasks.worker4242"), ("miss", "tasks.worker99999")] {
        let mut out = Vec::with_capacity(4);
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                r.route(black_box(key), &none, &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn headers(c: &mut Criterion) {
    let mut r = Router::new(RouteKind::Headers);
    for i in 0..1_000u32 {
        let args = if i % 2 == 0 {
            json!({"x-match": "all", "format": "pdf", "shard": i % 100})
        } else {
            json!({"x-match": "any", "region": format!("r{}", i % 37), "tenant": i, "prio": null})
        };
        r.bind("", args.as_object().unwrap(), i);
    }
    let mut g = c.benchmark_group("headers_1k");
    let cases = [
        ("few_hits", json!({"format": "pdf", "shard": 17, "tenant": 501})),
        ("many_hits", json!({"format": "pdf", "shard": 17, "prio": 1})),
        ("miss", json!({"format": "png", "colour": "red"})),
    ];
    for (name, h) in cases {
        let h = h.as_object().unwrap().clone();
        let mut out = Vec::with_capacity(600);
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                r.route("", black_box(&h), &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, topic, direct, headers);
criterion_main!(benches);
