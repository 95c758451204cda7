//! Every refusal of the gateway's security, over real sockets, with its named error: no
//! token, a wrong token, a forbidden virtual host, a forbidden queue/exchange, too many
//! connections, channels or consumers, a wrong Origin. The server stays up throughout.

use std::sync::Arc;
use std::time::Duration;

use kombu::{Connection, Exchange, PublishOptions, Queue};
use kombu_gateway::auth::Auth;
use kombu_gateway::server::{self, Config, Running};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const TOKENS: &str = r#"
[[identity]]
name = "web"
token = "web-token-123"
vhosts = ["/web"]
configure = "web\\..*|amq\\.gen-.*"
write = "web\\..*"
read = "web\\..*"
max_connections = 2

[jwt]
secret = "a-gateway-test-secret-of-32-bytes+"
audience = "kombu-gateway"
leeway = 0
"#;

fn jwt(claims: serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

async fn start() -> Running {
    kombu_gateway::register_transports();
    server::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        auth: Some(Arc::new(Auth::parse(TOKENS).unwrap())),
        allowed_origins: vec!["https://app.example".into()],
        max_channels: 3,
        max_consumers: 2,
        ..Config::default()
    })
    .await
    .unwrap()
}

fn url(g: &Running, token: Option<&str>, vhost: &str) -> String {
    match token {
        Some(t) => format!("gateway+ws://{}/gateway?vhost={vhost}&token={t}", g.addr),
        None => format!("gateway+ws://{}/gateway?vhost={vhost}", g.addr),
    }
}

#[tokio::test]
async fn refusals_are_named_and_the_server_stays_up() {
    let g = start().await;
    // no token, wrong token, forbidden vhost
    for (u, needle) in [
        (url(&g, None, "/web"), "requires a token"),
        (url(&g, Some("wrong-token-1"), "/web"), "unknown token"),
        (url(&g, Some("web-token-123"), "/admin"), "may not open virtual host '/admin'"),
    ] {
        let err = Connection::new(&u).unwrap().connect().await.unwrap_err();
        assert_eq!(err.name(), "AccessRefused", "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }
    // allowed identity: its own names work, others are refused
    let conn = Connection::new(&url(&g, Some("web-token-123"), "/web")).unwrap();
    let p = conn.producer().await.unwrap();
    p.publish("ok", PublishOptions::new().routing_key("web.jobs").declare(Queue::new("web.jobs"))).await.unwrap();
    let ch = conn.default_channel().await.unwrap();
    let err = Queue::new("admin.jobs").bind(&ch).declare(false).await.unwrap_err();
    assert_eq!(err.name(), "AccessRefused");
    assert!(err.to_string().contains("configure access to queue 'admin.jobs'"), "{err}");
    let err = Exchange::direct("admin.x").bind(&conn.default_channel().await.unwrap()).declare(false, None).await.unwrap_err();
    assert_eq!(err.name(), "AccessRefused", "{err}");
    // server-named queues are allowed by the amq.gen- pattern
    let mut anon = Queue::new("").exclusive(true).bind(&conn.default_channel().await.unwrap());
    assert!(anon.declare(false).await.unwrap().starts_with("amq.gen-"));
    // consumers per channel
    let ch = conn.default_channel().await.unwrap();
    let q = Queue::new("web.jobs");
    for _ in 0..2 {
        kombu::Consumer::new(&ch, vec![q.clone()]).consume().await.unwrap();
    }
    let err = kombu::Consumer::new(&ch, vec![q.clone()]).consume().await.unwrap_err();
    assert_eq!(err.name(), "LimitExceeded", "{err}");
    // channels per connection (the default channel is one of the 3)
    let mut extra = Vec::new();
    let mut refused = None;
    for _ in 0..4 {
        match conn.channel().await {
            Ok(c) => extra.push(c),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("the channel limit refuses");
    assert!(e.to_string().contains("maximum number of simultaneous channels exceeded (3)") || e.name() == "LimitExceeded" || e.name() == "OperationalError", "{e}");
    // connections per identity: 2 allowed
    let second = Connection::new(&url(&g, Some("web-token-123"), "/web")).unwrap();
    second.connect().await.unwrap();
    let err = Connection::new(&url(&g, Some("web-token-123"), "/web")).unwrap().connect().await.unwrap_err();
    assert!(err.to_string().contains("maximum of 2 connections"), "{err}");
    second.release().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let third = Connection::new(&url(&g, Some("web-token-123"), "/web")).unwrap();
    third.connect().await.unwrap();
    // a browser from another origin is refused before the upgrade; the allowed one gets in
    let mut req = format!("ws://{}/gateway", g.addr).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(kombu::proto::gateway::SUBPROTOCOL));
    req.headers_mut().insert("Origin", HeaderValue::from_static("https://evil.example"));
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    let mut req = format!("ws://{}/gateway", g.addr).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(kombu::proto::gateway::SUBPROTOCOL));
    req.headers_mut().insert("Origin", HeaderValue::from_static("https://app.example"));
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
    third.release().await.unwrap();
    conn.release().await.unwrap();
    g.shutdown().await;
}

#[tokio::test]
async fn hmac_signed_tokens_expire_and_carry_permissions() {
    let g = start().await;
    let now = jsonwebtoken::get_current_timestamp();
    let secret = "a-gateway-test-secret-of-32-bytes+";
    let claims = |exp: u64| serde_json::json!({"sub": "browser-42", "exp": exp, "aud": "kombu-gateway", "vhosts": ["/web"], "configure": "b42\\..*", "write": "b42\\..*", "read": "b42\\..*"});
    for (token, needle) in [
        (jwt(claims(now - 5), secret), "the token has expired"),
        (jwt(claims(now + 60), "some-other-secret-of-at-least-32-bytes"), "signature is not valid"),
        (jwt(serde_json::json!({"sub": "x", "exp": now + 60, "aud": "elsewhere"}), secret), "audience"),
    ] {
        let err = Connection::new(&url(&g, Some(&token), "/web")).unwrap().connect().await.unwrap_err();
        assert_eq!(err.name(), "AccessRefused", "{err}");
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
    let token = jwt(claims(now + 60), secret);
    let conn = Connection::new(&url(&g, Some(&token), "/web")).unwrap();
    let q = conn.simple_queue("b42.inbox").await.unwrap();
    q.put(serde_json::json!({"hello": "jwt"}), PublishOptions::new()).await.unwrap();
    let m = q.get(true, Some(Duration::from_secs(2))).await.unwrap();
    assert_eq!(m.payload_as::<serde_json::Value>().unwrap()["hello"], "jwt");
    m.ack().unwrap();
    let err = conn.simple_queue("web.inbox").await.unwrap_err();
    assert_eq!(err.name(), "AccessRefused", "{err}");
    assert!(err.to_string().contains("identity 'browser-42'"), "{err}");
    conn.release().await.unwrap();
    g.shutdown().await;
}
