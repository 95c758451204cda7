#!/usr/bin/env bash
# amqp:// round trip on the local RabbitMQ (publish -> consume -> ack), kombu-wasm's native
# transport vs Python kombu's pyamqp and vs the Rust client lapin (bench/lapin, built here),
# same run, same broker.
#
#   bench/amqp_vs_python.sh [N] [URL]   (default 20000 messages of ~64 bytes, prefetch 100,
#                                        amqp://guest:guest@127.0.0.1:5672//)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
N=${1:-20000}
URL=${2:-amqp://guest:guest@127.0.0.1:5672//}
python_venv
cargo build -q --release -p kombu-gateway --example bench_roundtrip
cargo build -q --release --manifest-path bench/lapin/Cargo.toml
LAPIN_URL=${URL%//}/%2f
rust=$(for _ in 1 2 3; do target/release/examples/bench_roundtrip "$URL" "$N"; done | best)
py=$(for _ in 1 2 3; do "$VENV/bin/python" bench/roundtrip_python.py "$N" "$URL"; done | best)
lapin=$(for _ in 1 2 3; do bench/lapin/target/release/bench-lapin "$LAPIN_URL" "$N"; done | best)
python3 - "$rust" "$py" "$lapin" <<'PY'
import json, sys
r, p, l = (json.loads(a) for a in sys.argv[1:4])
print("workload: %d JSON messages (~64 B), publish then consume with prefetch 100, ack each" % r["messages"])
for x in (r, p, l):
    print("  %-40s %10.0f msgs/s  (%.3f s)" % (x["impl"], x["msgs_per_sec"], x["total_seconds"]))
print("  kombu-wasm / Python kombu: %.1fx" % (r["msgs_per_sec"] / p["msgs_per_sec"]))
print("  kombu-wasm / lapin: %.2f" % (r["msgs_per_sec"] / l["msgs_per_sec"]))
PY
