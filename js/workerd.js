// kombu-wasm for Cloudflare Workers (workerd; the "workerd" export condition that wrangler
// and esbuild use): the .wasm is imported as a compiled module, as Workers require, and
// instantiated synchronously — no fetch at startup.
import wasm from "./wasm/kombu_bg.wasm";
import { initSync } from "./lib.js";

initSync(wasm);

export * from "./lib.js";
