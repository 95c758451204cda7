// kombu-wasm/ws for browsers, bundlers (Vite) and Node: the API of "kombu-wasm" over the build
// of the WebAssembly module that also has the WebSocket transports — gateway+ws:// and
// gateway+wss:// (the gateway's protocol), amqp+ws:// and amqps+wss:// (AMQP 0-9-1 through the
// gateway's relay), without the memory:// broker (in "kombu-wasm" only). Loaded once, here,
// before the API is used. Import every name from this entry in an app that uses them (see
// lib.js).
import * as glue from "./wasm/kombu_ws.js";
import { bindModule, init } from "./lib.js";

bindModule(glue, new URL("./wasm/kombu_ws_bg.wasm", import.meta.url), "ws");
await init();

export * from "./lib.js";
