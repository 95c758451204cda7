#!/usr/bin/env bash
# Build the npm package's wasm into js/wasm/, all in the wasm-release profile (opt-level z,
# LTO, panic=abort) with wasm-bindgen's `--target web` glue:
#   kombu_bg.wasm     the core and the facade ("kombu-wasm"): memory://, json, text and raw
#                     bodies, no compression
#   kombu_ws_bg.wasm  the facade with the WebSocket transports ("kombu-wasm/ws"): gateway+ws://,
#                     amqp+ws:// (the AMQP client) and their TLS forms, without the memory://
#                     broker (pages using it talk to a gateway or RabbitMQ)
#   kombu_gateway_bg.wasm, kombu_amqp_bg.wasm  the same with one of the two WebSocket
#                     transports ("kombu-wasm/gateway": gateway+ws://, gateway+wss://;
#                     "kombu-wasm/amqp": amqp+ws://, amqps+wss://), ~20 KB gzipped smaller each
#   codecs_bg.wasm    the separately loaded codecs (`import "kombu-wasm/codecs"`): yaml, msgpack,
#                     zlib/gzip, bzip2, lzma/xz and zstd — the same Rust codecs, with the
#                     `codec-module` feature's exports and without the `facade` feature
#   zlib_bg.wasm      zlib/gzip only (`import "kombu-wasm/zlib"`), built the same way
# Each is built with `--no-default-features` and the (additive) features it needs: `facade`
# and `memory` for the first, `facade` and `websocket` for the second, `facade` and
# `gateway-ws` or `amqp-ws` for the next two, `codec-module` for the last two (see Cargo.toml).
#
# KOMBU_WS_OPT_LEVEL builds kombu_ws_bg.wasm at another opt-level (default z, like the rest):
# 3 takes ~20% off the browser's CPU per message over gateway+ws:// for ~100 KB more gzipped
# (measured in BENCHMARKS.md) — for apps that move many messages and can afford the download.
# KOMBU_WASM_FEATURES adds features to the core (e.g. "zlib,yaml" to build them in);
# KOMBU_CODECS_FEATURES picks the codecs module's (default "zlib,yaml,msgpack,bzip2,lzma,zstd"; brotli would
# add ~440 KB gzipped and is left out).
# wasm-opt is not run: measured on this crate, binaryen 132's -Oz/-Os/-O2 all made the gzipped
# file larger. (Never use Debian's wasm-opt 108: it silently breaks wasm-bindgen output.)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
OUT=target/wasm32-unknown-unknown/wasm-release/kombu.wasm
# Panic messages name the source file of the panic; a dependency's is the absolute path of its
# registry checkout ($CARGO_HOME/registry/src/index.crates.io-<hash>/bytes-1.12.2/src/bytes.rs).
# Remapped to start at "index.crates.io-<hash>/": the files do not carry the builder's home
# directory and are the same wherever cargo lives. Only these builds get the flag, so
# `cargo test --target wasm32-unknown-unknown` does not rebuild for it.
RUSTFLAGS_TOML="[\"--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}/registry/src/=\"]"
build() { # features out-name
  cargo build -q -p kombu --lib --target wasm32-unknown-unknown --profile wasm-release --locked --no-default-features --features "$1" \
    --config "target.wasm32-unknown-unknown.rustflags=$RUSTFLAGS_TOML"
  wasm-bindgen --target web --out-dir js/wasm --out-name "$2" --remove-name-section --remove-producers-section "$OUT"
}
rm -rf js/wasm
build "facade,memory,${KOMBU_WASM_FEATURES:-}" kombu
CARGO_PROFILE_WASM_RELEASE_OPT_LEVEL=${KOMBU_WS_OPT_LEVEL:-z} build "facade,websocket,${KOMBU_WASM_FEATURES:-}" kombu_ws
build "facade,gateway-ws,${KOMBU_WASM_FEATURES:-}" kombu_gateway
build "facade,amqp-ws,${KOMBU_WASM_FEATURES:-}" kombu_amqp
build "codec-module,${KOMBU_CODECS_FEATURES:-zlib,yaml,msgpack,bzip2,lzma,zstd}" codecs
build "codec-module,zlib" zlib
rm -f js/wasm/.gitignore js/wasm/package.json
for f in kombu_bg.wasm kombu.js kombu_ws_bg.wasm kombu_ws.js kombu_gateway_bg.wasm kombu_gateway.js kombu_amqp_bg.wasm kombu_amqp.js codecs_bg.wasm codecs.js zlib_bg.wasm zlib.js; do
  echo "js/wasm/$f: $(wc -c < "js/wasm/$f") bytes, $(gzip -9 -c "js/wasm/$f" | wc -c) gzipped"
done
