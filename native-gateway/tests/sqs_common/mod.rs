//! Shared by the sqs_* test binaries (with `support`, which they include too): the moto
//! server scripts/test.sh starts (127.0.0.1, port MOTO_PORT, default 4566), unique queue
//! name prefixes, raw SQS calls, cleanup, and the holder process's SQS side.
#![allow(dead_code)]

use std::process::Child;
use std::time::Duration;

use kombu::transport::ConnectInfo;
use kombu::{Connection, ConnectionOptions, Queue, Value};
use kombu_gateway::sqs::{Endpoint, SqsClient};
use serde_json::{json, Value as Json};

pub fn port() -> u16 {
    std::env::var("MOTO_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(4566)
}

pub fn url() -> String {
    format!("sqs://test:test@127.0.0.1:{}", port())
}

/// Registers the native transports; false (the test skips) when moto is not listening,
/// which under CI is a failure instead.
pub fn moto_up() -> bool {
    kombu_gateway::register_transports();
    let addr = format!("127.0.0.1:{}", port()).parse().unwrap();
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
        assert!(std::env::var_os("CI").is_none(), "moto must run on 127.0.0.1:{} under CI (scripts/test.sh starts it)", port());
        eprintln!("skipping: no moto (SQS) on 127.0.0.1:{}", port());
        return false;
    }
    true
}

/// A unique queue name prefix for one test (`kwt<8 hex>-`).
pub fn prefix() -> String {
    format!("kwt{}-", &kombu::uuid().replace('-', "")[..10])
}

/// Options for an sqs:// connection with `queue_name_prefix` and short waits.
pub fn options(prefix: &str, extra: &[(&str, Value)]) -> ConnectionOptions {
    let mut o = ConnectionOptions::default();
    o.transport_options.insert("queue_name_prefix".into(), Value::from(prefix));
    o.transport_options.insert("region".into(), Value::from("us-east-1"));
    o.transport_options.insert("wait_time_seconds".into(), Value::from(1));
    o.transport_options.insert("polling_interval".into(), Value::from(0.2));
    for (k, v) in extra {
        o.transport_options.insert((*k).into(), v.clone());
    }
    o
}

pub fn connection(prefix: &str, extra: &[(&str, Value)]) -> Connection {
    Connection::with_options(&url(), options(prefix, extra)).unwrap()
}

/// Raw SQS calls to moto, for checking what is stored and for cleanup.
pub struct Raw {
    client: SqsClient,
    at: Endpoint,
}

impl Raw {
    pub fn new() -> Raw {
        let info = ConnectInfo { transport: "sqs".into(), hostname: "127.0.0.1".into(), ..Default::default() };
        let at = Endpoint {
            url: format!("http://127.0.0.1:{}", port()),
            region: "us-east-1".into(),
            credentials: aws_credential_types::Credentials::new("test", "test", None, None, "test"),
        };
        Raw { client: SqsClient::new(&info, Duration::from_secs(30), Duration::from_secs(5)).unwrap(), at }
    }

    pub async fn call(&self, op: &str, input: Json) -> Json {
        self.client.call(&self.at, op, &input, Duration::from_secs(20)).await.unwrap_or_else(|e| panic!("{op}: {e}"))
    }

    pub fn queue_url(&self, sqs_name: &str) -> String {
        format!("http://127.0.0.1:{}/123456789012/{sqs_name}", port())
    }

    /// The SQS queue names that start with `prefix`.
    pub async fn queues(&self, prefix: &str) -> Vec<String> {
        let out = self.call("ListQueues", json!({"QueueNamePrefix": prefix})).await;
        let mut names: Vec<String> = out["QueueUrls"].as_array().into_iter().flatten().filter_map(|u| u.as_str()?.rsplit('/').next().map(str::to_owned)).collect();
        names.sort();
        names
    }

    pub async fn attribute(&self, sqs_name: &str, name: &str) -> String {
        let out = self.call("GetQueueAttributes", json!({"QueueUrl": self.queue_url(sqs_name), "AttributeNames": [name]})).await;
        out["Attributes"][name].as_str().unwrap_or_default().to_owned()
    }

    /// Messages visible now (received, then made visible again at once).
    pub async fn peek(&self, sqs_name: &str) -> Vec<Json> {
        let url = self.queue_url(sqs_name);
        let out = self.call("ReceiveMessage", json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0, "MessageAttributeNames": ["All"]})).await;
        let msgs: Vec<Json> = out["Messages"].as_array().cloned().unwrap_or_default();
        for m in &msgs {
            self.call("ChangeMessageVisibility", json!({"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0})).await;
        }
        msgs
    }

    /// Delete every queue whose name starts with `prefix`.
    pub async fn cleanup(&self, prefix: &str) {
        for name in self.queues(prefix).await {
            self.call("DeleteQueue", json!({"QueueUrl": self.queue_url(&name)})).await;
        }
    }
}

/// Run `sqs_common::hold_messages_until_killed` in a child process: it consumes `count`
/// messages of `queue` and holds them unacknowledged. Returns once it holds them.
pub fn hold_in_child(prefix: &str, queue: &str, count: usize, visibility: u32) -> Child {
    crate::support::spawn_holder("sqs_common::hold_messages_until_killed", ("KOMBU_SQS_HOLD", format!("{prefix} {queue} {count} {visibility}")))
}

/// Not a test on its own: the holder process of `hold_in_child` (does nothing without
/// KOMBU_SQS_HOLD).
#[tokio::test]
async fn hold_messages_until_killed() {
    let Ok(spec) = std::env::var("KOMBU_SQS_HOLD") else { return };
    let mut parts = spec.split(' ');
    let (prefix, queue) = (parts.next().unwrap(), parts.next().unwrap());
    let count: usize = parts.next().unwrap().parse().unwrap();
    let visibility: u64 = parts.next().unwrap().parse().unwrap();
    kombu_gateway::register_transports();
    let conn = connection(prefix, &[("visibility_timeout", Value::from(visibility))]);
    let consumer = conn.consumer(vec![Queue::new(queue)]).await.unwrap().prefetch_count(count as u16);
    crate::support::hold_forever(&consumer, count, Duration::from_secs(20)).await;
}
