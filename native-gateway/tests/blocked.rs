//! `connection.blocked` / `connection.unblocked` (RabbitMQ's resource alarms) reach the Kombu
//! API's connection events ([`ConnectionEvent::Blocked`], [`ConnectionEvent::Unblocked`]) on
//! every path (issue #21 item 2, issue #20 item 4):
//!
//! - the gateway's embedded broker with `--memory-high-watermark` (the real binary, so that its
//!   process-wide broker limits touch no other test): every gateway+ws:// client is told when
//!   the queues cross the watermark and when they fall under it, and publishes meanwhile are
//!   still refused;
//! - RabbitMQ with its memory alarm raised for 1.5 s (one `rabbitmqctl eval` that lowers
//!   `vm_memory_high_watermark`, sleeps and restores it inside the broker; a drop guard checks
//!   and restores it too): amqp://,
//!   gateway+ws:// through a gateway fronting RabbitMQ (which forwards its upstream's
//!   notifications) and amqp+ws:// through the gateway's /amqp relay. All in one test function
//!   so that the alarm, which every test on this RabbitMQ shares, is raised once and briefly;
//!   the eval holds a cluster-wide lock (`global:trans`) that js/test/blocked.test.mjs's alarm
//!   (the npm client over the same paths) takes too, so no two alarms ever overlap. RabbitMQ
//!   tells publishing connections only, so each publishes while the alarm is raised.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kombu::{Connection, ConnectionEvent, Error, PublishOptions, Queue};
use kombu_gateway::server::{self, Config};

mod support;
use support::GatewayProcess;

const RABBIT: &str = "amqp://guest:guest@127.0.0.1:5672//";

/// The blocked/unblocked events a connection said, in order (`blocked: <reason>`, `unblocked`).
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn listen(conn: &Connection) -> Seen {
        let seen = Seen::default();
        let events = seen.0.clone();
        conn.on_event(Arc::new(move |e: &ConnectionEvent| match e {
            ConnectionEvent::Blocked { reason } => events.lock().unwrap().push(format!("blocked: {reason}")),
            ConnectionEvent::Unblocked => events.lock().unwrap().push("unblocked".into()),
            _ => {}
        }));
        seen
    }

    fn get(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Drain `conn`'s events until one starting with `what` was said (`within`: generous).
    async fn wait_for(&self, conn: &Connection, what: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.get().iter().any(|e| e.starts_with(what)) {
            assert!(Instant::now() < deadline, "no {what} event within {within:?} on {conn:?}: {:?}", self.get());
            match conn.drain_events(Some(Duration::from_millis(200))).await {
                Ok(()) => {}
                Err(Error::Timeout(_)) => {}
                Err(e) => panic!("draining {conn:?} while waiting for {what}: {e}"),
            }
        }
    }
}

#[tokio::test]
async fn the_embedded_broker_blocks_and_unblocks_every_gateway_client_at_its_memory_high_watermark() {
    kombu_gateway::register_transports();
    let g = GatewayProcess::start(&["--memory-high-watermark", "3000"]);
    let url = format!("gateway+ws://{}/gateway?confirm_publish=true", g.addr);
    let publisher = Connection::new(&url).unwrap();
    // A connection that never publishes is told too (RabbitMQ tells publishers only; the
    // embedded broker cannot know who will publish, and an app wants to show it before).
    let bystander = Connection::new(&url).unwrap();
    let (on_publisher, on_bystander) = (Seen::listen(&publisher), Seen::listen(&bystander));
    let q = Queue::new("blocked.q").durable(false);
    q.bind(&publisher.default_channel().await.unwrap()).declare(false).await.unwrap();
    bystander.connect().await.unwrap();
    let producer = publisher.producer().await.unwrap();
    let body = "x".repeat(1000);
    // Two messages: under the watermark, nothing is said.
    for _ in 0..2 {
        producer.publish(body.as_str(), PublishOptions::new().routing_key("blocked.q")).await.unwrap();
    }
    assert!(matches!(publisher.drain_events(Some(Duration::from_millis(300))).await, Err(Error::Timeout(_))));
    assert!(on_publisher.get().is_empty(), "{:?}", on_publisher.get());
    // The third reaches it: both clients are blocked...
    producer.publish(body.as_str(), PublishOptions::new().routing_key("blocked.q")).await.unwrap();
    on_publisher.wait_for(&publisher, "blocked", Duration::from_secs(20)).await;
    on_bystander.wait_for(&bystander, "blocked", Duration::from_secs(20)).await;
    assert_eq!(on_publisher.get(), ["blocked: low on memory"]);
    assert_eq!(on_bystander.get(), ["blocked: low on memory"]);
    // ... and publishes are still refused, with the reason (a nack with confirms).
    let refused = producer.publish(body.as_str(), PublishOptions::new().routing_key("blocked.q")).await.unwrap_err();
    assert_eq!(refused.name(), "MessageNacked", "{refused}");
    // A client that connects meanwhile is told at once.
    let late = Connection::new(&url).unwrap();
    let on_late = Seen::listen(&late);
    late.connect().await.unwrap();
    on_late.wait_for(&late, "blocked", Duration::from_secs(20)).await;
    // Consuming brings the queues under the watermark: everyone is unblocked, once.
    let consumer = bystander.consumer(vec![q.clone()]).await.unwrap();
    for _ in 0..3 {
        consumer.next_message(Some(Duration::from_secs(20))).await.unwrap().ack().unwrap();
    }
    on_bystander.wait_for(&bystander, "unblocked", Duration::from_secs(20)).await;
    on_publisher.wait_for(&publisher, "unblocked", Duration::from_secs(20)).await;
    on_late.wait_for(&late, "unblocked", Duration::from_secs(20)).await;
    assert_eq!(on_publisher.get(), ["blocked: low on memory", "unblocked"]);
    assert_eq!(on_bystander.get(), ["blocked: low on memory", "unblocked"]);
    // Publishes are accepted again.
    producer.publish(body.as_str(), PublishOptions::new().routing_key("blocked.q")).await.unwrap();
    for c in [publisher, bystander, late] {
        c.release().await.unwrap();
    }
}

/// How long RabbitMQ's memory alarm stays raised (other tests share this RabbitMQ).
const ALARM_MS: u32 = 1500;

/// RabbitMQ's memory alarm, raised for [`ALARM_MS`] by one `rabbitmqctl eval` that lowers the
/// watermark, sleeps and puts the previous value back itself, inside the broker — so the
/// window does not include a second `rabbitmqctl` start (a second or two under load), and the
/// value is restored even if this test dies. Dropping it (also on a panic) waits for that;
/// should the eval have failed, the watermark read before is set back.
struct Alarm {
    eval: Child,
    previous: Vec<String>,
}

fn rabbitmqctl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("rabbitmqctl").args(args).output().map_err(|e| format!("rabbitmqctl: {e}"))?;
    if !out.status.success() {
        return Err(format!("rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Alarm {
    /// The current watermark as `set_vm_memory_high_watermark`'s arguments: a fraction
    /// (`0.4`) or `absolute <bytes>` (`{absolute,1073741824}`). `None` when it cannot be read.
    fn current() -> Option<Vec<String>> {
        let v = rabbitmqctl(&["eval", "vm_memory_monitor:get_vm_memory_high_watermark()."]).ok()?;
        if v.parse::<f64>().is_ok() {
            return Some(vec![v]);
        }
        let bytes = v.strip_prefix("{absolute,")?.strip_suffix('}')?.trim();
        bytes.parse::<u64>().ok()?;
        Some(vec!["absolute".into(), bytes.into()])
    }

    /// Start raising the alarm (a watermark far under what the node uses); it is raised a
    /// moment later, once `rabbitmqctl` has started.
    fn raise(previous: Vec<String>) -> Alarm {
        // Under a cluster-wide lock, so that two runs of this test (parallel CI jobs on one
        // RabbitMQ) never overlap: the second would read the first one's tiny watermark as the
        // one to put back.
        let script = format!(
            "global:trans({{kombu_wasm_test_memory_alarm, self()}}, fun() -> \
             Prev = vm_memory_monitor:get_vm_memory_high_watermark(), \
             vm_memory_monitor:set_vm_memory_high_watermark(0.0000001), \
             timer:sleep({ALARM_MS}), \
             vm_memory_monitor:set_vm_memory_high_watermark(Prev), Prev end)."
        );
        let eval = Command::new("rabbitmqctl").args(["eval", &script]).stdout(Stdio::null()).spawn().expect("run rabbitmqctl");
        Alarm { eval, previous }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        // The eval puts the watermark back itself; should it have failed, the value read
        // before is set — unless that was already another run's tiny one.
        let ok = self.eval.wait().is_ok_and(|s| s.success());
        let sane = self.previous.len() == 2 || self.previous[0].parse::<f64>().is_ok_and(|f| f >= 0.01);
        if !ok && sane {
            let args: Vec<&str> = std::iter::once("set_vm_memory_high_watermark").chain(self.previous.iter().map(String::as_str)).collect();
            if let Err(e) = rabbitmqctl(&args) {
                eprintln!("COULD NOT RESTORE RabbitMQ's vm_memory_high_watermark to {:?}: {e}", self.previous);
            }
        }
    }
}

fn rabbit_up() -> Option<Vec<String>> {
    if std::net::TcpStream::connect_timeout(&"127.0.0.1:5672".parse().unwrap(), Duration::from_secs(1)).is_err() {
        assert!(std::env::var_os("CI").is_none(), "RabbitMQ must run on 127.0.0.1:5672 under CI");
        eprintln!("skipping: no RabbitMQ on 127.0.0.1:5672");
        return None;
    }
    let previous = Alarm::current();
    if previous.is_none() {
        // RabbitMQ on another host, or no rights to run rabbitmqctl: the alarm cannot be raised.
        eprintln!("skipping: rabbitmqctl cannot read RabbitMQ's memory high watermark here");
    }
    previous
}

#[tokio::test]
async fn rabbitmq_memory_alarm_reaches_amqp_gateway_and_relay_clients() {
    let Some(previous) = rabbit_up() else { return };
    kombu_gateway::register_transports();
    let g = server::start(Config { listen: "127.0.0.1:0".parse().unwrap(), broker: RABBIT.into(), ..Config::default() }).await.unwrap();
    let urls = [RABBIT.to_owned(), format!("gateway+ws://{}/gateway", g.addr), format!("amqp+ws://guest:guest@{}//", g.addr)];
    let queue = format!("kombu-wasm-test.blocked.{}", kombu::uuid());
    let mut clients = Vec::new();
    for url in &urls {
        let conn = Connection::new(url).unwrap();
        let seen = Seen::listen(&conn);
        // Connected and ready to publish before the alarm, so that its window stays short.
        Queue::new(&queue).durable(false).expires(120.0).bind(&conn.default_channel().await.unwrap()).declare(false).await.unwrap();
        let producer = conn.producer().await.unwrap();
        clients.push((conn, seen, producer));
    }
    let mut published = 0;
    {
        let _alarm = Alarm::raise(previous);
        // RabbitMQ tells a connection when it publishes while the alarm is raised (and then
        // holds its publishes): each client publishes (without waiting beyond a moment) until
        // it is told.
        let deadline = Instant::now() + Duration::from_secs(30);
        while clients.iter().any(|(_, seen, _)| seen.get().is_empty()) {
            assert!(Instant::now() < deadline, "not every client was told connection.blocked: {:?}", clients.iter().map(|c| c.1.get()).collect::<Vec<_>>());
            for (conn, seen, producer) in &clients {
                if seen.get().is_empty() {
                    let _ = tokio::time::timeout(Duration::from_millis(100), producer.publish("held", PublishOptions::new().routing_key(&queue))).await;
                    published += 1;
                    match conn.drain_events(Some(Duration::from_millis(50))).await {
                        Ok(()) | Err(Error::Timeout(_)) => {}
                        Err(e) => panic!("draining {conn:?}: {e}"),
                    }
                }
            }
        }
        // (Dropped here: waits until RabbitMQ has put the watermark back.)
    }
    for (conn, seen, _) in &clients {
        seen.wait_for(conn, "unblocked", Duration::from_secs(30)).await;
        let said = seen.get();
        assert_eq!(said.len(), 2, "{conn:?}: {said:?}");
        assert!(said[0].starts_with("blocked: "), "{conn:?}: {said:?}");
        assert!(said[0].len() > "blocked: ".len(), "RabbitMQ gives a reason: {said:?}");
        assert_eq!(said[1], "unblocked", "{conn:?}");
    }
    // Publishing works again, and what was held went through, once: between one held publish
    // per client and every publish made, plus the one after.
    let (conn, _, producer) = &clients[0];
    producer.publish("after", PublishOptions::new().routing_key(&queue)).await.unwrap();
    let mut q = Queue::new(&queue).durable(false).expires(120.0).bind(&conn.default_channel().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let count = q.queue_declare(false, true).await.unwrap().message_count;
        assert!(count <= published + 1, "more messages ({count}) than publishes ({published} + 1)");
        if count > urls.len() as u32 {
            break;
        }
        assert!(Instant::now() < deadline, "expected the held publishes and the one after in {queue}: {count} of {published} + 1");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    q.delete(false, false).await.unwrap();
    for (conn, _, _) in clients {
        conn.release().await.unwrap();
    }
    g.shutdown().await;
}
