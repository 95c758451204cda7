//! The native amqp:// transport against the local RabbitMQ (127.0.0.1:5672, guest/guest),
//! through the Kombu API. Names are unique per run and everything is deleted afterwards.
//! Skipped with a message when RabbitMQ is not listening, except under CI, where it fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kombu::{Connection, Exchange, Message, Payload, PublishOptions, Queue};
use serde_json::json;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672//";

fn rabbit() -> Option<Connection> {
    kombu_gateway::register_transports();
    if std::net::TcpStream::connect_timeout(&"127.0.0.1:5672".parse().unwrap(), Duration::from_secs(1)).is_err() {
        assert!(std::env::var_os("CI").is_none(), "RabbitMQ must run on 127.0.0.1:5672 under CI");
        eprintln!("skipping: no RabbitMQ on 127.0.0.1:5672");
        return None;
    }
    Some(Connection::new(URL).unwrap())
}

fn unique(name: &str) -> String {
    format!("kombu-wasm-test.{name}.{}", kombu::uuid())
}

const SECOND: Option<Duration> = Some(Duration::from_secs(5));

#[tokio::test]
async fn quick_overview_and_every_operation_on_rabbitmq() {
    let Some(conn) = rabbit() else { return };
    // Not auto-deleted: cancelling the consumer must not take the queue and exchange away.
    let x = Exchange::topic(unique("x")).durable(false);
    let qname = unique("q");
    let q = Queue::new(qname.clone()).exchange(x.clone()).routing_key("video.*").durable(false);
    let producer = conn.producer().await.unwrap();
    producer
        .publish(
            json!({"name": "/tmp/lolcat1.avi", "size": 1301013}),
            PublishOptions::new().exchange(&x).routing_key("video.mp4").declare(&q).header("h", 1).correlation_id("c1").priority(3),
        )
        .await
        .unwrap();
    let consumer = conn.consumer(vec![q.clone()]).await.unwrap().prefetch_count(10);
    let m = consumer.next_message(SECOND).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Data(json!({"name": "/tmp/lolcat1.avi", "size": 1301013})));
    assert_eq!(m.headers().get("h"), Some(&json!(1)));
    assert_eq!(m.properties().correlation_id.as_deref(), Some("c1"));
    assert_eq!(m.properties().delivery_mode, Some(2));
    assert_eq!(m.delivery_info().routing_key, "video.mp4");
    m.ack().unwrap();
    // requeue → redelivered
    producer.publish("again", PublishOptions::new().exchange(&x).routing_key("video.x")).await.unwrap();
    let m = consumer.next_message(SECOND).await.unwrap();
    m.requeue().unwrap();
    let m = consumer.next_message(SECOND).await.unwrap();
    assert!(m.redelivered());
    assert_eq!(m.payload().unwrap(), Payload::Text("again".into()));
    m.ack().unwrap();
    consumer.cancel().await.unwrap();
    // basic.get, purge, passive declare of a missing queue (channel error, then recovery)
    let ch = conn.default_channel().await.unwrap();
    producer.publish("got", PublishOptions::new().exchange(&x).routing_key("video.get")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let bound = q.bind(&ch);
    let got = bound.get(Some(false), None).await.unwrap().expect("a message");
    assert_eq!(got.payload().unwrap(), Payload::Text("got".into()));
    got.ack().unwrap();
    assert!(bound.get(Some(false), None).await.unwrap().is_none());
    producer.publish("purged", PublishOptions::new().exchange(&x).routing_key("video.p")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(bound.purge().await.unwrap(), 1);
    let mut missing = Queue::new(unique("missing")).bind(&conn.default_channel().await.unwrap());
    let err = missing.queue_declare(false, true).await.unwrap_err();
    assert_eq!(err.name(), "NotFound", "{err}");
    // the default channel reopens
    let ch = conn.default_channel().await.unwrap();
    let n = Queue::new(qname.clone()).bind(&ch).delete(false, false).await.unwrap();
    assert_eq!(n, 0);
    Exchange::topic(x.name.clone()).bind(&ch).delete(false).await.unwrap();
    conn.release().await.unwrap();
}

#[tokio::test]
async fn large_bodies_cross_frame_boundaries_and_mandatory_returns() {
    let Some(conn) = rabbit() else { return };
    let qname = unique("big");
    let q = Queue::new(qname.clone()).durable(false).auto_delete(true);
    let producer = conn.producer().await.unwrap();
    let body: Vec<u8> = (0..10 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    producer
        .publish(body.clone(), PublishOptions::new().routing_key(qname.clone()).declare(&q).content_type("application/octet-stream").content_encoding("binary"))
        .await
        .unwrap();
    let consumer = conn.consumer(vec![q.clone()]).await.unwrap();
    let m = consumer.next_message(Some(Duration::from_secs(20))).await.unwrap();
    assert_eq!(m.body().len(), body.len());
    assert!(m.body()[..] == body[..], "10 MB body intact");
    m.ack().unwrap();
    consumer.cancel().await.unwrap();

    let returned = Arc::new(Mutex::new(Vec::new()));
    let r2 = returned.clone();
    let p = conn.producer().await.unwrap().on_return(Arc::new(move |e: &kombu::Error, _x: &str, rk: &str, _m: &Message| {
        r2.lock().unwrap().push((e.to_string(), rk.to_owned()));
    }));
    let nowhere = unique("nowhere");
    p.publish("lost?", PublishOptions::new().routing_key(nowhere.clone()).mandatory(true)).await.unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    for _ in 0..50 {
        let _ = conn.drain_events(Some(Duration::from_millis(100))).await;
        if !returned.lock().unwrap().is_empty() {
            seen.fetch_add(1, Ordering::SeqCst);
            break;
        }
    }
    let r = returned.lock().unwrap().clone();
    assert_eq!(r.len(), 1, "basic.return reached on_return");
    assert_eq!(r[0].1, nowhere);
    assert!(r[0].0.contains("312") || r[0].0.contains("NO_ROUTE"), "{}", r[0].0);
    conn.release().await.unwrap();
}

#[tokio::test]
async fn bad_credentials_and_vhost_are_named() {
    if rabbit().is_none() {
        return;
    }
    let err = Connection::new("amqp://guest:wrong@127.0.0.1:5672//").unwrap().connect().await.unwrap_err();
    assert!(err.to_string().contains("ACCESS_REFUSED") || err.to_string().contains("403") || err.is_recoverable_connection_error(), "{err}");
    let err = Connection::new("amqp://guest:guest@127.0.0.1:5672/no-such-vhost").unwrap().connect().await.unwrap_err();
    assert!(err.to_string().contains("no-such-vhost") || err.to_string().contains("NOT_ALLOWED") || err.to_string().contains("530"), "{err}");
}

#[tokio::test]
async fn the_gateway_bridges_to_rabbitmq() {
    if rabbit().is_none() {
        return;
    }
    let g = kombu_gateway::server::start(kombu_gateway::server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        broker: URL.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let via_gateway = Connection::new(&format!("gateway+ws://{}/gateway?vhost=/", g.addr)).unwrap();
    let direct = Connection::new(URL).unwrap();
    let qname = unique("bridged");
    let q = Queue::new(qname.clone()).durable(false).auto_delete(true);
    // A gateway client consumes; a direct AMQP client publishes.
    let consumer = via_gateway.consumer(vec![q.clone()]).await.unwrap();
    consumer.consume().await.unwrap();
    direct.producer().await.unwrap().publish(json!({"via": "rabbitmq"}), PublishOptions::new().routing_key(qname.clone()).declare(&q)).await.unwrap();
    let m = consumer.next_message(SECOND).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Data(json!({"via": "rabbitmq"})));
    m.ack().unwrap();
    consumer.cancel().await.unwrap();
    via_gateway.release().await.unwrap();
    direct.release().await.unwrap();
    g.shutdown().await;
}

#[tokio::test]
async fn confirm_publish_waits_for_the_broker_and_raises_on_nack() {
    if rabbit().is_none() {
        return;
    }
    let conn = Connection::new("amqp://guest:guest@127.0.0.1:5672//?confirm_publish=1").unwrap();
    let qname = unique("confirmed");
    // One message fits; the broker refuses (nacks) further publishes.
    let q = Queue::new(qname.clone()).durable(false).max_length(1).queue_argument("x-overflow", "reject-publish");
    let p = conn.producer().await.unwrap();
    p.publish("first", PublishOptions::new().routing_key(qname.clone()).declare(&q)).await.unwrap();
    let err = p.publish("second", PublishOptions::new().routing_key(qname.clone())).await.unwrap_err();
    assert_eq!(err.name(), "MessageNacked", "{err}");
    let ch = conn.default_channel().await.unwrap();
    assert_eq!(Queue::new(qname).bind(&ch).delete(false, false).await.unwrap(), 1);
    conn.release().await.unwrap();
}

#[tokio::test]
async fn amqplain_login() {
    if rabbit().is_none() {
        return;
    }
    let conn = Connection::new("amqp://guest:guest@127.0.0.1:5672//?login_method=AMQPLAIN").unwrap();
    let qname = unique("amqplain");
    let q = conn.simple_queue(&qname).await.unwrap();
    q.put(json!("hi"), PublishOptions::new()).await.unwrap();
    q.get(true, SECOND).await.unwrap().ack().unwrap();
    let ch = conn.default_channel().await.unwrap();
    Queue::new(&qname).bind(&ch).delete(false, false).await.unwrap();
    Exchange::direct(&qname).bind(&ch).delete(false).await.unwrap(); // SimpleQueue's exchange
    conn.release().await.unwrap();
    let err = Connection::new("amqp://guest:wrong@127.0.0.1:5672//?login_method=AMQPLAIN").unwrap().connect().await.unwrap_err();
    assert!(err.to_string().contains("ACCESS_REFUSED") || err.is_recoverable_connection_error(), "{err}");
    let err = Connection::new("amqp://guest:guest@127.0.0.1:5672//?login_method=GSSAPI").unwrap().connect().await.unwrap_err();
    assert!(err.to_string().contains("GSSAPI"), "{err}");
}

/// Test scaffolding: a TCP relay to RabbitMQ that can be frozen (it stops forwarding in both
/// directions but keeps both sockets open), which is what a dead network path looks like.
async fn freezable_relay() -> (u16, Arc<std::sync::atomic::AtomicBool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let f = frozen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let rabbit = tokio::net::TcpStream::connect("127.0.0.1:5672").await.unwrap();
            let (cr, cw) = client.into_split();
            let (rr, rw) = rabbit.into_split();
            for (mut from, mut to, f) in [(Box::new(cr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>, Box::new(rw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>, f.clone()), (Box::new(rr), Box::new(cw), f.clone())] {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    loop {
                        let n = match from.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        while f.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        if to.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
    });
    (port, frozen)
}

#[tokio::test]
async fn heartbeats_keep_an_idle_connection_and_detect_a_dead_one() {
    if rabbit().is_none() {
        return;
    }
    // Idle for three intervals: heartbeats both ways keep it open.
    let conn = Connection::new("amqp://guest:guest@127.0.0.1:5672//?heartbeat=1").unwrap();
    let qname = unique("hb");
    let q = conn.simple_queue(&qname).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    q.put(json!("still alive"), PublishOptions::new()).await.unwrap();
    assert_eq!(q.get(true, SECOND).await.unwrap().payload_as::<String>().unwrap(), "still alive");
    let ch = conn.default_channel().await.unwrap();
    Queue::new(&qname).bind(&ch).delete(false, false).await.unwrap();
    Exchange::direct(&qname).bind(&ch).delete(false).await.unwrap(); // SimpleQueue's exchange
    conn.release().await.unwrap();

    // The path goes dead: within two intervals the connection reports it.
    let (port, frozen) = freezable_relay().await;
    let conn = Connection::new(&format!("amqp://guest:guest@127.0.0.1:{port}//?heartbeat=1")).unwrap();
    conn.connect().await.unwrap();
    frozen.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let err = loop {
        match conn.drain_events(Some(Duration::from_millis(500))).await {
            Err(e) if e.name() != "TimeoutError" => break e,
            _ => assert!(started.elapsed() < Duration::from_secs(10), "the dead connection was not detected"),
        }
    };
    assert!(err.to_string().contains("missed heartbeats"), "{err}");
    assert!(err.is_recoverable_connection_error(), "{err}");
}

#[tokio::test]
async fn through_the_gateway_rabbitmq_keeps_priorities_prefetch_and_at_least_once() {
    if rabbit().is_none() {
        return;
    }
    let g = kombu_gateway::server::start(kombu_gateway::server::Config { listen: "127.0.0.1:0".parse().unwrap(), broker: URL.into(), ..Default::default() })
        .await
        .unwrap();
    let gw_url = format!("gateway+ws://{}/gateway?vhost=/", g.addr);
    let direct = Connection::new(URL).unwrap();
    let qname = unique("gw-semantics");
    let q = Queue::new(qname.clone()).durable(false).max_priority(10);
    let producer = direct.producer().await.unwrap();
    for p in [1u8, 9, 5] {
        producer.publish(json!({"priority": p}), PublishOptions::new().routing_key(qname.clone()).declare(&q).priority(p)).await.unwrap();
    }
    // RabbitMQ's priority queue orders them; the browser-side consumer sees that order.
    let browser = Connection::new(&gw_url).unwrap();
    let consumer = browser.consumer(vec![q.clone()]).await.unwrap().prefetch_count(2);
    consumer.consume().await.unwrap();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(consumer.next_message(SECOND).await.unwrap());
    }
    let seen: Vec<i64> = held.iter().map(|m| m.payload_as::<serde_json::Value>().unwrap()["priority"].as_i64().unwrap()).collect();
    assert_eq!(seen, vec![9, 5]);
    // prefetch 2 reaches RabbitMQ: nothing more until an ack.
    assert_eq!(consumer.next_message(Some(Duration::from_millis(300))).await.unwrap_err().name(), "TimeoutError");
    held.remove(0).ack().unwrap();
    let last = consumer.next_message(SECOND).await.unwrap();
    assert_eq!(last.payload_as::<serde_json::Value>().unwrap()["priority"], 1);
    // At least once: the browser goes away holding two unacked messages; RabbitMQ requeues them.
    drop(last);
    drop(held);
    drop(consumer);
    drop(browser);
    let ch = direct.default_channel().await.unwrap();
    let queue = q.clone().bind(&ch);
    let mut back = Vec::new();
    for _ in 0..50 {
        match queue.get(None, None).await.unwrap() {
            Some(m) => {
                assert!(m.redelivered(), "a requeued message is marked redelivered");
                back.push(m.payload_as::<serde_json::Value>().unwrap()["priority"].as_i64().unwrap());
                m.ack().unwrap();
                if back.len() == 2 {
                    break;
                }
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    back.sort();
    assert_eq!(back, vec![1, 5]);
    queue.delete(false, false).await.unwrap();
    direct.release().await.unwrap();
    g.shutdown().await;
}

#[tokio::test]
async fn through_the_gateway_consumer_priorities_reach_rabbitmq() {
    if rabbit().is_none() {
        return;
    }
    let g = kombu_gateway::server::start(kombu_gateway::server::Config { listen: "127.0.0.1:0".parse().unwrap(), broker: URL.into(), ..Default::default() })
        .await
        .unwrap();
    let gw_url = format!("gateway+ws://{}/gateway?vhost=/", g.addr);
    let qname = unique("x-priority");
    let q = Queue::new(qname.clone()).durable(false);
    // Two browser-side consumers on one queue: x-priority 10 and the default 0, prefetch 5 each.
    let high_conn = Connection::new(&gw_url).unwrap();
    let low_conn = Connection::new(&gw_url).unwrap();
    let high = high_conn.consumer(vec![q.clone().consumer_argument("x-priority", 10)]).await.unwrap().prefetch_count(5);
    let low = low_conn.consumer(vec![q.clone()]).await.unwrap().prefetch_count(5);
    low.consume().await.unwrap();
    high.consume().await.unwrap();
    let direct = Connection::new(URL).unwrap();
    let producer = direct.producer().await.unwrap();
    for i in 0..5 {
        producer.publish(json!({"n": i}), PublishOptions::new().routing_key(qname.clone())).await.unwrap();
    }
    // RabbitMQ gives all five to the higher-priority consumer while it has room.
    for _ in 0..5 {
        high.next_message(SECOND).await.unwrap().ack().unwrap();
    }
    assert_eq!(low.next_message(Some(Duration::from_millis(300))).await.unwrap_err().name(), "TimeoutError");
    high_conn.release().await.unwrap();
    low_conn.release().await.unwrap();
    let ch = direct.default_channel().await.unwrap();
    q.bind(&ch).delete(false, false).await.unwrap();
    direct.release().await.unwrap();
    g.shutdown().await;
}

/// The `/amqp` relay refuses a method: it closes the channel toward the client (403) and
/// upstream. A client that confirms and reopens the same channel at once (in the same
/// WebSocket message) must get a working channel — RabbitMQ itself refuses a `channel.open`
/// on a channel it is still closing, so the relay holds the reopen until the broker confirms.
#[tokio::test]
async fn the_relay_lets_a_client_reopen_a_refused_channel_at_once() {
    use bytes::{Buf, BytesMut};
    use futures::{SinkExt, StreamExt};
    use kombu::proto::amqp::{self, Method};
    use tokio_tungstenite::tungstenite::Message as Ws;

    if rabbit().is_none() {
        return;
    }
    let tokens = "[[identity]]\nname = \"browser\"\ntoken = \"reopen-token\"\nvhosts = [\"/\"]\nconfigure = 'kombu-wasm-test\\..*'\nwrite = 'kombu-wasm-test\\..*'\nread = 'kombu-wasm-test\\..*'\n";
    let g = kombu_gateway::server::start(kombu_gateway::server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        broker: URL.into(),
        auth: Some(Arc::new(kombu_gateway::auth::Auth::parse(tokens).unwrap())),
        ..Default::default()
    })
    .await
    .unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/amqp", g.addr)).await.unwrap();
    let frames = |list: &[(u16, Method)]| {
        let mut out = BytesMut::new();
        for (ch, m) in list {
            amqp::write_method(*ch, m, &mut out).unwrap();
        }
        Ws::Binary(out.freeze())
    };
    // Reads method frames until `want` says it has what it waits for; returns them all.
    type Methods = [(u16, Method)];
    let mut buf = BytesMut::new();
    let mut read_until = async |ws: &mut tokio_tungstenite::WebSocketStream<_>, want: &dyn Fn(&Methods) -> bool| {
        let mut got: Vec<(u16, Method)> = Vec::new();
        while !want(&got) {
            while let Some(f) = amqp::split_frame(&buf, 1 << 20).unwrap() {
                let n = f.len;
                if f.kind == 1 {
                    got.push((f.channel, f.method().unwrap()));
                }
                buf.advance(n);
            }
            if want(&got) {
                break;
            }
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("an answer within 5 s") {
                Some(Ok(Ws::Binary(b))) => buf.extend_from_slice(&b),
                other => panic!("unexpected {other:?} after {got:?}"),
            }
        }
        got
    };
    let is = |id: (u16, u16)| move |got: &[(u16, Method)]| got.iter().any(|(_, m)| m.ids() == id);

    ws.send(Ws::Binary(bytes::Bytes::from_static(amqp::PROTOCOL_HEADER))).await.unwrap();
    read_until(&mut ws, &is((10, 10))).await;
    let start_ok = Method::ConnectionStartOk { client_properties: Default::default(), mechanism: "PLAIN".into(), response: b"\0browser\0reopen-token".to_vec(), locale: "en_US".into() };
    ws.send(frames(&[(0, start_ok)])).await.unwrap();
    let tune = read_until(&mut ws, &is((10, 30))).await;
    let Some((_, Method::ConnectionTune { channel_max, frame_max, .. })) = tune.into_iter().find(|(_, m)| m.ids() == (10, 30)) else { unreachable!() };
    let tune_ok = Method::ConnectionTuneOk { channel_max, frame_max, heartbeat: 0 };
    ws.send(frames(&[(0, tune_ok), (0, Method::ConnectionOpen { virtual_host: "/".into() }), (1, Method::ChannelOpen)])).await.unwrap();
    read_until(&mut ws, &is((20, 11))).await;

    let declare = |queue: &str| Method::QueueDeclare { queue: queue.into(), passive: false, durable: false, exclusive: false, auto_delete: true, nowait: false, arguments: Default::default() };
    ws.send(frames(&[(1, declare("admin.secrets"))])).await.unwrap();
    let refused = read_until(&mut ws, &is((20, 40))).await;
    assert!(matches!(&refused[..], [(1, Method::ChannelClose { reply_code: 403, .. })]), "{refused:?}");

    let qname = unique("reopened");
    ws.send(frames(&[(1, Method::ChannelCloseOk), (1, Method::ChannelOpen), (1, declare(&qname))])).await.unwrap();
    let got = read_until(&mut ws, &|got: &[(u16, Method)]| got.iter().any(|(_, m)| matches!(m.ids(), (50, 11) | (10, 50) | (20, 40)))).await;
    assert!(matches!(&got[..], [(1, Method::ChannelOpenOk), (1, Method::QueueDeclareOk { .. })]), "{got:?}");

    ws.send(frames(&[(1, Method::QueueDelete { queue: qname, if_unused: false, if_empty: false, nowait: false })])).await.unwrap();
    read_until(&mut ws, &is((50, 41))).await;
    ws.send(frames(&[(0, Method::ConnectionClose { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 })])).await.unwrap();
    read_until(&mut ws, &is((10, 51))).await;
    g.shutdown().await;
}

/// Acks of the oldest delivery go out as `multiple` and a run of them as one (the carriers
/// merge them): acks out of order, rejects, a requeue, basic.get and a no-ack consumer on the
/// same channel must still settle exactly what they name. A wrong `multiple` would either
/// ack a message we did not (it would be missing below) or name a tag RabbitMQ no longer
/// knows (PRECONDITION_FAILED closes the channel and requeues its deliveries).
#[tokio::test]
async fn acks_merged_as_multiple_settle_exactly_what_was_acked() {
    let Some(conn) = rabbit() else { return };
    let x = Exchange::direct(unique("x")).durable(false).auto_delete(true);
    let q = Queue::new(unique("q")).exchange(x.clone()).routing_key("k").durable(false);
    let noack_q = Queue::new(unique("noack")).exchange(x.clone()).routing_key("n").durable(false);
    let producer = conn.producer().await.unwrap();
    producer.maybe_declare(q.clone()).await.unwrap();
    producer.maybe_declare(noack_q.clone()).await.unwrap();
    for i in 0..60 {
        producer.publish(format!("{i}"), PublishOptions::new().exchange(&x).routing_key("k")).await.unwrap();
    }
    for i in 0..5 {
        producer.publish(format!("n{i}"), PublishOptions::new().exchange(&x).routing_key("n")).await.unwrap();
    }
    let ch = conn.default_channel().await.unwrap();
    // A consumer without acks on the channel: its deliveries are not awaited by the broker.
    let noack = kombu::Consumer::new(&ch, vec![noack_q.clone()]).no_ack(true);
    noack.consume().await.unwrap();
    let consumer = kombu::Consumer::new(&ch, vec![q.clone()]).prefetch_count(100);
    consumer.consume().await.unwrap();
    let (mut held, mut kept) = (Vec::new(), Vec::new());
    let mut requeued = false;
    let mut seen = 0;
    while seen < 60 {
        let m = consumer.next_message(SECOND).await.unwrap();
        let i: usize = m.body().iter().map(|&b| (b - b'0') as usize).fold(0, |n, d| n * 10 + d);
        match i % 10 {
            3 => held.push(m),
            7 => m.reject(false).unwrap(),
            _ if i == 20 && !requeued => {
                requeued = true;
                m.requeue().unwrap();
                continue;
            }
            9 if i < 30 => kept.push(m), // left unacknowledged: must come back after the close
            _ => m.ack().unwrap(),
        }
        seen += 1;
    }
    for m in held.iter().rev() {
        m.ack().unwrap();
    }
    consumer.cancel().await.unwrap();
    // basic.get with and without acks on the same channel.
    for i in 0..2 {
        producer.publish(format!("g{i}"), PublishOptions::new().exchange(&x).routing_key("k")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bound = q.clone().bind(&ch);
    bound.get(Some(true), None).await.unwrap().expect("a message");
    bound.get(Some(false), None).await.unwrap().expect("a message").ack().unwrap();
    for i in 0..5 {
        let m = noack.next_message(SECOND).await.unwrap();
        assert_eq!(&m.body()[..], format!("n{i}").as_bytes());
    }
    // The channel is still open (a bad ack would have closed it).
    let ok = q.clone().bind(&ch).queue_declare(false, true).await.unwrap();
    assert_eq!(ok.message_count, 0);
    conn.release().await.unwrap();
    // Only the messages left unacknowledged come back.
    let conn = Connection::new(URL).unwrap();
    let ch = conn.default_channel().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut bound = q.clone().bind(&ch);
    assert_eq!(bound.queue_declare(false, true).await.unwrap().message_count, kept.len() as u32);
    let mut back = Vec::new();
    while let Some(m) = bound.get(Some(true), None).await.unwrap() {
        back.push(String::from_utf8(m.body().to_vec()).unwrap());
    }
    assert_eq!(back, vec!["9", "19", "29"]);
    bound.delete(false, false).await.unwrap();
    noack_q.bind(&ch).delete(false, false).await.unwrap();
    conn.release().await.unwrap();
}

/// Through the `/amqp` relay, RabbitMQ's permission checks apply as on `/gateway`: a publish
/// to the default exchange needs write on `amq.default`, a dead-letter or alternate exchange
/// write on it. After a refused publish the client's own `channel.close` (crossing the
/// relay's) is answered with `close-ok` — the client does not hang — and nothing reached the
/// other identity's queue.
#[tokio::test]
async fn the_relay_checks_what_rabbitmq_checks_and_answers_a_crossed_close() {
    use bytes::{Buf, BytesMut};
    use futures::{SinkExt, StreamExt};
    use kombu::proto::amqp::{self, Method};
    use tokio_tungstenite::tungstenite::Message as Ws;

    let Some(direct) = rabbit() else { return };
    let id = kombu::uuid().replace('-', "");
    let tokens = format!("[[identity]]\nname = \"alice\"\ntoken = \"alice-{id}\"\nvhosts = [\"/\"]\nconfigure = 't{id}\\.a\\..*'\nwrite = 't{id}\\.a\\..*'\nread = 't{id}\\.a\\..*'\n");
    let g = kombu_gateway::server::start(kombu_gateway::server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        broker: URL.into(),
        auth: Some(Arc::new(kombu_gateway::auth::Auth::parse(&tokens).unwrap())),
        ..Default::default()
    })
    .await
    .unwrap();
    // Bob's queue, declared directly on RabbitMQ.
    let bob_q = format!("t{id}.b.inbox");
    let ch = direct.default_channel().await.unwrap();
    Queue::new(&bob_q).auto_delete(false).durable(false).bind(&ch).declare(false).await.unwrap();

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/amqp", g.addr)).await.unwrap();
    let frames = |list: &[(u16, Method)]| {
        let mut out = BytesMut::new();
        for (ch, m) in list {
            amqp::write_method(*ch, m, &mut out).unwrap();
        }
        Ws::Binary(out.freeze())
    };
    type Methods = [(u16, Method)];
    let mut buf = BytesMut::new();
    let mut read_until = async |ws: &mut tokio_tungstenite::WebSocketStream<_>, want: &dyn Fn(&Methods) -> bool| {
        let mut got: Vec<(u16, Method)> = Vec::new();
        loop {
            while let Some(f) = amqp::split_frame(&buf, 1 << 20).unwrap() {
                let n = f.len;
                if f.kind == 1 {
                    got.push((f.channel, f.method().unwrap()));
                }
                buf.advance(n);
            }
            if want(&got) {
                return got;
            }
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap_or_else(|_| panic!("no answer within 5 s after {got:?}")) {
                Some(Ok(Ws::Binary(b))) => buf.extend_from_slice(&b),
                other => panic!("unexpected {other:?} after {got:?}"),
            }
        }
    };
    let is = |id: (u16, u16)| move |got: &Methods| got.iter().any(|(_, m)| m.ids() == id);
    ws.send(Ws::Binary(bytes::Bytes::from_static(amqp::PROTOCOL_HEADER))).await.unwrap();
    read_until(&mut ws, &is((10, 10))).await;
    let start_ok = Method::ConnectionStartOk { client_properties: Default::default(), mechanism: "PLAIN".into(), response: format!("\0alice\0alice-{id}").into_bytes(), locale: "en_US".into() };
    ws.send(frames(&[(0, start_ok)])).await.unwrap();
    let tune = read_until(&mut ws, &is((10, 30))).await;
    let Some((_, Method::ConnectionTune { channel_max, frame_max, .. })) = tune.into_iter().find(|(_, m)| m.ids() == (10, 30)) else { unreachable!() };
    ws.send(frames(&[(0, Method::ConnectionTuneOk { channel_max, frame_max, heartbeat: 0 }), (0, Method::ConnectionOpen { virtual_host: "/".into() }), (1, Method::ChannelOpen)])).await.unwrap();
    read_until(&mut ws, &is((20, 11))).await;

    // A publish to the default exchange, then the client closes the channel itself: its close
    // crosses the relay's.
    let publish = Method::BasicPublish { exchange: String::new(), routing_key: bob_q.clone(), mandatory: false, immediate: false };
    let mut out = BytesMut::new();
    amqp::write_method(1, &publish, &mut out).unwrap();
    amqp::write_content(1, &Default::default(), b"leak", frame_max, &mut out).unwrap();
    amqp::write_method(1, &Method::ChannelClose { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 }, &mut out).unwrap();
    ws.send(Ws::Binary(out.freeze())).await.unwrap();
    let got = read_until(&mut ws, &|got: &Methods| is((20, 40))(got) && is((20, 41))(got)).await;
    let Some((1, Method::ChannelClose { reply_code: 403, reply_text, .. })) = got.iter().find(|(_, m)| m.ids() == (20, 40)) else { panic!("{got:?}") };
    assert!(reply_text.contains("write access to exchange 'amq.default' in vhost '/' refused for identity 'alice'"), "{reply_text}");
    // The client answers the relay's close; the channel can be reopened at once.
    ws.send(frames(&[(1, Method::ChannelCloseOk), (1, Method::ChannelOpen)])).await.unwrap();
    read_until(&mut ws, &is((20, 11))).await;
    // A dead-letter exchange, an alternate exchange outside Alice's names.
    let declare_q = Method::QueueDeclare {
        queue: format!("t{id}.a.q"),
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: true,
        nowait: false,
        arguments: kombu::value::headers([("x-dead-letter-exchange", format!("t{id}.b.x"))]),
    };
    ws.send(frames(&[(1, declare_q)])).await.unwrap();
    let got = read_until(&mut ws, &is((20, 40))).await;
    assert!(matches!(&got[..], [(1, Method::ChannelClose { reply_code: 403, reply_text, .. })] if reply_text.contains(&format!("write access to exchange 't{id}.b.x'"))), "{got:?}");
    ws.send(frames(&[(1, Method::ChannelCloseOk), (2, Method::ChannelOpen)])).await.unwrap();
    read_until(&mut ws, &is((20, 11))).await;
    let declare_x = Method::ExchangeDeclare {
        exchange: format!("t{id}.a.x"),
        kind: "direct".into(),
        passive: false,
        durable: false,
        auto_delete: true,
        internal: false,
        nowait: false,
        arguments: kombu::value::headers([("alternate-exchange", format!("t{id}.b.x"))]),
    };
    ws.send(frames(&[(2, declare_x)])).await.unwrap();
    let got = read_until(&mut ws, &is((20, 40))).await;
    assert!(matches!(&got[..], [(2, Method::ChannelClose { reply_code: 403, .. })]), "{got:?}");
    ws.send(frames(&[(2, Method::ChannelCloseOk), (0, Method::ConnectionClose { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 })])).await.unwrap();
    read_until(&mut ws, &is((10, 51))).await;
    // Nothing reached Bob's queue.
    let mut q = Queue::new(&bob_q).bind(&ch);
    assert_eq!(q.queue_declare(false, true).await.unwrap().message_count, 0);
    q.delete(false, false).await.unwrap();
    direct.release().await.unwrap();
    g.shutdown().await;
}
