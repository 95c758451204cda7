//! Automatic reconnection (issue #21 item 2) through a real gateway killed and restarted: a
//! connection with a `reconnect` policy finds the connection gone while its consumer waits,
//! reconnects with the policy (saying so with connection events), declares again what it had
//! declared (the restarted broker lost the exchange), resumes its consumer, and nothing is
//! lost or acknowledged twice: the delivery left unacknowledged on the dead connection cannot
//! be acknowledged on the new one, and comes back redelivered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kombu::{Connection, ConnectionEvent, ConnectionOptions, Exchange, PublishOptions, Queue, RetryPolicy};
use kombu_gateway::server::{self, Config};

#[tokio::test]
async fn a_consumer_resumes_after_a_gateway_restart_with_its_declarations_and_nothing_lost() {
    kombu_gateway::register_transports();
    let g = server::start(Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() }).await.unwrap();
    let addr = g.addr;
    let vhost = format!("/reconnect-{}", kombu::uuid());
    let policy = RetryPolicy { interval_start: 0.1, interval_step: 0.1, interval_max: 0.5, max_retries: None, timeout: Some(60.0) };
    let conn = Connection::with_options(&format!("gateway+ws://{addr}/gateway?vhost={vhost}"), ConnectionOptions { reconnect: Some(policy), ..Default::default() }).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    conn.on_event(Arc::new(move |e: &ConnectionEvent| {
        seen.lock().unwrap().push(match e {
            ConnectionEvent::Connected => "connected".to_owned(),
            ConnectionEvent::Disconnected(e) => format!("disconnected: {}", e.name()),
            ConnectionEvent::Reconnecting { .. } => "reconnecting".to_owned(),
            _ => "other".to_owned(),
        })
    }));
    let x = Exchange::direct("orders").durable(false);
    let q = Queue::new("orders.new").exchange(x.clone()).routing_key("new").durable(false);
    q.bind(&conn.default_channel().await.unwrap()).declare(false).await.unwrap();
    let producer = conn.producer().await.unwrap();
    producer.publish("order 1", PublishOptions::new().exchange(&x).routing_key("new")).await.unwrap();
    let consumer = conn.consumer(vec![q.clone()]).await.unwrap();
    let first = consumer.next_message(Some(Duration::from_secs(5))).await.unwrap();
    assert_eq!(&first.body()[..], b"order 1");

    // The gateway goes down with the delivery unacknowledged (it goes back to its queue), and
    // comes back on the same address having lost the exchange (and so the binding).
    g.shutdown().await;
    let direct = Connection::new(&format!("memory:///{vhost}")).unwrap();
    Exchange::direct("orders").bind(&direct.default_channel().await.unwrap()).delete(false).await.unwrap();
    direct.release().await.unwrap();
    let restart = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for _ in 0..100 {
            if let Ok(r) = server::start(Config { listen: addr, ..Config::default() }).await {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the gateway did not restart on {addr}");
    });
    // The consumer waits through it: the connection is lost, retried until the gateway is
    // back, the declarations are made again and the consumer resumes.
    let again = consumer.next_message(Some(Duration::from_secs(60))).await.unwrap();
    assert_eq!((&again.body()[..], again.redelivered()), (&b"order 1"[..], true));
    // The old delivery belongs to the dead connection: it cannot be acknowledged on the new one.
    assert!(first.ack().is_err(), "acked on a connection that is gone");
    again.ack().unwrap();
    // The exchange and its binding are back: a publish to it reaches the queue.
    producer.publish("order 2", PublishOptions::new().exchange(&x).routing_key("new")).await.unwrap();
    let second = consumer.next_message(Some(Duration::from_secs(10))).await.unwrap();
    assert_eq!((&second.body()[..], second.redelivered()), (&b"order 2"[..], false));
    second.ack().unwrap();
    conn.release().await.unwrap();
    let g2 = restart.await.unwrap();
    // Nothing left over, nothing acknowledged twice (a second ack of a tag is a channel error).
    let check = Connection::new(&format!("memory:///{vhost}")).unwrap();
    let mut left = Queue::new("orders.new").durable(false).bind(&check.default_channel().await.unwrap());
    let ok = left.queue_declare(false, true).await.unwrap();
    assert_eq!(ok.message_count, 0);
    check.release().await.unwrap();
    g2.shutdown().await;
    let events = events.lock().unwrap().clone();
    assert_eq!(events.first().map(String::as_str), Some("connected"), "{events:?}");
    assert_eq!(events.last().map(String::as_str), Some("connected"), "{events:?}");
    assert!(events.iter().any(|e| e.starts_with("disconnected: ")), "{events:?}");
    assert!(events.iter().any(|e| e == "reconnecting"), "{events:?}");
}
