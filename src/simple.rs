//! `SimpleQueue` and `SimpleBuffer`: the queue-like interface (Kombu's `kombu.simple`).
//!
//! The name is used for the exchange, the queue and the routing key. `SimpleQueue` is
//! durable and acknowledged; `SimpleBuffer` is transient, auto-deleted and unacknowledged.

use crate::channel::Channel;
use crate::connection::Connection;
use crate::consumer::Consumer;
use crate::entity::{Exchange, Queue};
use crate::error::{Error, Result};
use crate::message::Message;
use crate::payload::Payload;
use crate::producer::{Producer, PublishOptions};
use crate::properties::DeliveryMode;
use crate::rt::Duration;
use crate::value::Headers;

/// Options of a [`SimpleQueue`] (Kombu's `queue_opts`, `queue_args`, `exchange_opts`, ...).
#[derive(Debug, Clone, Default)]
pub struct SimpleOptions {
    /// Consume without acknowledgements (default: false for queues, true for buffers).
    pub no_ack: Option<bool>,
    /// Start from this queue declaration instead of the defaults (its name, exchange and
    /// routing key are replaced by the simple queue's).
    pub queue: Option<Queue>,
    /// Extra `queue.declare` arguments (`x-queue-mode`, ...).
    pub queue_args: Headers,
    /// Start from this exchange declaration instead of the defaults (its name is replaced).
    pub exchange: Option<Exchange>,
    /// Default serializer for `put`.
    pub serializer: Option<String>,
    /// Default compression for `put`.
    pub compression: Option<String>,
    /// Accepted content types for `get`.
    pub accept: Option<Vec<String>>,
    /// Use this channel instead of the connection's default channel.
    pub channel: Option<Channel>,
}

/// A queue-like interface to one broker queue. See the module documentation.
///
/// ```
/// use kombu::{Connection, PublishOptions};
/// use kombu::rt::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kombu::Result<()> {
/// let conn = Connection::new("memory://")?;
/// let queue = conn.simple_queue("simple-hello").await?;
/// queue.put("hello world", PublishOptions::new()).await?;
/// let message = queue.get(true, Some(Duration::from_secs(1))).await?;
/// assert_eq!(&message.body()[..], b"hello world");
/// message.ack()?;
/// assert_eq!(queue.get(false, None).await.unwrap_err().name(), "Empty");
/// queue.close().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SimpleQueue {
    queue: Queue,
    producer: Producer,
    consumer: Consumer,
    no_ack: bool,
    buffer: bool,
}

impl Connection {
    /// A [`SimpleQueue`] named `name` on the default channel, with default options (Kombu's
    /// `Connection.SimpleQueue(name)`).
    pub async fn simple_queue(&self, name: &str) -> Result<SimpleQueue> {
        SimpleQueue::new(self, name, SimpleOptions::default()).await
    }

    /// A SimpleBuffer ([`SimpleQueue`] without acks) named `name` on the default channel
    /// (Kombu's `Connection.SimpleBuffer(name)`).
    pub async fn simple_buffer(&self, name: &str) -> Result<SimpleQueue> {
        SimpleQueue::buffer(self, name, SimpleOptions::default()).await
    }
}

impl SimpleQueue {
    /// A `SimpleQueue` (Kombu's `Connection.SimpleQueue`): durable, acknowledged.
    pub async fn new(conn: &Connection, name: &str, opts: SimpleOptions) -> Result<Self> {
        Self::create(conn, name, opts, false).await
    }

    /// A `SimpleBuffer` (Kombu's `Connection.SimpleBuffer`): transient, auto-deleted,
    /// unacknowledged.
    pub async fn buffer(conn: &Connection, name: &str, opts: SimpleOptions) -> Result<Self> {
        Self::create(conn, name, opts, true).await
    }

    async fn create(conn: &Connection, name: &str, opts: SimpleOptions, buffer: bool) -> Result<Self> {
        if name.is_empty() {
            return Err(Error::MissingArgument { what: "a SimpleQueue", needs: "a name (it names the exchange, queue and routing key)" });
        }
        let channel = match &opts.channel {
            Some(c) => c.clone(),
            None => conn.default_channel().await?,
        };
        let mut exchange = opts.exchange.clone().unwrap_or_else(|| Exchange::direct(name));
        exchange.name = name.to_owned();
        let mut queue = opts.queue.clone().unwrap_or_default();
        if buffer {
            exchange = exchange.durable(false).auto_delete(true).delivery_mode(DeliveryMode::Transient);
            queue = queue.durable(false).auto_delete(true);
        }
        queue.name = name.to_owned();
        queue.routing_key = name.to_owned();
        queue.exchange = exchange.clone();
        queue.queue_arguments.extend(opts.queue_args.clone());
        let no_ack = opts.no_ack.unwrap_or(buffer);
        let mut producer = Producer::new(&channel).exchange(exchange).routing_key(name);
        if let Some(s) = &opts.serializer {
            producer = producer.serializer(s.clone());
        }
        if let Some(c) = &opts.compression {
            producer = producer.compression(c.clone());
        }
        let mut consumer = Consumer::new(&channel, vec![queue.clone()]).no_ack(no_ack);
        if let Some(a) = &opts.accept {
            consumer = consumer.accept(a)?;
        }
        consumer.declare().await?;
        let queue = consumer.queues().into_iter().next().unwrap_or(queue);
        Ok(SimpleQueue { queue, producer, consumer, no_ack, buffer })
    }

    /// The queue declaration.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }
    /// The producer used by `put`.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }
    /// The consumer used by `get`.
    pub fn consumer(&self) -> &Consumer {
        &self.consumer
    }
    /// True for a `SimpleBuffer`.
    pub fn is_buffer(&self) -> bool {
        self.buffer
    }

    /// Put a message on the queue. `opts` may set serializer, headers, compression, priority,
    /// expiration and properties; exchange and routing key are the queue's.
    pub async fn put(&self, body: impl Into<Payload>, opts: PublishOptions) -> Result<()> {
        let opts = PublishOptions { exchange: None, routing_key: None, ..opts };
        self.producer.publish(body, opts).await
    }

    /// Get a message. With `block`, waits up to `timeout` (forever when `None`); without,
    /// returns at once. `Err(Empty)` when there is none.
    pub async fn get(&self, block: bool, timeout: Option<Duration>) -> Result<Message> {
        if !block {
            return self.get_nowait().await;
        }
        match self.consumer.next_message(timeout).await {
            Ok(m) => Ok(m),
            Err(Error::Timeout(_)) => {
                // Seconds with three decimals, without float formatting (a few KB of wasm).
                let t = timeout.unwrap_or_default();
                Err(Error::Empty(Some(format!("no message in queue '{}' within {}.{:03}s", self.queue.name, t.as_secs(), t.subsec_millis()))))
            }
            Err(e) => Err(e),
        }
    }

    /// Get a message without waiting; `Err(Empty)` when there is none.
    pub async fn get_nowait(&self) -> Result<Message> {
        if let Some(m) = self.consumer.try_next() {
            return Ok(m);
        }
        let accept = self.consumer.accept_list().map(|a| (*a).clone());
        match self.queue.get(Some(self.no_ack), accept).await? {
            Some(m) => Ok(m),
            None => Err(Error::Empty(Some(format!("queue '{}' is empty", self.queue.name)))),
        }
    }

    /// Ready messages in the queue (plus any already delivered to this consumer's buffer).
    pub async fn qsize(&self) -> Result<u32> {
        let mut q = self.queue.clone();
        let ok = q.queue_declare(false, true).await?;
        Ok(ok.message_count + self.consumer.buffered() as u32)
    }

    /// Remove every message: the ready ones in the queue (Kombu's `purge`) and the ones
    /// already delivered to this queue's local buffer (acknowledged, so they are gone too,
    /// which is what `qsize` counted). Returns how many.
    pub async fn clear(&self) -> Result<u32> {
        let mut n = 0u32;
        // Deliveries the broker already pushed are dispatched into the buffer first.
        self.consumer.connection()?.drain_nowait()?;
        while let Some(m) = self.consumer.try_next() {
            if !self.no_ack {
                m.ack()?;
            }
            n += 1;
        }
        Ok(n + self.queue.purge().await?)
    }

    /// Stop consuming. Messages delivered to this consumer and not acknowledged go back to
    /// the queue when the channel closes.
    pub async fn close(&self) -> Result<()> {
        self.consumer.cancel().await?;
        while let Some(m) = self.consumer.try_next() {
            if !self.no_ack {
                let _ = m.requeue();
            }
        }
        Ok(())
    }
}
