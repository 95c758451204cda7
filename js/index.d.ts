// Types of kombu-wasm. Timeouts are milliseconds; TTLs (expiration, messageTtl, expires)
// are seconds, as in Kombu.

/** JSON data as the serializers carry it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** What can be published: JSON data, text, or raw bytes (send bytes with `contentType`). */
export type Body = JsonValue | Uint8Array | ArrayBuffer;

/** What a message decodes to: data for json/msgpack/yaml, a string for text, bytes for binary. */
export type Payload = JsonValue | Uint8Array;

/** Header and argument tables. */
export type Headers = { [key: string]: JsonValue };

export type ExchangeType = "direct" | "topic" | "fanout" | "headers" | (string & {});

/** 1 or "transient"; 2 or "persistent". */
export type DeliveryMode = 1 | 2 | "transient" | "persistent";

/**
 * Kombu's exception names carried by thrown `Error`s (`error.name`).
 * Option mistakes are `ValueError`; waits that run out are `TimeoutError`.
 */
export type KombuErrorName =
  | "NotBoundError" | "MessageStateError" | "TimeoutError" | "Empty" | "LimitExceeded"
  | "ConnectionLimitExceeded" | "ChannelLimitExceeded" | "ContentDisallowed"
  | "SerializerNotInstalled" | "CompressionNotInstalled" | "EncodeError" | "DecodeError"
  | "OperationalError" | "RecoverableConnectionError" | "InconsistencyError" | "MessageNacked"
  | "MatcherNotInstalled" | "InvalidURL" | "UnknownTransport" | "ValueError" | "NotImplementedError"
  | "NotFound" | "PreconditionFailed" | "AccessRefused" | "ResourceLocked" | "NotAllowed"
  | "ChannelNotOpen" | "ConnectionForced";

/** An `Error` thrown by kombu-wasm. */
export interface KombuError extends Error {
  name: KombuErrorName;
}

export interface ExchangeOptions {
  type?: ExchangeType;
  durable?: boolean;
  autoDelete?: boolean;
  deliveryMode?: DeliveryMode;
  arguments?: Headers;
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
  readonly arguments?: Headers;
  readonly noDeclare?: boolean;
  readonly passive?: boolean;
  /** A binding for `new Queue(name, { bindings: [...] })`. */
  binding(routingKey?: string, options?: { arguments?: Headers; unbindArguments?: Headers }): BindingOptions;
  toSpec(): ExchangeOptions & { name: string };
}

export interface BindingOptions {
  exchange: Exchange | string;
  routingKey?: string;
  arguments?: Headers;
  unbindArguments?: Headers;
}

export interface QueueOptions {
  exchange?: Exchange | string;
  routingKey?: string;
  durable?: boolean;
  exclusive?: boolean;
  autoDelete?: boolean;
  /** Seconds without use before the queue is deleted (x-expires). */
  expires?: number;
  /** Seconds a message may wait (x-message-ttl). */
  messageTtl?: number;
  maxLength?: number;
  maxLengthBytes?: number;
  maxPriority?: number;
  queueArguments?: Headers;
  bindingArguments?: Headers;
  consumerArguments?: Headers;
  alias?: string;
  noAck?: boolean;
  noDeclare?: boolean;
  bindings?: BindingOptions[];
}

export declare class Queue {
  constructor(name?: string, options?: QueueOptions);
  readonly name: string;
  readonly exchange?: Exchange | string;
  readonly routingKey?: string;
  toSpec(): object;
}

export interface ConnectionOptions {
  transportOptions?: Headers;
  heartbeat?: number;
  connectTimeout?: number;
  ssl?: boolean;
  loginMethod?: string;
  failoverStrategy?: "round-robin" | "shuffle";
  alternates?: string[];
  userid?: string;
  password?: string;
  virtualHost?: string;
  transport?: string;
  /** Publisher confirms (Kombu's `confirm_publish` transport option): `publish()` resolves
   * once the broker has the message and rejects when it refused it or closed the channel. */
  confirmPublish?: boolean;
  /** Reconnect by itself with this retry policy: a consumer waiting for messages and a
   * publish that meet a lost connection reconnect (declarations are made again, consumers
   * resume) and carry on. */
  reconnect?: RetryPolicy;
}

/** What `Connection.on` listeners receive. */
export interface ConnectionEvent {
  type: "connected" | "disconnected" | "reconnecting";
  /** Why the connection was lost, or why the last attempt failed. */
  error?: Error;
  /** Milliseconds until the next attempt ("reconnecting"). */
  interval?: number;
}

export interface RetryPolicy {
  intervalStart?: number;
  intervalStep?: number;
  intervalMax?: number;
  maxRetries?: number;
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
  headers?: Headers;
  compression?: "zlib" | "gzip" | "bzip2" | "lzma" | "xz" | "zstd" | "brotli" | (string & {});
  retry?: boolean;
  retryPolicy?: RetryPolicy;
  declare?: Array<Exchange | Queue>;
  /** Seconds. */
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
}

export interface ConsumerOptions {
  /** Serializer names or MIME types to decode; others raise ContentDisallowed. */
  accept?: string[];
  noAck?: boolean;
  autoDeclare?: boolean;
  prefetchCount?: number;
  tagPrefix?: string;
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

export interface MessageProperties {
  content_type?: string | null;
  content_encoding?: string | null;
  headers?: Headers;
  delivery_mode?: number | null;
  priority?: number | null;
  correlation_id?: string | null;
  reply_to?: string | null;
  expiration?: string | null;
  message_id?: string | null;
  timestamp?: number | null;
  type?: string | null;
  user_id?: string | null;
  app_id?: string | null;
  cluster_id?: string | null;
}

export declare class Message {
  private constructor();
  /** The decoded body; throws ContentDisallowed/DecodeError (the message can still be settled). */
  readonly payload: Payload;
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
  /** Acknowledge; a second settlement throws MessageStateError. */
  ack(): void;
  reject(requeue?: boolean): void;
  requeue(): void;
  free(): void;
}

export declare class Producer {
  private constructor();
  publish(body: Body, options?: PublishOptions): Promise<void>;
}

export declare class Consumer implements AsyncIterable<Message> {
  private constructor();
  consume(): Promise<void>;
  next(options?: WaitOptions): Promise<Message>;
  messages(options?: WaitOptions): AsyncGenerator<Message, void, undefined>;
  [Symbol.asyncIterator](): AsyncGenerator<Message, void, undefined>;
  /** Stop consuming. Messages received but not yet handed out (by `next()` or iteration) go back to their queues; those handed out stay yours to settle. */
  cancel(): Promise<void>;
  cancelByQueue(queue: string): Promise<void>;
  consumingFrom(queue: string): boolean;
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
  queueArgs?: Headers;
  exchange?: Exchange | string;
  serializer?: string;
  compression?: string;
  accept?: string[];
}

export declare class SimpleQueue implements AsyncIterable<Message> {
  private constructor();
  put(body: Body, options?: PublishOptions): Promise<void>;
  get(options?: { block?: boolean } & WaitOptions): Promise<Message>;
  getNowait(): Promise<Message>;
  qsize(): Promise<number>;
  clear(): Promise<number>;
  close(): Promise<void>;
  [Symbol.asyncIterator](): AsyncGenerator<Message, never, undefined>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface ExchangeInfo { name: string; kind: string; durable: boolean; auto_delete: boolean; internal: boolean; arguments: Headers }
export interface QueueInfo { name: string; messages_ready: number; messages_unacknowledged: number; bytes_ready: number; consumers: number; durable: boolean; auto_delete: boolean; exclusive: boolean; arguments: Headers; published: number; delivered: number; acked: number; rejected: number; expired: number; dead_lettered: number; dropped: number }
export interface BindingInfo { source: string; destination: string; destination_type: "queue" | "exchange"; routing_key: string; arguments: Headers }
export interface VHostSnapshot { exchanges: ExchangeInfo[]; queues: QueueInfo[]; bindings: BindingInfo[] }

export declare class Connection {
  constructor(url?: string, options?: ConnectionOptions);
  connect(): Promise<void>;
  readonly connected: boolean;
  /** Listen to "connected", "disconnected", "reconnecting"; returns a function that stops. */
  on(event: ConnectionEvent["type"], listener: (event: ConnectionEvent) => void): () => void;
  /** Connect, retrying with the policy; rejects at once for a URL that cannot work. */
  ensureConnection(options?: { retryPolicy?: RetryPolicy }): Promise<void>;
  asUri(includePassword?: boolean): string;
  info(): { [key: string]: JsonValue };
  Producer(options?: ProducerOptions): Producer;
  Consumer(queues: Array<Queue | string> | Queue | string, options?: ConsumerOptions): Consumer;
  SimpleQueue(name: string, options?: SimpleQueueOptions): Promise<SimpleQueue>;
  SimpleBuffer(name: string, options?: SimpleQueueOptions): Promise<SimpleQueue>;
  declare(entity: Exchange | Queue): Promise<string>;
  delete(entity: Exchange | Queue): Promise<void>;
  purge(queue: Queue | string): Promise<number>;
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
  aliases?: string[];
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
