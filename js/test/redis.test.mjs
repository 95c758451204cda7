// The npm package in Node against a kombu-gateway fronting the local Redis
// (`--broker redis://...`): the README quick start runs with only the URL changed, and what it
// published went through Redis in Kombu's envelope (the gateway's redis:// store). Skipped
// when Redis is not listening, except under CI. In headless Chromium: the Celery example page
// (examples/celery-browser) calls a task on a real Celery worker, and the playground works
// through a gateway on Redis.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createConnection } from "node:net";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startGateway, runNode } from "./gateway-process.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const prefix = `kwjs.${process.pid}.${Date.now()}.`;

const redisUp = await new Promise((resolve) => {
  const s = createConnection({ host: "127.0.0.1", port: 6379 }, () => { s.end(); resolve(true); });
  s.on("error", () => resolve(false));
});
if (!redisUp && process.env.CI) throw new Error("Redis must run on 127.0.0.1:6379 under CI");
const skip = !redisUp && "no Redis on 127.0.0.1:6379";

let gateway;
let addr;

before(async () => {
  if (skip) return;
  ({ child: gateway, addr } = await startGateway(["--broker", `redis://127.0.0.1:6379/0?global_keyprefix=${prefix}&polling_interval=0.2`]));
});

after(() => {
  gateway?.kill("SIGTERM");
  if (skip) return;
  const keys = execFileSync("redis-cli", ["--scan", "--pattern", `${prefix}*`], { encoding: "utf8" }).split("\n").filter(Boolean);
  if (keys.length) execFileSync("redis-cli", ["del", ...keys]);
});

test("the README quick start runs in Node through a gateway on Redis", { skip }, () => {
  const readme = readFileSync(join(repo, "js", "README.md"), "utf8");
  const code = readme.slice(readme.indexOf("## Quick start")).match(/```js\n([\s\S]*?)```/)[1];
  const url = `gateway+ws://${addr}/gateway`;
  const out = runNode(code.replace('"memory://"', JSON.stringify(url)).replace('from "kombu-wasm"', `from ${JSON.stringify(join(repo, "js", "ws.js"))}`));
  assert.match(out, /name: '\/tmp\/lolcat1\.avi'/);
  // The exchange's binding table is Kombu's, in Redis.
  const rows = execFileSync("redis-cli", ["smembers", `${prefix}_kombu.binding.media`], { encoding: "utf8" });
  assert.match(rows, /video\x06\x16\x06\x16video/);
});

test("a message Node publishes through the gateway is in Redis as Kombu's envelope", { skip }, () => {
  const url = `gateway+ws://${addr}/gateway`;
  runNode(`
    import { Connection, Queue } from ${JSON.stringify(join(repo, "js", "ws.js"))};
    const conn = new Connection(${JSON.stringify(url)});
    await conn.Producer().publish({ from: "node" }, { routingKey: "js-kept", declare: [new Queue("js-kept")] });
    await conn.release();
  `);
  let raw = "";
  for (let i = 0; i < 100 && !raw; i++) {
    raw = execFileSync("redis-cli", ["rpop", `${prefix}js-kept`], { encoding: "utf8" }).trim();
    if (!raw) execFileSync("sleep", ["0.05"]);
  }
  const envelope = JSON.parse(raw);
  assert.equal(Buffer.from(envelope.body, "base64").toString(), '{"from": "node"}');
  assert.equal(envelope["content-type"], "application/json");
  assert.deepEqual(envelope.properties.delivery_info, { exchange: "", routing_key: "js-kept" });
  assert.equal(envelope.properties.body_encoding, "base64");
});

// Headless Chromium (playwright-core + Debian's chromium) on pages served by gateways on Redis.
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const noChromium = !existsSync(executablePath) && "no chromium";
const celery = process.env.KOMBU_PYTHON && join(dirname(process.env.KOMBU_PYTHON), "celery");
if (!skip && process.env.CI && !(celery && existsSync(celery))) throw new Error("celery must be installed in the interop venv (KOMBU_PYTHON) under CI");
const noCelery = !(celery && existsSync(celery)) && "no celery (KOMBU_PYTHON unset)";

async function withPage(www, fn) {
  const { child, addr: pageAddr } = await startGateway(["--www", www, "--broker", `redis://127.0.0.1:6379/0?global_keyprefix=${prefix}&polling_interval=0.2`]);
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await fn(page, pageAddr);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    child.kill("SIGTERM");
  }
}

test("a Celery worker runs a task called from a browser page; the result comes back over the reply queue", { skip: skip || noChromium || noCelery, timeout: 120000 }, async () => {
  const queue = `kwjs-tasks-${process.pid}`;
  const worker = spawn(celery, ["-A", "celery_app", "worker", "--pool=solo", "-Q", queue, "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel=WARNING"], {
    cwd: join(repo, "tests", "interop"),
    env: { ...process.env, CELERY_BROKER: "redis://127.0.0.1:6379/0", CELERY_KEYPREFIX: prefix },
    stdio: ["ignore", "ignore", "pipe"],
  });
  // The worker's log (it logs the failing task below on purpose): shown if the test fails.
  let workerLog = "";
  worker.stderr.on("data", (d) => (workerLog += d));
  try {
    // The example page (examples/celery-browser), as a user would open it.
    await withPage(join(repo, "examples", "celery-browser"), async (page, pageAddr) => {
      await page.goto(`http://${pageAddr}/`);
      await page.waitForFunction(() => window.__celery);
      await page.fill('#call [name="queue"]', queue);
      await page.click("#call button");
      await page.waitForSelector("#out:has-text('= 5')", { timeout: 90000 });
      assert.equal(await page.textContent("#out"), "kombu_wasm.add(2, 3) = 5");
      // Keyword arguments, and a task that fails is reported, not hung.
      const got = await page.evaluate(async (queue) => {
        const { conn, kombu, callTask } = window.__celery;
        const greet = await callTask(conn, kombu, "kombu_wasm.greet", ["browser"], { punctuation: "?" }, { queue });
        const failed = await callTask(conn, kombu, "kombu_wasm.add", [1, "x"], {}, { queue }).then(() => "no error", (e) => e.message);
        return { greet, failed };
      }, queue);
      assert.equal(got.greet, "hello browser?");
      assert.match(got.failed, /kombu_wasm\.add failed: TypeError/);
    });
  } catch (e) {
    console.error(workerLog);
    throw e;
  } finally {
    worker.kill("SIGKILL");
  }
});

test("the playground works through a gateway on Redis", { skip: skip || noChromium, timeout: 60000 }, async () => {
  await withPage(join(repo, "www"), async (page, pageAddr) => {
    await page.goto(`http://${pageAddr}/`);
    await page.waitForFunction(() => window.__playgroundReady);
    await page.fill("#url", `gateway+ws://${pageAddr}/gateway`);
    await page.click("#connect-form button");
    await page.waitForSelector("#status:has-text('connected to gateway+ws://')");
    const submit = async (form, fields) => {
      for (const [k, v] of Object.entries(fields)) {
        const el = page.locator(`${form} [name="${k}"]`);
        if ((await el.evaluate((e) => e.tagName)) === "SELECT") await el.selectOption(v);
        else await el.fill(String(v));
      }
      await page.click(`${form} button[type="submit"]`);
    };
    await submit("#exchange-form", { name: "pg-logs", type: "topic" });
    await submit("#queue-form", { name: "pg-errors" });
    await submit("#bind-form", { queue: "pg-errors", exchange: "pg-logs", routingKey: "*.error" });
    await page.waitForSelector("#log li:has-text(\"bound 'pg-errors'\")");
    await submit("#publish-form", { exchange: "pg-logs", routingKey: "db.error", body: '{"via": "redis"}', count: 2 });
    await submit("#consume-form", { queue: "pg-errors", prefetch: 5 });
    await page.waitForSelector(`#log li.deliver:has-text('{"via":"redis"}')`);
    // What the page did is in Redis, in Kombu's layout.
    const rows = execFileSync("redis-cli", ["smembers", `${prefix}_kombu.binding.pg-logs`], { encoding: "utf8" });
    assert.match(rows, /\*\.error\x06\x16\^\[\^\\\.\]\+\\\.error\$\x06\x16pg-errors/);
  });
});
