#!/usr/bin/env bash
# memory:// round trip (publish -> consume -> ack) through the npm package — wasm in headless
# Chromium and in Node — against the native Rust build, same run, same workload.
#
#   bench/wasm_vs_native.sh [N]     (default 20000 messages of ~64 bytes, prefetch 100)
#
# Builds the native example in release mode and the package's wasm (js/build.sh), runs each
# best of three and prints the rates and the wasm/native ratios. Needs js/node_modules
# (npm ci in js/) and Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
N=${1:-20000}
cargo build -q --release --example bench_memory
build_wasm
native=$(for _ in 1 2 3; do target/release/examples/bench_memory "$N"; done | best)
node=$(node js/bench/node.mjs "$N")
chromium=$(node --experimental-websocket --no-warnings js/bench/browser.mjs "$N")
python3 - "$native" "$node" "$chromium" <<'PY'
import json, sys
n, *wasm = (json.loads(a) for a in sys.argv[1:4])
print("workload: %d JSON messages (~64 B), publish then consume with prefetch 100, ack each" % n["messages"])
for x in (n, *wasm):
    print("  %-48s %10.0f msgs/s  (%.3f s)" % (x["impl"][:48], x["msgs_per_sec"], x["total_seconds"]))
for x in wasm:
    print("  %-48s %9.0f%% of native" % (x["impl"][:48], 100 * x["msgs_per_sec"] / n["msgs_per_sec"]))
PY
