//! Carriers: what moves a client engine's frames over a socket, and the machinery the client
//! engines (the AMQP client in [`super::amqp_client`], the gateway protocol client in
//! [`super::gateway_client`]) share with them — the [`Carrier`] trait, the per-channel record of
//! deliveries to settle (`Unsettled`, which lets a carrier merge in-order acks), the queue of
//! pushed events ([`EventQueue`]), and the `outbox`'s batching and ack-holding rules.
//!
//! The carriers themselves do the IO: the browser's WebSocket (`transport::websocket`, wasm32) here, tokio
//! TCP/TLS and tokio-tungstenite in `kombu-gateway`. All of them drive an [`outbox::Outbox`].

pub mod outbox;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::channel::{mpsc, oneshot};
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::proto::methods::ServerEvent;
use crate::rt::{self, Duration, MaybeSend, MaybeSync};
/// Sends frames on a socket.
///
/// A carrier may hold frames back to send several in one WebSocket message (a batch, see
/// [`crate::proto::gateway::encode_batch`]), once the server said it reads batches ([`Carrier::allow_batches`]).
/// It must keep their order, send what it holds when [`Carrier::flush`] is called, and never
/// hold a frame indefinitely (a timer flushes what nothing else does).
pub trait Carrier: MaybeSend + MaybeSync {
    /// Send one binary frame, or queue it. Errors when the socket is closed.
    fn send(&self, frame: Bytes) -> Result<()>;
    /// Send `frame`, an AMQP `basic.ack` with `multiple` on `channel` acknowledging the
    /// oldest delivery the broker waits for: it covers an ack sent this way just before it on
    /// the same channel, so a carrier holding frames back may replace such an ack when it is
    /// the last frame held (messages acknowledged in order go out as one ack). While fewer
    /// than `hold` acks are merged into it, the carrier may also keep such an ack back for a
    /// moment when it is all there is to send ([`Unsettled::settle`] gives it: half the
    /// channel's prefetch window; 0 for a window of one). The default sends it like any frame.
    fn send_ack(&self, _channel: u16, frame: Bytes, _hold: u32) -> Result<()> {
        self.send(frame)
    }
    /// Send the frames held back, now: the client is about to wait for the server. (An ack
    /// held as `send_ack` allows may stay: the carrier's timer sends it shortly.)
    fn flush(&self) {}
    /// The server reads batches of up to `max_bytes` per WebSocket message.
    fn allow_batches(&self, _max_bytes: usize) {}
    /// Close the socket (after sending what is held back).
    fn close(&self);
}

/// The deliveries a channel must settle, oldest first: an ack of the oldest one says the same
/// as `basic.ack` with `multiple`, which [`Carrier::send_ack`] lets a carrier merge with the ack
/// before it. Kept by both client engines (AMQP and the gateway protocol) per channel.
#[derive(Default)]
pub(crate) struct Unsettled {
    tags: VecDeque<u64>,
    /// Not tracked: deliveries on this channel may be settled by someone else (a consumer
    /// without acks the broker or the gateway settles), so no ack may cover others.
    off: bool,
    /// The channel's prefetch window (`basic.qos` prefetch_count; 0: none).
    prefetch: u16,
}

impl Unsettled {
    /// A delivery the broker waits for us to settle arrived (tags arrive in order, except a
    /// `basic.get` answer recorded after a delivery that overtook it).
    pub(crate) fn delivered(&mut self, tag: u64) {
        if self.off {
            return;
        }
        match self.tags.back() {
            Some(&last) if last > tag => {
                let i = self.tags.partition_point(|&t| t < tag);
                self.tags.insert(i, tag);
            }
            _ => self.tags.push_back(tag),
        }
    }

    /// We settle `tag` (with `multiple`, every tag up to it). When `tag` alone was the oldest
    /// unsettled delivery, an ack of it may be sent with `multiple`, for the carrier to merge
    /// and hold ([`Carrier::send_ack`]): then the hold ([`Unsettled::ack_hold`]).
    pub(crate) fn settle(&mut self, tag: u64, multiple: bool) -> Option<u32> {
        if multiple {
            while self.tags.front().is_some_and(|&t| t <= tag) {
                self.tags.pop_front();
            }
            return None;
        }
        if self.tags.front() == Some(&tag) {
            self.tags.pop_front();
            return Some(self.ack_hold());
        }
        if let Some(i) = self.tags.iter().position(|&t| t == tag) {
            self.tags.remove(i);
        }
        None
    }

    /// The channel's prefetch window is now `count` deliveries (0: unlimited).
    pub(crate) fn set_prefetch(&mut self, count: u16) {
        self.prefetch = count;
    }

    /// How many acks a carrier may merge into one it holds back ([`Carrier::send_ack`]):
    /// half the prefetch window, so that the broker keeps the other half to deliver (0 for a
    /// window of one delivery, where it waits for each ack); without a window, any number.
    fn ack_hold(&self) -> u32 {
        match self.prefetch {
            0 => u32::MAX,
            n => u32::from(n / 2),
        }
    }

    /// Everything unsettled is delivered again with new tags (`basic.recover`).
    pub(crate) fn clear(&mut self) {
        self.tags.clear();
    }

    /// Stop tracking this channel (see `off`).
    pub(crate) fn stop(&mut self) {
        self.off = true;
        self.tags.clear();
    }
}

/// Why a channel ended (the broker closed it, or the connection is gone), shared by the
/// channel's handle and its client engine, which records the error when the close arrives:
/// every later operation on the handle fails with that error — the broker's reason (`404
/// NOT_FOUND - no exchange ...`) — rather than being sent on a channel that is gone.
pub(crate) type ClosedBy = Arc<Mutex<Option<Error>>>;

/// The publisher confirms of one channel in confirm mode (the `confirm_publish` transport
/// option), kept by both client engines: the publishes sent, numbered from 1 as the broker
/// numbers them, waiting for the broker's `basic.ack` (the publish resolves) or `basic.nack`
/// (it fails); when the channel or the connection ends first they fail with its error, so a
/// publish is either confirmed or fails, never lost silently.
#[derive(Default)]
pub(crate) struct Confirms {
    next: u64,
    /// By tag, ascending (publishes are numbered in order; a `VecDeque` rather than a
    /// `BTreeMap`, whose code per key and value type is several KB of the wasm module).
    waiting: VecDeque<(u64, oneshot::Sender<Result<()>>)>,
}

impl Confirms {
    /// A publish goes out: what its confirm (or failure) will arrive on.
    pub(crate) fn publish(&mut self) -> oneshot::Receiver<Result<()>> {
        self.next += 1;
        let (tx, rx) = oneshot::channel();
        self.waiting.push_back((self.next, tx));
        rx
    }

    /// The broker confirmed `tag` (with `multiple`, every tag up to it): `ack` says whether
    /// it took the messages; a nack fails them with `MessageNacked`.
    pub(crate) fn settle(&mut self, tag: u64, multiple: bool, ack: bool) {
        let send = |t: u64, tx: oneshot::Sender<Result<()>>| {
            let _ = tx.send(if ack { Ok(()) } else { Err(Error::MessageNacked(format!("the broker refused message {t} (basic.nack)"))) });
        };
        if multiple {
            while self.waiting.front().is_some_and(|(t, _)| *t <= tag) {
                if let Some((t, tx)) = self.waiting.pop_front() {
                    send(t, tx);
                }
            }
        } else if let Ok(at) = self.waiting.binary_search_by_key(&tag, |(t, _)| *t) {
            if let Some((t, tx)) = self.waiting.remove(at) {
                send(t, tx);
            }
        }
    }

    /// The channel or its connection ended: every publish still waiting fails with `e`.
    pub(crate) fn fail(self, e: &Error) {
        for (_, tx) in self.waiting {
            let _ = tx.send(Err(e.clone()));
        }
    }
}

/// The events a connection's reader pushes, read by `next_event`/`try_next_event`: shared
/// by the carrier-driven transports (the gateway client here, the AMQP client).
pub struct EventQueue {
    rx: futures::lock::Mutex<mpsc::UnboundedReceiver<ServerEvent>>,
    /// "the gateway connection is closed", ... once the reader is gone.
    closed: &'static str,
}

impl EventQueue {
    /// The reading side of `rx`; `closed` is the error text once the sender is gone.
    pub fn new(rx: mpsc::UnboundedReceiver<ServerEvent>, closed: &'static str) -> Self {
        EventQueue { rx: futures::lock::Mutex::new(rx), closed }
    }

    fn closed(&self) -> Error {
        Error::RecoverableConnection(self.closed.into())
    }

    /// The next event, waiting up to `timeout`. When none is ready, `carrier` first sends
    /// what it holds back (acks, publishes): the other side may be waiting for it.
    pub async fn next(&self, timeout: Option<Duration>, carrier: &dyn Carrier) -> Result<ServerEvent> {
        let mut rx = self.rx.lock().await;
        match rx.try_recv() {
            Ok(ev) => return Ok(ev),
            Err(mpsc::TryRecvError::Closed) => return Err(self.closed()),
            Err(mpsc::TryRecvError::Empty) => carrier.flush(),
        }
        let next = match timeout {
            None => rx.next().await,
            Some(t) => {
                let timer = rt::sleep(t);
                futures::pin_mut!(timer);
                match futures::future::select(rx.next(), timer).await {
                    futures::future::Either::Left((ev, _)) => ev,
                    futures::future::Either::Right(_) => return Err(Error::Timeout(None)),
                }
            }
        };
        next.ok_or_else(|| self.closed())
    }

    /// An event if one is ready (never waits).
    pub fn try_next(&self) -> Result<Option<ServerEvent>> {
        match self.rx.try_lock() {
            Some(mut rx) => match rx.try_recv() {
                Ok(ev) => Ok(Some(ev)),
                Err(mpsc::TryRecvError::Closed) => Err(self.closed()),
                Err(mpsc::TryRecvError::Empty) => Ok(None),
            },
            None => Ok(None),
        }
    }
}
