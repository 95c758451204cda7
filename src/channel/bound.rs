//! Declarations bound to a channel: the operations of [`Exchange`] and [`Queue`] that need a
//! broker (`declare`, `delete`, `bind_to`, `purge`, `get`, `consume`, ...), and
//! [`maybe_declare`].
//!
//! The declarations themselves are plain values of layer 1 ([`crate::entity`]); binding
//! one stores the [`Channel`] behind the small [`BoundChannel`] handle that layer defines, so
//! that `entity.rs` imports nothing from the Kombu API. The methods here are inherent
//! methods of `Exchange` and `Queue` all the same (`exchange.bind(&channel).declare(...)`).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use super::{Channel, DeliveryCallback, RawOp};
use crate::entity::{BoundChannel, Entity, Exchange, Queue};
use crate::error::{Error, Result};
use crate::message::Message;
use crate::properties::{DeliveryMode, Properties};
use crate::proto::methods::{
    BasicConsume, BasicPublish, Content, ExchangeBind, ExchangeDelete, QueueDeclareOk, QueueDelete,
};
use crate::retry::RetryPolicy;
use crate::serialization::Accept;
use crate::transport::RawChannel;
use crate::value::Headers;

impl BoundChannel for Channel {
    fn channel_id(&self) -> u32 {
        Channel::channel_id(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The channel behind a declaration's handle (only a [`Channel`] is ever stored there).
fn channel_of(handle: &Option<Arc<dyn BoundChannel>>) -> Option<&Channel> {
    handle.as_ref().and_then(|h| h.as_any().downcast_ref::<Channel>())
}

/// The channel behind a declaration's handle, or `NotBoundError` for `operation` on `entity`.
fn bound_channel<'a>(handle: &'a Option<Arc<dyn BoundChannel>>, operation: &'static str, entity: &dyn fmt::Display) -> Result<&'a Channel> {
    channel_of(handle).ok_or_else(|| Error::NotBound { operation, entity: entity.to_string() })
}

fn handle(channel: &Channel) -> Arc<dyn BoundChannel> {
    Arc::new(channel.clone())
}

impl Exchange {
    /// A copy bound to `channel` (Kombu's `exchange(channel)`). The original is unchanged.
    #[must_use = "bind returns a bound copy; the original stays unbound"]
    pub fn bind(&self, channel: &Channel) -> Exchange {
        Exchange { channel: Some(handle(channel)), ..self.clone() }
    }
    /// Bind to `channel` unless already bound.
    pub fn maybe_bind(&mut self, channel: &Channel) {
        if self.channel.is_none() {
            self.channel = Some(handle(channel));
        }
    }
    /// The channel this copy is bound to.
    pub fn channel(&self) -> Option<&Channel> {
        channel_of(&self.channel)
    }

    fn bound(&self, operation: &'static str) -> Result<&Channel> {
        bound_channel(&self.channel, operation, self)
    }

    /// Declare the exchange (or, when `passive`, check that it exists). Does nothing for
    /// [`Exchange::skips_declare`] exchanges unless passive.
    pub async fn declare(&self, nowait: bool, passive: Option<bool>) -> Result<()> {
        let ch = self.bound("declare")?;
        self.declare_on(ch, nowait, passive).await
    }

    pub(crate) async fn declare_on(&self, ch: &Channel, nowait: bool, passive: Option<bool>) -> Result<()> {
        let passive = passive.unwrap_or(self.passive);
        if self.skips_declare() && !passive {
            return Ok(());
        }
        let raw = ch.raw().await?;
        ch.noted(self.declare_raw(&*raw, nowait, passive).await)?;
        if !passive {
            // Declared again after a reconnect.
            if let Ok(c) = ch.connection() {
                c.remember(Entity::Exchange(self.clone()));
            }
        }
        Ok(())
    }

    /// Declare on a transport channel directly.
    pub(crate) async fn declare_raw(&self, raw: &dyn RawChannel, nowait: bool, passive: bool) -> Result<()> {
        if self.skips_declare() && !passive {
            return Ok(());
        }
        raw.exchange_declare(&self.to_declare(passive, nowait)).await
    }

    /// Delete the exchange; with `if_unused`, only when it has no bindings.
    pub async fn delete(&self, if_unused: bool) -> Result<()> {
        let ch = self.bound("delete")?;
        let m = ExchangeDelete { exchange: self.name.clone(), if_unused, nowait: false };
        ch.call(RawOp::ExchangeDelete(&m)).await?;
        if let Ok(c) = ch.connection() {
            c.forget(&Entity::Exchange(self.clone()));
        }
        Ok(())
    }

    /// Bind this exchange to `source`: messages routed by `source` with `routing_key` also go
    /// through this exchange (exchange-to-exchange binding).
    pub async fn bind_to(&self, source: impl Into<Exchange>, routing_key: &str, arguments: Headers) -> Result<()> {
        self.bind_op(source.into(), routing_key, arguments, false).await
    }

    /// Remove an exchange-to-exchange binding made with [`Exchange::bind_to`].
    pub async fn unbind_from(&self, source: impl Into<Exchange>, routing_key: &str, arguments: Headers) -> Result<()> {
        self.bind_op(source.into(), routing_key, arguments, true).await
    }

    /// [`Exchange::bind_to`], or [`Exchange::unbind_from`] with `unbind`: one future for both.
    pub(crate) async fn bind_op(&self, source: Exchange, routing_key: &str, arguments: Headers, unbind: bool) -> Result<()> {
        let ch = self.bound(if unbind { "unbind_from" } else { "bind_to" })?;
        let m = self.exchange_bind(source, routing_key, arguments);
        ch.call(if unbind { RawOp::ExchangeUnbind(&m) } else { RawOp::ExchangeBind(&m) }).await.map(drop)
    }

    fn exchange_bind(&self, source: Exchange, routing_key: &str, arguments: Headers) -> ExchangeBind {
        ExchangeBind {
            destination: self.name.clone(),
            source: source.name,
            routing_key: routing_key.into(),
            nowait: false,
            arguments,
        }
    }

    /// Publish a raw body to this exchange (Kombu's low-level `Exchange.publish`). The body is
    /// sent as is; use a [`crate::Producer`] to serialize.
    pub async fn publish(
        &self,
        body: impl Into<bytes::Bytes>,
        routing_key: &str,
        properties: Properties,
        mandatory: bool,
    ) -> Result<()> {
        let ch = self.bound("publish")?;
        let mut properties = properties;
        if properties.delivery_mode.is_none() {
            properties.delivery_mode =
                Some(self.delivery_mode.unwrap_or(DeliveryMode::Persistent).as_u8());
        }
        let content = Arc::new(Content { properties, body: body.into() });
        let m = BasicPublish { exchange: self.name.clone(), routing_key: routing_key.into(), mandatory, immediate: false };
        ch.call(RawOp::Publish(&m, content)).await.map(drop)
    }
}

impl Queue {
    /// A copy bound to `channel`.
    #[must_use = "bind returns a bound copy; the original stays unbound"]
    pub fn bind(&self, channel: &Channel) -> Queue {
        let mut q = self.clone();
        q.channel = Some(handle(channel));
        q.exchange = self.exchange.bind(channel);
        q
    }
    /// Bind to `channel` unless already bound.
    pub fn maybe_bind(&mut self, channel: &Channel) {
        if self.channel.is_none() {
            *self = self.bind(channel);
        }
    }
    /// The channel this copy is bound to.
    pub fn channel(&self) -> Option<&Channel> {
        channel_of(&self.channel)
    }

    fn bound(&self, operation: &'static str) -> Result<&Channel> {
        bound_channel(&self.channel, operation, self)
    }

    /// Declare the exchange, the queue and the bindings. Returns the queue name (generated
    /// by the broker when the name was empty; the name is stored in `self`).
    pub async fn declare(&mut self, nowait: bool) -> Result<String> {
        let ch = self.bound("declare")?.clone();
        self.declare_on(&ch, nowait).await
    }

    pub(crate) async fn declare_on(&mut self, ch: &Channel, nowait: bool) -> Result<String> {
        if self.no_declare {
            return Ok(self.name.clone());
        }
        let named = !self.name.is_empty();
        let raw = ch.raw().await?;
        let name = ch.noted(self.declare_raw(&*raw, nowait).await)?;
        // Declared again after a reconnect (a queue the broker names gets a new name then:
        // not remembered).
        if named {
            if let Ok(c) = ch.connection() {
                c.remember(Entity::Queue(self.clone()));
            }
        }
        Ok(name)
    }

    /// Declare exchange, queue and bindings on a transport channel directly.
    pub(crate) async fn declare_raw(&mut self, raw: &dyn RawChannel, nowait: bool) -> Result<String> {
        if self.no_declare {
            return Ok(self.name.clone());
        }
        if !self.exchange.name.is_empty() {
            self.exchange.declare_raw(raw, nowait, self.exchange.passive).await?;
        }
        let ok = raw.queue_declare(&self.to_declare(false, nowait)).await?;
        if self.name.is_empty() {
            self.name = ok.queue;
        }
        if !self.exchange.name.is_empty() {
            raw.queue_bind(&self.bind_method(&self.exchange.name, &self.routing_key, &self.binding_arguments, nowait)).await?;
        }
        for b in &self.bindings {
            if let Some(x) = &b.exchange {
                x.declare_raw(raw, nowait, x.passive).await?;
            }
            let xname = b.exchange.as_ref().map(|x| x.name.as_str()).unwrap_or("");
            raw.queue_bind(&self.bind_method(xname, &b.routing_key, &b.arguments, nowait)).await?;
        }
        Ok(self.name.clone())
    }

    /// `queue.declare` only; with `passive`, checks that the queue exists.
    pub async fn queue_declare(&mut self, nowait: bool, passive: bool) -> Result<QueueDeclareOk> {
        let ch = self.bound("queue_declare")?.clone();
        let m = self.to_declare(passive, nowait);
        let raw = ch.raw().await?;
        let ok = ch.noted(raw.queue_declare(&m).await)?;
        if self.name.is_empty() {
            self.name = ok.queue.clone();
        }
        Ok(ok)
    }

    /// Bind the queue to its exchange with its routing key (not for the default exchange).
    pub async fn queue_bind(&self, nowait: bool) -> Result<()> {
        let ch = self.bound("queue_bind")?;
        if self.exchange.name.is_empty() {
            return Ok(());
        }
        let m = self.bind_method(&self.exchange.name, &self.routing_key, &self.binding_arguments, nowait);
        ch.call(RawOp::QueueBind(&m)).await.map(drop)
    }

    /// Remove the queue's binding to its exchange.
    pub async fn queue_unbind(&self, arguments: Option<Headers>) -> Result<()> {
        self.bound("queue_unbind")?;
        self.unbind_from(self.exchange.name.as_str(), &self.routing_key, arguments.unwrap_or_else(|| self.binding_arguments.clone()))
            .await
    }

    /// Bind the queue to `exchange` with `routing_key`.
    pub async fn bind_to(&self, exchange: impl Into<Exchange>, routing_key: &str, arguments: Headers) -> Result<()> {
        self.bind_op(exchange.into(), routing_key, arguments, false).await
    }

    /// Unbind the queue from `exchange` / `routing_key`.
    pub async fn unbind_from(&self, exchange: impl Into<Exchange>, routing_key: &str, arguments: Headers) -> Result<()> {
        self.bind_op(exchange.into(), routing_key, arguments, true).await
    }

    /// [`Queue::bind_to`], or [`Queue::unbind_from`] with `unbind`: one future for both.
    pub(crate) async fn bind_op(&self, exchange: Exchange, routing_key: &str, arguments: Headers, unbind: bool) -> Result<()> {
        let ch = self.bound(if unbind { "unbind_from" } else { "bind_to" })?;
        let m = self.bind_method(&exchange.name, routing_key, &arguments, false);
        ch.call(if unbind { RawOp::QueueUnbind(&m) } else { RawOp::QueueBind(&m) }).await.map(drop)
    }

    /// Remove all ready messages; returns how many.
    pub async fn purge(&self) -> Result<u32> {
        let ch = self.bound("purge")?;
        ch.call(RawOp::QueuePurge(&self.name)).await
    }

    /// Delete the queue (with `if_unused` / `if_empty` conditions); returns the number of
    /// messages deleted with it.
    pub async fn delete(&self, if_unused: bool, if_empty: bool) -> Result<u32> {
        let ch = self.bound("delete")?;
        let m = QueueDelete { queue: self.name.clone(), if_unused, if_empty, nowait: false };
        let n = ch.call(RawOp::QueueDelete(&m)).await?;
        if let Ok(c) = ch.connection() {
            c.forget(&Entity::Queue(self.clone()));
        }
        Ok(n)
    }

    /// Poll one message (`basic.get`), decoding with `accept` when given.
    pub async fn get(&self, no_ack: Option<bool>, accept: Option<Accept>) -> Result<Option<Message>> {
        let ch = self.bound("get")?;
        let no_ack = no_ack.unwrap_or(self.no_ack);
        let msg = ch.basic_get(&self.name, no_ack).await?;
        Ok(msg.map(|m| m.with_accept(accept.map(Arc::new))))
    }

    /// Start consuming with `callback`; returns the consumer tag. Prefer [`crate::Consumer`].
    pub async fn consume(&self, consumer_tag: &str, no_ack: Option<bool>, callback: DeliveryCallback) -> Result<String> {
        let ch = self.bound("consume")?;
        let m = BasicConsume {
            queue: self.name.clone(),
            consumer_tag: consumer_tag.into(),
            no_ack: no_ack.unwrap_or(self.no_ack),
            arguments: self.consumer_arguments.clone(),
            ..Default::default()
        };
        ch.basic_consume(m, callback, None).await
    }

    /// Cancel a consumer started with [`Queue::consume`].
    pub async fn cancel(&self, consumer_tag: &str) -> Result<()> {
        let ch = self.bound("cancel")?;
        ch.basic_cancel(consumer_tag).await
    }
}

impl Entity {
    async fn declare(&self, channel: &Channel) -> Result<()> {
        match self {
            Entity::Exchange(x) => x.declare_on(channel, false, None).await,
            Entity::Queue(q) => q.clone().declare_on(channel, false).await.map(|_| ()),
        }
    }
}

/// Declare `entity` on `channel` unless its connection already declared it (Kombu's
/// `maybe_declare`). Returns true when it was declared now. With a retry policy, the
/// declaration is retried over reconnects ([`crate::Connection::ensure`]).
///
/// ```
/// use kombu::{maybe_declare, Connection, Entity, Queue};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kombu::Result<()> {
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel().await?;
/// let tasks = Entity::from(Queue::new("maybe-declared"));
/// assert!(maybe_declare(&tasks, &channel, None).await?, "declared now");
/// assert!(!maybe_declare(&tasks, &channel, None).await?, "remembered by the connection");
/// # Ok(())
/// # }
/// ```
pub async fn maybe_declare(entity: &Entity, channel: &Channel, retry: Option<&RetryPolicy>) -> Result<bool> {
    let conn = channel.connection()?;
    let cacheable = entity.can_cache_declaration();
    let key = entity.cache_key();
    if cacheable && conn.declared().contains_key(&key) {
        return Ok(false);
    }
    match retry {
        Some(policy) => conn.ensure(policy, crate::connection::no_errback, || entity.declare(channel)).await?,
        None => entity.declare(channel).await?,
    }
    if cacheable {
        conn.declared().insert(key, ());
    }
    Ok(true)
}
