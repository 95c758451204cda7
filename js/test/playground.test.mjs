// End to end: Playwright (playwright-core + Debian's chromium) drives the playground page
// (www/), which imports the package by name through an import map. Declares, binds,
// publishes and consumes through the UI and checks that the page shows what the broker
// routed. Saves a screenshot to artifacts/playground.png.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { servePlayground } from "../../www/serve.mjs";

const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const artifacts = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "artifacts");

async function submit(page, formId, fields) {
  for (const [name, value] of Object.entries(fields)) {
    const el = page.locator(`${formId} [name="${name}"]`);
    if ((await el.evaluate((e) => e.tagName)) === "SELECT") await el.selectOption(value);
    else await el.fill(String(value));
  }
  await page.locator(`${formId} button[type="submit"]`).click();
}

async function depth(page, queue) {
  return page.locator(`#queues tr[data-queue="${queue}"] td:nth-child(2)`).textContent();
}

test("the playground routes messages as the broker does", { skip: !existsSync(executablePath) && "no chromium" }, async () => {
  const { server, base } = await servePlayground(0);
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${base}/`);
    await page.waitForFunction(() => window.__playgroundReady);
    await page.waitForSelector("#status:has-text('connected to memory://')");

    await submit(page, "#exchange-form", { name: "logs", type: "topic" });
    await submit(page, "#queue-form", { name: "errors" });
    await submit(page, "#queue-form", { name: "all", maxLength: 100 });
    await submit(page, "#bind-form", { queue: "errors", exchange: "logs", routingKey: "*.error" });
    await submit(page, "#bind-form", { queue: "all", exchange: "logs", routingKey: "#" });
    await page.waitForSelector("#bindings td:has-text('*.error')");

    await submit(page, "#publish-form", { exchange: "logs", routingKey: "db.error", body: '{"level": "error"}' });
    await submit(page, "#publish-form", { exchange: "logs", routingKey: "db.info", body: "plain text", count: 3 });
    await page.waitForFunction(() => document.querySelector('#queues tr[data-queue="all"] td:nth-child(2)')?.textContent === "4");
    assert.equal(await depth(page, "errors"), "1");
    assert.equal(await depth(page, "all"), "4");

    // Bad input is reported on the page, not thrown away.
    await submit(page, "#publish-form", { exchange: "logs", routingKey: "x", headers: "{not json", body: "1", count: 1 });
    await page.waitForSelector("#log li.error:has-text('Headers must be JSON')");
    await page.locator('#publish-form [name="headers"]').fill("");

    await submit(page, "#consume-form", { queue: "errors", prefetch: 5 });
    await page.waitForSelector(`#log li.deliver:has-text('{"level":"error"}')`);
    await page.waitForFunction(() => document.querySelector('#queues tr[data-queue="errors"] td:nth-child(2)')?.textContent === "0");
    assert.match(await page.locator("#consumers").textContent(), /errors: 1 received/);

    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, "playground.png"), fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    server.close();
  }
});
