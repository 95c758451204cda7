#![cfg(not(target_arch = "wasm32"))]
//! Replays routing decisions sampled from a real RabbitMQ through `kombu::routing`.
//!
//! The fixture `tests/fixtures/rabbitmq_routing_sample.json` is written by
//! `tests/fixtures/gen_rabbitmq_routing_sample.py` (run by hand against a live broker): for a
//! topic and a headers exchange it lists the bindings and, for every published sample, the
//! indices of the bindings that RabbitMQ delivered it through.

use kombu::routing::{headers_match, topic_matches, RouteKind, Router};
use kombu::Headers;
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/rabbitmq_routing_sample.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("fixture is JSON")
}

fn matches(sample: &Value) -> Vec<usize> {
    sample["matches"].as_array().unwrap().iter().map(|m| m.as_u64().unwrap() as usize).collect()
}

fn table(v: &Value) -> &Headers {
    v.as_object().expect("a table")
}

#[test]
fn fixture_is_from_rabbitmq_3() {
    let doc = fixture();
    let version = doc["rabbitmq_version"].as_str().unwrap();
    assert!(version.starts_with("3."), "sampled RabbitMQ {version}");
    let total: usize = doc["topic"]["samples"].as_array().unwrap().iter().map(|s| matches(s).len()).sum();
    assert_eq!(total as u64, doc["topic"]["deliveries"].as_u64().unwrap());
    let total: usize = doc["headers"]["samples"].as_array().unwrap().iter().map(|s| matches(s).len()).sum();
    assert_eq!(total as u64, doc["headers"]["deliveries"].as_u64().unwrap());
}

#[test]
fn topic_routes_like_rabbitmq() {
    let doc = fixture();
    let bindings: Vec<&str> =
        doc["topic"]["bindings"].as_array().unwrap().iter().map(|b| b.as_str().unwrap()).collect();
    let samples = doc["topic"]["samples"].as_array().unwrap();
    assert!(bindings.len() >= 100 && samples.len() >= 1000);

    let mut router = Router::new(RouteKind::Topic);
    for (i, pattern) in bindings.iter().enumerate() {
        assert!(router.bind(pattern, &Headers::new(), i));
    }
    let mut failures = Vec::new();
    let mut out = Vec::new();
    for s in samples {
        let key = s["key"].as_str().unwrap();
        let want = matches(s);
        out.clear();
        router.route(key, &Headers::new(), &mut out);
        if out != want {
            failures.push(format!("key {key:?}: RabbitMQ {want:?}, router {out:?}"));
        }
        let by_fn: Vec<usize> = (0..bindings.len()).filter(|&i| topic_matches(bindings[i], key)).collect();
        if by_fn != want {
            failures.push(format!("key {key:?}: RabbitMQ {want:?}, topic_matches {by_fn:?}"));
        }
    }
    assert!(failures.is_empty(), "{} mismatches, first: {:#?}", failures.len(), &failures[..failures.len().min(10)]);
}

#[test]
fn headers_route_like_rabbitmq() {
    let doc = fixture();
    let bindings: Vec<&Headers> = doc["headers"]["bindings"].as_array().unwrap().iter().map(table).collect();
    let samples = doc["headers"]["samples"].as_array().unwrap();
    assert!(bindings.len() >= 100 && samples.len() >= 1000);

    let mut router = Router::new(RouteKind::Headers);
    for (i, args) in bindings.iter().enumerate() {
        assert!(router.bind("", args, i));
    }
    let mut failures = Vec::new();
    let mut out = Vec::new();
    for s in samples {
        let headers = table(&s["headers"]);
        let want = matches(s);
        out.clear();
        router.route("ignored.key", headers, &mut out);
        if out != want {
            failures.push(format!("headers {headers:?}: RabbitMQ {want:?}, router {out:?}"));
        }
        let by_fn: Vec<usize> = (0..bindings.len()).filter(|&i| headers_match(bindings[i], headers)).collect();
        if by_fn != want {
            failures.push(format!("headers {headers:?}: RabbitMQ {want:?}, headers_match {by_fn:?}"));
        }
    }
    assert!(failures.is_empty(), "{} mismatches, first: {:#?}", failures.len(), &failures[..failures.len().min(10)]);
}
