"""Python kombu's side of js/test/broadcast-interop.test.mjs: kombu.common.Broadcast over
pyamqp on the local RabbitMQ, with the npm package (over kombu-gateway) on the other side.

argv: EXCHANGE -> consumes Broadcast(EXCHANGE) and prints {"ready": <its queue's name>}; then
      reads commands on stdin, one JSON object a line:
        {"check": NAME}   declare Broadcast(EXCHANGE, queue=NAME) as Kombu would (RabbitMQ
                          refuses it with 406 unless the other side's queue has the same
                          attributes); prints {"checked": NAME} or {"check_error": "..."}
        {"publish": BODY} publish BODY (JSON) to the broadcast; prints {"published": BODY}
        {"expect": N}     wait (30 s at most) until N messages arrived; prints {"received":
                          [bodies]} and exits
"""
import json
import socket
import sys
import time

from kombu import Connection, Producer
from kombu.common import Broadcast

URL = "amqp://guest:guest@127.0.0.1:5672//"


def say(o):
    print(json.dumps(o), flush=True)


def main():
    exchange = sys.argv[1]
    received = []
    with Connection(URL) as conn:
        bcast = Broadcast(exchange)
        with conn.Consumer([bcast], callbacks=[lambda body, message: (received.append(body), message.ack())]):
            say({"ready": bcast.name, "auto_delete": bcast.auto_delete, "exchange_type": bcast.exchange.type})
            for line in sys.stdin:
                cmd = json.loads(line)
                if "check" in cmd:
                    try:
                        Broadcast(exchange, queue=cmd["check"])(conn.channel()).declare()
                        say({"checked": cmd["check"]})
                    except Exception as e:  # the 406 is what the test reports
                        say({"check_error": repr(e)})
                elif "publish" in cmd:
                    Producer(conn.default_channel).publish(cmd["publish"], exchange=bcast.exchange, serializer="json")
                    say({"published": cmd["publish"]})
                elif "expect" in cmd:
                    end = time.monotonic() + 30
                    while len(received) < cmd["expect"] and time.monotonic() < end:
                        try:
                            conn.drain_events(timeout=0.5)
                        except socket.timeout:
                            pass
                    say({"received": received})
                    return


if __name__ == "__main__":
    main()
