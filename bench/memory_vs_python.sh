#!/usr/bin/env bash
# memory:// round trip (publish -> consume -> ack), kombu-wasm vs Python kombu, same run.
#
#   bench/memory_vs_python.sh [N]     (default 20000 messages of ~64 bytes, prefetch 100)
#
# Builds the Rust side in release mode, makes (once) a venv with kombu from
# tests/interop/requirements.txt, runs both three times and prints the best rate of each
# and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
N=${1:-20000}
python_venv
cargo build -q --release --example bench_memory
rust=$(for _ in 1 2 3; do target/release/examples/bench_memory "$N"; done | best)
py=$(for _ in 1 2 3; do "$VENV/bin/python" bench/roundtrip_python.py "$N"; done | best)
python3 - "$rust" "$py" <<'PY'
import json, sys
r, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("workload: %d JSON messages (~64 B), publish then consume with prefetch 100, ack each" % r["messages"])
for x in (r, p):
    print("  %-32s %10.0f msgs/s  (%.3f s)" % (x["impl"], x["msgs_per_sec"], x["total_seconds"]))
print("  ratio: %.1fx" % (r["msgs_per_sec"] / p["msgs_per_sec"]))
PY
