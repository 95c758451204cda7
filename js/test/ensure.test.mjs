// Kombu's Connection.ensure / autoretry in JavaScript (issue #21 item 2), against a real
// kombu-gateway: `ensure(producer, producer.publish)` retries through the gateway stopped and
// restarted on the same port (its embedded broker keeps the durable queue in --data-dir) and
// then succeeds, calling errback with each wait; a channel error (404) is not retried; a
// connection that cannot come back gives up after maxRetries with an OperationalError.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { createServer } from "node:net";
import { startGateway, runNode, lastJson } from "./gateway-process.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const ws = JSON.stringify(join(here, "..", "ws.js"));
const dir = mkdtempSync(join(tmpdir(), "kombu-ensure-"));
const children = [];

after(() => {
  children.forEach((c) => c.kill("SIGKILL"));
  rmSync(dir, { recursive: true, force: true });
});

/** The gateway on `listen`, its embedded broker kept in `dir`; retried while the port of the
 * one just stopped is not free yet. */
async function gateway(listen) {
  for (let attempt = 0; ; attempt++) {
    try {
      const g = await startGateway(["--data-dir", join(dir, "data")], { listen });
      children.push(g.child);
      return g;
    } catch (e) {
      if (attempt >= 50) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

test("ensure(producer, producer.publish) retries through a gateway stopped and restarted, then succeeds; a 404 is not retried", { timeout: 120000 }, async () => {
  let g = await gateway("127.0.0.1:0");
  const addr = g.addr;
  const name = `kombu-wasm-test.ensure.${process.pid}.${Date.now()}`;
  const script = `
    import { Connection, Queue } from ${ws};
    import { createInterface } from "node:readline";
    const say = (o) => console.log(JSON.stringify(o));
    const input = createInterface({ input: process.stdin });
    const lines = input[Symbol.asyncIterator]();
    const conn = new Connection(${JSON.stringify(`gateway+ws://${addr}/gateway`)}, { confirmPublish: true });
    const q = new Queue(${JSON.stringify(name)}, { durable: true });
    await conn.declare(q);
    const producer = conn.Producer();
    let calls = 0;
    const waits = [];
    let revived = 0;
    const publish = conn.ensure(producer, function (...args) {
      calls++;
      return this.publish(...args);
    }, {
      maxRetries: 100, intervalStart: 100, intervalStep: 100, intervalMax: 300,
      errback: (error, interval) => {
        if (waits.length === 0) say({ step: "retrying" });
        waits.push([error.name, interval]);
      },
      onRevive: () => revived++,
    });
    await publish("before", { routingKey: q.name });
    say({ step: "published" });
    await lines.next(); // the parent stopped the gateway
    await publish("during", { routingKey: q.name });
    const during = { calls, revived, waits: [...waits] };
    // A channel error is not retried: it rejects at once, as it would again.
    calls = 0;
    waits.length = 0;
    const missing = await publish("lost", { exchange: ${JSON.stringify(name + ".missing")} }).then(() => "resolved", (e) => e.name);
    const notRetried = { calls, waits: waits.length, missing };
    const consumer = conn.Consumer([q]);
    const got = [];
    for (let i = 0; i < 2; i++) {
      const m = await consumer.next({ timeout: 20000 });
      got.push(m.payload);
      m.ack();
    }
    await consumer.cancel();
    await conn.delete(q);
    await conn.release();
    input.close();
    say({ step: "done", during, notRetried, got });
  `;
  const scriptDir = mkdtempSync(join(tmpdir(), "kombu-ensure-script-"));
  writeFileSync(join(scriptDir, "script.mjs"), script);
  const child = spawn(process.execPath, ["--experimental-websocket", "--no-warnings", join(scriptDir, "script.mjs")], { stdio: ["pipe", "pipe", "inherit"] });
  children.push(child);
  const exited = new Promise((resolve) => child.on("exit", resolve));
  let done;
  try {
    for await (const line of createInterface({ input: child.stdout })) {
      const msg = JSON.parse(line);
      if (msg.step === "published") {
        // Stopped: the next publish meets a lost connection.
        g.child.kill("SIGTERM");
        await new Promise((r) => g.child.once("exit", r));
        child.stdin.write("go\n");
      } else if (msg.step === "retrying") {
        // ensure is waiting to reconnect: the gateway comes back where it was.
        await new Promise((r) => setTimeout(r, 500));
        g = await gateway(addr);
      } else if (msg.step === "done") {
        done = msg;
      }
    }
    assert.equal(await exited, 0);
  } finally {
    rmSync(scriptDir, { recursive: true, force: true });
  }
  assert.ok(done, "the script finished");
  // The publish failed on the lost connection, waited, reconnected and ran again.
  assert.ok(done.during.calls >= 2, JSON.stringify(done));
  assert.ok(done.during.revived >= 1, JSON.stringify(done));
  assert.ok(done.during.waits.length >= 1, JSON.stringify(done));
  assert.deepEqual(done.during.waits[0][1], 0, "errback first says the failure (interval 0)");
  assert.ok(done.during.waits.every(([name]) => ["RecoverableConnectionError", "OperationalError", "ConnectionForced"].includes(name)), JSON.stringify(done));
  // The 404: one call, no wait, NotFound.
  assert.deepEqual(done.notRetried, { calls: 1, waits: 0, missing: "NotFound" }, JSON.stringify(done));
  // Both messages are there, once each.
  assert.deepEqual(done.got.sort(), ["before", "during"], JSON.stringify(done));
});

/** A port with nothing listening on it (bound then closed). */
const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

test("autoretry gives up after maxRetries with an OperationalError; bad options are refused", { timeout: 60000 }, async () => {
  const port = await freePort();
  const r = lastJson(
    runNode(`
      import { Connection, Queue } from ${ws};
      const conn = new Connection("gateway+ws://127.0.0.1:${port}/gateway", { connectTimeout: 2000 });
      const waits = [];
      let calls = 0;
      const declare = conn.autoretry((name) => { calls++; return conn.declare(new Queue(name, { durable: false })); }, {
        maxRetries: 2, intervalStart: 50, intervalStep: 50, intervalMax: 100,
        errback: (e, interval) => waits.push([e.name, interval]),
      });
      const outcome = await declare("nowhere").then(() => ["resolved"], (e) => [e.name, e.message, e.cause?.name]);
      const refused = [];
      for (const [fn, options] of [[() => {}, { max_retries: 3 }], [() => {}, { intervalStart: -1 }], [() => {}, { errback: 1 }], ["publish", {}]]) {
        try { conn.ensure(undefined, fn, options); refused.push("accepted"); } catch (e) { refused.push(e.name + ": " + e.message); }
      }
      console.log(JSON.stringify({ outcome, calls, waits, refused }));
    `),
  );
  assert.equal(r.outcome[0], "OperationalError", JSON.stringify(r));
  assert.ok(r.calls >= 1 && r.calls <= 3, JSON.stringify(r));
  assert.ok(r.waits.length >= 2, JSON.stringify(r));
  assert.equal(r.refused.length, 4);
  assert.match(r.refused[0], /^ValueError: ensure: unknown option max_retries/);
  assert.match(r.refused[1], /^ValueError: .*intervalStart/);
  assert.match(r.refused[2], /^ValueError: ensure: errback must be a function/);
  assert.match(r.refused[3], /^ValueError: .*fn must be a function/);
});

// Kombu's ensure drops the connection (`collect`) before reconnecting, so that a retry runs on
// a new connection, not on the one that just failed; and a function that keeps failing must
// not starve the event loop (with memory://, reconnecting never waits on I/O: without a pause
// between attempts, the retries ran as one endless chain of microtasks and froze the page).
test("ensure() reconnects before each retry and never starves the event loop", { timeout: 60000 }, () => {
  const core = JSON.stringify(join(here, "..", "index.js"));
  const r = lastJson(
    runNode(`
      import { Connection, OperationalError } from ${core};
      const conn = new Connection("memory://");
      await conn.connect();
      const events = [];
      conn.on("connected", () => events.push("connected"));
      // Fails until a timer says stop: the timer can only fire if the retries yield.
      let stop = false;
      setTimeout(() => (stop = true), 100);
      let calls = 0;
      const flaky = conn.autoretry(async () => {
        calls++;
        if (!stop) throw new OperationalError("connection reset (from the test)");
        return "done";
      }, { intervalStart: 0, intervalStep: 0, intervalMax: 0 });
      const result = await flaky();
      console.log(JSON.stringify({ result, calls, reconnects: events.length }));
      await conn.release();
    `),
  );
  assert.equal(r.result, "done", JSON.stringify(r));
  assert.ok(r.calls > 1, JSON.stringify(r));
  // One new connection per retry (the failed one was dropped first).
  assert.equal(r.reconnects, r.calls - 1, JSON.stringify(r));
});
