#!/usr/bin/env bash
# Run kombu-wasm's main job on a fresh machine.
#
# Today: the Kombu documentation's Hello World and Quick overview, natively, on the embedded
# memory:// broker. (When the gateway lands, this starts `kombu-gateway` on its embedded
# broker serving the demo page.)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo run -q --release --locked --example hello_world -- "${1:-memory://}"
cargo run -q --release --locked --example quick_overview -- "${1:-memory://}"
