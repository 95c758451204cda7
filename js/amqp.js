// kombu-wasm/amqp for browsers, bundlers (Vite) and Node: the API of "kombu-wasm" over the
// build with one WebSocket transport, amqp+ws:// and amqps+wss:// (AMQP 0-9-1 through
// kombu-gateway's /amqp relay), ~17 KB gzipped smaller than "kombu-wasm/ws", which also has
// gateway+ws://. Loaded once, here, before the API is used. Import every name from this entry
// in an app that uses them (see lib.js).
import * as glue from "./wasm/kombu_amqp.js";
import { bindModule, init } from "./lib.js";

bindModule(glue, new URL("./wasm/kombu_amqp_bg.wasm", import.meta.url), "amqp");
await init();

export * from "./lib.js";
