//! Broker tests, one file per concern as the broker itself, around a harness that passes the
//! time in (so TTL and expiry are tested without sleeping).

mod dead_letter;
mod deliver;
mod entities;
mod journal;
mod limits;
mod publish;
mod time;

use std::sync::Arc;

use web_time::{Duration, Instant};

use super::*;
use crate::error::Result;
use crate::properties::Properties;
use crate::proto::methods::{BasicConsume, BasicPublish, BasicQos, Content, ExchangeBind, ExchangeDeclare, ExchangeType, QueueBind, QueueDeclare, QueueDeclareOk, QueueDelete, ServerEvent};
use crate::value::headers;

struct T {
    b: Broker,
    t0: Instant,
    now_ms: u64,
}

impl T {
    fn new() -> Self {
        let b = Broker::new();
        let t0 = Instant::now();
        let mut t = T { b, t0, now_ms: 0 };
        t.tick(0);
        t
    }
    fn tick(&mut self, ms: u64) {
        self.now_ms += ms;
        let now = Now { instant: self.t0 + Duration::from_millis(self.now_ms), unix_ms: 1_700_000_000_000 + self.now_ms };
        self.b.handle_timeout(now);
    }
    fn conn(&mut self) -> (ConnId, ChannelId) {
        let c = self.b.connect("/");
        let ch = self.b.open_channel(c).unwrap();
        (c, ch)
    }
    fn exchange(&mut self, c: (ConnId, ChannelId), name: &str, kind: ExchangeType) {
        self.b
            .exchange_declare(c.0, c.1, &ExchangeDeclare { exchange: name.into(), kind, durable: true, ..Default::default() })
            .unwrap();
    }
    fn queue(&mut self, c: (ConnId, ChannelId), name: &str, args: Headers) -> QueueDeclareOk {
        self.b
            .queue_declare(c.0, c.1, &QueueDeclare { queue: name.into(), durable: true, arguments: args, ..Default::default() })
            .unwrap()
    }
    fn bind(&mut self, c: (ConnId, ChannelId), q: &str, x: &str, rk: &str) {
        self.b
            .queue_bind(c.0, c.1, &QueueBind { queue: q.into(), exchange: x.into(), routing_key: rk.into(), ..Default::default() })
            .unwrap();
    }
    fn publish(&mut self, c: (ConnId, ChannelId), x: &str, rk: &str, body: &str, props: Properties) -> Result<()> {
        self.b.basic_publish(
            c.0,
            c.1,
            &BasicPublish { exchange: x.into(), routing_key: rk.into(), ..Default::default() },
            Arc::new(Content { properties: props, body: body.as_bytes().to_vec().into() }),
        )
    }
    fn get(&mut self, c: (ConnId, ChannelId), q: &str) -> Option<(u64, String, Properties)> {
        self.b.basic_get(c.0, c.1, q, false).unwrap().map(|ok| {
            (
                ok.delivery.delivery_tag,
                String::from_utf8(ok.delivery.content.body.to_vec()).unwrap(),
                ok.delivery.content.properties.clone(),
            )
        })
    }
    fn bodies(&mut self, c: (ConnId, ChannelId), q: &str) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(ok) = self.b.basic_get(c.0, c.1, q, true).unwrap() {
            out.push(String::from_utf8(ok.delivery.content.body.to_vec()).unwrap());
        }
        out
    }
    fn consume(&mut self, c: (ConnId, ChannelId), q: &str, tag: &str, no_ack: bool) -> Name {
        self.b
            .basic_consume(c.0, c.1, &BasicConsume { queue: q.into(), consumer_tag: tag.into(), no_ack, ..Default::default() })
            .unwrap()
    }
    fn deliveries(&mut self, conn: ConnId) -> Vec<(u32, String, u64, String)> {
        let mut v = Vec::new();
        while let Some(ev) = self.b.pop_event(conn) {
            if let ServerEvent::Deliver { channel, consumer_tag, delivery } = ev {
                v.push((channel, consumer_tag.to_string(), delivery.delivery_tag, String::from_utf8(delivery.content.body.to_vec()).unwrap()));
            }
        }
        v
    }
}

fn p() -> Properties {
    Properties::default()
}
