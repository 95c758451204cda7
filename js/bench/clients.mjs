// `node --experimental-websocket js/bench/clients.mjs CLIENTS MESSAGES URL`: CLIENTS
// browser-style clients (one npm-package Connection each, all in this Node process) on one
// gateway, each on its own queue:
//   1. throughput: each publishes MESSAGES JSON messages (~64 B) while its consumer
//      (prefetch 100) takes and acks them; latency = receive time - publish time;
//   2. ping-pong: each sends 200 messages one at a time (publish, receive, ack, next): the
//      round-trip latency with CLIENTS clients doing the same.
// Prints one JSON line.
import * as kombu from "../ws.js";

const clients = Number(process.argv[2] ?? 10);
const messages = Number(process.argv[3] ?? 2000);
const url = process.argv[4] ?? "gateway+ws://127.0.0.1:8765/gateway";
const PINGS = 200;
const { Connection, Exchange, Queue } = kombu;

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] : NaN;
}

async function client(i, run, count, oneAtATime) {
  const name = `bench-${run}-${i}`;
  const exchange = new Exchange(name, { type: "direct", autoDelete: true });
  const queue = new Queue(name, { exchange, routingKey: "k", autoDelete: true });
  const conn = new Connection(`${url}?vhost=/bench-${run}`);
  await conn.declare(queue);
  const producer = conn.Producer();
  const consumer = conn.Consumer([queue], { prefetchCount: 100 });
  const latencies = [];
  const received = (async () => {
    let seen = 0;
    for await (const message of consumer) {
      latencies.push(performance.now() - message.payload.t);
      message.ack();
      message.free();
      if (++seen === count) break;
      if (oneAtATime) oneAtATime.next();
    }
  })();
  for (let n = 0; n < count; n++) {
    await producer.publish({ id: n, task: "bench.add", args: [1, 2], t: performance.now() }, { exchange, routingKey: "k" });
    if (oneAtATime && n + 1 < count) await oneAtATime.wait();
  }
  await received;
  await conn.release();
  return latencies;
}

// A one-slot signal: the consumer tells the publisher its message arrived.
function pingPong() {
  let resolve;
  let ready = new Promise((r) => (resolve = r));
  return {
    next() { resolve(); },
    async wait() { await ready; ready = new Promise((r) => (resolve = r)); },
  };
}

const run = Math.random().toString(36).slice(2);
let t0 = performance.now();
const all = (await Promise.all(Array.from({ length: clients }, (_, i) => client(i, run, messages, null)))).flat().sort((a, b) => a - b);
const seconds = (performance.now() - t0) / 1000;
t0 = performance.now();
const pings = (await Promise.all(Array.from({ length: clients }, (_, i) => client(i, `${run}p`, PINGS, pingPong())))).flat().sort((a, b) => a - b);
console.log(JSON.stringify({
  impl: `kombu-wasm ${kombu.version} (wasm, Node ${process.versions.node})`,
  clients,
  messages_per_client: messages,
  msgs_per_sec: (clients * messages) / seconds,
  loaded_p50_ms: percentile(all, 50),
  loaded_p99_ms: percentile(all, 99),
  pingpong_p50_ms: percentile(pings, 50),
  pingpong_p99_ms: percentile(pings, 99),
  pingpong_round_trips_per_sec: (clients * PINGS) / ((performance.now() - t0) / 1000),
}));
