//! Process mailboxes (Kombu's `kombu.pidbox`): send commands to named nodes and collect
//! their replies, as Celery's remote control does.
//!
//! A [`Mailbox`] named `ns` publishes to the exchange `ns.pidbox` (direct or fanout); each
//! [`Node`] consumes from its own auto-deleted queue `hostname.ns.pidbox` bound to it, and
//! replies go through the direct exchange `reply.ns.pidbox` to the caller's reply queue
//! `oid.reply.ns.pidbox` (expiring after 10 s unused). The message body is Kombu's:
//! `{"method", "arguments", "destination", "pattern", "matcher"}` plus `reply_to` and
//! `ticket` for calls; replies are `{hostname: result}` with the ticket in their headers.
//! Nodes ignore commands whose `destination` list (or glob/pcre `pattern`) leaves them out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::common::uuid;
use crate::connection::Connection;
use crate::consumer::Consumer;
use crate::entity::{Exchange, Queue};
use crate::error::{Error, Result};
use crate::message::Message;
use crate::producer::PublishOptions;
use crate::properties::DeliveryMode;
use crate::rt::{lock, Duration, Instant};
use crate::proto::methods::ExchangeType;
use crate::value::Value;

/// A command handler: `(arguments) -> reply`.
#[cfg(not(target_arch = "wasm32"))]
pub type Handler = Arc<dyn Fn(&Value) -> Result<Value> + Send + Sync>;
/// A command handler: `(arguments) -> reply`.
#[cfg(target_arch = "wasm32")]
pub type Handler = Arc<dyn Fn(&Value) -> Result<Value>>;

/// A mailbox (Kombu's `Mailbox`).
#[derive(Clone)]
pub struct Mailbox {
    namespace: String,
    kind: ExchangeType,
    connection: Connection,
    oid: String,
    /// Serializer for commands and replies (json by default).
    pub serializer: Option<String>,
    /// Accepted content types for replies.
    pub accept: Option<Vec<String>>,
    /// Seconds a command waits in a node's queue.
    pub queue_ttl: Option<f64>,
    /// Seconds a node's unused queue lives.
    pub queue_expires: Option<f64>,
    /// Seconds a reply waits in the reply queue.
    pub reply_queue_ttl: Option<f64>,
    /// Seconds the unused reply queue lives (10 by default).
    pub reply_queue_expires: Option<f64>,
}

impl Mailbox {
    /// A mailbox `namespace` of type `direct` (the default) or `fanout` on `connection`.
    pub fn new(namespace: impl Into<String>, kind: ExchangeType, connection: &Connection) -> Self {
        Mailbox {
            namespace: namespace.into(),
            kind,
            connection: connection.clone(),
            oid: uuid(),
            serializer: None,
            accept: None,
            queue_ttl: None,
            queue_expires: None,
            reply_queue_ttl: None,
            reply_queue_expires: Some(10.0),
        }
    }

    /// The mailbox name.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `<namespace>.pidbox`.
    pub fn exchange(&self) -> Exchange {
        Exchange::new(format!("{}.pidbox", self.namespace), self.kind.clone()).durable(false).delivery_mode(DeliveryMode::Transient)
    }

    /// `reply.<namespace>.pidbox`, direct.
    pub fn reply_exchange(&self) -> Exchange {
        Exchange::new(format!("reply.{}.pidbox", self.namespace), ExchangeType::Direct).durable(false).delivery_mode(DeliveryMode::Transient)
    }

    /// The queue of node `hostname`: `<hostname>.<namespace>.pidbox`.
    pub fn get_queue(&self, hostname: &str) -> Queue {
        let mut q = Queue::new(format!("{hostname}.{}.pidbox", self.namespace)).exchange(self.exchange()).durable(false).auto_delete(true);
        if let Some(e) = self.queue_expires {
            q = q.expires(e);
        }
        if let Some(t) = self.queue_ttl {
            q = q.message_ttl(t);
        }
        q
    }

    /// This mailbox's reply queue: `<oid>.reply.<namespace>.pidbox`, bound with the oid.
    pub fn get_reply_queue(&self) -> Queue {
        let mut q = Queue::new(format!("{}.{}", self.oid, self.reply_exchange().name))
            .exchange(self.reply_exchange())
            .routing_key(self.oid.clone())
            .durable(false)
            .auto_delete(true);
        if let Some(e) = self.reply_queue_expires {
            q = q.expires(e);
        }
        if let Some(t) = self.reply_queue_ttl {
            q = q.message_ttl(t);
        }
        q
    }

    /// A node of this mailbox named `hostname`.
    pub fn node(&self, hostname: impl Into<String>) -> Node {
        Node { hostname: hostname.into(), mailbox: self.clone(), handlers: Arc::new(Mutex::new(HashMap::new())), consumer: Arc::new(Mutex::new(None)) }
    }

    async fn publish(&self, body: Value, reply: bool) -> Result<()> {
        let producer = self.connection.producer().await?;
        let mut opts = PublishOptions::new().exchange(self.exchange()).routing_key("").declare(self.exchange());
        if let Some(s) = &self.serializer {
            opts = opts.serializer(s.clone());
        }
        if reply {
            opts = opts.declare(self.get_reply_queue());
        }
        producer.publish(body, opts).await
    }

    fn command(&self, command: &str, kwargs: Value, destination: Option<&[&str]>, ticket: Option<&str>) -> Value {
        let mut body = json!({
            "method": command,
            "arguments": kwargs,
            "destination": destination.map(|d| d.iter().map(|s| Value::from(*s)).collect::<Vec<_>>()),
            "pattern": null,
            "matcher": null,
        });
        if let Some(t) = ticket {
            body["reply_to"] = json!({"exchange": self.reply_exchange().name, "routing_key": self.oid});
            body["ticket"] = json!(t);
        }
        body
    }

    /// Send `command` to the nodes in `destination` without waiting for replies.
    pub async fn cast(&self, destination: &[&str], command: &str, kwargs: Value) -> Result<()> {
        self.publish(self.command(command, kwargs, Some(destination), None), false).await
    }

    /// Send `command` to every node (Kombu's `abcast`).
    pub async fn abcast(&self, command: &str, kwargs: Value) -> Result<()> {
        self.publish(self.command(command, kwargs, None, None), false).await
    }

    /// Send `command` to the nodes whose hostname matches `pattern` with `matcher`
    /// (`glob` by default, or `pcre`).
    pub async fn cast_pattern(&self, pattern: &str, matcher: Option<&str>, command: &str, kwargs: Value) -> Result<()> {
        let mut body = self.command(command, kwargs, None, None);
        body["pattern"] = json!(pattern);
        body["matcher"] = json!(matcher);
        self.publish(body, false).await
    }

    /// Call `command` on the nodes in `destination` and collect their replies
    /// (`{hostname: result}` each) for up to `timeout`, stopping once every node answered.
    pub async fn call(&self, destination: &[&str], command: &str, kwargs: Value, timeout: Duration) -> Result<Vec<Value>> {
        let ticket = uuid();
        self.publish(self.command(command, kwargs, Some(destination), Some(&ticket)), true).await?;
        self.collect(&ticket, Some(destination.len()), timeout).await
    }

    /// Call `command` on every node and collect the replies that come within `timeout`, up
    /// to `limit` (Kombu's `multi_call`).
    pub async fn multi_call(&self, command: &str, kwargs: Value, timeout: Duration, limit: Option<usize>) -> Result<Vec<Value>> {
        let ticket = uuid();
        self.publish(self.command(command, kwargs, None, Some(&ticket)), true).await?;
        self.collect(&ticket, limit, timeout).await
    }

    async fn collect(&self, ticket: &str, limit: Option<usize>, timeout: Duration) -> Result<Vec<Value>> {
        let channel = self.connection.default_channel().await?;
        let mut consumer = Consumer::new(&channel, vec![self.get_reply_queue()]).no_ack(true);
        if let Some(a) = &self.accept {
            consumer = consumer.accept(a)?;
        }
        let deadline = Instant::now() + timeout;
        let mut replies = Vec::new();
        while limit.is_none_or(|l| replies.len() < l) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match consumer.next_message(Some(deadline - now)).await {
                Ok(m) => {
                    if m.headers().get("ticket").and_then(Value::as_str) == Some(ticket) {
                        replies.push(m.payload_as::<Value>()?);
                    }
                }
                Err(Error::Timeout(_)) => break,
                Err(e) => return Err(e),
            }
        }
        consumer.cancel().await?;
        Ok(replies)
    }
}

/// A mailbox node (Kombu's `Node`): handles the commands sent to its hostname.
#[derive(Clone)]
pub struct Node {
    hostname: String,
    mailbox: Mailbox,
    handlers: Arc<Mutex<HashMap<String, Handler>>>,
    consumer: Arc<Mutex<Option<Consumer>>>,
}

impl Node {
    /// The node's hostname.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Register the handler of `method`.
    pub fn handler(&self, method: impl Into<String>, f: Handler) {
        lock(&self.handlers).insert(method.into(), f);
    }

    /// Start consuming from the node's queue (Kombu's `listen`).
    pub async fn listen(&self) -> Result<()> {
        let channel = self.mailbox.connection.default_channel().await?;
        let mut c = Consumer::new(&channel, vec![self.mailbox.get_queue(&self.hostname)]).no_ack(true);
        if let Some(a) = &self.mailbox.accept {
            c = c.accept(a)?;
        }
        c.consume().await?;
        *lock(&self.consumer) = Some(c);
        Ok(())
    }

    /// Handle the next command, waiting up to `timeout`; false when none came.
    pub async fn handle_next(&self, timeout: Option<Duration>) -> Result<bool> {
        let c = lock(&self.consumer).clone();
        let c = match c {
            Some(c) => c,
            None => {
                self.listen().await?;
                lock(&self.consumer).clone().expect("listening")
            }
        };
        match c.next_message(timeout).await {
            Ok(m) => {
                self.handle_message(&m).await?;
                Ok(true)
            }
            Err(Error::Timeout(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// True if a command with this `destination`/`pattern` is for this node.
    fn is_for_me(&self, body: &Value) -> Result<bool> {
        if let Some(dest) = body.get("destination").and_then(Value::as_array) {
            return Ok(dest.iter().any(|d| d.as_str() == Some(&self.hostname)));
        }
        if let Some(p) = body.get("pattern").and_then(Value::as_str) {
            return crate::matcher::match_(&self.hostname, p, body.get("matcher").and_then(Value::as_str));
        }
        Ok(true)
    }

    /// Dispatch a received command and send the reply when it is a call (Kombu's
    /// `handle_message`). Commands for other nodes are ignored.
    pub async fn handle_message(&self, message: &Message) -> Result<Option<Value>> {
        let body: Value = message.payload_as()?;
        if !self.is_for_me(&body)? {
            return Ok(None);
        }
        let method = body.get("method").and_then(Value::as_str).unwrap_or_default();
        let arguments = body.get("arguments").cloned().unwrap_or(Value::Null);
        let handler = lock(&self.handlers).get(method).cloned();
        let reply = match handler {
            Some(h) => match h(&arguments) {
                Ok(v) => v,
                Err(e) => json!({"error": e.to_string()}),
            },
            None => json!({"error": format!("No such method: {method}")}),
        };
        if let (Some(reply_to), Some(ticket)) = (body.get("reply_to"), body.get("ticket").and_then(Value::as_str)) {
            let exchange = reply_to.get("exchange").and_then(Value::as_str).unwrap_or_default();
            let routing_key = reply_to.get("routing_key").and_then(Value::as_str).unwrap_or_default();
            let producer = self.mailbox.connection.producer().await?;
            let x = Exchange::new(exchange, ExchangeType::Direct).durable(false).delivery_mode(DeliveryMode::Transient);
            let mut opts = PublishOptions::new().exchange(x.clone()).routing_key(routing_key).declare(x).header("ticket", ticket);
            if let Some(s) = &self.mailbox.serializer {
                opts = opts.serializer(s.clone());
            }
            producer.publish(json!({ self.hostname.clone(): reply.clone() }), opts).await?;
        }
        Ok(Some(reply))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn names_follow_kombu() {
        let conn = Connection::new("memory://").unwrap();
        let m = Mailbox::new("celery", ExchangeType::Fanout, &conn);
        assert_eq!(m.exchange().name, "celery.pidbox");
        assert_eq!(m.reply_exchange().name, "reply.celery.pidbox");
        assert_eq!(m.get_queue("w1@host").name, "w1@host.celery.pidbox");
        assert!(m.get_reply_queue().name.ends_with(".reply.celery.pidbox"));
        let n = m.node("w1@host");
        assert!(n.is_for_me(&json!({"destination": ["w1@host"]})).unwrap());
        assert!(!n.is_for_me(&json!({"destination": ["w2@host"]})).unwrap());
        assert!(n.is_for_me(&json!({"destination": null, "pattern": "w*@host", "matcher": null})).unwrap());
        assert!(!n.is_for_me(&json!({"destination": null, "pattern": "^x", "matcher": "pcre"})).unwrap());
        assert!(n.is_for_me(&json!({"destination": null})).unwrap());
    }
}
