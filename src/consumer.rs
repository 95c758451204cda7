//! `Consumer`: receives messages from one or more queues (Kombu's `kombu.Consumer`).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};


use crate::channel::{Channel, DeliveryCallback};
use crate::connection::Connection;
use crate::entity::Queue;
use crate::rt::lock;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::payload::Payload;
use crate::rt::{BoxFuture, Duration, Instant};
use crate::serialization::Accept;
use crate::proto::methods::BasicConsume;

/// Called with each decoded message: `(body, message)`.
#[cfg(not(target_arch = "wasm32"))]
pub type MessageCallback = Arc<dyn Fn(&Payload, &Message) + Send + Sync>;
/// Called with each decoded message: `(body, message)`.
#[cfg(target_arch = "wasm32")]
pub type MessageCallback = Arc<dyn Fn(&Payload, &Message)>;
/// Called with each raw message instead of decoding it (`on_message`).
#[cfg(not(target_arch = "wasm32"))]
pub type OnMessage = Arc<dyn Fn(&Message) + Send + Sync>;
/// Called with each raw message instead of decoding it (`on_message`).
#[cfg(target_arch = "wasm32")]
pub type OnMessage = Arc<dyn Fn(&Message)>;
/// Called with a message that could not be decoded and the error (`on_decode_error`).
#[cfg(not(target_arch = "wasm32"))]
pub type OnDecodeError = Arc<dyn Fn(&Message, &Error) + Send + Sync>;
/// Called with a message that could not be decoded and the error (`on_decode_error`).
#[cfg(target_arch = "wasm32")]
pub type OnDecodeError = Arc<dyn Fn(&Message, &Error)>;


#[derive(Default)]
struct Buffer {
    messages: VecDeque<Message>,
    wakers: Vec<Waker>,
}

struct Inner {
    channel: Channel,
    queues: Mutex<Vec<Queue>>,
    no_ack: Mutex<Option<bool>>,
    auto_declare: Mutex<bool>,
    declared: Mutex<bool>,
    /// Copy-on-write: each delivery takes a cheap snapshot.
    callbacks: Mutex<Arc<Vec<MessageCallback>>>,
    on_message: Mutex<Option<OnMessage>>,
    on_decode_error: Mutex<Option<OnDecodeError>>,
    accept: Mutex<Option<Arc<Accept>>>,
    prefetch_count: Mutex<Option<u16>>,
    tag_prefix: Mutex<String>,
    /// queue name → consumer tag, in consume order.
    active: Mutex<Vec<(String, String)>>,
    buffer: Mutex<Buffer>,
}

/// The last handle is gone (in the npm package: the object was garbage collected). Its
/// consumers would otherwise stay at the broker, which would go on sending them messages that
/// nobody can take (each requeued and sent to them again, without end): they are cancelled,
/// and the messages waiting in the buffer, never handed out, go back to their queues.
impl Drop for Inner {
    fn drop(&mut self) {
        let active = std::mem::take(self.active.get_mut().unwrap_or_else(|e| e.into_inner()));
        let mut gone = None;
        for (_, tag) in active {
            gone = self.channel.consumer_gone(&tag).or(gone);
        }
        let Some(conn) = gone else { return };
        // Held until the consumer is cancelled: requeued now, they would come back to it.
        let buffer = std::mem::take(&mut self.buffer.get_mut().unwrap_or_else(|e| e.into_inner()).messages);
        for m in buffer {
            if let (false, Some((raw, d))) = (m.no_ack(), m.unsettled()) {
                conn.hold(raw, d);
            }
        }
    }
}

/// Receives messages from queues (Kombu's `kombu.Consumer`). Cheap to clone; clones are the
/// same consumer.
///
/// Messages go to `on_message` when set (undecoded), else to the callbacks (decoded with
/// `accept`; undecodable ones to `on_decode_error`, or the error is returned by
/// `drain_events`), else — with neither — into a buffer read by [`Consumer::next_message`]
/// and by the consumer as a [`Stream`](futures::Stream) of messages, which drains the
/// connection's events itself:
///
/// ```
/// use futures::StreamExt;
/// use kombu::{Connection, Consumer, PublishOptions, Queue, Value};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kombu::Result<()> {
/// let conn = Connection::new("memory://")?;
/// let queue = Queue::new("consumer-stream-doc");
/// let mut consumer = Consumer::new(&conn.default_channel().await?, vec![queue.clone()]);
/// consumer.declare().await?;
/// let producer = conn.producer().await?;
/// for n in 0..3 {
///     producer.publish(Value::from(n), PublishOptions::new().routing_key(queue.name.as_str())).await?;
/// }
/// let mut seen = Vec::new();
/// while let Some(message) = consumer.next().await {
///     let message = message?;
///     seen.push(message.payload_as::<i64>()?);
///     message.ack()?;
///     if seen.len() == 3 {
///         break;
///     }
/// }
/// assert_eq!(seen, [0, 1, 2]);
/// consumer.cancel().await?;
/// # Ok(())
/// # }
/// ```
pub struct Consumer {
    inner: Arc<Inner>,
    /// The [`Consumer::next_message`] this handle's `Stream` is waiting on. In a Mutex only to
    /// keep the handle `Sync` (the future is `Send`, not `Sync`); `poll_next` has `&mut self`
    /// and never locks it.
    next: Mutex<Option<BoxFuture<'static, Result<Message>>>>,
}

impl Clone for Consumer {
    /// The same consumer; the clone's `Stream` starts without a wait in flight.
    fn clone(&self) -> Self {
        Consumer { inner: self.inner.clone(), next: Mutex::new(None) }
    }
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = lock(&self.inner.queues).iter().map(|q| q.name.clone()).collect();
        write!(f, "<Consumer: {names:?}>")
    }
}

impl Connection {
    /// A [`Consumer`] of `queues` on the default channel (Kombu's `Connection.Consumer()`).
    pub async fn consumer(&self, queues: Vec<Queue>) -> Result<Consumer> {
        Ok(Consumer::new(&self.default_channel().await?, queues))
    }
}

impl Consumer {
    /// A consumer of `queues` on `channel`. Nothing happens until [`Consumer::consume`].
    pub fn new(channel: &Channel, queues: Vec<Queue>) -> Self {
        let mut bound = Vec::with_capacity(queues.len());
        for q in queues {
            bound.push(q.bind(channel));
        }
        Consumer {
            next: Mutex::new(None),
            inner: Arc::new(Inner {
                channel: channel.clone(),
                queues: Mutex::new(bound),
                no_ack: Mutex::new(None),
                auto_declare: Mutex::new(true),
                declared: Mutex::new(false),
                callbacks: Mutex::new(Arc::new(Vec::new())),
                on_message: Mutex::new(None),
                on_decode_error: Mutex::new(None),
                accept: Mutex::new(None),
                prefetch_count: Mutex::new(None),
                tag_prefix: Mutex::new(String::new()),
                active: Mutex::new(Vec::new()),
                buffer: Mutex::new(Buffer::default()),
            }),
        }
    }

    /// Set `no_ack` (default: each queue's `no_ack`).
    #[must_use]
    pub fn no_ack(self, v: bool) -> Self {
        *lock(&self.inner.no_ack) = Some(v);
        self
    }
    /// Set `auto_declare` (default true: queues are declared before consuming).
    #[must_use]
    pub fn auto_declare(self, v: bool) -> Self {
        *lock(&self.inner.auto_declare) = v;
        self
    }
    /// Add a callback `(body, message)`.
    #[must_use]
    pub fn callback(self, cb: MessageCallback) -> Self {
        self.register_callback(cb);
        self
    }
    /// Set `on_message`: called with each message, undecoded; callbacks are then not used.
    #[must_use]
    pub fn on_message(self, cb: OnMessage) -> Self {
        *lock(&self.inner.on_message) = Some(cb);
        self
    }
    /// Set `on_decode_error`.
    #[must_use]
    pub fn on_decode_error(self, cb: OnDecodeError) -> Self {
        *lock(&self.inner.on_decode_error) = Some(cb);
        self
    }
    /// Only decode these content types (serializer names or MIME types).
    pub fn accept<S: AsRef<str>>(self, names: impl IntoIterator<Item = S>) -> Result<Self> {
        let a = Accept::new(names)?;
        *lock(&self.inner.accept) = Some(Arc::new(a));
        Ok(self)
    }
    /// Set the prefetch count applied (with `basic.qos`) when consuming starts.
    #[must_use]
    pub fn prefetch_count(self, n: u16) -> Self {
        *lock(&self.inner.prefetch_count) = Some(n);
        self
    }
    /// Prefix for the generated consumer tags.
    #[must_use]
    pub fn tag_prefix(self, prefix: impl Into<String>) -> Self {
        *lock(&self.inner.tag_prefix) = prefix.into();
        self
    }

    /// Add a callback `(body, message)` (Kombu's `register_callback`).
    pub fn register_callback(&self, cb: MessageCallback) {
        Arc::make_mut(&mut lock(&self.inner.callbacks)).push(cb);
    }

    /// The channel.
    pub fn channel(&self) -> &Channel {
        &self.inner.channel
    }
    /// The connection.
    pub fn connection(&self) -> Result<Connection> {
        self.inner.channel.connection()
    }
    /// The queues (bound copies; server-named queues carry their generated names).
    pub fn queues(&self) -> Vec<Queue> {
        lock(&self.inner.queues).clone()
    }
    /// The accept list.
    pub fn accept_list(&self) -> Option<Arc<Accept>> {
        lock(&self.inner.accept).clone()
    }

    /// Declare the queues (and their exchanges and bindings).
    pub async fn declare(&self) -> Result<()> {
        let mut queues = self.queues();
        for q in &mut queues {
            q.declare_on(&self.inner.channel, false).await?;
        }
        *lock(&self.inner.queues) = queues;
        *lock(&self.inner.declared) = true;
        Ok(())
    }

    /// Start consuming from every queue not consumed yet (declaring them first when
    /// `auto_declare`, and applying `prefetch_count`). Consuming again picks up queues added
    /// since; it does not cancel removed ones (see [`Consumer::cancel_by_queue`]).
    pub async fn consume(&self) -> Result<()> {
        self.consume_with(None).await
    }

    /// [`Consumer::consume`] overriding `no_ack`.
    pub async fn consume_with(&self, no_ack: Option<bool>) -> Result<()> {
        let auto_declare = *lock(&self.inner.auto_declare);
        if auto_declare && !*lock(&self.inner.declared) {
            self.declare().await?;
        }
        let prefetch = *lock(&self.inner.prefetch_count);
        if let Some(n) = prefetch {
            self.qos(0, n, false).await?;
        }
        let no_ack_default = no_ack.or(*lock(&self.inner.no_ack));
        for q in self.queues() {
            if lock(&self.inner.active).iter().any(|(n, _)| *n == q.name) {
                continue;
            }
            self.basic_consume(&q, no_ack_default.unwrap_or(q.no_ack), auto_declare).await?;
        }
        Ok(())
    }

    async fn basic_consume(&self, q: &Queue, no_ack: bool, redeclare: bool) -> Result<()> {
        let mut tag = lock(&self.inner.tag_prefix).clone();
        tag.push_str(&crate::rt::uuid());
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let callback: DeliveryCallback = Arc::new(move |m: Message| match weak.upgrade() {
            Some(inner) => receive(&inner, m),
            None => m.reject(true),
        });
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let on_cancel: crate::channel::CancelCallback = Arc::new(move |tag: &str| {
            if let Some(inner) = weak.upgrade() {
                lock(&inner.active).retain(|(_, t)| t != tag);
            }
        });
        let args = BasicConsume {
            queue: q.name.clone(),
            consumer_tag: tag,
            no_ack,
            arguments: q.consumer_arguments.clone(),
            ..Default::default()
        };
        let tag = self
            .inner
            .channel
            .basic_consume_with_cancel(args, callback, redeclare.then(|| q.clone()), Some(on_cancel))
            .await?;
        let mut active = lock(&self.inner.active);
        match active.iter_mut().find(|(n, _)| *n == q.name) {
            Some(e) => e.1 = tag,
            None => active.push((q.name.clone(), tag)),
        }
        Ok(())
    }

    /// Stop consuming from every queue. Messages handed out and not acknowledged stay
    /// unacknowledged; those still in the buffer of [`Consumer::next_message`], which nobody
    /// has seen, go back to their queues (see [`Consumer::cancel_by_queue`]).
    pub async fn cancel(&self) -> Result<()> {
        let active = std::mem::take(&mut *lock(&self.inner.active));
        for (_, t) in active {
            self.inner.channel.basic_cancel(&t).await?;
            self.requeue_buffered(&t)?;
        }
        Ok(())
    }

    /// Stop consuming from one queue. Its messages waiting in the buffer of
    /// [`Consumer::next_message`] are requeued (those of a `no_ack` consumer, which the broker
    /// has forgotten, stay there to be read): otherwise they would stay unacknowledged, held
    /// against the prefetch window, until the channel closes.
    pub async fn cancel_by_queue(&self, queue: &str) -> Result<()> {
        let tag = {
            let mut active = lock(&self.inner.active);
            active.iter().position(|(n, _)| n == queue).map(|i| active.remove(i).1)
        };
        if let Some(t) = tag {
            self.inner.channel.basic_cancel(&t).await?;
            self.requeue_buffered(&t)?;
        }
        lock(&self.inner.queues).retain(|q| q.name != queue);
        Ok(())
    }

    /// After the `basic.cancel` of `tag`: requeue the buffered messages of that consumer
    /// (deliveries that arrive after the cancel are requeued by the channel).
    fn requeue_buffered(&self, tag: &str) -> Result<()> {
        for m in self.take_buffered(&|m| m.consumer_tag() == Some(tag) && !m.no_ack()) {
            m.requeue()?;
        }
        Ok(())
    }

    /// Take the buffered messages `pick` chooses out of the buffer, keeping the others in order.
    fn take_buffered(&self, pick: &dyn Fn(&Message) -> bool) -> Vec<Message> {
        let mut buffer = lock(&self.inner.buffer);
        let mut taken = Vec::new();
        for m in std::mem::take(&mut buffer.messages) {
            if pick(&m) {
                taken.push(m);
            } else {
                buffer.messages.push_back(m);
            }
        }
        taken
    }

    /// True when consuming from `queue`.
    pub fn consuming_from(&self, queue: &str) -> bool {
        lock(&self.inner.active).iter().any(|(n, _)| n == queue)
    }

    /// The active consumer tags.
    pub fn consumer_tags(&self) -> Vec<String> {
        lock(&self.inner.active).iter().map(|(_, t)| t.clone()).collect()
    }

    /// Add a queue (declaring it when `auto_declare`). Does not start consuming from it:
    /// call [`Consumer::consume`].
    pub async fn add_queue(&self, queue: Queue) -> Result<Queue> {
        let mut q = queue.bind(&self.inner.channel);
        if *lock(&self.inner.auto_declare) {
            q.declare_on(&self.inner.channel, false).await?;
        }
        lock(&self.inner.queues).push(q.clone());
        Ok(q)
    }

    /// Purge every queue; returns the total removed.
    pub async fn purge(&self) -> Result<u32> {
        let mut n = 0;
        for q in self.queues() {
            n += q.purge().await?;
        }
        Ok(n)
    }

    /// `basic.qos` for the channel (`apply_global=false`: per consumer, RabbitMQ semantics).
    pub async fn qos(&self, prefetch_size: u32, prefetch_count: u16, apply_global: bool) -> Result<()> {
        self.inner.channel.basic_qos(prefetch_size, prefetch_count, apply_global).await
    }

    /// Redeliver the channel's unacknowledged messages.
    pub async fn recover(&self, requeue: bool) -> Result<()> {
        self.inner.channel.basic_recover(requeue).await
    }

    /// Pause (false) or resume (true) deliveries.
    pub async fn flow(&self, active: bool) -> Result<bool> {
        self.inner.channel.flow(active).await
    }

    /// Call the callbacks with a decoded message (Kombu's `receive`).
    pub fn receive(&self, body: &Payload, message: &Message) -> Result<()> {
        let cbs = lock(&self.inner.callbacks).clone();
        if cbs.is_empty() {
            return Err(Error::NotImplemented("Consumer does not have any callbacks".into()));
        }
        for cb in cbs.iter() {
            cb(body, message);
        }
        Ok(())
    }

    /// The next message for this consumer (starting to consume if needed), waiting up to
    /// `timeout`; `Err(TimeoutError)` when none came. Only for consumers without callbacks
    /// and `on_message`: messages are buffered for this method.
    pub async fn next_message(&self, timeout: Option<Duration>) -> Result<Message> {
        if lock(&self.inner.active).is_empty() {
            self.consume().await?;
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let conn = self.connection()?;
        loop {
            if let Some(m) = self.try_next() {
                return Ok(m);
            }
            let remaining = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if d <= now {
                        return Err(Error::Timeout(None));
                    }
                    Some(d - now)
                }
                None => None,
            };
            let drain = conn.drain_events(remaining);
            let ready = BufferReady { inner: &self.inner };
            futures::pin_mut!(drain, ready);
            match futures::future::select(ready, drain).await {
                futures::future::Either::Left(_) => {}
                futures::future::Either::Right((r, _)) => match r {
                    Ok(()) | Err(Error::Timeout(_)) => {}
                    Err(e) => match conn.options().reconnect.as_ref().filter(|_| e.is_recoverable_connection_error()) {
                        // The connection is gone: reconnect (the consumers resume on the new
                        // one) and wait on. Messages received from the dead connection and not
                        // handed out are dropped when the broker delivers them again (those
                        // it waited for acks of); no_ack ones are still handed out.
                        Some(policy) => {
                            self.take_buffered(&|m| !m.no_ack());
                            conn.ensure_connection(policy, &mut crate::connection::no_errback).await?;
                        }
                        None => return Err(e),
                    },
                },
            }
        }
    }

    /// A buffered message, if one is waiting (never blocks).
    ///
    /// A buffered message whose channel has closed since it arrived (a channel exception, a
    /// lost connection) is dropped, not handed out: the broker has put it back in its queue and
    /// sends it again (`redelivered`), and its `ack` could only fail, so handing it out would
    /// have it processed twice. `no_ack` messages, which the broker has forgotten, are kept.
    pub fn try_next(&self) -> Option<Message> {
        let mut buffer = lock(&self.inner.buffer);
        while let Some(m) = buffer.messages.pop_front() {
            if m.no_ack() || m.channel_open() {
                return Some(m);
            }
        }
        None
    }

    /// Messages waiting in the buffer (including any of a channel closed since, which
    /// [`Consumer::try_next`] drops). (With `futures::StreamExt` in scope, its `buffered`
    /// adapter takes the method-call syntax: write `Consumer::buffered(&consumer)`.)
    pub fn buffered(&self) -> usize {
        lock(&self.inner.buffer).messages.len()
    }

    /// Cancel consuming (Kombu's `close`).
    pub async fn close(&self) -> Result<()> {
        self.cancel().await
    }
}

/// The consumer's messages, as [`Consumer::next_message`] without a timeout gives them: the
/// stream starts consuming when needed and drains the connection's events itself. An error
/// (a lost connection, ...) is yielded as `Some(Err(..))`; polling again goes on (a lost
/// connection is then re-established, as `drain_events` does). The stream does not end by
/// itself: stop polling (and [`Consumer::cancel`]) to stop. Only for consumers without
/// callbacks or `on_message`, which take the messages instead.
impl futures::Stream for Consumer {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let next = this.next.get_mut().unwrap_or_else(|e| e.into_inner());
        let fut = next.get_or_insert_with(|| {
            let consumer = Consumer { inner: this.inner.clone(), next: Mutex::new(None) };
            Box::pin(async move { consumer.next_message(None).await })
        });
        match fut.as_mut().poll(cx) {
            Poll::Ready(r) => {
                *next = None;
                Poll::Ready(Some(r))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

fn receive(inner: &Inner, message: Message) -> Result<()> {
    let message = message.with_accept(lock(&inner.accept).clone());
    let on_message = lock(&inner.on_message).clone();
    let decode_error = |m: &Message, e: Error| -> Result<()> {
        match lock(&inner.on_decode_error).clone() {
            Some(cb) => {
                cb(m, &e);
                Ok(())
            }
            None => Err(e),
        }
    };
    let callbacks = lock(&inner.callbacks).clone();
    // A body that could not be decompressed goes to on_decode_error (or fails the drain) when
    // something would consume it now, as in Kombu; a buffered message (`next_message`: the
    // simple interface, async iteration) is handed out and its `payload` reports the error,
    // so the caller can still reject or requeue it.
    if let Some(e) = message.error() {
        if on_message.is_some() || !callbacks.is_empty() {
            return decode_error(&message, e.clone());
        }
    }
    if let Some(cb) = on_message {
        cb(&message);
        return Ok(());
    }
    if callbacks.is_empty() {
        let wakers = {
            let mut b = lock(&inner.buffer);
            b.messages.push_back(message);
            std::mem::take(&mut b.wakers)
        };
        for w in wakers {
            w.wake();
        }
        return Ok(());
    }
    match message.decoded() {
        Ok(body) => {
            for cb in callbacks.iter() {
                cb(body, &message);
            }
            Ok(())
        }
        Err(e) => decode_error(&message, e.clone()),
    }
}

struct BufferReady<'a> {
    inner: &'a Inner,
}

impl Future for BufferReady<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut b = lock(&self.inner.buffer);
        if !b.messages.is_empty() {
            return Poll::Ready(());
        }
        if !b.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            b.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
