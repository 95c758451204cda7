//! Client-side liveness of `gateway+ws://` (Kombu's `heartbeat` connection argument, as for
//! `amqp://`): a gateway frozen with SIGSTOP — its socket open, nothing coming back — is
//! detected after two heartbeat intervals of silence, the connection fails with a recoverable
//! connection error and reconnects once the gateway is back; a healthy idle connection stays
//! up, kept alive on both sides by the heartbeat frames alone.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use kombu::proto::gateway::{self, ClientHeader, Request, ServerFrame, SUBPROTOCOL};
use kombu::{Connection, Error, PublishOptions, RetryPolicy};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

mod support;
use support::GatewayProcess;

fn url(g: &GatewayProcess, heartbeat: u16) -> String {
    format!("gateway+ws://{}/gateway?vhost=/live-{}&heartbeat={heartbeat}", g.addr, kombu::uuid())
}

#[tokio::test]
async fn a_frozen_gateway_is_detected_within_two_heartbeats_and_the_connection_recovers() {
    kombu_gateway::register_transports();
    let g = GatewayProcess::start(&[]);
    let conn = Connection::new(&url(&g, 1)).unwrap();
    let q = conn.simple_queue(&format!("live-{}", kombu::uuid())).await.unwrap();
    q.put("before", PublishOptions::new()).await.unwrap();
    q.get(true, Some(Duration::from_secs(5))).await.unwrap().ack().unwrap();

    g.signal("-STOP");
    let frozen = Instant::now();
    // Without heartbeats this would wait the whole minute: nothing closes the socket.
    let err = loop {
        match conn.drain_events(Some(Duration::from_secs(60))).await {
            Ok(()) => continue,
            Err(e) => break e,
        }
    };
    let waited = frozen.elapsed();
    assert!(err.is_recoverable_connection_error(), "{err:?}");
    assert!(err.to_string().contains("missed heartbeats from the gateway"), "{err}");
    // Two intervals of silence (2 s) plus the reader's one-second check; generous for a
    // loaded machine, far below the minute waited for.
    assert!(waited < Duration::from_secs(20), "detected after {waited:?}");
    assert!(!matches!(err, Error::Timeout(_)));

    // The gateway comes back: the connection is established again and works.
    g.signal("-CONT");
    let policy = RetryPolicy { interval_start: 0.2, interval_step: 0.2, interval_max: 1.0, max_retries: Some(50), timeout: None };
    conn.ensure_connection(&policy, |_, _| {}).await.unwrap();
    let q = conn.simple_queue(&format!("live-{}", kombu::uuid())).await.unwrap();
    q.put("after", PublishOptions::new()).await.unwrap();
    let m = q.get(true, Some(Duration::from_secs(5))).await.unwrap();
    assert_eq!(&m.body()[..], b"after");
    m.ack().unwrap();
}

#[tokio::test]
async fn an_idle_connection_with_heartbeats_stays_up_on_both_sides() {
    kombu_gateway::register_transports();
    // No WebSocket pings and a 3-second idle timeout: only the client's heartbeat frames
    // keep the gateway from closing the connection, and only the gateway's keep the client
    // from giving it up (heartbeat 1 s: silence past 2 s would).
    let g = GatewayProcess::start(&["--ping-interval", "0", "--idle-timeout", "3"]);
    let conn = Connection::new(&url(&g, 1)).unwrap();
    let q = conn.simple_queue(&format!("live-{}", kombu::uuid())).await.unwrap();
    let ch = conn.default_channel().await.unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        match conn.drain_events(Some(Duration::from_secs(1))).await {
            Err(Error::Timeout(_)) => {}
            other => panic!("an idle connection must only time out, got {other:?}"),
        }
    }
    // The same connection and channel, still open.
    assert!(ch.is_open());
    q.put("still here", PublishOptions::new()).await.unwrap();
    let m = q.get(true, Some(Duration::from_secs(5))).await.unwrap();
    assert_eq!(&m.body()[..], b"still here");
    m.ack().unwrap();
    assert!(ch.is_open(), "no reconnection happened");

    // Without heartbeats the same idle connection is closed by the gateway's idle timeout:
    // the frames above were what kept it.
    let quiet = Connection::new(&format!("gateway+ws://{}/gateway?vhost=/live-{}", g.addr, kombu::uuid())).unwrap();
    quiet.default_channel().await.unwrap();
    let err = loop {
        match quiet.drain_events(Some(Duration::from_secs(30))).await {
            Ok(()) => continue,
            Err(e) => break e,
        }
    };
    assert!(err.to_string().contains("idle"), "{err}");
}

/// The protocol as the spec says: a `hello` with `heartbeat` is answered with it and the
/// gateway then sends `heartbeat` frames; `heartbeat` requests are not answered; without it
/// the answer has none and no heartbeat frame comes.
#[tokio::test]
async fn hello_agrees_on_heartbeats_and_the_gateway_sends_them() {
    let g = GatewayProcess::start(&["--ping-interval", "0"]);
    for asked in [Some(1u16), None] {
        let mut req = format!("ws://{}/gateway", g.addr).into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(SUBPROTOCOL));
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let send = |id, request| Message::Binary(gateway::encode(&ClientHeader { id, request }, b""));
        ws.send(send(1, Request::Hello { vhost: Some(format!("/live-{}", kombu::uuid())), token: None, client: None, heartbeat: asked })).await.unwrap();
        let Some(Ok(Message::Binary(b))) = ws.next().await else { panic!("no hello answer") };
        let (ServerFrame::Ok { result, .. }, _) = gateway::decode_server(&b).unwrap() else { panic!("hello refused") };
        assert_eq!(result.get("heartbeat").and_then(|h| h.as_u64()), asked.map(u64::from), "{result}");
        ws.send(send(2, Request::Heartbeat)).await.unwrap();
        // Within 3 s: heartbeats every half second with one, nothing at all without.
        let mut beats = 0;
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until, ws.next()).await {
            let Message::Binary(b) = m else { continue };
            for f in gateway::split_batch(&b).unwrap() {
                match gateway::decode_server(&f).unwrap().0 {
                    ServerFrame::Heartbeat => beats += 1,
                    other => panic!("a heartbeat request is not answered: got {other:?}"),
                }
            }
        }
        match asked {
            Some(_) => assert!(beats >= 2, "{beats} heartbeats in 3 s"),
            None => assert_eq!(beats, 0),
        }
    }
}
