"""Python kombu's redis:// transport, driven by native-gateway/tests/redis_interop.rs.

    redis_peer.py OP URL ARGS_JSON

OP is one of:
  publish  {"transport_options": {...}, "messages": [{"exchange", "type", "queue",
           "routing_key", "body", "serializer", "compression", "headers", "priority",
           "properties": {...}}]}
  consume  {"transport_options": {...}, "queue", "exchange", "type", "routing_key", "count",
           "timeout", "poll"}: prints "READY" once subscribed, then one JSON line per message
           (acknowledged)
  hold     the same as consume with count 1, but exits at once without acknowledging, as a
           worker killed while holding a message
"""
import base64
import json
import os
import socket
import sys
import time

from kombu import Connection, Consumer, Exchange, Producer, Queue

ACCEPT = ["json", "msgpack", "yaml", "application/data", "text/plain"]


def queue_of(a):
    exchange = Exchange(a.get("exchange") or "", type=a.get("type") or "direct")
    if a.get("exchange"):
        return Queue(a["queue"], exchange, routing_key=a.get("routing_key", a["queue"]),
                     queue_arguments=a.get("queue_arguments"))
    return Queue(a["queue"], routing_key=a["queue"], queue_arguments=a.get("queue_arguments"))


def publish(url, a):
    with Connection(url, transport_options=a.get("transport_options", {})) as conn:
        producer = Producer(conn.channel())
        for m in a["messages"]:
            exchange = Exchange(m.get("exchange") or "", type=m.get("type") or "direct")
            declare = [queue_of(m)] if m.get("queue") else []
            if m.get("exchange"):
                declare.append(exchange)
            body = m["body"]
            if m.get("body_b64"):
                body = base64.b64decode(body)
            producer.publish(
                body,
                exchange=exchange if m.get("exchange") else "",
                routing_key=m.get("routing_key", ""),
                serializer=m.get("serializer"),
                compression=m.get("compression"),
                headers=m.get("headers"),
                priority=m.get("priority"),
                declare=declare,
                retry=False,
                **m.get("properties", {}),
            )


def describe(body, message):
    if isinstance(body, bytes):
        body = {"b64": base64.b64encode(body).decode()}
    props = dict(message.properties)
    return {
        "body": body,
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
        "headers": message.headers,
        "properties": {k: v for k, v in props.items() if k not in ("delivery_info",)},
        "delivery_info": {k: v for k, v in message.delivery_info.items() if isinstance(v, (str, int, bool, type(None)))},
        "redelivered": bool(message.delivery_info.get("redelivered") or message.headers.get("redelivered")),
    }


def consume(url, a, hold=False):
    count = 1 if hold else a.get("count", 1)
    got = []
    with Connection(url, transport_options=a.get("transport_options", {})) as conn:
        def on_message(body, message):
            if hold:
                print(json.dumps(describe(body, message)), flush=True)
                os._exit(0)
            got.append(describe(body, message))
            message.ack()

        with Consumer(conn.channel(), [queue_of(a)], callbacks=[on_message], accept=ACCEPT, prefetch_count=10):
            try:  # the first poll subscribes fanout queues
                conn.drain_events(timeout=0.3)
            except socket.timeout:
                pass
            print("READY", flush=True)
            # Short drains: kombu's synchronous path sweeps unacked messages (restore_visible)
            # only when a drain times out before the BRPOP answers (polling_interval longer).
            deadline = time.monotonic() + a.get("timeout", 10)
            while len(got) < count:
                try:
                    conn.drain_events(timeout=a.get("poll", 1))
                except socket.timeout:
                    if time.monotonic() > deadline:
                        raise
    for g in got:
        print(json.dumps(g), flush=True)


def main():
    op, url, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if op == "publish":
        publish(url, args)
    elif op == "consume":
        consume(url, args)
    elif op == "hold":
        consume(url, args, hold=True)
    else:
        sys.exit("unknown op %r" % op)


if __name__ == "__main__":
    main()
