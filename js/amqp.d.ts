// kombu-wasm/amqp: the API of "kombu-wasm", over the build with AMQP over WebSocket only
// (amqp+ws://, amqps+wss://), without the in-page memory:// broker and without gateway+ws://
// (both throw UnknownTransport naming the entry that has them).
export * from "./index.js";
