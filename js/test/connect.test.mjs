// Connecting fails fast and says why: a refused port, the HTTP status of a refused WebSocket
// upgrade, a server that never answers (connectTimeout, in milliseconds like every timeout in
// JavaScript); timeouts that make no sense are refused; plain ws:// and amqp:// URLs get a
// "did you mean". Each in a Node process of its own with WebSocket enabled (Node 20 has it
// behind a flag), run while this process serves the ports it connects to.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { Connection } from "../index.js";

const here = dirname(fileURLToPath(import.meta.url));
const ws = pathToFileURL(join(here, "..", "ws.js")).href;

/** Run `source` (an ES module; `kombu` is "kombu-wasm/ws") in a Node process with WebSocket,
 * without blocking this one (it serves the ports), and return the JSON it printed last. */
async function run(source) {
  const dir = mkdtempSync(join(tmpdir(), "kombu-wasm-connect-"));
  try {
    writeFileSync(join(dir, "script.mjs"), `import * as kombu from ${JSON.stringify(ws)};\n${source}`);
    const out = await new Promise((resolve, reject) => {
      execFile(process.execPath, ["--experimental-websocket", "--no-warnings", join(dir, "script.mjs")], { encoding: "utf8", timeout: 60000 }, (e, stdout, stderr) => (e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout)));
    });
    return JSON.parse(out.trim().split("\n").pop());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The error `connect()` rejects with, as "name: message", for `url` with `options`. */
const connectError = (url, options = {}) => `
  const c = new kombu.Connection(${JSON.stringify(url)}, ${JSON.stringify(options)});
  try { await c.connect(); console.log(JSON.stringify({ connected: true })); }
  catch (e) { console.log(JSON.stringify({ error: e.name + ": " + e.message })); }
`;

const listen = (server) => new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server.address().port)));

/** A port nothing listens on (taken, then released). */
async function freePort() {
  const server = createServer();
  const port = await listen(server);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test("a refused port rejects at once with the cause and host:port, not after the connect timeout", async () => {
  const port = await freePort();
  // A connect timeout far beyond the test's: only the refusal itself can end the wait.
  for (const url of [`gateway+ws://127.0.0.1:${port}/gateway`, `amqp+ws://guest:guest@127.0.0.1:${port}//`]) {
    const { error } = await run(connectError(url, { connectTimeout: 600000 }));
    assert.match(error, new RegExp(`^RecoverableConnectionError: cannot connect to ws://127\\.0\\.0\\.1:${port}/.*: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}$`));
  }
});

test("a refused WebSocket upgrade reports the HTTP status and what the server said", async () => {
  const server = createHttpServer((req, res) => res.writeHead(404).end());
  server.on("upgrade", (req, socket) => socket.end("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 17\r\nConnection: close\r\n\r\nunknown token xyz"));
  const port = await listen(server);
  try {
    const { error } = await run(connectError(`gateway+ws://127.0.0.1:${port}/gateway`, { connectTimeout: 600000 }));
    assert.match(error, new RegExp(`^RecoverableConnectionError: cannot connect to ws://127\\.0\\.0\\.1:${port}/gateway: the server refused the WebSocket upgrade: HTTP 403 Forbidden \\(unknown token xyz\\)$`));
  } finally {
    server.close();
  }
});

test("connectTimeout is milliseconds: a server that never answers fails after it", async () => {
  // Accepts TCP connections and never answers the upgrade.
  const sockets = [];
  const server = createServer((s) => sockets.push(s));
  const port = await listen(server);
  try {
    const { error } = await run(connectError(`gateway+ws://127.0.0.1:${port}/gateway`, { connectTimeout: 300 }));
    assert.match(error, /^RecoverableConnectionError: timed out after 0\.3s connecting to gateway\+ws:\/\/127\.0\.0\.1/);
  } finally {
    sockets.forEach((s) => s.destroy());
    server.close();
  }
});

test("timeouts that make no sense are refused, naming the option and the unit", () => {
  const refused = (options, pattern) => assert.throws(() => new Connection("memory://", options), (e) => e.name === "ValueError" && pattern.test(e.message));
  refused({ connectTimeout: -1 }, /connectTimeout must be a number of milliseconds >= 0 \(0: no timeout\), not -1/);
  refused({ connectTimeout: NaN }, /connectTimeout must be a finite number, not NaN/);
  refused({ connectTimeout: Infinity }, /connectTimeout must be a finite number, not Infinity/);
  refused({ connectTimeout: 0.5 }, /connectTimeout is in milliseconds: 0\.5 ms .*write 500/);
  refused({ connectTimeout: "5000" }, /connectTimeout must be a number of milliseconds >= 0 \(0: no timeout\), not "5000"/);
  new Connection("memory://", { connectTimeout: 0 });
  new Connection("memory://", { connectTimeout: 2500 });
});

test("retryPolicy times are milliseconds, refused when they make no sense", async () => {
  const conn = new Connection("memory:///retry-policy");
  const producer = conn.Producer({ routingKey: "q" });
  await assert.rejects(async () => producer.publish({}, { retryPolicy: { intervalStart: -5 } }), (e) => e.name === "ValueError" && /retryPolicy\.intervalStart must be a number of milliseconds >= 0, not -5/.test(e.message));
  await assert.rejects(async () => producer.publish({}, { retryPolicy: { timeout: NaN } }), (e) => e.name === "ValueError" && /retryPolicy\.timeout must be a finite number, not NaN/.test(e.message));
  await assert.rejects(async () => producer.publish({}, { retryPolicy: { interval_start: 1 } }), (e) => e.name === "ValueError" && /retryPolicy: unknown key interval_start: write intervalStart \(times in milliseconds\)/.test(e.message));
  await producer.publish({}, { retryPolicy: { intervalStart: 0, intervalStep: 200, intervalMax: 1000, maxRetries: 3, timeout: 5000 } });
  await conn.release();
});

test("reconnect and ensureConnection retry policies are milliseconds too, refused when they make no sense", async () => {
  const refused = (e, pattern) => e.name === "ValueError" && pattern.test(e.message);
  assert.throws(() => new Connection("memory://", { reconnect: { intervalStart: -5 } }), (e) => refused(e, /retryPolicy\.intervalStart must be a number of milliseconds >= 0, not -5/));
  assert.throws(() => new Connection("memory://", { reconnect: { interval_max: 1 } }), (e) => refused(e, /retryPolicy: unknown key interval_max: write intervalMax \(times in milliseconds\)/));
  assert.throws(() => new Connection("memory://", { reconnect: "forever" }), (e) => refused(e, /retryPolicy must be an object, not string/));
  const conn = new Connection("memory:///ensure-ms", { reconnect: { intervalStart: 100, intervalStep: 200, intervalMax: 1000, timeout: 5000 } });
  await assert.rejects(conn.ensureConnection({ retryPolicy: { timeout: -1 } }), (e) => refused(e, /retryPolicy\.timeout must be a number of milliseconds >= 0, not -1/));
  await assert.rejects(conn.ensureConnection({ retryPolicy: { max_retries: 1 } }), (e) => refused(e, /unknown key max_retries: write maxRetries/));
  await conn.ensureConnection({ retryPolicy: { intervalStart: 0, maxRetries: 1 } });
  await conn.release();
  // A refused port, retried: the waits the "reconnecting" events announce are the policy's
  // milliseconds (as seconds, 250 would be minutes and the test would time out).
  const port = await freePort();
  const r = await run(`
    const c = new kombu.Connection("gateway+ws://127.0.0.1:${port}/gateway");
    const intervals = [];
    c.on("reconnecting", ({ interval }) => intervals.push(interval));
    const error = await c.ensureConnection({ retryPolicy: { intervalStart: 250, intervalStep: 250, intervalMax: 500, maxRetries: 3 } }).then(() => "connected", (e) => e.name);
    console.log(JSON.stringify({ error, intervals }));
  `);
  assert.equal(r.error, "OperationalError", JSON.stringify(r));
  assert.deepEqual(r.intervals, [250, 500, 750], JSON.stringify(r));
});

test("plain ws:// and amqp:// URLs get a did-you-mean naming the browser schemes", async () => {
  const names = (url) => {
    try {
      new Connection(url);
    } catch (e) {
      return `${e.name}: ${e.message}`;
    }
  };
  assert.match(names("ws://host:8765/gateway"), /^UnknownTransport: .*did you mean gateway\+ws:\/\/host:port\/gateway .* or amqp\+ws:\/\/user:password@host:port\/vhost .*"kombu-wasm\/ws"/);
  assert.match(names("wss://host/gateway"), /did you mean gateway\+wss:\/\/.* or amqps\+wss:\/\//);
  assert.match(names("amqp://guest:guest@host//"), /^UnknownTransport: .*AMQP over WebSockets only \(browsers cannot open TCP sockets\): did you mean amqp\+ws:\/\//);
  assert.match(names("amqps://host//"), /did you mean amqps\+wss:\/\//);
  // The WebSocket build says the same, without sending the app to another import.
  const out = await run(`
    const out = {};
    for (const url of ["ws://host:8765/gateway", "amqp://guest:guest@host//"]) {
      try { new kombu.Connection(url); } catch (e) { out[url] = e.name + ": " + e.message; }
    }
    console.log(JSON.stringify(out));
  `);
  assert.match(out["ws://host:8765/gateway"], /^UnknownTransport: .*did you mean gateway\+ws:\/\/host:port\/gateway/);
  assert.doesNotMatch(out["ws://host:8765/gateway"], /kombu-wasm\/ws/);
  assert.match(out["amqp://guest:guest@host//"], /did you mean amqp\+ws:\/\//);
});
