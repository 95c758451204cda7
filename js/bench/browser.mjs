// `node --experimental-websocket js/bench/browser.mjs [N] [URL]`: the round trip in headless
// Chromium, on memory:// (default) or a broker URL (gateway+ws://..., amqp+ws://...).
//
// Chromium is started as it is, and the page asked for its result over the DevTools protocol
// with nothing but Runtime.evaluate. Not through Playwright: Playwright enables the Network
// domain, so Chromium reports every WebSocket frame, payload included, to the driver — work
// a user's browser does not do, which cost the WebSocket paths about a third of their speed.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../test/serve.mjs";

const n = Number(process.argv[2] ?? 20000);
const url = process.argv[3] ?? "memory://";
const executable = process.env.CHROMIUM ?? "/usr/bin/chromium";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const { server, base } = await serve();
const profile = mkdtempSync(join(tmpdir(), "kombu-bench-chromium-"));
const chromium = spawn(executable, ["--headless", "--no-sandbox", "--disable-dev-shm-usage", "--remote-debugging-port=0", `--user-data-dir=${profile}`, "about:blank"], {
  stdio: ["ignore", "ignore", "pipe"],
  // Its own process group, so that its helper processes are stopped with it.
  detached: true,
});
try {
  // Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..." on stderr.
  const devtools = await new Promise((resolve, reject) => {
    let err = "";
    chromium.stderr.on("data", (d) => {
      err += d;
      const m = err.match(/DevTools listening on ws:\/\/([^/\s]+)\//);
      if (m) resolve(m[1]);
    });
    chromium.on("exit", (code) => reject(new Error(`chromium exited (${code}): ${err}`)));
  });
  const pages = await (await fetch(`http://${devtools}/json/list`)).json();
  const ws = new WebSocket(pages.find((p) => p.type === "page").webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve);
    ws.addEventListener("error", () => reject(new Error("cannot reach Chromium's DevTools")));
  });
  let id = 0;
  const waiting = new Map();
  ws.addEventListener("message", (e) => {
    const m = JSON.parse(e.data);
    waiting.get(m.id)?.(m);
    waiting.delete(m.id);
  });
  const call = (method, params = {}) =>
    new Promise((resolve) => {
      waiting.set(++id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await call("Page.navigate", { url: `${base}/site/bench.html?n=${n}&url=${encodeURIComponent(url)}` });
  const deadline = Date.now() + 300000;
  let result = null;
  while (!result) {
    if (Date.now() > deadline) throw new Error("the benchmark page gave no result in 5 minutes");
    // Rarely: the page being measured shares the machine.
    await sleep(250);
    const r = await call("Runtime.evaluate", { expression: "JSON.stringify(window.__result ?? window.__error ?? null)", returnByValue: true });
    result = JSON.parse(r.result?.result?.value ?? "null");
  }
  if (result.error) throw new Error(`the benchmark page failed: ${result.error}`);
  console.log(JSON.stringify(result));
  ws.close();
} finally {
  if (chromium.exitCode === null) {
    const exited = new Promise((r) => chromium.once("exit", r));
    try {
      process.kill(-chromium.pid, "SIGTERM");
    } catch {
      chromium.kill();
    }
    await exited;
  }
  server.close();
  // Helper processes may still be writing to the profile for a moment after the browser exits.
  for (let attempt = 1; ; attempt++) {
    try {
      rmSync(profile, { recursive: true, force: true });
      break;
    } catch (e) {
      if (attempt === 20) {
        console.error(`could not remove the Chromium profile ${profile}: ${e.message}`);
        break;
      }
      await sleep(100);
    }
  }
}
