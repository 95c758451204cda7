"""Python kombu's side of tests/interop_python.rs.

Reads a JSON list of operations on stdin and writes a JSON list of results on stdout.
Bytes travel as base64. Operations:

  dumps        {"serializer", "value"}             -> {"content_type", "content_encoding", "body"}
  loads        {"content_type", "content_encoding", "body"} -> {"value"}
  compress     {"method", "data"}                   -> {"content_type", "data"}
  decompress   {"content_type", "data"}             -> {"data"}
  redis_stored {"queue", "value", "headers", "properties"}
               publish with kombu over redis://, return the raw stored entry, delete the keys
  redis_consume {"queue", "raw"}
               declare the queue with kombu, LPUSH `raw` as the stored entry, consume it with
               kombu, return payload/headers/properties/delivery_info, delete the keys
"""
import base64
import json
import sys

import kombu
import redis
from kombu import Connection, Exchange, Queue, compression
from kombu.serialization import dumps, loads, enable_insecure_serializers

REDIS_URL = "redis://127.0.0.1:6379/0"
enable_insecure_serializers(["json", "msgpack", "yaml"])


def b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def cleanup(r, queue, exchange):
    for key in r.keys(queue + "*") + r.keys("_kombu.binding*." + exchange):
        r.delete(key)


def run(op):
    kind = op["op"]
    if kind == "dumps":
        ct, ce, body = dumps(op["value"], serializer=op["serializer"])
        return {"content_type": ct, "content_encoding": ce, "body": b64(body)}
    if kind == "loads":
        value = loads(base64.b64decode(op["body"]), op["content_type"], op["content_encoding"])
        return {"value": value}
    if kind == "compress":
        data, ct = compression.compress(base64.b64decode(op["data"]), op["method"])
        return {"content_type": ct, "data": b64(data)}
    if kind == "decompress":
        return {"data": b64(compression.decompress(base64.b64decode(op["data"]), op["content_type"]))}
    r = redis.Redis.from_url(REDIS_URL)
    queue = op["queue"]
    exchange = queue + "-x"
    q = Queue(queue, Exchange(exchange, "direct"), routing_key="rk")
    if kind == "redis_stored":
        try:
            with Connection(REDIS_URL) as conn:
                conn.Producer().publish(
                    op["value"], exchange=q.exchange, routing_key="rk", declare=[q],
                    headers=op.get("headers") or {}, **(op.get("properties") or {}))
            raw = r.lrange(queue, 0, -1)
            return {"raw": [x.decode("utf-8") for x in raw]}
        finally:
            cleanup(r, queue, exchange)
    if kind == "redis_consume":
        try:
            with Connection(REDIS_URL) as conn:
                bound = q(conn.default_channel)
                bound.declare()
                r.lpush(queue, op["raw"])
                message = bound.get(accept=["json", "msgpack", "yaml", "text/plain"])
                if message is None:
                    return {"error": "no message"}
                result = {
                    "payload": message.decode(),
                    "content_type": message.content_type,
                    "content_encoding": message.content_encoding,
                    "headers": message.headers,
                    "properties": {k: v for k, v in message.properties.items() if k != "delivery_info"},
                    "delivery_info": {k: message.delivery_info.get(k) for k in ("exchange", "routing_key")},
                }
                message.ack()
                return result
        finally:
            cleanup(r, queue, exchange)
    raise ValueError("unknown op %r" % kind)


def main():
    ops = json.load(sys.stdin)
    out = []
    for op in ops:
        try:
            out.append(run(op))
        except Exception as exc:  # reported to the Rust side, which fails the test
            out.append({"error": "%s: %s" % (type(exc).__name__, exc)})
    json.dump({"kombu": kombu.__version__, "results": out}, sys.stdout)


if __name__ == "__main__":
    main()
