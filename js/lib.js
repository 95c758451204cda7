// kombu-wasm: the JavaScript face of the Rust core (../src/wasm/mod.rs).
//
// This module is the API over one of two builds of the WebAssembly module, chosen by the entry
// the app imports: `index.js` ("kombu-wasm": memory:// and the Kombu API) or `ws.js`
// ("kombu-wasm/ws": the same plus the WebSocket transports gateway+ws:// and amqp+ws://).
// The entries bind their build's wasm-bindgen glue (`bindModule`) and load it once, before
// anything runs (top-level await of `init()`; `workerd.js` for Cloudflare Workers imports the
// .wasm as a module and uses `initSync`). `init()` returns the same promise every time, so
// nothing is ever initialised twice; one build serves the whole app (importing "kombu-wasm"
// after "kombu-wasm/ws" keeps the larger build; the other way round is an error that says so).
// In Node the .wasm is read from disk next to this file; in browsers, workers and bundlers
// (Vite) the glue fetches it from its `new URL("..._bg.wasm", import.meta.url)`.
//
// Declarations (`Exchange`, `Queue`) are plain JavaScript values, validated by the core when
// created; everything else wraps the core's classes. Timeouts are in milliseconds; message
// and queue TTLs (`expiration`, `messageTtl`, `expires`) are in seconds, as in Kombu.

/** The bound build: its wasm-bindgen glue, its .wasm file and whether it has the WebSocket transports. */
let core;
let wasmFile;
let withWebSockets = false;
let ready;
/** Functions to run once the module is loaded (`kombu-wasm/codecs` registers its codecs so). */
const onLoad = [];

/** The version of the core (set once the WebAssembly module is loaded). */
export let version;

/** The message class the core returns (Kombu's `Message`). */
export let Message;

/** Used by the entries: bind the build whose glue is `glue` (once per app; see above). */
export function bindModule(glue, file, webSockets) {
  if (core === glue) return;
  if (core) {
    if (webSockets && !withWebSockets) {
      throw new Error('kombu-wasm is already loaded without the WebSocket transports (gateway+ws://, amqp+ws://): import from "kombu-wasm/ws" everywhere in the app, not "kombu-wasm"');
    }
    return; // the WebSocket build already bound has everything the smaller one has
  }
  [core, wasmFile, withWebSockets, Message] = [glue, file, webSockets, glue.Message];
}

function loaded() {
  version = core.version();
  for (const f of onLoad.splice(0)) f();
}

/** Run `f` once the WebAssembly module is loaded (now, if it is). */
export function whenLoaded(f) {
  if (version === undefined) onLoad.push(f);
  else f();
}

/** Load the WebAssembly module (once). `source`: bytes, a URL or a compiled module. */
export function init(source) {
  ready ??= (async () => {
    await core.default(await wasmSource(source, wasmFile));
    loaded();
  })();
  return ready;
}

/** What wasm-bindgen's init takes: `source` if given; in Node, the bytes of `file` (fetch
 * cannot read file: URLs there); elsewhere nothing, and the glue fetches its own URL. */
export async function wasmSource(source, file) {
  let input = source;
  if (input === undefined && typeof process !== "undefined" && process.versions?.node) {
    const { readFile } = await import("node:fs/promises");
    input = await readFile(file);
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

/** A `ValueError` (a TypeError named as Kombu names it) saying what to change. */
const valueError = (message) => Object.assign(new TypeError(message), { name: "ValueError" });

function plainOptions(what, options) {
  if (options === undefined || options === null) return {};
  if (typeof options !== "object" || Array.isArray(options)) {
    throw valueError(`${what} must be an object, not ${Array.isArray(options) ? "an array" : typeof options}`);
  }
  return options;
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

/** JSON text of structured data, with Kombu's EncodeError for what JSON cannot carry. */
function jsonText(body) {
  let text;
  try {
    text = JSON.stringify(body);
  } catch (e) {
    const what = typeof body === "bigint" || /BigInt/.test(e?.message) ? "a BigInt" : "this value";
    throw Object.assign(new Error(`${what} cannot be serialized: send JSON data, a string or a Uint8Array (${e?.message ?? e})`), { name: "EncodeError" });
  }
  if (text === undefined) {
    throw Object.assign(new Error(`a ${typeof body} cannot be serialized: send JSON data, a string or a Uint8Array`), { name: "EncodeError" });
  }
  return text;
}

function publishSpec(options) {
  const o = defined(plainOptions("publish options", options));
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
const connectionEvents = ["connected", "disconnected", "reconnecting"];

/** A connection (Kombu's `Connection`): lazy, opened at first use. */
export class Connection {
  #c;
  /** `[event, listener]` pairs, once `on` was called. */
  #listeners;

  constructor(url = "memory://", options = {}) {
    this.#c = new core.Connection(url, defined(plainOptions("Connection options", options)));
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
   * (connecting failed with `error`; the next attempt is in `interval` ms). Returns a function
   * that stops listening.
   */
  on(event, listener) {
    if (!connectionEvents.includes(event) || typeof listener !== "function") {
      throw valueError(`on(event, listener) takes one of ${connectionEvents.join(", ")} and a function`);
    }
    if (!this.#listeners) {
      const listeners = (this.#listeners = new Set());
      this.#c.onEvent((type, error, seconds) => {
        const detail = { type, error, interval: seconds === undefined ? undefined : seconds * 1000 };
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
   * Kombu's `ensure_connection`: connect, retrying with `retryPolicy` (by default every 2 s
   * more, up to 30 s, forever) through the failover URLs; resolves once connected. A URL or a
   * transport that cannot work (`InvalidURL`, `UnknownTransport`) rejects at once.
   */
  ensureConnection(options) {
    const { retryPolicy } = plainOptions("ensureConnection options", options);
    return this.#c.ensureConnection(retryPolicy);
  }

  /** The URL, password masked unless `includePassword`. */
  asUri(includePassword = false) {
    return this.#c.asUri(includePassword);
  }

  /** Transport, host, port, user, virtual host... (password masked). */
  info() {
    return this.#c.info();
  }

  /** A producer (Kombu's `Connection.Producer`). */
  Producer(options = {}) {
    const o = { ...plainOptions("Producer options", options) };
    if (o.exchange !== undefined) o.exchange = exchangeRef(o.exchange);
    return new Producer(this.#c.Producer(defined(o)));
  }

  /** A consumer of `queues` (Kombu's `Connection.Consumer`); iterate it with `for await`. */
  Consumer(queues = [], options = {}) {
    return new Consumer(this.#c.Consumer([].concat(queues).map(queueSpec), defined(plainOptions("Consumer options", options))));
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

  /** Delete an Exchange or a Queue. */
  delete(entity) {
    return this.#c.delete(entitySpec(entity));
  }

  /** Remove a queue's ready messages; resolves to how many. */
  purge(queue) {
    return this.#c.purge(queueSpec(queue));
  }

  /** Wait for one event (ms; forever when omitted) and run consumer callbacks. */
  drainEvents(options) {
    const { timeout } = plainOptions("drainEvents options", options);
    return this.#c.drainEvents(timeout);
  }

  /** memory:// only: exchanges, queues (depth, consumers, unacked), bindings. */
  snapshot(virtualHost) {
    return this.#c.snapshot(virtualHost);
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

/** Publishes messages (Kombu's `Producer`). */
export class Producer {
  #p;

  constructor(inner) {
    this.#p = inner;
  }

  /** Publish JSON data, a string, or bytes (`Uint8Array`/`ArrayBuffer`, with `contentType`). */
  publish(body, options = {}) {
    const opts = JSON.stringify(publishSpec(options));
    return isRaw(body) ? this.#p.publish(body, opts) : this.#p.publishJson(jsonText(body), opts);
  }
}

/** Receives messages (Kombu's `Consumer`). `for await (const m of consumer)` starts consuming. */
export class Consumer {
  #c;

  constructor(inner) {
    this.#c = inner;
  }

  /** Declare the queues and start consuming. */
  consume() {
    return this.#c.consume();
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
    return this.#c.cancel();
  }

  /** Stop consuming from one queue. */
  cancelByQueue(queue) {
    return this.#c.cancelByQueue(queue);
  }

  /** True while consuming from `queue`. */
  consumingFrom(queue) {
    return this.#c.consumingFrom(queue);
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
      throw e?.name === "TimeoutError" ? Object.assign(e, { name: "Empty" }) : e;
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
  core.registerCompression(contentType, aliases.map(String), compress, decompress);
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
  core.registerSerializer(name, contentType, contentEncoding, encode, decode);
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
  core.registerJsonCodec(name, contentType, contentEncoding, fromJson, toJson);
}

/** The compression methods known: `[[contentType, [alias, ...]], ...]`. */
export function compressionMethods() {
  return core.compressionMethods();
}

