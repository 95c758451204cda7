// kombu-wasm: the JavaScript face of the Rust core (../src/wasm/mod.rs).
//
// This module is the API over one of two builds of the WebAssembly module, chosen by the entry
// the app imports: `index.js` ("kombu-wasm": the Kombu API and the memory:// broker in the
// page) or `ws.js` ("kombu-wasm/ws": the Kombu API and the WebSocket transports gateway+ws://
// and amqp+ws://, without the memory:// broker, for pages that talk to a gateway or RabbitMQ).
// The entries bind their build's wasm-bindgen glue (`bindModule`) and load it once, before
// anything runs (top-level await of `init()`; `workerd.js` for Cloudflare Workers imports the
// .wasm as a module and uses `initSync`). `init()` returns the same promise every time, so
// nothing is ever initialised twice; one build serves the whole app, in whatever order the
// entries are imported: an app that imports a WebSocket build ("kombu-wasm/ws", or
// "kombu-wasm/gateway" / "kombu-wasm/amqp" with one of its two transports) anywhere runs on it
// ("kombu-wasm" after it keeps it, and the WebSocket build after "kombu-wasm" replaces the core
// build, or says what to import if a Connection was already made on the core build; "/ws"
// likewise replaces "/gateway" or "/amqp"; "/gateway" and "/amqp" together say to import
// "/ws"); memory:// then says that it is in "kombu-wasm" only.
// In Node the .wasm is read from disk next to this file (`process.getBuiltinModule`, so that
// bundlers for browsers see no `node:` import); in browsers, workers and bundlers (Vite) the
// glue fetches it from its `new URL("..._bg.wasm", import.meta.url)`.
//
// Declarations (`Exchange`, `Queue`) are plain JavaScript values, validated by the core when
// created; everything else wraps the core's classes. Timeouts are in milliseconds; message
// and queue TTLs (`expiration`, `messageTtl`, `expires`) are in seconds, as in Kombu.

/** The bound build: its wasm-bindgen glue, its .wasm file and which it is: "core" (memory://),
 * "ws" (both WebSocket transports), "gateway" (gateway+ws:// only) or "amqp" (amqp+ws:// only). */
let core;
let wasmFile;
let build;
let ready;
/** Functions to run once the module is loaded (`kombu-wasm/codecs` registers its codecs so). */
const onLoad = [];

/** The version of the core (set once the WebAssembly module is loaded). */
export let version;

/** The message class the core returns (Kombu's `Message`). */
export let Message;

/** Every error kombu-wasm throws: Kombu's exceptions as classes (`err instanceof NotFound`),
 * each with Kombu's name in `name`; errors of AMQP connections and channels (`AMQPError`)
 * carry the AMQP reply code in `code` (404 for NotFound, ...). */
export class KombuError extends Error {}
/** The classes by name, for the errors the core makes. */
const errorClasses = { KombuError };
function errorClass(name, Base = KombuError) {
  const C = { [name]: class extends Base {} }[name];
  Object.defineProperty(C.prototype, "name", { value: name, writable: true, configurable: true });
  errorClasses[name] = C;
  return C;
}
Object.defineProperty(KombuError.prototype, "name", { value: "KombuError", writable: true, configurable: true });
export const OperationalError = errorClass("OperationalError");
export const RecoverableConnectionError = errorClass("RecoverableConnectionError");
export const NotBoundError = errorClass("NotBoundError");
export const MessageStateError = errorClass("MessageStateError");
export const TimeoutError = errorClass("TimeoutError");
export const Empty = errorClass("Empty");
export const LimitExceeded = errorClass("LimitExceeded");
export const ConnectionLimitExceeded = errorClass("ConnectionLimitExceeded", LimitExceeded);
export const ChannelLimitExceeded = errorClass("ChannelLimitExceeded", LimitExceeded);
export const SerializerNotInstalled = errorClass("SerializerNotInstalled");
export const ContentDisallowed = errorClass("ContentDisallowed", SerializerNotInstalled);
export const CompressionNotInstalled = errorClass("CompressionNotInstalled");
export const EncodeError = errorClass("EncodeError");
export const DecodeError = errorClass("DecodeError");
export const InconsistencyError = errorClass("InconsistencyError");
export const MessageNacked = errorClass("MessageNacked");
export const MatcherNotInstalled = errorClass("MatcherNotInstalled");
export const InvalidURL = errorClass("InvalidURL");
export const UnknownTransport = errorClass("UnknownTransport");
export const ValueError = errorClass("ValueError");
export const NotImplementedError = errorClass("NotImplementedError");
export const AMQPError = errorClass("AMQPError");
export const NotFound = errorClass("NotFound", AMQPError);
export const PreconditionFailed = errorClass("PreconditionFailed", AMQPError);
export const AccessRefused = errorClass("AccessRefused", AMQPError);
export const ResourceLocked = errorClass("ResourceLocked", AMQPError);
export const ChannelNotOpen = errorClass("ChannelNotOpen", AMQPError);
export const NotAllowed = errorClass("NotAllowed", AMQPError);
export const ConnectionForced = errorClass("ConnectionForced", AMQPError);
for (const name of ["ContentTooLarge", "NoRoute", "NoConsumers", "InvalidPath", "FrameError", "FrameSyntaxError", "CommandInvalid", "UnexpectedFrame", "ResourceError", "AMQPNotImplementedError", "InternalError"]) {
  errorClass(name, AMQPError);
}

/** The error the core throws: an instance of its class (a KombuError named `name` if none). */
function makeError(name, message, code) {
  const C = errorClasses[name] ?? KombuError;
  const e = new C(message);
  if (C === KombuError) e.name = name;
  if (code !== undefined) e.code = code;
  return e;
}

/** Connections made so far (a build may be swapped for the larger one only before any). */
let made = 0;
/** Registrations of codecs with the core, replayed on the WebSocket build when it replaces
 * the core build. */
const registered = [];

/** Used by the entries: bind the build whose glue is `glue` (once per app; see above). */
export function bindModule(glue, file, which) {
  if (core === glue) return;
  if (core) {
    // The WebSocket build bound first serves the app, unless "/ws" (both transports) comes
    // after one with a single transport; "/gateway" and "/amqp" cannot serve each other.
    if (which === "core" || build === "ws" || build === which) return;
    if (build !== "core" && which !== "ws") {
      throw new Error('"kombu-wasm/gateway" (gateway+ws:// only) and "kombu-wasm/amqp" (amqp+ws:// only) are both imported: import from "kombu-wasm/ws", which has both transports, everywhere in the app');
    }
    if (made > 0) {
      throw new Error(build === "core"
        ? `kombu-wasm is already in use without the WebSocket transports (gateway+ws://, amqp+ws://): import from "kombu-wasm/${which}" everywhere in the app, not "kombu-wasm"`
        : `kombu-wasm is already in use with "kombu-wasm/${build}" (one WebSocket transport): import from "kombu-wasm/ws" everywhere in the app`);
    }
    // A smaller build was imported first and nothing was made with it: the larger one takes
    // its place (the app talks to a gateway or RabbitMQ; memory:// is not in it).
    ready = undefined;
    version = undefined;
  }
  [core, wasmFile, build, Message] = [glue, file, which, glue.Message];
  // Message properties in camelCase, as everything else (see camelCased).
  const desc = Object.getOwnPropertyDescriptor(Message.prototype, "properties");
  if (desc?.get) {
    Object.defineProperty(Message.prototype, "properties", { ...desc, get() { return camelCased(desc.get.call(this)); } });
  }
  extendMessage(Message);
}

/** `o` with its keys in camelCase (one level: headers and arguments are the app's own), its
 * snake_case keys still readable (not enumerable: JSON and spreads show the camelCase ones). */
function camelCased(o) {
  if (o === null || typeof o !== "object") return o;
  const out = {};
  for (const [k, v] of Object.entries(o)) {
    const c = k.replace(/_(.)/g, (_, ch) => ch.toUpperCase());
    out[c] = v;
    if (c !== k) Object.defineProperty(out, k, { get() { return this[c]; }, enumerable: false });
  }
  return out;
}

function loaded() {
  core.setErrorFactory(makeError);
  version = core.version();
  if (build !== "core") core.setConnectDiagnosis(nodeBuiltin("node:http") ? diagnose : undefined);
  for (const r of registered) r();
  for (const f of onLoad.splice(0)) f();
}

/** A Node built-in module (`process.getBuiltinModule`, Node 20.16+), or undefined elsewhere:
 * no `import` of a `node:` module that bundlers for browsers would have to leave out. */
function nodeBuiltin(name) {
  return typeof process !== "undefined" && process.versions?.node ? process.getBuiltinModule?.(name) : undefined;
}

/** Why a WebSocket to `url` failed to open, in Node, whose WebSocket says only "network error
 * or non-101 status code": the same upgrade request made with node:http(s) reports a refused
 * port (`connect ECONNREFUSED host:port`), a name not found, a TLS error, or the HTTP status
 * and body of a refused upgrade (401/403 from kombu-gateway). */
function diagnose(url, protocol) {
  const u = new URL(url);
  const http = nodeBuiltin(u.protocol === "wss:" ? "node:https" : "node:http");
  if (!http) return Promise.resolve(undefined);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  const headers = { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": "a29tYnUtd2FzbS1wcm9iZQ==" };
  if (protocol) headers["sec-websocket-protocol"] = protocol;
  return new Promise((resolve) => {
    const req = http.request(u, { headers, timeout: 5000 });
    req.on("error", (e) => resolve(e.message));
    req.on("timeout", () => req.destroy(new Error(`no answer from ${u.host} within 5000 ms`)));
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve(undefined);
    });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body = (body + c).slice(0, 300)));
      res.on("error", () => {});
      res.on("close", () => resolve(`the server refused the WebSocket upgrade: HTTP ${res.statusCode} ${res.statusMessage}${body.trim() ? ` (${body.trim()})` : ""}`));
    });
    req.end();
  });
}
/** Run `f` once the WebAssembly module is loaded (now, if it is). */
export function whenLoaded(f) {
  if (version === undefined) onLoad.push(f);
  else f();
}

/** Load the WebAssembly module (once). `source`: bytes, a URL or a compiled module. */
export function init(source) {
  ready ??= (async (glue, file) => {
    await glue.default(await wasmSource(source, file));
    if (glue === core) loaded(); // (else the WebSocket build replaced it meanwhile)
  })(core, wasmFile);
  return ready;
}

/** What wasm-bindgen's init takes: `source` if given; in Node, the bytes of `file` (fetch
 * cannot read file: URLs there); elsewhere nothing, and the glue fetches its own URL. */
export async function wasmSource(source, file) {
  let input = source;
  if (input === undefined && typeof process !== "undefined" && process.versions?.node) {
    const fs = nodeBuiltin("node:fs/promises");
    if (!fs) throw new Error(`kombu-wasm needs Node 20.16 or later (process.getBuiltinModule), not ${process.version}; or pass the .wasm bytes to init()`);
    input = await fs.readFile(file);
  }
  return input === undefined ? undefined : { module_or_path: input };
}

/** Load the WebAssembly module synchronously from a compiled `WebAssembly.Module` (once). */
export function initSync(module) {
  if (ready) return;
  core.initSync({ module });
  ready = Promise.resolve();
  loaded();
}

/** A copy of `o` without its undefined properties. */
function defined(o) {
  const out = {};
  for (const k of Object.keys(o)) {
    if (o[k] !== undefined) out[k] = o[k];
  }
  return out;
}

/** Specs of declarations, made once per (frozen) instance. */
const specs = new WeakMap();

/** A `ValueError` (Kombu's name for a bad argument) saying what to change. */
const valueError = (message) => new ValueError(message);

function plainOptions(what, options) {
  if (options === undefined || options === null) return {};
  if (typeof options !== "object" || Array.isArray(options)) {
    throw valueError(`${what} must be an object, not ${Array.isArray(options) ? "an array" : typeof options}`);
  }
  finiteNumbers(what, options, "");
  return options;
}

/** Refuse NaN and ±Infinity in options (the core would see them as null). */
function finiteNumbers(what, o, path) {
  for (const k of Object.keys(o)) {
    const v = o[k];
    if (typeof v === "number" && !Number.isFinite(v)) throw valueError(`${what}: ${path}${k} must be a finite number, not ${v}`);
    if (v !== null && typeof v === "object" && (Object.getPrototypeOf(v) === Object.prototype || Array.isArray(v))) finiteNumbers(what, v, `${path}${k}.`);
  }
}

/** An exchange declaration (Kombu's `Exchange`). Defaults: type "direct", durable. */
export class Exchange {
  constructor(name = "", options = {}) {
    const o = plainOptions("Exchange options", options);
    this.name = name;
    Object.assign(this, defined(o));
    core.checkExchange(this.toSpec());
    Object.freeze(this);
  }

  /** The plain object the core takes. */
  toSpec() {
    let spec = specs.get(this);
    if (!spec) specs.set(this, (spec = Object.freeze(defined(this))));
    return spec;
  }

  /** A binding of this exchange with `routingKey`, for `new Queue(..., { bindings })`. */
  binding(routingKey = "", options = {}) {
    return { exchange: this, routingKey, ...plainOptions("binding options", options) };
  }
}

/** A queue declaration (Kombu's `Queue`). `expires`/`messageTtl` in seconds. */
export class Queue {
  constructor(name = "", options = {}) {
    const o = plainOptions("Queue options", options);
    this.name = name;
    Object.assign(this, defined(o));
    core.checkQueue(this.toSpec());
    Object.freeze(this);
  }

  /** The plain object the core takes. */
  toSpec() {
    const spec = defined(this);
    if (spec.exchange instanceof Exchange) spec.exchange = spec.exchange.toSpec();
    if (Array.isArray(spec.bindings)) {
      // (Anything but an object is left for the core to refuse, naming it.)
      spec.bindings = spec.bindings.map((b) => (b !== null && typeof b === "object" ? defined({ ...b, exchange: b.exchange instanceof Exchange ? b.exchange.toSpec() : b.exchange }) : b));
    }
    return spec;
  }
}

function entitySpec(e) {
  if (e instanceof Queue) return { queue: e.toSpec() };
  if (e instanceof Exchange) return { exchange: e.toSpec() };
  throw valueError(`declare takes Exchange or Queue instances, not ${e === null ? "null" : typeof e}`);
}

function queueSpec(q) {
  if (q instanceof Queue) return q.toSpec();
  if (typeof q === "string") return { name: q };
  throw valueError(`queues must be Queue instances or names, not ${q === null ? "null" : typeof q}`);
}

function exchangeRef(x) {
  return x instanceof Exchange ? x.toSpec() : x;
}

const isRaw = (b) => typeof b === "string" || b instanceof Uint8Array || b instanceof ArrayBuffer;

/** An EncodeError (Kombu's) for a body that is not JSON data. */
const encodeError = (message) => new EncodeError(message);

/** What `v` is, for an error message. */
function kind(v) {
  if (typeof v === "number") return String(v);
  if (typeof v === "bigint") return "a BigInt";
  if (v === undefined) return "undefined";
  if (typeof v !== "object") return `a ${typeof v}`;
  return `a ${v.constructor?.name ?? "null-prototype object"}`;
}

/** The path of `JSON data` that is not (`$.a[2].b`), or undefined when it all is: null,
 * booleans, finite numbers, strings, arrays and plain objects of those. JSON.stringify would
 * turn the rest into something else (a Date into a string, a Map into {}, NaN into null) or
 * drop it (undefined members, functions), and the consumer would get other data. */
function notJson(v, path, seen) {
  switch (typeof v) {
    case "string": case "boolean": return undefined;
    case "number": return Number.isFinite(v) ? undefined : [path, v];
    case "object": {
      if (v === null) return undefined;
      if (seen.has(v)) return [path, v, "a circular reference"];
      const proto = Object.getPrototypeOf(v);
      const array = Array.isArray(v);
      if (!array && proto !== Object.prototype && proto !== null) return [path, v];
      seen.add(v);
      if (array) {
        for (let i = 0; i < v.length; i++) {
          const bad = notJson(v[i], `${path}[${i}]`, seen);
          if (bad) return bad;
        }
      } else {
        for (const k of Object.keys(v)) {
          const bad = notJson(v[k], /^[A-Za-z_$][\w$]*$/.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`, seen);
          if (bad) return bad;
        }
      }
      seen.delete(v);
      return undefined;
    }
    default: return [path, v];
  }
}

/** True when `v` is JSON data as notJson defines it, found without building a path or a set
 * (a publish's common case). False means "look closer": something is not JSON data, or the
 * walk went deeper than 64 or through more than `plainLeft` objects and arrays, as it would
 * round a circular reference; notJson then says which, if any. */
function plainJson(v, depth) {
  switch (typeof v) {
    case "string": case "boolean": return true;
    case "number": return Number.isFinite(v);
    case "object": {
      if (v === null) return true;
      if (depth > 64 || --plainLeft < 0) return false;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) if (!plainJson(v[i], depth + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return false;
      for (const k of Object.keys(v)) if (!plainJson(v[k], depth + 1)) return false;
      return true;
    }
    default: return false;
  }
}

/** How many more objects and arrays plainJson may walk through. */
let plainLeft = 0;

/** JSON text of structured data, with Kombu's EncodeError for what JSON cannot carry as is. */
function jsonText(body) {
  plainLeft = 1000;
  const bad = plainJson(body, 0) ? undefined : notJson(body, "$", new Set());
  if (bad) {
    const [path, v, what = kind(v)] = bad;
    const where = path === "$" ? "the body" : `${path} of the body`;
    throw encodeError(`${where} is ${what}, which JSON cannot carry: send JSON data (null, booleans, finite numbers, strings, arrays and plain objects), a string or a Uint8Array`);
  }
  return JSON.stringify(body);
}

/** `ms` (milliseconds, the unit of every time in kombu-wasm but TTLs and heartbeats) as the
 * core's seconds. */
function seconds(what, ms, note = "") {
  if (typeof ms !== "number" || !(ms >= 0)) {
    throw valueError(`${what} must be a number of milliseconds >= 0${note}, not ${typeof ms === "number" ? ms : typeof ms === "string" ? JSON.stringify(ms) : typeof ms}`);
  }
  return ms / 1000;
}

/** Kombu's `retry_policy` in camelCase, its times in milliseconds, as the core takes it. */
function retrySpec(policy) {
  const r = { ...plainOptions("retryPolicy", policy) };
  for (const k of Object.keys(r)) {
    if (k.includes("_")) throw valueError(`retryPolicy: unknown key ${k}: write ${k.replace(/_(.)/g, (_, c) => c.toUpperCase())} (times in milliseconds)`);
  }
  for (const k of ["intervalStart", "intervalStep", "intervalMax", "timeout"]) {
    if (r[k] !== undefined) r[k] = seconds(`retryPolicy.${k}`, r[k]);
  }
  return r;
}

/** An UnknownTransport for a plain WebSocket or AMQP URL, with the scheme that carries it. */
function didYouMean(e, url) {
  const scheme = typeof url === "string" ? /^([a-z]+):/i.exec(url)?.[1].toLowerCase() : undefined;
  if (e?.name !== "UnknownTransport" || !["ws", "wss", "amqp", "amqps"].includes(scheme)) return e;
  const s = scheme === "wss" || scheme === "amqps" ? "s" : "";
  const hint = scheme.startsWith("ws")
    ? `did you mean gateway+ws${s}://host:port/gateway (kombu-gateway's protocol) or amqp${s}+ws${s}://user:password@host:port/vhost (AMQP through the gateway's /amqp relay)?`
    : `kombu-wasm speaks AMQP over WebSockets only (browsers cannot open TCP sockets): did you mean amqp${s}+ws${s}://user:password@host:port/vhost (through kombu-gateway's /amqp relay)?`;
  e.message += ` ${hint}${build !== "core" ? "" : ' Those are in "kombu-wasm/ws" (and one each in "kombu-wasm/gateway" and "kombu-wasm/amqp").'}`;
  return e;
}

function publishSpec(options) {
  const o = defined(plainOptions("publish options", options));
  if (o.retryPolicy !== undefined) o.retryPolicy = retrySpec(o.retryPolicy);
  if (o.exchange !== undefined) o.exchange = exchangeRef(o.exchange);
  if (o.declare !== undefined) o.declare = [].concat(o.declare).map(entitySpec);
  if (o.replyTo instanceof Queue) o.replyTo = o.replyTo.name;
  return o;
}

function abortError(signal) {
  return signal.reason ?? new DOMException("The operation was aborted", "AbortError");
}

/** Wait with `timeout` (ms) and `signal`, in slices so that an abort is noticed quickly
 * without leaving a pending wait behind (a message is never taken and then dropped). */
async function waitFor(fetchOne, { timeout, signal } = {}) {
  const deadline = timeout === undefined ? undefined : Date.now() + timeout;
  for (;;) {
    if (signal?.aborted) throw abortError(signal);
    const left = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
    const slice = signal ? Math.min(left ?? 200, 200) : left;
    try {
      return await fetchOne(slice);
    } catch (e) {
      const more = deadline === undefined || Date.now() < deadline;
      if (signal && more && (e?.name === "TimeoutError" || e?.name === "Empty")) continue;
      throw e;
    }
  }
}

/** The events a Connection says (`conn.on(event, listener)`). */
const connectionEvents = ["connected", "disconnected", "reconnecting", "blocked", "unblocked"];

/** What `Connection.ensure` retries after reconnecting: the connection was lost or forced
 * closed (Kombu's recoverable connection errors). Channel errors (404, 406...) are not. */
function recoverable(e) {
  return e?.name === "RecoverableConnectionError" || e?.name === "OperationalError" || e?.name === "ConnectionForced";
}

const ensureKeys = ["errback", "onRevive", "maxRetries", "intervalStart", "intervalStep", "intervalMax"];

/** `ensure`'s options: Kombu's keyword arguments in camelCase, times in milliseconds
 * (Kombu's defaults for `ensure`: 1 s, +1 s, up to 1 s more; retry forever). */
function ensureSpec(options) {
  const o = plainOptions("ensure options", options);
  for (const k of Object.keys(o)) {
    if (!ensureKeys.includes(k)) throw valueError(`ensure: unknown option ${k} (known: ${ensureKeys.join(", ")}; times in milliseconds)`);
  }
  const { errback, onRevive, maxRetries, intervalStart = 1000, intervalStep = 1000, intervalMax = 1000 } = o;
  for (const [k, f] of [["errback", errback], ["onRevive", onRevive]]) {
    if (f !== undefined && typeof f !== "function") throw valueError(`ensure: ${k} must be a function, not ${kind(f)}`);
  }
  if (maxRetries !== undefined && !(Number.isInteger(maxRetries) && maxRetries >= 0)) {
    throw valueError(`ensure: maxRetries must be an integer >= 0, not ${maxRetries}`);
  }
  for (const [k, v] of [["intervalStart", intervalStart], ["intervalStep", intervalStep], ["intervalMax", intervalMax]]) seconds(`ensure: ${k}`, v);
  return { errback, onRevive, maxRetries, policy: { intervalStart, intervalStep, intervalMax } };
}

/** A connection (Kombu's `Connection`): lazy, opened at first use. */
export class Connection {
  #c;
  /** `[event, listener]` pairs, once `on` was called. */
  #listeners;

  constructor(url = "memory://", options = {}) {
    const o = defined(plainOptions("Connection options", options));
    if (o.connectTimeout !== undefined) {
      if (o.connectTimeout > 0 && o.connectTimeout < 1) {
        throw valueError(`connectTimeout is in milliseconds: ${o.connectTimeout} ms is too short to connect (for ${o.connectTimeout} seconds, write ${o.connectTimeout * 1000})`);
      }
      o.connectTimeout = seconds("connectTimeout", o.connectTimeout, " (0: no timeout)");
    }
    if (o.reconnect !== undefined) o.reconnect = retrySpec(o.reconnect);
    try {
      this.#c = new core.Connection(url, o);
    } catch (e) {
      throw didYouMean(e, url);
    }
    made++;
  }

  /** Connect now. */
  connect() {
    return this.#c.connect();
  }

  /** True while connected. */
  get connected() {
    return this.#c.connected;
  }

  /**
   * Call `listener({ type, error, interval })` on each `event` of the connection: "connected"
   * (connected or reconnected), "disconnected" (`error` says how it was lost), "reconnecting"
   * (connecting failed with `error`; the next attempt is in `interval` ms), "blocked" (the
   * broker blocked publishing, AMQP's `connection.blocked`; `{ type, reason }`) and
   * "unblocked" (publishes are accepted again). Blocked and unblocked are said as the
   * connection's events are received (a consumer consuming, `drainEvents`). Returns a
   * function that stops listening.
   */
  on(event, listener) {
    if (!connectionEvents.includes(event) || typeof listener !== "function") {
      throw valueError(`on(event, listener) takes one of ${connectionEvents.join(", ")} and a function`);
    }
    if (!this.#listeners) {
      const listeners = (this.#listeners = new Set());
      this.#c.onEvent((type, error, s) => {
        // "blocked" comes with the broker's reason (a string) where the others have an error.
        const detail = type === "blocked" ? { type, reason: error } : { type, error, interval: s === undefined ? undefined : s * 1000 };
        for (const [e, l] of [...listeners]) {
          if (e !== type) continue;
          try {
            l(detail);
          } catch (err) {
            queueMicrotask(() => {
              throw err;
            });
          }
        }
      });
    }
    const entry = [event, listener];
    this.#listeners.add(entry);
    return () => this.#listeners.delete(entry);
  }

  /**
   * Kombu's `ensure_connection`: connect, retrying with `retryPolicy` (times in milliseconds;
   * by default every 2 s more, up to 30 s, forever) through the failover URLs; resolves once
   * connected. A URL or a transport that cannot work (`InvalidURL`, `UnknownTransport`)
   * rejects at once.
   */
  async ensureConnection(options) {
    const { retryPolicy } = plainOptions("ensureConnection options", options);
    return this.#c.ensureConnection(retryPolicy === undefined ? undefined : retrySpec(retryPolicy));
  }

  /**
   * Kombu's `ensure(obj, fun, ...)`: a function that runs `fun` (a method of `obj`, called on
   * it) with its arguments and, when it fails with a recoverable connection error (the
   * connection was lost), reconnects with the retry policy — `intervalStart`, `intervalStep`,
   * `intervalMax` in milliseconds (Kombu's defaults: 1000 each), `maxRetries` (default:
   * forever) — and runs it again. Channel errors (`NotFound` 404, ...) reject at once.
   * `errback(error, interval)` is called before each wait (`interval` in ms; 0 right after
   * the failure); `onRevive()` once reconnected. When the retries are spent it rejects with
   * an `OperationalError` (its `cause` is the last error).
   */
  ensure(obj, fn, options) {
    if (typeof fn !== "function") throw valueError(`ensure(obj, fn, options): fn must be a function, not ${kind(fn)}`);
    const { errback, onRevive, maxRetries, policy } = ensureSpec(options);
    return async (...args) => {
      for (let retries = 0; ; retries++) {
        try {
          return await fn.apply(obj, args);
        } catch (e) {
          if (!recoverable(e)) throw e;
          if (maxRetries !== undefined && retries >= maxRetries) {
            const err = makeError("OperationalError", `${e.message} (gave up after ${retries} ${retries === 1 ? "retry" : "retries"})`);
            err.cause = e;
            throw err;
          }
          errback?.(e, 0);
          // As Kombu's ensure: drop the connection that failed, so the retry runs on a new one.
          this.#c.collect();
          await this.#reconnect(policy, maxRetries === undefined ? undefined : Math.max(1, maxRetries - retries), errback);
          // Reconnecting may not have waited on anything (memory://, or zero intervals): let
          // the event loop run, so a function that keeps failing cannot freeze the page.
          await new Promise((r) => setTimeout(r, 0));
          onRevive?.();
        }
      }
    };
  }

  /**
   * Kombu's `autoretry(fun)`: `fn` under `ensure` (same options), as a function taking
   * `fn`'s arguments. (Kombu passes `fun` a channel and returns `[result, channel]`; channels
   * are the connection's own business here, so it returns `fn`'s result.)
   */
  autoretry(fn, options) {
    return this.ensure(undefined, fn, options);
  }

  /** Reconnect with `policy`, `errback(error, intervalMs)` told of each failed attempt (what
   * it throws is thrown once reconnected, as a listener's error would otherwise go uncaught). */
  async #reconnect(policy, maxRetries, errback) {
    let thrown;
    const tell = ({ error, interval }) => {
      try {
        errback(error, interval);
      } catch (e) {
        thrown ??= e;
      }
    };
    const stop = errback ? this.on("reconnecting", tell) : undefined;
    try {
      await this.ensureConnection({ retryPolicy: { ...policy, maxRetries } });
    } finally {
      stop?.();
    }
    if (thrown) throw thrown;
  }

  /** Kombu's `collect`: forget the connection after a connection error, without closing
   * channels; the next use reconnects (`ensure` does this before each retry). */
  collect() {
    this.#c.collect();
  }

  /** The URL, password masked unless `includePassword`. */
  asUri(includePassword = false) {
    return this.#c.asUri(includePassword);
  }

  /** Transport, host, port, user, virtual host, connectTimeout (ms)... (password masked). */
  info() {
    const info = camelCased(this.#c.info());
    if (typeof info.connectTimeout === "number") info.connectTimeout *= 1000; // ms, as given
    return info;
  }

  /** A producer (Kombu's `Connection.Producer`). */
  Producer(options = {}) {
    const { onReturn, ...o } = plainOptions("Producer options", options);
    if (o.exchange !== undefined) o.exchange = exchangeRef(o.exchange);
    const p = new Producer(this.#c.Producer(defined(o)), (ms) => this.#watchReturns(ms));
    if (onReturn !== undefined) p.onReturn(onReturn);
    return p;
  }

  /** A consumer of `queues` (Kombu's `Connection.Consumer`); iterate it with `for await`. */
  Consumer(queues = [], options = {}) {
    const { callbacks, onMessage, onDecodeError, ...o } = plainOptions("Consumer options", options);
    const c = new Consumer(this.#c.Consumer([].concat(queues).map(queueSpec), defined(o)), this.#dispatching);
    consumerCallbacks(c, { callbacks, onMessage, onDecodeError });
    return c;
  }

  /** A `SimpleQueue` (Kombu's `Connection.SimpleQueue`). */
  async SimpleQueue(name, options = {}) {
    return new SimpleQueue(await this.#c.SimpleQueue(name, simpleSpec(options)));
  }

  /** A `SimpleBuffer`: transient, auto-deleted, no acks. */
  async SimpleBuffer(name, options = {}) {
    return new SimpleQueue(await this.#c.SimpleBuffer(name, simpleSpec(options)));
  }

  /** Declare an Exchange or a Queue (with its exchange and bindings); resolves to its name. */
  declare(entity) {
    return this.#c.declare(entitySpec(entity));
  }

  /** Delete an Exchange or a Queue; `ifUnused`, `ifEmpty` (queues) make it conditional. */
  delete(entity, options) {
    const { ifUnused, ifEmpty } = deleteOptions(options);
    return this.#c.delete(entitySpec(entity), ifUnused, ifEmpty);
  }

  /** Remove a queue's ready messages; resolves to how many. */
  purge(queue) {
    return this.#c.purge(queueSpec(queue));
  }

  /** Wait for one event (ms; forever when omitted) and run consumer callbacks. Messages
   * already received for consumers with callbacks count as the event (no wait). */
  async drainEvents(options) {
    const { timeout } = plainOptions("drainEvents options", options);
    if (dispatchCallbacks(this.#dispatching)) return;
    const deadline = timeout === undefined ? undefined : Date.now() + timeout;
    // While the returns of mandatory publishes are watched (#watchReturns), that loop drains
    // the connection: wait for what it drains rather than race it for the next event (which
    // it would take and dispatch, leaving this wait to time out).
    while (this.#pumping) {
      const left = deadline === undefined ? undefined : deadline - Date.now();
      if (left !== undefined && left <= 0) throw new TimeoutError("timed out");
      let timer;
      const waits = [this.#drained()];
      if (left !== undefined) waits.push(new Promise((r) => (timer = setTimeout(r, left))));
      await Promise.race(waits);
      clearTimeout(timer);
      if (dispatchCallbacks(this.#dispatching)) return;
    }
    await this.#c.drainEvents(deadline === undefined ? undefined : Math.max(0, deadline - Date.now()));
    dispatchCallbacks(this.#dispatching);
  }

  /** Resolved when #watchReturns' loop next drains an event or ends. */
  #tick;
  #drained() {
    if (!this.#tick) {
      let resolve;
      const promise = new Promise((r) => (resolve = r));
      this.#tick = { promise, resolve };
    }
    return this.#tick.promise;
  }
  #ticked() {
    const t = this.#tick;
    this.#tick = undefined;
    t?.resolve();
  }

  /** Consumers of this connection with callbacks, consuming (see `drainEvents`). */
  #dispatching = new Set();

  /** Until when returned messages are waited for (see `#watchReturns`). */
  #returnsUntil = 0;
  #pumping = false;

  /** Drain events for `ms` from now, so that messages the broker returns (`mandatory`
   * publishes routed nowhere) reach the producers' `onReturn` callbacks, also when nothing
   * else drains the connection. Deliveries drained meanwhile wait in their consumers. */
  #watchReturns(ms) {
    this.#returnsUntil = Date.now() + ms;
    if (this.#pumping) return;
    this.#pumping = true;
    (async () => {
      try {
        for (let left; (left = this.#returnsUntil - Date.now()) > 0;) {
          try {
            await this.#c.drainEvents(left);
            this.#ticked();
          } catch (e) {
            if (e?.name !== "TimeoutError") return; // closed or failed: the app sees it on its next call
          }
        }
      } finally {
        this.#pumping = false;
        this.#ticked();
      }
    })();
  }

  /** `entity` bound to this connection (Kombu's `entity(channel)`), for the operations of
   * `BoundExchange`/`BoundQueue`. */
  _entityOp(op, entity, { exchange, routingKey, arguments: args, noAck, accept }) {
    return this.#c.entityOp(op, entitySpec(entity), exchange, routingKey, args, noAck, accept);
  }

  /** memory:// only: exchanges, queues (depth, consumers, unacked), bindings. */
  snapshot(virtualHost) {
    const snap = this.#c.snapshot(virtualHost);
    if (!snap) return snap;
    const each = (list) => (Array.isArray(list) ? list.map(camelCased) : list);
    return { ...snap, exchanges: each(snap.exchanges), queues: each(snap.queues), bindings: each(snap.bindings) };
  }

  /** Close the connection; unacknowledged messages return to their queues. */
  release() {
    return this.#c.release();
  }

  /** Same as `release()`. */
  close() {
    return this.#c.release();
  }

  [Symbol.asyncDispose]() {
    return this.release();
  }
}

function simpleSpec(options) {
  const o = { ...plainOptions("SimpleQueue options", options) };
  if (o.queue !== undefined) o.queue = queueSpec(o.queue);
  if (o.exchange !== undefined) o.exchange = exchangeRef(o.exchange);
  return defined(o);
}

/** True for undefined, null, strings, numbers and booleans: values compared by `===`. */
const primitive = (v) => v === undefined || v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean";

/** Publishes messages (Kombu's `Producer`). */
export class Producer {
  #p;
  #watchReturns;
  #onReturn = false;

  constructor(inner, watchReturns) {
    this.#p = inner;
    this.#watchReturns = watchReturns;
  }

  /** Publish JSON data, a string, or bytes (`Uint8Array`/`ArrayBuffer`, with `contentType`). */
  publish(body, options = {}) {
    const opts = this.#optionsText(options);
    const sent = isRaw(body) ? this.#p.publish(body, opts) : this.#p.publishJson(jsonText(body), opts);
    if (!this.#onReturn || !options?.mandatory) return sent;
    return sent.then(() => this.#watchReturns(RETURN_WAIT));
  }

  /** The last publish options (their own properties' names and values) and their JSON text. */
  #lastKeys;
  #lastValues;
  #lastText;

  /** The publish options as the JSON text the core reads. A loop publishing with options of
   * the same names and values (strings, numbers, booleans, the same Exchange instance, whose
   * spec is made once) reuses the last text: the same text, without building it again, and
   * the same string, which the core compares with its last in one step. */
  #optionsText(options) {
    const plain = options !== null && typeof options === "object" && Object.getPrototypeOf(options) === Object.prototype;
    const now = plain ? Object.keys(options) : undefined;
    const keys = this.#lastKeys;
    if (now !== undefined && keys !== undefined) {
      let same = now.length === keys.length;
      for (let i = 0; same && i < now.length; i++) same = now[i] === keys[i] && options[now[i]] === this.#lastValues[i];
      if (same) return this.#lastText;
    }
    const text = JSON.stringify(publishSpec(options));
    const values = now?.map((k) => options[k]);
    const reusable = values?.every((v) => primitive(v) || (v instanceof Exchange && Object.values(v.toSpec()).every(primitive)));
    this.#lastKeys = reusable ? now : undefined;
    this.#lastValues = reusable ? values : undefined;
    this.#lastText = text;
    return text;
  }

  /** Call `callback(error, exchange, routingKey, message)` for every message the broker
   * returns (Kombu's `on_return`): published with `mandatory: true` and routed to no queue.
   * The connection's events are drained for a while after each mandatory publish. */
  onReturn(callback) {
    if (typeof callback !== "function") throw valueError(`onReturn takes a function (error, exchange, routingKey, message), not ${kind(callback)}`);
    this.#onReturn = true;
    this.#p.onReturn((error, exchange, routingKey, message) => queueMicrotask(() => callback(error, exchange, routingKey, message)));
  }

  /** Declare an Exchange or Queue unless this connection already did (Kombu's
   * `maybe_declare`); resolves to true when it declared it now. */
  maybeDeclare(entity) {
    return this.#p.maybeDeclare(entitySpec(entity));
  }
}

/** How long (ms) after a mandatory publish returned messages are waited for. */
const RETURN_WAIT = 2000;

/** Receives messages (Kombu's `Consumer`). `for await (const m of consumer)` starts consuming. */
export class Consumer {
  #c;
  #dispatching;

  constructor(inner, dispatching) {
    this.#c = inner;
    this.#dispatching = dispatching;
  }

  /** Declare the queues and start consuming (a consumer with callbacks: its messages go to
   * them as the connection's events are drained, see `Connection.drainEvents`). */
  async consume() {
    await this.#c.consume();
    if (hasCallbacks(this)) this.#dispatching.add(this);
  }

  /** A message already received, or undefined (used by `drainEvents`). */
  _tryNext() {
    return this.#c.tryNext();
  }

  /** Add a queue (declared unless `autoDeclare: false`); `consume()` then consumes from it
   * too. Resolves to its name. */
  addQueue(queue) {
    return this.#c.addQueue(queueSpec(queue));
  }

  /** Pause (`false`) or resume (`true`) deliveries (AMQP `channel.flow`). */
  flow(active) {
    if (typeof active !== "boolean") throw valueError(`flow takes true (resume) or false (pause), not ${kind(active)}`);
    return this.#c.flow(active);
  }

  /** The next message: waits up to `timeout` ms (forever when omitted), stops on `signal`. */
  next(options) {
    const { timeout, signal } = plainOptions("next options", options);
    return waitFor((t) => this.#c.next(t), { timeout, signal });
  }

  /** Messages as they come; ends when `signal` aborts. */
  async *messages(options) {
    const { signal, timeout } = plainOptions("messages options", options);
    for (;;) {
      // A message already received is taken at once; otherwise wait for the next one.
      let m = signal?.aborted ? undefined : this.#c.tryNext();
      if (m) {
        yield m;
        continue;
      }
      try {
        m = await this.next({ signal, timeout });
      } catch (e) {
        if (signal?.aborted) return;
        throw e;
      }
      yield m;
    }
  }

  [Symbol.asyncIterator]() {
    return this.messages();
  }

  /** Stop consuming; messages received and not yet handed out go back to their queues. */
  cancel() {
    this.#dispatching.delete(this);
    return this.#c.cancel();
  }

  /** Stop consuming from one queue (a Queue or its name). */
  cancelByQueue(queue) {
    return this.#c.cancelByQueue(queue instanceof Queue ? queue.name : queue);
  }

  /** True while consuming from `queue` (a Queue or its name). */
  consumingFrom(queue) {
    return this.#c.consumingFrom(queue instanceof Queue ? queue.name : queue);
  }

  /** Remove the queues' ready messages; resolves to how many. */
  purge() {
    return this.#c.purge();
  }

  /** Set the prefetch window. */
  qos(options) {
    const { prefetchCount = 0, global = false } = plainOptions("qos options", options);
    return this.#c.qos(prefetchCount, global);
  }

  /** Redeliver unacknowledged messages. */
  recover(options) {
    const { requeue = true } = plainOptions("recover options", options);
    return this.#c.recover(requeue);
  }

  /** Queue names. */
  get queues() {
    return this.#c.queues;
  }

  /** Same as `cancel()`. */
  close() {
    return this.cancel();
  }

  [Symbol.asyncDispose]() {
    return this.cancel();
  }
}

/** Kombu's `SimpleQueue`: `put` and `get` on one queue. */
export class SimpleQueue {
  #q;

  constructor(inner) {
    this.#q = inner;
  }

  /** Publish to the queue. */
  put(body, options = {}) {
    const opts = JSON.stringify(publishSpec(options));
    return isRaw(body) ? this.#q.put(body, opts) : this.#q.putJson(jsonText(body), opts);
  }

  /** The next message; waits up to `timeout` ms when `block` (default). Rejects with `Empty`. */
  get(options) {
    const { block = true, timeout, signal } = plainOptions("get options", options);
    if (!block) return this.#q.get(false, undefined);
    return waitFor((t) => this.#q.get(true, t).catch((e) => {
      throw e instanceof TimeoutError ? new Empty(e.message) : e;
    }), { timeout, signal });
  }

  /** The next message without waiting; rejects with `Empty`. */
  getNowait() {
    return this.#q.getNowait();
  }

  /** How many messages wait. */
  qsize() {
    return this.#q.qsize();
  }

  /** Remove every message; resolves to how many. */
  clear() {
    return this.#q.clear();
  }

  /** Stop consuming. */
  close() {
    return this.#q.close();
  }

  async *[Symbol.asyncIterator]() {
    for (;;) yield await this.get();
  }

  [Symbol.asyncDispose]() {
    return this.close();
  }
}

/**
 * Register a compression method implemented in JavaScript (Kombu's `compression.register`):
 * `compress`/`decompress` take a Uint8Array and return one. Producers then name it by content
 * type or alias (`compression: "..."`), and consumers decompress what carries it.
 */
export function registerCompression(contentType, { compress, decompress, aliases = [] } = {}) {
  if (typeof contentType !== "string" || typeof compress !== "function" || typeof decompress !== "function" || !Array.isArray(aliases)) {
    throw valueError('registerCompression(contentType, { compress, decompress, aliases }) takes a content type string, two functions and an array of alias strings');
  }
  const register = () => core.registerCompression(contentType, aliases.map(String), compress, decompress);
  register();
  registered.push(register);
}

/**
 * Register a serializer implemented in JavaScript (Kombu's `serialization.register`):
 * `encode(body)` returns a Uint8Array or a string, `decode(bytes)` returns the body. Producers
 * name it (`serializer: name`); consumers decode its content type when `accept` allows it.
 */
export function registerSerializer(name, { contentType, contentEncoding = "utf-8", encode, decode } = {}) {
  if (typeof name !== "string" || typeof contentType !== "string" || typeof contentEncoding !== "string" || typeof encode !== "function" || typeof decode !== "function") {
    throw valueError("registerSerializer(name, { contentType, contentEncoding, encode, decode }) takes a name, a content type, an optional encoding and two functions");
  }
  // The core reads a decoded body that is not raw as the JSON text JSON.stringify prints:
  // refuse what that would change (NaN, a Date, a Map, ...), as publish does.
  const checkedDecode = (bytes) => {
    const body = decode(bytes);
    if (!isRaw(body)) jsonText(body);
    return body;
  };
  const register = () => core.registerSerializer(name, contentType, contentEncoding, encode, checkedDecode);
  register();
  serializerNames.set(contentType, name);
  registered.push(register);
}

/**
 * Register a serializer implemented over JSON bytes (how `kombu-wasm/codecs` adds yaml and
 * msgpack): `fromJson(json)` turns the payload, as UTF-8 JSON in a Uint8Array, into the body;
 * `toJson(body)` turns a body back into JSON bytes. No JavaScript objects are built on the way,
 * so key order and the integer/float distinction survive.
 */
export function registerJsonCodec(name, { contentType, contentEncoding = "utf-8", fromJson, toJson } = {}) {
  if (typeof name !== "string" || typeof contentType !== "string" || typeof contentEncoding !== "string" || typeof fromJson !== "function" || typeof toJson !== "function") {
    throw valueError("registerJsonCodec(name, { contentType, contentEncoding, fromJson, toJson }) takes a name, a content type, an optional encoding and two functions");
  }
  const register = () => core.registerJsonCodec(name, contentType, contentEncoding, fromJson, toJson);
  register();
  serializerNames.set(contentType, name);
  registered.push(register);
}

/** The compression methods known: `[[contentType, [alias, ...]], ...]`. */
export function compressionMethods() {
  return core.compressionMethods();
}


// ---------------------------------------------------------------------------------------
// The rest of Kombu's API in JavaScript: Message helpers, consumer callbacks, bound entities,
// kombu.serialization's functions, kombu.common and kombu.pidbox.

/** Message methods written in JavaScript over the core's (`ack({ multiple })`, `decode`,
 * `ackLogError`, `rejectLogError`). */
function extendMessage(M) {
  const ack = M.prototype.ack;
  if (ack.kombuWasm) return;
  const wrapped = function (options) {
    if (options === undefined) return ack.call(this, false);
    const { multiple = false } = plainOptions("ack options", options);
    if (typeof multiple !== "boolean") throw valueError(`ack: multiple must be a boolean, not ${kind(multiple)}`);
    return ack.call(this, multiple);
  };
  wrapped.kombuWasm = true;
  Object.defineProperties(M.prototype, {
    ack: { value: wrapped, writable: true, configurable: true },
    /** The decoded body (Kombu's `decode()`): the same as `payload`. */
    decode: { value() { return this.payload; }, writable: true, configurable: true },
    ackLogError: { value(logger = console, options) { settleLogging(this, "ack", logger, () => this.ack(options)); }, writable: true, configurable: true },
    rejectLogError: { value(logger = console, options) { settleLogging(this, "reject", logger, () => this.reject(plainOptions("reject options", options).requeue ?? false)); }, writable: true, configurable: true },
  });
}

/** Kombu's `ack_log_error`/`reject_log_error`: settle, logging a failure instead of throwing. */
function settleLogging(message, what, logger, settle) {
  try {
    settle();
  } catch (e) {
    (logger?.error ?? console.error).call(logger, `Couldn't ${what} ${message.deliveryTag}, reason: ${e?.name}: ${e?.message}`);
  }
}

/** The callbacks of each consumer (Kombu's `callbacks`, `on_message`, `on_decode_error`). */
const consumerState = new WeakMap();

function consumerCallbacks(consumer, { callbacks, onMessage, onDecodeError }) {
  const list = callbacks === undefined ? [] : callbacks;
  if (!Array.isArray(list) || list.some((f) => typeof f !== "function")) throw valueError("Consumer option callbacks must be an array of functions (body, message)");
  for (const [k, f] of [["onMessage", onMessage], ["onDecodeError", onDecodeError]]) {
    if (f !== undefined && typeof f !== "function") throw valueError(`Consumer option ${k} must be a function, not ${kind(f)}`);
  }
  consumerState.set(consumer, { callbacks: [...list], onMessage, onDecodeError });
}

function hasCallbacks(consumer) {
  const st = consumerState.get(consumer);
  return Boolean(st?.onMessage || st?.callbacks.length);
}

Object.defineProperties(Consumer.prototype, {
  /** The callbacks, `(body, message)` each (Kombu's `callbacks`). */
  callbacks: { get() { return consumerState.get(this).callbacks; }, configurable: true },
  /** `(message)`, instead of the callbacks and without decoding (Kombu's `on_message`). */
  onMessage: { get() { return consumerState.get(this).onMessage; }, set(f) { consumerCallbacks(this, { ...consumerState.get(this), onMessage: f }); }, configurable: true },
  /** `(message, error)` for a body that cannot be decoded (Kombu's `on_decode_error`). */
  onDecodeError: { get() { return consumerState.get(this).onDecodeError; }, set(f) { consumerCallbacks(this, { ...consumerState.get(this), onDecodeError: f }); }, configurable: true },
});

/** Add a callback `(body, message)` (Kombu's `register_callback`). */
Consumer.prototype.registerCallback = function registerCallback(callback) {
  if (typeof callback !== "function") throw valueError(`registerCallback takes a function (body, message), not ${kind(callback)}`);
  consumerState.get(this).callbacks.push(callback);
};

/** Hand `message` to the callbacks (Kombu's `receive`/`_receive_callback`): `onMessage` if
 * set; else the decoded body to each callback, or the decode error to `onDecodeError` (thrown
 * when there is none). */
Consumer.prototype.receive = function receive(body, message) {
  for (const cb of consumerState.get(this).callbacks) cb(body, message);
};

function deliver(consumer, message) {
  const { onMessage, onDecodeError } = consumerState.get(consumer);
  if (onMessage) return onMessage(message);
  let body;
  try {
    body = message.payload;
  } catch (e) {
    if (onDecodeError) return onDecodeError(message, e);
    throw e;
  }
  consumer.receive(body, message);
}

/** Hand the messages already received to the consumers with callbacks; true if any. A
 * callback that throws stops this and the error reaches the caller (`drainEvents`). */
function dispatchCallbacks(consumers) {
  let any = false;
  for (const c of consumers) {
    for (let m; (m = c._tryNext());) {
      any = true;
      deliver(c, m);
    }
  }
  return any;
}

/** Optional booleans, checked (the core takes them as they are). */
function booleans(what, o, keys) {
  for (const k of keys) {
    if (o[k] !== undefined && typeof o[k] !== "boolean") throw valueError(`${what}: ${k} must be a boolean, not ${kind(o[k])}`);
  }
  return o;
}

function deleteOptions(options) {
  const o = plainOptions("delete options", options);
  for (const k of Object.keys(o)) if (k !== "ifUnused" && k !== "ifEmpty") throw valueError(`delete options: unknown option ${k} (ifUnused, ifEmpty)`);
  return booleans("delete options", o, ["ifUnused", "ifEmpty"]);
}

function bindOptions(op, exchange, options) {
  const { routingKey = "", arguments: args } = plainOptions(`${op} options`, options);
  if (!(exchange instanceof Exchange) && typeof exchange !== "string") throw valueError(`${op} takes an Exchange or an exchange name, not ${kind(exchange)}`);
  if (typeof routingKey !== "string") throw valueError(`${op}: routingKey must be a string, not ${kind(routingKey)}`);
  return { exchange: exchange instanceof Exchange ? exchange.name : exchange, routingKey, arguments: args };
}

/** The connections of bound entities. */
const boundTo = new WeakMap();

function connectionOf(entity) {
  return boundTo.get(entity);
}

function bindEntity(entity, conn, Bound) {
  if (!(conn instanceof Connection)) throw valueError(`bind takes a Connection, not ${kind(conn)}`);
  const b = new Bound(entity.name, Object.fromEntries(Object.entries(entity).filter(([k]) => k !== "name")));
  boundTo.set(b, conn);
  return b;
}

/** `exchange.bind(conn)`: the exchange bound to a connection (Kombu's `exchange(channel)`). */
Exchange.prototype.bind = function bind(conn) {
  return bindEntity(this, conn, BoundExchange);
};

/** `queue.bind(conn)`: the queue bound to a connection (Kombu's `queue(channel)`). */
Queue.prototype.bind = function bind(conn) {
  return bindEntity(this, conn, BoundQueue);
};

/** An Exchange bound to a connection: declare, delete and bind it (exchange-to-exchange). */
export class BoundExchange extends Exchange {
  /** The connection. */
  get connection() { return connectionOf(this); }
  /** Declare the exchange; resolves to its name. */
  declare() { return connectionOf(this).declare(this); }
  /** Delete the exchange; with `ifUnused`, only if no queue or exchange is bound to it. */
  delete(options) { return connectionOf(this).delete(this, options); }
  /** Route what `exchange` gets with `routingKey` to this exchange too (exchange.bind). */
  bindTo(exchange, options) { return connectionOf(this)._entityOp("bindTo", this, bindOptions("bindTo", exchange, options)); }
  /** Remove a binding made with `bindTo`. */
  unbindFrom(exchange, options) { return connectionOf(this)._entityOp("unbindFrom", this, bindOptions("unbindFrom", exchange, options)); }
}

/** A Queue bound to a connection: declare, bind, unbind, get, purge and delete it. */
export class BoundQueue extends Queue {
  /** The connection. */
  get connection() { return connectionOf(this); }
  /** Declare the queue (its exchange and bindings too); resolves to its name. */
  declare() { return connectionOf(this).declare(this); }
  /** Delete the queue, unless in use (`ifUnused`) or holding messages (`ifEmpty`); resolves to
   * how many messages were deleted with it. */
  delete(options) { return connectionOf(this).delete(this, options); }
  /** Remove the ready messages; resolves to how many. */
  purge() { return connectionOf(this).purge(this); }
  /** Bind the queue to `exchange` with `routingKey`. */
  bindTo(exchange, options) { return connectionOf(this)._entityOp("bindTo", this, bindOptions("bindTo", exchange, options)); }
  /** Remove a binding. */
  unbindFrom(exchange, options) { return connectionOf(this)._entityOp("unbindFrom", this, bindOptions("unbindFrom", exchange, options)); }
  /** Remove the binding to the queue's own exchange and routing key (Kombu's `unbind`). */
  unbind() {
    const x = this.exchange;
    if (x === undefined || (x instanceof Exchange ? x.name : x) === "") throw valueError(`queue '${this.name}' has no exchange to unbind from`);
    return this.unbindFrom(x, { routingKey: this.routingKey ?? "", arguments: this.bindingArguments });
  }
  /** One message (`basic.get`) or null when the queue is empty; `noAck`, `accept`. */
  get(options) {
    const { noAck, accept } = booleans("get options", plainOptions("get options", options), ["noAck"]);
    if (accept !== undefined && (!Array.isArray(accept) || accept.some((a) => typeof a !== "string"))) throw valueError("get options: accept must be an array of serializer names or content types");
    return connectionOf(this)._entityOp("get", this, { noAck, accept });
  }
}

/** Serialize `data` (Kombu's `dumps`): `[contentType, contentEncoding, bytes]`. */
export function dumps(data, serializer) {
  if (serializer !== undefined && typeof serializer !== "string") throw valueError(`the serializer must be a name, not ${kind(serializer)}`);
  return isRaw(data) ? core.dumps(data, false, serializer) : core.dumps(jsonText(data), true, serializer);
}

/** Deserialize `data` (Kombu's `loads`), refusing content types not in `accept` (names or
 * MIME types; the insecure ones when omitted) unless `force`. */
export function loads(data, contentType, contentEncoding, options) {
  const { accept, force = false } = plainOptions("loads options", options);
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : data;
  if (!(bytes instanceof Uint8Array)) throw valueError(`loads takes a Uint8Array, an ArrayBuffer or a string, not ${kind(data)}`);
  if (accept !== undefined && (!Array.isArray(accept) || accept.some((a) => typeof a !== "string"))) throw valueError("loads: accept must be an array of serializer names or content types");
  return core.loads(bytes, contentType ?? undefined, contentEncoding ?? undefined, accept, Boolean(force));
}

/** Remove a serializer (Kombu's `registry.unregister`); SerializerNotInstalled if unknown. */
export function unregister(name) {
  if (typeof name !== "string") throw valueError(`unregister takes a serializer name, not ${kind(name)}`);
  const r = () => core.unregister(name);
  r();
  for (const [t, n] of serializerNames) if (n === name) serializerNames.delete(t);
  registered.push(r);
}

/** Decode these serializers even without an `accept` list (Kombu's
 * `enable_insecure_serializers`; default yaml and msgpack, those installed). */
export function enableInsecureSerializers(choices) {
  insecure(choices, false);
}

/** Decode only `allowed` without an `accept` list (Kombu's `disable_insecure_serializers`;
 * default ["json"]). */
export function disableInsecureSerializers(allowed = ["json"]) {
  insecure(allowed, true);
}

function insecure(choices, disable) {
  const given = choices !== undefined;
  const list = given ? choices : ["yaml", "msgpack"];
  if (!Array.isArray(list) || list.some((c) => typeof c !== "string")) throw valueError("the serializers must be an array of names");
  const r = () => {
    if (disable || given) return core.insecureSerializers(list, disable);
    for (const c of list) {
      try {
        core.insecureSerializers([c], false);
      } catch (e) {
        if (!(e instanceof SerializerNotInstalled)) throw e;
      }
    }
  };
  r();
  registered.push(r);
}

// ---------------------------------------------------------------------------------------
// kombu.common: uuid, Broadcast, eventloop, drainConsumer, itermessages, sendReply,
// collectReplies — in JavaScript over the API above.

/** A random UUID4 string (Kombu's `uuid()`). */
export function uuid() {
  return crypto.randomUUID();
}

/** A broadcast queue (Kombu's `Broadcast`): each consumer gets its own queue (`bcast.<uuid>`,
 * auto-deleted) bound to the fanout exchange `name`; with `queue`, that name (with `unique`,
 * `<queue>.<uuid>`). Other options are the Queue's. */
export class Broadcast extends Queue {
  constructor(name, options = {}) {
    const { queue, unique = false, autoDelete = true, exchange, alias, ...rest } = plainOptions("Broadcast options", options);
    if (typeof name !== "string" || name === "") throw valueError(`Broadcast needs the name of its fanout exchange, not ${kind(name)}`);
    if (queue !== undefined && typeof queue !== "string") throw valueError(`Broadcast option queue must be a string, not ${kind(queue)}`);
    const qname = unique ? `${queue || "bcast"}.${uuid()}` : queue || `bcast.${uuid()}`;
    super(qname, { ...rest, alias: alias ?? name, autoDelete, exchange: exchange ?? new Exchange(name, { type: "fanout" }) });
  }
}

/** Drain the connection's events (Kombu's `eventloop`), `limit` times (forever when
 * omitted), each waiting up to `timeout` ms; yields after each. A timeout ends the loop with
 * TimeoutError unless `ignoreTimeouts`. Consumer callbacks run as events come. */
export async function* eventloop(conn, options) {
  const { limit, timeout, ignoreTimeouts = false } = plainOptions("eventloop options", options);
  for (let i = 0; limit === undefined || i < limit; i++) {
    try {
      await conn.drainEvents({ timeout });
    } catch (e) {
      if (e instanceof TimeoutError && (ignoreTimeouts || timeout === undefined)) continue;
      throw e;
    }
    yield;
  }
}

/** `[body, message]` for the messages of `consumer` (Kombu's `drain_consumer`): up to `limit`
 * (default 1) waits of `timeout` ms each, timeouts ignored; then the consumer is cancelled. */
export async function* drainConsumer(consumer, options) {
  const { limit = 1, timeout } = plainOptions("drainConsumer options", options);
  try {
    for (let i = 0; i < limit; i++) {
      let m;
      try {
        m = await consumer.next({ timeout });
      } catch (e) {
        if (e instanceof TimeoutError) continue;
        throw e;
      }
      yield [m.payload, m];
    }
  } finally {
    await consumer.cancel();
  }
}

/** `[body, message]` from `queue` (Kombu's `itermessages`): `drainConsumer` of a new consumer
 * of `queue` (Consumer options such as `accept`, `noAck` apply). */
export function itermessages(conn, queue, options) {
  const { limit, timeout, ...consumerOptions } = plainOptions("itermessages options", options);
  return drainConsumer(conn.Consumer([queue], consumerOptions), { limit, timeout });
}

/** The bodies of the replies in `queue` (Kombu's `collect_replies`), as `itermessages`;
 * acknowledged unless `noAck` (the default). */
export async function* collectReplies(conn, queue, options) {
  const { noAck = true, ...rest } = plainOptions("collectReplies options", options);
  for await (const [body, message] of itermessages(conn, queue, { ...rest, noAck })) {
    if (!noAck) message.ack();
    yield body;
  }
}

/** Serializer names by content type, for `sendReply` (answer in the request's format). */
const serializerNames = new Map([["application/json", "json"], ["application/x-yaml", "yaml"], ["application/x-msgpack", "msgpack"]]);

/** Reply to `request` (Kombu's `send_reply`): publish `body` through `exchange` to the queue
 * its `replyTo` names, with its `correlationId`, serializer and content encoding. Options:
 * `producer` (required) and publish options. */
export function sendReply(exchange, request, body, options) {
  const { producer, ...props } = plainOptions("sendReply options", options);
  if (!(producer instanceof Producer)) throw valueError("sendReply needs { producer }: the Producer to publish the reply with");
  const p = request?.properties;
  if (!p?.replyTo) throw valueError("sendReply needs a request message with a replyTo property");
  const serializer = serializerNames.get(request.contentType);
  return producer.publish(body, defined({ exchange, routingKey: p.replyTo, correlationId: p.correlationId ?? undefined, serializer, ...props }));
}

// ---------------------------------------------------------------------------------------
// kombu.pidbox: Mailbox and Node — control messages between processes (tabs, workers, Python
// services, Celery's `celery inspect`/`control` use it), wire-compatible with Kombu's.

/** Kombu's LamportClock. */
class LamportClock {
  value = 0;
  forward() {
    return ++this.value;
  }
  adjust(other) {
    this.value = Math.max(this.value, Number(other) || 0) + 1;
    return this.value;
  }
}

/** A mailbox (Kombu's `pidbox.Mailbox`): commands to the nodes listening on `namespace`
 * (exchange `<namespace>.pidbox`; replies through `reply.<namespace>.pidbox`). `timeout`s are
 * milliseconds; `queueTtl`, `queueExpires`, `replyQueueTtl`, `replyQueueExpires` seconds. */
export class Mailbox {
  constructor(namespace, options = {}) {
    if (typeof namespace !== "string" || namespace === "") throw valueError(`Mailbox needs a namespace, not ${kind(namespace)}`);
    const o = plainOptions("Mailbox options", options);
    const { type = "direct", connection, accept = ["json"], serializer, queueTtl, queueExpires, queueDurable = false, queueExclusive = true, replyQueueTtl, replyQueueExpires = 10 } = o;
    if (queueExclusive && queueDurable) throw valueError("queueExclusive and queueDurable cannot both be true (exclusive queues are deleted with their connection)");
    if (connection !== undefined && !(connection instanceof Connection)) throw valueError(`Mailbox option connection must be a Connection, not ${kind(connection)}`);
    Object.assign(this, { namespace, type, connection, accept, serializer, queueTtl, queueExpires, queueDurable, queueExclusive, replyQueueTtl, replyQueueExpires });
    this.clock = new LamportClock();
    this.oid = uuid();
    this.exchange = new Exchange(`${namespace}.pidbox`, { type, durable: false, deliveryMode: "transient" });
    this.replyExchange = new Exchange(`reply.${namespace}.pidbox`, { type: "direct", durable: false, deliveryMode: "transient" });
    this.unclaimed = new Map();
  }

  /** This mailbox on `connection` (Kombu's `mailbox(connection)`). */
  bind(connection) {
    const { namespace, type, accept, serializer, queueTtl, queueExpires, queueDurable, queueExclusive, replyQueueTtl, replyQueueExpires } = this;
    return new Mailbox(namespace, defined({ type, connection, accept, serializer, queueTtl, queueExpires, queueDurable, queueExclusive, replyQueueTtl, replyQueueExpires }));
  }

  /** A node `hostname` of this mailbox, whose `handlers[method](state, arguments)` answer. */
  Node(hostname, options = {}) {
    return new Node(hostname, { ...plainOptions("Node options", options), mailbox: this });
  }

  /** The queue of node `hostname` (`<hostname>.<namespace>.pidbox`). */
  getQueue(hostname) {
    return new Queue(`${hostname}.${this.namespace}.pidbox`, defined({ exchange: this.exchange, durable: this.queueDurable, exclusive: this.queueExclusive, autoDelete: !this.queueDurable, expires: this.queueExpires, messageTtl: this.queueTtl }));
  }

  /** This mailbox's reply queue. */
  get replyQueue() {
    return new Queue(`${this.oid}.${this.replyExchange.name}`, defined({ exchange: this.replyExchange, routingKey: this.oid, durable: this.queueDurable, exclusive: this.queueExclusive, autoDelete: !this.queueDurable, expires: this.replyQueueExpires, messageTtl: this.replyQueueTtl }));
  }

  /** Run `command` on the nodes in `destination` and resolve to their replies
   * (`[{ hostname: reply }]`), waiting `timeout` ms (default 1000) for each. */
  call(destination, command, args, options) {
    return this.#broadcast(command, args, { ...plainOptions("call options", options), destination, reply: true });
  }

  /** Send `command` to the nodes in `destination`, without waiting for replies. */
  cast(destination, command, args) {
    return this.#broadcast(command, args, { destination, reply: false });
  }

  /** Send `command` to every node, without replies. */
  abcast(command, args) {
    return this.#broadcast(command, args, { reply: false });
  }

  /** Run `command` on every node; resolves to the replies that came within `timeout` ms
   * (default 1000) of each other, up to `limit`. */
  multiCall(command, args, options) {
    return this.#broadcast(command, args, { ...plainOptions("multiCall options", options), reply: true });
  }

  #conn() {
    if (!this.connection) throw valueError("this Mailbox has no connection: mailbox.bind(conn), or new Mailbox(namespace, { connection })");
    return this.connection;
  }

  async #broadcast(command, args = {}, { destination, reply, timeout = 1000, limit, callback, pattern, matcher, serializer }) {
    if (typeof command !== "string") throw valueError(`the command must be a string, not ${kind(command)}`);
    if (destination !== undefined && !Array.isArray(destination)) throw valueError(`destination must be an array of node names, not ${kind(destination)}`);
    seconds("timeout", timeout);
    const conn = this.#conn();
    const ticket = reply ? uuid() : undefined;
    const producer = conn.Producer({ autoDeclare: false });
    const message = { method: command, arguments: args, destination: destination ?? null, pattern: pattern ?? null, matcher: matcher ?? null };
    if (ticket) {
      await producer.maybeDeclare(this.replyQueue);
      Object.assign(message, { ticket, reply_to: { exchange: this.replyExchange.name, routing_key: this.oid } });
    }
    await producer.publish(message, defined({
      exchange: this.exchange.name, declare: [this.exchange], serializer: serializer ?? this.serializer,
      headers: { clock: this.clock.forward(), expires: timeout ? Date.now() / 1000 + timeout / 1000 : 0 },
    }));
    if (!ticket) return undefined;
    return this.#collect(conn, ticket, { limit: limit ?? destination?.length, timeout, callback });
  }

  async #collect(conn, ticket, { limit, timeout, callback }) {
    const waiting = this.unclaimed.get(ticket);
    if (waiting) {
      this.unclaimed.delete(ticket);
      return waiting;
    }
    const responses = [];
    const onMessage = (body, message) => {
      const h = message.headers;
      this.clock.adjust(h.clock ?? 0);
      if (h.expires && Date.now() / 1000 > h.expires) return;
      const id = h.ticket ?? ticket;
      if (id === ticket) {
        callback?.(body);
        responses.push(body);
      } else {
        if (!this.unclaimed.has(id)) this.unclaimed.set(id, []);
        this.unclaimed.get(id).push(body);
      }
    };
    const consumer = conn.Consumer([this.replyQueue], { accept: this.accept, noAck: true, callbacks: [onMessage] });
    await consumer.consume();
    try {
      for (let i = 0; limit === undefined || i < limit; i++) {
        try {
          await conn.drainEvents({ timeout });
        } catch (e) {
          if (e instanceof TimeoutError) break;
          throw e;
        }
      }
      return responses;
    } finally {
      await consumer.cancel();
    }
  }
}

/** A node of a Mailbox (Kombu's `pidbox.Node`): `listen()` consumes its queue; each command
 * runs `handlers[method](state, arguments)` (a value or a Promise) and, for `call`s, its
 * result (or `{ error }`) goes back to the caller as `{ [hostname]: result }`. */
export class Node {
  constructor(hostname, { state, handlers = {}, mailbox } = {}) {
    if (typeof hostname !== "string" || hostname === "") throw valueError(`a Node needs a hostname, not ${kind(hostname)}`);
    if (!(mailbox instanceof Mailbox)) throw valueError("a Node is made by mailbox.Node(hostname, { state, handlers })");
    Object.assign(this, { hostname, state, handlers, mailbox });
  }

  /** Register `fn` as the handler of the command `name` (default `fn.name`). */
  handler(fn, name = fn?.name) {
    if (typeof fn !== "function" || !name) throw valueError("handler takes a named function (or a name)");
    this.handlers[name] = fn;
    return fn;
  }

  /** A consumer of this node's queue (Kombu's `Node.Consumer`). */
  Consumer(options = {}) {
    const conn = this.mailbox.connection;
    if (!conn) throw valueError("the Node's mailbox has no connection: mailbox.bind(conn)");
    return conn.Consumer([this.mailbox.getQueue(this.hostname)], { noAck: true, accept: this.mailbox.accept, ...plainOptions("Consumer options", options) });
  }

  /** Consume this node's queue: commands are handled as the connection's events are
   * drained (`eventloop(conn)`). Resolves to the consumer (cancel it to stop). */
  async listen(options = {}) {
    const { callback } = plainOptions("listen options", options);
    const consumer = this.Consumer({ callbacks: [callback ?? ((body, message) => { this.handleMessage(body, message).catch((e) => console.error(`pidbox: cannot reply: ${e?.name}: ${e?.message}`)); })], onDecodeError: (message, error) => console.error(`pidbox: cannot decode message: ${error.message}`) });
    await consumer.consume();
    return consumer;
  }

  /** Run the command in `body` if it is for this node (`destination`, or any). Resolves to
   * the reply, or undefined when it is for other nodes. */
  handleMessage(body, message) {
    if (message) this.mailbox.clock.adjust(message.headers?.clock ?? 0);
    const { destination, pattern, matcher } = body ?? {};
    if (destination) {
      if (!destination.includes(this.hostname)) return Promise.resolve(undefined);
    } else if (pattern && matcher) {
      if (!matches(this.hostname, pattern, matcher)) return Promise.resolve(undefined);
    }
    return this.dispatch(body);
  }

  /** Run `method` with `arguments`; reply to `reply_to` when given. */
  async dispatch({ method, arguments: args, reply_to: replyTo, ticket } = {}) {
    let reply;
    try {
      const handle = this.handlers[method];
      if (typeof handle !== "function") throw new KombuError(`no handler for ${JSON.stringify(method)}`);
      reply = await handle(this.state, args ?? {});
    } catch (e) {
      console.error(`pidbox command error: ${e?.name}: ${e?.message}`);
      reply = { error: `${e?.name ?? "Error"}(${JSON.stringify(e?.message ?? String(e))})` };
    }
    if (replyTo) await this.reply({ [this.hostname]: reply ?? null }, replyTo.exchange, replyTo.routing_key, ticket);
    return reply;
  }

  /** Send `data` to a caller's reply queue. */
  reply(data, exchange, routingKey, ticket) {
    const x = new Exchange(exchange, { type: "direct", deliveryMode: "transient", durable: false });
    return this.mailbox.connection.Producer({ autoDeclare: false }).publish(data, defined({
      exchange: x, routingKey, declare: [x], headers: { ticket, clock: this.mailbox.clock.forward() }, serializer: this.mailbox.serializer,
    }));
  }
}

/** Kombu's `match(hostname, pattern, matcher)`: glob (default) or pcre. */
function matches(hostname, pattern, matcher) {
  if (matcher === "pcre") return new RegExp(pattern).test(hostname);
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${re}$`).test(hostname);
}
