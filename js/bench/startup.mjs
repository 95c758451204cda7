// `node js/bench/startup.mjs [RUNS]`: the npm package's start-up in headless Chromium — the
// time from `import("kombu-wasm")` (fetch, compile and instantiate the .wasm, load the glue)
// to the first publish on memory:// resolved, for the core module ("kombu-wasm") and the
// WebSocket build ("kombu-wasm/ws"). A new browser context (empty cache) per run; median of RUNS (default 7).
// Prints one JSON line per module with the median and the .wasm's gzipped size.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "../test/serve.mjs";

const runs = Number(process.argv[2] ?? 7);
const pkgDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const { server, base } = await serve();
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox", "--disable-dev-shm-usage"] });
try {
  for (const [entry, wasm] of [["index.js", "kombu_bg.wasm"], ["ws.js", "kombu_ws_bg.wasm"]]) {
    const times = [];
    for (let i = 0; i < runs; i++) {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(`${base}/blank`); // same origin, nothing loaded (a 404 page)
      times.push(await page.evaluate(async (src) => {
        const t0 = performance.now();
        const { Connection } = await import(src);
        const conn = new Connection("memory://");
        await conn.Producer().publish({ hello: "world" }, { routingKey: "startup" });
        const t = performance.now() - t0;
        await conn.release();
        return t;
      }, `${base}/${entry}`));
      await context.close();
    }
    times.sort((a, b) => a - b);
    const gz = gzipSync(readFileSync(join(pkgDir, "wasm", wasm)), { level: 9 }).length;
    console.log(JSON.stringify({ module: entry === "index.js" ? "kombu-wasm" : "kombu-wasm/ws", wasm_gzip_bytes: gz, median_ms: Math.round(times[times.length >> 1]), min_ms: Math.round(times[0]), runs }));
  }
} finally {
  await browser.close();
  server.close();
}
