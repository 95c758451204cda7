//! Connections and channels: opening and closing them, running channel methods (a channel
//! exception closes the channel, a connection exception the connection), and the per-connection
//! outboxes of [`ServerEvent`]s the adapters drain.

use std::collections::VecDeque;

use crate::error::{Error, ReplyCode, Result};
use crate::namemap::SortedMap;
use crate::proto::methods::{Name, ServerEvent};

use super::{Broker, ChannelId, ChannelState, ConnId, ConnState};

fn closed(conn: ConnId) -> Error {
    Error::RecoverableConnection(format!("connection {conn} to the memory broker is closed"))
}

impl ConnState {
    /// Queue an event; true when the connection is to be woken (nothing was waiting).
    pub(super) fn push(&mut self, ev: ServerEvent) -> bool {
        self.events.push_back(ev);
        !std::mem::replace(&mut self.notify, true)
    }
}

impl Broker {
    /// Open a connection to `vhost` (created on first use, as the memory broker has no users).
    pub fn connect(&mut self, vhost: &str) -> ConnId {
        let vhost = if vhost.is_empty() { "/" } else { vhost };
        self.vhost_mut(vhost);
        let id = self.next_conn;
        self.next_conn += 1;
        self.connections.insert(
            id,
            ConnState {
                vhost: Name::from(vhost),
                channels: SortedMap::default(),
                next_channel: 1,
                events: VecDeque::new(),
                notify: false,
            },
        );
        self.tell_alarm(id);
        id
    }

    /// True while the connection is open.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.connections.contains_key(&conn)
    }

    /// Close a connection: its channels close (unacknowledged messages are requeued) and its
    /// exclusive queues are deleted. The connection is reported woken ([`Broker::take_woken`]),
    /// so that whatever waits for its events learns at once that it is gone, rather than when
    /// its timer fires (which, with a message expiring in hours, kept Node running that long
    /// after `release()`).
    pub fn close_connection(&mut self, conn: ConnId) {
        let Some(c) = self.connections.get(&conn) else { return };
        self.woken.push(conn);
        let vhost = c.vhost.clone();
        let channels: Vec<ChannelId> = c.channels.keys().copied().collect();
        for ch in channels {
            self.drop_channel(conn, ch);
        }
        self.connections.remove(&conn);
        let exclusive: Vec<Name> = self
            .vhosts
            .get(&vhost)
            .map(|v| v.queues.values().filter(|q| q.exclusive_owner == Some(conn)).map(|q| q.name.clone()).collect())
            .unwrap_or_default();
        for q in exclusive {
            self.delete_queue(&vhost, &q);
        }
        // Its unacknowledged messages are ready again (or gone with its exclusive queues).
        self.check_alarm();
    }

    /// Close every connection with a `connection.close` event, as a broker restart would.
    /// Tests use it to exercise reconnection.
    pub fn force_close_all(&mut self, reason: &str) {
        let ids: Vec<ConnId> = self.connections.keys().copied().collect();
        for id in ids {
            self.force_close(id, Error::connection(ReplyCode::ConnectionForced, format!("CONNECTION_FORCED - {reason}")));
        }
    }

    fn force_close(&mut self, conn: ConnId, error: Error) {
        // Events queued so far are kept so the client can still read them before the close.
        let events = self.connections.get_mut(&conn).map(|c| std::mem::take(&mut c.events));
        self.close_connection(conn);
        let mut events = events.unwrap_or_default();
        events.push_back(ServerEvent::ConnectionClosed { error });
        self.closed_outboxes.insert(conn, events);
        self.woken.push(conn);
    }

    /// Open a channel on a connection.
    pub fn open_channel(&mut self, conn: ConnId) -> Result<ChannelId> {
        let c = self.conn_mut(conn)?;
        let id = c.next_channel;
        c.next_channel = c.next_channel.checked_add(1).ok_or_else(|| {
            Error::connection(ReplyCode::ResourceError, "RESOURCE_ERROR - channel ids exhausted")
        })?;
        c.channels.insert(id, ChannelState::new());
        Ok(id)
    }

    /// Close a channel: its consumers are cancelled and its unacknowledged messages requeued.
    pub fn close_channel(&mut self, conn: ConnId, ch: ChannelId) -> Result<()> {
        self.conn_mut(conn)?;
        self.drop_channel(conn, ch);
        Ok(())
    }

    /// True while the channel is open.
    pub fn is_channel_open(&self, conn: ConnId, ch: ChannelId) -> bool {
        self.connections.get(&conn).is_some_and(|c| c.channels.contains_key(&ch))
    }

    fn conn_mut(&mut self, conn: ConnId) -> Result<&mut ConnState> {
        self.connections.get_mut(&conn).ok_or_else(|| closed(conn))
    }

    pub(super) fn check_channel(&self, conn: ConnId, ch: ChannelId) -> Result<Name> {
        let c = self.connections.get(&conn).ok_or_else(|| closed(conn))?;
        if !c.channels.contains_key(&ch) {
            return Err(Error::channel(
                ReplyCode::ChannelError,
                format!("CHANNEL_ERROR - channel {ch} is closed"),
            ));
        }
        Ok(c.vhost.clone())
    }

    /// Run a channel method: a channel exception closes the channel, a connection exception
    /// the connection, as in AMQP.
    pub(super) fn channel_op<T>(
        &mut self,
        conn: ConnId,
        ch: ChannelId,
        f: impl FnOnce(&mut Self, Name) -> Result<T>,
    ) -> Result<T> {
        let vhost = self.check_channel(conn, ch)?;
        let r = f(self, vhost);
        match &r {
            Err(Error::Channel { code, .. }) if *code != ReplyCode::ChannelError => {
                self.drop_channel(conn, ch);
            }
            Err(e @ Error::Connection { .. }) => {
                let e = e.clone();
                self.force_close(conn, e);
            }
            _ => {}
        }
        self.check_alarm();
        r
    }

    fn drop_channel(&mut self, conn: ConnId, ch: ChannelId) {
        let Some(c) = self.connections.get_mut(&conn) else { return };
        let vhost = c.vhost.clone();
        let Some(state) = c.channels.remove(&ch) else { return };
        let mut touched: SortedMap<Name, ()> = SortedMap::new();
        let Some(v) = self.vhosts.get_mut(&vhost) else { return };
        // Requeue unacknowledged messages, oldest at the head.
        for u in state.unacked.into_newest_first() {
            if let Some(q) = v.queues.get_mut(&u.queue) {
                q.requeue(u.msg);
                touched.insert(u.queue, ());
            }
        }
        let mut auto_delete = Vec::new();
        for (tag, cs) in state.consumers {
            if let Some(q) = v.queues.get_mut(&cs.queue) {
                if q.remove_consumer(conn, ch, &tag, self.time.get().instant) {
                    auto_delete.push(cs.queue.clone());
                }
                touched.insert(cs.queue, ());
            }
        }
        for q in auto_delete {
            touched.remove(&q);
            self.delete_queue(&vhost, &q);
        }
        for (q, ()) in touched {
            self.dispatch(&vhost, &q);
        }
    }

    pub(super) fn push_event(&mut self, conn: ConnId, ev: ServerEvent) {
        if let Some(c) = self.connections.get_mut(&conn) {
            if c.push(ev) {
                self.woken.push(conn);
            }
        }
    }

    /// The next event for a connection. After the connection was closed by the broker, its
    /// last events end with [`ServerEvent::ConnectionClosed`].
    pub fn pop_event(&mut self, conn: ConnId) -> Option<ServerEvent> {
        if let Some(c) = self.connections.get_mut(&conn) {
            let ev = c.events.pop_front();
            if c.events.is_empty() {
                c.notify = false;
            }
            return ev;
        }
        let q = self.closed_outboxes.get_mut(&conn)?;
        let ev = q.pop_front();
        if q.is_empty() {
            self.closed_outboxes.remove(&conn);
        }
        ev
    }

    /// Move every event waiting for a connection to `out` (oldest first).
    pub fn take_events(&mut self, conn: ConnId, out: &mut VecDeque<ServerEvent>) {
        if let Some(c) = self.connections.get_mut(&conn) {
            out.append(&mut c.events);
            c.notify = false;
            return;
        }
        if let Some(mut q) = self.closed_outboxes.remove(&conn) {
            out.append(&mut q);
        }
    }

    /// True when the connection has events waiting.
    pub fn has_events(&self, conn: ConnId) -> bool {
        self.connections.get(&conn).is_some_and(|c| !c.events.is_empty()) || self.closed_outboxes.contains_key(&conn)
    }

    /// Connections that received events since the last call (the adapter wakes them).
    pub fn take_woken(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.woken)
    }

    /// Like [`Broker::take_woken`], without giving up the buffer.
    pub fn drain_woken(&mut self) -> std::vec::Drain<'_, ConnId> {
        self.woken.drain(..)
    }
}
