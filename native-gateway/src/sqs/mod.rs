//! `sqs://`: Kombu's Amazon SQS transport, wire-compatible with kombu 5.7 — the core's
//! virtual channel ([`kombu::transport::virtual_channel`]) over an [`SqsStore`]:
//!
//! - `sqs://access_key:secret@host:port`: the host (and port) is the endpoint (an emulator:
//!   `http://host:port`, `https` with `is_secure`); without one (or `localhost` without a
//!   port, what the URL parser fills in for `sqs://`), AWS by region
//!   (`https://sqs.<region>.amazonaws.com`). Credentials: the URL's, else
//!   `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), else the profile
//!   (`AWS_PROFILE`, default `default`) in `~/.aws/credentials`;
//! - queue names are Kombu's: `queue_name_prefix + name` with `.` → `-` and every other
//!   punctuation character but `-` and `_` → `_` (a trailing `.fifo` is kept); queues are
//!   created at `queue.declare` with the `VisibilityTimeout` option (and `FifoQueue`);
//! - MessageBody = base64 of the JSON envelope (`sqs_base64_encoding`); FIFO queues get a
//!   `MessageGroupId` (default `"default"`) and a `MessageDeduplicationId` (a uuid unless
//!   given); `message_attributes` become SQS MessageAttributes; `DelaySeconds` 0-900;
//!   these come from the envelope's properties as Kombu puts them, or from the message's
//!   headers of the same names (moved into the properties, where Python kombu reads them);
//! - ack = DeleteMessage, `reject(requeue=False)` deletes (kombu 5.7), requeue and restore
//!   set the visibility to `wait_time_seconds` (ChangeMessageVisibility, as Kombu);
//! - exchanges and bindings live in the client (Kombu keeps them in process memory);
//! - bodies that are not base64, or not envelopes, from other producers are accepted as
//!   Kombu accepts them.
//!
//! Beyond Kombu: the queues of a consumer are long-polled concurrently (Kombu polls one
//! after the other); publishes issued together go out as SendMessageBatch, acks go out as DeleteMessageBatch and requeues as
//! ChangeMessageVisibilityBatch (10 per call); messages still held by a live consumer get
//! their visibility extended so long work is not redelivered mid-way.

mod client;
mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::Credentials;
use kombu::proto::methods::ExchangeType;
use kombu::transport::virtual_channel::{seconds_option, VirtualConnection, VirtualOptions};
use kombu::transport::{ConnectInfo, Implements, RawConnection, Transport};
use kombu::value::Value;
use kombu::{Error, Result};

pub use client::{Endpoint, SqsClient, SqsError};
pub use store::{calls, render_calls, SqsStore};

/// The SQS transport (registered for `sqs`).
#[derive(Debug, Default)]
pub struct SqsTransport;

/// A queue given in `predefined_queues`: its URL and the credentials for it.
#[derive(Debug, Clone)]
pub struct PredefinedQueue {
    /// The queue's URL.
    pub url: String,
    /// Where its calls go and who signs them.
    pub endpoint: Endpoint,
}

/// The options of the SQS store, with Kombu's defaults.
#[derive(Debug, Clone)]
pub struct SqsOptions {
    /// Where calls go (URL host, or AWS by region) and the default credentials.
    pub endpoint: Endpoint,
    /// `queue_name_prefix`.
    pub queue_name_prefix: String,
    /// `visibility_timeout`, whole seconds (1800), given to CreateQueue.
    pub visibility_timeout: u32,
    /// `wait_time_seconds` (10, at most 20): ReceiveMessage's long poll; also the
    /// visibility a requeued or restored message gets (as Kombu).
    pub wait_time_seconds: u32,
    /// `predefined_queues`: SQS queue name → URL and credentials. When given, nothing is
    /// created or listed, and other queues are refused.
    pub predefined_queues: HashMap<String, PredefinedQueue>,
    /// `sqs_base64_encoding` (true).
    pub base64: bool,
    /// `fetch_message_attributes` as ReceiveMessage's `MessageSystemAttributeNames` and
    /// `MessageAttributeNames` (Kombu: ApproximateReceiveCount always).
    pub system_attribute_names: Vec<String>,
    /// See [`SqsOptions::system_attribute_names`].
    pub message_attribute_names: Vec<String>,
    /// Beyond Kombu: extend the visibility of messages a live consumer still holds
    /// (`extend_visibility`, true).
    pub extend_visibility: bool,
    /// How long one call may take (`socket_timeout`, 30 s) on top of a long poll.
    pub call_timeout: Duration,
    /// `connect_timeout` (5 s).
    pub connect_timeout: Duration,
}

fn bad(option: &str, v: &Value, expected: &str) -> Error {
    Error::InvalidTransportOption { option: option.into(), reason: format!("{v} is not {expected}") }
}

fn option_bool(option: &str, v: &Value) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => Ok(n.as_i64() != Some(0)),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(bad(option, v, "a boolean")),
        },
        _ => Err(bad(option, v, "a boolean")),
    }
}

fn option_str(option: &str, v: &Value) -> Result<String> {
    v.as_str().map(str::to_owned).ok_or_else(|| bad(option, v, "a string"))
}

fn whole_seconds(option: &str, v: &Value, max: u32) -> Result<u32> {
    let d = seconds_option(option, v)?.as_secs_f64();
    if d > f64::from(max) {
        return Err(bad(option, v, &format!("a number of seconds from 0 to {max}")));
    }
    Ok(d as u32)
}

/// Kombu's `entity_name`: `.` → `-`, other ASCII punctuation but `-` and `_` → `_`, a
/// trailing `.fifo` kept.
pub fn entity_name(name: &str) -> String {
    let (stem, fifo) = match name.strip_suffix(".fifo") {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    let mut out: String = stem
        .chars()
        .map(|c| match c {
            '.' => '-',
            '-' | '_' => c,
            c if c.is_ascii_punctuation() => '_',
            c => c,
        })
        .collect();
    if fifo {
        out.push_str(".fifo");
    }
    out
}

/// The credentials: the URL's, the environment's, or the profile's.
fn credentials(info: &ConnectInfo) -> Result<Credentials> {
    if let (Some(k), Some(s)) = (info.userid.as_deref().filter(|s| !s.is_empty()), info.password.as_deref()) {
        return Ok(Credentials::new(k, s, None, None, "url"));
    }
    if let (Ok(k), Ok(s)) = (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Credentials::new(k, s, std::env::var("AWS_SESSION_TOKEN").ok(), None, "environment"));
    }
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let file = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".aws/credentials")));
    if let Some(text) = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()) {
        if let Some(c) = profile_credentials(&text, &profile) {
            return Ok(c);
        }
    }
    Err(Error::InvalidUrl {
        url: format!("sqs://{}", info.hostname),
        reason: format!(
            "no AWS credentials: give them in the URL (sqs://KEY:SECRET@...), in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or in profile {profile:?} of {}",
            file.map_or_else(|| "~/.aws/credentials".into(), |f| f.display().to_string())
        ),
    })
}

/// `aws_access_key_id` / `aws_secret_access_key` / `aws_session_token` of `[profile]` in an
/// AWS credentials file (INI).
fn profile_credentials(text: &str, profile: &str) -> Option<Credentials> {
    let mut in_profile = false;
    let mut kv: HashMap<String, String> = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') && line.ends_with(']') {
            in_profile = line[1..line.len() - 1].trim() == profile;
        } else if in_profile {
            if let Some((k, v)) = line.split_once('=') {
                kv.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
    }
    let key = kv.remove("aws_access_key_id")?;
    let secret = kv.remove("aws_secret_access_key")?;
    Some(Credentials::new(key, secret, kv.remove("aws_session_token"), None, "profile"))
}

impl SqsOptions {
    /// The options in `info`. Errors name the option and what it accepts.
    pub fn from_connect_info(info: &ConnectInfo) -> Result<SqsOptions> {
        let opts = &info.options;
        let region = match opts.get("region") {
            Some(v) => option_str("region", v)?,
            None => std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION")).unwrap_or_else(|_| "us-east-1".into()),
        };
        let is_secure = match opts.get("is_secure") {
            Some(v) => option_bool("is_secure", v)?,
            None => info.ssl,
        };
        let host = info.hostname.trim();
        // `sqs://` (no host): the URL parser fills in `localhost` as for every scheme; an
        // emulator on this machine always has a port.
        let url = if host.is_empty() || (host == "localhost" && info.port.is_none()) {
            format!("https://sqs.{region}.amazonaws.com")
        } else {
            let scheme = if is_secure { "https" } else { "http" };
            let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_owned() };
            match info.port {
                Some(p) => format!("{scheme}://{host}:{p}"),
                None => format!("{scheme}://{host}"),
            }
        };
        let endpoint = Endpoint { url, region: region.clone(), credentials: credentials(info)? };
        let mut o = SqsOptions {
            endpoint,
            queue_name_prefix: String::new(),
            visibility_timeout: 1800,
            wait_time_seconds: 10,
            predefined_queues: HashMap::new(),
            base64: true,
            system_attribute_names: vec!["ApproximateReceiveCount".into()],
            message_attribute_names: Vec::new(),
            extend_visibility: true,
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        };
        for (k, v) in opts {
            match k.as_str() {
                "queue_name_prefix" => o.queue_name_prefix = option_str(k, v)?,
                "visibility_timeout" => o.visibility_timeout = whole_seconds(k, v, 43_200)?,
                "wait_time_seconds" => o.wait_time_seconds = whole_seconds(k, v, 20)?,
                "sqs_base64_encoding" => o.base64 = option_bool(k, v)?,
                "extend_visibility" => o.extend_visibility = option_bool(k, v)?,
                "socket_timeout" => o.call_timeout = seconds_option(k, v)?,
                "fetch_message_attributes" => (o.system_attribute_names, o.message_attribute_names) = fetch_attributes(k, v)?,
                "predefined_queues" => o.predefined_queues = predefined(k, v, &o.endpoint)?,
                _ => {}
            }
        }
        if let Some(t) = info.connect_timeout {
            o.connect_timeout = Duration::from_secs_f64(t.max(0.1));
        }
        Ok(o)
    }

    /// The SQS name of a Kombu queue (`canonical_queue_name`).
    pub fn sqs_name(&self, queue: &str) -> String {
        entity_name(&format!("{}{queue}", self.queue_name_prefix))
    }
}

/// Kombu's `get_message_attributes`: a list names system attributes (ApproximateReceiveCount
/// always added; `ALL` for all); a dict has `MessageSystemAttributeNames` and
/// `MessageAttributeNames`.
fn fetch_attributes(option: &str, v: &Value) -> Result<(Vec<String>, Vec<String>)> {
    const ARC: &str = "ApproximateReceiveCount";
    let names = |v: Option<&Value>| -> Result<Vec<String>> {
        match v {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a.iter().map(|s| option_str(option, s)).collect(),
            Some(other) => Err(bad(option, other, "a list of attribute names")),
        }
    };
    let with_all = |mut list: Vec<String>, always: Option<&str>| -> Vec<String> {
        if list.iter().any(|s| s.eq_ignore_ascii_case("all")) {
            return vec!["All".into()];
        }
        if let Some(a) = always {
            list.push(a.into());
        }
        list.sort();
        list.dedup();
        list
    };
    match v {
        Value::Null | Value::String(_) => Ok((vec![ARC.into()], Vec::new())),
        Value::Array(_) => Ok((with_all(names(Some(v))?, Some(ARC)), Vec::new())),
        Value::Object(m) => Ok((with_all(names(m.get("MessageSystemAttributeNames"))?, Some(ARC)), with_all(names(m.get("MessageAttributeNames"))?, None))),
        other => Err(bad(option, other, "a list of attribute names or a dict")),
    }
}

/// `predefined_queues`: `{name: {"url": ..., "access_key_id": ..., "secret_access_key": ...,
/// "region": ...}}` (credentials and region default to the connection's).
fn predefined(option: &str, v: &Value, default: &Endpoint) -> Result<HashMap<String, PredefinedQueue>> {
    let Value::Object(m) = v else { return Err(bad(option, v, "a dict of queue name to {url, access_key_id, secret_access_key}")) };
    let mut out = HashMap::new();
    for (name, q) in m {
        let url = q.get("url").and_then(Value::as_str).ok_or_else(|| Error::InvalidTransportOption {
            option: option.into(),
            reason: format!("queue {name:?} has no \"url\""),
        })?;
        let (fifo_url, fifo_name) = (url.ends_with(".fifo"), name.ends_with(".fifo"));
        if fifo_url != fifo_name {
            return Err(Error::InvalidTransportOption {
                option: option.into(),
                reason: format!("queue {name:?} and its url {url:?} must both end with .fifo or neither (a FIFO queue's name ends with .fifo)"),
            });
        }
        let parsed: http::Uri = url.parse().map_err(|e| Error::InvalidTransportOption { option: option.into(), reason: format!("queue {name:?}: url {url:?}: {e}") })?;
        let (Some(scheme), Some(authority)) = (parsed.scheme_str(), parsed.authority()) else {
            return Err(Error::InvalidTransportOption { option: option.into(), reason: format!("queue {name:?}: url {url:?} is not absolute") });
        };
        let key = q.get("access_key_id").and_then(Value::as_str);
        let secret = q.get("secret_access_key").and_then(Value::as_str);
        let credentials = match (key, secret) {
            (Some(k), Some(s)) => Credentials::new(k, s, q.get("session_token").and_then(Value::as_str).map(str::to_owned), None, "predefined_queues"),
            _ => default.credentials.clone(),
        };
        let region = q.get("region").and_then(Value::as_str).map_or_else(|| default.region.clone(), str::to_owned);
        out.insert(name.clone(), PredefinedQueue { url: url.to_owned(), endpoint: Endpoint { url: format!("{scheme}://{authority}"), region, credentials } });
    }
    Ok(out)
}

#[async_trait::async_trait]
impl Transport for SqsTransport {
    fn driver_name(&self) -> &'static str {
        "sqs"
    }
    fn default_port(&self) -> Option<u16> {
        None
    }
    fn implements(&self) -> Implements {
        Implements { asynchronous: true, exchange_types: vec![ExchangeType::Direct, ExchangeType::Topic, ExchangeType::Fanout], heartbeats: false }
    }

    async fn establish_connection(&self, info: &ConnectInfo) -> Result<Arc<dyn RawConnection>> {
        let options = SqsOptions::from_connect_info(info)?;
        let virt = VirtualOptions::from_connect_info(info)?;
        let store = SqsStore::connect(info, options).await?;
        Ok(Arc::new(VirtualConnection::new(Arc::new(store), virt)))
    }
}

/// For the gateway: a client's connection to the SQS behind it. SQS has no virtual hosts:
/// the client's virtual host (which its permissions were checked against) becomes part of
/// the queue name prefix (`/shop` → `shop.`, mangled to `shop-` like the rest of the name);
/// `/` uses the broker's names as they are, where Python kombu sees them. The broker's
/// endpoint and credentials are used, never the client's.
pub fn scope_to_vhost(client: &mut ConnectInfo, broker: &ConnectInfo) {
    let vhost = client.virtual_host.trim_start_matches('/').to_owned();
    let mut options = broker.options.clone();
    for (k, v) in &client.options {
        // The client may tune its own polling, never where or as whom the gateway connects.
        if matches!(k.as_str(), "polling_interval" | "wait_time_seconds" | "queue_order_strategy" | "fetch_batch") {
            options.insert(k.clone(), v.clone());
        }
    }
    if !vhost.is_empty() {
        let base = broker.options.get("queue_name_prefix").and_then(Value::as_str).unwrap_or_default();
        options.insert("queue_name_prefix".into(), Value::from(format!("{base}{vhost}.")));
    }
    *client = ConnectInfo { options, virtual_host: client.virtual_host.clone(), ..broker.clone() };
}

/// Register the SQS transport under `sqs`.
pub fn register() {
    kombu::transport::registry::register("sqs", Arc::new(SqsTransport));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(host: &str, port: Option<u16>, opts: serde_json::Value) -> ConnectInfo {
        ConnectInfo {
            transport: "sqs".into(),
            hostname: host.into(),
            port,
            userid: Some("AK".into()),
            password: Some("SK".into()),
            options: serde_json::from_value(opts).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn queue_names_are_mangled_as_kombu_does() {
        // Checked against kombu 5.7's Channel.entity_name.
        assert_eq!(entity_name("bkpfx-bk.q:1"), "bkpfx-bk-q_1");
        assert_eq!(entity_name("a.b@c/d_e-f"), "a-b_c_d_e-f");
        assert_eq!(entity_name("jobs.x.fifo"), "jobs-x.fifo");
        assert_eq!(entity_name("celery"), "celery");
    }

    #[test]
    fn the_endpoint_is_the_urls_host_or_aws_by_region() {
        let o = SqsOptions::from_connect_info(&info("127.0.0.1", Some(4566), json!({}))).unwrap();
        assert_eq!((o.endpoint.url.as_str(), o.endpoint.region.as_str()), ("http://127.0.0.1:4566", "us-east-1"));
        assert_eq!((o.visibility_timeout, o.wait_time_seconds, o.base64), (1800, 10, true));
        let o = SqsOptions::from_connect_info(&info("", None, json!({"region": "eu-west-1"}))).unwrap();
        assert_eq!(o.endpoint.url, "https://sqs.eu-west-1.amazonaws.com");
        let o = SqsOptions::from_connect_info(&info("sqs.local", None, json!({"is_secure": true, "queue_name_prefix": "p."}))).unwrap();
        assert_eq!(o.endpoint.url, "https://sqs.local");
        assert_eq!(o.sqs_name("a.b"), "p-a-b");
    }

    #[test]
    fn urls_through_the_kombu_connection() {
        register();
        let i = kombu::Connection::new("sqs://?region=eu-west-1&queue_name_prefix=app-").unwrap().info();
        let i = ConnectInfo { userid: Some("AK".into()), password: Some("SK".into()), ..i };
        let o = SqsOptions::from_connect_info(&i).unwrap();
        assert_eq!((o.endpoint.url.as_str(), o.queue_name_prefix.as_str()), ("https://sqs.eu-west-1.amazonaws.com", "app-"));
        let i = kombu::Connection::new("sqs://KEY:se%2Fcret@127.0.0.1:4566?wait_time_seconds=2&is_secure=false").unwrap().info();
        let o = SqsOptions::from_connect_info(&i).unwrap();
        assert_eq!((o.endpoint.url.as_str(), o.wait_time_seconds), ("http://127.0.0.1:4566", 2));
        assert_eq!((o.endpoint.credentials.access_key_id(), o.endpoint.credentials.secret_access_key()), ("KEY", "se/cret"));
    }

    #[test]
    fn fetch_message_attributes_as_kombu_reads_them() {
        assert_eq!(fetch_attributes("f", &json!(null)).unwrap(), (vec!["ApproximateReceiveCount".to_owned()], vec![]));
        assert_eq!(fetch_attributes("f", &json!(["SentTimestamp"])).unwrap().0, ["ApproximateReceiveCount", "SentTimestamp"]);
        assert_eq!(fetch_attributes("f", &json!(["all"])).unwrap().0, ["All"]);
        let (s, m) = fetch_attributes("f", &json!({"MessageAttributeNames": ["a", "b"]})).unwrap();
        assert_eq!((s, m), (vec!["ApproximateReceiveCount".to_owned()], vec!["a".to_owned(), "b".to_owned()]));
        assert!(fetch_attributes("f", &json!(3)).is_err());
    }

    #[test]
    fn bad_options_are_named() {
        let e = SqsOptions::from_connect_info(&info("h", None, json!({"wait_time_seconds": 25}))).unwrap_err();
        assert!(e.to_string().contains("wait_time_seconds") && e.to_string().contains("0 to 20"), "{e}");
        let e = SqsOptions::from_connect_info(&info("h", None, json!({"predefined_queues": {"q": {"url": "http://h/1/q.fifo"}}}))).unwrap_err();
        assert!(e.to_string().contains(".fifo"), "{e}");
        let e = SqsOptions::from_connect_info(&info("h", None, json!({"predefined_queues": {"q": {}}}))).unwrap_err();
        assert!(e.to_string().contains("no \"url\""), "{e}");
    }

    #[test]
    fn predefined_queues_carry_their_own_credentials() {
        let o = SqsOptions::from_connect_info(&info(
            "h",
            Some(1),
            json!({"predefined_queues": {"q": {"url": "https://sqs.eu-west-1.amazonaws.com/1/q", "access_key_id": "K2", "secret_access_key": "S2", "region": "eu-west-1"}}}),
        ))
        .unwrap();
        let q = &o.predefined_queues["q"];
        assert_eq!((q.endpoint.url.as_str(), q.endpoint.region.as_str(), q.endpoint.credentials.access_key_id()), ("https://sqs.eu-west-1.amazonaws.com", "eu-west-1", "K2"));
    }

    #[test]
    fn credentials_from_a_profile_file() {
        let c = profile_credentials("[default]\naws_access_key_id = A\naws_secret_access_key=B\n[other]\naws_access_key_id = C\naws_secret_access_key = D\n", "other").unwrap();
        assert_eq!((c.access_key_id(), c.secret_access_key()), ("C", "D"));
        assert!(profile_credentials("[x]\n", "default").is_none());
    }

    #[test]
    fn a_gateway_clients_vhost_is_a_queue_name_prefix_and_the_brokers_credentials_are_used() {
        let broker = info("127.0.0.1", Some(4566), json!({"queue_name_prefix": "app-"}));
        let mut client = ConnectInfo { userid: Some("evil".into()), virtual_host: "/shop".into(), options: serde_json::from_value(json!({"queue_name_prefix": "x", "polling_interval": 0.1})).unwrap(), ..Default::default() };
        scope_to_vhost(&mut client, &broker);
        assert_eq!(client.userid.as_deref(), Some("AK"));
        assert_eq!(client.options.get("queue_name_prefix"), Some(&Value::from("app-shop.")));
        assert_eq!(client.options.get("polling_interval"), Some(&json!(0.1)));
    }
}
