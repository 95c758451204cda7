//! The gateway over real sockets: a server on port 0 with the embedded memory:// broker and
//! Kombu API clients connecting with `gateway+ws://` URLs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use kombu::proto::gateway::{self, ClientHeader, Request, SUBPROTOCOL};
use kombu::{Connection, Exchange, Message, Payload, PublishOptions, Queue};
use kombu_gateway::server::{self, Config, Running};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;

async fn start(max_frame: Option<usize>) -> Running {
    kombu_gateway::register_transports();
    let mut cfg = Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
    if let Some(m) = max_frame {
        cfg.max_frame = m;
    }
    server::start(cfg).await.unwrap()
}

fn url(g: &Running) -> String {
    format!("gateway+ws://{}/gateway?vhost=/gw-{}", g.addr, kombu::uuid())
}

const SECOND: Option<Duration> = Some(Duration::from_secs(2));

#[tokio::test]
async fn quick_overview_through_the_gateway() {
    let g = start(None).await;
    let conn = Connection::new(&url(&g)).unwrap();
    let media = Exchange::direct("media");
    let video = Queue::new("video").exchange(media.clone()).routing_key("video");
    let producer = conn.producer().await.unwrap();
    producer
        .publish(json!({"name": "/tmp/lolcat1.avi", "size": 1301013}), PublishOptions::new().exchange(&media).routing_key("video").declare(&video))
        .await
        .unwrap();
    let consumer = conn.consumer(vec![video.clone()]).await.unwrap();
    let m = consumer.next_message(SECOND).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Data(json!({"name": "/tmp/lolcat1.avi", "size": 1301013})));
    assert_eq!(m.delivery_info().routing_key, "video");
    m.ack().unwrap();
    // queue.declare answers counts; basic.get works; errors keep their names
    let q = conn.simple_queue("simple").await.unwrap();
    q.put(vec![0u8, 255, 1], PublishOptions::new().content_type("application/octet-stream").content_encoding("binary")).await.unwrap();
    let got = q.get(true, SECOND).await.unwrap();
    assert_eq!(&got.body()[..], &[0u8, 255, 1]);
    got.ack().unwrap();
    let ch = conn.default_channel().await.unwrap();
    let mut missing = Queue::new("does-not-exist").bind(&ch);
    let err = missing.queue_declare(false, true).await.unwrap_err();
    assert_eq!(err.name(), "NotFound", "{err}");
    // The channel error closed the default channel (and the SimpleQueue's consumer on it, as
    // in Kombu); the default channel reopens for the next operation.
    conn.producer().await.unwrap().publish("after error", PublishOptions::new().routing_key("simple")).await.unwrap();
    let again = Queue::new("simple").bind(&conn.default_channel().await.unwrap());
    let m = again.get(Some(false), None).await.unwrap().expect("a message");
    assert_eq!(m.payload().unwrap(), Payload::Text("after error".into()));
    m.ack().unwrap();
    conn.release().await.unwrap();
    let metrics = g.metrics.render();
    assert!(metrics.contains("kombu_gateway_published_total 3"), "{metrics}");
    g.shutdown().await;
}

#[tokio::test]
async fn two_clients_exchange_messages_through_fanout_topic_and_direct() {
    let g = start(None).await;
    let u = url(&g);
    let a = Connection::new(&u).unwrap();
    let b = Connection::new(&u).unwrap();
    let news = Exchange::fanout("news");
    let logs = Exchange::topic("logs");
    let qa = Queue::new("a.news").exchange(news.clone());
    let qb = Queue::new("b.news").exchange(news.clone());
    let errors = Queue::new("b.errors").exchange(logs.clone()).routing_key("*.error");
    let ca = a.consumer(vec![qa.clone()]).await.unwrap();
    let cb = b.consumer(vec![qb.clone(), errors.clone()]).await.unwrap();
    ca.consume().await.unwrap();
    cb.consume().await.unwrap();
    let pa = a.producer().await.unwrap();
    pa.publish("hello all", PublishOptions::new().exchange(&news)).await.unwrap();
    pa.publish("disk full", PublishOptions::new().exchange(&logs).routing_key("db.error")).await.unwrap();
    pa.publish("fine", PublishOptions::new().exchange(&logs).routing_key("db.info")).await.unwrap();
    let m = ca.next_message(SECOND).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Text("hello all".into()));
    m.ack().unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = cb.next_message(SECOND).await.unwrap();
        got.push(m.payload().unwrap().as_str().unwrap().to_owned());
        m.ack().unwrap();
    }
    got.sort();
    assert_eq!(got, vec!["disk full", "hello all"]);
    assert_eq!(cb.next_message(Some(Duration::from_millis(100))).await.unwrap_err().name(), "TimeoutError");
    // direct, the other way
    b.producer().await.unwrap().publish(json!({"from": "b"}), PublishOptions::new().routing_key("a.news")).await.unwrap();
    let m = ca.next_message(SECOND).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Data(json!({"from": "b"})));
    m.ack().unwrap();
    a.release().await.unwrap();
    b.release().await.unwrap();
    g.shutdown().await;
}

#[tokio::test]
async fn a_client_that_disappears_loses_nothing() {
    let g = start(None).await;
    let u = url(&g);
    let q = Queue::new("work");
    {
        let producer_conn = Connection::new(&u).unwrap();
        let p = producer_conn.producer().await.unwrap();
        for i in 0..5 {
            p.publish(json!({"job": i}), PublishOptions::new().routing_key("work").declare(q.clone())).await.unwrap();
        }
        producer_conn.release().await.unwrap();
    }
    {
        // Takes everything (no prefetch limit), acks one, then vanishes without closing.
        let doomed = Connection::new(&u).unwrap();
        let c = doomed.consumer(vec![q.clone()]).await.unwrap();
        let first = c.next_message(SECOND).await.unwrap();
        first.ack().unwrap();
        for _ in 0..4 {
            c.next_message(SECOND).await.unwrap();
        }
        drop(c);
        drop(doomed); // the WebSocket goes away with the runtime's next poll
    }
    let survivor = Connection::new(&u).unwrap();
    let c = survivor.consumer(vec![q.clone()]).await.unwrap();
    let mut jobs = Vec::new();
    for _ in 0..4 {
        let m = c.next_message(Some(Duration::from_secs(5))).await.unwrap();
        assert!(m.redelivered());
        jobs.push(m.payload_as::<serde_json::Value>().unwrap()["job"].as_i64().unwrap());
        m.ack().unwrap();
    }
    jobs.sort();
    assert_eq!(jobs, vec![1, 2, 3, 4]);
    survivor.release().await.unwrap();
    g.shutdown().await;
}

async fn raw_socket(g: &Running, protocol: Option<&str>) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut req = format!("ws://{}/gateway", g.addr).into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
    }
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

async fn close_reason(ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>) -> (u16, String) {
    loop {
        match tokio::time::timeout(Duration::from_secs(2), ws.next()).await.expect("the server answers") {
            Some(Ok(WsMessage::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
            Some(Ok(WsMessage::Close(None))) | None | Some(Err(_)) => return (0, String::new()),
            Some(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn bad_input_closes_that_connection_with_a_reason_and_the_server_stays_up() {
    let g = start(Some(4096)).await;
    // random bytes
    let mut ws = raw_socket(&g, Some(SUBPROTOCOL)).await;
    ws.send(WsMessage::Binary(vec![0xde, 0xad, 0xbe, 0xef, 1, 2, 3].into())).await.unwrap();
    let (code, reason) = close_reason(&mut ws).await;
    assert_eq!(code, 1002);
    assert!(reason.contains("header"), "{reason}");
    // text frames
    let mut ws = raw_socket(&g, Some(SUBPROTOCOL)).await;
    ws.send(WsMessage::Binary(gateway::encode(&ClientHeader { id: 1, request: Request::Hello { vhost: None, token: None, client: None } }, b""))).await.unwrap();
    ws.send(WsMessage::Text("hello?".into())).await.unwrap();
    let (code, reason) = close_reason(&mut ws).await;
    assert_eq!(code, 1003, "{reason}");
    // a request before hello
    let mut ws = raw_socket(&g, Some(SUBPROTOCOL)).await;
    ws.send(WsMessage::Binary(gateway::encode(&ClientHeader { id: 1, request: Request::ChannelOpen }, b""))).await.unwrap();
    let (code, reason) = close_reason(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1008, "the first frame must be hello"));
    // an unknown op is a malformed header
    let mut ws = raw_socket(&g, Some(SUBPROTOCOL)).await;
    ws.send(WsMessage::Binary(gateway::encode(&json!({"id": 1, "op": "hello"}), b""))).await.unwrap();
    ws.send(WsMessage::Binary(gateway::encode(&json!({"id": 2, "op": "basic.teleport"}), b""))).await.unwrap();
    let (code, reason) = close_reason(&mut ws).await;
    assert_eq!(code, 1002);
    assert!(reason.contains("basic.teleport") || reason.contains("unknown variant"), "{reason}");
    // a batch whose frame length runs past its end
    let mut ws = raw_socket(&g, Some(SUBPROTOCOL)).await;
    ws.send(WsMessage::Binary(gateway::encode(&ClientHeader { id: 1, request: Request::Hello { vhost: None, token: None, client: None } }, b""))).await.unwrap();
    ws.send(WsMessage::Binary(vec![0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0, b'{'].into())).await.unwrap();
    let (code, reason) = close_reason(&mut ws).await;
    assert_eq!(code, 1002);
    assert!(reason.contains("gateway batch") && reason.contains("runs past the end"), "{reason}");
    // an oversized frame
    let conn = Connection::new(&url(&g)).unwrap();
    // Publishes are not answered (as in AMQP); the gateway closes the socket, and the next
    // operation reports the lost connection.
    conn.producer().await.unwrap().publish(vec![7u8; 10_000], PublishOptions::new().routing_key("big").content_type("application/octet-stream")).await.unwrap();
    let ch = conn.default_channel().await.unwrap();
    let mut probe = Queue::new("big").bind(&ch);
    let err = probe.queue_declare(false, false).await.unwrap_err();
    assert!(err.is_recoverable_connection_error() || err.name() == "OperationalError", "{err}");
    assert!(err.to_string().contains("gateway connection lost"), "{err}");
    // a wrong subprotocol is refused before the upgrade
    let mut req = format!("ws://{}/gateway", g.addr).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("other.v9"));
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    // and the server still serves
    let ok = Connection::new(&url(&g)).unwrap();
    let q = ok.simple_queue("still-up").await.unwrap();
    q.put("yes", PublishOptions::new()).await.unwrap();
    assert_eq!(q.get(true, SECOND).await.unwrap().payload().unwrap(), Payload::Text("yes".into()));
    // Five malformed inputs and the oversized frame (closed with 1009).
    assert!(g.metrics.render().contains("kombu_gateway_protocol_errors_total 6"), "{}", g.metrics.render());
    g.shutdown().await;
}

async fn http_get(g: &Running, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn health_and_metrics_endpoints() {
    let g = start(None).await;
    let conn = Connection::new(&url(&g)).unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let s2 = seen.clone();
    let c = conn
        .consumer(vec![Queue::new("m")])
        .await
        .unwrap()
        .callback(Arc::new(move |_: &Payload, m: &Message| {
            m.ack().unwrap();
            s2.fetch_add(1, Ordering::SeqCst);
        }));
    c.consume().await.unwrap();
    conn.producer().await.unwrap().publish("x", PublishOptions::new().routing_key("m")).await.unwrap();
    while seen.load(Ordering::SeqCst) < 1 {
        conn.drain_events(SECOND).await.unwrap();
    }
    let health = http_get(&g, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"), "{health}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let metrics = http_get(&g, "/metrics").await;
    for needle in [
        "kombu_gateway_connections 1",
        "kombu_gateway_consumers 1",
        "kombu_gateway_published_total 1",
        "kombu_gateway_delivered_total 1",
        "kombu_gateway_acked_total 1",
        "kombu_gateway_request_seconds_bucket{le=\"+Inf\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from:\n{metrics}");
    }
    // A client that goes away without cancelling takes its channels and consumers with it.
    conn.release().await.unwrap();
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = http_get(&g, "/metrics").await;
        if metrics.contains("kombu_gateway_connections 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for needle in ["kombu_gateway_connections 0", "kombu_gateway_channels 0", "kombu_gateway_consumers 0"] {
        assert!(metrics.contains(needle), "{needle} missing after the client left:\n{metrics}");
    }
    g.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_returns_unacked_deliveries() {
    let g = start(None).await;
    let vhost = format!("/shutdown-{}", kombu::uuid());
    let u = format!("gateway+ws://{}/gateway?vhost={vhost}", g.addr);
    let conn = Connection::new(&u).unwrap();
    let q = Queue::new("inflight");
    let p = conn.producer().await.unwrap();
    for i in 0..3 {
        p.publish(json!({"i": i}), PublishOptions::new().routing_key("inflight").declare(q.clone())).await.unwrap();
    }
    let c = conn.consumer(vec![q.clone()]).await.unwrap();
    for _ in 0..3 {
        c.next_message(SECOND).await.unwrap(); // received, never acked
    }
    g.shutdown().await;
    // The gateway's broker is this process's memory:// broker: the messages are back.
    let direct = Connection::new(&format!("memory:///{vhost}")).unwrap();
    let ch = direct.default_channel().await.unwrap();
    let mut inflight = Queue::new("inflight").bind(&ch);
    let ok = inflight.queue_declare(false, true).await.unwrap();
    assert_eq!(ok.message_count, 3, "unacked deliveries went back to the queue");
    // The client sees its connection gone.
    let mut probe = Queue::new("inflight").bind(&conn.default_channel_handle());
    let err = probe.queue_declare(false, true).await.unwrap_err();
    assert!(err.is_recoverable_connection_error() || err.name() == "OperationalError", "{err}");
}

#[tokio::test]
async fn ensure_reconnects_after_the_gateway_restarts_and_consumers_resume() {
    kombu_gateway::register_transports();
    let g = start(None).await;
    let addr = g.addr;
    let vhost = format!("/reconnect-{}", kombu::uuid());
    // The first URL has nothing listening: failover goes on to the gateway.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let conn = Connection::new(&format!("gateway+ws://{dead}/gateway?vhost={vhost};gateway+ws://{addr}/gateway?vhost={vhost}")).unwrap();
    let policy = kombu::RetryPolicy { interval_start: 0.05, interval_step: 0.05, interval_max: 0.2, max_retries: Some(20), timeout: None };
    conn.ensure_connection(&policy, |_: &kombu::Error, _| {}).await.unwrap();
    assert!(conn.as_uri(false).contains(&addr.to_string()), "connected to {}", conn.as_uri(false));

    let q = Queue::new("jobs");
    let producer = conn.producer().await.unwrap();
    producer.publish(json!({"n": 1}), PublishOptions::new().routing_key("jobs").declare(q.clone())).await.unwrap();
    let consumer = conn.consumer(vec![q.clone()]).await.unwrap();
    let m = consumer.next_message(SECOND).await.unwrap();
    assert_eq!(m.payload_as::<serde_json::Value>().unwrap()["n"], 1);
    m.ack().unwrap();

    // The gateway goes away.
    g.shutdown().await;
    // The client sees the close (publishes are one-way, as in AMQP without confirms: one
    // written into a connection that is already gone would be lost).
    let err = consumer.next_message(SECOND).await.unwrap_err();
    assert!(err.is_recoverable_connection_error(), "{err}");
    // The gateway comes back on the same address a little later (the embedded broker lives
    // in this process, so the queue is still there) ...
    let restart = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let cfg = Config { listen: addr, ..Config::default() };
        for _ in 0..50 {
            if let Ok(r) = server::start(cfg.clone()).await {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the gateway did not restart on {addr}");
    });
    // ... while ensure runs: the publish fails (nothing listens), the retry policy retries the
    // connection until the gateway is back, channels revive, the consumer is re-registered
    // and the publish runs again.
    let errors = Arc::new(AtomicUsize::new(0));
    let e2 = errors.clone();
    let p = &producer;
    conn.ensure(&policy, move |_: &kombu::Error, _| {
        e2.fetch_add(1, Ordering::SeqCst);
    }, || async move { p.publish(json!({"n": 2}), PublishOptions::new().routing_key("jobs")).await })
    .await
    .unwrap();
    let g2 = restart.await.unwrap();
    // The consumer resumed on the new connection. The ack of message 1 may have been in
    // flight when the gateway went down: then it comes back, marked redelivered
    // (at-least-once), before message 2.
    loop {
        let m = consumer.next_message(Some(Duration::from_secs(5))).await.unwrap();
        let n = m.payload_as::<serde_json::Value>().unwrap()["n"].as_i64().unwrap();
        m.ack().unwrap();
        if n == 2 {
            break;
        }
        assert!(n == 1 && m.redelivered(), "unexpected message {n}");
    }
    conn.release().await.unwrap();
    g2.shutdown().await;
    assert!(errors.load(Ordering::SeqCst) >= 1, "the publish met the dead gateway first");
}

#[tokio::test]
async fn batched_requests_are_answered_in_order() {
    let g = start(None).await;
    let mut ws = raw_socket(&g, Some(SUBPROTOCOL)).await;
    let frame = |id: u64, request: Request, body: &[u8]| gateway::encode(&ClientHeader { id, request }, body);
    let vhost = format!("/batch-{}", kombu::uuid());
    ws.send(WsMessage::Binary(frame(1, Request::Hello { vhost: Some(vhost), token: None, client: None }, b""))).await.unwrap();
    let hello = ws.next().await.unwrap().unwrap().into_data();
    let (answer, _) = gateway::decode::<serde_json::Value>(&hello).unwrap();
    assert_eq!(answer["result"]["batch"], json!(true), "the server says it reads batches: {answer}");
    // One WebSocket message: open a channel, declare a queue, publish twice, get once.
    let publish = |id| {
        frame(
            id,
            Request::BasicPublish { channel: 1, method: kombu::proto::methods::BasicPublish { routing_key: "q".into(), ..Default::default() }, properties: Default::default() },
            format!("body {id}").as_bytes(),
        )
    };
    let batch = gateway::encode_batch(&[
        frame(2, Request::ChannelOpen, b""),
        frame(3, Request::QueueDeclare { channel: 1, method: kombu::proto::methods::QueueDeclare { queue: "q".into(), ..Default::default() } }, b""),
        publish(4),
        publish(5),
        frame(6, Request::BasicGet { channel: 1, queue: "q".into(), no_ack: true }, b""),
    ]);
    ws.send(WsMessage::Binary(batch)).await.unwrap();
    // Answers may come back batched too: collect frames until the get-ok.
    let mut answers = Vec::new();
    while answers.len() < 3 {
        let msg = tokio::time::timeout(Duration::from_secs(2), ws.next()).await.unwrap().unwrap().unwrap().into_data();
        for f in gateway::split_batch(&msg).unwrap() {
            let (h, body) = gateway::decode::<serde_json::Value>(&f).unwrap();
            answers.push((h["op"].as_str().unwrap().to_owned(), h["id"].as_u64(), body));
        }
    }
    assert_eq!(answers[0].0, "ok");
    assert_eq!(answers[0].1, Some(2));
    assert_eq!(answers[1].1, Some(3));
    assert_eq!((answers[2].0.as_str(), answers[2].1, &answers[2].2[..]), ("get-ok", Some(6), &b"body 4"[..]));
    g.shutdown().await;
}

/// The gateway's `kombu_gateway_acked_total`.
fn acked_total(g: &Running) -> u64 {
    let m = g.metrics.render();
    let line = m.lines().find(|l| l.starts_with("kombu_gateway_acked_total ")).expect("acked counter");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

// The native client's acks: an ack of the oldest delivery its channel waits for goes out with
// `multiple` and is held back until something else is sent, the client waits, or its task
// yields, so that in-order acks reach the gateway merged. Acks out of order and requeues on
// the same channel must still settle exactly what the application settled.
#[tokio::test]
async fn in_order_acks_go_out_merged_and_settle_exactly_what_was_settled() {
    let g = start(None).await;
    let u = url(&g);
    let conn = Connection::new(&u).unwrap();
    let q = Queue::new("acks");
    let producer = conn.producer().await.unwrap();
    for i in 0..300 {
        producer.publish(json!({"i": i}), PublishOptions::new().routing_key("acks").declare(&q)).await.unwrap();
    }
    let before = acked_total(&g);
    let in_order = conn.consumer(vec![q.clone()]).await.unwrap().prefetch_count(50);
    for _ in 0..200 {
        in_order.next_message(SECOND).await.unwrap().ack().unwrap();
    }
    in_order.cancel().await.unwrap();
    let requests = acked_total(&g) - before;
    assert!(requests > 0 && requests < 200, "200 in-order acks reached the gateway as {requests} ack requests");
    // The other 100: some requeued once, every fifth acked late and in reverse order.
    let mixed = conn.consumer(vec![q.clone()]).await.unwrap().prefetch_count(40);
    let (mut settled, mut held, mut requeued) = (std::collections::BTreeSet::new(), Vec::new(), 0);
    while settled.len() < 100 {
        let m = mixed.next_message(SECOND).await.unwrap();
        let i = m.payload_as::<serde_json::Value>().unwrap()["i"].as_u64().unwrap();
        if i % 7 == 0 && !m.redelivered() {
            m.requeue().unwrap();
            requeued += 1;
            continue;
        }
        if i % 5 == 0 {
            held.push(m);
        } else {
            m.ack().unwrap();
        }
        settled.insert(i);
    }
    for m in held.iter().rev() {
        m.ack().unwrap();
    }
    mixed.cancel().await.unwrap();
    assert!(requeued > 0);
    assert_eq!(settled, (200..300).collect());
    conn.release().await.unwrap();
    // Nothing was left unsettled (it would be back in the queue) and nothing acked twice (a
    // channel error would have failed the consumer).
    let again = Connection::new(&u).unwrap();
    let mut left = q.bind(&again.default_channel().await.unwrap());
    assert_eq!(left.queue_declare(false, true).await.unwrap().message_count, 0);
    again.release().await.unwrap();
    g.shutdown().await;
}
