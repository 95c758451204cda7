// Headless Chromium driven over the DevTools protocol with nothing but Page.navigate and
// Runtime.evaluate, for the browser benchmarks (browser.mjs, peers.mjs).
//
// Not through Playwright: Playwright enables the Network domain, so Chromium reports every
// WebSocket frame, payload included, to the driver — work a user's browser does not do, which
// cost the WebSocket paths about a third of their speed.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts Chromium and attaches to its first page. Returns { navigate(url), evaluate(expr),
// close() }; evaluate awaits the expression's promise and returns its value (JSON data), or
// throws with the page's exception.
export async function launch(executable = process.env.CHROMIUM ?? "/usr/bin/chromium") {
  if (!existsSync(executable)) throw new Error(`no Chromium at ${executable} (apt-get install chromium, or set CHROMIUM)`);
  const profile = mkdtempSync(join(tmpdir(), "kombu-bench-chromium-"));
  const chromium = spawn(executable, ["--headless", "--no-sandbox", "--disable-dev-shm-usage", "--remote-debugging-port=0", `--user-data-dir=${profile}`, "about:blank"], {
    stdio: ["ignore", "ignore", "pipe"],
    // Its own process group, so that its helper processes are stopped with it.
    detached: true,
  });
  const close = async (ws) => {
    process.removeListener("SIGINT", stop);
    process.removeListener("SIGTERM", stop);
    ws?.close();
    if (chromium.exitCode === null && chromium.signalCode === null) {
      const exited = new Promise((r) => chromium.once("exit", r));
      try {
        process.kill(-chromium.pid, "SIGTERM");
      } catch {
        chromium.kill();
      }
      await exited;
    }
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
  };
  // Chromium runs in its own process group, which outlives this process: stop it on ^C too.
  const stop = (signal) => close().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  let ws;
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
    ws = new WebSocket(pages.find((p) => p.type === "page").webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      ws.addEventListener("open", resolve);
      ws.addEventListener("error", () => reject(new Error("cannot reach Chromium's DevTools")));
    });
  } catch (e) {
    await close(ws);
    throw e;
  }
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
  return {
    call,
    navigate: (url) => call("Page.navigate", { url }),
    async evaluate(expression) {
      const r = await call("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true });
      if (r.error) throw new Error(`DevTools: ${r.error.message}`);
      if (r.result.exceptionDetails) {
        const d = r.result.exceptionDetails;
        throw new Error(`in the page: ${d.exception?.description ?? d.text}`);
      }
      return r.result.result.value;
    },
    close: () => close(ws),
  };
}
