// The gateway's /amqp relay: kombu-gateway on the local RabbitMQ (--broker amqp://...) with a
// token file, and a third-party browser AMQP client (@cloudamqp/amqp-client's
// AMQPWebSocketClient) in Chromium speaking AMQP 0-9-1 over WebSocket through it: logging in
// with the gateway token (never RabbitMQ's credentials), publishing and getting, consuming,
// and refused where the identity's permissions say no.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, writeFileSync, rmSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startGateway, startNode, rabbitUp, checkAckMerging, runNode, lastJson } from "./gateway-process.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TOKEN = "relay-test-token-1";
const APP_TOKEN = "relay-app-token-1";

let gateway;
let addr;
let dir;
let skip = false;

before(async () => {
  if (!(await rabbitUp())) {
    assert.ok(!process.env.CI, "RabbitMQ must run on 127.0.0.1:5672 under CI");
    skip = true;
    return;
  }
  dir = mkdtempSync(join(tmpdir(), "kombu-relay-"));
  const tokens = join(dir, "tokens.toml");
  writeFileSync(
    tokens,
    `[[identity]]\nname = "browser"\ntoken = "${TOKEN}"\nvhosts = ["/"]\nconfigure = 'kw-relay\\..*'\nwrite = 'kw-relay\\..*|amq\\.default'\nread = 'kw-relay\\..*'\n` +
      `[[identity]]\nname = "app"\ntoken = "${APP_TOKEN}"\nvhosts = ["/"]\n`,
  );
  ({ child: gateway, addr } = await startGateway(["--broker", "amqp://guest:guest@127.0.0.1:5672//", "--tokens", tokens, "--www", join(here, "site")]));
});

after(() => {
  gateway?.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("a third-party browser AMQP client works through the /amqp relay, within its permissions", { skip: !existsSync(executablePath) && "no chromium", timeout: 60000 }, async (t) => {
  if (skip) return t.skip("no RabbitMQ");
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const page = await browser.newPage();
    await page.goto(`http://${addr}/amqp.html`);
    await page.waitForFunction(() => window.__ready);
    const r = await page.evaluate(async ({ token, id }) => {
      const { AMQPWebSocketClient } = window.amqp;
      const url = `ws://${location.host}/amqp`;
      const out = {};
      let step = "connect";
      try {
      const conn = await new AMQPWebSocketClient(url, "/", "anyone", token).connect();
      step = "channel";
      const ch = await conn.channel();
      const q = `kw-relay.${id}`;
      step = "declare";
      await ch.queueDeclare(q, { durable: false });
      await ch.basicPublish("", q, "hello through the relay", { contentType: "text/plain", headers: { from: "browser" } });
      step = "get";
      const got = await ch.basicGet(q, { noAck: true });
      out.got = got && { body: got.bodyToString(), contentType: got.properties.contentType, headers: { ...got.properties.headers } };
      step = "consume";
      const received = new Promise((resolve) => {
        ch.basicConsume(q, { noAck: false }, (msg) => {
          msg.ack();
          resolve(msg.bodyToString());
        });
      });
      await ch.basicPublish("", q, "second", {});
      out.consumed = await received;
      // A queue outside the identity's permissions: the channel is closed with 403.
      step = "refusal";
      const ch2 = await conn.channel();
      try {
        await ch2.queueDeclare("admin.secrets", { durable: false });
        out.refused = "not refused";
      } catch (e) {
        out.refused = String(e.message ?? e);
      }
      // The connection and other channels go on.
      step = "after the refusal";
      const ch3 = await conn.channel();
      const { messageCount } = await ch3.queueDeclare(q, { passive: true });
      out.after = messageCount;
      await ch3.queueDelete(q);
      step = "close";
      await conn.close();
      // A wrong token is refused at login.
      try {
        await new AMQPWebSocketClient(url, "/", "anyone", "not-a-token").connect();
        out.badLogin = "not refused";
      } catch (e) {
        out.badLogin = String(e.message ?? e);
      }
      } catch (e) {
        // The client's errors hold references to its connection: report them as text.
        throw new Error(`${step}: ${e?.message ?? e}`);
      }
      // As JSON text: whatever the client returned must be plain data, and if it is not,
      // the error says so here rather than in Playwright's serializer.
      return JSON.stringify(out);
    }, { token: TOKEN, id: `${process.pid}-${Date.now()}` }).then((text) => JSON.parse(text));
    assert.deepEqual(r.got, { body: "hello through the relay", contentType: "text/plain", headers: { from: "browser" } });
    assert.equal(r.consumed, "second");
    assert.match(r.refused, /ACCESS_REFUSED.*configure access to queue 'admin\.secrets'/);
    assert.equal(r.after, 0);
    assert.match(r.badLogin, /ACCESS_REFUSED|unknown token/);
  } finally {
    await browser.close();
  }
});

// kombu-wasm's own amqp+ws:// transport (the core's AMQP client over the browser WebSocket)
// through the same relay: the package README's quick start with only the URL changed, in
// Chromium and in Node.
function quickStart(url) {
  const readme = readFileSync(join(repo, "js", "README.md"), "utf8");
  const code = readme.slice(readme.indexOf("## Quick start")).match(/```js\n([\s\S]*?)```/)[1];
  assert.match(code, /new Connection\("memory:\/\/"\)/);
  // Unique names on the shared RabbitMQ; the queue is deleted afterwards by the caller.
  return code.replace('"memory://"', JSON.stringify(url));
}

test("the quick start runs over amqp+ws:// through the relay, in Chromium and in Node", { skip: !existsSync(executablePath) && "no chromium", timeout: 60000 }, async (t) => {
  if (skip) return t.skip("no RabbitMQ");
  const url = `amqp+ws://anyone:${APP_TOKEN}@${addr}//`;
  // Node
  const out = runNode(quickStart(url).replace('from "kombu-wasm"', `from ${JSON.stringify(join(repo, "js", "ws.js"))}`));
  assert.match(out, /name: '\/tmp\/lolcat1\.avi'/);
  // Chromium
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const page = await browser.newPage();
    await page.goto(`http://${addr}/gateway.html`);
    await page.waitForFunction(() => window.__ready);
    const r = await page.evaluate(async (url) => {
      const { Connection, Exchange, Queue } = window.kombu;
      const media = new Exchange("media", { type: "direct", durable: true });
      const video = new Queue("video", { exchange: media, routingKey: "video" });
      const conn = new Connection(url);
      const producer = conn.Producer({ serializer: "json" });
      await producer.publish({ name: "/tmp/lolcat1.avi", size: 1301013 }, { exchange: media, routingKey: "video", declare: [video] });
      const consumer = conn.Consumer([video], { accept: ["json"] });
      const m = await consumer.next({ timeout: 10000 });
      m.ack();
      const out = { payload: m.payload, exchange: m.deliveryInfo.exchange, transport: conn.info().transport };
      // Errors keep Kombu's names over AMQP too.
      try {
        await conn.purge("kw-relay-missing-queue");
      } catch (e) {
        out.error = `${e.name}: ${e.message}`;
      }
      await conn.release();
      const cleanup = new Connection(url);
      await cleanup.delete(video);
      await cleanup.delete(media);
      await cleanup.release();
      return out;
    }, url);
    assert.deepEqual(r.payload, { name: "/tmp/lolcat1.avi", size: 1301013 });
    assert.equal(r.exchange, "media");
    assert.match(r.error, /^NotFound: .*kw-relay-missing-queue/);
  } finally {
    await browser.close();
  }
});

// Acks of the oldest delivery go out as `multiple`, and those issued in one turn of the event
// loop as one frame: acks out of order, rejects and a requeue in between must still settle
// exactly what they name. A wrong `multiple` would ack a message left unacknowledged (it would
// not come back after the connection closes) or name a tag RabbitMQ no longer knows
// (PRECONDITION_FAILED closes the channel and every delivery of it comes back).
test("amqp+ws:// acks merged into one settle exactly what was acked", { timeout: 60000 }, async (t) => {
  if (skip) return t.skip("no RabbitMQ");
  const url = `amqp+ws://anyone:${APP_TOKEN}@${addr}//`;
  const script = `
      import { Connection, Exchange, Queue } from ${JSON.stringify(join(repo, "js", "ws.js"))};
      const name = "kw-relay.acks." + Math.random().toString(36).slice(2);
      const x = new Exchange(name, { type: "direct", durable: false, autoDelete: true });
      const q = new Queue(name, { exchange: x, routingKey: "k", durable: false });
      const text = (m) => new TextDecoder().decode(m.body);
      const conn = new Connection(${JSON.stringify(url)});
      await conn.declare(q);
      const producer = conn.Producer();
      for (let i = 0; i < 60; i++) await producer.publish(String(i), { exchange: x, routingKey: "k" });
      const consumer = conn.Consumer([q], { prefetchCount: 100 });
      const held = [];
      let requeued = false;
      let seen = 0;
      for await (const m of consumer) {
        const i = Number(text(m));
        if (i % 10 === 3) held.push(m);
        else if (i % 10 === 7) m.reject(false);
        else if (i === 20 && !requeued) {
          requeued = true;
          m.requeue();
          continue;
        } else if (i % 10 === 9 && i < 30) {
          // left unacknowledged: comes back when the connection closes
        } else m.ack();
        if (++seen === 60) break;
      }
      for (const m of held.reverse()) m.ack();
      await consumer.cancel();
      await conn.release();
      const again = new Connection(${JSON.stringify(url)});
      const c = again.Consumer([q], { prefetchCount: 100 });
      const back = [];
      while (back.length < 3) {
        const m = await c.next({ timeout: 5000 });
        back.push(text(m));
        m.ack();
      }
      let extra = null;
      try {
        extra = text(await c.next({ timeout: 500 }));
      } catch (e) {
        if (e.name !== "TimeoutError") throw e;
      }
      await c.cancel();
      await again.delete(q);
      await again.delete(x);
      await again.release();
      console.log(JSON.stringify({ back, extra }));
    `;
  assert.deepEqual(lastJson(runNode(script)), { back: ["9", "19", "29"], extra: null });
});

// An ack the carrier holds back alone, for more acks to merge into it, must reach RabbitMQ by
// itself: a Node process acks one of two deliveries, waits, and exits without closing its
// connection. Only the unacked one may come back (the held ack, had it never been sent, would
// have died with the process and both would come back).
test("amqp+ws:// an ack held back alone reaches RabbitMQ by itself", { timeout: 60000 }, async (t) => {
  if (skip) return t.skip("no RabbitMQ");
  const url = `amqp+ws://anyone:${APP_TOKEN}@${addr}//`;
  const name = `kw-relay.lone.${process.pid}.${Date.now()}`;
  const prelude = `
    import { Connection, Exchange, Queue } from ${JSON.stringify(join(repo, "js", "ws.js"))};
    const x = new Exchange(${JSON.stringify(name)}, { type: "direct", durable: false });
    const q = new Queue(${JSON.stringify(name)}, { exchange: x, routingKey: "k", durable: false });
    const text = (m) => new TextDecoder().decode(m.body);
    const conn = new Connection(${JSON.stringify(url)});
  `;
  const run = (body) => lastJson(runNode(prelude + body));
  const got = run(`
    await conn.declare(q);
    const producer = conn.Producer();
    for (const body of ["acked", "kept"]) await producer.publish(body, { exchange: x, routingKey: "k" });
    const got = [];
    for await (const m of conn.Consumer([q], { prefetchCount: 10 })) {
      got.push(text(m));
      if (text(m) === "acked") m.ack();
      if (got.length === 2) break;
    }
    await new Promise((r) => setTimeout(r, 300));
    console.log(JSON.stringify(got));
    process.exit(0);
  `);
  assert.deepEqual(got, ["acked", "kept"]);
  const back = run(`
    const c = conn.Consumer([q], { prefetchCount: 10 });
    const back = [text(await c.next({ timeout: 5000 }))];
    try {
      back.push(text(await c.next({ timeout: 500 })));
    } catch (e) {
      if (e.name !== "TimeoutError") throw e;
    }
    await c.cancel();
    await conn.delete(q);
    await conn.delete(x);
    await conn.release();
    console.log(JSON.stringify(back));
  `);
  assert.deepEqual(back, ["kept"], "only the unacknowledged delivery came back");
});

// Merged acks over gateway+ws:// with RabbitMQ behind the gateway: there a consumer without acks
// is consumed upstream with acks the gateway sends itself, which a merged ack must never cover
// (RabbitMQ would close the channel on the second ack of a tag).
test("gateway+ws:// acks go out merged and settle exactly what was settled, on RabbitMQ", { timeout: 60000 }, (t) => {
  if (skip) return t.skip("no RabbitMQ");
  checkAckMerging(`gateway+ws://${addr}/gateway?vhost=/&token=${APP_TOKEN}`, `http://${addr}/metrics`, `kw-relay.acks.${process.pid}.${Date.now()}`);
});

// Heartbeats over amqp+ws://: negotiated with RabbitMQ through the relay, sent by a timer in the
// page/Node (RabbitMQ closes a connection that is silent for two intervals), and a broker that
// goes silent — the gateway process stopped with SIGSTOP, its sockets left open — is detected
// within two intervals and fails the connection with the reason.
test("amqp+ws:// heartbeats keep an idle connection open and detect a silent broker", { timeout: 60000 }, async (t) => {
  if (skip) return t.skip("no RabbitMQ");
  const queue = `kw-relay.hb.${process.pid}.${Date.now()}`;
  const script = `
    import { Connection, Queue } from ${JSON.stringify(join(repo, "js", "ws.js"))};
    import { createInterface } from "node:readline";
    const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
    const conn = new Connection(${JSON.stringify(`amqp+ws://anyone:${APP_TOKEN}@${addr}//`)}, { heartbeat: 1 });
    await conn.connect();
    // Idle for 4 s, four times the interval RabbitMQ allows without traffic from us: waiting
    // for events must end in a timeout, not in a lost connection (a later call would
    // silently reconnect, so this is where a missing heartbeat shows).
    try {
      await conn.drainEvents({ timeout: 4000 });
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
    console.log("stop the broker");
    await lines.next();
    const t0 = Date.now();
    try {
      await conn.drainEvents({ timeout: 10000 });
      console.log("no error");
    } catch (e) {
      console.log("failed after " + (Date.now() - t0) + " ms: " + e.name + ": " + e.message);
    }
    process.exit(0);
  `;
  const client = startNode(script);
  const out = () => client.output();
  try {
    await client.seen(/stop the broker/);
    assert.match(out(), /idle: TimeoutError/);
    assert.match(out(), /alive \{"idle":"survived"\}/);
    gateway.kill("SIGSTOP");
    client.send("go");
    await client.seen(/failed after|no error/);
    const m = out().match(/failed after (\d+) ms: (.*)/);
    assert.ok(m, out());
    assert.match(m[2], /missed heartbeats from the broker/);
    // Two intervals of silence (2 s), noticed at the next half-interval tick.
    assert.ok(Number(m[1]) < 5000, out());
  } finally {
    gateway.kill("SIGCONT");
    client.stop();
  }
});
