// `node js/bench/node.mjs [N]`: the memory:// round trip through the npm package in Node.
import * as kombu from "../index.js";
import { roundTrip } from "./roundtrip.js";

const n = Number(process.argv[2] ?? 20000);
let best;
for (let i = 0; i < 3; i++) {
  const r = await roundTrip(kombu, n);
  if (!best || r.msgs_per_sec > best.msgs_per_sec) best = r;
}
console.log(JSON.stringify({ impl: `kombu-wasm ${kombu.version} (wasm, Node ${process.versions.node})`, ...best }));
