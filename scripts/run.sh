#!/usr/bin/env bash
# Run kombu-wasm's main job on a fresh machine: kombu-gateway on its embedded memory://
# broker, serving the playground (www/) with the npm package at /pkg/ and the gateway protocol
# at /gateway, on http://127.0.0.1:${PORT:-8765}/. Before that, the npm package's wasm is built
# and the seed's Hello World runs natively on the embedded broker as a smoke test.
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
cargo build -q --release --locked -p kombu-gateway
exec target/release/kombu-gateway --listen "${HOST:-127.0.0.1}:${PORT:-8765}" --www www --pkg js
