//! Virtual hosts with their predeclared exchanges, and `exchange.declare`, `exchange.delete`,
//! `exchange.bind` and `exchange.unbind`.

use crate::error::{Error, ReplyCode, Result};
use crate::routing::{RouteKind, Router};
use crate::spec::{ExchangeBind, ExchangeDeclare, ExchangeDelete, ExchangeType, Name};
use crate::value::Value;

use super::{chan_err, inequivalent, not_found_exchange, Broker, ChannelId, ConnId, Dest, ExchangeState, VHost};

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

impl Broker {
    pub(super) fn vhost_mut(&mut self, name: &str) -> &mut VHost {
        if !self.vhosts.contains_key(name) {
            let mut v = VHost::default();
            for (x, t) in DEFAULT_EXCHANGES {
                let kind = route_kind(&t).expect("built-in exchange types route");
                v.exchanges.insert(
                    Name::from(x),
                    ExchangeState {
                        decl: ExchangeDeclare {
                            exchange: x.into(),
                            kind: t,
                            durable: true,
                            ..Default::default()
                        },
                        router: Router::new(kind),
                        alternate: None,
                    },
                );
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
            if let Some(x) = v.exchanges.get(name) {
                if d.passive {
                    return Ok(());
                }
                if name.is_empty() || name.starts_with("amq.") {
                    return Err(chan_err(
                        ReplyCode::AccessRefused,
                        format!("ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'"),
                    ));
                }
                let cur = &x.decl;
                if cur.kind != d.kind {
                    return Err(inequivalent("exchange", "type", name, &vhost, d.kind.as_str(), cur.kind.as_str()));
                }
                if cur.durable != d.durable {
                    return Err(inequivalent("exchange", "durable", name, &vhost, &d.durable.to_string(), &cur.durable.to_string()));
                }
                if cur.auto_delete != d.auto_delete {
                    return Err(inequivalent("exchange", "auto_delete", name, &vhost, &d.auto_delete.to_string(), &cur.auto_delete.to_string()));
                }
                if cur.internal != d.internal {
                    return Err(inequivalent("exchange", "internal", name, &vhost, &d.internal.to_string(), &cur.internal.to_string()));
                }
                return Ok(());
            }
            if d.passive {
                return Err(not_found_exchange(&vhost, name));
            }
            if name.is_empty() || name.starts_with("amq.") {
                return Err(chan_err(
                    ReplyCode::AccessRefused,
                    format!("ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'"),
                ));
            }
            let Some(kind) = route_kind(&d.kind) else {
                return Err(Error::connection(
                    ReplyCode::CommandInvalid,
                    format!(
                        "COMMAND_INVALID - unknown exchange type '{}' (the memory broker has direct, fanout, topic and headers)",
                        d.kind
                    ),
                ));
            };
            let alternate = match d.arguments.get("alternate-exchange") {
                Some(Value::String(s)) => Some(Name::from(s.as_str())),
                _ => None,
            };
            v.exchanges.insert(
                Name::from(name),
                ExchangeState {
                    decl: ExchangeDeclare { passive: false, nowait: false, ..d.clone() },
                    router: Router::new(kind),
                    alternate,
                },
            );
            Ok(())
        })
    }

    /// `exchange.delete`. Deleting an exchange that does not exist succeeds, as in RabbitMQ 3.
    pub fn exchange_delete(&mut self, conn: ConnId, ch: ChannelId, d: &ExchangeDelete) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            let name = d.exchange.as_str();
            if name.is_empty() || name.starts_with("amq.") {
                return Err(chan_err(
                    ReplyCode::AccessRefused,
                    format!("ACCESS_REFUSED - operation not permitted on exchange '{name}'"),
                ));
            }
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            let Some(x) = v.exchanges.get(name) else { return Ok(()) };
            let as_dest = Dest::Exchange(Name::from(name));
            let in_use = !x.router.is_empty() || v.exchanges.values().any(|o| o.router.has_destination(&as_dest));
            if d.if_unused && in_use {
                return Err(chan_err(
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
        if v.exchanges.remove(name).is_none() {
            return;
        }
        let dest = Dest::Exchange(Name::from(name));
        let mut emptied = Vec::new();
        for (xn, x) in v.exchanges.iter_mut() {
            if x.router.unbind_destination(&dest) > 0 && x.decl.auto_delete && x.router.is_empty() {
                emptied.push(xn.clone());
            }
        }
        for x in emptied {
            self.delete_exchange(vhost, &x);
        }
    }

    /// `exchange.bind`: route messages from `source` to `destination` too.
    pub fn exchange_bind(&mut self, conn: ConnId, ch: ChannelId, d: &ExchangeBind) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            if d.source.is_empty() || d.destination.is_empty() {
                return Err(chan_err(
                    ReplyCode::AccessRefused,
                    "ACCESS_REFUSED - operation not permitted on the default exchange".into(),
                ));
            }
            if !v.exchanges.contains_key(d.destination.as_str()) {
                return Err(not_found_exchange(&vhost, &d.destination));
            }
            let x = v.exchanges.get_mut(d.source.as_str()).ok_or_else(|| not_found_exchange(&vhost, &d.source))?;
            x.router.bind(&d.routing_key, &d.arguments, Dest::Exchange(Name::from(d.destination.as_str())));
            Ok(())
        })
    }

    /// `exchange.unbind`.
    pub fn exchange_unbind(&mut self, conn: ConnId, ch: ChannelId, d: &ExchangeBind) -> Result<()> {
        self.channel_op(conn, ch, |b, vhost| {
            let v = b.vhosts.get_mut(&vhost).expect("connection vhost exists");
            if d.source.is_empty() || d.destination.is_empty() {
                return Err(chan_err(
                    ReplyCode::AccessRefused,
                    "ACCESS_REFUSED - operation not permitted on the default exchange".into(),
                ));
            }
            if !v.exchanges.contains_key(d.destination.as_str()) {
                return Err(not_found_exchange(&vhost, &d.destination));
            }
            let x = v.exchanges.get_mut(d.source.as_str()).ok_or_else(|| not_found_exchange(&vhost, &d.source))?;
            let dest = Dest::Exchange(Name::from(d.destination.as_str()));
            if x.router.unbind(&d.routing_key, &d.arguments, &dest) && x.decl.auto_delete && x.router.is_empty() {
                let name = d.source.clone();
                b.delete_exchange(&vhost, &name);
            }
            Ok(())
        })
    }
}
