//! The frames a carrier holds back to send together, as plain data: no socket, no timer (the
//! carrier supplies both), so that the rules are tested natively. Every carrier drives one: the
//! browser's WebSocket carrier (`transport::websocket`) holds frames until the event loop turns
//! and a lone ack up to [`ACK_HOLD_MS`]; the native ones in `kombu-gateway` (tokio TCP/TLS for
//! `amqp://`, tokio-tungstenite for `gateway+ws://`, and the gateway server's own sockets) put
//! in it what queued up while their socket was busy, and hold nothing longer.
//!
//! A WebSocket message costs the browser far more than its bytes (a `send` is an IPC to the
//! network service, which then wakes the server), so a carrier sends few, larger messages:
//! - frames queued in one go share a message (a batch of gateway frames, or concatenated
//!   AMQP frames), up to the size the server reads;
//! - acks of the oldest delivery the broker waits for ([`super::Carrier::send_ack`])
//!   merge: the last one held replaces the one before it;
//! - such an ack, alone in the outbox, may wait a moment for more to merge into it
//!   ([`Outbox::holding`]) while it covers fewer deliveries than the carrier was told it may
//!   hold — half the channel's prefetch window, so that the broker can keep delivering — and
//!   at most [`ACK_HOLD_MS`]: the carrier's timer then sends it ([`Outbox::take_all`]).
//!
//! Without the hold, a consumer that keeps up with its deliveries acks each WebSocket message
//! of deliveries as soon as it has handled it, and the prefetch window circulates in small
//! chunks: one message each way per ~10 deliveries.

use bytes::Bytes;

use crate::error::Result;

/// How long an ack may wait alone for more to merge into it (milliseconds).
pub const ACK_HOLD_MS: u32 = 1;

/// An ack held as the last frame: its channel, the acks merged into it, and how many it may
/// cover before it must go with the next flush.
#[derive(Debug, Clone, Copy, PartialEq)]
struct HeldAck {
    channel: u16,
    covers: u32,
    hold: u32,
}

/// Frames held back, in order.
#[derive(Debug, Default)]
pub struct Outbox {
    frames: Vec<Bytes>,
    /// Their size as a batch (4 bytes of length each).
    bytes: usize,
    /// The largest batch the server reads; 0: each frame goes out at once.
    pub limit: usize,
    /// The messages are a byte stream (AMQP): frames are concatenated, not batched.
    raw_stream: bool,
    /// The last frame is an ack later ones on its channel may replace.
    ack: Option<HeldAck>,
}

impl Outbox {
    /// An outbox for gateway frames (`raw_stream` false: batched once the server allows
    /// batches, see `limit`) or for a byte stream (AMQP: concatenated, up to `limit` bytes).
    pub fn new(limit: usize, raw_stream: bool) -> Self {
        Outbox { limit, raw_stream, ..Outbox::default() }
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Queue `frame`; `send` gets the messages that must go now (a full batch, or the frame
    /// itself while batches are not allowed).
    pub fn push(&mut self, frame: Bytes, mut send: impl FnMut(Bytes) -> Result<()>) -> Result<()> {
        self.ack = None;
        if self.limit == 0 {
            return send(frame);
        }
        if !self.frames.is_empty() && self.bytes + 4 + frame.len() > self.limit {
            send(self.message())?;
        }
        self.bytes += 4 + frame.len();
        self.frames.push(frame);
        if self.bytes >= self.limit {
            send(self.message())?;
        }
        Ok(())
    }

    /// Queue `frame`, an ack of the oldest delivery the broker waits for on `channel`, which
    /// covers an ack queued this way just before it ([`super::Carrier::send_ack`]):
    /// that one is replaced. The ack may be held back while it covers fewer than `hold` acks.
    pub fn push_ack(&mut self, channel: u16, frame: Bytes, hold: u32, send: impl FnMut(Bytes) -> Result<()>) -> Result<()> {
        if let (Some(ack), Some(last)) = (self.ack.as_mut(), self.frames.last_mut()) {
            if ack.channel == channel {
                self.bytes = self.bytes + frame.len() - last.len();
                *last = frame;
                ack.covers += 1;
                ack.hold = hold;
                return Ok(());
            }
        }
        self.push(frame, send)?;
        if !self.frames.is_empty() {
            self.ack = Some(HeldAck { channel, covers: 1, hold });
        }
        Ok(())
    }

    /// True when all that is held is an ack that may wait for more to merge into it: a flush
    /// leaves it (the carrier's timer sends it within [`ACK_HOLD_MS`]).
    pub fn holding(&self) -> bool {
        self.frames.len() == 1 && self.ack.is_some_and(|a| a.covers < a.hold)
    }

    /// What a flush sends: everything held, as one message, unless [`Outbox::holding`].
    pub fn take(&mut self) -> Option<Bytes> {
        if self.frames.is_empty() || self.holding() {
            return None;
        }
        Some(self.message())
    }

    /// Everything held, as one message (the hold's timer, closing).
    pub fn take_all(&mut self) -> Option<Bytes> {
        (!self.frames.is_empty()).then(|| self.message())
    }

    fn message(&mut self) -> Bytes {
        let message = if self.raw_stream { crate::proto::gateway::concat(&self.frames) } else { crate::proto::gateway::encode_batch(&self.frames) };
        self.frames.clear();
        self.ack = None;
        self.bytes = 0;
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outbox for a byte stream (so that messages are the frames concatenated) and what
    /// it sent at once.
    fn stream(limit: usize) -> (Outbox, Vec<Bytes>) {
        (Outbox::new(limit, true), Vec::new())
    }

    /// A `send` that keeps what it is given.
    fn keep(sent: &mut Vec<Bytes>) -> impl FnMut(Bytes) -> Result<()> + '_ {
        |m| {
            sent.push(m);
            Ok(())
        }
    }

    fn frame(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn frames_go_out_together_up_to_the_limit_in_order() {
        let (mut out, mut sent) = stream(16);
        for f in ["abc", "def"] {
            out.push(frame(f), keep(&mut sent)).unwrap();
        }
        assert!(sent.is_empty());
        // Each frame counts 4 bytes more (its length in a batch): 7 + 7 + 11 would pass 16, so
        // what is held goes first.
        out.push(frame("ghijklm"), keep(&mut sent)).unwrap();
        assert_eq!(sent, [frame("abcdef")]);
        sent.clear();
        assert_eq!(out.take(), Some(Bytes::from_static(b"ghijklm")));
        assert_eq!(out.take(), None);
        // No batches allowed (yet): each frame goes at once.
        let (mut out, mut sent) = stream(0);
        out.push(frame("a"), keep(&mut sent)).unwrap();
        out.push_ack(1, frame("ack"), 50, keep(&mut sent)).unwrap();
        assert_eq!(sent, [frame("a"), frame("ack")]);
        assert!(out.is_empty() && !out.holding());
    }

    #[test]
    fn acks_in_a_row_on_a_channel_merge_into_the_last() {
        let (mut out, mut sent) = stream(1 << 16);
        out.push(frame("pub;"), keep(&mut sent)).unwrap();
        for ack in ["ack1;", "ack2;", "ack3;"] {
            out.push_ack(1, frame(ack), 0, keep(&mut sent)).unwrap();
        }
        // Another channel's ack, then a frame: neither merges with what came before it.
        out.push_ack(2, frame("ch2-ack1;"), 0, keep(&mut sent)).unwrap();
        out.push(frame("get;"), keep(&mut sent)).unwrap();
        out.push_ack(2, frame("ch2-ack2;"), 0, keep(&mut sent)).unwrap();
        assert!(sent.is_empty());
        assert_eq!(out.take(), Some(Bytes::from_static(b"pub;ack3;ch2-ack1;get;ch2-ack2;")));
    }

    #[test]
    fn a_lone_ack_is_held_until_it_covers_what_it_may_or_its_timer_sends_it() {
        let (mut out, mut sent) = stream(1 << 16);
        out.push_ack(1, frame("ack1"), 3, keep(&mut sent)).unwrap();
        assert!(out.holding());
        assert_eq!(out.take(), None, "a flush leaves a lone ack that may wait");
        out.push_ack(1, frame("ack2"), 3, keep(&mut sent)).unwrap();
        assert_eq!(out.take(), None);
        out.push_ack(1, frame("ack3"), 3, keep(&mut sent)).unwrap();
        assert!(!out.holding());
        assert_eq!(out.take(), Some(frame("ack3")), "three acks merged: the next flush sends it");
        // The timer sends a held ack whatever it covers.
        out.push_ack(1, frame("ack4"), 3, keep(&mut sent)).unwrap();
        assert_eq!(out.take_all(), Some(frame("ack4")));
        assert_eq!(out.take_all(), None);
        assert!(sent.is_empty());
    }

    #[test]
    fn an_ack_is_not_held_with_other_frames_nor_when_the_window_is_small() {
        let (mut out, _) = stream(1 << 16);
        // Hold 0: a prefetch window of one delivery, where the broker waits for each ack.
        out.push_ack(1, frame("ack1"), 0, |_| unreachable!()).unwrap();
        assert!(!out.holding());
        assert_eq!(out.take(), Some(frame("ack1")));
        // A publish before the ack: the flush sends both (the publish may not wait).
        out.push(frame("pub;"), |_| unreachable!()).unwrap();
        out.push_ack(1, frame("ack2"), 50, |_| unreachable!()).unwrap();
        assert!(!out.holding());
        assert_eq!(out.take(), Some(Bytes::from_static(b"pub;ack2")));
        // An ack held, then a frame after it: no longer alone, nor mergeable.
        out.push_ack(1, frame("ack3;"), 50, |_| unreachable!()).unwrap();
        out.push(frame("heartbeat"), |_| unreachable!()).unwrap();
        assert!(!out.holding());
        assert_eq!(out.take(), Some(Bytes::from_static(b"ack3;heartbeat")));
    }

    #[test]
    fn gateway_frames_go_out_as_one_batch() {
        let mut out = Outbox::new(1 << 16, false);
        out.push(frame("one"), |_| unreachable!()).unwrap();
        out.push_ack(1, frame("two"), 0, |_| unreachable!()).unwrap();
        let batch = out.take().unwrap();
        assert_eq!(batch, crate::proto::gateway::encode_batch(&[frame("one"), frame("two")]));
    }
}
