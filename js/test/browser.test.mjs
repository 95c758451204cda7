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
