// The npm package against a real kombu-gateway (the native binary on the embedded broker):
// the README quick start with only the URL changed, in Node and in Chromium, acks merged on
// their way to the gateway, and two browser pages exchanging messages through the gateway.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startGateway, checkAckMerging, runNode } from "./gateway-process.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const cli = process.env.KOMBU_CLI_BIN ?? join(repo, "target", "debug", "kombu");
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
let gateway;
let addr;

const gateways = [];

async function start(www) {
  const { child, addr } = await startGateway(["--www", www]);
  gateways.push(child);
  return addr;
}

before(async () => {
  addr = await start(join(here, "site"));
});

after(() => gateways.forEach((g) => g.kill("SIGTERM")));

const url = (vhost) => `gateway+ws://${addr}/gateway?vhost=/${vhost}-${process.pid}-${Date.now()}`;

test("the README quick start runs in Node against the gateway by changing only the URL", () => {
  const readme = readFileSync(join(repo, "js", "README.md"), "utf8");
  const code = readme.slice(readme.indexOf("## Quick start")).match(/```js\n([\s\S]*?)```/)[1];
  assert.match(code, /new Connection\("memory:\/\/"\)/);
  // (runNode enables WebSocket: Node 20 has it behind a flag, Node 22+ always.)
  const out = runNode(code.replace('"memory://"', JSON.stringify(url("node"))).replace('from "kombu-wasm"', `from ${JSON.stringify(join(repo, "js", "ws.js"))}`));
  assert.match(out, /name: '\/tmp\/lolcat1\.avi'/);
});

// Acks over gateway+ws:// on the embedded broker (see checkAckMerging; amqp-relay.test.mjs
// runs the same check with RabbitMQ behind the gateway).
test("gateway+ws:// acks go out merged and settle exactly what was settled", () => {
  checkAckMerging(url("acks"), `http://${addr}/metrics`, "acks");
});

test("two Chromium pages exchange messages through the gateway", { skip: !existsSync(executablePath) && "no chromium" }, async () => {
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const u = url("browsers");
    const [a, b] = await Promise.all([browser.newPage(), browser.newPage()]);
    for (const p of [a, b]) {
      await p.goto(`http://${addr}/gateway.html`);
      await p.waitForFunction(() => window.__ready);
    }
    // Page A: a fanout exchange and its own queue, consuming.
    const got = a.evaluate(async (u) => {
      const { Connection, Exchange, Queue } = window.kombu;
      const news = new Exchange("news", { type: "fanout" });
      const conn = new Connection(u);
      const mine = new Queue("page-a", { exchange: news });
      await conn.declare(mine);
      window.__declared = true;
      const consumer = conn.Consumer([mine]);
      const m = await consumer.next({ timeout: 10000 });
      const out = { payload: m.payload, exchange: m.deliveryInfo.exchange };
      m.ack();
      await conn.release();
      return out;
    }, u);
    await a.waitForFunction(() => window.__declared);
    // Page B publishes to the exchange.
    await b.evaluate(async (u) => {
      const { Connection, Exchange } = window.kombu;
      const conn = new Connection(u);
      await conn.Producer().publish({ from: "page b" }, { exchange: new Exchange("news", { type: "fanout" }) });
      await conn.release();
    }, u);
    assert.deepEqual(await got, { payload: { from: "page b" }, exchange: "news" });

    // Topic: page A's queue takes "*.error" from "logs"; page B publishes an error and an info.
    const topic = a.evaluate(async (u) => {
      const { Connection, Exchange, Queue } = window.kombu;
      const logs = new Exchange("logs", { type: "topic" });
      const conn = new Connection(u);
      const errors = new Queue("a-errors", { exchange: logs, routingKey: "*.error" });
      await conn.declare(errors);
      window.__topic = true;
      const consumer = conn.Consumer([errors]);
      const first = await consumer.next({ timeout: 10000 });
      first.ack();
      let second = null;
      try {
        second = (await consumer.next({ timeout: 500 })).deliveryInfo.routingKey;
      } catch (e) {
        second = e.name;
      }
      await conn.release();
      return { routingKey: first.deliveryInfo.routingKey, payload: first.payload, second };
    }, u);
    await a.waitForFunction(() => window.__topic);
    await b.evaluate(async (u) => {
      const { Connection, Exchange } = window.kombu;
      const conn = new Connection(u);
      const logs = new Exchange("logs", { type: "topic" });
      const producer = conn.Producer();
      await producer.publish("disk full", { exchange: logs, routingKey: "db.info" });
      await producer.publish("disk failed", { exchange: logs, routingKey: "db.error" });
      await conn.release();
    }, u);
    assert.deepEqual(await topic, { routingKey: "db.error", payload: "disk failed", second: "TimeoutError" });

    // Direct, the other way: page B consumes "tasks"/"b", page A publishes with that key.
    const direct = b.evaluate(async (u) => {
      const { Connection, Exchange, Queue } = window.kombu;
      const tasks = new Exchange("tasks", { type: "direct" });
      const conn = new Connection(u);
      const mine = new Queue("b-tasks", { exchange: tasks, routingKey: "b" });
      await conn.declare(mine);
      window.__direct = true;
      const m = await conn.Consumer([mine]).next({ timeout: 10000 });
      m.ack();
      await conn.release();
      return { payload: m.payload, headers: m.headers };
    }, u);
    await b.waitForFunction(() => window.__direct);
    await a.evaluate(async (u) => {
      const { Connection, Exchange } = window.kombu;
      const conn = new Connection(u);
      const tasks = new Exchange("tasks", { type: "direct" });
      await conn.Producer().publish({ job: 7 }, { exchange: tasks, routingKey: "a", headers: { wrong: true } });
      await conn.Producer().publish({ job: 8 }, { exchange: tasks, routingKey: "b", headers: { from: "page a" } });
      await conn.release();
    }, u);
    assert.deepEqual(await direct, { payload: { job: 8 }, headers: { from: "page a" } });
    // Errors keep their Kombu names across the gateway.
    const err = await b.evaluate(async (u) => {
      const { Connection } = window.kombu;
      const conn = new Connection(u);
      try {
        await conn.purge("missing");
      } catch (e) {
        return `${e.name}: ${e.message}`;
      } finally {
        await conn.release();
      }
      return "no error";
    }, u);
    assert.match(err, /^NotFound: .*missing/);
  } finally {
    await browser.close();
  }
});

// "kombu-wasm/gateway" in Chromium: the page downloads only its build (not kombu_ws_bg.wasm),
// a message goes through the gateway and back, and amqp+ws:// names the entry that has it.
test("kombu-wasm/gateway (gateway+ws:// only) in Chromium: a message through the gateway, its own build only", { skip: !existsSync(executablePath) && "no chromium" }, async () => {
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const page = await browser.newPage();
    const wasm = [];
    page.on("request", (r) => r.url().endsWith(".wasm") && wasm.push(new URL(r.url()).pathname));
    await page.goto(`http://${addr}/gateway.html?entry=gateway`);
    await page.waitForFunction(() => window.__ready);
    const out = await page.evaluate(async (u) => {
      const { Connection, Queue } = window.kombu;
      const conn = new Connection(u);
      const q = new Queue("one-transport", { durable: false });
      await conn.declare(q);
      await conn.Producer().publish({ hello: "gateway build" }, { routingKey: q.name });
      const m = await conn.Consumer([q]).next({ timeout: 10000 });
      await m.ack();
      let amqp;
      try {
        new Connection("amqp+ws://guest:guest@127.0.0.1:9//");
      } catch (e) {
        amqp = `${e.name}: ${e.message}`;
      }
      await conn.release();
      return { payload: m.payload, amqp };
    }, url("one-transport"));
    assert.deepEqual(out.payload, { hello: "gateway build" });
    assert.match(out.amqp, /^UnknownTransport: No such transport: "amqp\+ws" .*import from "kombu-wasm\/amqp", or from "kombu-wasm\/ws" for both/);
    assert.deepEqual(wasm, ["/pkg/wasm/kombu_gateway_bg.wasm"]);
  } finally {
    await browser.close();
  }
});

test("the playground works against the gateway by changing only the URL", { skip: !existsSync(executablePath) && "no chromium" }, async () => {
  const pgAddr = await start(join(repo, "www"));
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`http://${pgAddr}/`);
    await page.waitForFunction(() => window.__playgroundReady);
    const gw = `gateway+ws://${pgAddr}/gateway?vhost=/pg-${Date.now()}`;
    await page.fill("#url", gw);
    await page.click("#connect-form button");
    await page.waitForSelector(`#status:has-text('connected to gateway+ws://')`);
    const submit = async (form, fields) => {
      for (const [k, v] of Object.entries(fields)) {
        const el = page.locator(`${form} [name="${k}"]`);
        if ((await el.evaluate((e) => e.tagName)) === "SELECT") await el.selectOption(v);
        else await el.fill(String(v));
      }
      await page.click(`${form} button[type="submit"]`);
    };
    await submit("#exchange-form", { name: "logs", type: "topic" });
    await submit("#queue-form", { name: "errors" });
    await page.waitForSelector('#queues tr[data-queue="errors"]');
    await submit("#bind-form", { queue: "errors", exchange: "logs", routingKey: "*.error" });
    await page.waitForSelector("#bindings td:has-text('*.error')");
    await submit("#publish-form", { exchange: "logs", routingKey: "db.error", body: '{"via": "gateway"}', count: 2 });
    await page.waitForFunction(() => document.querySelector('#queues tr[data-queue="errors"] td:nth-child(2)')?.textContent === "2");
    await submit("#consume-form", { queue: "errors", prefetch: 5 });
    await page.waitForSelector(`#log li.deliver:has-text('{"via":"gateway"}')`);
    await page.screenshot({ path: join(repo, "artifacts", "playground-gateway.png"), fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test("the kombu command line and a browser see each other's messages", { skip: !existsSync(executablePath) && "no chromium" }, async () => {
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const u = url("cli");
    const page = await browser.newPage();
    await page.goto(`http://${addr}/gateway.html`);
    await page.waitForFunction(() => window.__ready);
    // CLI -> browser
    execFileSync(cli, ["declare", u, "queue", "to-browser"], { encoding: "utf8" });
    execFileSync(cli, ["publish", u, "--routing-key", "to-browser", "--header", "source=cli", '{"hello": "browser"}'], { encoding: "utf8" });
    const got = await page.evaluate(async (u) => {
      const { Connection, Queue } = window.kombu;
      const conn = new Connection(u);
      const m = await conn.Consumer([new Queue("to-browser")]).next({ timeout: 10000 });
      m.ack();
      await conn.release();
      return { payload: m.payload, headers: m.headers, contentType: m.contentType };
    }, u);
    assert.deepEqual(got, { payload: { hello: "browser" }, headers: { source: "cli" }, contentType: "application/json" });
    // browser -> CLI
    await page.evaluate(async (u) => {
      const { Connection, Queue } = window.kombu;
      const conn = new Connection(u);
      await conn.Producer().publish({ hello: "cli" }, { routingKey: "to-cli", declare: [new Queue("to-cli")], headers: { source: "browser" } });
      await conn.release();
    }, u);
    const line = execFileSync(cli, ["consume", u, "to-cli", "--count", "1", "--json", "--timeout", "10"], { encoding: "utf8" }).trim();
    const m = JSON.parse(line);
    assert.deepEqual(m.body, { hello: "cli" });
    assert.equal(m.headers.source, "browser");
  } finally {
    await browser.close();
  }
});
