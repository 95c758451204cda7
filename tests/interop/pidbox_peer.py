"""Python kombu's side of js/test/pidbox-interop.test.mjs: kombu.pidbox over pyamqp on the
local RabbitMQ, with the npm package (over kombu-gateway) on the other side.

argv: node NAMESPACE HOSTNAME -> a Node with handlers add(a, b) and stop(); prints "ready" once
                                 listening, exits after stop (or 60 s)
      call NAMESPACE HOSTNAME -> Mailbox.call([HOSTNAME], "add", {"a": 2, "b": 3}) and
                                 multi_call("hello", {"who": "python"}); prints both as JSON
"""
import json
import socket
import sys
import time

from kombu import Connection
from kombu.pidbox import Mailbox

URL = "amqp://guest:guest@127.0.0.1:5672//"


def main():
    mode, namespace, hostname = sys.argv[1:4]
    with Connection(URL) as conn:
        mailbox = Mailbox(namespace)(conn)
        if mode == "node":
            state = {"stopped": False}

            def add(state, a, b):
                return a + b

            def stop(state):
                state["stopped"] = True
                return "stopping"

            node = mailbox.Node(hostname, state=state, handlers={"add": add, "stop": stop})
            consumer = node.listen(channel=conn.default_channel)
            print("ready", flush=True)
            end = time.monotonic() + 60
            with consumer:
                while not state["stopped"] and time.monotonic() < end:
                    try:
                        conn.drain_events(timeout=0.5)
                    except socket.timeout:
                        pass
        else:
            added = mailbox.call([hostname], "add", {"a": 2, "b": 3}, timeout=10)
            hello = mailbox.multi_call("hello", {"who": "python"}, timeout=3)
            print(json.dumps({"add": added, "hello": hello}), flush=True)


if __name__ == "__main__":
    main()
