"""Python kombu's side of js/test/rpc-interop.test.mjs: the seed's RPC example (pyamqp on the
local RabbitMQ), with a browser on the other side through kombu-gateway.

argv: server QUEUE N  -> the seed's ConsumerProducerMixin worker on QUEUE; answers N
                         requests ({"n": k} -> {"result": fib(k)}) and exits; prints "ready"
                         once consuming
      client QUEUE K  -> sends {"n": K} to QUEUE with reply_to and correlation_id, waits for
                         the answer with that correlation_id, prints it as JSON
"""
import json
import sys
import uuid

from kombu import Connection, Consumer, Producer, Queue
from kombu.mixins import ConsumerProducerMixin

URL = "amqp://guest:guest@127.0.0.1:5672//"


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


class Worker(ConsumerProducerMixin):
    def __init__(self, connection, queue, count):
        self.connection = connection
        self.queue = queue
        self.left = count

    def get_consumers(self, Consumer, channel):
        return [Consumer(queues=[self.queue], on_message=self.on_request, accept={"application/json"}, prefetch_count=1)]

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        print("ready", flush=True)

    def on_request(self, message):
        result = fib(message.payload["n"])
        self.producer.publish(
            {"result": result}, exchange="", routing_key=message.properties["reply_to"],
            correlation_id=message.properties["correlation_id"], serializer="json", retry=True)
        message.ack()
        self.left -= 1
        if self.left == 0:
            self.should_stop = True


def main():
    op, name, arg = sys.argv[1], sys.argv[2], int(sys.argv[3])
    queue = Queue(name, durable=False, auto_delete=False)
    with Connection(URL) as conn:
        if op == "server":
            Worker(conn, queue, arg).run()
        else:
            reply = Queue(f"rpc-reply-{uuid.uuid4()}", exclusive=True, auto_delete=True)
            cid = str(uuid.uuid4())
            got = {}

            def on_response(message):
                if message.properties["correlation_id"] == cid:
                    got["answer"] = {"payload": message.payload, "correlation_id": cid}
                message.ack()

            with Consumer(conn, on_message=on_response, queues=[reply], no_ack=False):
                Producer(conn).publish({"n": arg}, exchange="", routing_key=name, declare=[queue],
                                       reply_to=reply.name, correlation_id=cid, serializer="json")
                while "answer" not in got:
                    conn.drain_events(timeout=10)
            print(json.dumps(got["answer"]))


if __name__ == "__main__":
    main()
