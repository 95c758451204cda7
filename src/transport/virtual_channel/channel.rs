//! One virtual channel's state, without IO: consumers and the order their queues are polled
//! in, prefetch credit, delivery tags and the unacknowledged messages they stand for
//! (Kombu's `virtual.Channel` bookkeeping and `virtual.QoS`).

use std::collections::BTreeMap;

use super::store::Fetched;
use crate::error::{Error, ReplyCode, Result};
use crate::proto::methods::Name;

/// The order in which a channel polls the queues of its consumers (Kombu's
/// `queue_order_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueOrder {
    /// `round_robin` (the default): the queue a message just came from moves to the end, so
    /// a busy queue does not starve the others.
    #[default]
    RoundRobin,
    /// `sorted`: alphabetical order; the first queue with messages always wins.
    Sorted,
    /// `priority`: the order the consumers were added in; the first queue with messages
    /// always wins.
    Priority,
}

impl QueueOrder {
    /// Parse Kombu's name of the strategy.
    pub fn parse(name: &str) -> Option<QueueOrder> {
        match name {
            "round_robin" => Some(QueueOrder::RoundRobin),
            "sorted" => Some(QueueOrder::Sorted),
            "priority" => Some(QueueOrder::Priority),
            _ => None,
        }
    }
}

/// A consumer of the channel.
#[derive(Debug, Clone)]
pub(super) struct ConsumerEntry {
    pub(super) tag: Name,
    pub(super) queue: Name,
    pub(super) no_ack: bool,
}

/// What the channel knows between calls.
#[derive(Debug, Default)]
pub(super) struct ChannelState {
    pub(super) open: bool,
    /// Consumers in the order they were added.
    pub(super) consumers: Vec<ConsumerEntry>,
    /// The queues with consumers, in polling order (each once).
    cycle: Vec<Name>,
    order: QueueOrder,
    /// `basic.qos` prefetch_count (0: no limit).
    pub(super) prefetch: u16,
    last_tag: u64,
    /// Delivered, not yet settled: delivery tag → the store's record.
    pub(super) unacked: BTreeMap<u64, Fetched>,
}

impl ChannelState {
    pub(super) fn new(order: QueueOrder) -> Self {
        ChannelState { open: true, order, ..Default::default() }
    }

    /// Add a consumer; its queue joins the cycle at the end.
    pub(super) fn add_consumer(&mut self, c: ConsumerEntry) -> Result<()> {
        if self.consumers.iter().any(|e| e.tag == c.tag) {
            return Err(Error::channel(ReplyCode::NotAllowed, format!("NOT_ALLOWED - attempt to reuse consumer tag '{}'", c.tag)));
        }
        if !self.cycle.contains(&c.queue) {
            self.cycle.push(c.queue.clone());
        }
        self.consumers.push(c);
        Ok(())
    }

    /// Remove a consumer; its queue leaves the cycle unless another consumer reads it.
    pub(super) fn remove_consumer(&mut self, tag: &str) -> Option<ConsumerEntry> {
        let i = self.consumers.iter().position(|e| &*e.tag == tag)?;
        let c = self.consumers.remove(i);
        if !self.consumers.iter().any(|e| e.queue == c.queue) {
            self.cycle.retain(|q| *q != c.queue);
        }
        Some(c)
    }

    /// The consumer that gets messages from `queue` (the first one added).
    pub(super) fn consumer_of(&self, queue: &str) -> Option<&ConsumerEntry> {
        self.consumers.iter().find(|e| &*e.queue == queue)
    }

    /// The queues to poll now, in order.
    pub(super) fn poll_order(&self) -> Vec<Name> {
        let mut q = self.cycle.clone();
        if self.order == QueueOrder::Sorted {
            crate::sort::sort_by(&mut q, |a, b| a.cmp(b));
        }
        q
    }

    /// A message came from `queue`: with round robin, the queue goes to the end.
    pub(super) fn rotate(&mut self, queue: &str) {
        if self.order == QueueOrder::RoundRobin {
            if let Some(i) = self.cycle.iter().position(|q| &**q == queue) {
                let q = self.cycle.remove(i);
                self.cycle.push(q);
            }
        }
    }

    /// How many more messages the channel may take now (`None`: no limit).
    pub(super) fn credit(&self) -> Option<usize> {
        match self.prefetch {
            0 => None,
            p => Some(usize::from(p).saturating_sub(self.unacked.len())),
        }
    }

    /// The next delivery tag.
    pub(super) fn next_tag(&mut self) -> u64 {
        self.last_tag += 1;
        self.last_tag
    }

    /// Take the unacknowledged messages `tag` stands for (every one up to it with
    /// `multiple`; `tag` 0 with `multiple` is all of them, as in AMQP).
    pub(super) fn take_unacked(&mut self, tag: u64, multiple: bool) -> Result<Vec<Fetched>> {
        if multiple && tag == 0 {
            return Ok(std::mem::take(&mut self.unacked).into_values().collect());
        }
        if multiple {
            let keep = self.unacked.split_off(&(tag.saturating_add(1)));
            let taken = std::mem::replace(&mut self.unacked, keep);
            if taken.is_empty() {
                return Err(unknown_tag(tag));
            }
            return Ok(taken.into_values().collect());
        }
        match self.unacked.remove(&tag) {
            Some(m) => Ok(vec![m]),
            None => Err(unknown_tag(tag)),
        }
    }
}

fn unknown_tag(tag: u64) -> Error {
    Error::channel(ReplyCode::PreconditionFailed, format!("PRECONDITION_FAILED - unknown delivery tag {tag}"))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn consumer(tag: &str, queue: &str) -> ConsumerEntry {
        ConsumerEntry { tag: tag.into(), queue: queue.into(), no_ack: false }
    }

    fn fetched(token: &str) -> Fetched {
        Fetched { queue: "q".into(), token: token.into(), payload: Default::default(), broadcast: false, extra: None }
    }

    #[test]
    fn round_robin_moves_the_used_queue_to_the_end() {
        let mut c = ChannelState::new(QueueOrder::RoundRobin);
        for (t, q) in [("1", "a"), ("2", "b"), ("3", "c")] {
            c.add_consumer(consumer(t, q)).unwrap();
        }
        c.rotate("a");
        assert_eq!(c.poll_order(), ["b", "c", "a"].map(Name::from));
        c.rotate("c");
        assert_eq!(c.poll_order(), ["b", "a", "c"].map(Name::from));
    }

    #[test]
    fn sorted_and_priority_orders_do_not_rotate() {
        let mut c = ChannelState::new(QueueOrder::Sorted);
        c.add_consumer(consumer("1", "b")).unwrap();
        c.add_consumer(consumer("2", "a")).unwrap();
        c.rotate("a");
        assert_eq!(c.poll_order(), ["a", "b"].map(Name::from));
        let mut c = ChannelState::new(QueueOrder::Priority);
        c.add_consumer(consumer("1", "b")).unwrap();
        c.add_consumer(consumer("2", "a")).unwrap();
        c.rotate("b");
        assert_eq!(c.poll_order(), ["b", "a"].map(Name::from));
    }

    #[test]
    fn a_queue_stays_in_the_cycle_while_a_consumer_reads_it() {
        let mut c = ChannelState::new(QueueOrder::RoundRobin);
        c.add_consumer(consumer("1", "a")).unwrap();
        c.add_consumer(consumer("2", "a")).unwrap();
        assert!(c.add_consumer(consumer("2", "b")).is_err(), "a consumer tag is used once");
        c.remove_consumer("1").unwrap();
        assert_eq!(c.poll_order(), ["a"].map(Name::from));
        c.remove_consumer("2").unwrap();
        assert!(c.poll_order().is_empty());
    }

    #[test]
    fn credit_counts_unacked_messages_against_prefetch() {
        let mut c = ChannelState::new(QueueOrder::RoundRobin);
        assert_eq!(c.credit(), None);
        c.prefetch = 2;
        let t = c.next_tag();
        c.unacked.insert(t, fetched("x"));
        assert_eq!(c.credit(), Some(1));
        let t = c.next_tag();
        c.unacked.insert(t, fetched("y"));
        assert_eq!(c.credit(), Some(0));
    }

    #[test]
    fn multiple_takes_every_tag_up_to_the_given_one() {
        let mut c = ChannelState::new(QueueOrder::RoundRobin);
        for tok in ["a", "b", "c"] {
            let t = c.next_tag();
            c.unacked.insert(t, fetched(tok));
        }
        let got: Vec<String> = c.take_unacked(2, true).unwrap().into_iter().map(|m| m.token).collect();
        assert_eq!(got, ["a", "b"]);
        assert!(c.take_unacked(2, false).is_err(), "tag 2 is settled");
        assert_eq!(c.take_unacked(0, true).unwrap().len(), 1, "0 with multiple is everything");
    }
}
