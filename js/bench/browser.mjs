// `node js/bench/browser.mjs [N] [URL]`: the round trip in headless Chromium, on memory://
// (default) or a broker URL (gateway+ws://..., amqp+ws://...).
import { chromium } from "playwright-core";
import { serve } from "../test/serve.mjs";

const n = Number(process.argv[2] ?? 20000);
const url = process.argv[3] ?? "memory://";
const { server, base } = await serve();
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox", "--disable-dev-shm-usage"] });
try {
  const page = await browser.newPage();
  await page.goto(`${base}/site/bench.html?n=${n}&url=${encodeURIComponent(url)}`);
  // Poll rarely: the default polls on every animation frame, in the page being measured.
  await page.waitForFunction(() => window.__result, null, { timeout: 300000, polling: 250 });
  console.log(JSON.stringify(await page.evaluate(() => window.__result)));
} finally {
  await browser.close();
  server.close();
}
