// kombu-wasm for Cloudflare Workers (workerd; the "workerd" export condition that wrangler
// and esbuild use): the .wasm is imported as a compiled module, as Workers require, and
// instantiated synchronously — no fetch at startup.
import wasm from "./wasm/kombu_bg.wasm";
import * as glue from "./wasm/kombu.js";
import { bindModule, initSync } from "./lib.js";

bindModule(glue, undefined, "core");
initSync(wasm);

export * from "./lib.js";
