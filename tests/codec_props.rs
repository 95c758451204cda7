//! Property tests for the codecs: every serializer, compression method and the envelope
//! round-trip arbitrary data.
#![cfg(not(target_arch = "wasm32"))]

use bytes::Bytes;
use kombu::envelope::Envelope;
use kombu::serialization::{dumps, loads, Accept};
use kombu::proto::methods::Content;
use kombu::{compression, Payload, Properties};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".*".prop_map(Value::String),
        prop_oneof![Just("yes"), Just("no"), Just("1.0"), Just("null"), Just("~"), Just("- x"), Just("a: b"), Just("'q'"), Just("1e5")]
            .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((".{0,8}", inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// JSON values whose text is mostly in `json_from_text`'s one-pass subset (printable ASCII
/// strings with the short escapes, integers of up to 15 digits), with some that are not.
fn plain_json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-999_999_999_999_999i64..=999_999_999_999_999).prop_map(Value::from),
        (-99i64..=99).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(Value::from(0.5)),
        "[ -~\"\\\\\n\r\t\u{8}\u{c}]{0,12}".prop_map(Value::String),
        "[ -~\u{1}\u{7f}é]{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[ -~\"\\\\\n]{0,8}", inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The same as the next test for text mostly in the one-pass subset.
    #[test]
    fn json_from_text_of_plain_text_is_dumps_of_the_parsed_value(v in plain_json_value()) {
        let text = serde_json::to_string(&v).unwrap();
        let direct = kombu::serialization::json_from_text(&text, None).expect("json is the default").unwrap();
        let parsed = dumps(&Payload::Data(serde_json::from_str(&text).unwrap()), None).unwrap();
        prop_assert_eq!(direct, parsed);
    }

    #[test]
    fn serializers_round_trip(v in json_value()) {
        for s in ["json", "msgpack", "yaml"] {
            let e = dumps(&Payload::Data(v.clone()), Some(s)).unwrap();
            let back = loads(&e.body, Some(&e.content_type), Some(&e.content_encoding), Some(&Accept::new([s]).unwrap()), false).unwrap();
            prop_assert_eq!(&back, &Payload::Data(v.clone()), "{}: {}", s, String::from_utf8_lossy(&e.body));
        }
    }

    /// JSON text (as JavaScript's JSON.stringify writes it) straight to Python-style bytes:
    /// the same bytes as parsing it and serializing the value.
    #[test]
    fn json_from_text_is_dumps_of_the_parsed_value(v in json_value()) {
        let text = serde_json::to_string(&v).unwrap();
        let direct = kombu::serialization::json_from_text(&text, None).expect("json is the default").unwrap();
        let parsed = dumps(&Payload::Data(serde_json::from_str(&text).unwrap()), None).unwrap();
        prop_assert_eq!(direct, parsed);
    }

    /// Serialize values written straight (Producer::publish_typed) give the bytes of their
    /// JSON value, and decode straight back (Message::payload_as) to what loads gives.
    #[test]
    fn typed_json_is_the_json_of_the_value(v in json_value()) {
        let direct = kombu::serialization::dumps_as(&v, None).unwrap();
        let via_value = dumps(&Payload::Data(v.clone()), None).unwrap();
        prop_assert_eq!(&direct, &via_value);
        let back: Value = kombu::serialization::loads_as(&direct.body, Some(&direct.content_type), Some(&direct.content_encoding), None).unwrap();
        prop_assert_eq!(back, v);
    }

    #[test]
    fn text_and_bytes_pass_through(s in ".*", b in prop::collection::vec(any::<u8>(), 0..256)) {
        let e = dumps(&Payload::Text(s.clone()), None).unwrap();
        prop_assert_eq!(loads(&e.body, Some(&e.content_type), Some(&e.content_encoding), None, false).unwrap(), Payload::Text(s));
        let e = dumps(&Payload::Bytes(Bytes::from(b.clone())), None).unwrap();
        prop_assert_eq!(loads(&e.body, Some(&e.content_type), Some(&e.content_encoding), None, false).unwrap(), Payload::Bytes(Bytes::from(b)));
    }

    #[test]
    fn compression_round_trips(data in prop::collection::vec(any::<u8>(), 0..4096)) {
        for m in ["zlib", "bzip2", "lzma", "brotli", "zstd"] {
            let (c, ct) = compression::compress(&data, m).unwrap();
            prop_assert_eq!(compression::decompress(&c, &ct).unwrap(), data.clone(), "{}", m);
        }
    }

    #[test]
    fn decompressing_garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..512)) {
        for m in ["zlib", "bzip2", "lzma", "brotli", "zstd"] {
            let _ = compression::decompress(&data, m);
        }
    }

    #[test]
    fn envelope_round_trips(body in prop::collection::vec(any::<u8>(), 0..512), cid in proptest::option::of("[a-z0-9-]{1,20}"),
                            prio in 0u8..10, rk in ".{0,20}", h in json_value()) {
        let mut p = Properties { correlation_id: cid, priority: Some(prio), content_type: Some("application/x-test".into()), ..Default::default() };
        p.headers.insert("h".into(), h);
        let c = Content { properties: p, body: Bytes::from(body) };
        let e = Envelope::encode(&c, "ex", &rk, "tag");
        let back = Envelope::from_json(e.to_json().as_bytes()).unwrap();
        prop_assert_eq!(back.routing_key(), rk.as_str());
        let bc = back.content().unwrap();
        prop_assert_eq!(bc.body, c.body);
        prop_assert_eq!(bc.properties.correlation_id, c.properties.correlation_id);
        prop_assert_eq!(bc.properties.priority, Some(prio));
        prop_assert_eq!(bc.properties.headers, c.properties.headers);
    }

    #[test]
    fn envelope_parser_never_panics(raw in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(e) = Envelope::from_json(&raw) {
            let _ = e.content();
        }
    }
}
