#!/usr/bin/env bash
# Build the npm package's wasm: the core crate in the wasm-release profile (opt-level z, LTO,
# panic=abort) and wasm-bindgen's `--target web` glue into js/wasm/.
#
# KOMBU_WASM_FEATURES picks the compression codecs beyond zlib (default: bzip2, lzma, zstd;
# brotli doubles the download and is left out — add it with KOMBU_WASM_FEATURES=...,brotli).
# wasm-opt is not run: measured on this crate, binaryen 132's -Oz made the gzipped file larger.
# (Never use Debian's wasm-opt 108: it silently breaks wasm-bindgen output.)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build -q -p kombu --lib --target wasm32-unknown-unknown --profile wasm-release --locked \
  --no-default-features --features "${KOMBU_WASM_FEATURES:-bzip2,lzma,zstd}"
rm -rf js/wasm
wasm-bindgen --target web --out-dir js/wasm --out-name kombu --remove-name-section --remove-producers-section \
  target/wasm32-unknown-unknown/wasm-release/kombu.wasm
rm -f js/wasm/.gitignore js/wasm/package.json
echo "js/wasm/kombu_bg.wasm: $(wc -c < js/wasm/kombu_bg.wasm) bytes, $(gzip -9 -c js/wasm/kombu_bg.wasm | wc -c) gzipped;" \
  "js/wasm/kombu.js: $(wc -c < js/wasm/kombu.js) bytes, $(gzip -9 -c js/wasm/kombu.js | wc -c) gzipped"
