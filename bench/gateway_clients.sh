#!/usr/bin/env bash
# Through kombu-gateway on its embedded memory:// broker: one native Rust client, then N
# browser-style clients (the npm package in Node, one connection each), on a release gateway
# started here. Prints throughput and round-trip latency (p50/p99).
#
#   bench/gateway_clients.sh [N...]     (default 1 10 50; 2,000 messages per client)
# Needs the npm package built (js/build.sh) and Node 20+.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
cargo build -q --release -p kombu-gateway --bin kombu-gateway --example bench_roundtrip --example bench_pingpong
[ -f js/wasm/kombu_bg.wasm ] || js/build.sh
PORT=$((20000 + RANDOM % 20000))
target/release/kombu-gateway --listen 127.0.0.1:$PORT >/dev/null 2>&1 &
GW=$!
trap 'kill $GW 2>/dev/null || true' EXIT
wait_port $PORT
URL=gateway+ws://127.0.0.1:$PORT/gateway
echo "native Rust client, throughput (20,000 messages, publish then consume, prefetch 100):"
target/release/examples/bench_roundtrip "$URL?vhost=/native" 20000
echo "native Rust client, ping-pong latency (2,000 round trips, one at a time):"
target/release/examples/bench_pingpong "$URL?vhost=/native" 2000
for n in ${@:-1 10 50}; do
  echo "$n Node client(s), 2,000 messages each, then 200 ping-pongs each:"
  node --experimental-websocket --no-warnings js/bench/clients.mjs "$n" 2000 "$URL"
done
