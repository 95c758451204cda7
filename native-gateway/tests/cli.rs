//! The `kombu` command line against a real gateway: declare, publish, consume, get, purge,
//! delete, exchanging messages with a Kombu API client; exit codes for errors.

use std::process::Command;
use std::time::Duration;

use kombu::{Connection, Payload, PublishOptions, Queue};
use kombu_gateway::server::{self, Config};
use serde_json::{json, Value};

fn kombu(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kombu")).args(args).output().expect("run kombu");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

async fn cli(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || kombu(&args.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap()
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$($a.to_string()),*] };
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_and_api_see_each_others_messages() {
    kombu_gateway::register_transports();
    let g = server::start(Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() }).await.unwrap();
    let url = format!("gateway+ws://{}/gateway?vhost=/cli-{}", g.addr, kombu::uuid());

    let (code, _, err) = cli(args!["declare", url, "exchange", "logs", "--type", "topic"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(args!["declare", url, "queue", "errors", "--argument", "x-max-length=100"]).await;
    assert_eq!((code, out.trim()), (0, "errors"), "{err}");
    let (code, _, err) = cli(args!["declare", url, "binding", "errors", "logs", "--routing-key", "*.error"]).await;
    assert_eq!(code, 0, "{err}");

    // CLI -> API
    let (code, _, err) = cli(args!["publish", url, "--exchange", "logs", "--routing-key", "db.error", "--header", "level=3", "--property", "correlation_id=c1", r#"{"disk": "full"}"#]).await;
    assert_eq!(code, 0, "{err}");
    let conn = Connection::new(&url).unwrap();
    let consumer = conn.consumer(vec![Queue::new("errors").no_declare(true)]).await.unwrap();
    let m = consumer.next_message(Some(Duration::from_secs(2))).await.unwrap();
    assert_eq!(m.payload().unwrap(), Payload::Data(json!({"disk": "full"})));
    assert_eq!(m.headers().get("level"), Some(&json!(3)));
    assert_eq!(m.properties().correlation_id.as_deref(), Some("c1"));
    m.ack().unwrap();
    consumer.cancel().await.unwrap();

    // API -> CLI
    let p = conn.producer().await.unwrap();
    p.publish("from the API", PublishOptions::new().routing_key("errors")).await.unwrap();
    p.publish(json!({"n": 2}), PublishOptions::new().routing_key("errors")).await.unwrap();
    conn.release().await.unwrap();
    let (code, out, err) = cli(args!["consume", url, "errors", "--count", "2", "--json", "--timeout", "5"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["body"], json!("from the API"));
    assert_eq!(lines[1]["body"], json!({"n": 2}));
    assert_eq!(lines[1]["delivery_info"]["routing_key"], json!("errors"));
    assert_eq!(lines[1]["properties"]["content_type"], json!("application/json"));

    // get, purge, delete, and the exit codes
    let (code, _, _) = cli(args!["get", url, "errors"]).await;
    assert_eq!(code, 3, "an empty queue");
    let (code, _, _) = cli(args!["publish", url, "--routing-key", "errors", "x"]).await;
    assert_eq!(code, 0);
    let (code, out, _) = cli(args!["get", url, "errors", "--requeue"]).await;
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["body"], json!("x"));
    let (code, out, _) = cli(args!["purge", url, "errors"]).await;
    assert_eq!((code, out.trim()), (0, "1"));
    let (code, _, err) = cli(args!["delete", url, "queue", "errors"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(args!["consume", url, "errors", "--timeout", "1"]).await;
    assert_eq!(code, 1, "consuming a deleted queue is a broker error: {err}");
    assert!(err.contains("NotFound"), "{err}");
    let (code, _, err) = cli(args!["publish", "memroy://", "x"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("UnknownTransport") && err.contains("memory"), "{err}");
    let (code, _, err) = cli(args!["publish", url, "--property", "colour=red", "x"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("unknown property"), "{err}");
    g.shutdown().await;
}

/// `kombu publish` waits for the broker's confirm: an exchange that does not exist fails with
/// the broker's 404 (exit 1), a message no queue takes with NO_ROUTE (exit 4) — on the
/// gateway and, when RabbitMQ runs, on `amqp://` directly.
#[tokio::test(flavor = "multi_thread")]
async fn a_publish_the_broker_does_not_take_fails_with_its_reason() {
    kombu_gateway::register_transports();
    let g = server::start(Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() }).await.unwrap();
    let mut urls = vec![format!("gateway+ws://{}/gateway?vhost=/cli-{}", g.addr, kombu::uuid())];
    if std::net::TcpStream::connect_timeout(&"127.0.0.1:5672".parse().unwrap(), Duration::from_secs(1)).is_ok() {
        urls.push("amqp://guest:guest@127.0.0.1:5672//".into());
    } else {
        assert!(std::env::var_os("CI").is_none(), "RabbitMQ must run on 127.0.0.1:5672 under CI");
    }
    for url in urls {
        let missing = format!("kombu-wasm-test.missing.{}", kombu::uuid());
        let (code, _, err) = cli(args!["publish", url, "--exchange", missing, "--routing-key", "k", "lost?"]).await;
        assert_eq!(code, 1, "{url}: {err}");
        assert!(err.contains("NOT_FOUND") && err.contains(&missing), "{url}: {err}");
        assert!(!err.contains("published"), "{url}: {err}");
        // An exchange without bindings: the message is returned.
        let lonely = format!("kombu-wasm-test.lonely.{}", kombu::uuid());
        let (code, _, err) = cli(args!["declare", url, "exchange", lonely, "--transient", "--auto-delete"]).await;
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = cli(args!["publish", url, "--exchange", lonely, "--routing-key", "nobody", "lost?"]).await;
        assert_eq!(code, 4, "{url}: {err}");
        assert!(err.contains("NO_ROUTE") && err.contains("nobody"), "{url}: {err}");
        // A queue that takes it: confirmed.
        let queue = format!("kombu-wasm-test.taken.{}", kombu::uuid());
        let (code, _, err) = cli(args!["declare", url, "queue", queue, "--transient"]).await;
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = cli(args!["publish", url, "--routing-key", queue, "taken"]).await;
        assert_eq!(code, 0, "{url}: {err}");
        assert!(err.contains("confirmed"), "{err}");
        let (code, out, _) = cli(args!["get", url, queue]).await;
        assert_eq!(code, 0);
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["body"], json!("taken"));
        let (code, _, err) = cli(args!["delete", url, "queue", queue]).await;
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = cli(args!["delete", url, "exchange", lonely]).await;
        assert!(code == 0 || err.contains("NOT_FOUND"), "{err}");
    }
    g.shutdown().await;
}

/// The gateway's startup log masks the broker URL's password; a token file that does not
/// parse is named by line, never quoted (the token stays out of the log).
#[tokio::test(flavor = "multi_thread")]
async fn no_secrets_in_the_gateways_output() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = std::env::temp_dir().join(format!("kombu-secrets-{}", kombu::uuid()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = dir.join("tokens.toml");
    std::fs::write(&tokens, "[[identity]]\nname = \"web\"\ntoken = \"Sup3rSecretT0ken\nread = \".*\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kombu-gateway")).args(["--listen", "127.0.0.1:0", "--tokens"]).arg(&tokens).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("line 3") && !err.contains("Sup3rSecretT0ken"), "{err}");
    // --help shows environment values, but not the broker URL's.
    let out = Command::new(env!("CARGO_BIN_EXE_kombu-gateway")).arg("--help").env("KOMBU_GATEWAY_BROKER", "amqp://gwuser:S3cretPW@127.0.0.1:1//").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("KOMBU_GATEWAY_BROKER") && !help.contains("S3cretPW"), "{help}");
    // The startup log: the broker URL with its password masked.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kombu-gateway"))
        .args(["--listen", "127.0.0.1:0", "--broker", "amqp://gwuser:S3cretPW@127.0.0.1:1//"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    child.stdout.take().unwrap().read_to_string(&mut log).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(log.contains("amqp://gwuser:**@127.0.0.1:1//"), "{log}");
    assert!(!log.contains("S3cretPW"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A gateway in front of Redis, whose store answers publishes without AMQP confirms, confirms
/// them itself after `confirm.select`: `kombu publish` through it is confirmed, or returned.
#[tokio::test(flavor = "multi_thread")]
async fn a_publish_through_a_gateway_on_redis_is_confirmed_or_returned() {
    if std::net::TcpStream::connect_timeout(&"127.0.0.1:6379".parse().unwrap(), Duration::from_secs(1)).is_err() {
        assert!(std::env::var_os("CI").is_none(), "Redis must run on 127.0.0.1:6379 under CI");
        eprintln!("skipping: no Redis on 127.0.0.1:6379");
        return;
    }
    kombu_gateway::register_transports();
    let prefix = format!("kombu-wasm-test.cli.{}.", kombu::uuid());
    let broker = format!("redis://127.0.0.1:6379/0?global_keyprefix={prefix}&polling_interval=0.2");
    let g = server::start(Config { listen: "127.0.0.1:0".parse().unwrap(), broker, ..Config::default() }).await.unwrap();
    let url = format!("gateway+ws://{}/gateway", g.addr);
    let (code, _, err) = cli(args!["declare", url, "queue", "taken"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(args!["publish", url, "--routing-key", "taken", "kept"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("confirmed"), "{err}");
    let (code, _, err) = cli(args!["declare", url, "exchange", "lonely"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(args!["publish", url, "--exchange", "lonely", "--routing-key", "nobody", "lost?"]).await;
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("NO_ROUTE"), "{err}");
    let (code, out, _) = cli(args!["purge", url, "taken"]).await;
    assert_eq!((code, out.trim()), (0, "1"));
    let _ = cli(args!["delete", url, "queue", "taken"]).await;
    let _ = cli(args!["delete", url, "exchange", "lonely"]).await;
    g.shutdown().await;
}
