// Heartbeats over gateway+ws:// from the npm package (the real kombu-gateway on its embedded
// broker): with Kombu's `heartbeat` option the page/Node and the gateway exchange heartbeat
// frames (browsers cannot see WebSocket pings), which keep an idle connection open on both
// sides, and a gateway that goes silent — its process stopped with SIGSTOP, its socket left
// open — is detected within two intervals and fails the connection with the reason.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startGateway, startNode } from "./gateway-process.mjs";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

test("gateway+ws:// heartbeats keep an idle connection open and detect a frozen gateway", { timeout: 60000 }, async () => {
  // No WebSocket pings and a 3-second idle timeout: only the client's heartbeat frames keep
  // the gateway from closing the idle connection.
  const { child: gateway, addr } = await startGateway(["--ping-interval", "0", "--idle-timeout", "3"]);
  const queue = `kw-gw-hb.${process.pid}.${Date.now()}`;
  const script = `
    import { Connection, Queue } from ${JSON.stringify(join(repo, "js", "ws.js"))};
    import { createInterface } from "node:readline";
    const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
    const conn = new Connection(${JSON.stringify(`gateway+ws://${addr}/gateway?vhost=/hb-${process.pid}`)}, { heartbeat: 1 });
    await conn.connect();
    // Idle for 6 s, twice the gateway's idle timeout and six heartbeat intervals.
    try {
      await conn.drainEvents({ timeout: 6000 });
    } catch (e) {
      console.log("idle: " + e.name + ": " + e.message);
    }
    const q = new Queue(${JSON.stringify(queue)}, { autoDelete: true });
    await conn.Producer().publish({ idle: "survived" }, { routingKey: q.name, declare: [q] });
    const consumer = conn.Consumer([q]);
    const m = await consumer.next({ timeout: 5000 });
    await m.ack();
    console.log("alive " + JSON.stringify(m.payload));
    await consumer.cancel();
    console.log("stop the gateway");
    await lines.next();
    const t0 = Date.now();
    try {
      await conn.drainEvents({ timeout: 20000 });
      console.log("no error");
    } catch (e) {
      console.log("failed after " + (Date.now() - t0) + " ms: " + e.name + ": " + e.message);
    }
    process.exit(0);
  `;
  const client = startNode(script);
  const out = () => client.output();
  try {
    await client.seen(/stop the gateway/);
    assert.match(out(), /idle: TimeoutError/);
    assert.match(out(), /alive \{"idle":"survived"\}/);
    gateway.kill("SIGSTOP");
    client.send("go");
    await client.seen(/failed after|no error/);
    const m = out().match(/failed after (\d+) ms: (.*)/);
    assert.ok(m, out());
    assert.match(m[2], /RecoverableConnectionError|ConnectionError/);
    assert.match(m[2], /missed heartbeats from the gateway/);
    // Two intervals of silence (2 s), noticed at a half-interval tick; far below the 20 s waited.
    assert.ok(Number(m[1]) < 15000, out());
  } finally {
    gateway.kill("SIGCONT");
    gateway.kill("SIGTERM");
    client.stop();
  }
});
