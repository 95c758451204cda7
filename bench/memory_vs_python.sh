#!/usr/bin/env bash
# memory:// round trip (publish -> consume -> ack), kombu-wasm vs Python kombu, same run.
#
#   bench/memory_vs_python.sh [N]     (default 20000 messages of ~64 bytes, prefetch 100)
#
# Builds the Rust side in release mode, makes (once) a venv with kombu from
# tests/interop/requirements.txt, runs each three times and prints the best rate of each
# and the ratios. The Rust side runs twice: with dynamic JSON values (json!, as Python's
# dicts) and typed (a serde struct, as Rust applications declare messages); see
# examples/bench_memory.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
N=${1:-20000}
python_venv
cargo build -q --release --example bench_memory
# Interleaved, so that a slow spell of the machine hits all three alike.
rust= typed= py=
for _ in 1 2 3; do
  rust+=$(target/release/examples/bench_memory "$N")$'\n'
  typed+=$(target/release/examples/bench_memory "$N" --typed)$'\n'
  py+=$("$VENV/bin/python" bench/roundtrip_python.py "$N")$'\n'
done
rust=$(printf '%s' "$rust" | best) typed=$(printf '%s' "$typed" | best) py=$(printf '%s' "$py" | best)
python3 - "$rust" "$typed" "$py" <<'PY'
import json, sys
r, t, p = (json.loads(a) for a in sys.argv[1:4])
print("workload: %d JSON messages (~64 B), publish then consume with prefetch 100, ack each" % r["messages"])
for x in (r, t, p):
    print("  %-36s %10.0f msgs/s  (%.3f s)" % (x["impl"], x["msgs_per_sec"], x["total_seconds"]))
print("  ratio: %.1fx with dynamic JSON values (json!, callbacks), %.1fx typed (a serde struct)"
      % (r["msgs_per_sec"] / p["msgs_per_sec"], t["msgs_per_sec"] / p["msgs_per_sec"]))
PY
