// The npm package in Node against a kombu-gateway fronting the local Redis
// (`--broker redis://...`): the README quick start runs with only the URL changed, and what it
// published went through Redis in Kombu's envelope (the gateway's redis:// store). Skipped
// when Redis is not listening, except under CI.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createConnection } from "node:net";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startGateway, runNode } from "./gateway-process.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const prefix = `kwjs.${process.pid}.${Date.now()}.`;

const redisUp = await new Promise((resolve) => {
  const s = createConnection({ host: "127.0.0.1", port: 6379 }, () => { s.end(); resolve(true); });
  s.on("error", () => resolve(false));
});
if (!redisUp && process.env.CI) throw new Error("Redis must run on 127.0.0.1:6379 under CI");
const skip = !redisUp && "no Redis on 127.0.0.1:6379";

let gateway;
let addr;

before(async () => {
  if (skip) return;
  ({ child: gateway, addr } = await startGateway(["--broker", `redis://127.0.0.1:6379/0?global_keyprefix=${prefix}&polling_interval=0.2`]));
});

after(() => {
  gateway?.kill("SIGTERM");
  if (skip) return;
  const keys = execFileSync("redis-cli", ["--scan", "--pattern", `${prefix}*`], { encoding: "utf8" }).split("\n").filter(Boolean);
  if (keys.length) execFileSync("redis-cli", ["del", ...keys]);
});

test("the README quick start runs in Node through a gateway on Redis", { skip }, () => {
  const readme = readFileSync(join(repo, "js", "README.md"), "utf8");
  const code = readme.slice(readme.indexOf("## Quick start")).match(/```js\n([\s\S]*?)```/)[1];
  const url = `gateway+ws://${addr}/gateway`;
  const out = runNode(code.replace('"memory://"', JSON.stringify(url)).replace('from "kombu-wasm"', `from ${JSON.stringify(join(repo, "js", "ws.js"))}`));
  assert.match(out, /name: '\/tmp\/lolcat1\.avi'/);
  // The exchange's binding table is Kombu's, in Redis.
  const rows = execFileSync("redis-cli", ["smembers", `${prefix}_kombu.binding.media`], { encoding: "utf8" });
  assert.match(rows, /video\x06\x16\x06\x16video/);
});

test("a message Node publishes through the gateway is in Redis as Kombu's envelope", { skip }, () => {
  const url = `gateway+ws://${addr}/gateway`;
  runNode(`
    import { Connection, Queue } from ${JSON.stringify(join(repo, "js", "ws.js"))};
    const conn = new Connection(${JSON.stringify(url)});
    await conn.Producer().publish({ from: "node" }, { routingKey: "js-kept", declare: [new Queue("js-kept")] });
    await conn.release();
  `);
  let raw = "";
  for (let i = 0; i < 100 && !raw; i++) {
    raw = execFileSync("redis-cli", ["rpop", `${prefix}js-kept`], { encoding: "utf8" }).trim();
    if (!raw) execFileSync("sleep", ["0.05"]);
  }
  const envelope = JSON.parse(raw);
  assert.equal(Buffer.from(envelope.body, "base64").toString(), '{"from": "node"}');
  assert.equal(envelope["content-type"], "application/json");
  assert.deepEqual(envelope.properties.delivery_info, { exchange: "", routing_key: "js-kept" });
  assert.equal(envelope.properties.body_encoding, "base64");
});
