//! The gateway protocol's server frames as a `gateway+ws://` client reads them
//! (`kombu::proto::gateway::decode_server`): one `deliver` frame per message, written by the
//! gateway's `encode_deliver`.
//!
//! `cargo bench --bench gateway_frames`. Two messages:
//!
//! * kombu — what Python kombu's `Producer.publish` sends by default: JSON body,
//!   `content_type` `application/json`, `content_encoding` `utf-8`, `delivery_mode` 2,
//!   `priority` 0, empty headers;
//! * celery — a Celery task message (protocol 2): the same properties plus `correlation_id`
//!   and `reply_to`, and the task's fifteen headers.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use kombu::proto::gateway::{decode_server, encode_deliver};
use kombu::proto::methods::{Content, Delivery};
use kombu::{Properties, PERSISTENT_DELIVERY_MODE};
use serde_json::json;

fn delivery(properties: Properties, body: &'static [u8]) -> Delivery {
    Delivery {
        delivery_tag: 18_446,
        redelivered: false,
        exchange: "celery".into(),
        routing_key: "celery".into(),
        content: Arc::new(Content { properties, body: Bytes::from_static(body) }),
        extra: None,
    }
}

fn kombu_message() -> Delivery {
    let properties = Properties {
        content_type: Some("application/json".into()),
        content_encoding: Some("utf-8".into()),
        delivery_mode: Some(PERSISTENT_DELIVERY_MODE),
        priority: Some(0),
        ..Properties::default()
    };
    delivery(properties, br#"{"hello": "world", "n": 1234, "items": [1, 2, 3]}"#)
}

fn celery_message() -> Delivery {
    let id = "4f4cb4b0-2a5e-4c1a-9d8e-6f0a3c1b2d7e";
    let headers = json!({
        "lang": "py", "task": "proj.tasks.add", "id": id, "shadow": null, "eta": null, "expires": null,
        "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": id,
        "parent_id": null, "argsrepr": "(2, 2)", "kwargsrepr": "{}", "origin": "gen1234@host", "ignore_result": false,
    });
    let serde_json::Value::Object(headers) = headers else { unreachable!() };
    let properties = Properties {
        content_type: Some("application/json".into()),
        content_encoding: Some("utf-8".into()),
        delivery_mode: Some(PERSISTENT_DELIVERY_MODE),
        priority: Some(0),
        correlation_id: Some(id.into()),
        reply_to: Some("c2a1f6e4-3b1d-3e0f-9a8b-7c6d5e4f3a2b".into()),
        headers,
        ..Properties::default()
    };
    delivery(properties, br#"[[2, 2], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]"#)
}

fn deliver(c: &mut Criterion) {
    for (name, message) in [("kombu", kombu_message()), ("celery", celery_message())] {
        let frame = encode_deliver(1, "amq.ctag-0123456789abcdef", &message);
        assert!(decode_server(&frame).is_ok());
        c.bench_function(&format!("decode_server deliver ({name})"), |b| b.iter(|| decode_server(black_box(&frame)).unwrap()));
    }
}

criterion_group!(benches, deliver);
criterion_main!(benches);
