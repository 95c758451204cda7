// Shared by the tests that run the real kombu-gateway binary: start it on a free port
// (serving the package at /pkg/) and wait for its address; and whether RabbitMQ is up.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { connect } from "node:net";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = process.env.KOMBU_GATEWAY_BIN ?? join(repo, "target", "debug", "kombu-gateway");

/** Start kombu-gateway with `args` (beyond --listen and --pkg): `{ child, addr }`. */
export async function startGateway(args) {
  assert.ok(existsSync(bin), `build the gateway first (cargo build -p kombu-gateway): ${bin}`);
  const child = spawn(bin, ["--listen", "127.0.0.1:0", "--pkg", join(repo, "js"), ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const addr = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/([\d.:]+)\//);
      if (m) resolve(m[1]);
    });
    child.on("exit", (code) => reject(new Error(`kombu-gateway exited with ${code}`)));
  });
  return { child, addr };
}

/** Whether RabbitMQ listens on 127.0.0.1:5672. */
export const rabbitUp = () =>
  new Promise((resolve) => {
    const s = connect(5672, "127.0.0.1", () => (s.destroy(), resolve(true)));
    s.on("error", () => resolve(false));
  });
