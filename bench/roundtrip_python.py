"""Python kombu on the workload of examples/bench_memory.rs, on any URL (argv[2], default memory://).

Publish N JSON messages of ~64 bytes, consume them with prefetch 100 and ack each.
Prints one JSON line with the rate. argv[3] (ROUND, default N): publish and consume in rounds
of that many messages, so the queue is never deeper (bench/sqs_vs_python.sh: moto's cost per
call grows with its queue's depth).
"""
import json
import os
import sys
import time

from kombu import Connection, Consumer, Exchange, Producer, Queue


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    url = sys.argv[2] if len(sys.argv) > 2 else "memory://"
    round_size = max(1, int(sys.argv[3])) if len(sys.argv) > 3 else n
    name = "bench-%d" % os.getpid()
    exchange = Exchange(name, type="direct", durable=False, auto_delete=True)
    queue = Queue(name, exchange, routing_key="bench", durable=False, auto_delete=True)
    with Connection(url) as conn:
        channel = conn.channel()
        producer = Producer(channel)
        producer.maybe_declare(queue)
        count = [0]

        def on_message(body, message):
            message.ack()
            count[0] += 1

        started = time.perf_counter()
        published = 0.0
        consumer = None
        for first in range(0, n, round_size):
            last = min(first + round_size, n)
            t = time.perf_counter()
            for i in range(first, last):
                producer.publish(
                    {"id": i, "task": "bench.add", "args": [1, 2], "kwargs": {}},
                    exchange=exchange,
                    routing_key="bench",
                )
            published += time.perf_counter() - t
            if consumer is None:
                consumer = Consumer(channel, [queue], callbacks=[on_message], prefetch_count=100)
                consumer.consume()
            while count[0] < last:
                conn.drain_events(timeout=30)
        consumer.cancel()
        total = time.perf_counter() - started
    print(json.dumps({
        "impl": "Python kombu %s on %s" % (__import__("kombu").__version__, url.split(":")[0]),
        "messages": n,
        "publish_seconds": published,
        "total_seconds": total,
        "msgs_per_sec": n / total,
    }))


if __name__ == "__main__":
    main()
