//! Time: the broker's clock (passed in or lent, never read on its own), message TTL and
//! queue expiry, and the sans-io timer pair [`Broker::poll_timeout`] / [`Broker::handle_timeout`].

use web_time::{Duration, Instant};

use super::dead_letter::DeathReason;
use super::{Broker, QueueState};

/// The broker's notion of "now": a monotonic instant for expiry, and wall-clock milliseconds
/// for the `x-death` timestamps it writes.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time.
    pub instant: Instant,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
}

impl Now {
    /// Read the system clocks (the adapters call this; the broker never does).
    pub fn system() -> Self {
        let unix_ms = web_time::SystemTime::now()
            .duration_since(web_time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Now { instant: Instant::now(), unix_ms }
    }
}

/// The time operations see: set by [`Broker::set_now`], or read from the clock lent with
/// [`Broker::set_clock`] on first use after a [`Broker::tick`].
#[derive(Debug)]
pub(super) struct Time {
    now: Now,
    stale: bool,
    clock: Option<fn() -> Now>,
}

impl Time {
    /// The system time, until the caller sets or lends one.
    pub(super) fn system() -> Self {
        Time { now: Now::system(), stale: false, clock: None }
    }

    pub(super) fn get(&mut self) -> Now {
        if self.stale {
            self.stale = false;
            if let Some(clock) = self.clock {
                self.now = clock();
            }
        }
        self.now
    }
}

impl QueueState {
    /// When the queue expires (`x-expires`): that long after its last use, unless it has
    /// consumers.
    fn expires_at(&self) -> Option<Instant> {
        let ms = self.expires.filter(|_| self.consumers.is_empty())?;
        Some(self.last_used + Duration::from_millis(ms))
    }
}

impl Broker {
    /// Set the current time. Call before each operation (the memory transport does); expiry
    /// happens lazily on operations and in [`Broker::handle_timeout`].
    pub fn set_now(&mut self, now: Now) {
        self.time.now = now;
        self.time.stale = false;
    }

    /// Read the time from `clock` instead, at most once per operation (after each
    /// [`Broker::tick`]) and only when the operation needs it: most publishes and acks do not.
    pub fn set_clock(&mut self, clock: fn() -> Now) {
        self.time.clock = Some(clock);
        self.time.stale = true;
    }

    /// Time has passed since the last operation: the next one that needs the time reads the
    /// clock given to [`Broker::set_clock`].
    pub fn tick(&mut self) {
        self.time.stale = true;
    }

    /// Delete a queue whose `x-expires` has passed.
    pub(super) fn expire_queue(&mut self, vhost: &str, name: &str) {
        let time = &mut self.time;
        let expired = self
            .vhosts
            .get(vhost)
            .and_then(|v| v.queues.get(name))
            .is_some_and(|q| q.expires_at().is_some_and(|t| t <= time.get().instant));
        if expired {
            self.delete_queue(vhost, name);
        }
    }

    /// When the broker next needs [`Broker::handle_timeout`]: the earliest message expiry at
    /// the head of a queue, or queue expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        for v in self.vhosts.values() {
            for q in v.queues.values() {
                let mut t = q.ready.next_expiry();
                if let Some(e) = q.expires_at() {
                    t = Some(t.map_or(e, |x| x.min(e)));
                }
                if let Some(t) = t {
                    best = Some(best.map_or(t, |b| b.min(t)));
                }
            }
        }
        best
    }

    /// Expire messages and queues whose time has come.
    pub fn handle_timeout(&mut self, now: Now) {
        self.set_now(now);
        let mut expired_queues = Vec::new();
        let mut queues_with_expiry = Vec::new();
        for (vn, v) in self.vhosts.iter() {
            for q in v.queues.values() {
                if q.expires_at().is_some_and(|t| t <= now.instant) {
                    expired_queues.push((vn.clone(), q.name.clone()));
                } else if q.ready.next_expiry().is_some_and(|t| t <= now.instant) {
                    queues_with_expiry.push((vn.clone(), q.name.clone()));
                }
            }
        }
        for (v, q) in expired_queues {
            self.delete_queue(&v, &q);
        }
        for (v, q) in queues_with_expiry {
            let mut expired = Vec::new();
            if let Some(qs) = self.vhosts.get_mut(&v).and_then(|vh| vh.queues.get_mut(&q)) {
                qs.ready.pop_expired(now.instant, &mut expired);
            }
            if !expired.is_empty() {
                self.dead_letter(&v, &q, expired, DeathReason::Expired);
            }
            self.dispatch(&v, &q);
        }
        self.check_alarm();
    }
}
