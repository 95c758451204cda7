// `node js/bench/sizes.mjs`: what a web page downloads for each browser client, gzipped
// (zlib level 9, as js/build.sh prints): kombu-wasm's .wasm (whatever js/wasm/ holds, built by
// js/build.sh) plus its JavaScript, and the peers' browser bundles. JavaScript is measured
// minified by rolldown (what a bundler ships; Vite 8 uses it) as well as the files the
// packages ship. Prints one JSON line per client.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const gz = (bytes) => gzipSync(bytes, { level: 9 }).length;
const need = (path, hint) => {
  if (existsSync(path)) return path;
  console.error(`js/bench/sizes.mjs: missing ${path}: ${hint}`);
  process.exit(1);
};

// The JavaScript a bundler makes of `source` (an ES module's text), minified, gzipped: the sum
// over its chunks. null if rolldown is not installed.
function minifiedGzip(source) {
  const rolldown = join(pkg, "node_modules", ".bin", "rolldown");
  if (!existsSync(rolldown)) return null;
  const dir = mkdtempSync(join(tmpdir(), "kombu-sizes-"));
  try {
    writeFileSync(join(dir, "entry.mjs"), source);
    // amqp-client's browser file imports its Node TCP client in a branch a browser never takes.
    const external = "./amqp-socket-client.js";
    const args = [join(dir, "entry.mjs"), "--platform", "browser", "--minify", "--format", "esm", "--external", external, "--dir", join(dir, "out")];
    const r = spawnSync(rolldown, args, { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
    if (r.status !== 0) throw new Error(`rolldown failed: ${r.stderr}${r.stdout}`);
    return readdirSync(join(dir, "out"), { recursive: true })
      .filter((f) => f.endsWith(".js"))
      .reduce((sum, f) => sum + gz(readFileSync(join(dir, "out", f))), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const built = "run js/build.sh";
const installed = "run npm ci in js/";
const clients = [
  { client: "kombu-wasm (core)", wasm: "wasm/kombu_bg.wasm", js: ["index.js", "lib.js", "wasm/kombu.js"], hint: built },
  { client: "kombu-wasm/ws", wasm: "wasm/kombu_ws_bg.wasm", js: ["ws.js", "lib.js", "wasm/kombu_ws.js"], hint: built },
  { client: "kombu-wasm/gateway", wasm: "wasm/kombu_gateway_bg.wasm", js: ["gateway.js", "lib.js", "wasm/kombu_gateway.js"], hint: built },
  { client: "kombu-wasm/amqp", wasm: "wasm/kombu_amqp_bg.wasm", js: ["amqp.js", "lib.js", "wasm/kombu_amqp.js"], hint: built },
  { client: "@cloudamqp/amqp-client", js: ["node_modules/@cloudamqp/amqp-client/dist/amqp-websocket-client.mjs"], hint: installed },
  { client: "@stomp/stompjs", js: ["node_modules/@stomp/stompjs/bundles/stomp.umd.min.js"], hint: installed },
];
for (const c of clients) {
  const files = c.js.map((f) => need(join(pkg, f), c.hint));
  const wasm = c.wasm ? gz(readFileSync(need(join(pkg, c.wasm), c.hint))) : 0;
  const shipped = files.reduce((sum, f) => sum + gz(readFileSync(f)), 0);
  // The bundle: the package's entry as an app imports it (the stompjs entry is its ESM build).
  const entry = c.client === "@stomp/stompjs" ? join(pkg, "node_modules/@stomp/stompjs/esm6/index.js") : files[0];
  const minified = minifiedGzip(`export * from ${JSON.stringify(entry)};\n`);
  console.log(JSON.stringify({ client: c.client, wasm_gzip: wasm, js_shipped_gzip: shipped, js_minified_gzip: minified, total_gzip: wasm + (minified ?? shipped) }));
}
