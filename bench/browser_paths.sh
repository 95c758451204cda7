#!/usr/bin/env bash
# The AMQP issue's browser paths on the local RabbitMQ, same run, same workload (20,000 JSON
# messages of ~64 B, publish then consume with prefetch 100, ack each; best of three each):
# native amqp:// (the reference), then through a release kombu-gateway started here with
# --broker amqp://...: the native client over gateway+ws://, and the npm package in Node and in
# headless Chromium over amqp+ws:// (the /amqp relay) and gateway+ws://.
#
#   bench/browser_paths.sh [N] [AMQP_URL]   (default 20000, amqp://guest:guest@127.0.0.1:5672//)
# Needs js/node_modules (npm ci in js/) and Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
N=${1:-20000}
AMQP=${2:-amqp://guest:guest@127.0.0.1:5672//}
cargo build -q --release -p kombu-gateway --bin kombu-gateway --example bench_roundtrip
build_wasm
PORT=$((20000 + RANDOM % 20000))
target/release/kombu-gateway --listen 127.0.0.1:$PORT --broker "$AMQP" >/dev/null 2>&1 &
GW=$!
trap 'kill $GW 2>/dev/null || true' EXIT
wait_port $PORT
# The relay passes the URL's user and password to RabbitMQ (no token file here).
CREDS=${AMQP#amqp://}; CREDS=${CREDS%%@*}
RELAY="amqp+ws://$CREDS@127.0.0.1:$PORT//"
GATEWAY="gateway+ws://127.0.0.1:$PORT/gateway?vhost=/"
native=$(for _ in 1 2 3; do target/release/examples/bench_roundtrip "$AMQP" "$N"; done | best)
native_gw=$(for _ in 1 2 3; do target/release/examples/bench_roundtrip "$GATEWAY" "$N"; done | best)
node_relay=$(node --experimental-websocket --no-warnings js/bench/node.mjs "$N" "$RELAY")
chromium_relay=$(node --experimental-websocket --no-warnings js/bench/browser.mjs "$N" "$RELAY")
node_gw=$(node --experimental-websocket --no-warnings js/bench/node.mjs "$N" "$GATEWAY")
chromium_gw=$(node --experimental-websocket --no-warnings js/bench/browser.mjs "$N" "$GATEWAY")
python3 - "$native" "$native_gw" "$node_relay" "$chromium_relay" "$node_gw" "$chromium_gw" <<'PY'
import json, sys
runs = [json.loads(a) for a in sys.argv[1:]]
names = ["native amqp:// (reference)", "native gateway+ws://", "Node amqp+ws:// (relay)", "Chromium amqp+ws:// (relay)", "Node gateway+ws://", "Chromium gateway+ws://"]
ref = runs[0]["msgs_per_sec"]
print("workload: %d JSON messages (~64 B), publish then consume with prefetch 100, ack each" % runs[0]["messages"])
for name, r in zip(names, runs):
    print("  %-30s %9.0f msgs/s  (%.3f s)  %4.0f%% of native amqp://" % (name, r["msgs_per_sec"], r["total_seconds"], 100 * r["msgs_per_sec"] / ref))
PY
