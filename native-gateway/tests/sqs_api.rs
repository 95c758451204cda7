//! The native sqs:// transport against moto's SQS server (127.0.0.1:$MOTO_PORT, started by
//! scripts/test.sh), through the Kombu API: Producer/Consumer/SimpleQueue, Kombu's queue
//! names and wire format, FIFO groups, delays, ack/reject/requeue, prefetch, client-side
//! exchanges, bodies from other producers, predefined queues, visibility extension. Each
//! test uses its own `queue_name_prefix` and deletes its queues. Skipped with a message
//! when moto is not listening, except under CI, where it fails.

mod sqs_common;
mod support;

use std::time::Duration;

use base64::Engine as _;
use kombu::{Exchange, Payload, PublishOptions, Queue, SimpleOptions, SimpleQueue, Value};
use serde_json::json;
use sqs_common::{connection, moto_up, prefix, Raw};

const WAIT: Option<Duration> = Some(Duration::from_secs(10));

#[tokio::test(flavor = "multi_thread")]
async fn producer_and_consumer_on_a_direct_exchange_with_kombus_names_and_wire_format() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    let conn = connection(&p, &[("visibility_timeout", Value::from(30))]);
    let x = Exchange::direct("tasks");
    let q = Queue::new("work.q:1").exchange(x.clone()).routing_key("work");
    let producer = conn.producer().await.unwrap();
    for i in 0..3 {
        producer.publish(json!({"n": i}), PublishOptions::new().exchange(&x).routing_key("work").declare(&q).header("h", i)).await.unwrap();
    }
    // Kombu's name mangling, and the queue created with the visibility_timeout option.
    let sqs_name = format!("{p}work-q_1");
    assert_eq!(raw.queues(&p).await, std::slice::from_ref(&sqs_name));
    assert_eq!(raw.attribute(&sqs_name, "VisibilityTimeout").await, "30");
    // MessageBody is base64 of Kombu's JSON envelope.
    let stored = raw.peek(&sqs_name).await;
    assert_eq!(stored.len(), 3);
    let env: serde_json::Value = serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(stored[0]["Body"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(env["properties"]["delivery_info"], json!({"exchange": "tasks", "routing_key": "work"}));
    assert_eq!(env["content-type"], json!("application/json"));

    let consumer = conn.consumer(vec![q.clone()]).await.unwrap().prefetch_count(10);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let m = consumer.next_message(WAIT).await.unwrap();
        let Payload::Data(d) = m.payload().unwrap() else { panic!("not data") };
        assert_eq!(m.headers().get("h"), d.get("n"));
        // The raw peek above was a receive: SQS counts this one as the second
        // (ApproximateReceiveCount 2), so it is marked redelivered.
        assert_eq!((m.delivery_info().exchange.as_str(), m.delivery_info().routing_key.as_str(), m.redelivered()), ("tasks", "work", true));
        seen.push(d["n"].as_i64().unwrap());
        m.ack().unwrap();
    }
    seen.sort();
    assert_eq!(seen, [0, 1, 2]);
    consumer.cancel().await.unwrap();
    conn.release().await.unwrap();
    // Acked = deleted (DeleteMessageBatch): nothing visible or in flight.
    assert_eq!(raw.attribute(&sqs_name, "ApproximateNumberOfMessages").await, "0");
    assert_eq!(raw.attribute(&sqs_name, "ApproximateNumberOfMessagesNotVisible").await, "0");
    raw.cleanup(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn simple_queue_topic_routing_and_fifo_groups() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    let conn = connection(&p, &[]);
    let sq = SimpleQueue::new(&conn, "simple", SimpleOptions::default()).await.unwrap();
    sq.put(json!({"hello": "sqs"}), PublishOptions::new()).await.unwrap();
    assert_eq!(sq.qsize().await.unwrap(), 1);
    let m = sq.get(true, WAIT).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Data(json!({"hello": "sqs"})));
    m.ack().unwrap();
    sq.close().await.unwrap();

    // Topic routing is done by the client, as Kombu does.
    let x = Exchange::topic("logs");
    let errors = Queue::new("errors").exchange(x.clone()).routing_key("*.error");
    let all = Queue::new("all").exchange(x.clone()).routing_key("#");
    let producer = conn.producer().await.unwrap();
    producer.publish(json!("disk"), PublishOptions::new().exchange(&x).routing_key("db.error").declare(&errors).declare(&all)).await.unwrap();
    producer.publish(json!("hi"), PublishOptions::new().exchange(&x).routing_key("web.info")).await.unwrap();
    assert_eq!(raw.peek(&format!("{p}errors")).await.len(), 1);
    assert_eq!(raw.peek(&format!("{p}all")).await.len(), 2);

    // FIFO: MessageGroupId from the message (or "default"), a deduplication id per message,
    // order kept within a group.
    let fifo = Queue::new("jobs.fifo");
    for i in 0..4 {
        let mut o = PublishOptions::new().routing_key("jobs.fifo").declare(&fifo);
        if i % 2 == 0 {
            o = o.header("MessageGroupId", "g1");
        }
        producer.publish(json!(i), o).await.unwrap();
    }
    assert_eq!(raw.attribute(&format!("{p}jobs.fifo"), "FifoQueue").await, "true");
    let stored = raw.peek(&format!("{p}jobs.fifo")).await;
    let groups: Vec<String> = stored
        .iter()
        .map(|m| {
            let env: serde_json::Value = serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(m["Body"].as_str().unwrap()).unwrap()).unwrap();
            env["properties"]["MessageGroupId"].as_str().unwrap_or("-").to_owned()
        })
        .collect();
    assert!(groups.contains(&"g1".to_owned()), "{groups:?}");
    let consumer = conn.consumer(vec![fifo]).await.unwrap().prefetch_count(10);
    let mut got = Vec::new();
    while got.len() < 4 {
        let m = consumer.next_message(WAIT).await.unwrap();
        let Payload::Data(d) = m.payload().unwrap() else { panic!() };
        got.push(d.as_i64().unwrap());
        m.ack().unwrap();
    }
    let g1: Vec<i64> = got.iter().copied().filter(|n| n % 2 == 0).collect();
    assert_eq!(g1, [0, 2], "order within a group is kept");
    consumer.cancel().await.unwrap();
    conn.release().await.unwrap();
    raw.cleanup(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reject_deletes_requeue_comes_back_redelivered_and_delay_seconds_delays() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    let conn = connection(&p, &[]);
    let q = Queue::new("rq");
    let producer = conn.producer().await.unwrap();
    producer.publish(json!("drop"), PublishOptions::new().routing_key("rq").declare(&q)).await.unwrap();
    let consumer = conn.consumer(vec![q.clone()]).await.unwrap().prefetch_count(1);
    let m = consumer.next_message(WAIT).await.unwrap();
    m.reject(false).unwrap();
    producer.publish(json!("again"), PublishOptions::new().routing_key("rq")).await.unwrap();
    let m = consumer.next_message(WAIT).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Data(json!("again")), "the rejected message was deleted (kombu 5.7)");
    assert!(!m.redelivered());
    m.requeue().unwrap();
    // Requeued: visible again after wait_time_seconds (1 s here), marked redelivered
    // (ApproximateReceiveCount 2).
    let m = consumer.next_message(WAIT).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Data(json!("again")));
    assert!(m.redelivered());
    m.ack().unwrap();
    // DelaySeconds: not visible at once.
    producer.publish(json!("later"), PublishOptions::new().routing_key("rq").header("delay_seconds", 2)).await.unwrap();
    assert!(consumer.next_message(Some(Duration::from_millis(500))).await.is_err(), "a delayed message is not delivered at once");
    let m = consumer.next_message(WAIT).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Data(json!("later")));
    m.ack().unwrap();
    consumer.cancel().await.unwrap();
    conn.release().await.unwrap();
    raw.cleanup(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn prefetch_bounds_what_is_taken_and_close_gives_back_the_rest() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    let conn = connection(&p, &[]);
    let q = Queue::new("pf");
    let producer = conn.producer().await.unwrap();
    for i in 0..6 {
        producer.publish(json!(i), PublishOptions::new().routing_key("pf").declare(&q)).await.unwrap();
    }
    let consumer = conn.consumer(vec![q.clone()]).await.unwrap().prefetch_count(2);
    let a = consumer.next_message(WAIT).await.unwrap();
    let b = consumer.next_message(WAIT).await.unwrap();
    assert!(consumer.next_message(Some(Duration::from_millis(1500))).await.is_err(), "prefetch 2: no third delivery before an ack");
    let in_flight: u32 = raw.attribute(&format!("{p}pf"), "ApproximateNumberOfMessagesNotVisible").await.parse().unwrap();
    assert!(in_flight <= 2, "MaxNumberOfMessages follows the prefetch credit: {in_flight} in flight");
    a.ack().unwrap();
    let c = consumer.next_message(WAIT).await.unwrap();
    c.ack().unwrap();
    drop(b);
    consumer.cancel().await.unwrap();
    conn.release().await.unwrap();
    // b was restored at close (visible again after wait_time_seconds): 4 left in all.
    let conn = connection(&p, &[]);
    let consumer = conn.consumer(vec![q]).await.unwrap().prefetch_count(10);
    for _ in 0..4 {
        consumer.next_message(WAIT).await.unwrap().ack().unwrap();
    }
    consumer.cancel().await.unwrap();
    conn.release().await.unwrap();
    raw.cleanup(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_from_other_producers_and_predefined_queues() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    let name = format!("{p}plain");
    let url = raw.call("CreateQueue", json!({"QueueName": name})).await["QueueUrl"].as_str().unwrap().to_owned();
    raw.call("SendMessage", json!({"QueueUrl": url, "MessageBody": r#"{"not": "an envelope"}"#})).await;
    raw.call("SendMessage", json!({"QueueUrl": url, "MessageBody": "just text"})).await;
    // predefined_queues: the URL is used as given (no ListQueues, no CreateQueue).
    let predefined = json!({ name.clone(): {"url": url, "access_key_id": "test", "secret_access_key": "test"} });
    let conn = connection("", &[("predefined_queues", predefined)]);
    let consumer = conn.consumer(vec![Queue::new(&name)]).await.unwrap().prefetch_count(10);
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let m = consumer.next_message(WAIT).await.unwrap();
        bodies.push(String::from_utf8(m.body().to_vec()).unwrap());
        m.ack().unwrap();
    }
    bodies.sort();
    assert_eq!(bodies, ["just text", r#"{"not": "an envelope"}"#]);
    consumer.cancel().await.unwrap();
    // A queue not in predefined_queues is refused, naming it; nothing is created.
    let e = conn.producer().await.unwrap().publish(json!(1), PublishOptions::new().routing_key("other").declare(Queue::new("other"))).await.unwrap_err();
    assert!(e.to_string().contains("\"other\"") && e.to_string().contains("predefined_queues"), "{e}");
    conn.release().await.ok();
    assert_eq!(raw.queues(&p).await, [name]);
    raw.cleanup(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_consumers_long_work_is_not_redelivered() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    // visibility_timeout 3 s: without extension the message would be visible again.
    let conn = connection(&p, &[("visibility_timeout", Value::from(3))]);
    let q = Queue::new("long");
    conn.producer().await.unwrap().publish(json!("work"), PublishOptions::new().routing_key("long").declare(&q)).await.unwrap();
    let consumer = conn.consumer(vec![q.clone()]).await.unwrap().prefetch_count(1);
    let m = consumer.next_message(WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(raw.peek(&format!("{p}long")).await.is_empty(), "a held message was made visible again during long work");
    m.ack().unwrap();
    consumer.cancel().await.unwrap();
    conn.release().await.unwrap();
    assert_eq!(raw.attribute(&format!("{p}long"), "ApproximateNumberOfMessagesNotVisible").await, "0");
    raw.cleanup(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_of_several_queues_polls_them_concurrently() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    // wait_time_seconds 10: a sequential long poll of 3 empty queues would answer after up
    // to 20 s for the third; concurrent polls deliver each message as it comes.
    let conn = connection(&p, &[("wait_time_seconds", Value::from(10))]);
    let queues: Vec<Queue> = ["a", "b", "c"].iter().map(|n| Queue::new(*n)).collect();
    let consumer = conn.consumer(queues.clone()).await.unwrap().prefetch_count(10);
    assert!(consumer.next_message(Some(Duration::from_secs(1))).await.is_err());
    let producer_conn = connection(&p, &[]);
    let producer = producer_conn.producer().await.unwrap();
    let start = std::time::Instant::now();
    producer.publish(json!("to c"), PublishOptions::new().routing_key("c")).await.unwrap();
    let m = consumer.next_message(Some(Duration::from_secs(30))).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Data(json!("to c")));
    m.ack().unwrap();
    eprintln!("delivered {:?} after the publish to the third queue", start.elapsed());
    consumer.cancel().await.unwrap();
    conn.release().await.unwrap();
    producer_conn.release().await.unwrap();
    raw.cleanup(&p).await;
}

fn calls(op: &str) -> u64 {
    kombu_gateway::sqs::calls().lock().unwrap().get(op).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_issued_together_go_out_in_batches() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    let conn = connection(&p, &[]);
    let q = Queue::new("batched");
    let producer = conn.producer().await.unwrap();
    producer.publish(json!(-1), PublishOptions::new().routing_key("batched").declare(&q)).await.unwrap();
    let before = calls("SendMessageBatch");
    let publishes: Vec<_> = (0..25).map(|i| producer.publish(json!(i), PublishOptions::new().routing_key("batched"))).collect();
    for r in futures::future::join_all(publishes).await {
        r.unwrap();
    }
    assert!(calls("SendMessageBatch") > before, "concurrent publishes used SendMessageBatch");
    let consumer = conn.consumer(vec![q]).await.unwrap().prefetch_count(10);
    let mut got = std::collections::BTreeSet::new();
    while got.len() < 26 {
        let m = consumer.next_message(WAIT).await.unwrap();
        got.insert(m.payload_as::<i64>().unwrap());
        m.ack().unwrap();
    }
    assert_eq!(got, (-1..25).collect());
    let deletes = calls("DeleteMessageBatch");
    assert!(deletes > 0, "acks went out as DeleteMessageBatch");
    consumer.cancel().await.unwrap();
    conn.release().await.unwrap();
    raw.cleanup(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delivery_info_has_kombus_sqs_message_and_sqs_queue() {
    if !moto_up() {
        return;
    }
    let (p, raw) = (prefix(), Raw::new());
    let name = format!("{p}di");
    let url = raw.call("CreateQueue", json!({"QueueName": name})).await["QueueUrl"].as_str().unwrap().to_owned();
    // Sent by another producer, with a message attribute: what SendMessage answered is what
    // sqs_message must show.
    let attrs = json!({"origin": {"DataType": "String", "StringValue": "raw"}});
    let sent = raw.call("SendMessage", json!({"QueueUrl": url, "MessageBody": "plain body", "MessageAttributes": attrs})).await;
    let conn = connection(&p, &[("fetch_message_attributes", json!({"MessageAttributeNames": ["All"]}))]);
    let consumer = conn.consumer(vec![Queue::new("di")]).await.unwrap().prefetch_count(1);
    let m = consumer.next_message(WAIT).await.unwrap();
    let info = m.delivery_info();
    let extra = info.extra.as_ref().expect("an SQS delivery has delivery_info extras");
    assert_eq!(extra["sqs_queue"], json!(url));
    let sqs = &extra["sqs_message"];
    assert_eq!((&sqs["MessageId"], &sqs["MD5OfBody"], &sqs["Body"]), (&sent["MessageId"], &sent["MD5OfMessageBody"], &json!("plain body")));
    assert_eq!(sqs["Attributes"]["ApproximateReceiveCount"], json!("1"));
    assert_eq!(sqs["MessageAttributes"]["origin"]["StringValue"], json!("raw"));
    // The ReceiptHandle is the live one: SQS takes it (an unknown handle is refused).
    raw.call("ChangeMessageVisibility", json!({"QueueUrl": url, "ReceiptHandle": sqs["ReceiptHandle"], "VisibilityTimeout": 60})).await;
    // Serialized, the entries sit beside the AMQP ones, as in Kombu's delivery_info dict.
    let as_json = serde_json::to_value(&info).unwrap();
    assert_eq!((&as_json["sqs_queue"], &as_json["routing_key"]), (&json!(url), &json!("")));
    m.ack().unwrap();
    consumer.cancel().await.unwrap();
    conn.release().await.unwrap();
    assert_eq!(raw.attribute(&name, "ApproximateNumberOfMessagesNotVisible").await, "0", "acked");
    raw.cleanup(&p).await;
}
