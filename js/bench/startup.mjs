// `node js/bench/startup.mjs [RUNS]`: the npm package's start-up in headless Chromium — the
// time from `import()` of the entry (fetch, compile and instantiate the .wasm, load the glue)
// to the first publish resolved: on memory:// for the core module ("kombu-wasm"), and over
// gateway+ws:// to a kombu-gateway on its embedded broker for the WebSocket build
// ("kombu-wasm/ws", which has no memory://; needs `cargo build -p kombu-gateway`, else that
// row is skipped). A new browser context (empty cache) per run; median of RUNS (default 7).
// Prints one JSON line per module with the median and the .wasm's gzipped size.
import { chromium } from "playwright-core";
import { existsSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "../test/serve.mjs";

const runs = Number(process.argv[2] ?? 7);
const pkgDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const gatewayBin = process.env.KOMBU_GATEWAY_BIN ?? join(pkgDir, "..", "target", "debug", "kombu-gateway");
const { server, base } = await serve();
let gateway;
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox", "--disable-dev-shm-usage"] });
try {
  const modules = [["kombu-wasm", "index.js", "kombu_bg.wasm", () => "memory://"]];
  if (existsSync(gatewayBin)) {
    const { startGateway } = await import("../test/gateway-process.mjs");
    gateway = await startGateway([]);
    modules.push(["kombu-wasm/ws", "ws.js", "kombu_ws_bg.wasm", (i) => `gateway+ws://${gateway.addr}/gateway?vhost=/startup-${process.pid}-${i}`]);
  } else {
    console.error(`no ${gatewayBin}: kombu-wasm/ws skipped (cargo build -p kombu-gateway)`);
  }
  for (const [module, entry, wasm, url] of modules) {
    const times = [];
    for (let i = 0; i < runs; i++) {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(`${base}/blank`); // same origin, nothing loaded (a 404 page)
      times.push(await page.evaluate(async ([src, url]) => {
        const t0 = performance.now();
        const { Connection } = await import(src);
        const conn = new Connection(url);
        await conn.Producer().publish({ hello: "world" }, { routingKey: "startup" });
        const t = performance.now() - t0;
        await conn.release();
        return t;
      }, [`${base}/${entry}`, url(i)]));
      await context.close();
    }
    times.sort((a, b) => a - b);
    const gz = gzipSync(readFileSync(join(pkgDir, "wasm", wasm)), { level: 9 }).length;
    console.log(JSON.stringify({ module, first_publish_on: url(0).replace(/\?.*/, ""), wasm_gzip_bytes: gz, median_ms: Math.round(times[times.length >> 1]), min_ms: Math.round(times[0]), runs }));
  }
} finally {
  await browser.close();
  server.close();
  gateway?.child.kill();
}
