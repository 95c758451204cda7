//! When a client connection is given up: no `hello` (or AMQP login) within the hello
//! timeout, nothing heard for the idle timeout once open (the server pings every
//! `ping_interval`, and a live client's WebSocket answers), or pings sent faster than the
//! server answers them. Plain state with time as an argument; the socket loops
//! (`super::serve_client`, the relay) drive it.

use std::time::{Duration, Instant};

/// The timeouts of client connections (zero: none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// From the WebSocket's opening to `hello` answered (`/gateway`) or the client's first
    /// bytes (`/amqp`).
    pub hello: Duration,
    /// Once open: nothing received (no request, no pong) and nothing the client took from its
    /// socket for this long closes the connection.
    pub idle: Duration,
    /// The server's WebSocket ping to open connections, so that a live client is heard.
    pub ping_interval: Duration,
    /// How long the close of a connection may take (the close frame sent, what was queued
    /// before it): a client that reads nothing any more is dropped after it.
    pub close: Duration,
    /// The deadline for an HTTP request's headers (and between requests on a kept-alive
    /// connection).
    pub header_read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            hello: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            ping_interval: Duration::from_secs(20),
            close: Duration::from_secs(5),
            header_read: Duration::from_secs(10),
        }
    }
}

/// Pings a client may send per [`PING_WINDOW`]; past it the connection closes (each ping's
/// pong waits in the socket for a client that may not read it).
pub(crate) const MAX_PINGS: u32 = 100;
/// See [`MAX_PINGS`].
pub(crate) const PING_WINDOW: Duration = Duration::from_secs(10);

/// One connection's liveness (see the module documentation).
#[derive(Debug)]
pub(crate) struct Liveness {
    timeouts: Timeouts,
    opened: Instant,
    /// `hello` was answered (or the AMQP client spoke).
    open: bool,
    last_heard: Instant,
    ping_window: (Instant, u32),
}

impl Liveness {
    pub(crate) fn new(timeouts: Timeouts, now: Instant) -> Liveness {
        Liveness { timeouts, opened: now, open: false, last_heard: now, ping_window: (now, 0) }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    /// `hello` was answered: the idle timeout applies from now.
    pub(crate) fn opened(&mut self, now: Instant) {
        self.open = true;
        self.last_heard = now;
    }

    /// The client was heard from: a message or a pong received, or a message it took.
    pub(crate) fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// When the connection is given up if nothing changes (`None`: never).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.open {
            (!self.timeouts.idle.is_zero()).then(|| self.last_heard + self.timeouts.idle)
        } else {
            (!self.timeouts.hello.is_zero()).then(|| self.opened + self.timeouts.hello)
        }
    }

    /// The close code and reason once [`Liveness::deadline`] has passed.
    pub(crate) fn expired(&self, hello: &str) -> (u16, String) {
        if self.open {
            (1001, format!("idle: nothing heard from the client for {} s", self.timeouts.idle.as_secs_f64()))
        } else {
            (1008, format!("no {hello} within {} s", self.timeouts.hello.as_secs_f64()))
        }
    }

    /// The client sent a ping: the close code and reason if it sent too many.
    pub(crate) fn pinged(&mut self, now: Instant) -> Result<(), (u16, String)> {
        let (start, n) = &mut self.ping_window;
        if now.duration_since(*start) >= PING_WINDOW {
            *start = now;
            *n = 0;
        }
        *n += 1;
        if *n > MAX_PINGS {
            return Err((1008, format!("too many pings: more than {MAX_PINGS} in {} s", PING_WINDOW.as_secs())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts { hello: Duration::from_secs(3), idle: Duration::from_secs(7), ..Timeouts::default() }
    }

    #[test]
    fn before_hello_only_the_hello_deadline_counts_and_after_it_the_idle_one() {
        let t = Instant::now();
        let mut l = Liveness::new(timeouts(), t);
        l.heard(t + Duration::from_secs(2));
        assert_eq!(l.deadline(), Some(t + Duration::from_secs(3)), "nothing but hello extends the hello timeout");
        assert_eq!(l.expired("hello"), (1008, "no hello within 3 s".into()));
        l.opened(t + Duration::from_secs(1));
        assert_eq!(l.deadline(), Some(t + Duration::from_secs(8)));
        l.heard(t + Duration::from_secs(5));
        assert_eq!(l.deadline(), Some(t + Duration::from_secs(12)));
        assert_eq!(l.expired("hello").0, 1001);
        let off = Liveness::new(Timeouts { hello: Duration::ZERO, ..timeouts() }, t);
        assert_eq!(off.deadline(), None);
    }

    #[test]
    fn pings_past_the_limit_close_and_the_window_moves() {
        let t = Instant::now();
        let mut l = Liveness::new(timeouts(), t);
        for _ in 0..MAX_PINGS {
            l.pinged(t).unwrap();
        }
        assert_eq!(l.pinged(t).unwrap_err(), (1008, format!("too many pings: more than {MAX_PINGS} in 10 s")));
        let mut l = Liveness::new(timeouts(), t);
        for i in 0..10 * MAX_PINGS {
            // Ten windows' worth, spread over ten windows.
            l.pinged(t + PING_WINDOW * (i / MAX_PINGS)).unwrap();
        }
    }
}
