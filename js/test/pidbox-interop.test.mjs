// kombu.pidbox across languages: kombu-gateway on the local RabbitMQ, the npm package (Node,
// gateway+ws://) on one side and Python's kombu.pidbox (pyamqp, tests/interop/pidbox_peer.py)
// on the other — a JavaScript Mailbox calling a Python Node, then a Python Mailbox calling a
// JavaScript Node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { gatewayForPythonPeers, runNode, lastJson } from "./gateway-process.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const ws = join(repo, "js", "ws.js");
const peer = join(repo, "tests", "interop", "pidbox_peer.py");
const peers = gatewayForPythonPeers();

/** Resolve when `child` printed "ready"; reject if it exits first. */
const ready = (child, what) => new Promise((resolve, reject) => {
  let out = "";
  child.stdout.on("data", (d) => { out += d; if (out.includes("ready")) resolve(); });
  child.on("exit", (code) => reject(new Error(`${what} exited with ${code} before it was ready: ${out}`)));
});

test("pidbox: a JavaScript Mailbox calls a Python Node; a Python Mailbox calls a JavaScript Node", { timeout: 120000 }, async (t) => {
  if (peers.why) return t.skip(peers.why);
  const id = `${process.pid}-${Date.now()}`;
  const ns = `kombu-wasm-test.${id}`;
  const url = `gateway+ws://${peers.addr}/gateway`;

  // 1. The node in Python, the mailbox in JavaScript.
  const pyNode = spawn(peers.python, [peer, "node", ns, "py@test"], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    await ready(pyNode, "the Python node");
    const out = runNode(`
      import { Connection, Mailbox } from ${JSON.stringify(ws)};
      const conn = new Connection(${JSON.stringify(url)});
      const mailbox = new Mailbox(${JSON.stringify(ns)}).bind(conn);
      const added = await mailbox.call(["py@test"], "add", { a: 20, b: 22 }, { timeout: 10000 });
      const stopped = await mailbox.call(["py@test"], "stop", {}, { timeout: 10000 });
      await conn.release();
      console.log(JSON.stringify({ added, stopped }));
    `, { timeout: 60000 });
    assert.deepEqual(lastJson(out), { added: [{ "py@test": 42 }], stopped: [{ "py@test": "stopping" }] });
  } finally {
    pyNode.kill();
  }

  // 2. The node in JavaScript, the mailbox in Python.
  const dir = mkdtempSync(join(tmpdir(), "kombu-wasm-pidbox-"));
  writeFileSync(join(dir, "node.mjs"), `
    import { Connection, Mailbox, TimeoutError } from ${JSON.stringify(ws)};
    const conn = new Connection(${JSON.stringify(url)});
    let calls = 0;
    const node = new Mailbox(${JSON.stringify(ns)}).bind(conn).Node("js@test", { handlers: {
      add: (state, { a, b }) => { calls++; return a + b; },
      hello: async (state, { who }) => { calls++; return "hello, " + who; },
    } });
    const consumer = await node.listen();
    console.log("ready");
    for (const end = Date.now() + 60000; calls < 2 && Date.now() < end;) {
      try { await conn.drainEvents({ timeout: 500 }); } catch (e) { if (!(e instanceof TimeoutError)) throw e; }
    }
    await new Promise((r) => setTimeout(r, 500)); // the last reply goes out
    await consumer.cancel();
    await conn.release();
  `);
  const jsNode = spawn(process.execPath, ["--experimental-websocket", "--no-warnings", join(dir, "node.mjs")], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    await ready(jsNode, "the JavaScript node");
    const out = await new Promise((resolve, reject) => {
      execFile(peers.python, [peer, "call", ns, "js@test"], { timeout: 60000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err}\n${stderr}`)) : resolve(stdout)));
    });
    assert.deepEqual(lastJson(out), { add: [{ "js@test": 5 }], hello: [{ "js@test": "hello, python" }] });
  } finally {
    jsNode.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});
