#!/usr/bin/env bash
# Run kombu-wasm's main job on a fresh machine: build the npm package's wasm and serve the
# playground (www/) with the package at /pkg/, on http://127.0.0.1:${PORT:-8765}/. The
# broker is memory://, running in the page. Before serving, the seed's Hello World runs
# natively on the embedded broker as a smoke test.
#
# (When kombu-gateway lands, this starts the gateway on its embedded broker instead, and the
# gateway serves the same page.)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH" DEBIAN_FRONTEND=noninteractive
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends jq </dev/null >/dev/null; }
WBG=$(cargo metadata --format-version 1 --locked | jq -r '[.packages[] | select(.name == "wasm-bindgen") | .version] | unique | .[]')
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WBG" ]; then
  cargo install wasm-bindgen-cli --version "=$WBG" --locked --force </dev/null \
    || cargo install wasm-bindgen-cli --version "=$WBG" --force </dev/null
fi
cargo run -q --release --locked --example hello_world
js/build.sh
exec node www/serve.mjs "${PORT:-8765}"
