// The rest of Kombu's API in JavaScript (issue #21 item 3), on memory://: returned mandatory
// publishes, maybeDeclare, Message.ack({ multiple }) / decode / ackLogError, consumer callbacks
// with drainEvents, addQueue / cancelByQueue / flow, bound entities, dumps / loads /
// unregister / insecure serializers. (kombu-api-gateway.test.mjs: the same over gateway+ws://
// to RabbitMQ.)
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  Connection, Exchange, Queue, BoundQueue, BoundExchange, ValueError, NotFound, PreconditionFailed, MessageStateError,
  ContentDisallowed, DecodeError, SerializerNotInstalled, TimeoutError, registerSerializer, dumps, loads, unregister,
  enableInsecureSerializers, disableInsecureSerializers,
} from "../index.js";

let n = 0;
const unique = (what) => `${what}-${process.pid}-${Date.now()}-${n++}`;
const vhost = () => `memory:///${unique("api")}`;

/** Wait until `f()` is truthy (generous: the machine may be loaded). */
async function until(f, what, ms = 10000) {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("onReturn: a mandatory publish routed nowhere reaches the callback with the message; a routed one does not", async () => {
  const conn = new Connection(vhost());
  try {
    const x = new Exchange(unique("ret"), { type: "direct" });
    const q = new Queue(unique("routed"), { exchange: x, routingKey: "here" });
    await conn.declare(q);
    const returned = [];
    const producer = conn.Producer({ exchange: x, onReturn: (error, exchange, routingKey, message) => returned.push({ error, exchange, routingKey, message }) });
    await producer.publish({ n: 1 }, { routingKey: "nowhere", mandatory: true });
    await producer.publish({ n: 2 }, { routingKey: "here", mandatory: true });
    await producer.publish({ n: 3 }, { routingKey: "nowhere" }); // not mandatory: dropped, as in AMQP
    await until(() => returned.length === 1, "the returned message");
    const [r] = returned;
    assert.equal(r.exchange, x.name);
    assert.equal(r.routingKey, "nowhere");
    assert.deepEqual(r.message.payload, { n: 1 });
    assert.equal(r.error.code, 312);
    assert.match(r.error.message, /NO_ROUTE/);
    // The routed one arrived; nothing else was returned meanwhile.
    const m = await q.bind(conn).get();
    assert.deepEqual(m.payload, { n: 2 });
    m.ack();
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(returned.length, 1);
    assert.throws(() => producer.onReturn("nope"), ValueError);
  } finally {
    await conn.release();
  }
});

test("maybeDeclare declares once per connection", async () => {
  const conn = new Connection(vhost());
  try {
    const producer = conn.Producer();
    const q = new Queue(unique("maybe"));
    assert.equal(await producer.maybeDeclare(q), true);
    assert.equal(await producer.maybeDeclare(q), false);
    assert.equal(await producer.maybeDeclare(new Exchange(unique("mx"), { type: "fanout" })), true);
    assert.ok(conn.snapshot().queues.some((i) => i.name === q.name));
    assert.throws(() => producer.maybeDeclare("not an entity"), ValueError);
  } finally {
    await conn.release();
  }
});

test("Message.ack({ multiple }) settles every earlier message; decode(); ackLogError logs instead of throwing", async () => {
  const conn = new Connection(vhost());
  try {
    const q = new Queue(unique("multi"));
    const producer = conn.Producer();
    for (let i = 0; i < 3; i++) await producer.publish({ i }, { routingKey: q.name, declare: [q] });
    const consumer = conn.Consumer(q, { prefetchCount: 10 });
    const ms = [];
    for (let i = 0; i < 3; i++) ms.push(await consumer.next({ timeout: 10000 }));
    assert.deepEqual(ms.map((m) => m.decode()), [{ i: 0 }, { i: 1 }, { i: 2 }]);
    ms[1].ack({ multiple: true });
    const info = () => conn.snapshot().queues.find((i) => i.name === q.name);
    assert.equal(info().messagesUnacknowledged, 1);
    assert.throws(() => ms[2].ack({ multiple: "yes" }), ValueError);
    ms[2].ack();
    assert.equal(info().messagesUnacknowledged, 0);
    // A second settlement: ack() throws, ackLogError() logs it to the logger given.
    assert.throws(() => ms[2].ack(), MessageStateError);
    const logged = [];
    ms[2].ackLogError({ error: (line) => logged.push(line) });
    assert.equal(logged.length, 1);
    assert.match(logged[0], /Couldn't ack \d+, reason: MessageStateError/);
    await consumer.cancel();
  } finally {
    await conn.release();
  }
});

test("consumer callbacks run from drainEvents (Kombu's model); onMessage; onDecodeError; a throwing callback reaches drainEvents", async () => {
  const conn = new Connection(vhost());
  try {
    const q = new Queue(unique("cb"));
    const producer = conn.Producer();
    const got = [];
    const consumer = conn.Consumer(q, { callbacks: [(body, message) => { got.push(body); message.ack(); }] });
    await consumer.consume();
    await producer.publish({ a: 1 }, { routingKey: q.name });
    await producer.publish("text", { routingKey: q.name });
    await conn.drainEvents({ timeout: 10000 });
    while (got.length < 2) await conn.drainEvents({ timeout: 10000 });
    assert.deepEqual(got, [{ a: 1 }, "text"]);
    consumer.registerCallback((body) => got.push(["second", body]));
    await producer.publish(3, { routingKey: q.name });
    await conn.drainEvents({ timeout: 10000 });
    assert.deepEqual(got.slice(2), [3, ["second", 3]]);
    await consumer.cancel();

    // A body the consumer does not accept: onDecodeError gets it, the callbacks do not.
    const q2 = new Queue(unique("decode"));
    const errors = [];
    const strict = conn.Consumer(q2, { accept: ["json"], callbacks: [(b) => got.push(b)], onDecodeError: (message, error) => { errors.push(error); message.reject(); } });
    await strict.consume();
    await producer.publish(new TextEncoder().encode("<xml/>"), { routingKey: q2.name, contentType: "application/xml", contentEncoding: "utf-8" });
    await conn.drainEvents({ timeout: 10000 });
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof ContentDisallowed, errors[0]);
    await strict.cancel();

    // Without onDecodeError the decode error is thrown from drainEvents, as in Kombu.
    const q3 = new Queue(unique("throw"));
    const plain = conn.Consumer(q3, { callbacks: [() => assert.fail("not decodable")] });
    await plain.consume();
    await producer.publish(new TextEncoder().encode("{not json"), { routingKey: q3.name, contentType: "application/json", contentEncoding: "utf-8" });
    await assert.rejects(conn.drainEvents({ timeout: 10000 }), DecodeError);
    await plain.cancel();

    // onMessage replaces the callbacks and gets the message undecoded.
    const q4 = new Queue(unique("onmessage"));
    const raw = [];
    const withOnMessage = conn.Consumer(q4, { onMessage: (m) => { raw.push(new TextDecoder().decode(m.body)); m.ack(); }, callbacks: [() => assert.fail("onMessage replaces callbacks")] });
    await withOnMessage.consume();
    await producer.publish({ k: "v" }, { routingKey: q4.name });
    await conn.drainEvents({ timeout: 10000 });
    assert.deepEqual(raw, ['{"k": "v"}']);
    await withOnMessage.cancel();

    assert.throws(() => conn.Consumer(q, { callbacks: ["x"] }), ValueError);
    assert.throws(() => conn.Consumer(q, { onDecodeError: 5 }), ValueError);
    await assert.rejects(conn.drainEvents({ timeout: 50 }), TimeoutError);
  } finally {
    await conn.release();
  }
});

test("addQueue, cancelByQueue and consumingFrom; flow pauses and resumes deliveries", async () => {
  const conn = new Connection(vhost());
  try {
    const [a, b] = [new Queue(unique("qa")), new Queue(unique("qb"))];
    const consumer = conn.Consumer(a);
    await consumer.consume();
    assert.equal(await consumer.addQueue(b), b.name);
    await consumer.consume();
    assert.ok(consumer.consumingFrom(a) && consumer.consumingFrom(b.name));
    const producer = conn.Producer();
    await producer.publish("to b", { routingKey: b.name });
    const m = await consumer.next({ timeout: 10000 });
    assert.equal(m.payload, "to b");
    m.ack();
    await consumer.cancelByQueue(b);
    assert.ok(!consumer.consumingFrom(b) && consumer.consumingFrom(a));
    await producer.publish("b waits", { routingKey: b.name });
    await producer.publish("to a", { routingKey: a.name });
    assert.equal((await consumer.next({ timeout: 10000 })).payload, "to a");
    assert.equal(conn.snapshot().queues.find((q) => q.name === b.name).messagesReady, 1);
    assert.throws(() => consumer.flow("off"), ValueError);
    await consumer.flow(false);
    await producer.publish("paused", { routingKey: a.name });
    await assert.rejects(consumer.next({ timeout: 300 }), TimeoutError);
    await consumer.flow(true);
    assert.equal((await consumer.next({ timeout: 10000 })).payload, "paused");
    assert.throws(() => consumer.addQueue(5), ValueError);
    await consumer.cancel();
  } finally {
    await conn.release();
  }
});

test("bound entities: bindTo / unbindFrom (exchange to exchange and queue), unbind, get, delete ifUnused / ifEmpty", async () => {
  const conn = new Connection(vhost());
  try {
    const source = new Exchange(unique("src"), { type: "fanout" }).bind(conn);
    const dest = new Exchange(unique("dst"), { type: "direct" }).bind(conn);
    assert.ok(dest instanceof BoundExchange && dest.connection === conn);
    await source.declare();
    await dest.declare();
    await dest.bindTo(source);
    const q = new Queue(unique("bq"), { exchange: dest, routingKey: "k" }).bind(conn);
    assert.ok(q instanceof BoundQueue);
    await q.declare();
    const producer = conn.Producer();
    await producer.publish("via fanout", { exchange: source, routingKey: "k" });
    const m = await q.get();
    assert.equal(m.payload, "via fanout");
    m.ack();
    assert.equal(await q.get(), null);
    await dest.unbindFrom(source);
    await producer.publish("lost", { exchange: source, routingKey: "k" });
    assert.equal(await q.get(), null);

    // A second binding of the queue; unbind() removes the one of its own exchange.
    const other = new Exchange(unique("other"), { type: "topic" }).bind(conn);
    await other.declare();
    await q.bindTo(other, { routingKey: "a.*" });
    await producer.publish("topic", { exchange: other, routingKey: "a.b" });
    assert.equal((await q.get({ noAck: true })).payload, "topic");
    await q.unbind();
    await producer.publish("direct", { exchange: dest, routingKey: "k" });
    assert.equal(await q.get(), null);
    await q.unbindFrom(other, { routingKey: "a.*" });
    const bindings = conn.snapshot().bindings.filter((b) => b.destination === q.name && b.source !== "");
    assert.deepEqual(bindings, []);

    // get with accept refuses what it does not accept (the message can still be settled).
    await producer.publish("plain text", { routingKey: q.name });
    const refused = await q.get({ accept: ["json"] });
    assert.throws(() => refused.payload, ContentDisallowed);
    refused.ack();

    // delete ifEmpty / ifUnused refuse (406) while the condition does not hold.
    await producer.publish("keep", { routingKey: q.name });
    await assert.rejects(q.delete({ ifEmpty: true }), PreconditionFailed);
    const c = conn.Consumer(q);
    await c.consume();
    await assert.rejects(new Queue(q.name).bind(conn).delete({ ifUnused: true }), PreconditionFailed);
    await c.cancel();
    assert.equal(await new Queue(q.name).bind(conn).delete(), 1);
    await assert.rejects(q.get(), NotFound);
    await dest.bindTo(source);
    await assert.rejects(source.delete({ ifUnused: true }), PreconditionFailed);
    await source.delete();
    assert.throws(() => dest.bindTo(42), ValueError);
    assert.throws(() => new Queue("x").bind({}), ValueError);
    assert.throws(() => conn.delete(new Queue("x"), { ifEmpty: "yes" }), ValueError);
  } finally {
    await conn.release();
  }
});

test("dumps / loads as Kombu's (Python's JSON separators), accept checked, unregister, insecure serializers", async () => {
  const [ct, ce, bytes] = dumps({ a: [1, 2.5, "x"] });
  assert.equal(ct, "application/json");
  assert.equal(ce, "utf-8");
  assert.equal(new TextDecoder().decode(bytes), '{"a": [1, 2.5, "x"]}');
  assert.deepEqual(loads(bytes, ct, ce), { a: [1, 2.5, "x"] });
  assert.deepEqual(dumps("text").slice(0, 2), ["text/plain", "utf-8"]);
  assert.deepEqual(dumps(new Uint8Array([1, 2])), ["application/data", "binary", new Uint8Array([1, 2])]);
  assert.equal(loads('"s"', "application/json", "utf-8", { accept: ["json"] }), "s");
  assert.throws(() => loads("x", "text/plain", "utf-8", { accept: ["json"] }), ContentDisallowed);
  assert.throws(() => dumps(new Date()), /EncodeError|JSON cannot carry/);
  assert.throws(() => dumps({}, "nope"), SerializerNotInstalled);
  assert.throws(() => loads(5, "application/json"), ValueError);

  // A serializer of our own: registered, insecure until enabled, then unregistered.
  const name = unique("rev");
  registerSerializer(name, { contentType: `application/x-${name}`, encode: (b) => JSON.stringify(b).split("").reverse().join(""), decode: (b) => JSON.parse(new TextDecoder().decode(b).split("").reverse().join("")) });
  const [ct2, ce2, body2] = dumps([1, 2], name);
  assert.equal(ct2, `application/x-${name}`);
  assert.deepEqual(loads(body2, ct2, ce2, { accept: [name] }), [1, 2]);
  disableInsecureSerializers(["json"]);
  assert.throws(() => loads(body2, ct2, ce2), ContentDisallowed);
  assert.deepEqual(loads(body2, ct2, ce2, { force: true }), [1, 2]);
  enableInsecureSerializers([name]);
  assert.deepEqual(loads(body2, ct2, ce2), [1, 2]);
  enableInsecureSerializers(); // Kombu's default list: those installed (no yaml/msgpack here) — no error
  assert.throws(() => enableInsecureSerializers(["nope"]), SerializerNotInstalled);
  unregister(name);
  assert.throws(() => dumps([1], name), SerializerNotInstalled);
  assert.throws(() => unregister(name), SerializerNotInstalled);
});
