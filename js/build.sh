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
#                     "kombu-wasm/amqp": amqp+ws://, amqps+wss://), ~17-18 KB gzipped smaller each
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
# wasm-opt (npm binaryen 132, installed in js/wasm-opt/ from its lockfile; never Debian's
# binaryen 108: it silently breaks wasm-bindgen output) then rewrites each module with -Oz minus
# five passes that, on this crate, make the gzipped file larger although the raw one gets
# smaller: local-cse, inlining-optimizing, merge-similar-functions, memory-packing and
# simplify-locals (plain -Oz: 9% fewer raw bytes, +0.6% gzipped; this set: 4.6% raw, -2.3%
# gzipped on kombu-wasm/ws; the figures and how the set was chosen are in BENCHMARKS.md).
# KOMBU_WASM_OPT=0 leaves the modules as wasm-bindgen wrote them.
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
# `cargo rustc --crate-type cdylib`: the crate is also an rlib (Cargo.toml), and compiled as
# both at once its module is ~8 KB gzipped larger (4%, measured on kombu-wasm/ws) than as the
# cdylib alone.
build() { # features out-name [no-wasm-opt]
  cargo rustc -q -p kombu --lib --crate-type cdylib --target wasm32-unknown-unknown --profile wasm-release --locked --no-default-features --features "$1" \
    --config "target.wasm32-unknown-unknown.rustflags=$RUSTFLAGS_TOML"
  wasm-bindgen --target web --out-dir js/wasm --out-name "$2" --remove-name-section --remove-producers-section "$OUT"
  if [ "${KOMBU_WASM_OPT:-1}" != 0 ] && [ "${3:-}" != no-wasm-opt ]; then
    "$WASM_OPT" "js/wasm/$2_bg.wasm" -o "js/wasm/$2_bg.wasm" -Oz $WASM_OPT_SKIP $WASM_FEATURES
  fi
}
WASM_OPT=js/wasm-opt/node_modules/.bin/wasm-opt
# The features Rust 1.95 enables by default for wasm32-unknown-unknown, for wasm-opt to validate.
WASM_FEATURES="--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue"
WASM_OPT_SKIP="--skip-pass=local-cse --skip-pass=inlining-optimizing --skip-pass=merge-similar-functions --skip-pass=memory-packing --skip-pass=simplify-locals"
if [ "${KOMBU_WASM_OPT:-1}" != 0 ] && [ "$("$WASM_OPT" --version 2>/dev/null)" != "wasm-opt version 132 (version_132)" ]; then
  (cd js/wasm-opt && npm ci --no-audit --no-fund </dev/null)
  "$WASM_OPT" --version | grep -qx "wasm-opt version 132 (version_132)"
fi
rm -rf js/wasm
build "facade,memory,${KOMBU_WASM_FEATURES:-}" kombu
# (A speed build is left as LLVM made it: the pass set above is for size.)
CARGO_PROFILE_WASM_RELEASE_OPT_LEVEL=${KOMBU_WS_OPT_LEVEL:-z} build "facade,websocket,${KOMBU_WASM_FEATURES:-}" kombu_ws "$([ "${KOMBU_WS_OPT_LEVEL:-z}" = z ] || echo no-wasm-opt)"
build "facade,gateway-ws,${KOMBU_WASM_FEATURES:-}" kombu_gateway
build "facade,amqp-ws,${KOMBU_WASM_FEATURES:-}" kombu_amqp
build "codec-module,${KOMBU_CODECS_FEATURES:-zlib,yaml,msgpack,bzip2,lzma,zstd}" codecs
build "codec-module,zlib" zlib
rm -f js/wasm/.gitignore js/wasm/package.json
for f in kombu_bg.wasm kombu.js kombu_ws_bg.wasm kombu_ws.js kombu_gateway_bg.wasm kombu_gateway.js kombu_amqp_bg.wasm kombu_amqp.js codecs_bg.wasm codecs.js zlib_bg.wasm zlib.js; do
  echo "js/wasm/$f: $(wc -c < "js/wasm/$f") bytes, $(gzip -9 -c "js/wasm/$f" | wc -c) gzipped"
done
