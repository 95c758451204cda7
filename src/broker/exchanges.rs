//! Virtual hosts with their predeclared exchanges, and `exchange.declare`, `exchange.delete`,
//! `exchange.bind` and `exchange.unbind`.

use crate::error::{Error, ReplyCode, Result};
use crate::routing::{RouteKind, Router};
use crate::proto::methods::{ExchangeBind, ExchangeDeclare, ExchangeDelete, ExchangeType, Name};
use crate::value::{Headers, Value};

use super::journal::{DurableBinding, Record};
use super::{default_exchange_refused, inequivalent, not_found_exchange, Broker, ChannelId, ConnId, Dest, ExchangeState, VHost};

/// How many exchanges every virtual host has before any is declared.
pub(super) const PREDECLARED: usize = DEFAULT_EXCHANGES.len();

const DEFAULT_EXCHANGES: [(&str, ExchangeType); 6] = [
    ("", ExchangeType::Direct),
    ("amq.direct", ExchangeType::Direct),
    ("amq.fanout", ExchangeType::Fanout),
    ("amq.topic", ExchangeType::Topic),
    ("amq.headers", ExchangeType::Headers),
    ("amq.match", ExchangeType::Headers),
];

fn route_kind(t: &ExchangeType) -> Option<RouteKind> {
    match t {
        ExchangeType::Direct => Some(RouteKind::Direct),
        ExchangeType::Fanout => Some(RouteKind::Fanout),
        ExchangeType::Topic => Some(RouteKind::Topic),
        ExchangeType::Headers => Some(RouteKind::Headers),
        ExchangeType::Custom(_) => None,
    }
}

fn exchange_binding(vhost: &str, d: &ExchangeBind) -> DurableBinding {
    DurableBinding {
        vhost: vhost.to_string(),
        source: d.source.clone(),
        destination: d.destination.clone(),
        to_exchange: true,
        routing_key: d.routing_key.clone(),
        arguments: d.arguments.clone(),
    }
}

/// Names clients may not declare or delete: the default exchange and `amq.*`.
fn reserved(name: &str) -> bool {
    name.is_empty() || name.starts_with("amq.")
}

impl ExchangeState {
    /// A new exchange as declared; `None` for a type the memory broker cannot route.
    fn new(decl: ExchangeDeclare) -> Option<Self> {
        let router = Router::new(route_kind(&decl.kind)?);
        let alternate = match decl.arguments.get("alternate-exchange") {
            Some(Value::String(s)) => Some(Name::from(s.as_str())),
            _ => None,
        };
        Some(ExchangeState { decl, router, alternate })
    }

    /// An auto-delete exchange goes when its last binding does.
    fn unused_auto_delete(&self) -> bool {
        self.decl.auto_delete && self.router.is_empty()
    }
}

impl Broker {
    pub(super) fn vhost_mut(&mut self, name: &str) -> &mut VHost {
        if !self.vhosts.contains_key(name) {
            let mut v = VHost::default();
            for (x, kind) in DEFAULT_EXCHANGES {
                let decl = ExchangeDeclare { exchange: x.into(), kind, durable: true, ..Default::default() };
                let x = ExchangeState::new(decl).expect("built-in exchange types route");
                v.exchanges.insert(Name::from(x.decl.exchange.as_str()), Box::new(x));
            }
            self.vhosts.insert(Name::from(name), v);
        }
        self.vhosts.get_mut(name).expect("just inserted")
    }

    /// `exchange.declare`.
    pub fn exchange_declare(&mut self, conn: ConnId, ch: ChannelId, d: &ExchangeDeclare) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            let name = d.exchange.as_str();
            let existing = v.exchanges.get(name);
            if d.passive {
                return match existing {
                    Some(_) => Ok(()),
                    None => Err(not_found_exchange(&vhost, name)),
                };
            }
            if reserved(name) {
                return Err(Error::channel(
                    ReplyCode::AccessRefused,
                    format!("ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'"),
                ));
            }
            if let Some(x) = existing {
                let cur = &x.decl;
                if cur.kind != d.kind {
                    return Err(inequivalent("exchange", "type", name, &vhost, d.kind.as_str(), cur.kind.as_str()));
                }
                let flags = [
                    ("durable", d.durable, cur.durable),
                    ("auto_delete", d.auto_delete, cur.auto_delete),
                    ("internal", d.internal, cur.internal),
                ];
                for (arg, received, current) in flags {
                    if received != current {
                        return Err(inequivalent("exchange", arg, name, &vhost, &received.to_string(), &current.to_string()));
                    }
                }
                return Ok(());
            }
            let Some(x) = ExchangeState::new(ExchangeDeclare { passive: false, nowait: false, ..d.clone() }) else {
                return Err(Error::connection(
                    ReplyCode::CommandInvalid,
                    format!(
                        "COMMAND_INVALID - unknown exchange type '{}' (the memory broker has direct, fanout, topic and headers)",
                        d.kind
                    ),
                ));
            };
            let durable = x.decl.durable;
            b.limits.check_exchange(v, &vhost, name)?;
            v.exchanges.insert(Name::from(name), Box::new(x));
            if durable {
                b.journal(|| Record::ExchangeDeclared { vhost: vhost.clone(), decl: ExchangeDeclare { passive: false, nowait: false, ..d.clone() } });
            }
            Ok(())
        })
    }

    /// `exchange.delete`. Deleting an exchange that does not exist succeeds, as in RabbitMQ 3.
    pub fn exchange_delete(&mut self, conn: ConnId, ch: ChannelId, d: &ExchangeDelete) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            let name = d.exchange.as_str();
            if reserved(name) {
                return Err(Error::channel(
                    ReplyCode::AccessRefused,
                    format!("ACCESS_REFUSED - operation not permitted on exchange '{name}'"),
                ));
            }
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            let Some(x) = v.exchanges.get(name) else { return Ok(()) };
            let as_dest = Dest::Exchange(Name::from(name));
            let in_use = !x.router.is_empty() || v.exchanges.values().any(|o| o.router.has_destination(&as_dest));
            if d.if_unused && in_use {
                return Err(Error::channel(
                    ReplyCode::PreconditionFailed,
                    format!("PRECONDITION_FAILED - exchange '{name}' in vhost '{vhost}' in use"),
                ));
            }
            b.delete_exchange(&vhost, name);
            Ok(())
        })
    }

    pub(super) fn delete_exchange(&mut self, vhost: &str, name: &str) {
        let Some(v) = self.vhosts.get_mut(vhost) else { return };
        let Some(x) = v.exchanges.remove(name) else { return };
        if x.decl.durable {
            self.journal(|| Record::ExchangeDeleted { vhost: Name::from(vhost), exchange: Name::from(name) });
        }
        self.unbind_everywhere(vhost, &Dest::Exchange(Name::from(name)));
    }

    /// Remove every binding to `dest`, a queue or exchange that is gone. Auto-delete
    /// exchanges left without bindings go too.
    pub(super) fn unbind_everywhere(&mut self, vhost: &str, dest: &Dest) {
        let Some(v) = self.vhosts.get_mut(vhost) else { return };
        let mut emptied = Vec::new();
        for (xn, x) in v.exchanges.iter_mut() {
            if x.router.unbind_destination(dest) > 0 && x.unused_auto_delete() {
                emptied.push(xn.clone());
            }
        }
        for x in emptied {
            self.delete_exchange(vhost, &x);
        }
    }

    /// The exchange a binding starts from, for `queue.bind`/`exchange.bind` and their unbinds:
    /// not the default exchange, and it must exist.
    pub(super) fn source_exchange<'a>(v: &'a mut VHost, vhost: &str, source: &str) -> Result<&'a mut ExchangeState> {
        if source.is_empty() {
            return Err(default_exchange_refused());
        }
        v.exchanges.get_mut(source).map(|x| &mut **x).ok_or_else(|| not_found_exchange(vhost, source))
    }

    /// Remove one binding (none is fine); an auto-delete source left without bindings goes.
    pub(super) fn unbind(&mut self, vhost: &str, source: &str, key: &str, args: &Headers, dest: &Dest) -> Result<()> {
        let v = self.vhosts.get_mut(vhost).expect("connection vhost exists");
        let x = Self::source_exchange(v, vhost, source)?;
        if x.router.unbind(key, args, dest) && x.unused_auto_delete() {
            self.delete_exchange(vhost, source);
        }
        Ok(())
    }

    /// The destination of an exchange-to-exchange binding: not the default exchange, and it
    /// must exist (checked before the source).
    fn exchange_destination(v: &VHost, vhost: &str, d: &ExchangeBind) -> Result<Dest> {
        if d.source.is_empty() || d.destination.is_empty() {
            return Err(default_exchange_refused());
        }
        match v.exchanges.get_key_value(d.destination.as_str()) {
            Some((name, _)) => Ok(Dest::Exchange(name.clone())),
            None => Err(not_found_exchange(vhost, &d.destination)),
        }
    }

    /// `exchange.bind`: route messages from `source` to `destination` too.
    pub fn exchange_bind(&mut self, conn: ConnId, ch: ChannelId, d: &ExchangeBind) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            let dest = Self::exchange_destination(v, &vhost, d)?;
            let durable = v.exchanges.get(d.destination.as_str()).is_some_and(|x| x.decl.durable);
            let source = Self::source_exchange(v, &vhost, &d.source)?;
            let durable = durable && source.decl.durable;
            if source.router.bind(&d.routing_key, &d.arguments, dest.clone()) {
                if let Err(e) = b.limits.check_bindings(v, &vhost, &d.source) {
                    Self::source_exchange(v, &vhost, &d.source)?.router.unbind(&d.routing_key, &d.arguments, &dest);
                    return Err(e);
                }
            }
            if durable {
                b.journal(|| Record::Bound(exchange_binding(&vhost, d)));
            }
            Ok(())
        })
    }

    /// `exchange.unbind`.
    pub fn exchange_unbind(&mut self, conn: ConnId, ch: ChannelId, d: &ExchangeBind) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            let dest = Self::exchange_destination(v, &vhost, d)?;
            b.unbind(&vhost, &d.source, &d.routing_key, &d.arguments, &dest)?;
            b.journal(|| Record::Unbound(exchange_binding(&vhost, d)));
            Ok(())
        })
    }
}
