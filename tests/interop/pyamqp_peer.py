"""Python kombu's side of native-gateway/tests/amqp_interop.rs (pyamqp on the local RabbitMQ).
(Not named amqp.py: that would shadow the py-amqp package it uses.)

argv: publish QUEUE  -> publishes one message with every property, prints nothing
      consume QUEUE  -> consumes one message, prints it as JSON, acks it
"""
import json
import sys

from kombu import Connection, Queue

URL = "amqp://guest:guest@127.0.0.1:5672//"


def main():
    op, name = sys.argv[1], sys.argv[2]
    queue = Queue(name, durable=False, auto_delete=False)
    with Connection(URL) as conn:
        if op == "publish":
            conn.Producer().publish(
                {"from": "python", "n": [1, 2.5]}, routing_key=name, declare=[queue],
                headers={"h": "v", "i": 7}, correlation_id="py-cid", reply_to="py-replies",
                priority=4, delivery_mode=1, expiration=60, serializer="json")
        else:
            with conn.SimpleQueue(queue) as q:
                m = q.get(timeout=10)
                print(json.dumps({
                    "payload": m.payload, "content_type": m.content_type,
                    "content_encoding": m.content_encoding, "headers": m.headers,
                    "properties": {k: v for k, v in m.properties.items() if k != "application_headers"},
                }))
                m.ack()


if __name__ == "__main__":
    main()
