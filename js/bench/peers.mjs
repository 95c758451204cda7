// `node --experimental-websocket js/bench/peers.mjs --gateway HOST:PORT --stomp WS_URL [--n N]
//  [--runs R] [--user U --password P] [--clients a,b]`: the usual round trip in one headless
// Chromium page (test/site/peers.html), one client after another, R rounds interleaved:
// kombu-wasm over amqp+ws:// (the gateway's /amqp relay) and gateway+ws:// (the gateway's
// AMQP session), @cloudamqp/amqp-client through the same /amqp relay, @stomp/stompjs over
// RabbitMQ's Web-STOMP. Prints one JSON line per client and round; exits non-zero if any
// failed. The gateway must front RabbitMQ (--broker amqp://...) without a token file: the
// relay passes U/P (default guest/guest) to RabbitMQ.
import { parseArgs } from "node:util";
import { serve } from "../test/serve.mjs";
import { launch, sleep } from "./chromium.mjs";

const CLIENTS = ["kombu-wasm amqp+ws://", "kombu-wasm gateway+ws://", "@cloudamqp/amqp-client", "@stomp/stompjs"];
const { values: o } = parseArgs({
  options: {
    gateway: { type: "string" },
    stomp: { type: "string", default: "ws://127.0.0.1:15674/ws" },
    n: { type: "string", default: "20000" },
    runs: { type: "string", default: "3" },
    user: { type: "string", default: "guest" },
    password: { type: "string", default: "guest" },
    vhost: { type: "string", default: "/" },
    clients: { type: "string", default: CLIENTS.join(",") },
  },
});
if (!o.gateway) throw new Error("--gateway HOST:PORT (a kombu-gateway started with --broker amqp://...) is required");
const n = Number(o.n);
const clients = o.clients.split(",");
for (const c of clients) if (!CLIENTS.includes(c)) throw new Error(`unknown client ${c}; known: ${CLIENTS.join(", ")}`);
const enc = encodeURIComponent;
const config = {
  relay: `amqp+ws://${enc(o.user)}:${enc(o.password)}@${o.gateway}/${o.vhost === "/" ? "/" : enc(o.vhost)}`,
  gateway: `gateway+ws://${o.gateway}/gateway?vhost=${enc(o.vhost)}`,
  amqpClient: { url: `ws://${o.gateway}/amqp`, vhost: o.vhost, username: o.user, password: o.password },
  stomp: { url: o.stomp, login: o.user, passcode: o.password, vhost: o.vhost },
};

const { server, base } = await serve();
let chromium;
let failures = 0;
try {
  chromium = await launch();
  await chromium.navigate(`${base}/site/peers.html`);
  for (let t = 0; !(await chromium.evaluate("window.__ready === true").catch(() => false)); t++) {
    if (t === 200) throw new Error("the benchmark page did not load in 50 s");
    await sleep(250);
  }
  const browser = await chromium.evaluate("navigator.userAgent.match(/Chrome\\/[\\d.]+/)?.[0] ?? 'browser'");
  for (let run = 1; run <= Number(o.runs); run++) {
    for (const client of clients) {
      try {
        const r = await chromium.evaluate(`runClient(${JSON.stringify(client)}, ${n}, ${JSON.stringify(config)})`);
        console.log(JSON.stringify({ client, run, browser, ...r }));
      } catch (e) {
        failures++;
        console.log(JSON.stringify({ client, run, browser, error: e.message }));
      }
    }
  }
} finally {
  await chromium?.close();
  server.close();
}
if (failures) process.exit(1);
