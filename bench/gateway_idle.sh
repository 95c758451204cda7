#!/usr/bin/env bash
# Gateway memory per idle connection: start a release kombu-gateway, read its RSS, open N
# idle connections (WebSocket + hello + one channel each), read the RSS again.
#
#   bench/gateway_idle.sh [N...]     (default 1000 10000; needs `ulimit -n` above 2N)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
ulimit -n 65536 2>/dev/null || true
cargo build -q --release -p kombu-gateway --bin kombu-gateway --example idle_clients
for N in "${@:-1000 10000}"; do
  for n in $N; do
    PORT=$((20000 + RANDOM % 20000))
    # N connections from one address: past the default limits (4096 in all, 256 per address).
    target/release/kombu-gateway --listen 127.0.0.1:$PORT --max-connections 0 --max-connections-per-address 0 >/dev/null 2>&1 &
    GW=$!
    wait_port $PORT
    before=$(awk '/VmRSS/ {print $2}' /proc/$GW/status)
    exec 4> >(target/release/examples/idle_clients 127.0.0.1:$PORT "$n" > /tmp/idle_clients.$$ )
    for _ in $(seq 600); do grep -q ready /tmp/idle_clients.$$ 2>/dev/null && break; sleep 0.1; done
    sleep 1
    after=$(awk '/VmRSS/ {print $2}' /proc/$GW/status)
    exec 4>&-
    kill $GW; wait $GW 2>/dev/null || true
    rm -f /tmp/idle_clients.$$
    python3 -c "import sys; b,a,n=map(int,sys.argv[1:]); print(f'{n} idle connections: RSS {b} KiB -> {a} KiB, {(a-b)/n:.1f} KiB per connection')" "$before" "$after" "$n"
  done
done
