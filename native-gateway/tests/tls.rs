//! TLS: the gateway serving `wss://` with a certificate (a self-signed one made here with
//! rcgen), `gateway+wss://` clients trusting it through `ssl_ca_certs`, and `amqps://` to the
//! local RabbitMQ. RabbitMQ here has no TLS listener, so the amqps test puts a TLS-terminating
//! proxy (tokio-rustls, in the test) in front of its plain port 5672: the client side of the
//! handshake is the real one, the broker behind it is the real one.

use std::path::PathBuf;
use std::time::Duration;

use kombu::{Connection, PublishOptions};
use kombu_gateway::server::{self, Config, Running};
use serde_json::json;

struct Certs {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn certs() -> Certs {
    let dir = std::env::temp_dir().join(format!("kombu-tls-{}", kombu::uuid()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    Certs { dir, cert, key }
}

async fn start(c: &Certs) -> Running {
    kombu_gateway::register_transports();
    server::start(Config { listen: "127.0.0.1:0".parse().unwrap(), tls: Some((c.cert.clone(), c.key.clone())), ..Config::default() }).await.unwrap()
}

const SECOND: Option<Duration> = Some(Duration::from_secs(2));

#[tokio::test]
async fn the_gateway_serves_wss_and_clients_verify_it() {
    let c = certs();
    let g = start(&c).await;
    let port = g.addr.port();
    let vhost = format!("/tls-{}", kombu::uuid());
    let url = format!("gateway+wss://localhost:{port}/gateway?vhost={vhost}&ssl_ca_certs={}", c.cert.display());
    let conn = Connection::new(&url).unwrap();
    let q = conn.simple_queue("secure").await.unwrap();
    q.put(json!({"over": "tls"}), PublishOptions::new()).await.unwrap();
    let m = q.get(true, SECOND).await.unwrap();
    assert_eq!(m.payload_as::<serde_json::Value>().unwrap(), json!({"over": "tls"}));
    m.ack().unwrap();
    conn.release().await.unwrap();

    // Without the CA the certificate is refused, and the error says so.
    let err = Connection::new(&format!("gateway+wss://localhost:{port}/gateway?vhost={vhost}")).unwrap().connect().await.unwrap_err();
    assert!(err.to_string().contains("TLS handshake") && err.to_string().contains("certificate"), "{err}");
    // A name the certificate does not carry is refused too.
    let err = Connection::new(&format!("gateway+wss://127.0.0.1:{port}/gateway?vhost={vhost}&ssl_ca_certs={}", c.cert.display()))
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("TLS handshake"), "{err}");
    // Plain WebSocket to the TLS port fails (and the server stays up).
    let err = Connection::new(&format!("gateway+ws://localhost:{port}/gateway?vhost={vhost}")).unwrap().connect().await.unwrap_err();
    assert_eq!(err.name(), "RecoverableConnectionError", "{err}");
    let again = Connection::new(&url).unwrap();
    again.connect().await.unwrap();
    again.release().await.unwrap();
    // A CA file that does not exist is named.
    let err = Connection::new(&format!("gateway+wss://localhost:{port}/gateway?ssl_ca_certs=/nonexistent/ca.pem")).unwrap().connect().await.unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    g.shutdown().await;
}

/// Test scaffolding: TLS in front of RabbitMQ's plain port (see the module comment).
async fn tls_proxy_to_rabbitmq(c: &Certs) -> Option<u16> {
    tokio::net::TcpStream::connect("127.0.0.1:5672").await.ok()?;
    let config = kombu_gateway::tls::server_config(&c.cert, &c.key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else { return };
                let Ok(mut rabbit) = tokio::net::TcpStream::connect("127.0.0.1:5672").await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut rabbit).await;
            });
        }
    });
    Some(port)
}

#[tokio::test]
async fn amqps_to_rabbitmq() {
    let c = certs();
    let Some(port) = tls_proxy_to_rabbitmq(&c).await else {
        eprintln!("RabbitMQ is not running on 127.0.0.1:5672; skipping");
        return;
    };
    kombu_gateway::register_transports();
    let queue = format!("kombu-wasm-test.amqps.{}", kombu::uuid());
    let conn = Connection::new(&format!("amqps://guest:guest@localhost:{port}//?ssl_ca_certs={}", c.cert.display())).unwrap();
    let q = conn.simple_queue(&queue).await.unwrap();
    q.put(json!({"secure": true}), PublishOptions::new()).await.unwrap();
    let m = q.get(true, SECOND).await.unwrap();
    assert_eq!(m.payload_as::<serde_json::Value>().unwrap(), json!({"secure": true}));
    m.ack().unwrap();
    let ch = conn.default_channel().await.unwrap();
    let decl = kombu::Queue::new(&queue).bind(&ch);
    decl.delete(false, false).await.unwrap();
    kombu::Exchange::direct(&queue).bind(&ch).delete(false).await.unwrap(); // SimpleQueue's exchange
    conn.release().await.unwrap();
}

// `--broker amqps://...`: the gateway reads the URL as `kombu::Connection` does, so it speaks
// TLS to the broker (it used to connect in plain text), trusting the CA the URL names.
#[tokio::test]
async fn the_gateway_fronts_an_amqps_broker_over_tls() {
    let c = certs();
    let Some(port) = tls_proxy_to_rabbitmq(&c).await else {
        eprintln!("RabbitMQ is not running on 127.0.0.1:5672; skipping");
        return;
    };
    kombu_gateway::register_transports();
    let broker = format!("amqps://guest:guest@localhost:{port}//?ssl_ca_certs={}", c.cert.display());
    let g = server::start(Config { listen: "127.0.0.1:0".parse().unwrap(), broker, ..Config::default() }).await.unwrap();
    let queue = format!("kombu-wasm-test.gateway-amqps.{}", kombu::uuid());
    let conn = Connection::new(&format!("gateway+ws://{}/gateway", g.addr)).unwrap();
    let q = conn.simple_queue(&queue).await.unwrap();
    q.put(json!({"through": "the gateway, over tls"}), PublishOptions::new()).await.unwrap();
    let m = q.get(true, SECOND).await.unwrap();
    assert_eq!(m.payload_as::<serde_json::Value>().unwrap(), json!({"through": "the gateway, over tls"}));
    m.ack().unwrap();
    let ch = conn.default_channel().await.unwrap();
    kombu::Queue::new(&queue).bind(&ch).delete(false, false).await.unwrap();
    kombu::Exchange::direct(&queue).bind(&ch).delete(false).await.unwrap(); // SimpleQueue's exchange
    conn.release().await.unwrap();
    // The /amqp relay reaches it over TLS too: RabbitMQ's connection.start comes back.
    {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message as Ws;
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/amqp", g.addr)).await.unwrap();
        ws.send(Ws::Binary(bytes::Bytes::from_static(kombu::proto::amqp::PROTOCOL_HEADER))).await.unwrap();
        let Some(Ok(Ws::Binary(start))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("connection.start within 10 s") else { panic!("connection.start") };
        let f = kombu::proto::amqp::split_frame(&start, 1 << 20).unwrap().expect("a whole frame");
        let kombu::proto::amqp::Method::ConnectionStart { server_properties, .. } = f.method().unwrap() else { panic!("{:?}", f.method()) };
        assert_eq!(server_properties["product"], "RabbitMQ");
    }
    g.shutdown().await;
}
