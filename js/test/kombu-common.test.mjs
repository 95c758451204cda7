// kombu.common and kombu.pidbox in JavaScript (issue #21 item 3), on memory://: Broadcast,
// eventloop, itermessages, sendReply / collectReplies, Mailbox / Node (call, cast, multiCall,
// patterns, errors). (pidbox-interop.test.mjs: the same with Python's kombu over RabbitMQ.)
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  Connection, Exchange, Queue, Broadcast, Mailbox, Node, eventloop, itermessages, drainConsumer, sendReply, collectReplies,
  uuid, ValueError, TimeoutError,
} from "../index.js";

let n = 0;
const unique = (what) => `${what}-${process.pid}-${Date.now()}-${n++}`;
const vhost = () => `memory:///${unique("common")}`;

test("Broadcast: every consumer gets its own auto-deleted queue on the fanout exchange; each gets every message", async () => {
  const url = vhost();
  const [c1, c2, pub] = [new Connection(url), new Connection(url), new Connection(url)];
  try {
    const name = unique("news");
    const b1 = new Broadcast(name);
    const b2 = new Broadcast(name);
    assert.match(b1.name, /^bcast\.[0-9a-f-]{36}$/);
    assert.notEqual(b1.name, b2.name);
    assert.equal(b1.alias, name);
    assert.equal(b1.autoDelete, true);
    assert.equal(b1.exchange.name, name);
    assert.equal(b1.exchange.type, "fanout");
    assert.equal(new Broadcast(name, { queue: "fixed" }).name, "fixed");
    assert.match(new Broadcast(name, { queue: "fixed", unique: true }).name, /^fixed\.[0-9a-f-]{36}$/);
    const s1 = c1.Consumer(b1);
    const s2 = c2.Consumer(b2);
    await s1.consume();
    await s2.consume();
    await pub.Producer().publish({ hello: "all" }, { exchange: b1.exchange });
    assert.deepEqual((await s1.next({ timeout: 10000 })).payload, { hello: "all" });
    assert.deepEqual((await s2.next({ timeout: 10000 })).payload, { hello: "all" });
    await s1.cancel();
    await c1.release();
    // Auto-deleted with its consumer.
    assert.ok(!pub.snapshot().queues.some((q) => q.name === b1.name));
    assert.throws(() => new Broadcast(""), ValueError);
    assert.throws(() => new Broadcast(name, { queue: 5 }), ValueError);
  } finally {
    await Promise.all([c1, c2, pub].map((c) => c.release().catch(() => {})));
  }
});

test("eventloop drains with limit and timeout; itermessages and drainConsumer yield [body, message]", async () => {
  const conn = new Connection(vhost());
  try {
    const q = new Queue(unique("loop"));
    const got = [];
    const consumer = conn.Consumer(q, { callbacks: [(b, m) => { got.push(b); m.ack(); }] });
    await consumer.consume();
    const producer = conn.Producer();
    for (let i = 0; i < 3; i++) await producer.publish(i, { routingKey: q.name });
    // (One event may bring several messages: loop until the three came.)
    let events = 0;
    for await (const _ of eventloop(conn, { timeout: 10000 })) {
      events++;
      if (got.length === 3) break;
    }
    assert.ok(events >= 1 && events <= 3, `${events} events`);
    assert.deepEqual(got, [0, 1, 2]);
    await producer.publish(3, { routingKey: q.name });
    for await (const _ of eventloop(conn, { limit: 1, timeout: 10000 }));
    assert.deepEqual(got, [0, 1, 2, 3]);
    // A timeout ends the loop with TimeoutError, unless ignored.
    await assert.rejects(async () => { for await (const _ of eventloop(conn, { timeout: 50 })); }, TimeoutError);
    let ignored = 0;
    for await (const _ of eventloop(conn, { limit: 2, timeout: 20, ignoreTimeouts: true })) ignored++;
    assert.equal(ignored, 0);
    await consumer.cancel();

    const q2 = new Queue(unique("iter"));
    await conn.declare(q2);
    for (const b of ["a", "b", "c"]) await producer.publish(b, { routingKey: q2.name });
    const bodies = [];
    for await (const [body, message] of itermessages(conn, q2, { limit: 2, timeout: 5000 })) {
      bodies.push(body);
      message.ack();
    }
    assert.deepEqual(bodies, ["a", "b"]);
    const rest = [];
    for await (const [body, m] of drainConsumer(conn.Consumer(q2), { limit: 5, timeout: 100 })) { rest.push(body); m.ack(); }
    assert.deepEqual(rest, ["c"]);
  } finally {
    await conn.release();
  }
});

test("sendReply / collectReplies: request-reply with replyTo and correlationId, in the request's serializer", async () => {
  const conn = new Connection(vhost());
  try {
    const rpc = new Exchange(unique("rpc"), { type: "direct" });
    const requests = new Queue(unique("requests"), { exchange: rpc, routingKey: "req" });
    const replies = new Queue(unique("replies"), { exchange: rpc, routingKey: unique("client") });
    await conn.declare(requests);
    await conn.declare(replies);
    const producer = conn.Producer();
    const id = uuid();
    await producer.publish({ n: 20 }, { exchange: rpc, routingKey: "req", replyTo: replies.routingKey, correlationId: id });
    const server = conn.Consumer(requests);
    const req = await server.next({ timeout: 10000 });
    await sendReply(rpc, req, { result: req.payload.n * 2 }, { producer });
    req.ack();
    const got = [];
    for await (const body of collectReplies(conn, replies, { limit: 1, timeout: 10000, noAck: false })) got.push(body);
    assert.deepEqual(got, [{ result: 40 }]);
    // The correlation id came back.
    await producer.publish({ n: 1 }, { exchange: rpc, routingKey: "req", replyTo: replies.routingKey, correlationId: "c-2" });
    const req2 = await server.next({ timeout: 10000 });
    await sendReply(rpc, req2, "ok", { producer, headers: { extra: 1 } });
    const all = [];
    for await (const bm of itermessages(conn, replies, { timeout: 10000 })) all.push(bm);
    const [[body, m]] = all;
    assert.equal(body, "ok");
    assert.equal(m.properties.correlationId, "c-2");
    assert.deepEqual(m.headers, { extra: 1 });
    m.ack();
    assert.throws(() => sendReply(rpc, req2, 1, {}), ValueError);
    await producer.publish("no reply-to", { routingKey: requests.name, exchange: rpc });
    await producer.publish("x", { exchange: rpc, routingKey: "req" });
    const noReplyTo = await server.next({ timeout: 10000 });
    assert.throws(() => sendReply(rpc, noReplyTo, 1, { producer }), ValueError);
    await server.cancel();
  } finally {
    await conn.release();
  }
});

/** Drain `conn` until `done()` (the nodes' side of a test, run alongside the mailbox's). */
async function serve(conn, done) {
  while (!done()) {
    try {
      await conn.drainEvents({ timeout: 50 });
    } catch (e) {
      if (!(e instanceof TimeoutError)) throw e;
    }
  }
}

test("pidbox: Mailbox.call / multiCall / cast / abcast to Nodes, patterns, handler errors", async () => {
  const url = vhost();
  const [nodesConn, clientConn] = [new Connection(url), new Connection(url)];
  let stop = false;
  try {
    const ns = unique("ctl");
    const serverSide = new Mailbox(ns).bind(nodesConn);
    const seen = [];
    const handlers = {
      ping: () => "pong",
      add: (state, { a, b }) => a + b,
      slow: async (state, { ms }) => { await new Promise((r) => setTimeout(r, ms)); return "late"; },
      note: (state, args) => { seen.push([state.name, args]); },
      fail: () => { throw new Error("boom"); },
    };
    const w1 = serverSide.Node("worker1@host", { state: { name: "w1" }, handlers });
    const w2 = serverSide.Node("worker2@host", { state: { name: "w2" }, handlers });
    assert.ok(w1 instanceof Node);
    await w1.listen();
    await w2.listen();
    const serving = serve(nodesConn, () => stop);

    const mailbox = new Mailbox(ns, { connection: clientConn });
    assert.deepEqual(await mailbox.call(["worker1@host"], "add", { a: 2, b: 3 }, { timeout: 5000 }), [{ "worker1@host": 5 }]);
    const all = await mailbox.multiCall("ping", {}, { timeout: 1000 });
    assert.deepEqual(all.sort((x, y) => Object.keys(x)[0].localeCompare(Object.keys(y)[0])), [{ "worker1@host": "pong" }, { "worker2@host": "pong" }]);
    const viaCallback = [];
    await mailbox.call(["worker1@host", "worker2@host"], "ping", {}, { timeout: 5000, callback: (r) => viaCallback.push(r) });
    assert.equal(viaCallback.length, 2);
    const [err] = await mailbox.call(["worker2@host"], "fail", {}, { timeout: 5000 });
    assert.match(err["worker2@host"].error, /boom/);
    const [missing] = await mailbox.call(["worker2@host"], "nope", {}, { timeout: 5000 });
    assert.match(missing["worker2@host"].error, /no handler/);
    // A reply that comes after the timeout is not mixed into the next call's replies.
    assert.deepEqual(await mailbox.call(["worker1@host"], "slow", { ms: 400 }, { timeout: 100 }), []);
    assert.deepEqual(await mailbox.call(["worker1@host"], "add", { a: 1, b: 1 }, { timeout: 5000 }), [{ "worker1@host": 2 }]);

    await mailbox.cast(["worker2@host"], "note", { x: 1 });
    await mailbox.abcast("note", { x: 2 });
    const globbed = await mailbox.multiCall("ping", {}, { timeout: 500, pattern: "worker2@*", matcher: "glob" });
    assert.deepEqual(globbed, [{ "worker2@host": "pong" }]);
    const deadline = Date.now() + 10000;
    while (seen.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(seen.map(([who, a]) => `${who}:${a.x}`).sort(), ["w1:2", "w2:1", "w2:2"]);

    await assert.rejects(mailbox.call("worker1@host", "ping"), ValueError);
    await assert.rejects(new Mailbox(ns).call(["w"], "ping"), ValueError);
    assert.throws(() => new Mailbox(ns, { queueDurable: true }), ValueError);
    assert.throws(() => new Node("x", {}), ValueError);
  } finally {
    stop = true;
    await new Promise((r) => setTimeout(r, 100));
    await Promise.all([nodesConn.release(), clientConn.release()]);
  }
});
