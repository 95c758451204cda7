// The package in Cloudflare's workerd runtime (the npm "workerd" package): a worker imports
// the package's "workerd" entry (the .wasm as a compiled module, no fetch at startup) and
// runs the quick start, topic routing and a SimpleQueue on memory:// inside a request.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { existsSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const workerd = join(here, "..", "node_modules", ".bin", "workerd");

async function freePort() {
  const s = createServer().listen(0, "127.0.0.1");
  await new Promise((r) => s.once("listening", r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

test("a Cloudflare worker (workerd) runs the quick start on memory://", { skip: !existsSync(workerd) && !process.env.CI && "npm install first (workerd)", timeout: 60000 }, async () => {
  const port = await freePort();
  const child = spawn(workerd, ["serve", join(here, "workerd", "config.capnp"), "--socket-addr", `http=127.0.0.1:${port}`], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  try {
    let res;
    for (let i = 0; i < 100 && !res; i++) {
      try {
        res = await fetch(`http://127.0.0.1:${port}/`);
      } catch {
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    assert.ok(res, `workerd did not serve:\n${log}`);
    const text = await res.text();
    assert.equal(res.status, 200, `${text}\n${log}`);
    const body = JSON.parse(text);
    assert.match(body.version, /^\d+\.\d+\.\d+/);
    assert.deepEqual(body.quickStart, { name: "/tmp/lolcat1.avi", size: 1301013 });
    assert.equal(body.routed, "disk failed");
    assert.equal(body.left, 0);
    assert.deepEqual(body.zstd, ["application/zstd", 1000]);
  } finally {
    child.kill("SIGTERM");
  }
});
