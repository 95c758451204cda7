// kombu-wasm for browsers, bundlers (Vite) and Node: the WebAssembly module is loaded once,
// here, before the API is used (top-level await). The API itself is in lib.js.
import { init } from "./lib.js";

await init();

export * from "./lib.js";
