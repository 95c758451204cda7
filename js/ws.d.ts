// kombu-wasm/ws: the API of "kombu-wasm", over the build with the WebSocket transports
// (gateway+ws://, gateway+wss://, amqp+ws://, amqps+wss://).
export * from "./index.js";
