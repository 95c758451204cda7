//! `kombu`: publish, consume, declare, delete, purge and get from the command line, on any
//! transport URL this build supports (`gateway+ws://` for a shared broker; `memory://` is per
//! process). Progress and errors go to stderr; results to stdout.
//!
//! Exit codes: 0 success; 1 a broker or connection error (for `publish`: the broker did not
//! confirm the message, e.g. 404 NOT_FOUND for an exchange that does not exist); 2 bad usage or
//! input; 3 `get`/`consume` found no message before the timeout; 4 `publish`'s message was
//! returned as unroutable (312 NO_ROUTE: no queue is bound for its routing key).

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use kombu::{Connection, Exchange, ExchangeType, Headers, Message, Payload, Queue, Value};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(name = "kombu", version, about = "Kombu from the command line: publish, consume, declare, delete, purge, get")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish one message (BODY, or stdin with `-`) and wait for the broker's confirm. It is
    /// published as mandatory: exit code 4 when no queue takes it (NO_ROUTE), 1 when the
    /// broker refuses it (an exchange that does not exist: 404 NOT_FOUND).
    Publish {
        /// Broker URL.
        url: String,
        /// Exchange ("" is the default exchange).
        #[arg(long, default_value = "")]
        exchange: String,
        /// Routing key.
        #[arg(long = "routing-key", default_value = "")]
        routing_key: String,
        /// Header `key=value` (value parsed as JSON when it is JSON); repeatable.
        #[arg(long = "header")]
        headers: Vec<String>,
        /// Property `key=value` (correlation_id, reply_to, priority, expiration, message_id, type, app_id); repeatable.
        #[arg(long = "property")]
        properties: Vec<String>,
        /// Serializer (json, msgpack, yaml, raw). Without one, a JSON body is sent as JSON
        /// data and anything else as text.
        #[arg(long)]
        serializer: Option<String>,
        /// Compression (zlib, bzip2, lzma, brotli, zstd).
        #[arg(long)]
        compression: Option<String>,
        /// The body; `-` reads stdin.
        body: String,
    },
    /// Consume from QUEUE and print each message as one JSON line.
    Consume {
        /// Broker URL.
        url: String,
        /// Queue name.
        queue: String,
        /// Stop after N messages.
        #[arg(long)]
        count: Option<usize>,
        /// Do not acknowledge (the broker forgets messages on delivery).
        #[arg(long = "no-ack")]
        no_ack: bool,
        /// Stop when no message came for this many seconds (forever when omitted).
        #[arg(long)]
        timeout: Option<f64>,
        /// Print the whole message (body, properties, headers, delivery_info) as JSON; without
        /// it, only the body.
        #[arg(long)]
        json: bool,
    },
    /// Fetch one message from QUEUE (basic.get), print it and acknowledge it.
    Get {
        /// Broker URL.
        url: String,
        /// Queue name.
        queue: String,
        /// Leave the message in the queue (reject with requeue).
        #[arg(long)]
        requeue: bool,
    },
    /// Declare an exchange, a queue or a binding.
    Declare {
        /// Broker URL.
        url: String,
        #[command(subcommand)]
        what: Declare,
    },
    /// Delete an exchange or a queue.
    Delete {
        /// Broker URL.
        url: String,
        /// `exchange` or `queue`.
        #[arg(value_parser = ["exchange", "queue"])]
        kind: String,
        /// Name.
        name: String,
    },
    /// Remove the ready messages of a queue.
    Purge {
        /// Broker URL.
        url: String,
        /// Queue name.
        queue: String,
    },
}

#[derive(Debug, Subcommand)]
enum Declare {
    /// An exchange.
    Exchange(ExchangeArgs),
    /// A queue.
    Queue {
        /// Name.
        name: String,
        /// Not durable.
        #[arg(long)]
        transient: bool,
        /// Delete when the last consumer goes.
        #[arg(long = "auto-delete")]
        auto_delete: bool,
        /// Queue argument `key=value` (x-max-length=10, x-message-ttl=1000, ...); repeatable.
        #[arg(long = "argument")]
        arguments: Vec<String>,
    },
    /// Bind QUEUE to EXCHANGE with a routing key.
    Binding {
        /// Queue name.
        queue: String,
        /// Exchange name.
        exchange: String,
        /// Binding key.
        #[arg(long = "routing-key", default_value = "")]
        routing_key: String,
        /// Binding argument `key=value` (for headers exchanges); repeatable.
        #[arg(long = "argument")]
        arguments: Vec<String>,
    },
}

#[derive(Debug, Args)]
struct ExchangeArgs {
    /// Name.
    name: String,
    /// Type.
    #[arg(long = "type", default_value = "direct")]
    kind: String,
    /// Not durable.
    #[arg(long)]
    transient: bool,
    /// Delete when the last queue is unbound.
    #[arg(long = "auto-delete")]
    auto_delete: bool,
}

/// An error with its exit code.
struct Fail(u8, String);

impl From<kombu::Error> for Fail {
    fn from(e: kombu::Error) -> Self {
        let code = if matches!(e, kombu::Error::InvalidUrl { .. } | kombu::Error::UnknownTransport { .. }) || e.is_value_error() { 2 } else { 1 };
        Fail(code, format!("{}: {e}", e.name()))
    }
}

fn pairs(items: &[String], what: &str) -> Result<Headers, Fail> {
    let mut h = Headers::new();
    for item in items {
        let (k, v) = item.split_once('=').ok_or_else(|| Fail(2, format!("{what} {item:?} must be key=value")))?;
        let v = serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        h.insert(k.to_owned(), v);
    }
    Ok(h)
}

fn message_json(m: &Message) -> Value {
    let body = match m.decode() {
        Ok(Payload::Data(v)) => v,
        Ok(Payload::Text(s)) => Value::String(s),
        Ok(Payload::Bytes(b)) => json!({ "base64": base64_encode(&b) }),
        Err(e) => json!({ "error": format!("{}: {e}", e.name()), "raw_base64": base64_encode(m.body()) }),
    };
    let d = m.delivery_info();
    let mut info = json!({"exchange": d.exchange, "routing_key": d.routing_key, "redelivered": d.redelivered, "delivery_tag": d.delivery_tag});
    // The transport's own entries (SQS: sqs_message, sqs_queue), as Kombu shows them.
    for (k, v) in d.extra.iter().flat_map(|e| e.iter()) {
        info[k] = v.clone();
    }
    json!({
        "body": body,
        "properties": m.properties(),
        "headers": m.headers(),
        "delivery_info": info,
    })
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// How long `publish` waits for the broker's confirm.
const CONFIRM_WAIT: Duration = Duration::from_secs(30);

/// Publish with `mandatory` on a channel in confirm mode and wait for the broker's verdict: a
/// confirm (success), or the reason it was not taken — the channel closed (an exchange that
/// does not exist: 404 NOT_FOUND, ACCESS_REFUSED, ...), a nack, or a return (unroutable:
/// 312 NO_ROUTE, exit code 4). Transports whose publishes are answered by their store before
/// `basic_publish` returns (Redis, SQS) send no confirms: there the publish's own answer and
/// any return waiting are the verdict.
async fn publish_confirmed(url: &str, method: kombu::proto::methods::BasicPublish, content: kombu::proto::methods::Content) -> Result<(), Fail> {
    use kombu::proto::methods::ServerEvent;
    let info = Connection::new(url)?.info();
    let transport = kombu::transport::registry::lookup(&info.transport)?;
    let confirms = matches!(transport.driver_name(), "amqp" | "memory" | "gateway");
    let conn = transport.establish_connection(&info).await?;
    let outcome = async {
        let ch = conn.open_channel().await?;
        let id = ch.channel_id();
        ch.confirm_select().await?;
        ch.basic_publish(&method, std::sync::Arc::new(content)).await?;
        let deadline = tokio::time::Instant::now() + CONFIRM_WAIT;
        let mut returned = None;
        loop {
            let event = if confirms {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match conn.next_event(Some(left)).await {
                    Err(kombu::Error::Timeout(_)) => return Err(Fail(1, format!("no confirm from the broker within {} s: the message may or may not have been taken", CONFIRM_WAIT.as_secs()))),
                    other => other?,
                }
            } else {
                match conn.try_next_event()? {
                    Some(e) => e,
                    None => break,
                }
            };
            match event {
                ServerEvent::Return { channel, returned: r } if channel == id => returned = Some(r),
                ServerEvent::Ack { channel, .. } if channel == id => break,
                ServerEvent::Nack { channel, .. } if channel == id => return Err(Fail(1, "the broker refused the message (basic.nack)".into())),
                ServerEvent::ChannelClosed { channel, error } if channel == id => return Err(error.into()),
                ServerEvent::ConnectionClosed { error } => return Err(error.into()),
                _ => {}
            }
        }
        if confirms && returned.is_none() {
            // A return comes before the confirm on AMQP; a gateway in front of a broker without
            // confirms (Redis) confirms on its own, and its return may follow: one more round
            // trip, then whatever arrived.
            let _ = conn.open_channel().await;
            while let Some(event) = conn.try_next_event()? {
                if let ServerEvent::Return { channel, returned: r } = event {
                    if channel == id {
                        returned = Some(r);
                    }
                }
            }
        }
        match returned {
            Some(r) => Err(Fail(
                4,
                format!("the broker returned the message: ({}) {} — no queue is bound to exchange {:?} for routing key {:?}", r.reply_code, r.reply_text, method.exchange, method.routing_key),
            )),
            None => Ok(()),
        }
    }
    .await;
    let _ = conn.close().await;
    outcome
}

async fn run(cli: Cli) -> Result<(), Fail> {
    kombu_gateway::register_transports();
    match cli.command {
        Command::Publish { url, exchange, routing_key, headers, properties, serializer, compression, body } => {
            let text = if body == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s).map_err(|e| Fail(2, format!("cannot read stdin: {e}")))?;
                s
            } else {
                body
            };
            let payload = match (&serializer, serde_json::from_str::<Value>(&text)) {
                (None, Ok(v)) if v.is_object() || v.is_array() => Payload::Data(v),
                (Some(s), Ok(v)) if s != "raw" => Payload::Data(v),
                _ => Payload::Text(text),
            };
            let mut props = kombu::Properties::default();
            for (k, v) in pairs(&properties, "--property")? {
                let s = v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
                match k.as_str() {
                    "correlation_id" => props.correlation_id = Some(s),
                    "reply_to" => props.reply_to = Some(s),
                    "message_id" => props.message_id = Some(s),
                    "priority" => props.priority = Some(s.parse().map_err(|_| Fail(2, format!("priority must be 0-255, not {s}")))?),
                    "expiration" => {
                        let secs: f64 = s.parse().ok().filter(|x: &f64| *x >= 0.0 && x.is_finite()).ok_or_else(|| Fail(2, format!("expiration must be seconds, not {s}")))?;
                        props.expiration = Some(((secs * 1000.0) as u64).to_string());
                    }
                    "type" => props.type_ = Some(s),
                    "app_id" => props.app_id = Some(s),
                    "user_id" => props.user_id = Some(s),
                    other => return Err(Fail(2, format!("unknown property {other:?} (known: correlation_id, reply_to, message_id, priority, expiration, type, app_id, user_id)"))),
                }
            }
            // Serialized as Producer.publish does.
            let prepared = kombu::producer::prepare_body(payload, serializer.as_deref(), None, None, compression.as_deref(), pairs(&headers, "--header")?)?;
            props.content_type = Some(prepared.content_type);
            props.content_encoding = Some(prepared.content_encoding);
            props.headers = prepared.headers;
            props.delivery_mode = Some(kombu::PERSISTENT_DELIVERY_MODE);
            props.priority = Some(props.priority.unwrap_or(0));
            let method = kombu::proto::methods::BasicPublish { exchange: exchange.clone(), routing_key: routing_key.clone(), mandatory: true, immediate: false };
            publish_confirmed(&url, method, kombu::proto::methods::Content { properties: props, body: prepared.body }).await?;
            eprintln!("published to exchange {exchange:?} with routing key {routing_key:?} (confirmed by the broker)");
        }
        Command::Consume { url, queue, count, no_ack, timeout, json } => {
            let conn = Connection::new(&url)?;
            let consumer = conn.consumer(vec![Queue::new(queue.clone()).no_declare(true)]).await?.no_ack(no_ack);
            consumer.consume().await?;
            let mut n = 0;
            while count.is_none_or(|c| n < c) {
                let m = match consumer.next_message(timeout.map(Duration::from_secs_f64)).await {
                    Ok(m) => m,
                    Err(kombu::Error::Timeout(_)) => {
                        eprintln!("no message for {}s; {n} consumed", timeout.unwrap_or(0.0));
                        conn.release().await?;
                        return if n == 0 { Err(Fail(3, format!("no message in {queue:?}"))) } else { Ok(()) };
                    }
                    Err(e) => return Err(e.into()),
                };
                let line = if json { message_json(&m) } else { message_json(&m)["body"].clone() };
                println!("{line}");
                if !no_ack {
                    m.ack()?;
                }
                n += 1;
            }
            conn.release().await?;
            eprintln!("{n} consumed from {queue:?}");
        }
        Command::Get { url, queue, requeue } => {
            let conn = Connection::new(&url)?;
            let q = Queue::new(queue.clone()).bind(&conn.default_channel().await?);
            match q.get(Some(false), None).await? {
                Some(m) => {
                    println!("{}", message_json(&m));
                    if requeue {
                        m.requeue()?;
                    } else {
                        m.ack()?;
                    }
                    conn.release().await?;
                }
                None => {
                    conn.release().await?;
                    return Err(Fail(3, format!("queue {queue:?} is empty")));
                }
            }
        }
        Command::Declare { url, what } => {
            let conn = Connection::new(&url)?;
            let ch = conn.default_channel().await?;
            match what {
                Declare::Exchange(a) => {
                    let x = Exchange::new(a.name.clone(), a.kind.as_str()).durable(!a.transient).auto_delete(a.auto_delete);
                    x.bind(&ch).declare(false, None).await?;
                    eprintln!("declared {} exchange {:?}", a.kind, a.name);
                }
                Declare::Queue { name, transient, auto_delete, arguments } => {
                    let mut q = Queue::new(name).durable(!transient).auto_delete(auto_delete);
                    for (k, v) in pairs(&arguments, "--argument")? {
                        q = q.queue_argument(k, v);
                    }
                    let mut q = q.bind(&ch);
                    let name = q.declare(false).await?;
                    println!("{name}");
                }
                Declare::Binding { queue, exchange, routing_key, arguments } => {
                    let q = Queue::new(queue.clone()).no_declare(true).bind(&ch);
                    q.bind_to(Exchange::new(exchange.clone(), ExchangeType::Direct).no_declare(true), &routing_key, pairs(&arguments, "--argument")?).await?;
                    eprintln!("bound {queue:?} to {exchange:?} with {routing_key:?}");
                }
            }
            conn.release().await?;
        }
        Command::Delete { url, kind, name } => {
            let conn = Connection::new(&url)?;
            let ch = conn.default_channel().await?;
            if kind == "exchange" {
                Exchange::new(name.clone(), ExchangeType::Direct).bind(&ch).delete(false).await?;
            } else {
                let n = Queue::new(name.clone()).bind(&ch).delete(false, false).await?;
                eprintln!("{n} messages deleted with the queue");
            }
            conn.release().await?;
        }
        Command::Purge { url, queue } => {
            let conn = Connection::new(&url)?;
            let n = Queue::new(queue).bind(&conn.default_channel().await?).purge().await?;
            println!("{n}");
            conn.release().await?;
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("kombu: {msg}");
            ExitCode::from(code)
        }
    }
}
