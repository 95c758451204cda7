// The playground: declare, bind, publish and consume through the kombu-wasm package, and
// watch the broker (memory:// in this page) route messages.
//
// The page loads the build its broker URL needs, as an app would: "kombu-wasm" for memory://
// (the broker in the page), "kombu-wasm/ws" for a gateway or RabbitMQ (it has no memory://).
// Connecting to a URL of the other kind reloads the page with `?url=`.
const remote = (url) => !/^memory:/i.test(url);
const initialUrl = new URLSearchParams(location.search).get("url") ?? "memory://";
const { Connection, Exchange, Queue } = await import(remote(initialUrl) ? "kombu-wasm/ws" : "kombu-wasm");

const $ = (sel) => document.querySelector(sel);
let conn;
const exchanges = new Map(); // name -> Exchange
const consumers = [];
const rates = { published: 0, delivered: 0, history: [] };

function status(text, error = false) {
  const s = $("#status");
  s.textContent = text;
  s.classList.toggle("error", error);
}

function log(kind, text) {
  const li = document.createElement("li");
  li.className = kind;
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("#log").prepend(li);
  while ($("#log").children.length > 200) $("#log").lastChild.remove();
}

function fail(e) {
  log("error", `${e.name}: ${e.message}`);
  status(`${e.name}: ${e.message}`, true);
}

function json(text, what) {
  if (!text.trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw Object.assign(new Error(`${what} must be JSON, e.g. {"key": "value"}`), { name: "ValueError" });
  }
}

function exchangeNamed(name) {
  return exchanges.get(name) ?? new Exchange(name, { type: "direct" });
}

async function connect(url) {
  if (remote(url) !== remote(initialUrl)) {
    location.search = `?url=${encodeURIComponent(url)}`;
    return new Promise(() => {}); // (the page reloads)
  }
  if (conn) {
    for (const c of consumers) c.controller.abort();
    consumers.length = 0;
    renderConsumers();
    await conn.release();
  }
  conn = new Connection(url);
  await conn.connect();
  const m = url.match(/^gateway\+(wss?):\/\/([^/?#]+)[^?#]*(?:\?([^#]*))?/);
  snapshotUrl = m ? `${m[1] === "wss" ? "https" : "http"}://${m[2].replace(/^.*@/, "")}/api/snapshot?vhost=${encodeURIComponent(new URLSearchParams(m[3] ?? "").get("vhost") ?? "/")}` : undefined;
  // A gateway with a token file answers /api/snapshot only with the token (the URL's
  // ?token=... or password), as a bearer token.
  const token = m && (new URLSearchParams(m[3] ?? "").get("token") ?? decodeURIComponent(m[2].match(/^[^@]*:([^@]*)@/)?.[1] ?? ""));
  snapshotHeaders = token ? { Authorization: `Bearer ${token}` } : {};
  status(`connected to ${conn.asUri()}`);
  log("info", `connected to ${conn.asUri()}`);
}

function form(id, handler) {
  $(id).addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = Object.fromEntries(new FormData(ev.target));
    try {
      await handler(data, ev.target);
      status(`connected to ${conn.asUri()}`);
      refresh();
    } catch (e) {
      fail(e);
    }
  });
}

form("#connect-form", ({ url }) => connect(url));

form("#exchange-form", async ({ name, type }) => {
  const x = new Exchange(name, { type });
  await conn.declare(x);
  exchanges.set(name, x);
  log("info", `declared ${type} exchange '${name}'`);
});

form("#queue-form", async ({ name, maxLength, messageTtl }) => {
  const opts = {};
  if (maxLength) opts.maxLength = Number(maxLength);
  if (messageTtl) opts.messageTtl = Number(messageTtl);
  await conn.declare(new Queue(name, opts));
  log("info", `declared queue '${name}'`);
});

form("#bind-form", async ({ queue, exchange, routingKey, arguments: args }) => {
  const x = exchangeNamed(exchange);
  // Re-declaring must repeat the queue's flags and arguments (the broker refuses a
  // different declaration, as RabbitMQ does), so take them from the broker.
  const known = (await brokerState())?.queues.find((q) => q.name === queue);
  const same = known ? { durable: known.durable, autoDelete: known.auto_delete, exclusive: known.exclusive, queueArguments: known.arguments } : {};
  const q = new Queue(queue, { ...same, bindings: [x.binding(routingKey, { arguments: json(args, "Arguments") ?? {} })] });
  await conn.declare(q);
  log("info", `bound '${queue}' to '${exchange}' with '${routingKey}'`);
});

form("#publish-form", async ({ exchange, routingKey, headers, body, count }) => {
  const producer = conn.Producer();
  let payload;
  try {
    payload = JSON.parse(body);
  } catch {
    payload = body;
  }
  const opts = { routingKey, headers: json(headers, "Headers") ?? {} };
  if (exchange) opts.exchange = exchangeNamed(exchange);
  const n = Math.max(1, Number(count) || 1);
  for (let i = 0; i < n; i++) await producer.publish(payload, opts);
  rates.published += n;
  log("publish", `published ${n} × ${JSON.stringify(payload)} to '${exchange || "(default)"}' with '${routingKey}'`);
});

form("#consume-form", async ({ queue, prefetch, autoAck }) => {
  const consumer = conn.Consumer([new Queue(queue)], { prefetchCount: Number(prefetch) || 0 });
  const controller = new AbortController();
  const entry = { queue, consumer, controller, received: 0, autoAck: Boolean(autoAck), pending: [] };
  consumers.push(entry);
  renderConsumers();
  log("info", `consuming from '${queue}'`);
  (async () => {
    try {
      for await (const m of consumer.messages({ signal: controller.signal })) {
        entry.received++;
        rates.delivered++;
        let text;
        try {
          text = JSON.stringify(m.payload);
        } catch (e) {
          text = `(${e.name}: ${e.message})`;
        }
        const info = m.deliveryInfo;
        log("deliver", `'${queue}' ← ${text} (exchange '${info.exchange}', key '${info.routingKey}')`);
        if (entry.autoAck) m.ack();
        else entry.pending.push(m);
        renderConsumers();
      }
    } catch (e) {
      fail(e);
    }
    await consumer.cancel().catch(() => {});
  })();
});

function renderConsumers() {
  const ul = $("#consumers");
  ul.replaceChildren(
    ...consumers.map((c, i) => {
      const li = document.createElement("li");
      li.textContent = `${c.queue}: ${c.received} received${c.autoAck ? "" : `, ${c.pending.length} to settle`} `;
      const stop = document.createElement("button");
      stop.textContent = "Stop";
      stop.onclick = () => {
        c.controller.abort();
        consumers.splice(i, 1);
        renderConsumers();
      };
      if (!c.autoAck && c.pending.length) {
        for (const [label, act] of [["Ack", (m) => m.ack()], ["Requeue", (m) => m.requeue()], ["Reject", (m) => m.reject(false)]]) {
          const b = document.createElement("button");
          b.textContent = label;
          b.onclick = () => {
            try {
              act(c.pending.shift());
            } catch (e) {
              fail(e);
            }
            renderConsumers();
            refresh();
          };
          li.append(b);
        }
      }
      li.append(stop);
      return li;
    }),
  );
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

let snapshotUrl;
let snapshotHeaders = {};

async function brokerState() {
  const local = conn.snapshot();
  if (local) return local;
  // Over the gateway, the embedded broker's state comes from the gateway's /api/snapshot.
  if (!snapshotUrl) return undefined;
  const r = await fetch(snapshotUrl, { headers: snapshotHeaders });
  return r.ok ? r.json() : undefined;
}

async function refresh() {
  if (!conn) return;
  let s;
  try {
    s = await brokerState();
  } catch {
    return;
  }
  if (!s) return;
  $("#queues tbody").replaceChildren(
    ...s.queues.map((q) => {
      const tr = document.createElement("tr");
      tr.dataset.queue = q.name;
      tr.append(cell(q.name), cell(q.messages_ready), cell(q.messages_unacknowledged), cell(q.consumers), cell(q.published));
      return tr;
    }),
  );
  $("#bindings tbody").replaceChildren(
    ...s.bindings.filter((b) => b.source !== "").map((b) => {
      const tr = document.createElement("tr");
      const args = Object.keys(b.arguments).length ? ` ${JSON.stringify(b.arguments)}` : "";
      tr.append(cell(b.source), cell(`${b.routing_key}${args}`), cell(b.destination));
      return tr;
    }),
  );
  $("#queue-names").replaceChildren(...s.queues.map((q) => new Option(q.name)));
  $("#exchange-names").replaceChildren(...s.exchanges.filter((x) => x.name && !x.name.startsWith("amq.")).map((x) => new Option(x.name)));
}

function drawChart() {
  rates.history.push([rates.published, rates.delivered]);
  rates.published = rates.delivered = 0;
  if (rates.history.length > 60) rates.history.shift();
  const c = $("#chart");
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...rates.history.flat());
  const step = c.width / 60;
  for (const [i, color] of [[0, "#2f6fdf"], [1, "#1a9c5b"]]) {
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    rates.history.forEach((h, x) => {
      const y = c.height - 4 - (h[i] / max) * (c.height - 8);
      x === 0 ? g.moveTo(x * step, y) : g.lineTo(x * step, y);
    });
    g.stroke();
  }
  g.fillStyle = "#555";
  g.fillText(`${max}/s`, 4, 12);
}

setInterval(refresh, 500);
setInterval(drawChart, 1000);
// Served by kombu-gateway: offer its gateway+ws:// URL (the page still starts on memory://).
if (location.protocol.startsWith("http") && location.port) {
  const gw = `gateway+${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/gateway?vhost=/playground`;
  $("#urls").append(new Option(gw));
}
$("#url").value = initialUrl;
connect(initialUrl).catch(fail);
window.__playgroundReady = true;
