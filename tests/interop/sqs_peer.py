"""Python kombu's sqs:// transport, driven by native-gateway/tests/sqs_interop.rs.

    sqs_peer.py OP URL ARGS_JSON

OP is one of:
  publish  {"transport_options": {...}, "messages": [{"exchange", "type", "queue",
           "routing_key", "body", "headers", "properties": {...}}]}
  consume  {"transport_options": {...}, "queue", "exchange", "type", "routing_key", "count",
           "timeout"}: prints "READY" once consuming, then one JSON line per message
           (acknowledged)
  requeue  the same with count 1: the message is rejected with requeue=True (kombu 5.7:
           ChangeMessageVisibility to wait_time_seconds), then it exits
  hold     the same with count 1, but exits at once without acknowledging, as a worker
           killed while holding a message
"""
import base64
import json
import os
import socket
import sys
import time

from kombu import Connection, Consumer, Exchange, Producer, Queue

ACCEPT = ["json", "text/plain", "application/data"]


def queue_of(a):
    exchange = Exchange(a.get("exchange") or "", type=a.get("type") or "direct")
    if a.get("exchange"):
        return Queue(a["queue"], exchange, routing_key=a.get("routing_key", a["queue"]))
    return Queue(a["queue"], routing_key=a["queue"])


def publish(url, a):
    with Connection(url, transport_options=a.get("transport_options", {})) as conn:
        producer = Producer(conn.channel())
        for m in a["messages"]:
            exchange = Exchange(m.get("exchange") or "", type=m.get("type") or "direct")
            declare = [queue_of(m)] if m.get("queue") else []
            if m.get("exchange"):
                declare.append(exchange)
            producer.publish(
                m["body"],
                exchange=exchange if m.get("exchange") else "",
                routing_key=m.get("routing_key", ""),
                headers=m.get("headers"),
                declare=declare,
                retry=False,
                **m.get("properties", {}),
            )


def describe(body, message):
    if isinstance(body, bytes):
        body = {"b64": base64.b64encode(body).decode()}
    props = dict(message.properties)
    sqs_message = message.delivery_info.get("sqs_message") or {}
    return {
        "body": body,
        "content_type": message.content_type,
        "headers": message.headers,
        "properties": {k: v for k, v in props.items() if k not in ("delivery_info",)},
        "routing_key": message.delivery_info.get("routing_key"),
        "exchange": message.delivery_info.get("exchange"),
        "sqs_queue": message.delivery_info.get("sqs_queue"),
        "receive_count": (sqs_message.get("Attributes") or {}).get("ApproximateReceiveCount"),
        "message_attributes": sqs_message.get("MessageAttributes"),
    }


def consume(url, a, mode="ack"):
    count = 1 if mode != "ack" else a.get("count", 1)
    got = []
    with Connection(url, transport_options=a.get("transport_options", {})) as conn:
        def on_message(body, message):
            d = describe(body, message)
            if mode == "hold":
                print(json.dumps(d), flush=True)
                os._exit(0)
            if mode == "requeue":
                message.requeue()
            else:
                message.ack()
            got.append(d)

        with Consumer(conn.channel(), [queue_of(a)], callbacks=[on_message], accept=ACCEPT, prefetch_count=10):
            print("READY", flush=True)
            deadline = time.monotonic() + a.get("timeout", 20)
            while len(got) < count:
                try:
                    conn.drain_events(timeout=1)
                except socket.timeout:
                    if time.monotonic() > deadline:
                        raise
    for g in got:
        print(json.dumps(g), flush=True)


def main():
    op, url, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if op == "publish":
        publish(url, args)
    elif op in ("consume", "requeue", "hold"):
        consume(url, args, {"consume": "ack"}.get(op, op))
    else:
        sys.exit("unknown op %r" % op)


if __name__ == "__main__":
    main()
