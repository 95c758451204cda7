// Connection events "blocked" and "unblocked" (AMQP's connection.blocked / unblocked, issue
// #21 item 2) over gateway+ws:// to a real kombu-gateway on its embedded broker with a small
// --memory-high-watermark (a gateway of its own: the limit is process-wide): publishing past
// the watermark says "blocked" (with the broker's reason) to every client and the publish
// past it is refused; consuming brings the queues under it and says "unblocked"; publishes
// are accepted again. (RabbitMQ's memory alarm is raised by one Rust test only,
// native-gateway/tests/blocked.rs, so that it never overlaps itself on the shared RabbitMQ.)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startGateway, runNode, lastJson } from "./gateway-process.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const ws = JSON.stringify(join(here, "..", "ws.js"));
let gateway;

before(async () => {
  gateway = await startGateway(["--memory-high-watermark", "3000"]);
});

after(() => gateway?.child.kill("SIGTERM"));

test("gateway+ws:// clients see blocked then unblocked as the embedded broker crosses its memory high watermark", { timeout: 120000 }, () => {
  const url = `gateway+ws://${gateway.addr}/gateway`;
  const r = lastJson(
    runNode(
      `
      import { Connection, Queue } from ${ws};
      const url = ${JSON.stringify(url)};
      const listen = (conn) => {
        const said = [];
        conn.on("blocked", (e) => said.push(e.type + ": " + e.reason));
        conn.on("unblocked", (e) => said.push(e.type));
        return said;
      };
      // Until \`what\` was said: the events are received as the connection's events are drained.
      const until = async (conn, said, what) => {
        const deadline = Date.now() + 30000;
        while (!said.some((s) => s.startsWith(what))) {
          if (Date.now() > deadline) throw new Error("no " + what + " event: " + JSON.stringify(said));
          await conn.drainEvents({ timeout: 200 }).catch((e) => { if (e.name !== "TimeoutError") throw e; });
        }
      };
      const publisher = new Connection(url, { confirmPublish: true });
      const bystander = new Connection(url);
      const [onPublisher, onBystander] = [listen(publisher), listen(bystander)];
      const q = new Queue("blocked.js." + process.pid, { durable: false });
      await publisher.declare(q);
      await bystander.connect();
      const producer = publisher.Producer();
      const body = "x".repeat(1000);
      await producer.publish(body, { routingKey: q.name });
      await producer.publish(body, { routingKey: q.name });
      // Under the watermark: nothing said.
      await publisher.drainEvents({ timeout: 300 }).catch(() => {});
      const saidUnder = [...onPublisher];
      await producer.publish(body, { routingKey: q.name });
      await until(publisher, onPublisher, "blocked");
      await until(bystander, onBystander, "blocked");
      const refused = await producer.publish(body, { routingKey: q.name }).then(() => "resolved", (e) => e.name);
      const consumer = bystander.Consumer([q]);
      for (let i = 0; i < 3; i++) (await consumer.next({ timeout: 20000 })).ack();
      await until(bystander, onBystander, "unblocked");
      await until(publisher, onPublisher, "unblocked");
      const after = await producer.publish(body, { routingKey: q.name }).then(() => "resolved", (e) => e.name);
      const last = await consumer.next({ timeout: 20000 });
      last.ack();
      const delivered = last.payload.length;
      await consumer.cancel();
      const left = await publisher.purge(q);
      await publisher.delete(q);
      await publisher.release();
      await bystander.release();
      console.log(JSON.stringify({ saidUnder, onPublisher, onBystander, refused, after, delivered, left }));
    `,
      { timeout: 100000 },
    ),
  );
  assert.deepEqual(r.saidUnder, [], JSON.stringify(r));
  assert.deepEqual(r.onPublisher, ["blocked: low on memory", "unblocked"], JSON.stringify(r));
  assert.deepEqual(r.onBystander, ["blocked: low on memory", "unblocked"], JSON.stringify(r));
  // Blocked, the embedded broker refuses the publish (a nack with confirmPublish), as before.
  assert.equal(r.refused, "MessageNacked", JSON.stringify(r));
  assert.equal(r.after, "resolved", JSON.stringify(r));
  assert.equal(r.delivered, 1000, JSON.stringify(r));
  assert.equal(r.left, 0, JSON.stringify(r));
});

test("on() refuses an event it does not know, naming those it does", () => {
  const r = lastJson(
    runNode(`
      import { Connection } from ${ws};
      const conn = new Connection("memory://");
      let error;
      try { conn.on("block", () => {}); } catch (e) { error = [e.name, e.message]; }
      console.log(JSON.stringify({ error }));
    `),
  );
  assert.equal(r.error[0], "ValueError");
  assert.match(r.error[1], /connected, disconnected, reconnecting, blocked, unblocked/);
});
