// `node js/bench/node.mjs [N] [URL] [--floats]`: the round trip through the npm package in
// Node, on memory:// (default) or through a gateway (`gateway+ws://127.0.0.1:8765/gateway`;
// run Node with --experimental-websocket on Node 20). --floats: bodies of 20 floats such as
// Python writes (`{"id": i, "values": [Math.sin(i + k) * 1000, ...]}`, 17-digit reprs among
// them) instead of the task message, to measure the JSON reader's float path.
import { roundTrip } from "./roundtrip.js";

const args = process.argv.slice(2).filter((a) => a !== "--floats");
const n = Number(args[0] ?? 20000);
const url = args[1] ?? "memory://";
const body = process.argv.includes("--floats") ? (i) => ({ id: i, values: Array.from({ length: 20 }, (_, k) => Math.sin(i + k) * 1000) }) : undefined;
// memory:// needs only the core build; the WebSocket transports are in "kombu-wasm/ws".
const kombu = await import(url.startsWith("memory:") ? "../index.js" : "../ws.js");
let best;
for (let i = 0; i < 3; i++) {
  const r = await roundTrip(kombu, n, url, body);
  if (!best || r.msgs_per_sec > best.msgs_per_sec) best = r;
}
console.log(JSON.stringify({ impl: `kombu-wasm ${kombu.version} (wasm, Node ${process.versions.node}) on ${url}`, ...best }));
