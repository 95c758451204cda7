//! The other ways to reach Redis, each against a private redis-server started here:
//! `redis+socket://` (a Unix socket), `sentinel://` (a sentinel in front of it, asked for
//! the master), `rediss://` (TLS; certificates verified unless `ssl_cert_reqs=none`); and
//! `ack_emulation=false` on the local Redis. Skipped without redis-server, except under CI.

mod redis_common;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kombu::{Connection, ConnectionOptions, Payload, PublishOptions, Queue, Value};
use redis::AsyncCommands;

const WAIT: Option<Duration> = Some(Duration::from_secs(5));

/// A redis-server (or sentinel) of this test, stopped and cleaned up on drop.
struct Server {
    child: Child,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn scratch() -> PathBuf {
    // Short: a Unix socket path has at most 107 bytes.
    let dir = std::env::temp_dir().join(format!("kwr-{}", &kombu::uuid()[..8]));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Start `redis-server ARGS` in `dir`; wait until `ready` exists (a socket) or `port` listens.
fn server(dir: PathBuf, args: &[String], port: Option<u16>, ready: Option<&Path>) -> Option<Server> {
    kombu_gateway::register_transports();
    let child = match Command::new("redis-server").args(args).current_dir(&dir).stdout(Stdio::null()).spawn() {
        Ok(c) => c,
        Err(_) => {
            assert!(std::env::var_os("CI").is_none(), "redis-server must be installed under CI");
            eprintln!("skipping: no redis-server");
            return None;
        }
    };
    let s = Server { child, dir };
    let start = Instant::now();
    loop {
        let up = match (port, ready) {
            (Some(p), _) => std::net::TcpStream::connect(("127.0.0.1", p)).is_ok(),
            (None, Some(f)) => f.exists(),
            _ => true,
        };
        if up {
            return Some(s);
        }
        assert!(start.elapsed() < Duration::from_secs(10), "redis-server {args:?} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn with_options(url: &str, options: &[(&str, Value)]) -> Connection {
    let mut o = ConnectionOptions::default();
    for (k, v) in options {
        o.transport_options.insert((*k).into(), v.clone());
    }
    Connection::with_options(url, o).unwrap()
}

/// Publish one message and get it back on `conn`.
async fn round_trip(conn: &Connection) {
    let q = Queue::new("urls");
    conn.producer().await.unwrap().publish("over there", PublishOptions::new().routing_key("urls").declare(&q)).await.unwrap();
    let m = conn.consumer(vec![q]).await.unwrap().next_message(WAIT).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Text("over there".into()));
    m.ack().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_unix_socket() {
    let dir = scratch();
    let sock = dir.join("redis.sock");
    let args: Vec<String> = ["--port", "0", "--save", "", "--unixsocket"].iter().map(|s| s.to_string()).chain([sock.display().to_string()]).collect();
    let Some(_server) = server(dir, &args, None, Some(&sock)) else { return };
    let conn = Connection::new(&format!("redis+socket://{}?virtual_host=3", sock.display())).unwrap();
    round_trip(&conn).await;
    // The database came from virtual_host.
    conn.producer().await.unwrap().publish("kept", PublishOptions::new().routing_key("urls")).await.unwrap();
    conn.release().await.unwrap();
    let mut r = redis::Client::open(format!("redis+unix://{}?db=3", sock.display())).unwrap().get_multiplexed_async_connection().await.unwrap();
    let n: i64 = r.llen("urls").await.unwrap();
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sentinel_names_the_master() {
    let master_port = free_port();
    let args: Vec<String> = ["--port", &master_port.to_string(), "--bind", "127.0.0.1", "--save", ""].iter().map(|s| s.to_string()).collect();
    let Some(_master) = server(scratch(), &args, Some(master_port), None) else { return };
    let sentinel_port = free_port();
    let dir = scratch();
    let conf = dir.join("sentinel.conf");
    std::fs::write(&conf, format!("port {sentinel_port}\nbind 127.0.0.1\nsentinel monitor kwmaster 127.0.0.1 {master_port} 1\n")).unwrap();
    let args = vec![conf.display().to_string(), "--sentinel".into()];
    let Some(_sentinel) = server(dir, &args, Some(sentinel_port), None) else { return };
    let conn = with_options(&format!("sentinel://127.0.0.1:{sentinel_port}"), &[("master_name", Value::from("kwmaster"))]);
    round_trip(&conn).await;
    conn.release().await.unwrap();
    // Without master_name, the error says what is missing.
    let e = Connection::new(&format!("sentinel://127.0.0.1:{sentinel_port}")).unwrap().connect().await.unwrap_err();
    assert!(e.to_string().contains("master_name"), "{e}");
    let e = with_options(&format!("sentinel://127.0.0.1:{sentinel_port}"), &[("master_name", Value::from("nobody"))]).connect().await.unwrap_err();
    assert!(e.to_string().contains("nobody"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_verifies_the_server_unless_told_not_to() {
    let dir = scratch();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let port = free_port();
    let args: Vec<String> = vec![
        "--port".into(), "0".into(), "--save".into(), "".into(), "--bind".into(), "127.0.0.1".into(),
        "--tls-port".into(), port.to_string(),
        "--tls-cert-file".into(), cert.display().to_string(),
        "--tls-key-file".into(), key.display().to_string(),
        "--tls-ca-cert-file".into(), cert.display().to_string(),
        "--tls-auth-clients".into(), "no".into(),
    ];
    let Some(_server) = server(dir, &args, Some(port), None) else { return };
    let url = format!("rediss://localhost:{port}/0");
    // Trusting its certificate: works.
    let conn = with_options(&url, &[("ssl_ca_certs", Value::from(cert.display().to_string()))]);
    round_trip(&conn).await;
    conn.release().await.unwrap();
    // Not trusting it: refused (Kombu would connect without verifying).
    let e = Connection::new(&url).unwrap().connect().await.unwrap_err();
    assert!(e.is_connection_error(), "{e}");
    // Told not to verify: connects.
    let conn = with_options(&url, &[("ssl_cert_reqs", Value::from("none"))]);
    round_trip(&conn).await;
    conn.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_ack_emulation_nothing_is_recorded() {
    if std::net::TcpStream::connect_timeout(&"127.0.0.1:6379".parse().unwrap(), Duration::from_secs(1)).is_err() {
        assert!(std::env::var_os("CI").is_none(), "Redis must run on 127.0.0.1:6379 under CI");
        return;
    }
    kombu_gateway::register_transports();
    let prefix = format!("kwurls.{}.", kombu::uuid());
    let conn = redis_common::connection(redis_common::URL, &prefix, &[("ack_emulation", Value::Bool(false))]);
    let q = Queue::new("plain");
    conn.producer().await.unwrap().publish("x", PublishOptions::new().routing_key("plain").declare(&q)).await.unwrap();
    let consumer = conn.consumer(vec![q]).await.unwrap();
    let m = consumer.next_message(WAIT).await.unwrap();
    let mut r = redis::Client::open(redis_common::URL).unwrap().get_multiplexed_async_connection().await.unwrap();
    let held: i64 = r.hlen(format!("{prefix}unacked")).await.unwrap();
    assert_eq!(held, 0);
    // A requeue still puts it back (from the message itself).
    m.requeue().unwrap();
    let m = consumer.next_message(WAIT).await.unwrap();
    assert!(m.redelivered());
    m.ack().unwrap();
    conn.release().await.unwrap();
    redis_common::cleanup(redis_common::URL, &prefix).await;
}
