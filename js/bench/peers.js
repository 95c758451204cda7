// The usual workload (N JSON messages of ~64 B published to a direct exchange, then consumed
// with prefetch 100 and acked one by one) written for two other browser clients, to compare
// with kombu-wasm's roundtrip.js in the same page (test/site/peers.html, driven by peers.mjs):
//   - @cloudamqp/amqp-client's AMQPWebSocketClient (AMQP 0-9-1 over WebSocket), through
//     kombu-gateway's /amqp relay, as kombu-wasm's amqp+ws:// goes;
//   - @stomp/stompjs over RabbitMQ's Web-STOMP plugin.
// The bodies are the bytes Kombu sends (Python's json.dumps spacing), published with Kombu's
// properties where the protocol has them; like roundtrip.js, the consumers ack without
// parsing the body. Each returns roundtrip.js's result shape.

const body = (i) => `{"id": ${i}, "task": "bench.add", "args": [1, 2], "kwargs": {}}`;
const unique = (prefix) => `${prefix}-${Math.random().toString(36).slice(2)}`;

function result(n, started, published) {
  const total = performance.now() - started;
  return { messages: n, publish_seconds: (published - started) / 1000, total_seconds: total / 1000, msgs_per_sec: n / (total / 1000) };
}

// A promise resolved by the n-th call of the returned tick().
function counter(n) {
  let seen = 0;
  let done;
  const finished = new Promise((r) => (done = r));
  return { finished, tick: () => ++seen === n && done() };
}

// { url: "ws://host:port/amqp", vhost, username, password }: the relay passes the user and
// password to RabbitMQ, as it does for kombu-wasm's amqp+ws:// URL.
export async function amqpClient({ AMQPWebSocketClient }, n, { url, vhost, username, password }) {
  const name = unique("bench-amqp-client");
  // connect() rejects with the WebSocket's close or error Event, not an Error.
  const conn = await new AMQPWebSocketClient(url, vhost, username, password).connect().catch((e) => {
    throw e instanceof Error ? e : new Error(`cannot connect to ${url}: WebSocket ${e?.type ?? e}${e?.code ? ` (code ${e.code})` : ""}`);
  });
  try {
    const ch = await conn.channel();
    // Not durable, deleted when unused: as roundtrip.js declares them.
    await ch.exchangeDeclare(name, "direct", { durable: false, autoDelete: true });
    await ch.queueDeclare(name, { durable: false, autoDelete: true, exclusive: false });
    await ch.queueBind(name, name, "bench");
    // Kombu's defaults: persistent (not written to disk on a non-durable queue).
    const properties = { contentType: "application/json", contentEncoding: "utf-8", deliveryMode: 2, priority: 0 };
    const started = performance.now();
    for (let i = 0; i < n; i++) await ch.basicPublish(name, "bench", body(i), properties);
    const published = performance.now();
    await ch.prefetch(100);
    const { finished, tick } = counter(n);
    const consumer = await ch.basicConsume(name, { noAck: false }, (msg) => {
      msg.ack();
      tick();
    });
    // wait() settles when the consumer ends: before the last message, that is a failure.
    const closed = consumer.wait().then(() => Promise.reject(new Error("the amqp-client consumer was cancelled before the last message")));
    closed.catch(() => {});
    await Promise.race([finished, closed]);
    const r = result(n, started, published);
    await ch.basicCancel(consumer.tag);
    await ch.queueDelete(name);
    return r;
  } finally {
    await conn.close().catch(() => {});
  }
}

// { url: "ws://host:15674/ws", login, passcode, vhost }. A /queue/NAME destination: the
// default exchange (direct) routes to the queue NAME, which RabbitMQ declares on the first
// SEND with the headers given (the SUBSCRIBE must repeat them). STOMP has no way to declare
// an exchange or a binding.
export async function stomp({ Client }, n, { url, login, passcode, vhost }) {
  const destination = `/queue/${unique("bench-stomp")}`;
  const queue = { durable: "false", "auto-delete": "true" };
  let fail;
  const failed = new Promise((_, reject) => (fail = reject));
  failed.catch(() => {});
  let connected;
  const ready = new Promise((r) => (connected = r));
  const client = new Client({
    brokerURL: url,
    connectHeaders: { login, passcode, host: vhost },
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    debug: () => {},
    onConnect: () => connected(),
    onStompError: (frame) => fail(new Error(`STOMP ERROR frame: ${frame.headers.message ?? ""} ${frame.body}`)),
    onWebSocketClose: (e) => fail(new Error(`the Web-STOMP WebSocket ${url} closed (code ${e.code})`)),
  });
  client.activate();
  try {
    await Promise.race([ready, failed]);
    const headers = { ...queue, "content-type": "application/json", "content-encoding": "utf-8" };
    const started = performance.now();
    for (let i = 0; i < n - 1; i++) client.publish({ destination, body: body(i), headers });
    // publish() only writes to the socket: a receipt on the last SEND says the broker has
    // taken them all (frames are handled in order).
    const receipt = new Promise((r) => client.watchForReceipt("last", r));
    client.publish({ destination, body: body(n - 1), headers: { ...headers, receipt: "last" } });
    await Promise.race([receipt, failed]);
    const published = performance.now();
    const { finished, tick } = counter(n);
    const subscription = client.subscribe(
      destination,
      (msg) => {
        msg.ack();
        tick();
      },
      { ...queue, ack: "client-individual", "prefetch-count": "100" },
    );
    await Promise.race([finished, failed]);
    const r = result(n, started, published);
    // The queue is auto-delete: it goes with its last subscription.
    subscription.unsubscribe();
    return r;
  } finally {
    await client.deactivate();
  }
}
