//! `queue.declare` (with the queue arguments RabbitMQ checks), `queue.bind`, `queue.unbind`,
//! `queue.purge` and `queue.delete`.

use crate::error::{Error, ReplyCode, Result};
use crate::proto::methods::{Name, QueueBind, QueueDeclare, QueueDeclareOk, QueueDelete, ServerEvent};
use crate::value::{Headers, Json, Value};

use super::journal::{DurableBinding, Record};
use super::queue::Ready;
use super::{
    inequivalent, invalid_arg, locked, not_found_queue, Broker, ChannelId, ConnId, Dest,
    Overflow, QueueCounters, QueueState, VHost,
};

fn arg_u64(args: &Headers, key: &str, q: &str, vhost: &str, positive: bool) -> Result<Option<u64>> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        // (The number written as `Json` writes it: the same text as its `Display`.)
        Some(number @ Value::Number(n)) => match n.as_u64() {
            Some(0) if positive => Err(invalid_arg(key, q, vhost, "{value_zero,0}")),
            Some(v) => Ok(Some(v)),
            None => Err(invalid_arg(key, q, vhost, &format!("{{value_negative_or_not_integer,{}}}", Json(number)))),
        },
        Some(other) => Err(invalid_arg(key, q, vhost, &format!("{{unacceptable_type,{}}}", Json(other)))),
    }
}

fn arg_str(args: &Headers, key: &str, q: &str, vhost: &str) -> Result<Option<Name>> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(Name::from(s.as_str()))),
        Some(other) => Err(invalid_arg(key, q, vhost, &format!("{{unacceptable_type,{}}}", Json(other)))),
    }
}

fn queue_binding(vhost: &str, d: &QueueBind) -> DurableBinding {
    DurableBinding {
        vhost: vhost.to_string(),
        source: d.exchange.clone(),
        destination: d.queue.clone(),
        to_exchange: false,
        routing_key: d.routing_key.clone(),
        arguments: d.arguments.clone(),
    }
}

/// Arguments RabbitMQ compares when a queue is re-declared.
const EQUIVALENCE_ARGS: [&str; 9] = [
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-queue-type",
];

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "none".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => Json(v).to_string(),
    }
}

impl Broker {
    /// A server-generated name (`amq.gen-...`, `amq.ctag-...`) with a random suffix as long as
    /// RabbitMQ's (16 random bytes in URL-safe base64).
    pub(super) fn next_name(&mut self, prefix: &str) -> String {
        const SUFFIX_LEN: usize = 22;
        self.names += 1;
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        let mut s = String::with_capacity(prefix.len() + SUFFIX_LEN);
        s.push_str(prefix);
        let mut x = self.names.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ fastrand::u64(..);
        for _ in 0..SUFFIX_LEN {
            s.push(ALPHABET[(x & 63) as usize] as char);
            x = x.rotate_right(6) ^ fastrand::u64(..);
        }
        s
    }

    fn check_exclusive(q: &QueueState, conn: ConnId, vhost: &str) -> Result<()> {
        match q.exclusive_owner {
            Some(owner) if owner != conn => Err(locked(vhost, &q.name)),
            _ => Ok(()),
        }
    }

    /// `queue.declare`. An empty name gets a server-generated `amq.gen-...` name.
    pub fn queue_declare(&mut self, conn: ConnId, ch: ChannelId, d: &QueueDeclare) -> Result<QueueDeclareOk> {
        self.channel_op(conn, ch, |b, vhost| {
            let now = b.time.get().instant;
            let name: Name = if d.queue.is_empty() && !d.passive {
                Name::from(b.next_name("amq.gen-"))
            } else {
                Name::from(d.queue.as_str())
            };
            b.expire_queue(&vhost, &name);
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            if let Some(q) = v.queues.get_mut(&name) {
                Self::check_exclusive(q, conn, &vhost)?;
                if !d.passive {
                    if q.durable != d.durable {
                        return Err(inequivalent("queue", "durable", &name, &vhost, &d.durable.to_string(), &q.durable.to_string()));
                    }
                    if q.exclusive_owner.is_some() != d.exclusive {
                        return Err(locked(&vhost, &name));
                    }
                    if q.auto_delete != d.auto_delete {
                        return Err(inequivalent("queue", "auto_delete", &name, &vhost, &d.auto_delete.to_string(), &q.auto_delete.to_string()));
                    }
                    for arg in EQUIVALENCE_ARGS {
                        let (new, cur) = (d.arguments.get(arg), q.arguments.get(arg));
                        let same = match (new, cur) {
                            (None | Some(Value::Null), None | Some(Value::Null)) => true,
                            (Some(a), Some(b)) => a == b || (a.as_f64().is_some() && a.as_f64() == b.as_f64()),
                            _ => false,
                        };
                        if !same {
                            return Err(inequivalent("queue", arg, &name, &vhost, &show(new), &show(cur)));
                        }
                    }
                }
                q.last_used = now;
                return Ok(QueueDeclareOk {
                    queue: name.to_string(),
                    message_count: q.ready.len() as u32,
                    consumer_count: q.consumers.len() as u32,
                });
            }
            if d.passive {
                return Err(not_found_queue(&vhost, &name));
            }
            if name.starts_with("amq.") && !d.queue.is_empty() {
                return Err(Error::channel(
                    ReplyCode::AccessRefused,
                    format!("ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'"),
                ));
            }
            let args = &d.arguments;
            let message_ttl = arg_u64(args, "x-message-ttl", &name, &vhost, false)?;
            let expires = arg_u64(args, "x-expires", &name, &vhost, true)?;
            let max_length = arg_u64(args, "x-max-length", &name, &vhost, false)?.map(|v| v as usize);
            let max_length_bytes = arg_u64(args, "x-max-length-bytes", &name, &vhost, false)?.map(|v| v as usize);
            let max_priority = match arg_u64(args, "x-max-priority", &name, &vhost, false)? {
                Some(p) => u8::try_from(p)
                    .map_err(|_| invalid_arg("x-max-priority", &name, &vhost, &format!("{{value_out_of_range,{p}}}")))?,
                None => 0,
            };
            let overflow = match arg_str(args, "x-overflow", &name, &vhost)?.as_deref() {
                None | Some("drop-head") => Overflow::DropHead,
                Some("reject-publish") => Overflow::RejectPublish,
                Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                Some(other) => {
                    return Err(invalid_arg("x-overflow", &name, &vhost, &format!("{{unknown_overflow_type,{other}}}")))
                }
            };
            let dlx = arg_str(args, "x-dead-letter-exchange", &name, &vhost)?;
            let dlrk = arg_str(args, "x-dead-letter-routing-key", &name, &vhost)?;
            if dlrk.is_some() && dlx.is_none() {
                return Err(invalid_arg(
                    "x-dead-letter-routing-key",
                    &name,
                    &vhost,
                    "Key x-dead-letter-exchange should be present",
                ));
            }
            b.limits.check_queue(v, &vhost, &name)?;
            if d.durable && !d.exclusive {
                let decl = QueueDeclare { queue: name.to_string(), passive: false, nowait: false, ..d.clone() };
                if let Some(j) = b.journal.as_mut() {
                    j.push(Record::QueueDeclared { vhost: vhost.clone(), decl });
                }
            }
            v.queues.insert(
                name.clone(),
                Box::new(QueueState {
                    name: name.clone(),
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    exclusive_owner: d.exclusive.then_some(conn),
                    arguments: d.arguments.clone(),
                    ready: Ready::new(max_priority, b.held.clone()),
                    consumers: Vec::new(),
                    exclusive_consumer: false,
                    rr: 0,
                    had_consumer: false,
                    unacked: 0,
                    message_ttl,
                    expires,
                    last_used: now,
                    max_length,
                    max_length_bytes,
                    overflow,
                    dlx,
                    dlrk,
                    counters: QueueCounters::default(),
                }),
            );
            Ok(QueueDeclareOk { queue: name.to_string(), message_count: 0, consumer_count: 0 })
        })
    }

    pub(super) fn queue_for_op<'a>(v: &'a mut VHost, vhost: &str, name: &str, conn: ConnId) -> Result<&'a mut QueueState> {
        let q = v.queues.get_mut(name).ok_or_else(|| not_found_queue(vhost, name))?;
        Self::check_exclusive(q, conn, vhost)?;
        Ok(q)
    }

    /// `queue.bind`.
    pub fn queue_bind(&mut self, conn: ConnId, ch: ChannelId, d: &QueueBind) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            b.expire_queue(&vhost, &d.queue);
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            let q = Self::queue_for_op(v, &vhost, &d.queue, conn)?;
            let durable = q.is_durable();
            let dest = Dest::Queue(q.name.clone());
            let source = Self::source_exchange(v, &vhost, &d.exchange)?;
            let durable = durable && source.decl.durable;
            if source.router.bind(&d.routing_key, &d.arguments, dest.clone()) {
                if let Err(e) = b.limits.check_bindings(v, &vhost, &d.exchange) {
                    Self::source_exchange(v, &vhost, &d.exchange)?.router.unbind(&d.routing_key, &d.arguments, &dest);
                    return Err(e);
                }
            }
            if durable {
                b.journal(|| Record::Bound(queue_binding(&vhost, d)));
            }
            Ok(())
        })
    }

    /// `queue.unbind`. Removing a binding that does not exist succeeds.
    pub fn queue_unbind(&mut self, conn: ConnId, ch: ChannelId, d: &QueueBind) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            let q = Self::queue_for_op(v, &vhost, &d.queue, conn)?;
            let durable = q.is_durable();
            let dest = Dest::Queue(q.name.clone());
            b.unbind(&vhost, &d.exchange, &d.routing_key, &d.arguments, &dest)?;
            if durable {
                b.journal(|| Record::Unbound(queue_binding(&vhost, d)));
            }
            Ok(())
        })
    }

    /// `queue.purge`: remove the ready messages; returns how many.
    pub fn queue_purge(&mut self, conn: ConnId, ch: ChannelId, queue: &str) -> Result<u32> {
        self.channel_op(conn, ch, |b, vhost| {
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            let q = Self::queue_for_op(v, &vhost, queue, conn)?;
            if let Some(j) = b.journal.as_mut() {
                for id in q.ready.stored_ids() {
                    j.push(Record::MessageRemoved { vhost: vhost.clone(), queue: q.name.clone(), id });
                }
            }
            Ok(q.ready.clear() as u32)
        })
    }

    /// `queue.delete`: returns the number of ready messages deleted with it. Deleting a queue
    /// that does not exist succeeds with 0.
    pub fn queue_delete(&mut self, conn: ConnId, ch: ChannelId, d: &QueueDelete) -> Result<u32> {
        self.channel_op(conn, ch, |b, vhost| {
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            let Some(q) = v.queues.get(d.queue.as_str()) else { return Ok(0) };
            Self::check_exclusive(q, conn, &vhost)?;
            if d.if_unused && !q.consumers.is_empty() {
                return Err(Error::channel(
                    ReplyCode::PreconditionFailed,
                    format!("PRECONDITION_FAILED - queue '{}' in vhost '{vhost}' in use", d.queue),
                ));
            }
            if d.if_empty && !q.ready.is_empty() {
                return Err(Error::channel(
                    ReplyCode::PreconditionFailed,
                    format!("PRECONDITION_FAILED - queue '{}' in vhost '{vhost}' not empty", d.queue),
                ));
            }
            let n = q.ready.len() as u32;
            b.delete_queue(&vhost, &d.queue);
            Ok(n)
        })
    }

    pub(super) fn delete_queue(&mut self, vhost: &str, name: &str) {
        let Some(v) = self.vhosts.get_mut(vhost) else { return };
        let Some(q) = v.queues.remove(name) else { return };
        if q.is_durable() {
            if let Some(j) = self.journal.as_mut() {
                j.push(Record::QueueDeleted { vhost: Name::from(vhost), queue: q.name.clone() });
            }
        }
        self.unbind_everywhere(vhost, &Dest::Queue(q.name.clone()));
        // Consumers of a deleted queue are cancelled by the broker (basic.cancel), and the
        // queue's unacknowledged messages are gone with it.
        for c in q.consumers {
            if let Some(conn) = self.connections.get_mut(&c.conn) {
                if let Some(chs) = conn.channels.get_mut(&c.channel) {
                    chs.consumers.remove(&c.tag);
                }
                if conn.push(ServerEvent::Cancel { channel: c.channel, consumer_tag: c.tag }) {
                    self.woken.push(c.conn);
                }
            }
        }
        // Unacknowledged messages of the queue stay tracked by their channels, so that the
        // client's later ack or reject of them is still valid (and a no-op).
    }
}
