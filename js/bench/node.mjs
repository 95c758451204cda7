// `node js/bench/node.mjs [N] [URL]`: the round trip through the npm package in Node, on
// memory:// (default) or through a gateway (`gateway+ws://127.0.0.1:8765/gateway`; run Node
// with --experimental-websocket on Node 20).
import { roundTrip } from "./roundtrip.js";

const n = Number(process.argv[2] ?? 20000);
const url = process.argv[3] ?? "memory://";
// memory:// needs only the core build; the WebSocket transports are in "kombu-wasm/ws".
const kombu = await import(url.startsWith("memory:") ? "../index.js" : "../ws.js");
let best;
for (let i = 0; i < 3; i++) {
  const r = await roundTrip(kombu, n, url);
  if (!best || r.msgs_per_sec > best.msgs_per_sec) best = r;
}
console.log(JSON.stringify({ impl: `kombu-wasm ${kombu.version} (wasm, Node ${process.versions.node}) on ${url}`, ...best }));
