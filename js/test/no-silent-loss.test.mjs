// No silent loss (issue #21 item 1), on each path the npm package takes to a broker: memory://
// (the core build), gateway+ws:// to a real kombu-gateway (its embedded broker, and RabbitMQ
// behind it) and amqp+ws:// through the gateway's /amqp relay to RabbitMQ.
//
// A publish to an exchange that does not exist makes the broker close the channel (404). With
// `confirmPublish`, `await publish()` resolves only once the broker has the message: every
// publish that resolved is delivered, every other one rejects (the lost one and those after it
// on the closed channel with the broker's 404). Without it a publish resolves when sent (as in
// AMQP), and the next operation on the channel rejects with the broker's reason, not a bare 504;
// the library then reopens the channel and carries on.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startGateway, rabbitUp, runNode, lastJson } from "./gateway-process.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, "..");
const gateways = [];
let embedded;
let relay; // a gateway on RabbitMQ (gateway+ws:// and the /amqp relay), when RabbitMQ runs

before(async () => {
  let g = await startGateway([]);
  gateways.push(g.child);
  embedded = g.addr;
  if (await rabbitUp()) {
    g = await startGateway(["--broker", "amqp://guest:guest@127.0.0.1:5672//"]);
    gateways.push(g.child);
    relay = g.addr;
  } else {
    assert.ok(!process.env.CI, "RabbitMQ must run on 127.0.0.1:5672 under CI");
  }
});

after(() => gateways.forEach((g) => g.kill("SIGTERM")));

const unique = (what) => `kombu-wasm-test.loss.${what}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2)}`;

/**
 * In a Node process of its own, on `url` (with `confirmPublish` or not): publishes before,
 * to a missing exchange, and after it, then every message the queue holds. Prints
 * `{ outcomes, delivered, declareAfter }`: each publish's outcome ("resolved" or the error
 * name) by body, the bodies delivered, and the outcome of a declare right after the lost one.
 */
function scenario(entry, url, confirm, burst) {
  const name = unique("q");
  const out = runNode(`
    import { Connection, Queue } from ${JSON.stringify(join(pkg, entry))};
    const conn = new Connection(${JSON.stringify(url)}, ${confirm ? "{ confirmPublish: true }" : "{}"});
    const q = new Queue(${JSON.stringify(name)}, { durable: false });
    await conn.declare(q);
    const producer = conn.Producer();
    const outcomes = {};
    const publish = (body, options) => producer.publish(body, options).then(() => (outcomes[body] = "resolved"), (e) => (outcomes[body] = e.name));
    const toQueue = { routingKey: q.name };
    const lost = { exchange: ${JSON.stringify(unique("missing"))} };
    let declareAfter;
    if (${burst}) {
      // All sent at once on one channel, the lost one in the middle.
      const sent = [];
      for (let i = 0; i < 10; i++) sent.push(publish("before " + i, toQueue));
      sent.push(publish("lost", lost));
      for (let i = 0; i < 10; i++) sent.push(publish("after " + i, toQueue));
      await Promise.all(sent);
    } else {
      for (let i = 0; i < 10; i++) await publish("before " + i, toQueue);
      await publish("lost", lost);
      declareAfter = await conn.declare(q).then(() => "resolved", (e) => e.name);
      for (let i = 0; i < 10; i++) await publish("after " + i, toQueue);
    }
    const consumer = conn.Consumer([q]);
    const delivered = [];
    for (;;) {
      let m;
      try {
        m = await consumer.next({ timeout: 1500 });
      } catch (e) {
        if (e.name === "TimeoutError") break;
        throw e;
      }
      delivered.push(m.payload);
      m.ack();
    }
    await consumer.cancel();
    await conn.delete(q);
    await conn.release();
    console.log(JSON.stringify({ outcomes, delivered, declareAfter }));
  `);
  return lastJson(out);
}

/**
 * What every path must show: each publish that resolved was delivered, once; the lost one was
 * not; nothing was delivered twice. With `exact` (confirmPublish on memory:// and on the
 * gateway's embedded broker) also the converse: what was delivered is exactly what resolved
 * (the gateway sends the confirms of earlier publishes before its answer closing the channel,
 * so none of them rejects although the broker has it). RabbitMQ closes the channel without
 * the confirms it has not flushed yet: there a rejected publish may still have been enqueued
 * (rejected means "not known to be taken": retrying it may duplicate, never lose).
 */
function noSilentLoss({ outcomes, delivered }, exact = false) {
  const resolved = Object.keys(outcomes).filter((b) => b !== "lost" && outcomes[b] === "resolved");
  const got = new Set(delivered);
  assert.equal(got.size, delivered.length, `delivered twice: ${JSON.stringify(delivered)}`);
  assert.deepEqual(resolved.filter((b) => !got.has(b)), [], `resolved and not delivered: ${JSON.stringify(outcomes)}`);
  assert.ok(!got.has("lost"), "the publish to the missing exchange was delivered");
  assert.deepEqual(delivered.filter((b) => !(b in outcomes)), [], "delivered what was never published");
  if (exact) {
    assert.deepEqual([...got].sort(), resolved.sort(), `resolved == delivered: ${JSON.stringify({ outcomes, delivered })}`);
    assert.ok(Object.keys(outcomes).filter((b) => b.startsWith("before")).every((b) => outcomes[b] === "resolved"), `a publish before the lost one rejected: ${JSON.stringify(outcomes)}`);
  }
}

function paths() {
  // Each WebSocket path also through its one-transport build ("kombu-wasm/gateway", "/amqp").
  const out = [["memory://", "index.js", () => `memory:///${unique("vhost")}`], ["gateway+ws:// (embedded broker)", "ws.js", () => `gateway+ws://${embedded}/gateway?vhost=/${unique("vhost")}`]];
  out.push(["gateway+ws:// (embedded broker, kombu-wasm/gateway)", "gateway.js", out[1][2]]);
  if (relay) out.push(["gateway+ws:// (RabbitMQ)", "ws.js", () => `gateway+ws://${relay}/gateway`], ["amqp+ws:// (relay to RabbitMQ)", "ws.js", () => `amqp+ws://guest:guest@${relay}//`], ["amqp+ws:// (relay to RabbitMQ, kombu-wasm/amqp)", "amqp.js", () => `amqp+ws://guest:guest@${relay}//`]);
  return out;
}

test("with confirmPublish, a publish resolves only when the broker has it; a lost one and those after it on the closed channel reject with 404", { timeout: 120000 }, () => {
  for (const [what, entry, url] of paths()) {
    for (const burst of [false, true]) {
      const r = scenario(entry, url(), true, burst);
      assert.equal(r.outcomes.lost, "NotFound", `${what}: ${JSON.stringify(r)}`);
      noSilentLoss(r, !what.includes("RabbitMQ"));
      if (burst && entry !== "index.js") {
        // Sent on the channel the broker closed before the close came back: refused with its
        // reason, none resolved. (memory:// answers each publish at once: the channel reopens
        // for the next one.)
        assert.ok(Object.keys(r.outcomes).filter((b) => b.startsWith("after")).every((b) => r.outcomes[b] === "NotFound"), `${what}: ${JSON.stringify(r)}`);
      } else if (!burst) {
        assert.ok(Object.keys(r.outcomes).every((b) => b === "lost" || r.outcomes[b] === "resolved"), `${what}: ${JSON.stringify(r)}`);
        // The library reopens the default channel for what follows.
        assert.equal(r.declareAfter, "resolved", what);
        assert.equal(r.delivered.length, 20, `${what}: ${JSON.stringify(r)}`);
      }
    }
  }
});

test("without confirmPublish, the operation after a lost publish rejects with the broker's 404 (not a bare 504), then the channel reopens", { timeout: 120000 }, () => {
  for (const [what, entry, url] of paths()) {
    const r = scenario(entry, url(), false, false);
    if (entry === "index.js") {
      // memory:// answers the publish itself.
      assert.deepEqual([r.outcomes.lost, r.declareAfter], ["NotFound", "resolved"], what);
    } else {
      assert.deepEqual([r.outcomes.lost, r.declareAfter], ["resolved", "NotFound"], what);
    }
    noSilentLoss(r);
    assert.equal(r.delivered.length, 20, `${what}: ${JSON.stringify(r)}`);
  }
});

test("with confirmPublish, a message the broker refuses (over its memory high watermark) rejects with MessageNacked and is not delivered", { timeout: 60000 }, async () => {
  const { child, addr } = await startGateway(["--memory-high-watermark", "1000"]);
  gateways.push(child);
  const name = unique("full");
  const r = lastJson(
    runNode(`
      import { Connection, Queue } from ${JSON.stringify(join(pkg, "ws.js"))};
      const conn = new Connection(${JSON.stringify(`gateway+ws://${addr}/gateway?vhost=/full`)}, { confirmPublish: true });
      const q = new Queue(${JSON.stringify(name)}, { durable: false });
      await conn.declare(q);
      const producer = conn.Producer();
      const outcomes = [];
      for (let i = 0; i < 30; i++) {
        outcomes.push(await producer.publish("x".repeat(100) + i, { routingKey: q.name }).then(() => "resolved", (e) => e.name));
      }
      const consumer = conn.Consumer([q]);
      const delivered = [];
      for (;;) {
        const m = await consumer.next({ timeout: 1500 }).catch((e) => { if (e.name === "TimeoutError") return undefined; throw e; });
        if (!m) break;
        delivered.push(Number(m.payload.slice(100)));
        m.ack();
      }
      await conn.release();
      console.log(JSON.stringify({ outcomes, delivered }));
    `),
  );
  const resolved = r.outcomes.flatMap((o, i) => (o === "resolved" ? [i] : []));
  assert.ok(resolved.length > 0 && resolved.length < 30, JSON.stringify(r));
  assert.ok(r.outcomes.every((o) => o === "resolved" || o === "MessageNacked"), JSON.stringify(r));
  assert.deepEqual(r.delivered, resolved);
});
