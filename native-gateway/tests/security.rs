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
write = "web\\..*|amq\\.default"
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

// ---- RabbitMQ's permissions, exactly: two identities with disjoint patterns ----

use bytes::Bytes;
use kombu::proto::methods::{BasicPublish, Content, ExchangeBind, ExchangeDeclare, ExchangeDelete, QueueBind, QueueDeclare, QueueDelete, ServerEvent};
use kombu::transport::RawConnection;

const RABBITMQ: &str = "amqp://guest:guest@127.0.0.1:5672//";

fn rabbitmq_up() -> bool {
    if std::net::TcpStream::connect_timeout(&"127.0.0.1:5672".parse().unwrap(), Duration::from_secs(1)).is_err() {
        assert!(std::env::var_os("CI").is_none(), "RabbitMQ must run on 127.0.0.1:5672 under CI");
        eprintln!("skipping: no RabbitMQ on 127.0.0.1:5672");
        return false;
    }
    true
}

/// Alice may use `t{id}.a.*`, Bob `t{id}.b.*` (and server-named queues, and the default
/// exchange): RabbitMQ's configure/write/read patterns, on one virtual host.
fn two_identities(id: &str) -> String {
    format!(
        r#"
[[identity]]
name = "alice"
token = "alice-token-{id}"
vhosts = ["/"]
configure = 't{id}\.a\..*'
write = 't{id}\.a\..*'
read = 't{id}\.a\..*'

[[identity]]
name = "bob"
token = "bob-token-{id}"
vhosts = ["/"]
configure = 't{id}\.b\..*|amq\.gen-.*'
write = 't{id}\.b\..*|amq\.default'
read = 't{id}\.b\..*'
"#
    )
}

async fn gateway_with(broker: &str, tokens: &str) -> Running {
    kombu_gateway::register_transports();
    server::start(Config { listen: "127.0.0.1:0".parse().unwrap(), broker: broker.into(), auth: Some(Arc::new(Auth::parse(tokens).unwrap())), ..Config::default() }).await.unwrap()
}

/// A connection to the gateway at the transport level, where publishes and their refusals
/// (a channel closed) can be seen one by one.
async fn raw(g: &Running, token: &str) -> Arc<dyn RawConnection> {
    let info = Connection::new(&format!("gateway+ws://{}/gateway?vhost=/&token={token}", g.addr)).unwrap().info();
    kombu::transport::registry::lookup(&info.transport).unwrap().establish_connection(&info).await.unwrap()
}

fn message(body: &'static [u8]) -> Arc<Content> {
    Arc::new(Content { properties: Default::default(), body: Bytes::from_static(body) })
}

/// Publish on a channel of its own: how the gateway closed that channel.
async fn refused_publish(conn: &Arc<dyn RawConnection>, exchange: &str, routing_key: &str) -> kombu::Error {
    let ch = conn.open_channel().await.unwrap();
    ch.basic_publish(&BasicPublish { exchange: exchange.into(), routing_key: routing_key.into(), ..Default::default() }, message(b"leak")).await.unwrap();
    loop {
        match conn.next_event(Some(Duration::from_secs(10))).await.expect("the channel is closed") {
            ServerEvent::ChannelClosed { channel, error } if channel == ch.channel_id() => return error,
            _ => {}
        }
    }
}

fn assert_refused(e: &kombu::Error, needle: &str) {
    assert_eq!(e.name(), "AccessRefused", "{e}");
    assert!(e.to_string().contains(needle), "expected {needle:?} in: {e}");
}

/// Every way of writing into a queue of another identity RabbitMQ refuses — the default
/// exchange, a dead-letter exchange, an alternate exchange, an exchange-to-exchange binding,
/// a binding of another's queue — is refused by the gateway with RabbitMQ's error, and
/// nothing reaches Bob's queue; the same declarations within Alice's own names work.
async fn permissions_as_rabbitmq_checks_them(broker: &str) {
    let id = kombu::uuid().replace('-', "");
    let g = gateway_with(broker, &two_identities(&id)).await;
    let a = |n: &str| format!("t{id}.a.{n}");
    let b = |n: &str| format!("t{id}.b.{n}");
    let bob = raw(&g, &format!("bob-token-{id}")).await;
    let bch = bob.open_channel().await.unwrap();
    bch.queue_declare(&QueueDeclare { queue: b("inbox"), ..Default::default() }).await.unwrap();
    bch.exchange_declare(&ExchangeDeclare { exchange: b("x"), ..Default::default() }).await.unwrap();
    bch.queue_bind(&QueueBind { queue: b("inbox"), exchange: b("x"), routing_key: "#".into(), ..Default::default() }).await.unwrap();
    // Bob may write to the default exchange (amq.default): it reaches his queue.
    bch.basic_publish(&BasicPublish { routing_key: b("inbox"), ..Default::default() }, message(b"bob's own")).await.unwrap();

    let alice = raw(&g, &format!("alice-token-{id}")).await;
    // The default exchange is amq.default, which Alice may not write to.
    let e = refused_publish(&alice, "", &b("inbox")).await;
    assert_refused(&e, "write access to exchange 'amq.default' in vhost '/' refused for identity 'alice'");
    // Another's exchange.
    assert_refused(&refused_publish(&alice, &b("x"), "").await, &format!("write access to exchange '{}'", b("x")));
    let ch = || async { alice.open_channel().await.unwrap() };
    let dlx = |x: &str| kombu::value::headers([("x-dead-letter-exchange", x)]);
    // A queue whose dead letters would go to Bob's exchange, or to the default exchange.
    let e = ch().await.queue_declare(&QueueDeclare { queue: a("q"), arguments: dlx(&b("x")), ..Default::default() }).await.unwrap_err();
    assert_refused(&e, &format!("write access to exchange '{}' in vhost '/'", b("x")));
    let e = ch().await.queue_declare(&QueueDeclare { queue: a("q"), arguments: dlx(""), ..Default::default() }).await.unwrap_err();
    assert_refused(&e, "write access to exchange 'amq.default'");
    // An exchange whose unroutable messages would go to Bob's.
    let ae = kombu::value::headers([("alternate-exchange", b("x"))]);
    let e = ch().await.exchange_declare(&ExchangeDeclare { exchange: a("x"), arguments: ae, ..Default::default() }).await.unwrap_err();
    assert_refused(&e, &format!("write access to exchange '{}'", b("x")));
    // An exchange-to-exchange binding into Bob's exchange; a binding of Bob's queue.
    let e = ch().await.exchange_bind(&ExchangeBind { destination: b("x"), source: a("x"), routing_key: "#".into(), ..Default::default() }).await.unwrap_err();
    assert_refused(&e, &format!("write access to exchange '{}'", b("x")));
    let e = ch().await.queue_bind(&QueueBind { queue: b("inbox"), exchange: a("x"), routing_key: "#".into(), ..Default::default() }).await.unwrap_err();
    assert_refused(&e, &format!("write access to queue '{}'", b("inbox")));
    // A server-named queue: RabbitMQ checks configure on its amq.gen- name.
    let e = ch().await.queue_declare(&QueueDeclare { queue: String::new(), exclusive: true, ..Default::default() }).await.unwrap_err();
    assert_refused(&e, "configure access to queue 'amq.gen-");
    // Every other row of the table: each names one of Bob's resources (the second name of a
    // binding is Alice's, so that the permission checked is the one on Bob's).
    let xb = |destination: String, source: String| ExchangeBind { destination, source, routing_key: "#".into(), ..Default::default() };
    let qb = |queue: String, exchange: String| QueueBind { queue, exchange, routing_key: "#".into(), ..Default::default() };
    assert_refused(&ch().await.exchange_delete(&ExchangeDelete { exchange: b("x"), ..Default::default() }).await.unwrap_err(), &format!("configure access to exchange '{}'", b("x")));
    assert_refused(&ch().await.queue_delete(&QueueDelete { queue: b("inbox"), ..Default::default() }).await.unwrap_err(), &format!("configure access to queue '{}'", b("inbox")));
    assert_refused(&ch().await.queue_purge(&b("inbox")).await.unwrap_err(), &format!("read access to queue '{}'", b("inbox")));
    assert_refused(&ch().await.basic_get(&b("inbox"), true).await.unwrap_err(), &format!("read access to queue '{}'", b("inbox")));
    let consume = kombu::proto::methods::BasicConsume { queue: b("inbox"), no_ack: true, ..Default::default() };
    assert_refused(&ch().await.basic_consume(&consume).await.unwrap_err(), &format!("read access to queue '{}'", b("inbox")));
    assert_refused(&ch().await.queue_bind(&qb(a("q"), b("x"))).await.unwrap_err(), &format!("read access to exchange '{}'", b("x")));
    assert_refused(&ch().await.queue_unbind(&qb(b("inbox"), b("x"))).await.unwrap_err(), &format!("write access to queue '{}'", b("inbox")));
    assert_refused(&ch().await.exchange_bind(&xb(a("x"), b("x"))).await.unwrap_err(), &format!("read access to exchange '{}'", b("x")));
    assert_refused(&ch().await.exchange_unbind(&xb(b("x"), a("x"))).await.unwrap_err(), &format!("write access to exchange '{}'", b("x")));
    // Within her own names, the same declarations work.
    let own = ch().await;
    own.exchange_declare(&ExchangeDeclare { exchange: a("dlx"), ..Default::default() }).await.unwrap();
    own.queue_declare(&QueueDeclare { queue: a("q"), arguments: dlx(&a("dlx")), ..Default::default() }).await.unwrap();
    own.exchange_declare(&ExchangeDeclare { exchange: a("x"), arguments: kombu::value::headers([("alternate-exchange", a("dlx"))]), ..Default::default() }).await.unwrap();
    // Nothing of Alice's reached Bob's queue.
    let ok = bch.queue_declare(&QueueDeclare { queue: b("inbox"), passive: true, ..Default::default() }).await.unwrap();
    assert_eq!(ok.message_count, 1, "only Bob's own message");
    for q in [a("q")] {
        own.queue_delete(&QueueDelete { queue: q, ..Default::default() }).await.unwrap();
    }
    for x in [a("x"), a("dlx")] {
        own.exchange_delete(&ExchangeDelete { exchange: x, ..Default::default() }).await.unwrap();
    }
    bch.queue_delete(&QueueDelete { queue: b("inbox"), ..Default::default() }).await.unwrap();
    bch.exchange_delete(&ExchangeDelete { exchange: b("x"), ..Default::default() }).await.unwrap();
    let _ = alice.close().await;
    let _ = bob.close().await;
    g.shutdown().await;
}

#[tokio::test]
async fn permissions_as_rabbitmq_checks_them_on_the_embedded_broker() {
    permissions_as_rabbitmq_checks_them("memory://").await;
}

#[tokio::test]
async fn permissions_as_rabbitmq_checks_them_on_rabbitmq() {
    if rabbitmq_up() {
        permissions_as_rabbitmq_checks_them(RABBITMQ).await;
    }
}

#[tokio::test]
async fn a_jwt_without_the_configured_audience_is_refused() {
    let g = start().await;
    let now = jsonwebtoken::get_current_timestamp();
    let secret = "a-gateway-test-secret-of-32-bytes+";
    let err = Connection::new(&url(&g, Some(&jwt(serde_json::json!({"sub": "no-aud", "exp": now + 60, "vhosts": ["/web"]}), secret)), "/web")).unwrap().connect().await.unwrap_err();
    assert_eq!(err.name(), "AccessRefused", "{err}");
    assert!(err.to_string().contains("no \"aud\" claim"), "{err}");
    g.shutdown().await;
}

#[tokio::test]
async fn the_401_text_says_where_the_token_goes() {
    let g = start().await;
    let err = Connection::new(&url(&g, None, "/web")).unwrap().connect().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("requires a token") && text.contains("hello's \"token\" field"), "{text}");
    g.shutdown().await;
}

/// An Origin header given twice, or one that is not visible ASCII, is refused like a wrong
/// one (fail closed) when allowed origins are configured.
#[tokio::test]
async fn a_malformed_or_duplicated_origin_is_refused() {
    let g = start().await;
    let request = |origins: &[HeaderValue]| {
        let mut req = format!("ws://{}/gateway", g.addr).into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(kombu::proto::gateway::SUBPROTOCOL));
        for o in origins {
            req.headers_mut().append("Origin", o.clone());
        }
        req
    };
    let good = HeaderValue::from_static("https://app.example");
    let err = tokio_tungstenite::connect_async(request(&[good.clone(), HeaderValue::from_static("https://evil.example")])).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    let err = tokio_tungstenite::connect_async(request(&[good.clone(), good.clone()])).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    let err = tokio_tungstenite::connect_async(request(&[HeaderValue::from_bytes(b"https://app.example\xff").unwrap()])).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    assert!(tokio_tungstenite::connect_async(request(&[good])).await.is_ok());
    assert!(tokio_tungstenite::connect_async(request(&[])).await.is_ok(), "no Origin: not a browser");
    g.shutdown().await;
}

/// `GET path` with an optional bearer token: (status, body).
async fn http_get(g: &Running, path: &str, token: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// `/api/snapshot` needs a token, shows an identity only what it may configure or read, and
/// is bounded however many queues there are.
#[tokio::test]
async fn the_snapshot_needs_a_token_and_shows_only_the_identitys_resources() {
    let id = kombu::uuid().replace('-', "");
    let g = gateway_with("memory://", &two_identities(&id)).await;
    let (bob_token, alice_token) = (format!("bob-token-{id}"), format!("alice-token-{id}"));
    let (a, b) = (format!("t{id}.a.q"), format!("t{id}.b.q"));
    for (token, q) in [(&alice_token, &a), (&bob_token, &b)] {
        let conn = raw(&g, token).await;
        conn.open_channel().await.unwrap().queue_declare(&QueueDeclare { queue: q.clone(), ..Default::default() }).await.unwrap();
        conn.close().await.unwrap();
    }
    let (status, body) = http_get(&g, "/api/snapshot?vhost=/", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Authorization: Bearer"), "{body}");
    assert_eq!(http_get(&g, "/api/snapshot?vhost=/", Some("not-a-token")).await.0, 401);
    assert_eq!(http_get(&g, "/api/snapshot?vhost=/other", Some(&bob_token)).await.0, 403);
    let (status, body) = http_get(&g, "/api/snapshot?vhost=/", Some(&bob_token)).await;
    assert_eq!(status, 200, "{body}");
    let s: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = s["queues"].as_array().unwrap().iter().map(|q| q["name"].as_str().unwrap()).collect();
    assert!(names.contains(&b.as_str()) && !names.contains(&a.as_str()), "{names:?}");
    assert!(s["queues"].as_array().unwrap().iter().all(|q| q["name"].as_str().unwrap().starts_with(&format!("t{id}.b.")) || q["name"].as_str().unwrap().starts_with("amq.gen-")));
    assert_eq!(s["truncated"], false);
    // Bounded: 1,001 more of Bob's queues, at most 1,000 listed.
    let direct = Connection::new("memory://").unwrap();
    let ch = direct.default_channel().await.unwrap();
    for i in 0..1001 {
        Queue::new(format!("t{id}.b.n{i}")).bind(&ch).declare(false).await.unwrap();
    }
    // Snapshots are reused for a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = http_get(&g, "/api/snapshot?vhost=/", Some(&bob_token)).await;
    assert_eq!(status, 200);
    let s: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((s["queues"].as_array().unwrap().len(), &s["truncated"]), (kombu_gateway::server::SNAPSHOT_MAX_ENTRIES, &serde_json::json!(true)));
    for i in 0..1001 {
        Queue::new(format!("t{id}.b.n{i}")).bind(&ch).delete(false, false).await.unwrap();
    }
    direct.release().await.unwrap();
    g.shutdown().await;
}

/// The `/amqp` relay with a token file answers the client itself until the token is accepted:
/// its `connection.start` tells nothing of the broker, a wrong token or an oversized message
/// never opens a broker connection (a listener standing in for the broker counts them).
#[tokio::test]
async fn the_relay_logs_the_client_in_before_it_connects_to_the_broker() {
    use futures::{SinkExt, StreamExt};
    use kombu::proto::amqp::{self, Method};
    use tokio_tungstenite::tungstenite::Message as Ws;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let fake_broker = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(s);
        }
    });
    kombu_gateway::register_transports();
    let g = server::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        broker: format!("amqp://gwuser:S3cretPW@127.0.0.1:{port}//"),
        auth: Some(Arc::new(Auth::parse(TOKENS).unwrap())),
        max_frame: 4096,
        ..Config::default()
    })
    .await
    .unwrap();
    let close_of = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("closed within 5 s") {
            Some(Ok(Ws::Close(Some(f)))) => return (u16::from(f.code), f.reason.to_string()),
            Some(Ok(Ws::Close(None))) | None | Some(Err(_)) => return (0, String::new()),
            Some(Ok(_)) => {}
        }
    };
    // Idle sockets and sockets that only sent the header cost no broker connection.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio_tungstenite::connect_async(format!("ws://{}/amqp", g.addr)).await.unwrap().0);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/amqp", g.addr)).await.unwrap();
    ws.send(Ws::Binary(Bytes::from_static(amqp::PROTOCOL_HEADER))).await.unwrap();
    let Some(Ok(Ws::Binary(start))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() else { panic!("connection.start") };
    let f = amqp::split_frame(&start, 1 << 20).unwrap().unwrap();
    let Method::ConnectionStart { mechanisms, server_properties, .. } = f.method().unwrap() else { panic!("{:?}", f.method()) };
    assert_eq!((mechanisms.as_str(), server_properties["product"].as_str()), ("PLAIN", Some("kombu-gateway")));
    for secret in ["version", "cluster_name", "platform", "information"] {
        assert!(!server_properties.contains_key(secret), "{secret} before login: {server_properties:?}");
    }
    assert_eq!(server_properties["capabilities"]["publisher_confirms"], true);
    // A wrong token: refused, and still no broker connection.
    let mut bytes = bytes::BytesMut::new();
    let start_ok = Method::ConnectionStartOk { client_properties: Default::default(), mechanism: "PLAIN".into(), response: b"\0anyone\0wrong-token-1".to_vec(), locale: "en_US".into() };
    amqp::write_method(0, &start_ok, &mut bytes).unwrap();
    ws.send(Ws::Binary(bytes.freeze())).await.unwrap();
    let Some(Ok(Ws::Binary(close))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() else { panic!("connection.close") };
    let f = amqp::split_frame(&close, 1 << 20).unwrap().unwrap();
    assert!(matches!(f.method().unwrap(), Method::ConnectionClose { reply_code: 403, .. }), "{:?}", f.method());
    assert_eq!(close_of(&mut ws).await.0, 1008);
    // A message over the size limit: 1009 with a reason.
    let (mut big, _) = tokio_tungstenite::connect_async(format!("ws://{}/amqp", g.addr)).await.unwrap();
    big.send(Ws::Binary(vec![0u8; 10_000].into())).await.unwrap();
    let (code, reason) = close_of(&mut big).await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("10000") && reason.contains("4096"), "{reason}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0, "no broker connection before a login");
    // The right token: now the relay connects.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/amqp", g.addr)).await.unwrap();
    ws.send(Ws::Binary(Bytes::from_static(amqp::PROTOCOL_HEADER))).await.unwrap();
    let mut bytes = bytes::BytesMut::new();
    let start_ok = Method::ConnectionStartOk { client_properties: Default::default(), mechanism: "PLAIN".into(), response: b"\0anyone\0web-token-123".to_vec(), locale: "en_US".into() };
    amqp::write_method(0, &start_ok, &mut bytes).unwrap();
    ws.send(Ws::Binary(bytes.freeze())).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while accepted.load(std::sync::atomic::Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    drop(idle);
    g.shutdown().await;
    fake_broker.abort();
}

/// A `/gateway` message over the size limit closes with 1009 and a reason.
#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;
    kombu_gateway::register_transports();
    let g = server::start(Config { listen: "127.0.0.1:0".parse().unwrap(), max_frame: 4096, ..Config::default() }).await.unwrap();
    let mut req = format!("ws://{}/gateway", g.addr).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(kombu::proto::gateway::SUBPROTOCOL));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Ws::Binary(vec![0u8; 10_000].into())).await.unwrap();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("closed within 5 s") {
            Some(Ok(Ws::Close(f))) => break f,
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    let f = close.expect("a close code");
    assert_eq!(u16::from(f.code), 1009, "{f:?}");
    assert!(f.reason.contains("10000") && f.reason.contains("4096"), "{f:?}");
    g.shutdown().await;
}
