// Automatic reconnection (issue #21 item 2) in Node against a real kombu-gateway killed
// (SIGKILL) and restarted on the same port with --data-dir, so that the durable queue and its
// persistent messages survive: a Connection with `reconnect` says "disconnected",
// "reconnecting" and "connected" again, its consumer resumes, the delivery left unacknowledged
// on the dead connection cannot be acknowledged on the new one and comes back redelivered, and
// publishes go on; nothing is lost or left over. Also: a URL the WebSocket refuses is an
// InvalidURL that ensureConnection() does not retry.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";
import { runNode, lastJson } from "./gateway-process.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const bin = process.env.KOMBU_GATEWAY_BIN ?? join(repo, "target", "debug", "kombu-gateway");
const ws = JSON.stringify(join(repo, "js", "ws.js"));
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const children = [];
const dir = mkdtempSync(join(tmpdir(), "kombu-reconnect-"));

after(() => {
  children.forEach((c) => c.kill("SIGKILL"));
  rmSync(dir, { recursive: true, force: true });
});

/** kombu-gateway on `listen` with its embedded broker kept in `data` (and `args`): the child
 * and its address. */
function gateway(listen, data = dir, args = []) {
  assert.ok(existsSync(bin), `build the gateway first (cargo build -p kombu-gateway): ${bin}`);
  const child = spawn(bin, ["--listen", listen, "--data-dir", data, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/([\d.:]+)\//);
      if (m) resolve({ child, addr: m[1] });
    });
    child.on("exit", (code) => reject(new Error(`kombu-gateway exited with ${code}`)));
  });
}

test("a consumer resumes through a gateway killed and restarted, with events, nothing lost or acked twice", { timeout: 120000 }, async () => {
  let g = await gateway("127.0.0.1:0");
  const addr = g.addr;
  const name = `kombu-wasm-test.reconnect.${process.pid}.${Date.now()}`;
  const script = `
    import { Connection, Queue } from ${ws};
    const say = (o) => console.log(JSON.stringify(o));
    const conn = new Connection(${JSON.stringify(`gateway+ws://${addr}/gateway`)}, {
      confirmPublish: true,
      reconnect: { intervalStart: 100, intervalStep: 200, intervalMax: 500 },
    });
    const events = [];
    for (const e of ["connected", "disconnected", "reconnecting"]) conn.on(e, (ev) => events.push(ev.type + (ev.error ? ":" + ev.error.name : "")));
    const q = new Queue(${JSON.stringify(name)}, { durable: true });
    await conn.declare(q);
    const producer = conn.Producer();
    await producer.publish("order 1", { routingKey: q.name });
    const consumer = conn.Consumer([q]);
    const first = await consumer.next({ timeout: 10000 });
    say({ step: "received", payload: first.payload });
    // The parent kills the gateway and starts it again; the consumer waits through it.
    const again = await consumer.next({ timeout: 60000 });
    let firstAck = "acked";
    try { first.ack(); } catch (e) { firstAck = e.name; }
    again.ack();
    await producer.publish("order 2", { routingKey: q.name });
    const second = await consumer.next({ timeout: 10000 });
    second.ack();
    await consumer.cancel();
    const left = await conn.purge(q);
    await conn.delete(q);
    await conn.release();
    say({ step: "done", events, firstAck, again: [again.payload, again.deliveryInfo.redelivered], second: [second.payload, second.deliveryInfo.redelivered], left });
  `;
  const scriptDir = mkdtempSync(join(tmpdir(), "kombu-reconnect-script-"));
  const { writeFileSync } = await import("node:fs");
  writeFileSync(join(scriptDir, "script.mjs"), script);
  const child = spawn(process.execPath, ["--experimental-websocket", "--no-warnings", join(scriptDir, "script.mjs")], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  const lines = createInterface({ input: child.stdout });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  let done;
  for await (const line of lines) {
    const msg = JSON.parse(line);
    if (msg.step === "received") {
      assert.equal(msg.payload, "order 1");
      g.child.kill("SIGKILL");
      await new Promise((r) => g.child.once("exit", r));
      await new Promise((r) => setTimeout(r, 700));
      g = await gateway(addr);
    } else if (msg.step === "done") {
      done = msg;
    }
  }
  assert.equal(await exited, 0);
  rmSync(scriptDir, { recursive: true, force: true });
  assert.ok(done, "the script finished");
  assert.deepEqual(done.again, ["order 1", true], JSON.stringify(done));
  assert.notEqual(done.firstAck, "acked", "a delivery of the dead connection was acked on the new one");
  assert.deepEqual(done.second, ["order 2", false]);
  assert.equal(done.left, 0, "nothing left over");
  assert.equal(done.events[0], "connected", JSON.stringify(done.events));
  assert.ok(done.events.some((e) => e.startsWith("disconnected:")), JSON.stringify(done.events));
  assert.ok(done.events.some((e) => e.startsWith("reconnecting:")), JSON.stringify(done.events));
  assert.equal(done.events.at(-1), "connected", JSON.stringify(done.events));
});

test("a URL the WebSocket refuses is InvalidURL, and ensureConnection does not retry it", { timeout: 60000 }, () => {
  const r = lastJson(
    runNode(`
      import { Connection } from ${ws};
      const conn = new Connection("gateway+ws://bad%25host:8765/gateway");
      const events = [];
      conn.on("reconnecting", () => events.push("reconnecting"));
      const started = Date.now();
      const name = await conn.ensureConnection().then(() => "connected", (e) => e.name);
      console.log(JSON.stringify({ name, ms: Date.now() - started, events }));
    `),
  );
  assert.equal(r.name, "InvalidURL", JSON.stringify(r));
  assert.deepEqual(r.events, [], "retried");
  // (The default policy waits 2 s before a retry: an answer well before says none happened.)
  assert.ok(r.ms < 1500, JSON.stringify(r));
});

test("in Chromium, a page's consumer resumes through a gateway killed and restarted", { skip: !existsSync(executablePath) && "no chromium", timeout: 120000 }, async () => {
  const data = join(dir, "chromium");
  const site = ["--www", join(here, "site"), "--pkg", join(repo, "js")];
  let g = await gateway("127.0.0.1:0", data, site);
  const addr = g.addr;
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const page = await browser.newPage();
    await page.goto(`http://${addr}/gateway.html`);
    await page.waitForFunction(() => window.__ready);
    const name = `kombu-wasm-test.reconnect-page.${process.pid}.${Date.now()}`;
    const result = page.evaluate(async ({ url, name }) => {
      const { Connection, Queue } = window.kombu;
      const conn = new Connection(url, { confirmPublish: true, reconnect: { intervalStart: 100, intervalStep: 200, intervalMax: 500 } });
      const events = [];
      for (const e of ["connected", "disconnected", "reconnecting"]) conn.on(e, (ev) => events.push(ev.type));
      const q = new Queue(name, { durable: true });
      await conn.declare(q);
      const producer = conn.Producer();
      await producer.publish("order 1", { routingKey: q.name });
      const consumer = conn.Consumer([q]);
      const first = await consumer.next({ timeout: 10000 });
      window.__received = true;
      const again = await consumer.next({ timeout: 60000 });
      let firstAck = "acked";
      try { first.ack(); } catch (e) { firstAck = e.name; }
      again.ack();
      await producer.publish("order 2", { routingKey: q.name });
      const second = await consumer.next({ timeout: 10000 });
      second.ack();
      await consumer.cancel();
      const left = await conn.purge(q);
      await conn.delete(q);
      await conn.release();
      return { events, firstAck, again: [again.payload, again.deliveryInfo.redelivered], second: [second.payload, second.deliveryInfo.redelivered], left };
    }, { url: `gateway+ws://${addr}/gateway`, name });
    await page.waitForFunction(() => window.__received, null, { timeout: 30000 });
    g.child.kill("SIGKILL");
    await new Promise((r) => g.child.once("exit", r));
    await new Promise((r) => setTimeout(r, 700));
    g = await gateway(addr, data, site);
    const r = await result;
    assert.deepEqual(r.again, ["order 1", true], JSON.stringify(r));
    assert.notEqual(r.firstAck, "acked", JSON.stringify(r));
    assert.deepEqual(r.second, ["order 2", false], JSON.stringify(r));
    assert.equal(r.left, 0);
    assert.deepEqual([r.events[0], r.events.at(-1)], ["connected", "connected"], JSON.stringify(r.events));
    assert.ok(r.events.includes("disconnected") && r.events.includes("reconnecting"), JSON.stringify(r.events));
  } finally {
    await browser.close();
  }
});
