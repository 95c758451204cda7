//! Logical clocks (Kombu's `kombu.clocks`): the Lamport clock Celery uses to order events.

use std::sync::atomic::{AtomicU64, Ordering};

/// A Lamport logical clock (Kombu's `LamportClock`): `forward()` on local events and sends,
/// `adjust(other)` on receipt, so that causally related events are ordered.
#[derive(Debug, Default)]
pub struct LamportClock {
    value: AtomicU64,
}

impl LamportClock {
    /// A clock starting at `initial_value`.
    pub fn new(initial_value: u64) -> Self {
        LamportClock { value: AtomicU64::new(initial_value) }
    }

    /// The current value.
    pub fn value(&self) -> u64 {
        self.value.load(Ordering::SeqCst)
    }

    /// Advance for a local event or a send; returns the new value.
    pub fn forward(&self) -> u64 {
        self.value.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// On receiving `other`: the clock becomes `max(value, other) + 1`; returns it.
    pub fn adjust(&self, other: u64) -> u64 {
        let mut cur = self.value.load(Ordering::SeqCst);
        loop {
            let new = cur.max(other) + 1;
            match self.value.compare_exchange(cur, new, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return new,
                Err(v) => cur = v,
            }
        }
    }

    /// Sort events `(clock, timestamp, id, obj)` as Kombu's `sort_heap` does: by clock, then
    /// by id when clocks tie (timestamps only break ties between equal ids).
    pub fn sort<T>(events: &mut [Timetuple<T>]) {
        events.sort_by(|a, b| a.cmp_key(b));
    }
}

/// An event stamped with a logical clock (Kombu's `timetuple`).
#[derive(Debug, Clone, PartialEq)]
pub struct Timetuple<T> {
    /// The Lamport clock value.
    pub clock: u64,
    /// Wall-clock timestamp (seconds).
    pub timestamp: f64,
    /// Process id (`hostname:pid`).
    pub id: String,
    /// The event.
    pub obj: T,
}

impl<T> Timetuple<T> {
    fn cmp_key(&self, other: &Self) -> std::cmp::Ordering {
        self.clock
            .cmp(&other.clock)
            .then_with(|| self.id.cmp(&other.id))
            .then_with(|| self.timestamp.partial_cmp(&other.timestamp).unwrap_or(std::cmp::Ordering::Equal))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn lamport_rules() {
        let c = LamportClock::new(0);
        assert_eq!(c.forward(), 1);
        assert_eq!(c.adjust(10), 11);
        assert_eq!(c.adjust(3), 12);
        assert_eq!(c.value(), 12);
    }

    #[test]
    fn ordering_by_clock_then_id() {
        let t = |clock, id: &str, ts| Timetuple { clock, timestamp: ts, id: id.into(), obj: () };
        let mut v = vec![t(2, "b", 1.0), t(1, "z", 9.0), t(2, "a", 5.0)];
        LamportClock::sort(&mut v);
        assert_eq!(v.iter().map(|e| (e.clock, e.id.as_str())).collect::<Vec<_>>(), vec![(1, "z"), (2, "a"), (2, "b")]);
    }
}
