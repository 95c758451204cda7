// The package in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core):
// a plain <script type="module"> page runs the README quick start.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";
import { serve } from "./serve.mjs";

const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";

test("the quick start runs in Chromium from a plain module script", { skip: !existsSync(executablePath) && "no chromium" }, async () => {
  const { server, base } = await serve();
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${base}/site/quickstart.html`);
    await page.waitForFunction(() => window.__result, null, { timeout: 30000 });
    const result = await page.evaluate(() => window.__result);
    assert.deepEqual(errors, []);
    assert.equal(result.ok, true, result.error);
    assert.deepEqual(JSON.parse(result.lines[0]), { name: "/tmp/lolcat1.avi", size: 1301013 });
    assert.equal(await page.textContent("#out"), result.lines.join("\n"));
  } finally {
    await browser.close();
    server.close();
  }
});

// A WebSocket that fails to open rejects at once, with the URL and the close code (Chromium
// tells a page no more: not whether the port was refused or the upgrade answered 401/403).
test("a refused gateway+ws:// connection rejects at once in Chromium, naming the URL and the close code", { skip: !existsSync(executablePath) && "no chromium" }, async () => {
  const { server, base } = await serve();
  const closed = await serve(); // a port nothing listens on once closed
  const port = new URL(closed.base).port;
  await new Promise((resolve) => closed.server.close(resolve));
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const page = await browser.newPage();
    await page.goto(`${base}/site/`);
    const error = await page.evaluate(async ([base, port]) => {
      const { Connection } = await import(`${base}/ws.js`);
      // A connect timeout far beyond the test's: only the failure itself can end the wait.
      const c = new Connection(`gateway+ws://127.0.0.1:${port}/gateway`, { connectTimeout: 600000 });
      try {
        await c.connect();
        return "connected";
      } catch (e) {
        return `${e.name}: ${e.message}`;
      }
    }, [base, port]);
    assert.match(error, new RegExp(`^RecoverableConnectionError: cannot connect to ws://127\\.0\\.0\\.1:${port}/gateway: the WebSocket closed before it opened \\(code 1006: `));
  } finally {
    await browser.close();
    server.close();
  }
});
