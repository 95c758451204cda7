// Connection events "blocked" and "unblocked" (AMQP's connection.blocked / unblocked, issue
// #21 item 2) over gateway+ws:// to a real kombu-gateway on its embedded broker with a small
// --memory-high-watermark (a gateway of its own: the limit is process-wide): publishing past
// the watermark says "blocked" (with the broker's reason) to every client and the publish
// past it is refused; consuming brings the queues under it and says "unblocked"; publishes
// are accepted again.
//
// And RabbitMQ's own memory alarm, raised for 1.5 s, reaching the JS client over amqp+ws://
// (the /amqp relay) and gateway+ws:// (a gateway on RabbitMQ). The alarm is raised as
// native-gateway/tests/blocked.rs raises it: one `rabbitmqctl eval` that lowers the watermark,
// sleeps and restores it inside the broker, under the same cluster-wide lock, so that the two
// tests (or two runs of either) never overlap on the shared RabbitMQ.
//
// And the embedded-broker case in a Chromium page: the events reach a browser app too.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startGateway, rabbitUp, runNode, lastJson } from "./gateway-process.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const ws = JSON.stringify(join(here, "..", "ws.js"));
const core = JSON.stringify(join(here, "..", "index.js")); // memory:// is in the core module only
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
let gateway;
let rabbit; // a gateway on RabbitMQ, when RabbitMQ runs here and rabbitmqctl can reach it
let noRabbit = "";

before(async () => {
  // It also serves the test pages (js/test/site) for the Chromium test.
  gateway = await startGateway(["--memory-high-watermark", "3000", "--www", join(here, "site")]);
  if (!(await rabbitUp())) {
    noRabbit = "no RabbitMQ on 127.0.0.1:5672";
    assert.ok(!process.env.CI, `${noRabbit}: required under CI`);
    return;
  }
  try {
    execFileSync("rabbitmqctl", ["eval", "vm_memory_monitor:get_vm_memory_high_watermark()."], { stdio: "pipe", timeout: 30000 });
  } catch {
    noRabbit = "rabbitmqctl cannot reach RabbitMQ here (the alarm cannot be raised)";
    return;
  }
  rabbit = await startGateway(["--broker", "amqp://guest:guest@127.0.0.1:5672//"]);
});

after(() => {
  gateway?.child.kill("SIGTERM");
  rabbit?.child.kill("SIGTERM");
});

/** The Erlang RabbitMQ runs (see native-gateway/tests/blocked.rs): the alarm for 1.5 s. */
const ALARM = "global:trans({kombu_wasm_test_memory_alarm, self()}, fun() -> Prev = vm_memory_monitor:get_vm_memory_high_watermark(), vm_memory_monitor:set_vm_memory_high_watermark(0.0000001), timer:sleep(1500), vm_memory_monitor:set_vm_memory_high_watermark(Prev), Prev end).";

test("RabbitMQ's memory alarm reaches the JS client as blocked then unblocked over amqp+ws:// and gateway+ws://", { timeout: 120000 }, (t) => {
  if (noRabbit) return t.skip(noRabbit);
  const urls = [`amqp+ws://guest:guest@${rabbit.addr}//`, `gateway+ws://${rabbit.addr}/gateway`];
  const queue = `kombu-wasm-test.blocked.js.${process.pid}.${Date.now()}`;
  const r = lastJson(
    runNode(
      `
      import { Connection, Queue } from ${ws};
      import { spawn } from "node:child_process";
      const q = new Queue(${JSON.stringify(queue)}, { durable: false, expires: 120 });
      const clients = [];
      for (const url of ${JSON.stringify(urls)}) {
        const conn = new Connection(url);
        const said = [];
        conn.on("blocked", (e) => said.push(e.type + ": " + e.reason));
        conn.on("unblocked", (e) => said.push(e.type));
        await conn.declare(q);
        clients.push({ conn, said, producer: conn.Producer() });
      }
      const drain = (conn, ms) => conn.drainEvents({ timeout: ms }).catch((e) => { if (e.name !== "TimeoutError") throw e; });
      const alarm = spawn("rabbitmqctl", ["eval", ${JSON.stringify(ALARM)}], { stdio: ["ignore", "pipe", "inherit"] });
      let restored = "";
      alarm.stdout.on("data", (d) => (restored += d));
      const alarmDone = new Promise((resolve) => alarm.on("exit", resolve));
      // RabbitMQ tells a connection when it publishes during the alarm: publish (without
      // waiting: RabbitMQ holds it) until told.
      let published = 0;
      for (const deadline = Date.now() + 30000; clients.some((c) => c.said.length === 0);) {
        if (Date.now() > deadline) throw new Error("not told: " + JSON.stringify(clients.map((c) => c.said)));
        for (const c of clients.filter((c) => c.said.length === 0)) {
          c.producer.publish("held", { routingKey: q.name }).catch(() => {});
          published++;
          await drain(c.conn, 100);
        }
      }
      const code = await alarmDone;
      for (const c of clients) {
        for (const deadline = Date.now() + 30000; !c.said.includes("unblocked");) {
          if (Date.now() > deadline) throw new Error("not unblocked: " + JSON.stringify(c.said));
          await drain(c.conn, 200);
        }
      }
      await clients[0].producer.publish("after", { routingKey: q.name });
      await clients[0].conn.delete(q);
      for (const c of clients) await c.conn.release();
      console.log(JSON.stringify({ said: clients.map((c) => c.said), code, restored: restored.trim(), published }));
    `,
      { timeout: 100000 },
    ),
  );
  assert.equal(r.code, 0, JSON.stringify(r));
  for (const said of r.said) {
    assert.equal(said.length, 2, JSON.stringify(r));
    assert.match(said[0], /^blocked: .+/, JSON.stringify(r));
    assert.equal(said[1], "unblocked", JSON.stringify(r));
  }
});

/**
 * The embedded-broker scenario, run as it is in Node and in a Chromium page (its source is sent
 * to both): a publisher (with confirms) and a bystander on `url`; two messages stay under the
 * watermark, the third crosses it; both are told "blocked", the next publish is refused;
 * consuming brings the queue under it and both are told "unblocked"; publishing works again.
 */
async function watermarkScenario({ Connection, Queue }, url, name) {
  const listen = (conn) => {
    const said = [];
    conn.on("blocked", (e) => said.push(e.type + ": " + e.reason));
    conn.on("unblocked", (e) => said.push(e.type));
    return said;
  };
  // Until `what` was said: the events are received as the connection's events are drained.
  const until = async (conn, said, what) => {
    const deadline = Date.now() + 30000;
    while (!said.some((s) => s.startsWith(what))) {
      if (Date.now() > deadline) throw new Error("no " + what + " event: " + JSON.stringify(said));
      await conn.drainEvents({ timeout: 200 }).catch((e) => {
        if (e.name !== "TimeoutError") throw e;
      });
    }
  };
  const publisher = new Connection(url, { confirmPublish: true });
  const bystander = new Connection(url);
  const [onPublisher, onBystander] = [listen(publisher), listen(bystander)];
  const q = new Queue(name, { durable: false });
  await publisher.declare(q);
  await bystander.connect();
  const producer = publisher.Producer();
  const body = "x".repeat(1000);
  await producer.publish(body, { routingKey: q.name });
  await producer.publish(body, { routingKey: q.name });
  // Under the watermark: nothing said.
  await publisher.drainEvents({ timeout: 300 }).catch(() => {});
  const saidUnder = [...onPublisher];
  await producer.publish(body, { routingKey: q.name });
  await until(publisher, onPublisher, "blocked");
  await until(bystander, onBystander, "blocked");
  const refused = await producer.publish(body, { routingKey: q.name }).then(() => "resolved", (e) => e.name);
  const consumer = bystander.Consumer([q]);
  for (let i = 0; i < 3; i++) (await consumer.next({ timeout: 20000 })).ack();
  await until(bystander, onBystander, "unblocked");
  await until(publisher, onPublisher, "unblocked");
  const after = await producer.publish(body, { routingKey: q.name }).then(() => "resolved", (e) => e.name);
  const last = await consumer.next({ timeout: 20000 });
  last.ack();
  await consumer.cancel();
  const left = await publisher.purge(q);
  await publisher.delete(q);
  await publisher.release();
  await bystander.release();
  return { saidUnder, onPublisher, onBystander, refused, after, delivered: last.payload.length, left };
}

function assertWatermarkScenario(r) {
  assert.deepEqual(r.saidUnder, [], JSON.stringify(r));
  assert.deepEqual(r.onPublisher, ["blocked: low on memory", "unblocked"], JSON.stringify(r));
  assert.deepEqual(r.onBystander, ["blocked: low on memory", "unblocked"], JSON.stringify(r));
  // Blocked, the embedded broker refuses the publish (a nack with confirmPublish), as before.
  assert.equal(r.refused, "MessageNacked", JSON.stringify(r));
  assert.equal(r.after, "resolved", JSON.stringify(r));
  assert.equal(r.delivered, 1000, JSON.stringify(r));
  assert.equal(r.left, 0, JSON.stringify(r));
}

test("gateway+ws:// clients see blocked then unblocked as the embedded broker crosses its memory high watermark", { timeout: 120000 }, () => {
  const args = [`gateway+ws://${gateway.addr}/gateway`, `blocked.js.${process.pid}`].map((a) => JSON.stringify(a)).join(", ");
  const r = lastJson(
    runNode(
      `
      import * as kombu from ${ws};
      console.log(JSON.stringify(await (${watermarkScenario})(kombu, ${args})));
    `,
      { timeout: 100000 },
    ),
  );
  assertWatermarkScenario(r);
});

// The same in a Chromium page (the "kombu-wasm/ws" build the gateway serves at /pkg/): the
// events reach a browser app, as they do Node.
test("in Chromium, a page sees blocked then unblocked as the embedded broker crosses its watermark", { skip: !existsSync(executablePath) && "no chromium", timeout: 120000 }, async () => {
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const page = await browser.newPage();
    await page.goto(`http://${gateway.addr}/gateway.html`);
    await page.waitForFunction(() => window.__ready);
    const args = [`gateway+ws://${gateway.addr}/gateway`, `blocked.page.${process.pid}`].map((a) => JSON.stringify(a)).join(", ");
    assertWatermarkScenario(await page.evaluate(`(${watermarkScenario})(window.kombu, ${args})`));
  } finally {
    await browser.close();
  }
});

test("on() refuses an event it does not know, naming those it does", () => {
  const r = lastJson(
    runNode(`
      import { Connection } from ${core};
      const conn = new Connection("memory://");
      let error;
      try { conn.on("block", () => {}); } catch (e) { error = [e.name, e.message]; }
      console.log(JSON.stringify({ error }));
    `),
  );
  assert.equal(r.error[0], "ValueError");
  assert.match(r.error[1], /connected, disconnected, reconnecting, blocked, unblocked/);
});
