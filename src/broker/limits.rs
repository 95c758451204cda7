//! Resource limits: a memory high watermark on the message bytes queues hold, and caps on
//! the queues, exchanges and bindings of a virtual host.
//!
//! Over the watermark the broker refuses publishes, as RabbitMQ stops accepting them when its
//! memory alarm is raised (RabbitMQ blocks the publishing connections with
//! `connection.blocked` until memory falls; the memory broker has no socket to stop reading,
//! so it answers instead): a channel in confirm mode gets a `basic.nack` for the publish, any
//! other channel is closed with `RESOURCE_ERROR` (506) naming the watermark. Consumers keep
//! consuming, and publishes are accepted again once the queues hold less than the watermark.
//! As RabbitMQ does, every connection is told when the alarm is raised
//! ([`ServerEvent::Blocked`], `connection.blocked`) and when it clears
//! ([`ServerEvent::Unblocked`]); a connection opened while it is raised is told at once.
//!
//! Declaring past a cap is refused with `PRECONDITION_FAILED`, the code RabbitMQ's
//! `max-queues` virtual host limit answers.

use std::sync::atomic::Ordering;

use crate::error::{Error, ReplyCode, Result};
use crate::proto::methods::ServerEvent;

use super::{Broker, VHost};

/// Limits of a [`Broker`] (`None`: unlimited, the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of message bodies held in queues (ready messages, all virtual hosts) at which
    /// publishes are refused.
    pub memory_high_watermark: Option<usize>,
    /// Queues per virtual host.
    pub max_queues: Option<usize>,
    /// Exchanges per virtual host, not counting the predeclared ones (`amq.*` and the
    /// default exchange).
    pub max_exchanges: Option<usize>,
    /// Bindings per virtual host (queue and exchange bindings).
    pub max_bindings: Option<usize>,
}

fn limit_reached(what: &str, name: &str, vhost: &str, limit: usize) -> Error {
    Error::channel(
        ReplyCode::PreconditionFailed,
        format!("PRECONDITION_FAILED - cannot declare {what} '{name}' in vhost '{vhost}': {what} limit ({limit}) is reached"),
    )
}

impl Broker {
    /// Set the limits (existing entities over a new cap stay; new declarations are refused).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Bytes of message bodies held in queues (what the memory high watermark counts).
    pub fn held_bytes(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The refusal of a publish when the memory high watermark is reached.
    pub(super) fn over_watermark(&self) -> Option<Error> {
        let limit = self.limits.memory_high_watermark?;
        let held = self.held_bytes();
        (held >= limit).then(|| {
            Error::channel(
                ReplyCode::ResourceError,
                format!("RESOURCE_ERROR - memory high watermark reached: queues hold {held} bytes of messages (limit {limit}); publish refused"),
            )
        })
    }
}

/// The reason `connection.blocked` gives (RabbitMQ's words for its memory alarm).
const BLOCKED_REASON: &str = "low on memory";

impl Broker {
    /// Raise or clear the memory alarm when the bytes held crossed the watermark since the
    /// last call, telling every connection (`connection.blocked` / `connection.unblocked`).
    /// Called after each channel method and whatever else moves messages (expiry, a closed
    /// connection's requeued messages).
    pub(super) fn check_alarm(&mut self) {
        let over = self.limits.memory_high_watermark.is_some_and(|limit| self.held_bytes() >= limit);
        if over == self.alarm {
            return;
        }
        self.alarm = over;
        let ids: Vec<super::ConnId> = self.connections.keys().copied().collect();
        for id in ids {
            self.push_event(id, self.alarm_event());
        }
    }

    /// What the alarm's state says to a connection.
    fn alarm_event(&self) -> ServerEvent {
        if self.alarm {
            ServerEvent::Blocked { reason: BLOCKED_REASON.to_owned() }
        } else {
            ServerEvent::Unblocked
        }
    }

    /// A new connection learns that the alarm is raised.
    pub(super) fn tell_alarm(&mut self, conn: super::ConnId) {
        if self.alarm {
            self.push_event(conn, self.alarm_event());
        }
    }
}

impl Limits {
    pub(super) fn check_queue(&self, v: &VHost, vhost: &str, name: &str) -> Result<()> {
        match self.max_queues {
            Some(max) if v.queues.len() >= max => Err(limit_reached("queue", name, vhost, max)),
            _ => Ok(()),
        }
    }

    pub(super) fn check_exchange(&self, v: &VHost, vhost: &str, name: &str) -> Result<()> {
        let declared = v.exchanges.len().saturating_sub(super::exchanges::PREDECLARED);
        match self.max_exchanges {
            Some(max) if declared >= max => Err(limit_reached("exchange", name, vhost, max)),
            _ => Ok(()),
        }
    }

    /// After a new binding from `source` was added: over the cap, the caller removes it again.
    pub(super) fn check_bindings(&self, v: &VHost, vhost: &str, source: &str) -> Result<()> {
        let Some(max) = self.max_bindings else { return Ok(()) };
        let bindings: usize = v.exchanges.values().map(|x| x.router.len()).sum();
        if bindings > max {
            return Err(limit_reached("binding", source, vhost, max));
        }
        Ok(())
    }
}
