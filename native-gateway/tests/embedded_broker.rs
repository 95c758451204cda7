//! The gateway binary on its embedded broker, as an operator runs it.
//!
//! `--data-dir`: killed with SIGKILL and restarted on the same directory, it keeps exactly what
//! it confirmed — durable exchanges, queues, bindings, and persistent messages in durable
//! queues — and nothing RabbitMQ would not keep (transient messages, non-durable queues), and
//! acknowledged messages do not come back.
//!
//! `--memory-high-watermark`, `--max-queues`/`--max-exchanges`/`--max-bindings`: publishes
//! and declarations past them are refused with a reason.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use kombu::proto::gateway::{self, SUBPROTOCOL};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;

mod support;
use support::GatewayProcess;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The binary on its embedded broker, keeping it in `dir`.
fn start(dir: &Path) -> GatewayProcess {
    GatewayProcess::start(&["--data-dir", dir.to_str().expect("a UTF-8 temporary directory")])
}

/// A raw `kombu-gateway.v1` client: requests with ids, pushes collected as they come.
struct Client {
    ws: Ws,
    next_id: u64,
    /// Confirmed (acked) publish sequence numbers.
    acked: BTreeSet<u64>,
    nacked: u64,
    /// Deliveries (header, body) not yet taken.
    delivered: Vec<(Value, Vec<u8>)>,
    /// Errors pushed (a channel or the connection closed by the broker).
    errors: Vec<Value>,
}

impl Client {
    async fn connect(g: &GatewayProcess) -> Client {
        let mut req = format!("ws://{}/gateway", g.addr).into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(SUBPROTOCOL));
        let ws = tokio_tungstenite::connect_async(req).await.unwrap().0;
        let mut c = Client { ws, next_id: 0, acked: BTreeSet::new(), nacked: 0, delivered: Vec::new(), errors: Vec::new() };
        c.call(json!({"op": "hello", "vhost": "/"}), b"").await;
        c
    }

    async fn send(&mut self, mut header: Value, body: &[u8]) -> u64 {
        self.next_id += 1;
        header["id"] = json!(self.next_id);
        self.ws.send(WsMessage::Binary(gateway::encode(&header, body))).await.unwrap();
        self.next_id
    }

    /// Read one WebSocket message's frames; pushes are recorded, answers returned.
    async fn read(&mut self) -> Vec<(Value, Vec<u8>)> {
        let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await.expect("the gateway answers");
        let Some(Ok(WsMessage::Binary(data))) = msg else { panic!("unexpected {msg:?}") };
        let mut answers = Vec::new();
        for f in gateway::split_batch(&data).unwrap() {
            let (h, body): (Value, _) = gateway::decode(&f).unwrap();
            match h["op"].as_str() {
                Some("confirm") => {
                    let tag = h["delivery_tag"].as_u64().unwrap();
                    assert!(!h["multiple"].as_bool().unwrap(), "the embedded broker confirms one by one");
                    if h["ack"].as_bool().unwrap() {
                        self.acked.insert(tag);
                    } else {
                        self.nacked += 1;
                    }
                }
                Some("error") if h.get("id").is_none() => self.errors.push(h),
                Some("deliver") => self.delivered.push((h, body.to_vec())),
                _ => answers.push((h, body.to_vec())),
            }
        }
        answers
    }

    /// A request's answer, or the name of its error.
    async fn try_call(&mut self, header: Value, body: &[u8]) -> Result<(Value, Vec<u8>), String> {
        let id = self.send(header, body).await;
        loop {
            for (h, b) in self.read().await {
                if h["id"].as_u64() == Some(id) {
                    if h["op"] == "error" {
                        return Err(h["name"].as_str().unwrap().to_string());
                    }
                    return Ok((h, b));
                }
            }
        }
    }

    async fn call(&mut self, header: Value, body: &[u8]) -> (Value, Vec<u8>) {
        let what = header.to_string();
        self.try_call(header, body).await.unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    async fn channel(&mut self) -> u64 {
        self.call(json!({"op": "channel.open"}), b"").await.0["result"]["channel"].as_u64().unwrap()
    }

    async fn publish(&mut self, ch: u64, exchange: &str, key: &str, body: &str, persistent: bool) -> u64 {
        let props = if persistent { json!({"delivery_mode": 2}) } else { json!({"delivery_mode": 1}) };
        self.send(json!({"op": "basic.publish", "channel": ch, "method": {"exchange": exchange, "routing_key": key}, "properties": props}), body.as_bytes()).await
    }

    /// Passive declare: the queue's depth, or the error's name.
    async fn depth(&mut self, ch: u64, queue: &str) -> Result<u64, String> {
        let (h, _) = self.try_call(json!({"op": "queue.declare", "channel": ch, "method": {"queue": queue, "passive": true}}), b"").await?;
        Ok(h["result"]["message_count"].as_u64().unwrap())
    }

    /// Every message of `queue`, consumed and acknowledged a batch at a time (`multiple`,
    /// one transaction per batch), within the gateway's unacked window.
    async fn drain(&mut self, ch: u64, queue: &str) -> Vec<String> {
        let n = self.depth(ch, queue).await.unwrap() as usize;
        let (h, _) = self.call(json!({"op": "basic.consume", "channel": ch, "method": {"queue": queue, "consumer_tag": "drain"}}), b"").await;
        assert_eq!(h["result"]["consumer_tag"], "drain");
        let mut out = Vec::new();
        let (mut last, mut acked) = (0, 0);
        while out.len() < n {
            if self.delivered.is_empty() {
                self.read().await;
            }
            for (h, body) in std::mem::take(&mut self.delivered) {
                out.push(String::from_utf8(body).unwrap());
                last = h["message"]["delivery_tag"].as_u64().unwrap();
            }
            if last > acked {
                self.send(json!({"op": "basic.ack", "channel": ch, "delivery_tag": last, "multiple": true}), b"").await;
                acked = last;
            }
        }
        self.call(json!({"op": "basic.cancel", "channel": ch, "consumer_tag": "drain"}), b"").await;
        out
    }
}

fn data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("kombu-gateway-data-{}", kombu::uuid()))
}

async fn declare_topology(c: &mut Client, ch: u64) {
    c.call(json!({"op": "exchange.declare", "channel": ch, "method": {"exchange": "orders", "type": "direct", "durable": true}}), b"").await;
    c.call(json!({"op": "exchange.declare", "channel": ch, "method": {"exchange": "scratch-x", "type": "fanout"}}), b"").await;
    c.call(json!({"op": "queue.declare", "channel": ch, "method": {"queue": "kept", "durable": true}}), b"").await;
    c.call(json!({"op": "queue.declare", "channel": ch, "method": {"queue": "scratch", "durable": false}}), b"").await;
    for q in ["kept", "scratch"] {
        c.call(json!({"op": "queue.bind", "channel": ch, "method": {"queue": q, "exchange": "orders", "routing_key": "new"}}), b"").await;
    }
    c.call(json!({"op": "confirm.select", "channel": ch}), b"").await;
}

#[tokio::test]
async fn kill_9_keeps_exactly_what_was_confirmed_and_not_what_was_acked() {
    let dir = data_dir();
    let mut g = start(&dir);
    let mut c = Client::connect(&g).await;
    let ch = c.channel().await;
    declare_topology(&mut c, ch).await;
    // 100 persistent messages and 50 transient ones, all confirmed before the kill.
    let t0 = std::time::Instant::now();
    let mut published = 0;
    for i in 0..100 {
        c.publish(ch, "orders", "new", &format!("p{i}"), true).await;
        published += 1;
        if i % 2 == 0 {
            c.publish(ch, "orders", "new", &format!("t{i}"), false).await;
            published += 1;
        }
    }
    while c.acked.len() < published {
        c.read().await;
    }
    assert_eq!(c.nacked, 0);
    eprintln!("{published} publishes confirmed in {:?} (100 written to disk)", t0.elapsed());
    g.kill();

    let mut g = start(&dir);
    let mut c = Client::connect(&g).await;
    let ch = c.channel().await;
    assert_eq!(c.depth(ch, "kept").await, Ok(100), "every confirmed persistent message, and only those");
    assert_eq!(c.depth(ch, "scratch").await, Err("NotFound".into()), "a non-durable queue does not survive");
    let ch = c.channel().await;
    let err = c.try_call(json!({"op": "exchange.declare", "channel": ch, "method": {"exchange": "scratch-x", "type": "fanout", "passive": true}}), b"").await;
    assert_eq!(err.unwrap_err(), "NotFound", "a non-durable exchange does not survive");
    let ch = c.channel().await;
    c.call(json!({"op": "exchange.declare", "channel": ch, "method": {"exchange": "orders", "type": "direct", "durable": true, "passive": true}}), b"").await;
    // Take 30 with acks and leave 10 delivered but unacknowledged, then kill again.
    let mut taken = Vec::new();
    for _ in 0..30 {
        let (h, body) = c.call(json!({"op": "basic.get", "channel": ch, "queue": "kept", "no_ack": false}), b"").await;
        assert_eq!(h["op"], "get-ok", "{h}");
        assert!(h["message"]["redelivered"].as_bool().unwrap(), "recovered messages are marked redelivered");
        c.send(json!({"op": "basic.ack", "channel": ch, "delivery_tag": h["message"]["delivery_tag"], "multiple": false}), b"").await;
        taken.push(String::from_utf8(body).unwrap());
    }
    assert_eq!(taken, (0..30).map(|i| format!("p{i}")).collect::<Vec<_>>(), "in publish order");
    for _ in 0..10 {
        let (h, _) = c.call(json!({"op": "basic.get", "channel": ch, "queue": "kept", "no_ack": false}), b"").await;
        assert_eq!(h["op"], "get-ok", "{h}");
    }
    assert_eq!(c.depth(ch, "kept").await, Ok(60));
    // Acks are kept at the next commit; a confirm that comes after them says they are.
    let pc = c.channel().await;
    c.call(json!({"op": "confirm.select", "channel": pc}), b"").await;
    c.acked.clear();
    c.publish(pc, "", "no-such-queue", "barrier", false).await;
    while c.acked.is_empty() {
        c.read().await;
    }
    g.kill();

    let g = start(&dir);
    let mut c = Client::connect(&g).await;
    let ch = c.channel().await;
    let left = c.drain(ch, "kept").await;
    assert_eq!(left, (30..100).map(|i| format!("p{i}")).collect::<Vec<_>>(), "acked messages do not come back; unacked ones do");
    // The binding survived too.
    c.call(json!({"op": "confirm.select", "channel": ch}), b"").await;
    c.publish(ch, "orders", "new", "after", true).await;
    while c.acked.is_empty() {
        c.read().await;
    }
    assert_eq!(c.drain(ch, "kept").await, ["after"]);
    drop(c);
    drop(g);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn kill_9_mid_stream_loses_no_confirmed_message() {
    let dir = data_dir();
    let mut g = start(&dir);
    let mut c = Client::connect(&g).await;
    let ch = c.channel().await;
    declare_topology(&mut c, ch).await;
    // Publish without waiting; kill the gateway once 100 confirms are in, while the rest are
    // still on their way.
    const SENT: u64 = 3000;
    let (mut ws_tx, mut ws_rx) = c.ws.split();
    let writer = tokio::spawn(async move {
        for i in 1..=SENT {
            let header = json!({"id": i + 100, "op": "basic.publish", "channel": ch, "method": {"exchange": "orders", "routing_key": "new"}, "properties": {"delivery_mode": 2}});
            if ws_tx.send(WsMessage::Binary(gateway::encode(&header, format!("m{i}").as_bytes()))).await.is_err() {
                return i - 1;
            }
        }
        SENT
    });
    let mut acked = BTreeSet::new();
    while acked.len() < 100 {
        let Some(Ok(WsMessage::Binary(data))) = ws_rx.next().await else { panic!("the gateway went away") };
        for f in gateway::split_batch(&data).unwrap() {
            let (h, _): (Value, _) = gateway::decode(&f).unwrap();
            if h["op"] == "confirm" {
                assert!(h["ack"].as_bool().unwrap(), "{h}");
                acked.insert(h["delivery_tag"].as_u64().unwrap());
            }
        }
    }
    g.kill();
    let sent = writer.await.unwrap();
    assert!((acked.len() as u64) < sent || sent == SENT, "mid-stream");

    let g = start(&dir);
    let mut c = Client::connect(&g).await;
    let ch = c.channel().await;
    let kept = c.drain(ch, "kept").await;
    let kept_set: BTreeSet<&str> = kept.iter().map(String::as_str).collect();
    assert_eq!(kept_set.len(), kept.len(), "no duplicates");
    // Confirm n is the n-th publish of the channel (the declarations came before confirm.select).
    for n in &acked {
        assert!(kept_set.contains(format!("m{n}").as_str()), "confirmed m{n} is lost ({} kept, {} confirmed)", kept.len(), acked.len());
    }
    assert!(kept.len() >= acked.len() && kept.len() as u64 <= sent, "{} kept, {} confirmed, {sent} sent", kept.len(), acked.len());
    // In publish order: what was kept is a prefix of what was sent.
    assert_eq!(kept, (1..=kept.len()).map(|i| format!("m{i}")).collect::<Vec<_>>());
    eprintln!("mid-stream kill: {} confirmed before the kill, {} kept, {sent} sent", acked.len(), kept.len());
    drop(c);
    drop(g);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What `--data-dir` is for: without it the embedded broker keeps nothing across a crash,
/// not even confirmed persistent messages in a durable queue (as documented).
#[tokio::test]
async fn without_a_data_dir_kill_9_loses_everything() {
    let mut g = GatewayProcess::start(&[]);
    let mut c = Client::connect(&g).await;
    let ch = c.channel().await;
    declare_topology(&mut c, ch).await;
    for i in 0..10 {
        c.publish(ch, "orders", "new", &format!("p{i}"), true).await;
    }
    while c.acked.len() < 10 {
        c.read().await;
    }
    assert_eq!(c.depth(ch, "kept").await, Ok(10));
    g.kill();
    let g = GatewayProcess::start(&[]);
    let mut c = Client::connect(&g).await;
    let ch = c.channel().await;
    assert_eq!(c.depth(ch, "kept").await, Err("NotFound".into()), "a durable queue without --data-dir came back");
}

#[test]
fn data_dir_is_refused_with_another_broker() {
    let out = Command::new(env!("CARGO_BIN_EXE_kombu-gateway"))
        .args(["--listen", "127.0.0.1:0", "--broker", "amqp://guest:guest@127.0.0.1:5672//", "--data-dir"])
        .arg(data_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--data-dir keeps the embedded memory:// broker's state"), "{err}");
}

#[test]
fn a_data_dir_in_use_is_refused() {
    let dir = data_dir();
    let g = start(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_kombu-gateway")).args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broker.redb"), "{err}");
    drop(g);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn publishes_over_the_memory_high_watermark_and_declarations_past_the_caps_are_refused() {
    let g = GatewayProcess::start(&["--memory-high-watermark", "10000", "--max-queues", "2", "--max-exchanges", "1", "--max-bindings", "1"]);
    let mut c = Client::connect(&g).await;
    let ch = c.channel().await;
    c.call(json!({"op": "queue.declare", "channel": ch, "method": {"queue": "full"}}), b"").await;
    c.call(json!({"op": "confirm.select", "channel": ch}), b"").await;
    let body = "x".repeat(1000);
    for _ in 0..12 {
        c.publish(ch, "", "full", &body, false).await;
    }
    while c.acked.len() as u64 + c.nacked < 12 {
        c.read().await;
    }
    // 10 fill the queues to the watermark; the next ones are refused.
    assert_eq!((c.acked.len(), c.nacked), (10, 2));
    assert_eq!(c.depth(ch, "full").await, Ok(10));
    // Without confirms, the channel is closed with the reason.
    let plain = c.channel().await;
    let id = c.publish(plain, "", "full", &body, false).await;
    let err = 'answer: loop {
        for (h, _) in c.read().await {
            if h["id"].as_u64() == Some(id) {
                break 'answer h;
            }
        }
    };
    assert_eq!((&err["op"], &err["scope"], &err["name"]), (&json!("error"), &json!("channel"), &json!("ResourceError")), "{err}");
    assert!(err["text"].as_str().unwrap().contains("memory high watermark reached"), "{err}");
    // Consuming brings the broker under the watermark: publishes are accepted again.
    assert_eq!(c.drain(ch, "full").await.len(), 10);
    c.publish(ch, "", "full", &body, false).await;
    while c.acked.len() < 11 {
        c.read().await;
    }
    // Caps on declarations.
    c.call(json!({"op": "queue.declare", "channel": ch, "method": {"queue": "second"}}), b"").await;
    let err = c.try_call(json!({"op": "queue.declare", "channel": ch, "method": {"queue": "third"}}), b"").await;
    assert_eq!(err.unwrap_err(), "PreconditionFailed");
    let ch = c.channel().await;
    c.call(json!({"op": "exchange.declare", "channel": ch, "method": {"exchange": "x1", "type": "direct"}}), b"").await;
    let err = c.try_call(json!({"op": "exchange.declare", "channel": ch, "method": {"exchange": "x2", "type": "direct"}}), b"").await;
    assert_eq!(err.unwrap_err(), "PreconditionFailed");
    let ch = c.channel().await;
    c.call(json!({"op": "queue.bind", "channel": ch, "method": {"queue": "full", "exchange": "x1", "routing_key": "a"}}), b"").await;
    let err = c.try_call(json!({"op": "queue.bind", "channel": ch, "method": {"queue": "second", "exchange": "x1", "routing_key": "a"}}), b"").await;
    assert_eq!(err.unwrap_err(), "PreconditionFailed");
}

#[test]
fn limits_are_refused_with_another_broker() {
    let out = Command::new(env!("CARGO_BIN_EXE_kombu-gateway"))
        .args(["--listen", "127.0.0.1:0", "--broker", "amqp://guest:guest@127.0.0.1:5672//", "--max-queues", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("limit the embedded memory:// broker"), "{err}");
}
