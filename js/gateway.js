// kombu-wasm/gateway for browsers, bundlers (Vite) and Node: the API of "kombu-wasm" over the
// build with one WebSocket transport, gateway+ws:// and gateway+wss:// (kombu-gateway's
// protocol), ~18 KB gzipped smaller than "kombu-wasm/ws", which also has amqp+ws://. Loaded
// once, here, before the API is used. Import every name from this entry in an app that uses
// them (see lib.js).
import * as glue from "./wasm/kombu_gateway.js";
import { bindModule, init } from "./lib.js";

bindModule(glue, new URL("./wasm/kombu_gateway_bg.wasm", import.meta.url), "gateway");
await init();

export * from "./lib.js";
