// kombu-wasm/ws: the API of "kombu-wasm", over the build with the WebSocket transports
// (gateway+ws://, gateway+wss://, amqp+ws://, amqps+wss://) and without the in-page memory://
// broker (`new Connection("memory://")` throws UnknownTransport naming "kombu-wasm").
export * from "./index.js";
