//! Interop with Python kombu (pip `kombu`, see tests/interop/requirements.txt): the same
//! values serialize to the same bytes, each side decodes the other's bodies and compressed
//! data, and messages stored on Redis by one side are consumed by the other.
//!
//! The Python interpreter comes from `KOMBU_PYTHON` (scripts/test.sh creates the venv and
//! sets it). Without it the tests are skipped with a message, except under CI, where they
//! fail. The Redis tests use the local Redis at 127.0.0.1:6379 with unique queue names and
//! delete what they create.
#![cfg(not(target_arch = "wasm32"))]

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine as _;
use bytes::Bytes;
use kombu::envelope::Envelope;
use kombu::serialization::{dumps, loads, Accept};
use kombu::proto::methods::Content;
use kombu::{compression, Payload, Properties};
use serde_json::{json, Value};

fn python() -> Option<String> {
    match std::env::var("KOMBU_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("CI").is_some() => panic!("KOMBU_PYTHON must point at a Python with kombu under CI (scripts/test.sh sets it)"),
        _ => {
            eprintln!("skipping: KOMBU_PYTHON not set (scripts/test.sh sets it)");
            None
        }
    }
}

/// Run operations through tests/interop/codecs.py; returns one result per operation.
fn py(ops: Vec<Value>) -> Option<Vec<Value>> {
    let python = python()?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/codecs.py");
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    child.stdin.take().unwrap().write_all(Value::Array(ops).to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "codecs.py failed: {:?}", out.status);
    let v: Value = serde_json::from_slice(&out.stdout).expect("codecs.py prints JSON");
    let results = v["results"].as_array().unwrap().clone();
    for r in &results {
        assert!(r.get("error").is_none(), "Python side failed: {r}");
    }
    Some(results)
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn unb64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap()
}

fn samples() -> Vec<Value> {
    vec![
        json!({"task": "add", "args": [1, 2], "kwargs": {}, "id": "b2c5c3f0"}),
        json!({"unicode": "héllo wörld ✓ \u{1F600}", "ctrl": "\u{0001}\t\n\"\\", "empty": ""}),
        json!({"floats": [0.1, 1.0, -2.5, 1e100, 1.5e-7, 1e16, 1e15, 123456.789], "ints": [0, -1, 9007199254740993u64, -9223372036854775808i64]}),
        json!([null, true, false, [], {}, [[]], {"a": {"b": {"c": [1, {"d": null}]}}}]),
        json!("just a string"),
        json!(42),
    ]
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("kombu-wasm-interop-{prefix}-{}-{nanos}", std::process::id())
}

#[test]
fn serializers_match_python_bytes_and_decode_each_other() {
    let mut ops = Vec::new();
    for v in samples() {
        for s in ["json", "msgpack", "yaml"] {
            ops.push(json!({"op": "dumps", "serializer": s, "value": v}));
        }
    }
    let Some(results) = py(ops.clone()) else { return };
    let mut loads_ops = Vec::new();
    for (op, r) in ops.iter().zip(&results) {
        let (v, s) = (&op["value"], op["serializer"].as_str().unwrap());
        let ours = dumps(&Payload::Data(v.clone()), Some(s)).unwrap();
        assert_eq!(ours.content_type, r["content_type"].as_str().unwrap(), "{s}");
        assert_eq!(ours.content_encoding, r["content_encoding"].as_str().unwrap(), "{s}");
        let theirs = unb64(&r["body"]);
        if s != "yaml" {
            // json and msgpack are byte-identical; YAML layout may differ, its data may not.
            assert_eq!(std::str::from_utf8(&ours.body).unwrap_or("<binary>"), std::str::from_utf8(&theirs).unwrap_or("<binary>"), "{s}: {v}");
            assert_eq!(&ours.body[..], &theirs[..], "{s}: {v}");
        }
        // We decode Python's bytes...
        let accept = Accept::new([s]).unwrap();
        let back = loads(&theirs, Some(&ours.content_type), Some(&ours.content_encoding), Some(&accept), false).unwrap();
        assert_eq!(back, Payload::Data(v.clone()), "{s}: decoding Python's bytes");
        // ...and Python decodes ours.
        loads_ops.push(json!({"op": "loads", "content_type": ours.content_type, "content_encoding": ours.content_encoding, "body": b64(&ours.body)}));
    }
    let decoded = py(loads_ops).unwrap();
    for (op, r) in ops.iter().zip(&decoded) {
        assert_eq!(r["value"], op["value"], "Python decoding our {}", op["serializer"]);
    }
}

#[test]
fn compression_interoperates_both_ways() {
    let data: Vec<u8> = (0..2000u32).flat_map(|i| format!("{{\"n\": {i}, \"msg\": \"line {i}\"}}\n").into_bytes()).collect();
    let methods = ["zlib", "gzip", "bzip2", "lzma", "xz", "brotli", "zstd"];
    let mut ops = Vec::new();
    for m in methods {
        ops.push(json!({"op": "compress", "method": m, "data": b64(&data)}));
        let (ours, ct) = compression::compress(&data, m).unwrap();
        ops.push(json!({"op": "decompress", "content_type": ct, "data": b64(&ours)}));
    }
    let Some(results) = py(ops) else { return };
    for (i, m) in methods.iter().enumerate() {
        let theirs = &results[2 * i];
        let ct = theirs["content_type"].as_str().unwrap();
        assert_eq!(ct, compression::content_type_of(m).unwrap(), "{m}: content type");
        assert_eq!(compression::decompress(&unb64(&theirs["data"]), ct).unwrap(), data, "{m}: Python → Rust");
        assert_eq!(unb64(&results[2 * i + 1]["data"]), data, "{m}: Rust → Python");
    }
}

#[test]
fn python_stored_redis_messages_decode() {
    let queue = unique("stored");
    let props = json!({"correlation_id": "cid-1", "reply_to": "replies", "message_id": "mid", "type": "t", "app_id": "app", "expiration": 30});
    let ops = vec![
        json!({"op": "redis_stored", "queue": queue, "value": {"hello": "wörld", "n": [1, 2.5]}, "headers": {"h": 1, "s": "x"}, "properties": props}),
        json!({"op": "redis_stored", "queue": format!("{queue}-plain"), "value": {"task": "add"}}),
    ];
    let Some(results) = py(ops) else { return };
    let raw = results[0]["raw"].as_array().unwrap();
    assert_eq!(raw.len(), 1, "{raw:?}");
    let env = Envelope::from_json(raw[0].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!((env.exchange(), env.routing_key()), (format!("{queue}-x").as_str(), "rk"));
    let content = env.content().unwrap();
    let p = &content.properties;
    assert_eq!(p.correlation_id.as_deref(), Some("cid-1"));
    assert_eq!(p.reply_to.as_deref(), Some("replies"));
    assert_eq!(p.message_id.as_deref(), Some("mid"));
    assert_eq!(p.expiration.as_deref(), Some("30000"));
    assert_eq!(p.delivery_mode, Some(2));
    assert_eq!(p.headers.get("s"), Some(&json!("x")));
    let body = loads(&content.body, p.content_type.as_deref(), p.content_encoding.as_deref(), None, false).unwrap();
    assert_eq!(body, Payload::Data(json!({"hello": "wörld", "n": [1, 2.5]})));

    // A message without extra properties re-encodes to Python's exact bytes.
    let raw = results[1]["raw"][0].as_str().unwrap();
    let env = Envelope::from_json(raw.as_bytes()).unwrap();
    let again = Envelope::encode(&env.content().unwrap(), env.exchange(), env.routing_key(), env.delivery_tag().unwrap());
    assert_eq!(again.to_json(), raw);
}

#[test]
fn python_consumes_what_we_store() {
    let queue = unique("consume");
    let mut p = Properties { correlation_id: Some("c-9".into()), reply_to: Some("rq".into()), priority: Some(0), delivery_mode: Some(2), ..Default::default() };
    let enc = dumps(&Payload::Data(json!({"from": "rust", "ok": true, "π": 1.25})), None).unwrap();
    p.content_type = Some(enc.content_type.clone());
    p.content_encoding = Some(enc.content_encoding.clone());
    p.headers.insert("origin".into(), json!("kombu-wasm"));
    let env = Envelope::encode(&Content { properties: p, body: enc.body }, &format!("{queue}-x"), "rk", &kombu::uuid());
    let text = Envelope::encode(
        &Content {
            properties: Properties { content_type: Some("text/plain".into()), content_encoding: Some("utf-8".into()), ..Default::default() },
            body: Bytes::from_static("plain ✓".as_bytes()),
        },
        &format!("{queue}-x"),
        "rk",
        &kombu::uuid(),
    );
    let ops = vec![
        json!({"op": "redis_consume", "queue": queue, "raw": env.to_json()}),
        json!({"op": "redis_consume", "queue": format!("{queue}-t"), "raw": text.to_json()}),
    ];
    let Some(results) = py(ops) else { return };
    let r = &results[0];
    assert_eq!(r["payload"], json!({"from": "rust", "ok": true, "π": 1.25}));
    assert_eq!(r["content_type"], "application/json");
    assert_eq!(r["headers"]["origin"], "kombu-wasm");
    assert_eq!(r["properties"]["correlation_id"], "c-9");
    assert_eq!(r["properties"]["reply_to"], "rq");
    assert_eq!(r["delivery_info"]["routing_key"], "rk");
    assert_eq!(results[1]["payload"], "plain ✓");
}
