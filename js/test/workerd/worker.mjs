// A Cloudflare worker using kombu-wasm: the package README's quick start on memory://, then
// a topic exchange and a SimpleQueue, and zstd compression from kombu-wasm/codecs, answered
// as JSON.
import { Connection, Exchange, Queue, version } from "kombu-wasm";
import "kombu-wasm/codecs";

export default {
  async fetch() {
    const media = new Exchange("media", { type: "direct", durable: true });
    const video = new Queue("video", { exchange: media, routingKey: "video" });
    const conn = new Connection("memory://");
    const producer = conn.Producer({ serializer: "json" });
    await producer.publish({ name: "/tmp/lolcat1.avi", size: 1301013 }, { exchange: media, routingKey: "video", declare: [video] });
    const consumer = conn.Consumer([video], { accept: ["json"] });
    let quickStart;
    for await (const message of consumer) {
      quickStart = message.payload;
      await message.ack();
      break;
    }
    const logs = new Exchange("logs", { type: "topic" });
    const errors = new Queue("errors", { exchange: logs, routingKey: "*.error" });
    await conn.declare(errors);
    await producer.publish("disk full", { exchange: logs, routingKey: "db.info" });
    await producer.publish("disk failed", { exchange: logs, routingKey: "db.error" });
    const q = await conn.SimpleQueue("errors");
    const m = await q.get({ timeout: 1000 });
    m.ack();
    const left = await q.qsize();
    // zstd, from the separately loaded codecs module.
    await q.put({ big: "x".repeat(1000) }, { compression: "zstd" });
    const z = await q.get({ timeout: 1000 });
    z.ack();
    const zstd = [z.headers.compression, z.payload.big.length];
    await conn.release();
    return Response.json({ version, quickStart, routed: m.payload, left, zstd });
  },
};
