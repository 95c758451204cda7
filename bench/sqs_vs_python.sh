#!/usr/bin/env bash
# sqs:// round trip on moto's SQS server (publish -> consume -> ack each), kombu-wasm's native
# transport vs Python kombu's SQS transport (boto3), same run, same moto; with moto's own rate
# through boto3's batch calls (SendMessageBatch, ReceiveMessage of 10 + DeleteMessageBatch) as
# the ceiling. moto is the bottleneck: the figures measure the emulator as much as the
# clients; the ratio is what compares.
#
# moto's cost per call grows with the queue's depth (moto 5: every received message reads
# all the queue's attributes, ApproximateNumberOfMessages among them, a scan of the whole
# queue), so the whole workload at once is O(N^2) there: 2,000 messages queued took moto
# ~2.8 s per ReceiveMessage on the loaded machine. Every side therefore runs the usual
# workload in rounds of ROUND messages (publish ROUND, consume them with prefetch 100, ack
# each; next round), so the queue is never deeper than ROUND.
#
#   bench/sqs_vs_python.sh [N] [ROUND] [PORT]   (default 2000 messages of ~64 bytes in rounds
#                                        of 100, moto on 127.0.0.1:$MOTO_PORT or 4566; started
#                                        from the interop venv when not running)
#
# kombu-wasm runs twice: publishing one at a time as Kombu does (one SendMessage each), and
# 10 publishes in flight (they go out as one SendMessageBatch).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
N=${1:-2000}
ROUND=${2:-100}
PORT=${3:-${MOTO_PORT:-4566}}
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
python_venv
if ! (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  "$VENV/bin/python" -m moto.server -H 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
  MOTO=$!
  trap 'kill $MOTO 2>/dev/null || true' EXIT
  wait_port "$PORT"
fi
URL="sqs://test:test@127.0.0.1:$PORT"
cargo build -q --release -p kombu-gateway --example bench_roundtrip
# wait_time_seconds 1 on both sides: Kombu's default long poll (10 s) only adds idle time at
# the end of a run.
RURL="$URL?region=us-east-1&wait_time_seconds=1&polling_interval=0.1"
rust=$(target/release/examples/bench_roundtrip "$RURL" "$N" "$ROUND" 1)
rust_batched=$(target/release/examples/bench_roundtrip "$RURL" "$N" "$ROUND" 10)
py=$("$VENV/bin/python" - "$N" "$URL" "$ROUND" <<'PY'
import runpy, sys
from kombu import Connection
# roundtrip_python.py with the same transport options (kombu reads them from the Connection).
orig = Connection.__init__
def init(self, *a, **kw):
    kw.setdefault("transport_options", {"region": "us-east-1", "is_secure": False, "wait_time_seconds": 1, "polling_interval": 0.1})
    orig(self, *a, **kw)
Connection.__init__ = init
sys.argv = ["roundtrip_python.py"] + sys.argv[1:]
runpy.run_path("bench/roundtrip_python.py", run_name="__main__")
PY
)
ceiling=$("$VENV/bin/python" - "$N" "$PORT" "$ROUND" <<'PY'
import json, sys, time, boto3
n, port, round_size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
url = c.create_queue(QueueName="bench-ceiling-%d" % time.time_ns())["QueueUrl"]
body = json.dumps({"id": 0, "task": "bench.add", "args": [1, 2], "kwargs": {}})
t0 = time.perf_counter()
sent = 0.0
got = 0
for first in range(0, n, round_size):
    last = min(first + round_size, n)
    t = time.perf_counter()
    for i in range(first, last, 10):
        c.send_message_batch(QueueUrl=url, Entries=[{"Id": str(j), "MessageBody": body} for j in range(min(10, last - i))])
    sent += time.perf_counter() - t
    while got < last:
        ms = c.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if ms:
            c.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(j), "ReceiptHandle": m["ReceiptHandle"]} for j, m in enumerate(ms)])
        got += len(ms)
total = time.perf_counter() - t0
c.delete_queue(QueueUrl=url)
print(json.dumps({"msgs_per_sec": n / total, "publish_seconds": sent, "total_seconds": total}))
PY
)
# The benchmark queues (auto_delete: Kombu does not delete them on SQS).
"$VENV/bin/python" - "$PORT" <<'PY'
import sys, boto3
c = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1")
for u in c.list_queues(QueueNamePrefix="bench-").get("QueueUrls", []):
    c.delete_queue(QueueUrl=u)
PY
python3 - "$rust" "$rust_batched" "$py" "$ceiling" "$ROUND" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys
r, rb, p, c = (json.loads(a) for a in sys.argv[1:5])
print("workload: %d JSON messages (~64 B) in rounds of %s: publish, consume with prefetch 100, ack each; on moto (load average %s)" % (r["messages"], sys.argv[5], sys.argv[6]))
rb["impl"] += ", 10 publishes in flight"
for x in (r, rb, p):
    print("  %-60s %8.1f msgs/s  (publish %.1f s, total %.1f s)" % (x["impl"], x["msgs_per_sec"], x["publish_seconds"], x["total_seconds"]))
print("  kombu-wasm / Python kombu: %.1fx (publishing one at a time), %.1fx (10 in flight)" % (r["msgs_per_sec"] / p["msgs_per_sec"], rb["msgs_per_sec"] / p["msgs_per_sec"]))
print("  moto's ceiling (boto3 batch calls, 10 per call): %.0f msgs/s (send %.1f s, total %.1f s)" % (c["msgs_per_sec"], c["publish_seconds"], c["total_seconds"]))
PY
