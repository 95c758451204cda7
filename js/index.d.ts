// Types of kombu-wasm. Every time is in milliseconds (timeouts, connectTimeout, retryPolicy)
// but TTLs (expiration, messageTtl, expires) and heartbeat, which are seconds, as in Kombu.
/// <reference lib="esnext.disposable" />

/** JSON data as the serializers carry it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * What can be published: JSON data (objects of any interface or type, `Record<string,
 * unknown>`, readonly and `as const` data), text, or raw bytes (`Uint8Array`/`ArrayBuffer`,
 * sent with `contentType`). What is not JSON data — a Map, Set, Date, NaN, Infinity, a
 * function or an undefined member — is refused when published with an `EncodeError` naming
 * where it is.
 */
export type Body = string | number | boolean | null | object;

/** What a message decodes to: data for json/msgpack/yaml, a string for text, bytes for binary. */
export type Payload = JsonValue | Uint8Array;

/** Header and argument tables as received. */
export type Headers = { [key: string]: JsonValue };

/** Header and argument tables as given: any object of JSON data. */
export type HeadersInit = Readonly<Record<string, unknown>>;

export type ExchangeType = "direct" | "topic" | "fanout" | "headers" | (string & {});

/** 1 or "transient"; 2 or "persistent". */
export type DeliveryMode = 1 | 2 | "transient" | "persistent";

/**
 * Kombu's exception names carried by thrown errors (`error.name`).
 * Option mistakes are `ValueError`; waits that run out are `TimeoutError`.
 */
export type KombuErrorName =
  | "KombuError" | "NotBoundError" | "MessageStateError" | "TimeoutError" | "Empty" | "LimitExceeded"
  | "ConnectionLimitExceeded" | "ChannelLimitExceeded" | "ContentDisallowed"
  | "SerializerNotInstalled" | "CompressionNotInstalled" | "EncodeError" | "DecodeError"
  | "OperationalError" | "RecoverableConnectionError" | "InconsistencyError" | "MessageNacked"
  | "MatcherNotInstalled" | "InvalidURL" | "UnknownTransport" | "ValueError" | "NotImplementedError"
  | "AMQPError" | "NotFound" | "PreconditionFailed" | "AccessRefused" | "ResourceLocked" | "NotAllowed"
  | "ChannelNotOpen" | "ConnectionForced" | "ContentTooLarge" | "NoRoute" | "NoConsumers" | "InvalidPath"
  | "FrameError" | "FrameSyntaxError" | "CommandInvalid" | "UnexpectedFrame" | "ResourceError"
  | "AMQPNotImplementedError" | "InternalError";

/**
 * Every error kombu-wasm throws (`err instanceof KombuError`), with Kombu's exception name in
 * `name`; a subclass for each (`err instanceof NotFound`).
 */
export declare class KombuError extends Error {
  constructor(message?: string);
  name: KombuErrorName | (string & {});
  /** The AMQP reply code of a connection or channel error (404 for NotFound, ...). */
  code?: number;
}
export declare class OperationalError extends KombuError {}
/** The connection failed or was lost: refused, timed out (connectTimeout), closed. */
export declare class RecoverableConnectionError extends KombuError {}
export declare class NotBoundError extends KombuError {}
/** A message settled twice. */
export declare class MessageStateError extends KombuError {}
/** A wait ran out (`timeout`, in milliseconds). */
export declare class TimeoutError extends KombuError {}
/** `SimpleQueue.get`: nothing came in time. */
export declare class Empty extends KombuError {}
export declare class LimitExceeded extends KombuError {}
export declare class ConnectionLimitExceeded extends LimitExceeded {}
export declare class ChannelLimitExceeded extends LimitExceeded {}
export declare class SerializerNotInstalled extends KombuError {}
/** A content type not in the consumer's `accept`. */
export declare class ContentDisallowed extends SerializerNotInstalled {}
export declare class CompressionNotInstalled extends KombuError {}
/** A body that is not JSON data (a Map, NaN, a BigInt, ...). */
export declare class EncodeError extends KombuError {}
export declare class DecodeError extends KombuError {}
export declare class InconsistencyError extends KombuError {}
export declare class MessageNacked extends KombuError {}
export declare class MatcherNotInstalled extends KombuError {}
export declare class InvalidURL extends KombuError {}
export declare class UnknownTransport extends KombuError {}
/** A mistyped or unknown option, named in the message. */
export declare class ValueError extends KombuError {}
export declare class NotImplementedError extends KombuError {}
/** An AMQP connection or channel error; `code` is its reply code. */
export declare class AMQPError extends KombuError {
  code?: number;
}
/** 404: no such exchange or queue. */
export declare class NotFound extends AMQPError {}
/** 406: declared with other arguments, ... */
export declare class PreconditionFailed extends AMQPError {}
/** 403. */
export declare class AccessRefused extends AMQPError {}
/** 405: an exclusive queue of another connection. */
export declare class ResourceLocked extends AMQPError {}
/** 504. */
export declare class ChannelNotOpen extends AMQPError {}
/** 530. */
export declare class NotAllowed extends AMQPError {}
/** 320. */
export declare class ConnectionForced extends AMQPError {}

export interface ExchangeOptions {
  type?: ExchangeType;
  durable?: boolean;
  autoDelete?: boolean;
  deliveryMode?: DeliveryMode;
  arguments?: HeadersInit;
  noDeclare?: boolean;
  passive?: boolean;
}

export declare class Exchange {
  constructor(name?: string, options?: ExchangeOptions);
  readonly name: string;
  readonly type?: ExchangeType;
  readonly durable?: boolean;
  readonly autoDelete?: boolean;
  readonly deliveryMode?: DeliveryMode;
  readonly arguments?: HeadersInit;
  readonly noDeclare?: boolean;
  readonly passive?: boolean;
  /** A binding for `new Queue(name, { bindings: [...] })`. */
  binding(routingKey?: string, options?: { arguments?: HeadersInit; unbindArguments?: HeadersInit }): BindingOptions;
  toSpec(): ExchangeOptions & { name: string };
  /** This exchange bound to `connection` (Kombu's `exchange(channel)`). */
  bind(connection: Connection): BoundExchange;
}

/** Options of `bindTo` / `unbindFrom`. */
export interface BindToOptions {
  routingKey?: string;
  arguments?: HeadersInit;
}

/** An Exchange bound to a connection (`exchange.bind(conn)`). */
export declare class BoundExchange extends Exchange {
  readonly connection: Connection;
  /** Declare it; resolves to its name. */
  declare(): Promise<string>;
  /** Delete it; with `ifUnused`, only if nothing is bound to it (else PreconditionFailed). */
  delete(options?: { ifUnused?: boolean }): Promise<void>;
  /** Route what `exchange` gets (with `routingKey`) to this exchange too. */
  bindTo(exchange: Exchange | string, options?: BindToOptions): Promise<void>;
  unbindFrom(exchange: Exchange | string, options?: BindToOptions): Promise<void>;
}

export interface BindingOptions {
  exchange: Exchange | string;
  routingKey?: string;
  arguments?: HeadersInit;
  unbindArguments?: HeadersInit;
}

export interface QueueOptions {
  exchange?: Exchange | string;
  routingKey?: string;
  durable?: boolean;
  exclusive?: boolean;
  autoDelete?: boolean;
  /** Seconds (as in Kombu) without use before the queue is deleted (x-expires). */
  expires?: number;
  /** Seconds (as in Kombu) a message may wait (x-message-ttl). */
  messageTtl?: number;
  maxLength?: number;
  maxLengthBytes?: number;
  maxPriority?: number;
  queueArguments?: HeadersInit;
  bindingArguments?: HeadersInit;
  consumerArguments?: HeadersInit;
  alias?: string;
  noAck?: boolean;
  noDeclare?: boolean;
  bindings?: readonly BindingOptions[];
}

export declare class Queue {
  constructor(name?: string, options?: QueueOptions);
  readonly name: string;
  readonly exchange?: Exchange | string;
  readonly routingKey?: string;
  readonly bindingArguments?: HeadersInit;
  toSpec(): object;
  /** This queue bound to `connection` (Kombu's `queue(channel)`). */
  bind(connection: Connection): BoundQueue;
}

/** A Queue bound to a connection (`queue.bind(conn)`). */
export declare class BoundQueue extends Queue {
  readonly connection: Connection;
  /** Declare it (with its exchange and bindings); resolves to its name. */
  declare(): Promise<string>;
  /** Delete it, unless in use (`ifUnused`) or not empty (`ifEmpty`): PreconditionFailed then.
   * Resolves to how many messages were deleted with it. */
  delete(options?: { ifUnused?: boolean; ifEmpty?: boolean }): Promise<number>;
  /** Remove its ready messages; resolves to how many. */
  purge(): Promise<number>;
  bindTo(exchange: Exchange | string, options?: BindToOptions): Promise<void>;
  unbindFrom(exchange: Exchange | string, options?: BindToOptions): Promise<void>;
  /** Remove the binding to its own exchange and routing key. */
  unbind(): Promise<void>;
  /** One message (`basic.get`), or null when there is none. */
  get<T = Payload>(options?: { noAck?: boolean; accept?: readonly string[] }): Promise<Message<T> | null>;
}

export interface ConnectionOptions {
  transportOptions?: HeadersInit;
  /** Seconds between AMQP heartbeats (as in Kombu and AMQP; amqp+ws:// only). */
  heartbeat?: number;
  /**
   * Milliseconds to wait for the connection to open (default 5000; 0: no limit). A refused
   * port or upgrade fails at once, with the cause. Less than 1 is refused (a value in seconds).
   */
  connectTimeout?: number;
  ssl?: boolean;
  loginMethod?: string;
  failoverStrategy?: "round-robin" | "shuffle";
  alternates?: readonly string[];
  userid?: string;
  password?: string;
  virtualHost?: string;
  transport?: string;
  /** Publisher confirms (Kombu's `confirm_publish` transport option): `publish()` resolves
   * once the broker has the message and rejects when it refused it or closed the channel. */
  confirmPublish?: boolean;
  /** Reconnect by itself with this retry policy (times in milliseconds, as everywhere): a
   * consumer waiting for messages and a publish that meet a lost connection reconnect
   * (declarations are made again, consumers resume) and carry on. */
  reconnect?: RetryPolicy;
}

/** What `Connection.on` listeners receive. */
export interface ConnectionEvent {
  type: "connected" | "disconnected" | "reconnecting" | "blocked" | "unblocked";
  /** Why the connection was lost, or why the last attempt failed. */
  error?: Error;
  /** Milliseconds until the next attempt ("reconnecting"). */
  interval?: number;
  /** Why the broker blocked publishing ("blocked": AMQP's `connection.blocked` reason, such
   * as RabbitMQ's `low on memory`). */
  reason?: string;
}

/** `Connection.ensure` / `autoretry` options (Kombu's keyword arguments, times in ms). */
export interface EnsureOptions {
  /** Called with the error and the milliseconds until the next attempt (0 right after the
   * failure, then once per failed reconnection attempt). */
  errback?: (error: Error, interval: number) => void;
  /** Called once reconnected, before `fn` runs again. */
  onRevive?: () => void;
  /** Retries before rejecting with `OperationalError` (default: forever). */
  maxRetries?: number;
  /** Milliseconds before the first reconnection attempt (default 1000). */
  intervalStart?: number;
  /** Milliseconds added to the wait at each attempt (default 1000). */
  intervalStep?: number;
  /** Milliseconds the wait may grow past `intervalStart` (default 1000). */
  intervalMax?: number;
}

/** Kombu's `retry_policy`, its times in milliseconds. */
export interface RetryPolicy {
  /** Milliseconds before the first retry (default 1000). */
  intervalStart?: number;
  /** Milliseconds added to the wait at each retry (default 1000). */
  intervalStep?: number;
  /** Milliseconds the wait may grow past `intervalStart` (default 1000). */
  intervalMax?: number;
  /** Retries before giving up (default: forever). */
  maxRetries?: number;
  /** Milliseconds after which to give up. */
  timeout?: number;
}

export interface PublishOptions {
  exchange?: Exchange | string;
  routingKey?: string;
  deliveryMode?: DeliveryMode;
  mandatory?: boolean;
  priority?: number;
  /** With contentType set, a string or bytes body is sent as is. */
  contentType?: string;
  contentEncoding?: string;
  serializer?: "json" | "msgpack" | "yaml" | "raw" | (string & {});
  headers?: HeadersInit;
  compression?: "zlib" | "gzip" | "bzip2" | "lzma" | "xz" | "zstd" | (string & {});
  retry?: boolean;
  retryPolicy?: RetryPolicy;
  declare?: ReadonlyArray<Exchange | Queue>;
  /** Seconds (as in Kombu) the message may wait in a queue. */
  expiration?: number;
  correlationId?: string;
  replyTo?: string | Queue;
  messageId?: string;
  timestamp?: number;
  type?: string;
  userId?: string;
  appId?: string;
}

export interface ProducerOptions {
  exchange?: Exchange | string;
  routingKey?: string;
  serializer?: string;
  compression?: string;
  autoDeclare?: boolean;
  /** Called for messages the broker returns (see `Producer.onReturn`). */
  onReturn?: ReturnCallback;
}

/** `(error, exchange, routingKey, message)` of a returned message (Kombu's `on_return`);
 * `error` is an AMQPError such as NoRoute (code 312). */
export type ReturnCallback = (error: KombuError & { code?: number }, exchange: string, routingKey: string, message: Message) => void;

export interface ConsumerOptions {
  /** Serializer names or MIME types to decode; others raise ContentDisallowed. */
  accept?: readonly string[];
  noAck?: boolean;
  autoDeclare?: boolean;
  prefetchCount?: number;
  tagPrefix?: string;
  /** `(body, message)` for each message, run by `Connection.drainEvents` once consuming. */
  callbacks?: ReadonlyArray<(body: any, message: Message) => void>;
  /** `(message)` instead of the callbacks, without decoding the body. */
  onMessage?: (message: Message) => void;
  /** `(message, error)` for a body that cannot be decoded (else drainEvents throws it). */
  onDecodeError?: (message: Message, error: KombuError) => void;
}

/** Something with an `error` method (`console`, a logger). */
export interface Logger {
  error(message: string): void;
}

export interface WaitOptions {
  /** Milliseconds; forever when omitted. */
  timeout?: number;
  signal?: AbortSignal;
}

export interface DeliveryInfo {
  exchange: string;
  routingKey: string;
  redelivered: boolean;
  consumerTag: string | null;
  deliveryTag: number;
}

/** AMQP properties, in camelCase (their snake_case names, as in Kombu, also read). */
export interface MessageProperties {
  contentType?: string | null;
  contentEncoding?: string | null;
  headers?: Headers;
  deliveryMode?: number | null;
  priority?: number | null;
  correlationId?: string | null;
  replyTo?: string | null;
  /** Milliseconds, as a string (AMQP's `expiration` property). */
  expiration?: string | null;
  messageId?: string | null;
  /** Seconds since the epoch. */
  timestamp?: number | null;
  type?: string | null;
  userId?: string | null;
  appId?: string | null;
  clusterId?: string | null;
}

/** A message; `T` is what its payload decodes to (what was published, as JSON data). */
export declare class Message<T = Payload> {
  private constructor();
  /** The decoded body; throws ContentDisallowed/DecodeError (the message can still be settled). */
  readonly payload: T;
  /** Raw body bytes. */
  readonly body: Uint8Array;
  readonly contentType: string | undefined;
  readonly contentEncoding: string | undefined;
  readonly headers: Headers;
  readonly properties: MessageProperties;
  readonly deliveryInfo: DeliveryInfo;
  readonly deliveryTag: number;
  readonly state: "RECEIVED" | "ACK" | "REJECTED" | "REQUEUED";
  readonly acknowledged: boolean;
  /** Acknowledge (at once, no need to await); with `multiple`, every earlier unacknowledged
   * message of the channel too. A second settlement throws MessageStateError. */
  ack(options?: { multiple?: boolean }): void;
  reject(requeue?: boolean): void;
  requeue(): void;
  /** The decoded body (Kombu's `decode()`), the same as `payload`. */
  decode(): T;
  /** `ack`, logging a failure to `logger` (default console) instead of throwing. */
  ackLogError(logger?: Logger, options?: { multiple?: boolean }): void;
  /** `reject`, logging a failure to `logger` (default console) instead of throwing. */
  rejectLogError(logger?: Logger, options?: { requeue?: boolean }): void;
  free(): void;
}

export declare class Producer {
  private constructor();
  /** Publish JSON data, a string, or bytes (`Uint8Array`/`ArrayBuffer`, with `contentType`). */
  publish<T extends Body>(body: T, options?: PublishOptions): Promise<void>;
  /** Call `callback` for each message the broker returns (published `mandatory: true` and
   * routed to no queue). Events are drained for 2000 ms after each mandatory publish. */
  onReturn(callback: ReturnCallback): void;
  /** Declare unless this connection already did; resolves to true when declared now. */
  maybeDeclare(entity: Exchange | Queue): Promise<boolean>;
}

/** A consumer; `T` is what its messages' payloads decode to (`conn.Consumer<Order>(...)`). */
export declare class Consumer<T = Payload> implements AsyncIterable<Message<T>> {
  private constructor();
  consume(): Promise<void>;
  /** The next message; `timeout` in milliseconds (forever when omitted). */
  next(options?: WaitOptions): Promise<Message<T>>;
  messages(options?: WaitOptions): AsyncGenerator<Message<T>, void, undefined>;
  [Symbol.asyncIterator](): AsyncGenerator<Message<T>, void, undefined>;
  /** Stop consuming. Messages received but not yet handed out (by `next()` or iteration) go back to their queues; those handed out stay yours to settle. */
  cancel(): Promise<void>;
  cancelByQueue(queue: Queue | string): Promise<void>;
  consumingFrom(queue: Queue | string): boolean;
  /** Add a queue (declared unless `autoDeclare: false`); `consume()` then consumes from it too. Resolves to its name. */
  addQueue(queue: Queue | string): Promise<string>;
  /** Pause (false) or resume (true) deliveries; resolves to the state. */
  flow(active: boolean): Promise<boolean>;
  readonly callbacks: Array<(body: any, message: Message<T>) => void>;
  onMessage: ((message: Message<T>) => void) | undefined;
  onDecodeError: ((message: Message<T>, error: KombuError) => void) | undefined;
  /** Add a callback `(body, message)`. */
  registerCallback(callback: (body: T, message: Message<T>) => void): void;
  /** Call the callbacks with `body` and `message`. */
  receive(body: T, message: Message<T>): void;
  purge(): Promise<number>;
  qos(options?: { prefetchCount?: number; global?: boolean }): Promise<void>;
  recover(options?: { requeue?: boolean }): Promise<void>;
  readonly queues: string[];
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface SimpleQueueOptions {
  noAck?: boolean;
  queue?: Queue | string;
  queueArgs?: HeadersInit;
  exchange?: Exchange | string;
  serializer?: string;
  compression?: string;
  accept?: readonly string[];
}

/** Kombu's SimpleQueue; `T` is what its messages' payloads decode to. */
export declare class SimpleQueue<T = Payload> implements AsyncIterable<Message<T>> {
  private constructor();
  put(body: T extends Payload ? Body : T, options?: PublishOptions): Promise<void>;
  /** The next message; waits up to `timeout` milliseconds (forever when omitted) unless `block: false`; rejects with Empty. */
  get(options?: { block?: boolean } & WaitOptions): Promise<Message<T>>;
  getNowait(): Promise<Message<T>>;
  qsize(): Promise<number>;
  clear(): Promise<number>;
  close(): Promise<void>;
  [Symbol.asyncIterator](): AsyncGenerator<Message<T>, never, undefined>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** memory:// exchanges, queues and bindings, in camelCase (their snake_case names also read). */
export interface ExchangeInfo { name: string; kind: string; durable: boolean; autoDelete: boolean; internal: boolean; arguments: Headers }
export interface QueueInfo { name: string; messagesReady: number; messagesUnacknowledged: number; bytesReady: number; consumers: number; durable: boolean; autoDelete: boolean; exclusive: boolean; arguments: Headers; published: number; delivered: number; acked: number; rejected: number; expired: number; deadLettered: number; dropped: number }
export interface BindingInfo { source: string; destination: string; destinationType: "queue" | "exchange"; routingKey: string; arguments: Headers }
/** `Connection.info()`, in camelCase (their snake_case names also read); password masked. */
export interface ConnectionInfo {
  transport: string;
  hostname: string | null;
  port: number | null;
  userid: string | null;
  virtualHost: string | null;
  ssl: boolean;
  /** Seconds. */
  heartbeat: number | null;
  /** Milliseconds. */
  connectTimeout: number | null;
  loginMethod: string | null;
  transportOptions: Headers;
  alternates: string[];
  failoverStrategy: string;
  uri: string;
  [key: string]: JsonValue;
}
export interface VHostSnapshot { exchanges: ExchangeInfo[]; queues: QueueInfo[]; bindings: BindingInfo[] }

export declare class Connection {
  constructor(url?: string, options?: ConnectionOptions);
  connect(): Promise<void>;
  readonly connected: boolean;
  /** Listen to "connected", "disconnected", "reconnecting", "blocked" (`reason`),
   * "unblocked"; returns a function that stops. */
  on(event: ConnectionEvent["type"], listener: (event: ConnectionEvent) => void): () => void;
  /** Kombu's `ensure`: `fn` (called on `obj`) made to reconnect and run again on a lost
   * connection, with the retry policy; channel errors (404...) reject at once. */
  ensure<O, A extends unknown[], R>(obj: O, fn: (this: O, ...args: A) => R | Promise<R>, options?: EnsureOptions): (...args: A) => Promise<R>;
  /** Kombu's `autoretry`: `fn` under `ensure`; resolves to `fn`'s result. */
  autoretry<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options?: EnsureOptions): (...args: A) => Promise<R>;
  /** Connect, retrying with the policy (milliseconds); rejects at once for a URL that cannot
   * work. */
  ensureConnection(options?: { retryPolicy?: RetryPolicy }): Promise<void>;
  /** Kombu's `collect`: forget the connection after a connection error, without closing
   * channels; the next use reconnects (`ensure` does this before each retry). */
  collect(): void;
  asUri(includePassword?: boolean): string;
  info(): ConnectionInfo;
  Producer(options?: ProducerOptions): Producer;
  Consumer<T = Payload>(queues: ReadonlyArray<Queue | string> | Queue | string, options?: ConsumerOptions): Consumer<T>;
  SimpleQueue<T = Payload>(name: string, options?: SimpleQueueOptions): Promise<SimpleQueue<T>>;
  SimpleBuffer<T = Payload>(name: string, options?: SimpleQueueOptions): Promise<SimpleQueue<T>>;
  declare(entity: Exchange | Queue): Promise<string>;
  /** Delete; `ifUnused`/`ifEmpty` (queues) refuse with PreconditionFailed when not so. A queue's resolves to how many messages went with it. */
  delete(entity: Exchange | Queue, options?: { ifUnused?: boolean; ifEmpty?: boolean }): Promise<number | void>;
  purge(queue: Queue | string): Promise<number>;
  /** Wait for one event, up to `timeout` milliseconds (forever when omitted), and run the
   * callbacks of consuming consumers with the messages received. */
  drainEvents(options?: { timeout?: number }): Promise<void>;
  snapshot(virtualHost?: string): VHostSnapshot | undefined;
  release(): Promise<void>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Load the WebAssembly module (done automatically on import; returns the same promise). */
export declare function init(source?: BufferSource | URL | string | WebAssembly.Module): Promise<void>;
/** Load the WebAssembly module synchronously from a compiled module (done by the `workerd` entry). */
export declare function initSync(module: WebAssembly.Module): void;

/** The core's version. */
export declare const version: string;

/** What `init` takes in Node and elsewhere (used by the entries; not needed by apps). */
export declare function wasmSource(source: BufferSource | URL | string | WebAssembly.Module | undefined, file: URL): Promise<{ module_or_path: BufferSource | URL | string | WebAssembly.Module } | undefined>;

/** A compression method implemented in JavaScript. */
export interface CompressionMethod {
  compress(body: Uint8Array): Uint8Array;
  decompress(body: Uint8Array): Uint8Array;
  /** Names that stand for the content type (`compression: "bzip2"`). */
  aliases?: readonly string[];
}
/**
 * Register a compression method (Kombu's `compression.register`). The core has none built in;
 * `import "kombu-wasm/codecs"` registers zlib/gzip, bzip2, lzma/xz and zstd.
 */
export declare function registerCompression(contentType: string, method: CompressionMethod): void;
/** A serializer implemented in JavaScript. */
export interface Serializer {
  /** MIME type written to `contentType` (e.g. "application/x-protobuf"). */
  contentType: string;
  /** Written to `contentEncoding`; default "utf-8" ("binary" for bytes). */
  contentEncoding?: string;
  encode(body: Payload): Uint8Array | string;
  decode(bytes: Uint8Array): Payload;
}
/** Register a serializer (Kombu's `serialization.register`); name it with `serializer: name`. */
export declare function registerSerializer(name: string, serializer: Serializer): void;
/** A serializer implemented over JSON bytes (how `kombu-wasm/codecs` adds yaml and msgpack). */
export interface JsonCodec {
  /** MIME type written to `contentType` (e.g. "application/x-yaml"). */
  contentType: string;
  /** Written to `contentEncoding`; default "utf-8" ("binary" for bytes). */
  contentEncoding?: string;
  /** The payload as UTF-8 JSON → the body. */
  fromJson(json: Uint8Array): Uint8Array;
  /** A body → UTF-8 JSON. */
  toJson(body: Uint8Array): Uint8Array;
}
/** Register a serializer implemented over JSON bytes: key order and integer/float types survive. */
export declare function registerJsonCodec(name: string, codec: JsonCodec): void;
/** The compression methods known: `[contentType, aliases][]`. */
export declare function compressionMethods(): [string, string[]][];

/** Serialize (Kombu's `dumps`): `[contentType, contentEncoding, bytes]`; default json for data, text/plain for strings, application/data for bytes. */
export declare function dumps(data: Body, serializer?: string): [string, string, Uint8Array];
/** Deserialize (Kombu's `loads`); `accept` names or content types (the insecure ones refused without it), `force` skips the check. */
export declare function loads<T = Payload>(data: Uint8Array | ArrayBuffer | string, contentType?: string | null, contentEncoding?: string | null, options?: { accept?: readonly string[]; force?: boolean }): T;
/** Remove a serializer (Kombu's `registry.unregister`). */
export declare function unregister(name: string): void;
/** Decode these serializers without an accept list (default: yaml and msgpack, those installed). */
export declare function enableInsecureSerializers(choices?: readonly string[]): void;
/** Decode only `allowed` (default ["json"]) without an accept list. */
export declare function disableInsecureSerializers(allowed?: readonly string[]): void;

// kombu.common
/** A random UUID4 string. */
export declare function uuid(): string;
export interface BroadcastOptions extends QueueOptions {
  /** The queue's name (default `bcast.<uuid>`); with `unique`, `<queue>.<uuid>`. */
  queue?: string;
  unique?: boolean;
}
/** A broadcast queue: its own auto-deleted queue on the fanout exchange `name`. */
export declare class Broadcast extends Queue {
  constructor(name: string, options?: BroadcastOptions);
  readonly alias?: string;
  readonly autoDelete?: boolean;
}
/** Drain the connection's events `limit` times (forever when omitted), `timeout` ms each; a timeout throws TimeoutError unless `ignoreTimeouts`. */
export declare function eventloop(conn: Connection, options?: { limit?: number; timeout?: number; ignoreTimeouts?: boolean }): AsyncGenerator<void, void, undefined>;
/** `[body, message]` of up to `limit` (default 1) messages of `consumer`, waiting `timeout` ms each; then cancels it. */
export declare function drainConsumer<T = Payload>(consumer: Consumer<T>, options?: { limit?: number; timeout?: number }): AsyncGenerator<[T, Message<T>], void, undefined>;
/** `drainConsumer` of a new consumer of `queue`. */
export declare function itermessages<T = Payload>(conn: Connection, queue: Queue | string, options?: { limit?: number; timeout?: number } & ConsumerOptions): AsyncGenerator<[T, Message<T>], void, undefined>;
/** The bodies of the replies in `queue` (acknowledged unless `noAck`, the default). */
export declare function collectReplies<T = Payload>(conn: Connection, queue: Queue | string, options?: { limit?: number; timeout?: number } & ConsumerOptions): AsyncGenerator<T, void, undefined>;
/** Publish `body` through `exchange` to the request's `replyTo`, with its `correlationId` and serializer. */
export declare function sendReply(exchange: Exchange | string, request: Message<any>, body: Body, options: { producer: Producer } & PublishOptions): Promise<void>;

// kombu.pidbox
export interface MailboxOptions {
  /** "direct" (default) or "fanout". */
  type?: "direct" | "fanout";
  connection?: Connection;
  accept?: readonly string[];
  serializer?: string;
  /** Seconds. */
  queueTtl?: number;
  /** Seconds. */
  queueExpires?: number;
  queueDurable?: boolean;
  queueExclusive?: boolean;
  /** Seconds. */
  replyQueueTtl?: number;
  /** Seconds (default 10). */
  replyQueueExpires?: number;
}
export interface CallOptions {
  /** Milliseconds to wait for each reply (default 1000). */
  timeout?: number;
  limit?: number;
  callback?: (reply: { [hostname: string]: any }) => void;
  pattern?: string;
  matcher?: "glob" | "pcre";
  serializer?: string;
}
/** A pidbox mailbox: commands to the nodes of `namespace`, wire-compatible with Kombu's. */
export declare class Mailbox {
  constructor(namespace: string, options?: MailboxOptions);
  readonly namespace: string;
  readonly connection: Connection | undefined;
  readonly exchange: Exchange;
  readonly replyExchange: Exchange;
  readonly oid: string;
  readonly replyQueue: Queue;
  bind(connection: Connection): Mailbox;
  Node(hostname: string, options?: { state?: any; handlers?: Record<string, NodeHandler> }): Node;
  getQueue(hostname: string): Queue;
  /** Resolves to the replies, `[{ hostname: reply }]`. */
  call(destination: readonly string[], command: string, args?: Record<string, any>, options?: CallOptions): Promise<Array<{ [hostname: string]: any }>>;
  cast(destination: readonly string[], command: string, args?: Record<string, any>): Promise<void>;
  abcast(command: string, args?: Record<string, any>): Promise<void>;
  multiCall(command: string, args?: Record<string, any>, options?: CallOptions): Promise<Array<{ [hostname: string]: any }>>;
}
/** `(state, arguments)` → the reply (or a Promise of it). */
export type NodeHandler = (state: any, args: any) => unknown;
/** A node of a mailbox; `listen()` consumes its queue (commands run as the connection drains). */
export declare class Node {
  private constructor();
  readonly hostname: string;
  readonly mailbox: Mailbox;
  state: any;
  handlers: Record<string, NodeHandler>;
  handler(fn: NodeHandler, name?: string): NodeHandler;
  Consumer(options?: ConsumerOptions): Consumer;
  listen(options?: { callback?: (body: any, message: Message) => void }): Promise<Consumer>;
  handleMessage(body: any, message?: Message): Promise<unknown>;
  dispatch(body: { method: string; arguments?: any; reply_to?: { exchange: string; routing_key: string }; ticket?: string }): Promise<unknown>;
  reply(data: unknown, exchange: string, routingKey: string, ticket?: string): Promise<void>;
}
