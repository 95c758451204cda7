//! `ConsumerMixin`: a consumer run loop that survives connection loss (Kombu's
//! `kombu.mixins.ConsumerMixin`).
//!
//! Implement [`ConsumerMixin::connection`], [`ConsumerMixin::get_consumers`] and
//! [`ConsumerMixin::should_stop`]; [`ConsumerMixin::run`] then connects (retrying with
//! `ensure_connection`), starts the consumers on the default channel, and drains events until
//! `should_stop`, reconnecting and restarting the consumers after a connection error.

use crate::channel::Channel;
use crate::connection::Connection;
use crate::consumer::Consumer;
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;
use crate::rt::{Duration, MaybeSend, MaybeSync};

/// A consumer run loop; see the module documentation.
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait ConsumerMixin: MaybeSend + MaybeSync {
    /// The connection to consume from.
    fn connection(&self) -> &Connection;

    /// The consumers to run, created on `channel` with their callbacks.
    fn get_consumers(&self, channel: &Channel) -> Result<Vec<Consumer>>;

    /// True when the loop should end (checked between events, at least once a second).
    fn should_stop(&self) -> bool;

    /// How long one `drain_events` waits before `should_stop` is checked again.
    fn timeout(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// The policy used to (re)connect.
    fn connect_policy(&self) -> RetryPolicy {
        RetryPolicy::ensure_connection_default()
    }

    /// Called when the connection failed, before retrying in `interval` seconds.
    fn on_connection_error(&self, error: &Error, interval: f64) {
        tracing::error!("Broker connection error: {error}. Trying again in {interval} seconds.");
    }

    /// Called when the connection is back after an error.
    fn on_connection_revived(&self) {}

    /// Called when the consumers are consuming.
    fn on_consume_ready(&self, _consumers: &[Consumer]) {}

    /// Called when consuming ends.
    fn on_consume_end(&self) {}

    /// Called on each iteration of the loop.
    fn on_iteration(&self) {}

    /// Run until [`ConsumerMixin::should_stop`]. Connection errors reconnect; other errors
    /// end the loop and are returned.
    async fn run(&self) -> Result<()> {
        let mut revived = false;
        while !self.should_stop() {
            let policy = self.connect_policy();
            self.connection()
                .ensure_connection(&policy, |e: &Error, interval: f64| self.on_connection_error(e, interval))
                .await?;
            if revived {
                self.on_connection_revived();
            }
            let channel = self.connection().default_channel().await?;
            let consumers = self.get_consumers(&channel)?;
            for c in &consumers {
                c.consume().await?;
            }
            self.on_consume_ready(&consumers);
            let outcome = loop {
                if self.should_stop() {
                    break Ok(());
                }
                self.on_iteration();
                match self.connection().drain_events(Some(self.timeout())).await {
                    Ok(()) | Err(Error::Timeout(_)) => {}
                    Err(e) if e.is_recoverable_connection_error() => break Err(e),
                    Err(e) => {
                        for c in &consumers {
                            let _ = c.cancel().await;
                        }
                        self.on_consume_end();
                        return Err(e);
                    }
                }
            };
            for c in &consumers {
                let _ = c.cancel().await;
            }
            self.on_consume_end();
            if let Err(e) = outcome {
                self.on_connection_error(&e, 0.0);
                revived = true;
            }
        }
        Ok(())
    }
}

/// `ConsumerProducerMixin`: a [`ConsumerMixin`] that also publishes, on a separate connection
/// so that a blocked or flow-controlled producer never stalls the consumers (Kombu's
/// `kombu.mixins.ConsumerProducerMixin`).
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait ConsumerProducerMixin: ConsumerMixin {
    /// The producer connection: keep one (e.g. `self.connection().clone_params()` made once)
    /// and return it here.
    fn producer_connection(&self) -> &Connection;

    /// A producer on the producer connection's default channel.
    fn producer(&self) -> crate::Producer {
        crate::Producer::new(&self.producer_connection().default_channel_handle())
    }

    /// Release the producer connection when consuming ends for good.
    async fn close_producer(&self) -> Result<()> {
        self.producer_connection().release().await
    }
}
