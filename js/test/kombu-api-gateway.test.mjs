// Kombu's API in JavaScript over gateway+ws:// to RabbitMQ, where the broker's answers come
// later than on memory://: a returned mandatory publish reaches onReturn, callbacks run from
// drainEvents, and bound entities (exchange-to-exchange bindings, get, conditional deletes).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startGateway, rabbitUp, runNode, lastJson } from "./gateway-process.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const ws = join(here, "..", "ws.js");
let gateway;
let addr;
let why = "";

before(async () => {
  if (!(await rabbitUp())) {
    why = "no RabbitMQ on 127.0.0.1:5672";
    assert.ok(!process.env.CI, `${why}: required under CI`);
    return;
  }
  ({ child: gateway, addr } = await startGateway(["--broker", "amqp://guest:guest@127.0.0.1:5672//"]));
});

after(() => gateway?.kill("SIGTERM"));

test("gateway+ws:// to RabbitMQ: onReturn, callbacks from drainEvents, bound entities", { timeout: 60000 }, (t) => {
  if (why) return t.skip(why);
  const id = `${process.pid}-${Date.now()}`;
  const out = runNode(`
    import { Connection, Exchange, Queue, PreconditionFailed } from ${JSON.stringify(ws)};
    const conn = new Connection(${JSON.stringify(`gateway+ws://${addr}/gateway`)});
    const x = new Exchange("api-x-${id}", { type: "direct" });
    const src = new Exchange("api-src-${id}", { type: "fanout", autoDelete: true }).bind(conn);
    const q = new Queue("api-q-${id}", { exchange: x, routingKey: "here" }).bind(conn);
    const result = {};
    try {
      await q.declare();
      const returned = [];
      const producer = conn.Producer({ exchange: x, onReturn: (e, exchange, rk, m) => returned.push([e.name, e.code, exchange, rk, m.payload]) });
      await producer.publish({ lost: true }, { routingKey: "nowhere", mandatory: true });
      await producer.publish({ routed: true }, { routingKey: "here", mandatory: true });
      for (const end = Date.now() + 20000; returned.length === 0 && Date.now() < end;) await new Promise((r) => setTimeout(r, 20));
      result.returned = returned;

      const got = [];
      const consumer = conn.Consumer(q, { callbacks: [(body, m) => { got.push(body); m.ack(); }] });
      await consumer.consume();
      while (got.length < 1) await conn.drainEvents({ timeout: 20000 });
      result.got = got;
      await consumer.cancel();

      await src.declare();
      await x.bind(conn).bindTo(src);
      await producer.publish("via fanout", { exchange: src, routingKey: "here" });
      let m = null;
      for (const end = Date.now() + 20000; !m && Date.now() < end;) m = await q.get({ noAck: true });
      result.viaFanout = m?.payload;
      await producer.publish("stays", { routingKey: "here" });
      try { await q.delete({ ifEmpty: true }); result.ifEmpty = "deleted"; } catch (e) { result.ifEmpty = e instanceof PreconditionFailed ? e.code : String(e); }
    } finally {
      await conn.release();
    }
    // The channel closed by 406 above: clean up on a new connection.
    const c2 = new Connection(${JSON.stringify(`gateway+ws://${addr}/gateway`)});
    result.deleted = await c2.delete(q);
    // (src, auto-deleted, may be gone with its last binding.)
    for (const e of [src, x]) await c2.delete(e).catch((err) => { if (err.code !== 404) throw err; });
    await c2.release();
    console.log(JSON.stringify(result));
  `, { timeout: 60000 });
  const r = lastJson(out);
  assert.deepEqual(r.returned, [["NoRoute", 312, `api-x-${id}`, "nowhere", { lost: true }]]);
  assert.deepEqual(r.got, [{ routed: true }]);
  assert.equal(r.viaFanout, "via fanout");
  assert.equal(r.ifEmpty, 406);
  assert.equal(r.deleted, 1);
});
