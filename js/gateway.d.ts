// kombu-wasm/gateway: the API of "kombu-wasm", over the build with the gateway's WebSocket
// transport only (gateway+ws://, gateway+wss://), without the in-page memory:// broker and
// without amqp+ws:// (both throw UnknownTransport naming the entry that has them).
export * from "./index.js";
