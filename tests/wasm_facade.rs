//! The JavaScript facade (src/wasm) exercised from wasm-bindgen-test, in Node and in headless
//! Chromium: options parsed from JS objects, bodies, promises, and errors as named JS Errors.
#![cfg(all(target_arch = "wasm32", feature = "facade"))]

use js_sys::{Array, Object, Promise, Reflect};
use kombu::wasm::{check_exchange, check_queue, JsConnection, JsMessage};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

fn obj(json: &str) -> JsValue {
    js_sys::JSON::parse(json).unwrap()
}

fn name(err: &JsValue) -> String {
    Reflect::get(err, &"name".into()).unwrap().as_string().unwrap()
}

fn msg(err: &JsValue) -> String {
    Reflect::get(err, &"message".into()).unwrap().as_string().unwrap()
}

async fn wait(p: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(p).await
}

fn url() -> JsValue {
    format!("memory:///facade-{}", kombu::uuid()).into()
}

#[wasm_bindgen_test]
fn options_are_checked_and_errors_are_named() {
    let e = check_exchange(obj(r#"{"name": "x", "tpye": "topic"}"#)).unwrap_err();
    assert_eq!(name(&e), "ValueError");
    assert!(msg(&e).contains("tpye"), "{}", msg(&e));
    let e = check_queue(obj(r#"{"name": "q", "durable": "yes"}"#)).unwrap_err();
    assert!(msg(&e).contains("`durable`"), "{}", msg(&e));
    assert!(check_queue(obj(r#"{"name": "q", "exchange": {"name": "x", "type": "topic"}, "routingKey": "a.*"}"#)).is_ok());
    let e = JsConnection::new("memroy://".into(), JsValue::UNDEFINED).err().unwrap();
    assert_eq!(name(&e), "UnknownTransport");
    let e = JsConnection::new("amqp://u:secret@h:99999//".into(), JsValue::UNDEFINED).err().unwrap();
    assert_eq!(name(&e), "InvalidURL");
    assert!(!msg(&e).contains("secret"));
    let e = JsConnection::new(url(), obj(r#"{"heartbeet": 1}"#)).err().unwrap();
    assert!(msg(&e).contains("heartbeet"), "{}", msg(&e));
    // An option's value is refused under the name JS gave it, not Kombu's snake_case.
    let e = JsConnection::new(url(), obj(r#"{"failoverStrategy": "random"}"#)).err().unwrap();
    assert_eq!(name(&e), "ValueError");
    assert!(msg(&e).contains("`failoverStrategy` must be one of \"round-robin\", \"shuffle\", not \"random\""), "{}", msg(&e));
    // A URL that is not a string is refused by name (wasm-bindgen would trust a String).
    let e = JsConnection::new(JsValue::TRUE, JsValue::UNDEFINED).err().unwrap();
    assert_eq!(name(&e), "ValueError");
    assert!(msg(&e).contains("URL must be a string, not boolean"), "{}", msg(&e));
    assert!(JsConnection::new(JsValue::UNDEFINED, JsValue::UNDEFINED).is_ok(), "undefined means memory://");
}

#[wasm_bindgen_test]
fn declarations_are_the_entities_fields() {
    // camelCase names, an exchange by name or as a spec, every binding with an exchange.
    assert!(check_queue(obj(r#"{"name": "q", "exchange": "x", "messageTtl": 1.5, "bindings": [{"exchange": {"name": "t", "type": "topic"}, "routingKey": "a.*"}]}"#)).is_ok());
    let e = check_queue(obj(r#"{"name": "q", "bindings": [{"routingKey": "k"}]}"#)).unwrap_err();
    assert_eq!(name(&e), "ValueError");
    assert!(msg(&e).contains("needs an exchange"), "{}", msg(&e));
    let e = check_queue(obj(r#"{"name": "q", "exchange": {"name": "x", "autoDelete": "no"}}"#)).unwrap_err();
    assert!(msg(&e).contains("`exchange`"), "{}", msg(&e));
    let e = check_exchange(obj(r#"{"name": "x", "deliveryMode": 7}"#)).unwrap_err();
    assert!(msg(&e).contains("`deliveryMode`"), "{}", msg(&e));
    // Kombu's snake_case names are declarations' too; a misspelt one lists the right ones.
    assert!(check_queue(obj(r#"{"name": "q", "auto_delete": true, "message_ttl": 2, "max_priority": 9}"#)).is_ok());
    let e = check_queue(obj(r#"{"name": "q", "messageTTL": 2}"#)).unwrap_err();
    assert!(msg(&e).contains("unknown option `messageTTL`") && msg(&e).contains("messageTtl"), "{}", msg(&e));
    let e = check_queue(obj(r#"{"name": "q", "maxPriority": 256}"#)).unwrap_err();
    assert!(msg(&e).contains("`maxPriority` must be an integer from 0 to 255, not 256"), "{}", msg(&e));
    let e = check_queue(obj(r#"{"name": "q", "bindings": [{"exchange": "x", "routingkey": "k"}]}"#)).unwrap_err();
    assert!(msg(&e).contains("`bindings[0]`") && msg(&e).contains("routingkey"), "{}", msg(&e));
    let e = check_exchange(obj(r#"["x"]"#)).unwrap_err();
    assert_eq!(name(&e), "ValueError");
}

#[wasm_bindgen_test]
fn options_of_the_classes_name_the_culprit() {
    let conn = JsConnection::new(url(), obj(r#"{"connectTimeout": 2, "reconnect": {"intervalStart": 0.5, "maxRetries": 3}}"#)).unwrap();
    let e = JsConnection::new(url(), obj(r#"{"reconnect": {"maxRetries": -1}}"#)).err().unwrap();
    assert!(msg(&e).contains("`reconnect`") && msg(&e).contains("`maxRetries`"), "{}", msg(&e));
    let e = JsConnection::new(url(), obj(r#"{"alternates": [1]}"#)).err().unwrap();
    assert!(msg(&e).contains("`alternates` must be an array of strings"), "{}", msg(&e));
    let e = conn.consumer(JsValue::UNDEFINED, obj(r#"{"prefetchCount": 70000}"#)).err().unwrap();
    assert!(msg(&e).contains("`prefetchCount` must be an integer from 0 to 65535"), "{}", msg(&e));
    let e = conn.consumer(obj(r#"[{"name": "q", "durable": 1}]"#), JsValue::UNDEFINED).err().unwrap();
    assert!(msg(&e).contains("queues[0]") && msg(&e).contains("`durable`"), "{}", msg(&e));
    let e = conn.producer(obj(r#"{"exchange": 5}"#)).err().unwrap();
    assert!(msg(&e).contains("`exchange` must be an exchange or an exchange name"), "{}", msg(&e));
    let producer = conn.producer(JsValue::UNDEFINED).unwrap();
    let e = producer.publish_json("1", obj(r#"{"declare": [{"queue": {"name": "q"}, "exchange": {"name": "x"}}]}"#)).err().unwrap();
    assert!(msg(&e).contains("`declare[0]`"), "{}", msg(&e));
    let e = producer.publish_json("1", JsValue::from_str(r#"{"priority": "high"}"#)).err().unwrap();
    assert!(msg(&e).contains("`priority`"), "{}", msg(&e));
}

#[wasm_bindgen_test]
async fn publish_consume_ack_through_the_facade() {
    let conn = JsConnection::new(url(), JsValue::UNDEFINED).unwrap();
    let producer = conn.producer(obj(r#"{"serializer": "json"}"#)).unwrap();
    let opts = obj(r#"{"routingKey": "q", "declare": [{"queue": {"name": "q"}}], "headers": {"h": 1}}"#);
    wait(producer.publish_json(r#"{"n": [1, 2.5, "x"]}"#, opts).unwrap()).await.unwrap();
    let bytes = js_sys::Uint8Array::from(&[0u8, 255][..]);
    wait(producer.publish(bytes.into(), obj(r#"{"routingKey": "q", "contentType": "image/png"}"#)).unwrap()).await.unwrap();
    let queues = Array::of1(&obj(r#"{"name": "q"}"#));
    let consumer = conn.consumer(queues.into(), obj(r#"{"prefetchCount": 10}"#)).unwrap();
    let m: JsMessage = consumer.next_message(Some(1000.0)).await.unwrap();
    assert_eq!(js_sys::JSON::stringify(&m.payload().unwrap()).unwrap(), r#"{"n":[1,2.5,"x"]}"#);
    assert_eq!(Reflect::get(&m.headers().unwrap(), &"h".into()).unwrap(), JsValue::from(1));
    m.ack(None).unwrap();
    let e = m.ack(None).unwrap_err();
    assert_eq!(name(&e), "MessageStateError");
    let raw: JsMessage = consumer.next_message(Some(1000.0)).await.unwrap();
    assert_eq!(raw.content_type().as_deref(), Some("image/png"));
    assert_eq!(raw.body().to_vec(), vec![0u8, 255]);
    raw.ack(None).unwrap();
    let e = wait(consumer.next(Some(20.0)).unwrap()).await.unwrap_err();
    assert_eq!(name(&e), "TimeoutError");
    let e = producer.publish(JsValue::UNDEFINED, JsValue::UNDEFINED).err().unwrap();
    assert_eq!(name(&e), "EncodeError");
    let e = producer.publish_json("{}", obj(r#"{"serializer": "bson"}"#)).unwrap();
    assert_eq!(name(&wait(e).await.unwrap_err()), "SerializerNotInstalled");
    wait(conn.release()).await.unwrap();
    let _ = Object::new();
}
