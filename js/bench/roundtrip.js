// memory:// round trip in JavaScript: the workload of examples/bench_memory.rs (N JSON
// messages of ~64 bytes published, then consumed with prefetch 100 and acked one by one).
// Shared by bench/wasm_roundtrip.mjs (Node) and the browser benchmark page.
// `body(i)` is the i-th message's body (by default the ~64-byte task message).
export async function roundTrip({ Connection, Exchange, Queue }, n = 20000, baseUrl = "memory://", body = (i) => ({ id: i, task: "bench.add", args: [1, 2], kwargs: {} })) {
  const name = `bench-${Math.random().toString(36).slice(2)}`;
  // Not durable, deleted when unused: as bench_roundtrip.rs and roundtrip_python.py declare
  // them (on RabbitMQ a durable queue would write the persistent messages to disk).
  const exchange = new Exchange(name, { type: "direct", durable: false, autoDelete: true });
  const queue = new Queue(name, { exchange, routingKey: "bench", durable: false, autoDelete: true });
  // A gateway URL without a vhost gets one of its own (the embedded broker creates it); give
  // `?vhost=/` for a gateway in front of RabbitMQ. Other URLs (amqp+ws://) are used as given.
  const url = baseUrl.startsWith("memory:") ? `memory:///${name}` : !baseUrl.startsWith("gateway+") || baseUrl.includes("vhost=") ? baseUrl : `${baseUrl}?vhost=/${name}`;
  const conn = new Connection(url);
  await conn.declare(queue);
  const producer = conn.Producer();
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    await producer.publish(body(i), { exchange, routingKey: "bench" });
  }
  const published = performance.now();
  const consumer = conn.Consumer([queue], { prefetchCount: 100 });
  let seen = 0;
  for await (const message of consumer) {
    message.ack();
    message.free();
    if (++seen === n) break;
  }
  const total = performance.now() - started;
  await conn.delete(queue);
  await conn.delete(exchange);
  await conn.release();
  return { messages: n, publish_seconds: (published - started) / 1000, total_seconds: total / 1000, msgs_per_sec: n / (total / 1000) };
}
