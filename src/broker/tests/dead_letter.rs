//! Dead-lettering of rejected and overflowing messages (expired ones: `time.rs`).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

#[test]
fn reject_dead_letters_with_routing_key_override() {
    let mut t = T::new();
    let c = t.conn();
    t.exchange(c, "dlx", ExchangeType::Direct);
    t.queue(c, "dead", Headers::new());
    t.bind(c, "dead", "dlx", "failed");
    t.queue(c, "work", headers([("x-dead-letter-exchange", "dlx"), ("x-dead-letter-routing-key", "failed")]));
    t.publish(c, "", "work", "bad", p()).unwrap();
    let (tag, ..) = t.get(c, "work").unwrap();
    t.b.basic_reject(c.0, c.1, tag, false).unwrap();
    let m = t.get(c, "dead").unwrap();
    assert_eq!(m.1, "bad");
    assert_eq!(m.2.headers["x-death"][0]["reason"], "rejected");
    assert_eq!(m.2.headers["x-death"][0]["routing-keys"][0], "work");
}

#[test]
fn reject_publish_dlx_counts_a_refused_message_once() {
    let mut t = T::new();
    let c = t.conn();
    t.exchange(c, "dlx", ExchangeType::Fanout);
    t.queue(c, "dead", Headers::new());
    t.bind(c, "dead", "dlx", "");
    t.queue(c, "rp", headers([("x-max-length", serde_json::json!(1)), ("x-overflow", serde_json::json!("reject-publish-dlx")), ("x-dead-letter-exchange", serde_json::json!("dlx"))]));
    t.publish(c, "", "rp", "a", p()).unwrap();
    t.publish(c, "", "rp", "b", p()).unwrap();
    let snap = t.b.snapshot("/").unwrap();
    let q = snap.queues.iter().find(|q| q.name == "rp").unwrap();
    assert_eq!((q.published, q.dropped, q.dead_lettered), (1, 1, 1));
    assert_eq!(t.bodies(c, "dead"), vec!["b"]);
}
