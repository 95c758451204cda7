//! `Connection` (Kombu's `Connection`): lazy, opened at first use; declarations, and the
//! factories of producers, consumers and simple queues on its default channel.

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::consumer::JsConsumer;
use super::convert::{kombu, millis, outcome, required_string, spawn, string_arg, to_js, value_error, JsResult};
use super::options::{entity_from_js, queue_from_js, Fields};
use super::producer::JsProducer;
use super::simple::JsSimpleQueue;
use crate::retry::{FailoverStrategy, RetryPolicy};
use crate::ConnectionEvent;
use crate::value::Headers;
use crate::{Channel, Connection, ConnectionOptions, Entity};

/// The Connection options lib.js sends (times in seconds, as the core takes them).
fn connection_options(options: &JsValue) -> JsResult<ConnectionOptions> {
    let mut f = Fields::from_js("Connection options", options)?;
    let mut transport_options = f.map("transportOptions").unwrap_or_default();
    // Named as the JS option (the core's error names Kombu's `failover_strategy`).
    let failover_strategy = f
        .get("failoverStrategy", r#"one of "round-robin", "shuffle""#, |v| FailoverStrategy::parse(v.as_str()?).ok())
        .unwrap_or_default();
    // Kombu's `confirm_publish` transport option: a publish resolves once the broker has it.
    if let Some(c) = f.bool("confirmPublish") {
        transport_options.insert("confirm_publish".into(), c.into());
    }
    let o = ConnectionOptions {
        transport_options,
        heartbeat: f.f64("heartbeat"),
        connect_timeout: f.f64("connectTimeout"),
        ssl: f.bool("ssl"),
        login_method: f.str("loginMethod"),
        failover_strategy,
        alternates: f.strings("alternates").unwrap_or_default(),
        userid: f.str("userid"),
        password: f.str("password"),
        virtual_host: f.str("virtualHost"),
        transport: f.str("transport"),
        reconnect: f.retry_policy("reconnect"),
    };
    f.done()?;
    Ok(o)
}

/// `new Connection(url, options)`: a lazy connection (Kombu's `Connection`).
#[wasm_bindgen(js_name = Connection)]
pub struct JsConnection {
    inner: Connection,
}

#[wasm_bindgen(js_class = Connection)]
impl JsConnection {
    /// A connection to `url` (default `memory://`). Nothing is opened until it is needed.
    #[wasm_bindgen(constructor)]
    pub fn new(url: JsValue, options: JsValue) -> JsResult<JsConnection> {
        let url = string_arg("the connection URL", &url)?;
        let o = connection_options(&options)?;
        let url = url.unwrap_or_else(|| "memory://".into());
        Ok(JsConnection { inner: kombu(Connection::with_options(&url, o))? })
    }

    /// Connect now (Kombu's `connect`).
    pub fn connect(&self) -> Promise {
        self.call(Call::Connect)
    }

    /// Kombu's `ensure_connection`: connect, retrying with `retryPolicy` (seconds; by
    /// default every 2 s more, up to 30 s, forever) through the failover URLs. A URL or
    /// transport that cannot work is not retried.
    #[wasm_bindgen(js_name = ensureConnection)]
    pub fn ensure_connection(&self, retry_policy: JsValue) -> JsResult<Promise> {
        let policy = match retry_policy.is_undefined() {
            true => RetryPolicy::ensure_connection_default(),
            false => super::options::retry_policy(Fields::from_js("retryPolicy", &retry_policy)?)?,
        };
        Ok(self.call(Call::Ensure(policy)))
    }

    /// Call `listener(event, error, intervalSeconds)` with each connection event:
    /// "connected", "disconnected" (with the error), "reconnecting" (with the error and the
    /// seconds until the next attempt), "blocked" (with the broker's reason, a string, in
    /// place of the error), "unblocked".
    #[wasm_bindgen(js_name = onEvent)]
    pub fn on_event(&self, listener: js_sys::Function) {
        self.inner.on_event(std::sync::Arc::new(move |ev: &ConnectionEvent| {
            let (name, error, interval) = match ev {
                ConnectionEvent::Connected => ("connected", None, None),
                ConnectionEvent::Disconnected(e) => ("disconnected", Some(e), None),
                ConnectionEvent::Reconnecting { error, interval } => ("reconnecting", Some(error), Some(*interval)),
                ConnectionEvent::Blocked { reason } => {
                    let _ = listener.call2(&JsValue::NULL, &JsValue::from_str("blocked"), &JsValue::from_str(reason));
                    return;
                }
                ConnectionEvent::Unblocked => ("unblocked", None, None),
            };
            let error = error.map_or(JsValue::UNDEFINED, super::convert::js_error);
            let _ = listener.call3(&JsValue::NULL, &JsValue::from_str(name), &error, &interval.map_or(JsValue::UNDEFINED, JsValue::from_f64));
        }));
    }

    /// Kombu's `collect`: forget the transport after a connection error (channels are not
    /// closed); the next use reconnects.
    pub fn collect(&self) {
        self.inner.collect();
    }

    /// True while connected.
    #[wasm_bindgen(getter)]
    pub fn connected(&self) -> bool {
        self.inner.connected()
    }

    /// The URL with the password masked unless `includePassword`.
    #[wasm_bindgen(js_name = asUri)]
    pub fn as_uri(&self, include_password: Option<bool>) -> String {
        self.inner.as_uri(include_password.unwrap_or(false))
    }

    /// Transport, host, port, user, virtual host... (password masked).
    pub fn info(&self) -> JsResult<JsValue> {
        to_js(&self.inner.describe())
    }

    /// Close the connection (channels close; unacked messages return to their queues).
    pub fn release(&self) -> Promise {
        self.call(Call::Release)
    }

    /// Wait up to `timeoutMs` (forever when omitted) for one event and dispatch it to the
    /// consumers' callbacks. Rejects with `TimeoutError` when none came.
    #[wasm_bindgen(js_name = drainEvents)]
    pub fn drain_events(&self, timeout_ms: Option<f64>) -> JsResult<Promise> {
        let t = millis(timeout_ms)?;
        Ok(self.call(Call::DrainEvents(t)))
    }

    /// Declare an exchange or queue (`{exchange: {...}}` / `{queue: {...}}`), with its
    /// bindings. Resolves to the queue's name (server-named queues get one) or the exchange's.
    pub fn declare(&self, entity: JsValue) -> JsResult<Promise> {
        let entity = entity_from_js(&entity)?;
        Ok(self.on_default_channel(Op::Declare(entity)))
    }

    /// Delete an exchange or a queue by declaration, with Kombu's `if_unused` / `if_empty`;
    /// for a queue, resolves to the number of messages deleted with it.
    pub fn delete(&self, entity: JsValue, if_unused: Option<bool>, if_empty: Option<bool>) -> JsResult<Promise> {
        let entity = entity_from_js(&entity)?;
        let (if_unused, if_empty) = (if_unused.unwrap_or(false), if_empty.unwrap_or(false));
        Ok(self.on_default_channel(Op::Delete(entity, if_unused, if_empty)))
    }

    /// An operation of a bound entity (Kombu's `exchange(channel)` / `queue(channel)`):
    /// `"bindTo"` / `"unbindFrom"` (`exchange`, `routingKey`, `arguments`) for an exchange or
    /// a queue, `"get"` (`noAck`, `accept`: a `Message` or null) for a queue. Positional
    /// arguments, checked by lib.js (no options struct: fewer bytes in the module).
    #[wasm_bindgen(js_name = entityOp)]
    #[allow(clippy::too_many_arguments)]
    pub fn entity_op(&self, op: JsValue, entity: JsValue, exchange: Option<String>, routing_key: Option<String>, arguments: JsValue, no_ack: Option<bool>, accept: Option<Vec<String>>) -> JsResult<Promise> {
        let op = required_string("the operation", &op)?;
        let entity = entity_from_js(&entity)?;
        let unbind = match op.as_str() {
            "bindTo" => false,
            "unbindFrom" => true,
            "get" => {
                let Entity::Queue(q) = entity else { return Err(value_error("get is an operation of queues")) };
                let accept = match accept {
                    Some(a) => Some(kombu(crate::serialization::Accept::new(&a))?),
                    None => None,
                };
                return Ok(self.on_default_channel(Op::Get(q, no_ack, accept)));
            }
            _ => return Err(value_error(format!("unknown operation {op}"))),
        };
        let source = exchange.ok_or_else(|| value_error(format!("{op} needs the exchange to bind to")))?;
        let args: Headers = Fields::from_js("binding arguments", &arguments)?.into_map();
        let rk = routing_key.unwrap_or_default();
        Ok(self.on_default_channel(Op::Bind { entity, unbind, source, rk, args }))
    }

    /// Remove the ready messages of a queue; resolves to how many.
    pub fn purge(&self, queue: JsValue) -> JsResult<Promise> {
        let q = queue_from_js("queue", &queue)?;
        Ok(self.on_default_channel(Op::Purge(q)))
    }

    /// A producer on the default channel (Kombu's `Connection.Producer`).
    #[wasm_bindgen(js_name = Producer)]
    pub fn producer(&self, options: JsValue) -> JsResult<JsProducer> {
        JsProducer::open(&self.inner, options)
    }

    /// A consumer of `queues` on the default channel (Kombu's `Connection.Consumer`). It
    /// starts consuming at the first `next()` (or `consume()`).
    #[wasm_bindgen(js_name = Consumer)]
    pub fn consumer(&self, queues: JsValue, options: JsValue) -> JsResult<JsConsumer> {
        JsConsumer::open(&self.inner, queues, options)
    }

    /// A `SimpleQueue` named `name` (Kombu's `Connection.SimpleQueue`).
    #[wasm_bindgen(js_name = SimpleQueue)]
    pub fn simple_queue(&self, name: JsValue, options: JsValue) -> JsResult<Promise> {
        JsSimpleQueue::open(&self.inner, required_string("the SimpleQueue name", &name)?, options, false)
    }

    /// A `SimpleBuffer`: transient, auto-deleted, no acks (Kombu's `Connection.SimpleBuffer`).
    #[wasm_bindgen(js_name = SimpleBuffer)]
    pub fn simple_buffer(&self, name: JsValue, options: JsValue) -> JsResult<Promise> {
        JsSimpleQueue::open(&self.inner, required_string("the SimpleBuffer name", &name)?, options, true)
    }

    /// The state of a `memory://` virtual host (exchanges, queues with depths, consumers and
    /// unacked counts, bindings), for dashboards; `undefined` on other transports.
    pub fn snapshot(&self, virtual_host: JsValue) -> JsResult<JsValue> {
        let virtual_host = string_arg("the virtual host", &virtual_host)?;
        // (Without the `memory` feature there is no memory:// connection to look at.)
        #[cfg(feature = "memory")]
        if self.inner.transport_name() == "memory" {
            let vh = virtual_host.unwrap_or_else(|| self.inner.describe()["virtual_host"].as_str().unwrap_or("/").to_owned());
            if let Some(s) = crate::transport::memory::MemoryBroker::global().snapshot(&vh) {
                let mut text = Vec::new();
                s.write_json(&mut text);
                return super::convert::json_to_js(&text);
            }
        }
        #[cfg(not(feature = "memory"))]
        let _ = virtual_host;
        Ok(JsValue::UNDEFINED)
    }
}

impl JsConnection {
    /// A Promise for `op` on the default channel, opened first if need be.
    fn on_default_channel(&self, op: Op) -> Promise {
        self.call(Call::OnDefaultChannel(op))
    }

    /// A Promise for `call` on this connection.
    fn call(&self, call: Call) -> Promise {
        spawn(call.run(self.inner.clone()))
    }
}

/// The asynchronous operations of `Connection`: one enum, so that the module has one future
/// (one state machine) for all of them rather than one per operation. Each value is made
/// once per call and moved into that future, which is as large anyway: boxing the large
/// variant would add an allocation per call and bytes to the module.
#[allow(clippy::large_enum_variant)]
enum Call {
    Connect,
    Ensure(RetryPolicy),
    Release,
    DrainEvents(Option<std::time::Duration>),
    OnDefaultChannel(Op),
}

impl Call {
    async fn run(self, c: Connection) -> JsResult<JsValue> {
        match self {
            Call::Connect => outcome(c.connect().await),
            Call::Ensure(policy) => outcome(c.ensure_connection(&policy, &mut crate::connection::no_errback).await),
            Call::Release => outcome(c.release().await),
            Call::DrainEvents(t) => outcome(c.drain_events(t).await),
            Call::OnDefaultChannel(op) => op.run(kombu(c.default_channel().await)?).await,
        }
    }
}

/// The operations `Connection` runs on its default channel.
enum Op {
    Declare(Entity),
    Delete(Entity, bool, bool),
    Get(crate::Queue, Option<bool>, Option<crate::serialization::Accept>),
    Bind { entity: Entity, unbind: bool, source: String, rk: String, args: Headers },
    Purge(crate::Queue),
}

impl Op {
    async fn run(self, ch: Channel) -> JsResult<JsValue> {
        match self {
            Op::Declare(entity) => {
                let name = match entity {
                    Entity::Exchange(x) => kombu(x.bind(&ch).declare(false, None).await).map(|()| x.name)?,
                    Entity::Queue(q) => kombu(q.bind(&ch).declare(false).await)?,
                };
                Ok(JsValue::from_str(&name))
            }
            Op::Delete(Entity::Exchange(x), if_unused, _) => outcome(x.bind(&ch).delete(if_unused).await),
            Op::Delete(Entity::Queue(q), if_unused, if_empty) => outcome(q.bind(&ch).delete(if_unused, if_empty).await),
            Op::Get(q, no_ack, accept) => {
                Ok(kombu(q.bind(&ch).get(no_ack, accept).await)?.map_or(JsValue::NULL, |m| super::message::JsMessage::from(m).into()))
            }
            Op::Bind { entity, unbind, source, rk, args } => {
                let source = crate::Exchange::from(source);
                outcome(match entity {
                    Entity::Exchange(x) => x.bind(&ch).bind_op(source, &rk, args, unbind).await,
                    Entity::Queue(q) => q.bind(&ch).bind_op(source, &rk, args, unbind).await,
                })
            }
            Op::Purge(q) => outcome(q.bind(&ch).purge().await),
        }
    }
}
