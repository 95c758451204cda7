//! The one socket writer of this crate: the gateway server's and the AMQP relay's WebSockets, and
//! the native `gateway+ws://` and `amqp://` transports' sockets. One task per socket sends what
//! its queue is given ([`Out`]); what queued up while the socket was busy goes into the core's
//! [`Outbox`] — the browser carrier's rules: gateway frames batched, AMQP frames concatenated,
//! in-order acks on a channel merged into the last — and out as one message.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Sink, SinkExt};
use kombu::transport::carrier::outbox::Outbox;
use kombu::transport::carrier::Carrier;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// What a socket's writer is given.
#[derive(Debug)]
pub(crate) enum Out {
    /// A gateway protocol frame, or a piece of an AMQP byte stream.
    Frame(Bytes),
    /// An AMQP ack on a channel that covers an ack queued just before it on that channel
    /// ([`kombu::transport::carrier::Carrier::send_ack`]): the outbox keeps only the last.
    Ack(u16, Bytes),
    /// Close the socket after what was queued before (a WebSocket with this code and reason).
    Close(Option<(u16, String)>),
    /// A WebSocket ping, after what was queued before (the server's liveness check; nothing
    /// on a byte stream).
    Ping,
}

impl Out {
    /// A WebSocket close with `code` and `reason`, cut to 120 bytes (a close frame carries at
    /// most 123).
    pub(crate) fn close(code: u16, reason: &str) -> Out {
        Out::Close(Some((code, crate::cut(reason, 120).to_owned())))
    }
}

/// A socket a writer sends whole messages on.
pub(crate) trait Socket: Send {
    /// Send `message`; false when the socket is gone.
    fn send(&mut self, message: Bytes) -> impl Future<Output = bool> + Send;
    /// Close the socket (a WebSocket with `close`'s code and reason).
    fn close(self, close: Option<(u16, String)>) -> impl Future<Output = ()> + Send;
    /// Send a WebSocket ping; false when the socket is gone. Nothing on a byte stream.
    fn ping(&mut self) -> impl Future<Output = bool> + Send {
        std::future::ready(true)
    }
}

/// A WebSocket message: axum's on the server side, tungstenite's in the client.
pub(crate) trait WsMessage: Send {
    /// A binary message.
    fn binary(bytes: Bytes) -> Self;
    /// A close message.
    fn close(close: Option<(u16, String)>) -> Self;
    /// A ping message (empty).
    fn ping() -> Self;
}

impl WsMessage for axum::extract::ws::Message {
    fn binary(bytes: Bytes) -> Self {
        Self::Binary(bytes)
    }
    fn close(close: Option<(u16, String)>) -> Self {
        Self::Close(close.map(|(code, reason)| axum::extract::ws::CloseFrame { code, reason: reason.into() }))
    }
    fn ping() -> Self {
        Self::Ping(Bytes::new())
    }
}

impl WsMessage for tokio_tungstenite::tungstenite::Message {
    fn binary(bytes: Bytes) -> Self {
        Self::Binary(bytes)
    }
    fn close(close: Option<(u16, String)>) -> Self {
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        Self::Close(close.map(|(code, reason)| CloseFrame { code: code.into(), reason: reason.into() }))
    }
    fn ping() -> Self {
        Self::Ping(Bytes::new())
    }
}

/// The sending half of a WebSocket.
pub(crate) struct WebSocket<S, M>(pub(crate) S, PhantomData<fn() -> M>);

impl<S, M> WebSocket<S, M> {
    pub(crate) fn new(sink: S) -> Self {
        WebSocket(sink, PhantomData)
    }
}

impl<M: WsMessage, S: Sink<M> + Unpin + Send> Socket for WebSocket<S, M> {
    async fn send(&mut self, message: Bytes) -> bool {
        self.0.send(M::binary(message)).await.is_ok()
    }
    async fn close(mut self, close: Option<(u16, String)>) {
        let _ = self.0.send(M::close(close)).await;
        let _ = self.0.close().await;
    }
    async fn ping(&mut self) -> bool {
        self.0.send(M::ping()).await.is_ok()
    }
}

/// The writing half of a byte stream (TCP or TLS).
pub(crate) struct ByteStream<W>(pub(crate) W);

impl<W: AsyncWrite + Unpin + Send> Socket for ByteStream<W> {
    async fn send(&mut self, message: Bytes) -> bool {
        self.0.write_all(&message).await.is_ok()
    }
    async fn close(mut self, _: Option<(u16, String)>) {
        let _ = self.0.shutdown().await;
    }
}

/// A socket's queue: bounded (the server, whose producers wait) or not (the native clients,
/// whose carriers send without waiting).
pub(crate) trait Outgoing: Send {
    fn recv(&mut self) -> impl Future<Output = Option<Out>> + Send;
    fn try_recv(&mut self) -> Option<Out>;
}

impl Outgoing for mpsc::Receiver<Out> {
    fn recv(&mut self) -> impl Future<Output = Option<Out>> + Send {
        mpsc::Receiver::recv(self)
    }
    fn try_recv(&mut self) -> Option<Out> {
        mpsc::Receiver::try_recv(self).ok()
    }
}

impl Outgoing for mpsc::UnboundedReceiver<Out> {
    fn recv(&mut self) -> impl Future<Output = Option<Out>> + Send {
        mpsc::UnboundedReceiver::recv(self)
    }
    fn try_recv(&mut self) -> Option<Out> {
        mpsc::UnboundedReceiver::try_recv(self).ok()
    }
}

/// Send what `rx` is given on `socket` until a close (sent last) or the end of the queue.
/// What queued up while the socket was busy goes into `outbox` (a batch of gateway frames, or
/// an AMQP byte stream) and out as one message, up to `limit()` bytes (0: each frame alone);
/// acks are merged by its rules and never held: nothing waits for more to merge.
pub(crate) async fn write_socket(mut socket: impl Socket, mut rx: impl Outgoing, mut outbox: Outbox, limit: impl Fn() -> usize + Send) {
    // Messages the outbox made (full batches), to send before what it still holds.
    let mut ready = Vec::new();
    let mut close = None;
    let mut ping = false;
    'socket: loop {
        outbox.limit = limit();
        let first = if outbox.is_empty() { rx.recv().await } else { rx.try_recv() };
        let mut next = first;
        let ended = next.is_none() && outbox.is_empty();
        while let Some(o) = next.take() {
            let keep = |m| {
                ready.push(m);
                Ok(())
            };
            // The outbox's `send` only keeps the message: it cannot fail.
            let _ = match o {
                Out::Frame(frame) => outbox.push(frame, keep),
                Out::Ack(channel, frame) => outbox.push_ack(channel, frame, 0, keep),
                Out::Close(c) => {
                    close = Some(c);
                    break;
                }
                Out::Ping => {
                    ping = true;
                    break;
                }
            };
            if ready.is_empty() {
                next = rx.try_recv();
            }
        }
        if ready.is_empty() || close.is_some() || ping {
            ready.extend(outbox.take_all());
        }
        for m in ready.drain(..) {
            if !socket.send(m).await {
                break 'socket;
            }
        }
        if std::mem::take(&mut ping) && !socket.ping().await {
            break;
        }
        if close.is_some() || ended {
            break;
        }
    }
    socket.close(close.flatten()).await;
}

/// Bytes queued for a socket's writer and not taken by it yet: what a [`QueueCarrier`] was
/// given faster than its socket takes it. Publishers that run in [`paced`] wait for it.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    bytes: AtomicUsize,
    /// The writer is gone: nothing will drain, nobody should wait.
    gone: std::sync::atomic::AtomicBool,
    drained: tokio::sync::Notify,
}

/// A carrier's backlog past which a request run in [`paced`] waits, after it, for the
/// backlog to fall to [`BACKLOG_RESUME`]: the gateway stops reading the client that sent it.
pub(crate) const BACKLOG_HIGH: usize = 4 << 20;
/// See [`BACKLOG_HIGH`].
pub(crate) const BACKLOG_RESUME: usize = 1 << 20;

impl Backlog {
    fn size(o: &Out) -> usize {
        match o {
            Out::Frame(f) | Out::Ack(_, f) => f.len(),
            Out::Close(_) | Out::Ping => 0,
        }
    }

    fn taken(&self, o: &Out) {
        let n = Self::size(o);
        if n > 0 && self.bytes.fetch_sub(n, Ordering::Relaxed) - n <= BACKLOG_RESUME {
            self.drained.notify_waiters();
        }
    }

    /// The bytes queued now.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Wait until at most `bytes` are queued (or the writer is gone).
    pub(crate) async fn below(&self, bytes: usize) {
        loop {
            let drained = self.drained.notified();
            if self.bytes() <= bytes || self.gone.load(Ordering::Relaxed) {
                return;
            }
            drained.await;
        }
    }
}

/// The receiving end of a [`QueueCarrier`]: what the writer takes leaves the backlog.
struct Counted {
    rx: mpsc::UnboundedReceiver<Out>,
    backlog: Arc<Backlog>,
}

impl Outgoing for Counted {
    async fn recv(&mut self) -> Option<Out> {
        let o = self.rx.recv().await;
        if let Some(o) = &o {
            self.backlog.taken(o);
        }
        o
    }
    fn try_recv(&mut self) -> Option<Out> {
        let o = self.rx.try_recv().ok();
        if let Some(o) = &o {
            self.backlog.taken(o);
        }
        o
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.backlog.gone.store(true, Ordering::Relaxed);
        self.backlog.drained.notify_waiters();
    }
}

tokio::task_local! {
    /// The backlog over [`BACKLOG_HIGH`] that the request running in [`paced`] added to.
    static CONGESTED: std::cell::RefCell<Option<Arc<Backlog>>>;
}

/// Run `request` (a gateway session's request on its broker connection); if it queued bytes
/// to a socket whose backlog is over [`BACKLOG_HIGH`] (a broker slower than the client's
/// publishes), wait until that backlog is down to [`BACKLOG_RESUME`] before returning, so
/// that the caller stops reading its client meanwhile: backpressure instead of buffering.
pub(crate) async fn paced<F: Future>(request: F) -> F::Output {
    let (out, congested) = CONGESTED
        .scope(std::cell::RefCell::new(None), async {
            let out = request.await;
            (out, CONGESTED.with(|c| c.borrow_mut().take()))
        })
        .await;
    if let Some(backlog) = congested {
        backlog.below(BACKLOG_RESUME).await;
    }
    out
}

/// The carrier of the native transports' client engines (`amqp://`, `gateway+ws://`): what the
/// engine sends goes to the socket's writer task, whose outbox batches frames and merges acks;
/// nothing waits here (but see [`paced`]). Clones share the socket.
#[derive(Clone)]
pub(crate) struct QueueCarrier {
    out: mpsc::UnboundedSender<Out>,
    backlog: Arc<Backlog>,
    /// The largest message the writer makes: fixed for a byte stream, or what the gateway
    /// reads in a batch (0 until it says, [`Carrier::allow_batches`]).
    limit: Arc<AtomicUsize>,
    /// The connection, as its errors name it ("the AMQP connection").
    name: &'static str,
}

impl QueueCarrier {
    /// A carrier for `socket` and its writer task: AMQP frames concatenated (`raw_stream`) or
    /// gateway frames batched, up to `limit` bytes a message.
    pub(crate) fn spawn(socket: impl Socket + 'static, raw_stream: bool, limit: usize, name: &'static str) -> QueueCarrier {
        let (out, rx) = mpsc::unbounded_channel();
        let limit = Arc::new(AtomicUsize::new(limit));
        let max = limit.clone();
        let backlog = Arc::new(Backlog::default());
        let rx = Counted { rx, backlog: backlog.clone() };
        tokio::spawn(write_socket(socket, rx, Outbox::new(0, raw_stream), move || max.load(Ordering::Relaxed)));
        QueueCarrier { out, backlog, limit, name }
    }

    fn push(&self, o: Out) -> kombu::Result<()> {
        let n = Backlog::size(&o);
        self.backlog.bytes.fetch_add(n, Ordering::Relaxed);
        if self.out.send(o).is_err() {
            self.backlog.bytes.fetch_sub(n, Ordering::Relaxed);
            return Err(kombu::Error::RecoverableConnection(format!("{} is closed", self.name)));
        }
        if self.backlog.bytes() > BACKLOG_HIGH {
            let _ = CONGESTED.try_with(|c| *c.borrow_mut() = Some(self.backlog.clone()));
        }
        Ok(())
    }
}

impl Carrier for QueueCarrier {
    fn send(&self, frame: Bytes) -> kombu::Result<()> {
        if frame.is_empty() {
            return Ok(());
        }
        self.push(Out::Frame(frame))
    }
    // Not held for more acks to merge (`_hold`, what the browser's carrier does): a native
    // socket write is cheap. The writer's outbox merges the acks queued until it runs — those
    // the application's task sends before it yields — and while the socket is busy.
    fn send_ack(&self, channel: u16, frame: Bytes, _hold: u32) -> kombu::Result<()> {
        self.push(Out::Ack(channel, frame))
    }
    fn allow_batches(&self, max_bytes: usize) {
        self.limit.store(max_bytes, Ordering::Relaxed);
    }
    fn close(&self) {
        let _ = self.out.send(Out::Close(None));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The messages a socket was sent, and how it was closed (once it was).
    type Sent = (Vec<Bytes>, Option<Option<(u16, String)>>);

    /// A socket that keeps what it is sent, and how it was closed.
    #[derive(Default)]
    struct Kept {
        sent: Arc<std::sync::Mutex<Sent>>,
    }

    impl Socket for Kept {
        async fn send(&mut self, message: Bytes) -> bool {
            self.sent.lock().unwrap().0.push(message);
            true
        }
        async fn close(self, close: Option<(u16, String)>) {
            self.sent.lock().unwrap().1 = Some(close);
        }
    }

    fn frame(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[tokio::test]
    async fn what_queued_up_goes_out_as_one_message_with_acks_merged_then_the_close() {
        let socket = Kept::default();
        let sent = socket.sent.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        for o in [Out::Frame(frame("pub;")), Out::Ack(1, frame("ack1;")), Out::Ack(1, frame("ack2;")), Out::Ack(2, frame("ch2;")), Out::close(1000, "bye")] {
            tx.send(o).unwrap();
        }
        write_socket(socket, rx, Outbox::new(0, true), || 1 << 16).await;
        let (messages, close) = std::mem::take(&mut *sent.lock().unwrap());
        assert_eq!(messages, [frame("pub;ack2;ch2;")]);
        assert_eq!(close, Some(Some((1000, "bye".into()))));
    }

    #[tokio::test]
    async fn a_full_batch_goes_before_the_rest_and_the_end_of_the_queue_closes() {
        let socket = Kept::default();
        let sent = socket.sent.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        for f in ["aaaa", "bbbb", "cccc"] {
            tx.send(Out::Frame(frame(f))).unwrap();
        }
        drop(tx);
        // Each frame counts 4 bytes more (its length in a batch): two fill 16 bytes.
        write_socket(socket, rx, Outbox::new(0, true), || 16).await;
        let (messages, close) = std::mem::take(&mut *sent.lock().unwrap());
        assert_eq!(messages, [frame("aaaabbbb"), frame("cccc")]);
        assert_eq!(close, Some(None));
    }

    #[tokio::test]
    async fn a_ping_goes_after_what_was_queued_before_it() {
        struct Pinged(Arc<std::sync::Mutex<Vec<Bytes>>>);
        impl Socket for Pinged {
            async fn send(&mut self, message: Bytes) -> bool {
                self.0.lock().unwrap().push(message);
                true
            }
            async fn close(self, _: Option<(u16, String)>) {}
            async fn ping(&mut self) -> bool {
                self.0.lock().unwrap().push(frame("<ping>"));
                true
            }
        }
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        for o in [Out::Frame(frame("a;")), Out::Frame(frame("b;")), Out::Ping, Out::Frame(frame("c;"))] {
            tx.send(o).unwrap();
        }
        drop(tx);
        write_socket(Pinged(sent.clone()), rx, Outbox::new(0, true), || 1 << 16).await;
        assert_eq!(*sent.lock().unwrap(), [frame("a;b;"), frame("<ping>"), frame("c;")]);
    }

    #[tokio::test]
    async fn a_request_that_fills_a_socket_queue_waits_until_it_drains() {
        /// A socket that sends only as permits are given.
        struct Gated(Arc<tokio::sync::Semaphore>);
        impl Socket for Gated {
            async fn send(&mut self, _: Bytes) -> bool {
                self.0.acquire().await.unwrap().forget();
                true
            }
            async fn close(self, _: Option<(u16, String)>) {}
        }
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let carrier = QueueCarrier::spawn(Gated(gate.clone()), true, 1024, "the test socket");
        let mib = Bytes::from(vec![0u8; 1 << 20]);
        // Below the high mark: no wait.
        paced(async { carrier.send(mib.clone()).unwrap() }).await;
        // Past it: the request returns once the backlog is down to the resume mark.
        let mut request = Box::pin(paced(async {
            for _ in 0..6 {
                carrier.send(mib.clone()).unwrap();
            }
        }));
        assert!(tokio::time::timeout(Duration::from_millis(200), request.as_mut()).await.is_err(), "returned with the socket stalled");
        assert!(carrier.backlog.bytes() > BACKLOG_RESUME);
        gate.add_permits(1000);
        tokio::time::timeout(Duration::from_secs(10), request).await.expect("returns once the socket drains");
        assert!(carrier.backlog.bytes() <= BACKLOG_RESUME);
        // Outside `paced`, sending never waits (the native clients' carriers).
        for _ in 0..8 {
            carrier.send(mib.clone()).unwrap();
        }
    }

    #[test]
    fn close_reasons_are_cut_on_a_character_boundary() {
        let long = format!("x{}", "é".repeat(100));
        let Out::Close(Some((1000, cut))) = Out::close(1000, &long) else { panic!() };
        assert!(cut.len() == 119 && long.starts_with(&cut), "{cut}");
        assert!(matches!(Out::close(1000, "short"), Out::Close(Some((1000, r))) if r == "short"));
    }
}
