// The gateway's /amqp relay: kombu-gateway on the local RabbitMQ (--broker amqp://...) with a
// token file, and a third-party browser AMQP client (@cloudamqp/amqp-client's
// AMQPWebSocketClient) in Chromium speaking AMQP 0-9-1 over WebSocket through it: logging in
// with the gateway token (never RabbitMQ's credentials), publishing and getting, consuming,
// and refused where the identity's permissions say no.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const bin = process.env.KOMBU_GATEWAY_BIN ?? join(repo, "target", "debug", "kombu-gateway");
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TOKEN = "relay-test-token-1";

const rabbitUp = () =>
  new Promise((resolve) => {
    const s = connect(5672, "127.0.0.1", () => (s.destroy(), resolve(true)));
    s.on("error", () => resolve(false));
  });

let gateway;
let addr;
let dir;
let skip = false;

before(async () => {
  if (!(await rabbitUp())) {
    assert.ok(!process.env.CI, "RabbitMQ must run on 127.0.0.1:5672 under CI");
    skip = true;
    return;
  }
  dir = mkdtempSync(join(tmpdir(), "kombu-relay-"));
  const tokens = join(dir, "tokens.toml");
  writeFileSync(
    tokens,
    `[[identity]]\nname = "browser"\ntoken = "${TOKEN}"\nvhosts = ["/"]\nconfigure = 'kw-relay\\..*'\nwrite = 'kw-relay\\..*'\nread = 'kw-relay\\..*'\n`,
  );
  gateway = spawn(bin, ["--listen", "127.0.0.1:0", "--broker", "amqp://guest:guest@127.0.0.1:5672//", "--tokens", tokens, "--www", join(here, "site"), "--pkg", join(repo, "js")], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  addr = await new Promise((resolve, reject) => {
    let out = "";
    gateway.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/([\d.:]+)\//);
      if (m) resolve(m[1]);
    });
    gateway.on("exit", (code) => reject(new Error(`kombu-gateway exited with ${code}`)));
  });
});

after(() => {
  gateway?.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("a third-party browser AMQP client works through the /amqp relay, within its permissions", { skip: !existsSync(executablePath) && "no chromium", timeout: 60000 }, async (t) => {
  if (skip) return t.skip("no RabbitMQ");
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const page = await browser.newPage();
    await page.goto(`http://${addr}/amqp.html`);
    await page.waitForFunction(() => window.__ready);
    const r = await page.evaluate(async ({ token, id }) => {
      const { AMQPWebSocketClient } = window.amqp;
      const url = `ws://${location.host}/amqp`;
      const out = {};
      const conn = await new AMQPWebSocketClient(url, "/", "anyone", token).connect();
      const ch = await conn.channel();
      const q = `kw-relay.${id}`;
      await ch.queueDeclare(q, { durable: false });
      await ch.basicPublish("", q, "hello through the relay", { contentType: "text/plain", headers: { from: "browser" } });
      const got = await ch.basicGet(q, { noAck: true });
      out.got = { body: got.bodyToString(), contentType: got.properties.contentType, headers: got.properties.headers };
      // consume
      const received = new Promise((resolve) => {
        ch.basicConsume(q, { noAck: false }, (msg) => {
          msg.ack();
          resolve(msg.bodyToString());
        });
      });
      await ch.basicPublish("", q, "second", {});
      out.consumed = await received;
      // A queue outside the identity's permissions: the channel is closed with 403.
      const ch2 = await conn.channel();
      try {
        await ch2.queueDeclare("admin.secrets", { durable: false });
        out.refused = "not refused";
      } catch (e) {
        out.refused = String(e.message ?? e);
      }
      // The connection and other channels go on.
      const ch3 = await conn.channel();
      const { messageCount } = await ch3.queueDeclare(q, { passive: true });
      out.after = messageCount;
      await ch3.queueDelete(q);
      await conn.close();
      // A wrong token is refused at login.
      try {
        await new AMQPWebSocketClient(url, "/", "anyone", "not-a-token").connect();
        out.badLogin = "not refused";
      } catch (e) {
        out.badLogin = String(e.message ?? e);
      }
      return out;
    }, { token: TOKEN, id: `${process.pid}-${Date.now()}` });
    assert.deepEqual(r.got, { body: "hello through the relay", contentType: "text/plain", headers: { from: "browser" } });
    assert.equal(r.consumed, "second");
    assert.match(r.refused, /ACCESS_REFUSED.*configure access to queue 'admin\.secrets'/);
    assert.equal(r.after, 0);
    assert.match(r.badLogin, /ACCESS_REFUSED|unknown token/);
  } finally {
    await browser.close();
  }
});
