//! Open N idle gateway connections (WebSocket + hello + one channel) and hold them until
//! stdin closes; prints "ready N" when all are open. Used by bench/gateway_idle.sh.
//!
//! `cargo run --release -p kombu-gateway --example idle_clients -- ADDR N`

use futures::{SinkExt, StreamExt};
use kombu::proto::gateway::{self, ClientHeader, Request, SUBPROTOCOL};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).expect("ADDR");
    let n: usize = std::env::args().nth(2).map(|s| s.parse().expect("N")).unwrap_or(1000);
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let mut req = format!("ws://{addr}/gateway").into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(SUBPROTOCOL));
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap_or_else(|e| panic!("connection {i}: {e}"));
        for (id, r) in [(1, Request::Hello { vhost: Some("/idle".into()), token: None, client: None, heartbeat: None }), (2, Request::ChannelOpen)] {
            ws.send(Message::Binary(gateway::encode(&ClientHeader { id, request: r }, b""))).await.unwrap();
            ws.next().await.unwrap().unwrap();
        }
        held.push(ws);
    }
    println!("ready {}", held.len());
    // Hold the connections until stdin closes.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    })
    .await
    .unwrap();
    drop(held);
}
