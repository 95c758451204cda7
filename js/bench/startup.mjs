// `node js/bench/startup.mjs [RUNS] [--gateway HOST:PORT] [--stomp WS_URL] [--user U
// --password P]`: start-up in headless Chromium — the time from `import()` of a client's
// module (fetch, compile and instantiate the .wasm, load the glue) to its first publish
// resolved. A new browser context (empty cache) per run; median of RUNS (default 7). Always:
// the core module ("kombu-wasm") on memory:// (the WebSocket build has no memory://).
// With --gateway (a kombu-gateway fronting RabbitMQ, no token file): kombu-wasm/ws over
// gateway+ws:// and amqp+ws:// (connect included), kombu-wasm/gateway over gateway+ws:// and
// kombu-wasm/amqp over amqp+ws:// (one transport each), and @cloudamqp/amqp-client through the same
// /amqp relay (connect, open a channel, publish); with --stomp: @stomp/stompjs over
// RabbitMQ's Web-STOMP (connect, publish with a receipt: STOMP's publish returns nothing, the
// receipt is when the broker has it). Publishes go to the default exchange with a routing
// key no queue has. Prints one JSON line per client with the median, the minimum and the
// gzipped size of the .wasm (whatever js/wasm/ holds: run js/build.sh first). --only a,b
// measures just those clients.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { serve } from "../test/serve.mjs";

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    gateway: { type: "string" },
    stomp: { type: "string" },
    user: { type: "string", default: "guest" },
    password: { type: "string", default: "guest" },
    only: { type: "string" },
  },
});
const runs = Number(positionals[0] ?? 7);
const pkgDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const wasmGzip = (file) => gzipSync(readFileSync(join(pkgDir, "wasm", file)), { level: 9 }).length;
const enc = encodeURIComponent;

// Each case runs in the page: (base, arg) => Promise<ms>.
async function kombu(base, { entry, url }) {
  const t0 = performance.now();
  const { Connection } = await import(`${base}/${entry}`);
  const conn = new Connection(url);
  await conn.Producer().publish({ hello: "world" }, { routingKey: `startup-${Math.random().toString(36).slice(2)}` });
  const t = performance.now() - t0;
  await conn.release();
  return t;
}
async function amqpClient(base, { url, user, password }) {
  const t0 = performance.now();
  const { AMQPWebSocketClient } = await import(`${base}/node_modules/@cloudamqp/amqp-client/dist/amqp-websocket-client.mjs`);
  const conn = await new AMQPWebSocketClient(url, "/", user, password).connect();
  const ch = await conn.channel();
  await ch.basicPublish("", `startup-${Math.random().toString(36).slice(2)}`, '{"hello": "world"}', { contentType: "application/json" });
  const t = performance.now() - t0;
  await conn.close();
  return t;
}
async function stomp(base, { url, user, password }) {
  const t0 = performance.now();
  // The package's minified browser bundle (UMD: sets globalThis.StompJs when imported).
  await import(`${base}/node_modules/@stomp/stompjs/bundles/stomp.umd.min.js`);
  const client = new globalThis.StompJs.Client({ brokerURL: url, connectHeaders: { login: user, passcode: password, host: "/" }, reconnectDelay: 0, debug: () => {} });
  await new Promise((resolve, reject) => {
    client.onConnect = resolve;
    client.onStompError = (f) => reject(new Error(f.headers.message));
    client.onWebSocketClose = (e) => reject(new Error(`closed (code ${e.code})`));
    client.activate();
  });
  const receipt = new Promise((r) => client.watchForReceipt("first", r));
  client.publish({ destination: `/exchange/amq.direct/startup-${Math.random().toString(36).slice(2)}`, body: '{"hello": "world"}', headers: { "content-type": "application/json", receipt: "first" } });
  await receipt;
  const t = performance.now() - t0;
  await client.deactivate();
  return t;
}

const cases = [
  { client: "kombu-wasm", url: "memory://", fn: kombu, arg: { entry: "index.js", url: "memory://" }, wasm: "kombu_bg.wasm" },
];
if (o.gateway) {
  const gateway = `gateway+ws://${o.gateway}/gateway?vhost=/`;
  const relay = `amqp+ws://${enc(o.user)}:${enc(o.password)}@${o.gateway}//`;
  cases.push(
    { client: "kombu-wasm/ws", url: gateway, fn: kombu, arg: { entry: "ws.js", url: gateway }, wasm: "kombu_ws_bg.wasm" },
    { client: "kombu-wasm/ws", url: relay.replace(/\/\/[^@]*@/, "//***@"), fn: kombu, arg: { entry: "ws.js", url: relay }, wasm: "kombu_ws_bg.wasm" },
    { client: "kombu-wasm/gateway", url: gateway, fn: kombu, arg: { entry: "gateway.js", url: gateway }, wasm: "kombu_gateway_bg.wasm" },
    { client: "kombu-wasm/amqp", url: relay.replace(/\/\/[^@]*@/, "//***@"), fn: kombu, arg: { entry: "amqp.js", url: relay }, wasm: "kombu_amqp_bg.wasm" },
    { client: "@cloudamqp/amqp-client", url: `ws://${o.gateway}/amqp`, fn: amqpClient, arg: { url: `ws://${o.gateway}/amqp`, user: o.user, password: o.password } },
  );
}
if (o.stomp) cases.push({ client: "@stomp/stompjs", url: o.stomp, fn: stomp, arg: { url: o.stomp, user: o.user, password: o.password } });

// --only a,b: just the clients named (module names as printed).
const chosen = o.only ? cases.filter((c) => o.only.split(",").includes(c.client)) : cases;

const { server, base } = await serve();
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox", "--disable-dev-shm-usage"] });
try {
  for (const c of chosen) {
    const times = [];
    for (let i = 0; i < runs; i++) {
      const context = await browser.newContext();
      try {
        const page = await context.newPage();
        await page.goto(`${base}/blank`); // same origin, nothing loaded (a 404 page)
        // The function's source, called in the page with its argument.
        times.push(await page.evaluate(`(${c.fn.toString()})(${JSON.stringify(base)}, ${JSON.stringify(c.arg)})`));
      } finally {
        await context.close();
      }
    }
    times.sort((a, b) => a - b);
    const wasm = c.wasm ? { wasm_gzip_bytes: wasmGzip(c.wasm) } : {};
    console.log(JSON.stringify({ module: c.client, url: c.url, ...wasm, median_ms: Math.round(times[times.length >> 1]), min_ms: Math.round(times[0]), runs }));
  }
} finally {
  await browser.close();
  server.close();
}
