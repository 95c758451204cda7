#!/usr/bin/env bash
# redis:// round trip on the local Redis (publish -> consume -> ack each), kombu-wasm's native
# transport vs Python kombu's redis transport, same run, same Redis; with redis-benchmark's
# LPUSH/RPOP (one client, and 50 clients) as the ceiling, a gateway+ws:// client (native, and the
# npm package in headless Chromium) through a gateway fronting the same Redis, and how fast an
# idle consumer of 4 queues is woken (bench_idle_wake: a message to its last queue every 20 ms,
# publish to delivery, p50/p99).
#
#   bench/redis_vs_python.sh [N] [URL]   (default 20000 messages of ~64 bytes, prefetch 100,
#                                         redis://127.0.0.1:6379/0)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
N=${1:-20000}
URL=${2:-redis://127.0.0.1:6379/0}
HOSTPORT=${URL#redis://}; HOSTPORT=${HOSTPORT%%/*}; HOSTPORT=${HOSTPORT##*@}
RHOST=${HOSTPORT%%:*}; RPORT=${HOSTPORT##*:}; [ "$RPORT" = "$HOSTPORT" ] && RPORT=6379
python_venv
cargo build -q --release -p kombu-gateway --example bench_roundtrip --example bench_idle_wake --bin kombu-gateway
[ -f js/wasm/kombu_ws_bg.wasm ] || js/build.sh >/dev/null
rust=$(for _ in 1 2 3; do target/release/examples/bench_roundtrip "$URL" "$N"; done | best)
py=$(for _ in 1 2 3; do "$VENV/bin/python" bench/roundtrip_python.py "$N" "$URL"; done | best)
# The gateway path: a gateway on Redis, the Rust gateway+ws:// client through it.
GW_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/release/kombu-gateway --listen "127.0.0.1:$GW_PORT" --broker "$URL" >/dev/null 2>&1 &
GW=$!
trap 'kill $GW 2>/dev/null || true' EXIT
wait_port "$GW_PORT"
gw=$(for _ in 1 2 3; do target/release/examples/bench_roundtrip "gateway+ws://127.0.0.1:$GW_PORT/gateway" "$N"; done | best)
browser=$(node --experimental-websocket --no-warnings js/bench/browser.mjs "$N" "gateway+ws://127.0.0.1:$GW_PORT/gateway")
idle=$(target/release/examples/bench_idle_wake "$URL" 300 4)
# -q still prints progress lines ending in \r: keep the results.
ceiling1=$(redis-benchmark -h "$RHOST" -p "$RPORT" -q -n 100000 -c 1 -t lpush,rpop | tr '\r' '\n' | grep 'requests per second')
ceiling50=$(redis-benchmark -h "$RHOST" -p "$RPORT" -q -n 200000 -t lpush,rpop | tr '\r' '\n' | grep 'requests per second')
# Both sides leave the binding tables of their auto_delete benchmark queues (Kombu deletes
# auto_delete queues on Redis only for fanout exchanges).
redis-cli -h "$RHOST" -p "$RPORT" --scan --pattern '_kombu.binding*.bench-*' | xargs -r redis-cli -h "$RHOST" -p "$RPORT" del >/dev/null
python3 - "$rust" "$py" "$gw" "$browser" "$idle" <<'PY'
import json, sys
r, p, g, b, i = (json.loads(a) for a in sys.argv[1:6])
print("workload: %d JSON messages (~64 B), publish then consume with prefetch 100, ack each" % r["messages"])
for x, label in ((r, None), (p, None), (g, "kombu-wasm gateway+ws:// client -> kombu-gateway -> redis"), (b, "npm package in Chromium, gateway+ws:// -> kombu-gateway -> redis")):
    print("  %-55s %10.0f msgs/s  (publish %.3f s, total %.3f s)" % (label or x["impl"], x["msgs_per_sec"], x["publish_seconds"], x["total_seconds"]))
print("  kombu-wasm / Python kombu: %.1fx" % (r["msgs_per_sec"] / p["msgs_per_sec"]))
print("idle consumer of %d queues, woken by a message to the last (one every 20 ms): p50 %.2f ms, p99 %.2f ms (%d messages)" % (i["queues"], i["p50_ms"], i["p99_ms"], i["messages"]))
PY
echo "redis-benchmark, 1 client:"; echo "$ceiling1" | sed 's/^/  /'
echo "redis-benchmark, 50 clients:"; echo "$ceiling50" | sed 's/^/  /'
