// Correct TypeScript against kombu-wasm's types: must compile under `tsc --strict` (5.x and 7)
// with no errors (test/types.test.mjs). Not run.
import { Connection, Exchange, Queue, KombuError, NotFound, AMQPError, Empty, EncodeError, type Message, type Body } from "kombu-wasm";
import { Connection as WsConnection } from "kombu-wasm/ws";
import { Connection as GatewayConnection, Queue as GatewayQueue } from "kombu-wasm/gateway";
import { Connection as AmqpConnection, type Message as AmqpMessage } from "kombu-wasm/amqp";

interface Order {
  id: number;
  items: string[];
  note?: string;
}

const order: Order = { id: 1, items: ["a"] };
const media = new Exchange("media", { type: "direct", durable: true, arguments: { "x-a": 1 } as const });
const video = new Queue("video", { exchange: media, routingKey: "video", messageTtl: 60, bindings: [media.binding("v")] as const });
const conn = new Connection("memory://", { connectTimeout: 5000, alternates: ["memory://"] as const });
const producer = conn.Producer({ serializer: "json" });

// Bodies: interfaces, Record<string, unknown>, readonly and `as const` data, text, bytes.
await producer.publish(order, { exchange: media, routingKey: "video", declare: [video] as const });
await producer.publish<Order>(order);
const record: Record<string, unknown> = { a: 1, b: [true, null] };
await producer.publish(record);
const frozen = { kind: "x", tags: ["a", "b"], nested: { n: 1 } } as const;
await producer.publish(frozen, { headers: { trace: "t", hops: [1, 2] } as const, retryPolicy: { intervalStart: 0, maxRetries: 3 } });
const readonlyOrder: Readonly<Order> = order;
await producer.publish(readonlyOrder);
const list: readonly Order[] = [order];
await producer.publish(list);
await producer.publish(new Uint8Array([1, 2]), { contentType: "application/octet-stream" });
await producer.publish("text");
const body: Body = order;
await producer.publish(body);

// Typed payloads.
const q = await conn.SimpleQueue<Order>("orders");
await q.put(order);
const m: Message<Order> = await q.get({ timeout: 1000 });
const id: number = m.payload.id;
const correlationId: string | null | undefined = m.properties.correlationId;
m.ack();
const consumer = conn.Consumer<Order>([video, "orders"], { accept: ["json"] as const, prefetchCount: 10 });
for await (const message of consumer) {
  const items: string[] = message.payload.items;
  message.ack();
  break;
}
const controller = new AbortController();
for await (const message of consumer.messages({ signal: controller.signal, timeout: 100 })) {
  message.reject(true);
}

// Errors are classes.
try {
  await producer.publish({}, { exchange: "missing" });
} catch (e) {
  if (e instanceof NotFound) {
    const code: number | undefined = e.code;
    const amqp: AMQPError = e;
  } else if (e instanceof Empty || e instanceof EncodeError) {
    const text: string = e.message;
  } else if (e instanceof KombuError) {
    const name: string = e.name;
  }
}

// camelCase everywhere.
const depth: number | undefined = conn.snapshot()?.queues[0]?.messagesReady;
const timeout: number | null = conn.info().connectTimeout;
const routingKey: string | undefined = conn.snapshot()?.bindings[0]?.routingKey;

// Disposal (`await using`) with the types' own reference to esnext.disposable.
{
  await using scoped = new WsConnection("gateway+ws://127.0.0.1:8765/gateway", { connectTimeout: 2000 });
}
// The one-transport builds have the same API.
{
  const viaGateway = new GatewayConnection("gateway+ws://127.0.0.1:8765/gateway", { connectTimeout: 2000 });
  await viaGateway.declare(new GatewayQueue("orders"));
  const viaRelay = new AmqpConnection("amqp+ws://guest:guest@127.0.0.1:8765//");
  const got: AmqpMessage<Order> = await viaRelay.Consumer<Order>(["orders"]).next({ timeout: 1000 });
  const id: number = got.payload.id;
}
// Connection events, ensure and autoretry: the wrapped function keeps fn's parameters and result.
const stopBlocked = conn.on("blocked", ({ reason }) => console.warn(reason?.toUpperCase()));
stopBlocked();
const ensuredPublish: (body: Body, options?: Parameters<typeof producer.publish>[1]) => Promise<void> = conn.ensure(producer, producer.publish, {
  maxRetries: 3,
  intervalStart: 100,
  errback: (error: Error, interval: number) => console.log(error.name, interval),
  onRevive: () => undefined,
});
await ensuredPublish(order, { routingKey: "video" });
const twice: number = await conn.autoretry((n: number) => n * 2)(21);
const declared: string = await conn.autoretry(() => conn.declare(video))();

await conn.release();

export { id, correlationId, depth, timeout, routingKey, twice, declared };
