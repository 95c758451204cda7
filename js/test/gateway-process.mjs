// Shared by the tests that run the real kombu-gateway binary: start it on a free port
// (serving the package at /pkg/) and wait for its address; whether RabbitMQ is up; and the
// check of how acks travel over gateway+ws://.
import assert from "node:assert/strict";
import { before, after } from "node:test";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = process.env.KOMBU_GATEWAY_BIN ?? join(repo, "target", "debug", "kombu-gateway");

/** Start kombu-gateway with `args` (beyond --listen and --pkg) on `listen` (a free port by
 * default; an address to restart one where it was): `{ child, addr }`. */
export async function startGateway(args, { listen = "127.0.0.1:0" } = {}) {
  assert.ok(existsSync(bin), `build the gateway first (cargo build -p kombu-gateway): ${bin}`);
  const child = spawn(bin, ["--listen", listen, "--pkg", join(repo, "js"), ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const addr = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/([\d.:]+)\//);
      if (m) resolve(m[1]);
    });
    child.on("exit", (code) => reject(new Error(`kombu-gateway exited with ${code}`)));
  });
  return { child, addr };
}

/**
 * Run `source` as an ES module in a Node process of its own (WebSocket enabled; files are
 * resolved from a temporary directory, removed afterwards) and return what it printed.
 */
export function runNode(source, { timeout = 30000 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "kombu-wasm-node-"));
  try {
    writeFileSync(join(dir, "script.mjs"), source);
    return execFileSync(process.execPath, ["--experimental-websocket", "--no-warnings", join(dir, "script.mjs")], { encoding: "utf8", timeout });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Start `source` as an ES module in a Node process of its own (WebSocket enabled), without
 * waiting for it: `{ child, output(), seen(re), send(line), stop() }`. `seen(re)` resolves once
 * its output matches `re` (rejects if it exits first); `send` writes a line to its stdin;
 * `stop()` kills it and removes its directory.
 */
export function startNode(source) {
  const dir = mkdtempSync(join(tmpdir(), "kombu-wasm-node-"));
  writeFileSync(join(dir, "script.mjs"), source);
  const child = spawn(process.execPath, ["--experimental-websocket", "--no-warnings", join(dir, "script.mjs")], { stdio: ["pipe", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  const seen = (re) =>
    new Promise((resolve, reject) => {
      const check = () => (re.test(out) ? resolve() : undefined);
      child.stdout.on("data", check);
      child.on("exit", (code) => reject(new Error(`the script exited (${code}) before ${re}: ${out}`)));
      check();
    });
  return {
    child,
    output: () => out,
    seen,
    send: (line) => child.stdin.write(`${line}\n`),
    stop: () => {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The last line a script printed, as JSON. */
export const lastJson = (out) => JSON.parse(out.trim().split("\n").pop());

/** Whether RabbitMQ listens on 127.0.0.1:5672. */
export const rabbitUp = () =>
  new Promise((resolve) => {
    const s = connect(5672, "127.0.0.1", () => (s.destroy(), resolve(true)));
    s.on("error", () => resolve(false));
  });

/**
 * For the tests that talk to a Python kombu peer (`$KOMBU_PYTHON`, set by scripts/test.sh)
 * through a gateway in front of the local RabbitMQ: registers the file's `before` (start
 * kombu-gateway with `--broker amqp://...` and `args`) and `after` (stop it). The returned
 * object holds `python`, and once `before` ran, `addr` (the gateway's host:port) or `why` (the
 * reason to skip: no Python or no RabbitMQ; under CI that fails instead).
 */
export function gatewayForPythonPeers(args = []) {
  const peers = { python: process.env.KOMBU_PYTHON, addr: undefined, why: "", child: undefined };
  before(async () => {
    if (!peers.python) peers.why = "KOMBU_PYTHON is not set (scripts/test.sh sets it)";
    else if (!(await rabbitUp())) peers.why = "no RabbitMQ on 127.0.0.1:5672";
    if (peers.why) {
      assert.ok(!process.env.CI, `${peers.why}: required under CI`);
      return;
    }
    ({ child: peers.child, addr: peers.addr } = await startGateway(["--broker", "amqp://guest:guest@127.0.0.1:5672//", ...args]));
  });
  after(() => peers.child?.kill("SIGTERM"));
  return peers;
}

/**
 * Acks over gateway+ws:// (`url`), in Node: an ack of the oldest delivery a channel waits for
 * goes out with `multiple`, and the carrier keeps only the last of such acks queued back to
 * back, so acks taken in order reach the gateway merged (counted by its `metrics`); an ack it
 * holds back alone, for more to merge into it, goes out by itself shortly. Acks out of
 * order, requeues, a consumer cancelled with deliveries in its buffer (requeued by the cancel)
 * and a consumer without acks on the same channel (whose deliveries the gateway settles itself)
 * must still settle exactly what the application settled: nothing left over, no double ack (a
 * channel error). Entities are named after `prefix` and deleted at the end.
 */
export function checkAckMerging(url, metrics, prefix) {
  const script = `
    import { Connection, Exchange, Queue } from ${JSON.stringify(join(repo, "js", "ws.js"))};
    const u = ${JSON.stringify(url)};
    const acked = async () => Number((await (await fetch(${JSON.stringify(metrics)})).text()).match(/^kombu_gateway_acked_total (\\d+)$/m)[1]);
    const conn = new Connection(u);
    const x = new Exchange(${JSON.stringify(prefix + ".x")}, { type: "direct", durable: false });
    const tracked = new Queue(${JSON.stringify(prefix + ".tracked")}, { exchange: x, routingKey: "t", durable: false });
    const auto = new Queue(${JSON.stringify(prefix + ".auto")}, { exchange: x, routingKey: "a", durable: false });
    const lone = new Queue(${JSON.stringify(prefix + ".lone")}, { exchange: x, routingKey: "l", durable: false });
    await conn.declare(tracked);
    await conn.declare(auto);
    await conn.declare(lone);
    const producer = conn.Producer();
    // One delivery, acked, and nothing else to send: the carrier may hold the ack back for
    // more to merge into it (prefetch 10: up to 5), and must then send it by itself.
    await producer.publish({ lone: true }, { exchange: x, routingKey: "l" });
    const loneConsumer = conn.Consumer([lone], { prefetchCount: 10 });
    let loneAcks = await acked();
    for await (const m of loneConsumer) {
      m.ack();
      break;
    }
    await new Promise((r) => setTimeout(r, 300));
    loneAcks = (await acked()) - loneAcks;
    await loneConsumer.cancel();
    for (let i = 0; i < 300; i++) await producer.publish({ i }, { exchange: x, routingKey: "t" });
    for (let i = 0; i < 100; i++) await producer.publish({ i }, { exchange: x, routingKey: "a" });
    // 200 acked one by one, in order.
    const before = await acked();
    const inOrder = conn.Consumer([tracked], { prefetchCount: 50 });
    let n = 0;
    for await (const m of inOrder) {
      if (n === 200) {
        // Taken after the window refilled: the rest of the refill waits in the consumer's
        // buffer, and the cancel must requeue it (else it stays unacknowledged until the
        // connection closes, and the consumer below never sees it).
        m.requeue();
        break;
      }
      m.ack();
      if (++n === 200) await new Promise((r) => setTimeout(r, 200));
    }
    await inOrder.cancel();
    const ackRequests = (await acked()) - before;
    // The other 100 beside a consumer without acks on the same channel; some requeued once,
    // some acked late and in reverse order.
    const noAck = conn.Consumer([auto], { noAck: true });
    await noAck.consume();
    const mixed = conn.Consumer([tracked], { prefetchCount: 40 });
    const settled = new Set();
    const held = [];
    let requeued = 0;
    for await (const m of mixed) {
      const i = m.payload.i;
      if (i % 7 === 0 && !m.deliveryInfo.redelivered) {
        m.requeue();
        requeued++;
        continue;
      }
      if (i % 5 === 0) held.push(m);
      else m.ack();
      settled.add(i);
      if (settled.size === 100) break;
    }
    for (const m of held.reverse()) m.ack();
    const autoSeen = new Set();
    for await (const m of noAck) {
      autoSeen.add(m.payload.i);
      if (autoSeen.size === 100) break;
    }
    await mixed.cancel();
    await noAck.cancel();
    await conn.release();
    // Whatever was not settled would be back in the queues once the connection is gone.
    const again = new Connection(u);
    const left = { tracked: await again.purge(tracked), auto: await again.purge(auto), lone: await again.purge(lone) };
    await again.delete(tracked);
    await again.delete(auto);
    await again.delete(lone);
    await again.delete(x);
    await again.release();
    console.log(JSON.stringify({ loneAcks, ackRequests, requeued, settled: settled.size, auto: autoSeen.size, left }));
  `;
  const r = lastJson(runNode(script, { timeout: 60000 }));
  assert.equal(r.loneAcks, 1, "an ack held back alone went out by itself (the carrier's timer), before anything else was sent");
  assert.ok(r.ackRequests > 0 && r.ackRequests < 200, `200 in-order acks reached the gateway as ${r.ackRequests} ack requests (merged: fewer than 200)`);
  // (Deliveries the first consumer had taken but not handed out come back redelivered, and
  // are then not requeued again: how many are requeued depends on timing.)
  assert.ok(r.requeued > 0, "some deliveries were requeued");
  assert.deepEqual({ settled: r.settled, auto: r.auto, left: r.left }, { settled: 100, auto: 100, left: { tracked: 0, auto: 0, lone: 0 } });
}
