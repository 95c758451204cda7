// kombu.common.Broadcast across languages (issue #21 item 3): kombu-gateway on the local
// RabbitMQ, the npm package (Node, gateway+ws://) on one side and Python's kombu (pyamqp,
// tests/interop/broadcast_peer.py) on the other, both consuming Broadcast(EXCHANGE): each
// gets its own `bcast.<uuid>` queue on the fanout exchange, each sees the message the other
// published (and its own), and each side's queue is one the other's Kombu would declare the
// same way (RabbitMQ refuses a redeclaration with other attributes with 406).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { gatewayForPythonPeers } from "./gateway-process.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const ws = join(repo, "js", "ws.js");
const peer = join(repo, "tests", "interop", "broadcast_peer.py");
const peers = gatewayForPythonPeers();

/** A child process spoken to in JSON lines: `send(obj)`, and `next()` for its next line. */
function peerProcess(command, args, what) {
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  let timer;
  return {
    child,
    send: (o) => child.stdin.write(`${JSON.stringify(o)}\n`),
    next: async () => {
      const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} said nothing for 60 s`)), 60000)));
      try {
        const { value, done } = await Promise.race([lines.next(), timeout]);
        if (done) throw new Error(`${what} exited early`);
        return JSON.parse(value);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

test("Broadcast: a Python kombu consumer and a JavaScript one (gateway+ws://) each see what the other published", { timeout: 180000 }, async (t) => {
  if (peers.why) return t.skip(peers.why);
  const exchange = `kombu-wasm-test.bcast.${process.pid}.${Date.now()}`;
  const url = `gateway+ws://${peers.addr}/gateway`;
  // The JavaScript side: the same commands as the Python peer (see broadcast_peer.py).
  const dir = mkdtempSync(join(tmpdir(), "kombu-wasm-bcast-"));
  writeFileSync(join(dir, "peer.mjs"), `
    import { Connection, Broadcast, TimeoutError } from ${JSON.stringify(ws)};
    import { createInterface } from "node:readline";
    const say = (o) => console.log(JSON.stringify(o));
    const conn = new Connection(${JSON.stringify(url)});
    const bcast = new Broadcast(${JSON.stringify(exchange)});
    const received = [];
    const consumer = conn.Consumer([bcast], { onMessage: (m) => { received.push(m.payload); m.ack(); } });
    await consumer.consume();
    say({ ready: bcast.name, autoDelete: bcast.autoDelete, exchangeType: bcast.exchange.type });
    for await (const line of createInterface({ input: process.stdin })) {
      const cmd = JSON.parse(line);
      if ("check" in cmd) {
        const other = new Broadcast(${JSON.stringify(exchange)}, { queue: cmd.check });
        await conn.declare(other).then(() => say({ checked: cmd.check }), (e) => say({ check_error: e.name + ": " + e.message }));
      } else if ("publish" in cmd) {
        await conn.Producer().publish(cmd.publish, { exchange: bcast.exchange });
        say({ published: cmd.publish });
      } else if ("expect" in cmd) {
        for (const end = Date.now() + 30000; received.length < cmd.expect && Date.now() < end;) {
          try { await conn.drainEvents({ timeout: 500 }); } catch (e) { if (!(e instanceof TimeoutError)) throw e; }
        }
        say({ received });
      } else if ("cleanup" in cmd) {
        // Both sides got everything: the queues go with their consumers (auto-delete), the
        // exchange by hand.
        await consumer.cancel();
        await conn.delete(bcast.exchange);
        await conn.release();
        say({ cleaned: true });
        process.exit(0);
      }
    }
  `);
  const py = peerProcess(peers.python, [peer, exchange], "the Python peer");
  const js = peerProcess(process.execPath, ["--experimental-websocket", "--no-warnings", join(dir, "peer.mjs")], "the JavaScript peer");
  try {
    const [pyReady, jsReady] = [await py.next(), await js.next()];
    // Kombu's naming: bcast.<uuid>, auto-deleted, on a fanout exchange named after the broadcast.
    assert.match(pyReady.ready, /^bcast\.[0-9a-f-]{36}$/);
    assert.match(jsReady.ready, /^bcast\.[0-9a-f-]{36}$/);
    assert.notEqual(pyReady.ready, jsReady.ready);
    assert.deepEqual([pyReady.auto_delete, pyReady.exchange_type], [true, "fanout"]);
    assert.deepEqual([jsReady.autoDelete, jsReady.exchangeType], [true, "fanout"]);
    // Each side declares the other's queue as its own Kombu would: RabbitMQ accepts it only if
    // durable, auto_delete, exclusive and arguments are the same.
    py.send({ check: jsReady.ready });
    assert.deepEqual(await py.next(), { checked: jsReady.ready });
    js.send({ check: pyReady.ready });
    assert.deepEqual(await js.next(), { checked: pyReady.ready });
    // Each publishes; each sees both messages.
    py.send({ publish: { from: "python" } });
    assert.deepEqual(await py.next(), { published: { from: "python" } });
    js.send({ publish: { from: "javascript" } });
    assert.deepEqual(await js.next(), { published: { from: "javascript" } });
    py.send({ expect: 2 });
    js.send({ expect: 2 });
    const [pyGot, jsGot] = [await py.next(), await js.next()];
    const sorted = (r) => r.received.map((b) => b.from).sort();
    assert.deepEqual(sorted(pyGot), ["javascript", "python"], JSON.stringify(pyGot));
    assert.deepEqual(sorted(jsGot), ["javascript", "python"], JSON.stringify(jsGot));
    js.send({ cleanup: true });
    assert.deepEqual(await js.next(), { cleaned: true });
  } finally {
    py.child.kill();
    js.child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});
