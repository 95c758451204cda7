// kombu-wasm for browsers, bundlers (Vite) and Node: memory:// and the Kombu API. The
// WebAssembly module is loaded once, here, before the API is used (top-level await). The API
// itself is in lib.js; "kombu-wasm/ws" (ws.js) is the same with the WebSocket transports.
import * as glue from "./wasm/kombu.js";
import { bindModule, init } from "./lib.js";

bindModule(glue, new URL("./wasm/kombu_bg.wasm", import.meta.url), "core");
await init();

export * from "./lib.js";
