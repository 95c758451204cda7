// A fresh Vite app that installs the packed package from its tarball: `vite build` (target
// esnext, for the top-level await that loads the wasm once) must bundle the package without
// a warning and emit the .wasm, and the built app must run the README quick start in headless Chromium.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const types = { ".js": "text/javascript", ".html": "text/html", ".wasm": "application/wasm" };

function serve(root) {
  const server = createServer((req, res) => {
    let path = normalize(new URL(req.url, "http://x").pathname).replace(/^(\.\.[/\\])+/, "");
    if (path.endsWith("/")) path += "index.html";
    try {
      const body = readFileSync(join(root, path));
      res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, base: `http://127.0.0.1:${server.address().port}` })));
}

test("a Vite app bundles the package and runs the quick start", { skip: !existsSync(executablePath) && "no chromium", timeout: 180000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "kombu-wasm-vite-"));
  let server;
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const tarball = execFileSync("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: pkgDir, encoding: "utf8" }).trim().split("\n").pop();
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "vite-app", private: true, type: "module" }));
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--offline", join(dir, tarball)], { cwd: dir, stdio: "pipe" });
    const readme = readFileSync(join(pkgDir, "README.md"), "utf8");
    const code = readme.slice(readme.indexOf("## Quick start")).match(/```js\n([\s\S]*?)```/)[1];
    writeFileSync(join(dir, "index.html"), '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="/main.js"></script>');
    writeFileSync(join(dir, "main.js"), `const logs = []; const log = console.log; console.log = (...a) => { logs.push(a); log(...a); };\n${code}\nwindow.__logs = logs;\n` +
      // The separately loaded codecs module: a second .wasm asset, fetched when imported.
      `const { Connection: C } = await import("kombu-wasm"); await import("kombu-wasm/codecs");\n` +
      `const q = await new C("memory://").SimpleQueue("z"); await q.put("squeezed", { compression: "bzip2" });\n` +
      `const z = await q.get({ timeout: 1000 }); window.__codecs = [z.headers.compression, z.payload];\n`);
    // A second page of the app on the "kombu-wasm/ws" build (its own .wasm asset): gateway+ws://
    // is a known transport there, and memory:// (not in that build) names "kombu-wasm".
    writeFileSync(join(dir, "ws.html"), '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="/ws.js"></script>');
    writeFileSync(join(dir, "ws.js"), `import { Connection } from "kombu-wasm/ws";\n` +
      `let memory; try { new Connection("memory://"); memory = "made"; } catch (e) { memory = e.name + ": " + e.message; }\n` +
      `window.__ws = { uri: new Connection("gateway+ws://127.0.0.1:9/gateway").asUri(), memory };\n`);
    // A third page on "kombu-wasm/gateway" (gateway+ws:// only): its own, smaller .wasm asset.
    writeFileSync(join(dir, "gateway.html"), '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="/gateway.js"></script>');
    writeFileSync(join(dir, "gateway.js"), `import { Connection } from "kombu-wasm/gateway";\n` +
      `let amqp; try { new Connection("amqp+ws://127.0.0.1:9//"); amqp = "made"; } catch (e) { amqp = e.name + ": " + e.message; }\n` +
      `window.__gateway = { uri: new Connection("gateway+ws://127.0.0.1:9/gateway").asUri(), amqp };\n`);
    writeFileSync(join(dir, "vite.config.js"), `export default { build: { rollupOptions: { input: { main: "index.html", ws: "ws.html", gateway: "gateway.html" } } } };\n`);
    const built = spawnSync(process.execPath, [join(pkgDir, "node_modules", "vite", "bin", "vite.js"), "build", "--target", "esnext", "--logLevel", "warn"], { cwd: dir, encoding: "utf8" });
    assert.equal(built.status, 0, built.stderr);
    // No warnings (such as a `node:` module externalized for the browser): nothing printed.
    assert.equal(`${built.stdout}${built.stderr}`.trim(), "");
    const assets = readdirSync(join(dir, "dist", "assets"));
    assert.equal(assets.filter((f) => f.endsWith(".wasm")).length, 4, `the core's, the WebSocket builds' and the codecs' .wasm among ${assets}`);
    ({ server } = await serve(join(dir, "dist")).then((s) => ({ ...s, base: s.base })).then(async (s) => {
      const page = await browser.newPage();
      const errors = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(`${s.base}/`);
      await page.waitForFunction(() => window.__logs, null, { timeout: 30000 });
      assert.deepEqual(errors, []);
      assert.deepEqual(await page.evaluate(() => window.__logs), [[{ name: "/tmp/lolcat1.avi", size: 1301013 }]]);
      await page.waitForFunction(() => window.__codecs, null, { timeout: 30000 });
      assert.deepEqual(await page.evaluate(() => window.__codecs), ["application/x-bz2", "squeezed"]);
      const ws = await browser.newPage();
      ws.on("pageerror", (e) => errors.push(String(e)));
      await ws.goto(`${s.base}/ws.html`);
      await ws.waitForFunction(() => window.__ws, null, { timeout: 30000 });
      assert.deepEqual(errors, []);
      const onWs = await ws.evaluate(() => window.__ws);
      assert.match(onWs.uri, /^gateway\+ws:\/\/127.0.0.1:9/);
      assert.match(onWs.memory, /^UnknownTransport: .*memory:\/\/ \(the in-page broker\) is in "kombu-wasm", not in "kombu-wasm\/ws"/);
      const gw = await browser.newPage();
      gw.on("pageerror", (e) => errors.push(String(e)));
      const fetched = [];
      gw.on("request", (r) => r.url().endsWith(".wasm") && fetched.push(r.url()));
      await gw.goto(`${s.base}/gateway.html`);
      await gw.waitForFunction(() => window.__gateway, null, { timeout: 30000 });
      assert.deepEqual(errors, []);
      const onGateway = await gw.evaluate(() => window.__gateway);
      assert.match(onGateway.uri, /^gateway\+ws:\/\/127.0.0.1:9/);
      assert.match(onGateway.amqp, /^UnknownTransport: .*import from "kombu-wasm\/amqp", or from "kombu-wasm\/ws" for both/);
      assert.equal(fetched.length, 1, `one .wasm for the gateway page: ${fetched}`);
      return s;
    }));
  } finally {
    await browser.close();
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
