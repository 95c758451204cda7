//! Test machinery shared by the integration test binaries, whatever the broker: the Python
//! interop peer (a script run with $KOMBU_PYTHON), a holder process (this test binary run
//! again for one test, which takes messages and holds them until it is killed with SIGKILL),
//! a `kombu-gateway` process ([`GatewayProcess`]), the in-process gateway and its HTTP endpoints, the `kombu`
//! CLI, and the publish / kill / collect-what-comes-back steps of the at-least-once tests.
//! Broker-specific helpers stay in `redis_common` and `sqs_common`.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kombu::{Connection, Consumer, Message, PublishOptions, Queue};
use kombu_gateway::server::{self, Config, Running};
use serde_json::{json, Value as Json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The interop interpreter ($KOMBU_PYTHON, set by scripts/test.sh); `None` (the test skips,
/// saying so) without it, except under CI where it must be set.
pub fn python() -> Option<String> {
    match std::env::var("KOMBU_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("CI").is_some() => panic!("KOMBU_PYTHON must be set under CI"),
        _ => {
            eprintln!("skipping: KOMBU_PYTHON not set (scripts/test.sh sets it)");
            None
        }
    }
}

/// A Python kombu peer: `tests/interop/<script> OP URL ARGS-JSON`, which prints one JSON
/// line per result (and `READY` first when it is started to run alongside the test).
pub struct PythonPeer {
    pub python: String,
    script: &'static str,
    url: String,
}

impl PythonPeer {
    /// `script` is a file name in tests/interop/.
    pub fn new(python: String, script: &'static str, url: String) -> PythonPeer {
        PythonPeer { python, script, url }
    }

    fn command(&self, op: &str, args: &Json) -> Command {
        let path = format!("{}/../tests/interop/{}", env!("CARGO_MANIFEST_DIR"), self.script);
        let mut c = Command::new(&self.python);
        c.args([path.as_str(), op, &self.url, &args.to_string()]);
        c
    }

    /// Run an operation to its end; its JSON lines (but READY).
    pub async fn run(&self, op: &str, args: Json) -> Vec<Json> {
        let mut c = self.command(op, &args);
        let out = tokio::task::spawn_blocking(move || c.output().unwrap()).await.unwrap();
        assert!(out.status.success(), "{} {op} failed: {}", self.script, String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().filter(|l| *l != "READY").map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Start an operation; returns once it printed READY, with its output to read on.
    pub async fn start(&self, op: &str, args: Json) -> (Child, BufReader<ChildStdout>) {
        let mut c = self.command(op, &args);
        c.stdout(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let what = format!("{} {op}", self.script);
        let out = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert_eq!(line.trim(), "READY", "{what} did not get ready");
            out
        })
        .await
        .unwrap();
        (child, out)
    }
}

/// Run the test `holder` (a `module::name` in this test binary) in a child process, with
/// `env` set for it; returns once it printed `HELD`. The holder ends with [`hold_forever`].
pub fn spawn_holder(holder: &str, env: (&str, String)) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", holder, "--nocapture", "--test-threads", "1"])
        .env(env.0, env.1)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "the holder {holder} exited before holding");
        if line.trim_end().ends_with("HELD") {
            break;
        }
    }
    child
}

/// The end of a holder: take `count` messages from `consumer` (each within `each`), say
/// `HELD`, and keep them unacknowledged until the process is killed.
pub async fn hold_forever(consumer: &Consumer, count: usize, each: Duration) {
    let mut held: Vec<Message> = Vec::new();
    while held.len() < count {
        held.push(consumer.next_message(Some(each)).await.unwrap());
    }
    println!("HELD");
    tokio::time::sleep(Duration::from_secs(600)).await;
}

/// SIGKILL, and reap.
pub fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A `kombu-gateway` process (the binary built for these tests) on a free port of 127.0.0.1,
/// with `RUST_LOG=warn` and `NO_COLOR=1`; [`GatewayProcess::start`] returns once it printed
/// where it listens. Its later stdout lines (tracing's, at `warn` and above) are kept in
/// `log` by a thread that reads on, so that a full pipe never blocks the gateway. Killed with
/// SIGKILL when dropped (if still running).
pub struct GatewayProcess {
    child: Child,
    /// `127.0.0.1:PORT`, as it printed it.
    pub addr: String,
    /// What it logged after the "listening" line.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl GatewayProcess {
    /// `kombu-gateway --listen 127.0.0.1:0 ARGS...`.
    pub fn start(args: &[&str]) -> GatewayProcess {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_kombu-gateway")), args)
    }

    /// The same with a file-descriptor limit of `files` (the shell's `ulimit -n`, then `exec`).
    pub fn start_with_file_limit(files: u32, args: &[&str]) -> GatewayProcess {
        let mut sh = Command::new("sh");
        sh.args(["-c", &format!("ulimit -n {files} && exec \"$0\" \"$@\""), env!("CARGO_BIN_EXE_kombu-gateway")]);
        Self::spawn(sh, args)
    }

    fn spawn(mut command: Command, args: &[&str]) -> GatewayProcess {
        let mut child = command
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start kombu-gateway");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("the gateway prints where it listens").unwrap();
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split('/').next().unwrap().to_string();
            }
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                keep.lock().unwrap().push(l);
            }
        });
        GatewayProcess { child, addr, log }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill SIGNAL PID` (e.g. `-STOP`, `-CONT`), which must succeed.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill").args([signal, &self.pid().to_string()]).status().unwrap().success();
        assert!(ok, "kill {signal}");
    }

    /// `kill -9`, and reap: the process ends without closing anything (no WebSocket close, no
    /// goodbye to its broker, which sees the TCP connection drop).
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The process's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// How many lines it logged so far contain `needle`.
    pub fn logged(&self, needle: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        // SIGKILL ends a stopped (SIGSTOP) process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gateway in this process, on a free port, in front of `broker`.
pub async fn start_gateway(broker: String) -> Running {
    server::start(Config { listen: "127.0.0.1:0".parse().unwrap(), broker, ..Config::default() }).await.unwrap()
}

/// GET `path` from the gateway's HTTP endpoints: the whole response, head and body.
pub async fn http_get(g: &Running, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// Run the `kombu` CLI: (exit code, stdout, stderr).
pub async fn kombu_cli(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_kombu")).args(&args).output().expect("run kombu");
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    })
    .await
    .unwrap()
}

/// `args![a, b, ...]`: a `Vec<String>` of anything `Display` (CLI arguments).
#[allow(unused_macros)]
macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$($a.to_string()),*] };
}
#[allow(unused_imports)]
pub(crate) use args;

/// Publish the numbers `0..n` to `queue` (declared first).
pub async fn publish_numbers(conn: &Connection, queue: &str, n: usize) {
    let producer = conn.producer().await.unwrap();
    let q = Queue::new(queue);
    for i in 0..n {
        producer.publish(json!(i), PublishOptions::new().routing_key(queue).declare(&q)).await.unwrap();
    }
}

/// What came back after a holder died.
pub struct Redelivered {
    /// The distinct numbers.
    pub numbers: BTreeSet<i64>,
    /// Deliveries in all (more than `numbers.len()` when one came twice).
    pub deliveries: usize,
}

/// Consume `queue` until `n` distinct numbers came (or `within` passes), acking each; every
/// one must be marked redelivered.
pub async fn collect_redelivered(conn: &Connection, queue: &str, n: usize, prefetch: u16, within: Duration) -> Redelivered {
    let consumer = conn.consumer(vec![Queue::new(queue)]).await.unwrap().prefetch_count(prefetch);
    let mut got = Redelivered { numbers: BTreeSet::new(), deliveries: 0 };
    let deadline = Instant::now() + within;
    while got.numbers.len() < n && Instant::now() < deadline {
        let Ok(m) = consumer.next_message(Some(Duration::from_secs(1))).await else { continue };
        assert!(m.redelivered(), "a message that was held must come back marked redelivered");
        got.numbers.insert(m.payload_as::<i64>().unwrap());
        got.deliveries += 1;
        m.ack().unwrap();
    }
    consumer.cancel().await.unwrap();
    got
}

/// The gateway-kill case of the at-least-once tests: a gateway+ws:// client of the gateway
/// process `gateway` takes `n` messages of `queue` and holds them when the gateway is killed.
pub async fn hold_through_gateway_and_kill(mut gateway: GatewayProcess, queue: &str, n: usize, each: Duration) {
    let client = Connection::new(&format!("gateway+ws://{}/gateway", gateway.addr)).unwrap();
    let consumer = client.consumer(vec![Queue::new(queue)]).await.unwrap().prefetch_count(n as u16);
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(consumer.next_message(Some(each)).await.unwrap());
    }
    gateway.kill();
    drop(held);
}
