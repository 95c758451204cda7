//! Resource limits of the gateway on its embedded broker, over real sockets: the unacked
//! window per channel, and a consumer that never reads its socket (the messages wait in the
//! broker's queue, not in the gateway's buffers).

use std::time::Duration;

use futures::SinkExt;
use kombu::proto::gateway::{self, ClientHeader, Request, SUBPROTOCOL};
use kombu::proto::methods::{BasicConsume, QueueDeclare};
use kombu::{Connection, PublishOptions, Queue};
use kombu_gateway::server::{self, Config, Running};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;

async fn start(max_unacked: u16, outbox: usize) -> Running {
    kombu_gateway::register_transports();
    server::start(Config { listen: "127.0.0.1:0".parse().unwrap(), max_unacked, outbox, ..Config::default() }).await.unwrap()
}

fn url(g: &Running, vhost: &str) -> String {
    format!("gateway+ws://{}/gateway?vhost={vhost}", g.addr)
}

const SHORT: Option<Duration> = Some(Duration::from_millis(300));
const SECOND: Option<Duration> = Some(Duration::from_secs(2));

/// Ready messages in `queue` (passive declare through a fresh connection).
async fn depth(u: &str, queue: &str) -> u32 {
    let conn = Connection::new(u).unwrap();
    let ch = conn.default_channel().await.unwrap();
    let mut q = Queue::new(queue).bind(&ch);
    let n = q.queue_declare(false, true).await.unwrap().message_count;
    conn.release().await.unwrap();
    n
}

#[tokio::test]
async fn unacked_deliveries_are_capped_per_channel() {
    let g = start(5, 256).await;
    let u = url(&g, &format!("/limits-{}", kombu::uuid()));
    let q = Queue::new("jobs");
    let conn = Connection::new(&u).unwrap();
    let p = conn.producer().await.unwrap();
    for i in 0..20 {
        p.publish(json!({ "job": i }), PublishOptions::new().routing_key("jobs").declare(q.clone())).await.unwrap();
    }
    // No prefetch asked for (unlimited in AMQP): the gateway's window of 5 applies.
    let consumer_conn = Connection::new(&u).unwrap();
    let c = consumer_conn.consumer(vec![q.clone()]).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(c.next_message(SECOND).await.unwrap());
    }
    let err = c.next_message(SHORT).await.unwrap_err();
    assert_eq!(err.name(), "TimeoutError", "a sixth unacked delivery arrived: {err}");
    // A channel-wide qos of 0 or above the limit is capped to it.
    c.qos(0, 0, true).await.unwrap();
    assert_eq!(c.next_message(SHORT).await.unwrap_err().name(), "TimeoutError");
    // Each ack opens the window by one.
    held.remove(0).ack().unwrap();
    held.push(c.next_message(SECOND).await.unwrap());
    assert_eq!(c.next_message(SHORT).await.unwrap_err().name(), "TimeoutError");
    for m in held.drain(..) {
        m.ack().unwrap();
    }
    let mut rest = 0;
    while let Ok(m) = c.next_message(SHORT).await {
        m.ack().unwrap();
        rest += 1;
    }
    assert_eq!(rest, 14, "every message arrives once the window moves");
    consumer_conn.release().await.unwrap();

    // no_ack consumers are paced by the same window and never left unacked upstream.
    for i in 0..10 {
        p.publish(json!({ "job": i }), PublishOptions::new().routing_key("jobs")).await.unwrap();
    }
    let fast = Connection::new(&u).unwrap();
    let c = fast.consumer(vec![q.clone()]).await.unwrap().no_ack(true);
    c.consume().await.unwrap();
    for _ in 0..10 {
        c.next_message(SECOND).await.unwrap();
    }
    assert_eq!(depth(&u, "jobs").await, 0);
    fast.release().await.unwrap();
    conn.release().await.unwrap();
    g.shutdown().await;
}

#[tokio::test]
async fn a_consumer_that_never_reads_leaves_the_messages_in_the_broker() {
    let g = start(50, 16).await;
    let vhost = format!("/slow-{}", kombu::uuid());
    let u = url(&g, &vhost);
    // A raw client: hello, a channel, a no_ack consumer on "firehose" — then it stops reading.
    let mut req = format!("ws://{}/gateway", g.addr).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(SUBPROTOCOL));
    let (mut slow, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let requests = [
        Request::Hello { vhost: Some(vhost.clone()), token: None, client: None },
        Request::ChannelOpen,
        Request::QueueDeclare { channel: 1, method: QueueDeclare { queue: "firehose".into(), ..Default::default() } },
        Request::BasicConsume { channel: 1, method: BasicConsume { queue: "firehose".into(), no_ack: true, ..Default::default() } },
    ];
    for (id, r) in requests.into_iter().enumerate() {
        slow.send(WsMessage::Binary(gateway::encode(&ClientHeader { id: id as u64 + 1, request: r }, b""))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // 1,000 messages of 64 KiB (64 MiB) for a client that reads nothing.
    const N: u32 = 1000;
    let conn = Connection::new(&u).unwrap();
    let p = conn.producer().await.unwrap();
    let body = vec![b'x'; 64 * 1024];
    for _ in 0..N {
        p.publish(body.clone(), PublishOptions::new().routing_key("firehose").content_type("application/octet-stream").content_encoding("binary"))
            .await
            .unwrap();
    }
    // Let the gateway push what it can: until its count of deliveries stops moving.
    let delivered = || {
        let text = g.metrics.render();
        let line = text.lines().find(|l| l.starts_with("kombu_gateway_delivered_total ")).unwrap().to_owned();
        line.split_whitespace().nth(1).unwrap().parse::<u32>().unwrap()
    };
    let mut last = u32::MAX;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let d = delivered();
        if d == last {
            break;
        }
        last = d;
    }
    // Counted by the gateway, not from the queue's depth (which lags the producer's publishes
    // on a loaded machine). In flight at most: the window (50) + the outbox (16) + what the
    // two kernel socket buffers hold (a few MiB, well under 300 × 64 KiB).
    let pulled = delivered();
    assert!(pulled <= 400, "the gateway pulled {pulled} of {N} messages for a client that reads nothing");
    assert!(pulled > 0, "the consumer got nothing at all");

    // The stalled client does not stall the server: others keep working.
    let other = Connection::new(&u).unwrap();
    let sq = other.simple_queue("other").await.unwrap();
    sq.put(json!("still here"), PublishOptions::new()).await.unwrap();
    assert_eq!(sq.get(true, SECOND).await.unwrap().payload_as::<String>().unwrap(), "still here");
    other.release().await.unwrap();
    drop(slow);
    conn.release().await.unwrap();
    g.shutdown().await;
}
