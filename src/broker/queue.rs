//! Queue storage: ready messages by priority, with per-message expiry and byte accounting.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use web_time::Instant;

use crate::proto::methods::{Content, Name};

/// A message sitting in a queue (ready) or delivered and not yet acknowledged.
#[derive(Debug, Clone)]
pub(crate) struct QueuedMessage {
    pub content: Arc<Content>,
    pub exchange: Name,
    pub routing_key: Name,
    pub redelivered: bool,
    pub expires_at: Option<Instant>,
    pub priority: u8,
    /// Its id in the journal when it is kept across restarts (persistent, durable queue).
    pub stored: Option<u64>,
}

impl QueuedMessage {
    pub fn size(&self) -> usize {
        self.content.body.len()
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// Ready messages. One FIFO per priority level; the highest non-empty level is served first.
#[derive(Debug)]
pub(crate) struct Ready {
    levels: Vec<VecDeque<QueuedMessage>>,
    count: usize,
    bytes: usize,
    /// The broker's count of bytes held by all queues.
    held: Arc<AtomicUsize>,
}

impl Drop for Ready {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl Ready {
    /// `max_priority` 0 means a plain FIFO. `held` counts the bytes of every queue's ready
    /// messages (the broker's memory high watermark).
    pub fn new(max_priority: u8, held: Arc<AtomicUsize>) -> Self {
        Ready {
            levels: (0..=max_priority as usize).map(|_| VecDeque::new()).collect(),
            count: 0,
            bytes: 0,
            held,
        }
    }

    pub fn max_priority(&self) -> u8 {
        (self.levels.len() - 1) as u8
    }

    fn level_of(&self, priority: u8) -> usize {
        (priority as usize).min(self.levels.len() - 1)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Count `m` in; returns its level.
    fn added(&mut self, m: &QueuedMessage) -> usize {
        self.count += 1;
        self.bytes += m.size();
        self.held.fetch_add(m.size(), Ordering::Relaxed);
        self.level_of(m.priority)
    }

    /// Count `m` out.
    fn taken(&mut self, m: QueuedMessage) -> QueuedMessage {
        self.count -= 1;
        self.bytes -= m.size();
        self.held.fetch_sub(m.size(), Ordering::Relaxed);
        m
    }

    pub fn push_back(&mut self, m: QueuedMessage) {
        let l = self.added(&m);
        self.levels[l].push_back(m);
    }

    /// Requeued messages go back to the head of their level, like RabbitMQ.
    pub fn push_front(&mut self, m: QueuedMessage) {
        let l = self.added(&m);
        self.levels[l].push_front(m);
    }

    pub fn pop_front(&mut self) -> Option<QueuedMessage> {
        let m = self.levels.iter_mut().rev().find_map(|l| l.pop_front())?;
        Some(self.taken(m))
    }

    /// The oldest message overall (lowest level first): what `drop-head` overflow removes.
    /// RabbitMQ drops from the head of the queue; with priorities, the lowest priority's head.
    pub fn pop_oldest(&mut self) -> Option<QueuedMessage> {
        let m = self.levels.iter_mut().find_map(|l| l.pop_front())?;
        Some(self.taken(m))
    }

    /// Remove expired messages at the head of each level (RabbitMQ expires at the head only).
    pub fn pop_expired(&mut self, now: Instant, out: &mut Vec<QueuedMessage>) {
        for l in 0..self.levels.len() {
            while self.levels[l].front().is_some_and(|m| m.is_expired(now)) {
                if let Some(m) = self.levels[l].pop_front() {
                    out.push(self.taken(m));
                }
            }
        }
    }

    /// The earliest expiry among the heads of the levels.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.levels.iter().filter_map(|l| l.front().and_then(|m| m.expires_at)).min()
    }

    /// The journal ids of the ready messages that are kept across restarts.
    pub fn stored_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.levels.iter().flatten().filter_map(|m| m.stored)
    }

    pub fn clear(&mut self) -> usize {
        let n = self.count;
        for l in &mut self.levels {
            l.clear();
        }
        self.count = 0;
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
        self.bytes = 0;
        n
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn msg(p: u8, body: &str) -> QueuedMessage {
        QueuedMessage {
            content: Arc::new(Content { body: body.as_bytes().to_vec().into(), ..Default::default() }),
            exchange: "".into(),
            routing_key: "q".into(),
            redelivered: false,
            expires_at: None,
            priority: p,
            stored: None,
        }
    }

    #[test]
    fn priorities_and_fifo() {
        let mut r = Ready::new(5, Default::default());
        r.push_back(msg(0, "a"));
        r.push_back(msg(9, "b")); // capped to 5
        r.push_back(msg(3, "c"));
        r.push_back(msg(9, "d"));
        assert_eq!(r.len(), 4);
        assert_eq!(r.bytes(), 4);
        let order: Vec<_> = std::iter::from_fn(|| r.pop_front()).map(|m| m.content.body.clone()).collect();
        assert_eq!(order, vec!["b", "d", "c", "a"]);
        assert!(r.is_empty());
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn plain_queue_ignores_priority() {
        let mut r = Ready::new(0, Default::default());
        r.push_back(msg(9, "a"));
        r.push_back(msg(0, "b"));
        assert_eq!(r.pop_front().unwrap().content.body, "a");
        r.push_front(msg(0, "z"));
        assert_eq!(r.pop_front().unwrap().content.body, "z");
    }
}
