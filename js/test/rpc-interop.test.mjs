// The seed's RPC example across languages: kombu-gateway on the local RabbitMQ, a browser
// (Chromium, the npm package over gateway+ws://) on one side and Python kombu (pyamqp,
// tests/interop/rpc_peer.py with the seed's ConsumerProducerMixin worker) on the other —
// the server in Python and the client in the browser, then the reverse.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { gatewayForPythonPeers } from "./gateway-process.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const peer = join(repo, "tests", "interop", "rpc_peer.py");

const peers = gatewayForPythonPeers(["--www", join(here, "site")]);

async function page(browser) {
  const p = await browser.newPage();
  await p.goto(`http://${peers.addr}/gateway.html`);
  await p.waitForFunction(() => window.__ready);
  return p;
}

test("RPC: the server in Python, the client in the browser; then the reverse", { skip: !existsSync(executablePath) && "no chromium", timeout: 90000 }, async (t) => {
  if (peers.why) return t.skip(peers.why);
  const id = `${process.pid}-${Date.now()}`;
  const url = `gateway+ws://${peers.addr}/gateway?vhost=/`;
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    // 1. Python serves, the browser asks.
    const rpcQueue = `kombu-wasm-test.rpc-py.${id}`;
    const server = spawn(peers.python, [peer, "server", rpcQueue, "1"], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise((resolve, reject) => {
      server.stdout.on("data", (d) => String(d).includes("ready") && resolve());
      server.on("exit", (code) => reject(new Error(`the Python RPC server exited with ${code}`)));
    });
    const b = await page(browser);
    const answer = await b.evaluate(async ({ url, rpcQueue, id }) => {
      const { Connection, Queue } = window.kombu;
      const conn = new Connection(url);
      const replies = new Queue(`kombu-wasm-test.rpc-reply.${id}`, { exclusive: true, autoDelete: true, durable: false });
      await conn.declare(replies);
      const consumer = conn.Consumer([replies], { accept: ["json"] });
      await conn.Producer().publish({ n: 10 }, { routingKey: rpcQueue, replyTo: replies.name, correlationId: "browser-1", serializer: "json" });
      const m = await consumer.next({ timeout: 15000 });
      m.ack();
      const out = { payload: m.payload, correlationId: m.properties.correlation_id };
      await conn.release();
      return out;
    }, { url, rpcQueue, id });
    assert.deepEqual(answer, { payload: { result: 55 }, correlationId: "browser-1" });
    await new Promise((resolve) => (server.exitCode !== null ? resolve() : server.on("exit", resolve)));

    // 2. The browser serves (as the seed's worker does), Python asks.
    const browserQueue = `kombu-wasm-test.rpc-browser.${id}`;
    const served = b.evaluate(async ({ url, browserQueue }) => {
      const { Connection, Queue } = window.kombu;
      const conn = new Connection(url);
      const queue = new Queue(browserQueue, { durable: false });
      await conn.declare(queue);
      window.__serving = true;
      const consumer = conn.Consumer([queue], { accept: ["json"], prefetchCount: 1 });
      const m = await consumer.next({ timeout: 30000 });
      const fib = (n) => { let [a, c] = [0, 1]; for (let i = 0; i < n; i++) [a, c] = [c, a + c]; return a; };
      await conn.Producer().publish({ result: fib(m.payload.n) }, { exchange: "", routingKey: m.properties.reply_to, correlationId: m.properties.correlation_id, serializer: "json" });
      m.ack();
      await conn.delete(queue);
      await conn.release();
      return m.payload.n;
    }, { url, browserQueue });
    await b.waitForFunction(() => window.__serving);
    const out = await new Promise((resolve, reject) => {
      execFile(peers.python, [peer, "client", browserQueue, "12"], { timeout: 30000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err}\n${stderr}`)) : resolve(stdout)));
    });
    const reply = JSON.parse(out.trim().split("\n").pop());
    assert.deepEqual(reply.payload, { result: 144 });
    assert.equal(await served, 12);
    // The Python server's queue is left to delete.
    await b.evaluate(async ({ url, rpcQueue }) => {
      const { Connection, Queue } = window.kombu;
      const conn = new Connection(url);
      await conn.delete(new Queue(rpcQueue, { durable: false }));
      await conn.release();
    }, { url, rpcQueue });
  } finally {
    await browser.close();
  }
});
