// `node --experimental-websocket js/bench/browser.mjs [N] [URL]`: the round trip in headless
// Chromium, on memory:// (default) or a broker URL (gateway+ws://..., amqp+ws://...).
//
// Chromium is started as it is, and the page asked for its result over the DevTools protocol
// with nothing but Runtime.evaluate (chromium.mjs says why not Playwright).
import { serve } from "../test/serve.mjs";
import { launch, sleep } from "./chromium.mjs";

const n = Number(process.argv[2] ?? 20000);
const url = process.argv[3] ?? "memory://";

const { server, base } = await serve();
let chromium;
try {
  chromium = await launch();
  await chromium.navigate(`${base}/site/bench.html?n=${n}&url=${encodeURIComponent(url)}`);
  const deadline = Date.now() + 300000;
  let result = null;
  while (!result) {
    if (Date.now() > deadline) throw new Error("the benchmark page gave no result in 5 minutes");
    // Rarely: the page being measured shares the machine.
    await sleep(250);
    result = JSON.parse((await chromium.evaluate("JSON.stringify(window.__result ?? window.__error ?? null)")) ?? "null");
  }
  if (result.error) throw new Error(`the benchmark page failed: ${result.error}`);
  console.log(JSON.stringify(result));
} finally {
  await chromium?.close();
  server.close();
}
