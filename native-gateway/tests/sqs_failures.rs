//! sqs:// when things go wrong: an endpoint that refuses, credentials SQS rejects, a body
//! over the queue's maximum size, predefined queues that do not exist, and at-least-once
//! when a consumer or a gateway holding messages is killed with SIGKILL (each message comes
//! back after a short visibility timeout, exactly once in the count).
//!
//! Credentials are checked by a second moto server, started by the test with its IAM
//! authentication on (`INITIAL_NO_AUTH_ACTION_COUNT`); the shared one on MOTO_PORT stays
//! open for the other tests.

mod sqs_common;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use kombu::{Connection, ConnectionOptions, PublishOptions, Value};
use serde_json::json;
use sqs_common::{connection, hold_in_child, moto_up, port, prefix, Raw};
use support::{collect_redelivered, hold_through_gateway_and_kill, kill, publish_numbers, GatewayProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A connection that makes one attempt (the errors are the point).
fn once(url: &str) -> Connection {
    let mut o = ConnectionOptions::default();
    o.transport_options.insert("region".into(), Value::from("us-east-1"));
    o.connect_timeout = Some(2.0);
    Connection::with_options(url, o).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_that_refuses_is_named() {
    kombu_gateway::register_transports();
    let conn = once("sqs://test:test@127.0.0.1:9");
    let e = conn.default_channel().await.unwrap_err();
    assert!(e.to_string().contains("http://127.0.0.1:9") && e.to_string().contains("unreachable"), "{e}");
}

/// A private moto server that checks every request's signature against its IAM users
/// after the first `free` requests (which the test spends creating a user and its key).
struct AuthMoto {
    port: u16,
    child: std::process::Child,
}

impl AuthMoto {
    /// `None` (the test skips) without the interop venv, which has moto.
    async fn start(free: u32) -> Option<AuthMoto> {
        let python = support::python()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", free.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto.server from the interop venv");
        let moto = AuthMoto { port, child };
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(60), "moto with IAM auth did not start on {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(moto)
    }

    /// One IAM call (Query protocol) while requests are still free: the XML answer.
    async fn iam(&self, form: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        // moto routes on the credential scope's service; the signature is not checked yet.
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDSETUP/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0";
        let req = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            self.port,
            form.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "IAM {form}: {out}");
        out
    }

    fn url(&self, key: &str, secret: &str) -> String {
        format!("sqs://{key}:{}@127.0.0.1:{}", secret.replace('/', "%2F").replace('+', "%2B"), self.port)
    }
}

impl Drop for AuthMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn xml<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text.find(&format!("<{name}>")).unwrap_or_else(|| panic!("no <{name}> in {text}")) + name.len() + 2;
    &text[start..start + text[start..].find(&format!("</{name}>")).unwrap()]
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_are_named_with_sqs_error_code() {
    kombu_gateway::register_transports();
    let Some(moto) = AuthMoto::start(3).await else { return };
    moto.iam("Action=CreateUser&UserName=kombu&Version=2010-05-08").await;
    let key = moto.iam("Action=CreateAccessKey&UserName=kombu&Version=2010-05-08").await;
    let (id, secret) = (xml(&key, "AccessKeyId").to_owned(), xml(&key, "SecretAccessKey").to_owned());
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sqs:*","Resource":"*"}]}"#;
    let form = format!("Action=PutUserPolicy&UserName=kombu&PolicyName=sqs&PolicyDocument={}&Version=2010-05-08", urlencode(policy));
    moto.iam(&form).await;
    // From here on every request is authenticated.
    // An access key SQS does not know.
    let e = once(&moto.url("AKIDUNKNOWN0000000000", &secret)).default_channel().await.unwrap_err();
    assert!(e.to_string().contains("InvalidClientTokenId") && e.to_string().contains("ListQueues"), "{e}");
    // A known key with the wrong secret.
    let e = once(&moto.url(&id, "not-the-secret")).default_channel().await.unwrap_err();
    assert!(e.to_string().contains("SignatureDoesNotMatch") && e.to_string().contains("ListQueues"), "{e}");
    // The right ones: the same server takes our SigV4 signatures for a whole round trip.
    let mut o = ConnectionOptions::default();
    o.transport_options.insert("region".into(), Value::from("us-east-1"));
    o.transport_options.insert("wait_time_seconds".into(), Value::from(1));
    let conn = Connection::with_options(&moto.url(&id, &secret), o).unwrap();
    let q = kombu::Queue::new("signed");
    conn.producer().await.unwrap().publish(json!("ok"), PublishOptions::new().routing_key("signed").declare(&q)).await.unwrap();
    let consumer = conn.consumer(vec![q]).await.unwrap();
    let m = consumer.next_message(Some(Duration::from_secs(20))).await.unwrap();
    assert_eq!(m.payload_as::<String>().unwrap(), "ok");
    m.ack().unwrap();
    consumer.cancel().await.unwrap();
    conn.release().await.unwrap();
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// AWS itself answers a JSON-protocol call signed with an unknown key in JSON (`__type`,
/// and the code again in `x-amzn-query-error`), where moto answers in XML: this stub serves
/// AWS's form, so both forms are read end to end.
#[tokio::test(flavor = "multi_thread")]
async fn awss_json_answer_to_unknown_credentials_is_named() {
    kombu_gateway::register_transports();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stub = tokio::spawn(async move {
        // AWS's answer to a request signed with an unknown access key (JSON protocol).
        let body = r#"{"__type":"com.amazon.coral.service#InvalidClientTokenId","message":"The security token included in the request is invalid."}"#;
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 65536];
            let _ = s.read(&mut buf).await;
            let resp = format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-query-error: InvalidClientTokenId;Sender\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    let conn = once(&format!("sqs://AKIDUNKNOWN:wrong@{addr}"));
    let e = conn.default_channel().await.unwrap_err();
    assert!(e.to_string().contains("InvalidClientTokenId") && e.to_string().contains("ListQueues"), "{e}");
    stub.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_queues_maximum_is_refused_before_sending() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    raw.call("CreateQueue", json!({"QueueName": format!("{p}small"), "Attributes": {"MaximumMessageSize": "1024"}})).await;
    let conn = connection(&p, &[]);
    let producer = conn.producer().await.unwrap();
    let e = producer.publish(json!("x".repeat(2000)), PublishOptions::new().routing_key("small")).await.unwrap_err();
    assert!(matches!(e, kombu::Error::LimitExceeded(_)), "{e:?}");
    assert!(e.to_string().contains("1024") && e.to_string().contains(&format!("{p}small")), "{e}");
    assert!(raw.peek(&format!("{p}small")).await.is_empty(), "nothing was sent");
    // A body that fits goes.
    producer.publish(json!("x".repeat(100)), PublishOptions::new().routing_key("small")).await.unwrap();
    assert_eq!(raw.peek(&format!("{p}small")).await.len(), 1);
    conn.release().await.unwrap();
    raw.cleanup(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_predefined_queue_that_does_not_exist_is_refused_with_sqs_error_code() {
    if !moto_up() {
        return;
    }
    let p = prefix();
    let url = format!("http://127.0.0.1:{}/123456789012/{p}missing", port());
    let mut o = ConnectionOptions::default();
    o.transport_options.insert("predefined_queues".into(), json!({ format!("{p}missing"): {"url": url} }));
    let conn = Connection::with_options(&sqs_common::url(), o).unwrap();
    let e = conn.default_channel().await.unwrap_err();
    assert!(e.to_string().contains("QueueDoesNotExist") || e.to_string().contains("NonExistentQueue"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_held_by_a_consumer_killed_with_sigkill_comes_back() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    // The queue's visibility timeout is 2 s.
    let conn = connection(&p, &[("visibility_timeout", Value::from(2))]);
    publish_numbers(&conn, "jobs", 8).await;
    let holder = hold_in_child(&p, "jobs", 8, 2);
    kill(holder);
    let got = collect_redelivered(&conn, "jobs", 8, 10, Duration::from_secs(30)).await;
    assert_eq!(got.numbers, (0..8).collect::<BTreeSet<i64>>());
    assert_eq!(got.deliveries, 8, "each came back once");
    conn.release().await.unwrap();
    raw.cleanup(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_held_through_a_gateway_killed_with_sigkill_comes_back() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    let conn = connection(&p, &[("visibility_timeout", Value::from(2))]);
    publish_numbers(&conn, "via-gw", 6).await;
    let broker = format!("sqs://test:test@127.0.0.1:{}?queue_name_prefix={p}&region=us-east-1&wait_time_seconds=1&polling_interval=0.2", port());
    let gateway = GatewayProcess::start(&["--broker", &broker]);
    // A browser-like client holds every message through the gateway when the gateway dies.
    hold_through_gateway_and_kill(gateway, "via-gw", 6, Duration::from_secs(15)).await;
    let got = collect_redelivered(&conn, "via-gw", 6, 10, Duration::from_secs(30)).await;
    assert_eq!(got.numbers, (0..6).collect::<BTreeSet<i64>>());
    assert_eq!(got.deliveries, 6, "each came back once");
    conn.release().await.unwrap();
    raw.cleanup(&p).await;
}
