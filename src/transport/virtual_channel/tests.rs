//! The virtual channel over an in-memory store: every AMQP behaviour it emulates, without a
//! broker. The store keeps Redis's list discipline (LPUSH to publish, RPOP to consume, RPUSH
//! to restore) so that orders are the ones a Redis user sees.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use super::*;
use crate::proto::methods::HashMap;

#[derive(Default)]
struct Inner {
    queues: HashMap<String, VecDeque<String>>,
    tables: HashMap<String, BTreeSet<BindingRow>>,
    /// token → (queue, payload)
    unacked: HashMap<String, (String, String)>,
    dead: Vec<(String, String, String)>,
    settled: Vec<(String, Settle)>,
    /// (exchange, routing key) → listening queues' buffers
    subs: Vec<(FanoutListen, VecDeque<String>)>,
    fetches: usize,
    /// Settles fail as a store's would when its broker did not take them.
    refuse_settles: bool,
}

/// A store in memory with Kombu-on-Redis semantics (no priorities).
#[derive(Default, Clone)]
struct MemStore(Arc<Mutex<Inner>>);

impl MemStore {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap()
    }
    fn depth(&self, q: &str) -> usize {
        self.inner().queues.get(q).map_or(0, VecDeque::len)
    }
    fn lpush_raw(&self, q: &str, raw: &str) {
        self.inner().queues.entry(q.into()).or_default().push_front(raw.into());
    }
    fn take_one(&self, fetch: &Fetch) -> Option<Fetched> {
        let mut g = self.inner();
        let inner = &mut *g;
        for q in &fetch.queues {
            if let Some(raw) = inner.queues.get_mut(&**q).and_then(VecDeque::pop_back) {
                let token = Envelope::from_json(raw.as_bytes()).ok().and_then(|e| e.delivery_tag().map(str::to_owned)).unwrap_or_else(crate::common::uuid);
                inner.unacked.insert(token.clone(), (q.to_string(), raw.clone()));
                return Some(Fetched { queue: q.clone(), token, payload: raw.into_bytes().into(), broadcast: false, extra: None });
            }
        }
        for l in &fetch.fanout {
            if let Some((_, buf)) = inner.subs.iter_mut().find(|(s, _)| s == l) {
                if let Some(raw) = buf.pop_back() {
                    return Some(Fetched { queue: l.queue.clone(), token: String::new(), payload: raw.into_bytes().into(), broadcast: true, extra: None });
                }
            }
        }
        None
    }
}

#[async_trait::async_trait]
impl Store for MemStore {
    fn supports_fanout(&self) -> bool {
        true
    }
    async fn new_queue(&self, _d: &QueueDeclare) -> Result<()> {
        Ok(())
    }
    async fn has_queue(&self, queue: &str) -> Result<bool> {
        Ok(self.depth(queue) > 0)
    }
    async fn size(&self, queue: &str) -> Result<u32> {
        Ok(self.depth(queue) as u32)
    }
    async fn purge(&self, queue: &str) -> Result<u32> {
        Ok(self.inner().queues.remove(queue).map_or(0, |q| q.len() as u32))
    }
    async fn delete(&self, queue: &str, bindings: &[(String, BindingRow)]) -> Result<()> {
        let mut g = self.inner();
        g.queues.remove(queue);
        for (ex, row) in bindings {
            if let Some(t) = g.tables.get_mut(ex) {
                t.remove(row);
            }
        }
        Ok(())
    }
    async fn bindings(&self, exchange: &str) -> Result<Vec<BindingRow>> {
        Ok(self.inner().tables.get(exchange).map(|t| t.iter().cloned().collect()).unwrap_or_default())
    }
    async fn bind(&self, exchange: &str, row: &BindingRow, _expires: Option<u64>) -> Result<()> {
        self.inner().tables.entry(exchange.into()).or_default().insert(row.clone());
        Ok(())
    }
    async fn unbind(&self, exchange: &str, row: &BindingRow) -> Result<()> {
        if let Some(t) = self.inner().tables.get_mut(exchange) {
            t.remove(row);
        }
        Ok(())
    }
    async fn put(&self, queues: &[&str], m: &Outgoing) -> Result<()> {
        for q in queues {
            self.lpush_raw(q, &m.json);
        }
        Ok(())
    }
    async fn put_fanout(&self, exchange: &str, routing_key: &str, m: &Outgoing) -> Result<Option<u64>> {
        let mut n = 0;
        for (l, buf) in self.inner().subs.iter_mut() {
            if l.exchange == exchange && (l.routing_key == routing_key || l.routing_key == "*") {
                buf.push_front(m.json.to_string());
                n += 1;
            }
        }
        Ok(Some(n))
    }
    async fn listen(&self, l: &FanoutListen) -> Result<()> {
        let mut g = self.inner();
        if !g.subs.iter().any(|(s, _)| s == l) {
            g.subs.push((l.clone(), VecDeque::new()));
        }
        Ok(())
    }
    async fn fetch(&self, fetch: &Fetch) -> Result<Vec<Fetched>> {
        self.inner().fetches += 1;
        let deadline = fetch.wait.map(|w| rt::Instant::now() + w);
        let mut out = Vec::new();
        loop {
            while out.len() < fetch.max {
                match self.take_one(fetch) {
                    Some(m) => out.push(m),
                    None => break,
                }
            }
            if !out.is_empty() || deadline.is_none_or(|d| rt::Instant::now() >= d) {
                return Ok(out);
            }
            rt::sleep(Duration::from_millis(2)).await;
        }
    }
    fn settle(&self, m: &Fetched, how: Settle) -> Result<()> {
        let mut g = self.inner();
        if g.refuse_settles {
            return Err(Error::RecoverableConnection("the store did not take the last acks".into()));
        }
        g.settled.push((m.token.clone(), how.clone()));
        let Some((queue, raw)) = g.unacked.remove(&m.token) else { return Ok(()) };
        match how {
            Settle::Ack | Settle::Reject => {}
            Settle::Requeue => {
                let again = store::mark_redelivered(raw.as_bytes())?;
                g.queues.entry(queue).or_default().push_front(again);
            }
            Settle::DeadLetter(reason) => g.dead.push((queue, raw, reason)),
        }
        Ok(())
    }
    async fn restore(&self, ms: &[Fetched]) -> Result<()> {
        let mut g = self.inner();
        for m in ms {
            if let Some((queue, raw)) = g.unacked.remove(&m.token) {
                let again = store::mark_redelivered(raw.as_bytes())?;
                g.queues.entry(queue).or_default().push_back(again);
            }
        }
        Ok(())
    }
}

fn connection() -> (MemStore, VirtualConnection) {
    let store = MemStore::default();
    let options = VirtualOptions { polling_interval: Duration::from_millis(20), ..VirtualOptions::default() };
    (store.clone(), VirtualConnection::new(Arc::new(store), options))
}

fn content(body: &str) -> Arc<Content> {
    let mut c = Content { body: bytes::Bytes::from(body.to_owned()), ..Default::default() };
    c.properties.content_type = Some("text/plain".into());
    c.properties.content_encoding = Some("utf-8".into());
    Arc::new(c)
}

async fn publish(ch: &dyn RawChannel, exchange: &str, rk: &str, body: &str) {
    let m = BasicPublish { exchange: exchange.into(), routing_key: rk.into(), ..Default::default() };
    ch.basic_publish(&m, content(body)).await.unwrap();
}

async fn declare(ch: &dyn RawChannel, exchange: &str, kind: ExchangeType, queue: &str, key: &str) {
    ch.exchange_declare(&ExchangeDeclare { exchange: exchange.into(), kind, ..Default::default() }).await.unwrap();
    ch.queue_declare(&QueueDeclare { queue: queue.into(), ..Default::default() }).await.unwrap();
    ch.queue_bind(&QueueBind { queue: queue.into(), exchange: exchange.into(), routing_key: key.into(), ..Default::default() }).await.unwrap();
}

async fn consume(ch: &dyn RawChannel, queue: &str, no_ack: bool) -> String {
    ch.basic_consume(&BasicConsume { queue: queue.into(), no_ack, ..Default::default() }).await.unwrap()
}

/// The next delivery: (channel, consumer tag, delivery tag, redelivered, body).
async fn next(conn: &VirtualConnection) -> (u32, String, u64, bool, String) {
    match conn.next_event(Some(Duration::from_secs(2))).await.unwrap() {
        ServerEvent::Deliver { channel, consumer_tag, delivery } => (
            channel,
            consumer_tag.to_string(),
            delivery.delivery_tag,
            delivery.redelivered,
            String::from_utf8(delivery.content.body.to_vec()).unwrap(),
        ),
        other => panic!("expected a delivery, got {other:?}"),
    }
}

async fn nothing_within(conn: &VirtualConnection, ms: u64) {
    match conn.next_event(Some(Duration::from_millis(ms))).await {
        Err(Error::Timeout(_)) => {}
        other => panic!("expected nothing, got {other:?}"),
    }
}

fn body_of(g: &GetOk) -> String {
    String::from_utf8(g.delivery.content.body.to_vec()).unwrap()
}

#[tokio::test]
async fn default_exchange_puts_on_the_named_queue_and_basic_get_takes_it() {
    let (store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    publish(&*ch, "", "q", "hello").await;
    assert_eq!(store.depth("q"), 1);
    let g = ch.basic_get("q", false).await.unwrap().unwrap();
    assert_eq!((body_of(&g), g.delivery.delivery_tag, g.delivery.redelivered), ("hello".into(), 1, false));
    assert_eq!((&*g.delivery.exchange, &*g.delivery.routing_key), ("", "q"));
    assert!(ch.basic_get("q", false).await.unwrap().is_none());
    ch.basic_ack(1, false).unwrap();
    assert_eq!(store.inner().settled.len(), 1);
    assert!(store.inner().unacked.is_empty());
}

#[tokio::test]
async fn the_stored_message_is_kombus_envelope() {
    let (store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    declare(&*ch, "ex", ExchangeType::Direct, "q", "rk").await;
    publish(&*ch, "ex", "rk", "{}").await;
    let raw = store.inner().queues["q"][0].clone();
    let env = Envelope::from_json(raw.as_bytes()).unwrap();
    assert_eq!((env.exchange(), env.routing_key()), ("ex", "rk"));
    assert_eq!(env.delivery_tag().map(str::len), Some(36), "a uuid4 delivery_tag");
    assert!(raw.starts_with(r#"{"body": "e30=", "content-encoding": "utf-8", "content-type": "text/plain", "headers": {}, "properties": {"delivery_mode": 2, "delivery_info": {"exchange": "ex", "routing_key": "rk"}, "priority": 0, "body_encoding": "base64", "delivery_tag": ""#), "{raw}");
}

#[tokio::test]
async fn direct_exchange_routes_on_the_stores_binding_rows() {
    let (store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    declare(&*ch, "ex", ExchangeType::Direct, "a", "ka").await;
    declare(&*ch, "ex", ExchangeType::Direct, "b", "kb").await;
    assert_eq!(store.inner().tables["ex"].iter().next().unwrap(), &BindingRow { routing_key: "ka".into(), pattern: String::new(), queue: "a".into() });
    publish(&*ch, "ex", "kb", "to b").await;
    publish(&*ch, "ex", "nobody", "lost").await;
    assert_eq!((store.depth("a"), store.depth("b")), (0, 1));
}

#[tokio::test]
async fn topic_bindings_store_kombus_pattern_and_route_with_rabbitmqs_rules() {
    let (store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    declare(&*ch, "t", ExchangeType::Topic, "us", "stock.us.*").await;
    declare(&*ch, "t", ExchangeType::Topic, "all", "stock.#").await;
    let rows = store.inner().tables["t"].clone();
    assert!(rows.contains(&BindingRow { routing_key: "stock.#".into(), pattern: r"^stock\..*?$".into(), queue: "all".into() }));
    publish(&*ch, "t", "stock.us.goog", "1").await;
    publish(&*ch, "t", "stock.eu.sap", "2").await;
    publish(&*ch, "t", "stock", "3").await; // `#` matches zero words, as in RabbitMQ
    assert_eq!((store.depth("us"), store.depth("all")), (1, 3));
}

#[tokio::test]
async fn an_exchange_this_connection_did_not_declare_routes_as_direct() {
    let (store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    declare(&*ch, "t", ExchangeType::Topic, "q", "a.*").await;
    let other = VirtualConnection::new(Arc::new(store.clone()), VirtualOptions::default());
    let ch2 = other.open_channel().await.unwrap();
    publish(&*ch2, "t", "a.b", "not routed").await;
    publish(&*ch2, "t", "a.*", "routed as direct").await;
    assert_eq!(store.depth("q"), 1);
}

#[tokio::test]
async fn mandatory_messages_that_reach_no_queue_come_back() {
    let (_store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    declare(&*ch, "ex", ExchangeType::Direct, "q", "k").await;
    let m = BasicPublish { exchange: "ex".into(), routing_key: "other".into(), mandatory: true, ..Default::default() };
    ch.basic_publish(&m, content("back")).await.unwrap();
    match conn.next_event(Some(Duration::from_secs(1))).await.unwrap() {
        ServerEvent::Return { channel, returned } => {
            assert_eq!((channel, returned.reply_code, returned.reply_text.as_str()), (ch.channel_id(), 312, "NO_ROUTE"));
            assert_eq!((&*returned.exchange, &*returned.routing_key, &returned.content.body[..]), ("ex", "other", &b"back"[..]));
        }
        other => panic!("expected a return, got {other:?}"),
    }
    // Routed or not mandatory: nothing comes back.
    ch.basic_publish(&BasicPublish { routing_key: "k".into(), mandatory: true, ..m.clone() }, content("in")).await.unwrap();
    ch.basic_publish(&BasicPublish { mandatory: false, ..m }, content("dropped")).await.unwrap();
    nothing_within(&conn, 50).await;
}

#[tokio::test]
async fn consumers_get_deliveries_with_the_channels_increasing_tags() {
    let (_store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    let tag = consume(&*ch, "q", false).await;
    for b in ["1", "2", "3"] {
        publish(&*ch, "", "q", b).await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let (c, t, dt, redelivered, body) = next(&conn).await;
        assert_eq!((c, &t, redelivered), (ch.channel_id(), &tag, false));
        got.push((dt, body));
    }
    assert_eq!(got, [(1, "1".into()), (2, "2".into()), (3, "3".into())]);
}

#[tokio::test]
async fn a_consumer_added_while_next_event_waits_is_served() {
    let (_store, conn) = connection();
    let conn = Arc::new(conn);
    let ch = conn.open_channel().await.unwrap();
    publish(&*ch, "", "q", "late").await;
    let waiter = {
        let conn = conn.clone();
        tokio::spawn(async move { next(&conn).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    consume(&*ch, "q", true).await;
    assert_eq!(waiter.await.unwrap().4, "late");
}

#[tokio::test]
async fn prefetch_holds_deliveries_until_acks_free_credit() {
    let (store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    ch.basic_qos(BasicQos { prefetch_count: 2, ..Default::default() }).await.unwrap();
    consume(&*ch, "q", false).await;
    for i in 0..5 {
        publish(&*ch, "", "q", &i.to_string()).await;
    }
    let a = next(&conn).await;
    let _b = next(&conn).await;
    nothing_within(&conn, 60).await;
    assert_eq!(store.depth("q"), 3, "the store keeps what the channel has no credit for");
    ch.basic_ack(a.2, false).unwrap();
    assert_eq!(next(&conn).await.4, "2");
    nothing_within(&conn, 40).await;
}

#[tokio::test]
async fn ack_multiple_settles_every_tag_up_to_the_one_given() {
    let (store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    for i in 0..3 {
        publish(&*ch, "", "q", &i.to_string()).await;
    }
    for _ in 0..3 {
        ch.basic_get("q", false).await.unwrap().unwrap();
    }
    ch.basic_ack(2, true).unwrap();
    assert_eq!(store.inner().unacked.len(), 1);
    let e = ch.basic_ack(2, false).unwrap_err();
    assert!(matches!(e, Error::Channel { code: ReplyCode::PreconditionFailed, .. }), "{e}");
    ch.basic_nack(3, true, false).unwrap();
    assert!(store.inner().unacked.is_empty());
    assert_eq!(store.inner().settled.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>(), [Settle::Ack, Settle::Ack, Settle::Reject]);
}

#[tokio::test]
async fn reject_with_requeue_puts_the_message_back_marked_redelivered() {
    let (store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    publish(&*ch, "", "q", "again").await;
    let g = ch.basic_get("q", false).await.unwrap().unwrap();
    ch.basic_reject(g.delivery.delivery_tag, true).unwrap();
    let again = ch.basic_get("q", true).await.unwrap().unwrap();
    assert_eq!((body_of(&again), again.delivery.redelivered, again.delivery.delivery_tag), ("again".into(), true, 2));
    assert!(store.inner().unacked.is_empty(), "no_ack deliveries are settled at once");
    ch.basic_publish(&BasicPublish { routing_key: "q".into(), ..Default::default() }, content("dropped")).await.unwrap();
    let g = ch.basic_get("q", false).await.unwrap().unwrap();
    ch.basic_reject(g.delivery.delivery_tag, false).unwrap();
    assert_eq!(store.depth("q"), 0);
}

#[tokio::test]
async fn closing_a_channel_restores_its_unacked_messages_first_in_line() {
    let (_store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    for b in ["held", "waiting"] {
        publish(&*ch, "", "q", b).await;
    }
    ch.basic_get("q", false).await.unwrap().unwrap();
    ch.close().await.unwrap();
    assert!(!ch.is_open());
    assert!(ch.basic_get("q", false).await.is_err(), "a closed channel refuses calls");
    let ch2 = conn.open_channel().await.unwrap();
    let g = ch2.basic_get("q", true).await.unwrap().unwrap();
    assert_eq!((body_of(&g), g.delivery.redelivered), ("held".into(), true));
}

#[tokio::test]
async fn closing_the_connection_restores_every_channels_unacked_messages() {
    let (store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    consume(&*ch, "q", false).await;
    publish(&*ch, "", "q", "x").await;
    publish(&*ch, "", "q", "y").await;
    next(&conn).await;
    next(&conn).await;
    conn.close().await.unwrap();
    assert!(!conn.is_open());
    assert_eq!(store.depth("q"), 2);
    assert!(store.inner().unacked.is_empty());
    assert!(conn.next_event(Some(Duration::from_millis(10))).await.is_err());
}

#[tokio::test]
async fn recover_with_requeue_restores_and_without_is_not_implemented() {
    let (store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    publish(&*ch, "", "q", "x").await;
    ch.basic_get("q", false).await.unwrap().unwrap();
    assert!(matches!(ch.basic_recover(false).await, Err(Error::NotImplemented(_))));
    ch.basic_recover(true).await.unwrap();
    assert_eq!(store.depth("q"), 1);
    assert!(ch.basic_ack(1, false).is_err(), "the recovered tag is gone");
}

#[tokio::test]
async fn round_robin_takes_turns_between_busy_queues() {
    let (_store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    for i in 0..3 {
        publish(&*ch, "", "a", &format!("a{i}")).await;
        publish(&*ch, "", "b", &format!("b{i}")).await;
    }
    ch.basic_qos(BasicQos { prefetch_count: 1, ..Default::default() }).await.unwrap();
    consume(&*ch, "a", false).await;
    consume(&*ch, "b", false).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        let d = next(&conn).await;
        ch.basic_ack(d.2, false).unwrap();
        got.push(d.4);
    }
    assert_eq!(got, ["a0", "b0", "a1", "b1"]);
}

#[tokio::test]
async fn sorted_order_drains_the_first_queue_first() {
    let store = MemStore::default();
    let options = VirtualOptions { queue_order: QueueOrder::Sorted, polling_interval: Duration::from_millis(20), ..Default::default() };
    let conn = VirtualConnection::new(Arc::new(store), options);
    let ch = conn.open_channel().await.unwrap();
    for i in 0..2 {
        publish(&*ch, "", "a", &format!("a{i}")).await;
        publish(&*ch, "", "b", &format!("b{i}")).await;
    }
    ch.basic_qos(BasicQos { prefetch_count: 1, ..Default::default() }).await.unwrap();
    consume(&*ch, "b", false).await;
    consume(&*ch, "a", false).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = next(&conn).await;
        ch.basic_ack(d.2, false).unwrap();
        got.push(d.4);
    }
    assert_eq!(got, ["a0", "a1", "b0"]);
}

#[tokio::test]
async fn a_message_that_does_not_decode_is_moved_aside_not_delivered() {
    let (store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    store.lpush_raw("q", r#"{"body": "***", "properties": {"body_encoding": "base64", "delivery_tag": "bad"}}"#);
    publish(&*ch, "", "q", "good").await;
    consume(&*ch, "q", false).await;
    assert_eq!(next(&conn).await.4, "good");
    let dead = store.inner().dead.clone();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "q");
    assert!(dead[0].2.contains("base64"), "{}", dead[0].2);
}

#[tokio::test]
async fn fanout_is_broadcast_to_listening_consumers_and_not_acked() {
    let (store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    declare(&*ch, "news", ExchangeType::Fanout, "n1", "").await;
    declare(&*ch, "news", ExchangeType::Fanout, "n2", "").await;
    consume(&*ch, "n1", false).await;
    let ch2 = conn.open_channel().await.unwrap();
    consume(&*ch2, "n2", false).await;
    publish(&*ch, "news", "", "flash").await;
    let mut got = [next(&conn).await, next(&conn).await];
    got.sort();
    assert_eq!(got.iter().map(|d| d.4.as_str()).collect::<Vec<_>>(), ["flash", "flash"]);
    assert_eq!(store.depth("n1") + store.depth("n2"), 0, "nothing is stored");
    ch.basic_ack(got[0].2, false).unwrap(); // acked as in Kombu, with nothing to settle
    assert!(store.inner().settled.is_empty());
}

#[tokio::test]
async fn a_next_event_that_times_out_loses_nothing() {
    let (store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    consume(&*ch, "q", false).await;
    // The fetch started by this call is still in flight when it times out...
    nothing_within(&conn, 5).await;
    publish(&*ch, "", "q", "kept").await;
    // ... and the next call collects its answer.
    assert_eq!(next(&conn).await.4, "kept");
    assert!(store.inner().fetches >= 1);
}

#[tokio::test]
async fn a_message_fetched_for_a_cancelled_consumer_goes_back() {
    let (store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    let tag = consume(&*ch, "q", false).await;
    nothing_within(&conn, 5).await; // a fetch is in flight
    publish(&*ch, "", "q", "orphan").await;
    ch.basic_cancel(&tag).await.unwrap();
    nothing_within(&conn, 60).await;
    assert_eq!(store.depth("q"), 1);
    assert_eq!(store.inner().settled[0].1, Settle::Requeue);
}

#[tokio::test]
async fn deleting_a_queue_removes_its_bindings_and_cancels_its_consumers() {
    let (store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    declare(&*ch, "ex", ExchangeType::Direct, "q", "k").await;
    publish(&*ch, "ex", "k", "x").await;
    let tag = consume(&*ch, "q", false).await;
    assert_eq!(ch.queue_delete(&QueueDelete { queue: "q".into(), if_empty: true, ..Default::default() }).await.unwrap(), 0);
    ch.basic_cancel(&tag).await.unwrap();
    let tag = consume(&*ch, "q", false).await;
    let d = next(&conn).await;
    ch.basic_ack(d.2, false).unwrap();
    publish(&*ch, "ex", "k", "y").await;
    assert_eq!(ch.queue_delete(&QueueDelete { queue: "q".into(), ..Default::default() }).await.unwrap(), 1);
    assert!(store.inner().tables["ex"].is_empty());
    match conn.next_event(Some(Duration::from_secs(1))).await.unwrap() {
        ServerEvent::Cancel { consumer_tag, .. } => assert_eq!(&*consumer_tag, tag.as_str()),
        other => panic!("expected a cancel, got {other:?}"),
    }
}

#[tokio::test]
async fn passive_declarations_check_existence() {
    let (_store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    let e = ch.queue_declare(&QueueDeclare { queue: "nope".into(), passive: true, ..Default::default() }).await.unwrap_err();
    assert!(matches!(&e, Error::Channel { code: ReplyCode::NotFound, text } if text.contains("no queue 'nope' in vhost '/'")), "{e}");
    let e = ch.exchange_declare(&ExchangeDeclare { exchange: "nope".into(), passive: true, ..Default::default() }).await.unwrap_err();
    assert!(matches!(e, Error::Channel { code: ReplyCode::NotFound, .. }));
    let ok = ch.queue_declare(&QueueDeclare::default()).await.unwrap();
    assert!(ok.queue.starts_with("amq.gen-"), "{}", ok.queue);
    ch.exchange_declare(&ExchangeDeclare { exchange: "x".into(), kind: ExchangeType::Topic, ..Default::default() }).await.unwrap();
    let e = ch.exchange_declare(&ExchangeDeclare { exchange: "x".into(), kind: ExchangeType::Direct, ..Default::default() }).await.unwrap_err();
    assert!(matches!(e, Error::Channel { code: ReplyCode::PreconditionFailed, .. }), "{e}");
    let e = ch.exchange_declare(&ExchangeDeclare { exchange: "h".into(), kind: ExchangeType::Headers, ..Default::default() }).await.unwrap_err();
    assert!(matches!(e, Error::NotImplemented(_)), "{e}");
}

#[test]
fn options_are_read_with_kombus_names_and_bad_values_are_named() {
    let mut info = ConnectInfo::default();
    info.options.insert("polling_interval".into(), Value::from(0.25));
    info.options.insert("queue_order_strategy".into(), Value::from("sorted"));
    let o = VirtualOptions::from_connect_info(&info).unwrap();
    assert_eq!((o.polling_interval, o.queue_order), (Duration::from_millis(250), QueueOrder::Sorted));
    info.options.insert("queue_order_strategy".into(), Value::from("random"));
    let e = VirtualOptions::from_connect_info(&info).unwrap_err();
    assert!(matches!(&e, Error::InvalidTransportOption { option, .. } if option == "queue_order_strategy"), "{e}");
}

#[tokio::test]
async fn an_ack_the_store_did_not_take_is_an_error_not_silence() {
    let (store, conn) = connection();
    let ch = conn.open_channel().await.unwrap();
    publish(&*ch, "", "q", "x").await;
    let g = ch.basic_get("q", false).await.unwrap().unwrap();
    store.inner().refuse_settles = true;
    let e = ch.basic_ack(g.delivery.delivery_tag, false).unwrap_err();
    assert!(e.is_connection_error(), "{e}");
    assert_eq!(store.inner().unacked.len(), 1, "the message stays recorded: it comes back after the visibility timeout");
}
