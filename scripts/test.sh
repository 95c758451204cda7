#!/usr/bin/env bash
# Run every test of kombu-wasm: native (unit, integration, interop with Python kombu against
# the real brokers), wasm in Node and in headless Chromium, and the npm package end to end.
#
# Installs what it needs first, idempotently (each step is skipped when already done):
# the wasm32 target, wasm-bindgen-cli at Cargo.lock's version, wasm-pack, Debian's chromium and
# chromium-driver, cargo-fuzz, npm packages, a Python venv with kombu for the interop tests, and it
# starts Redis, RabbitMQ and moto (an SQS emulator) when they are not running. Runs as root
# on Debian 12, with no
# stdin (CI); nothing but crates.io, PyPI, npm and Debian's packages is downloaded.
#
# Options (environment): SKIP_WASM=1 skips the wasm suites and the npm package, SKIP_BROWSER=1
# the Chromium wasm-bindgen run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export DEBIAN_FRONTEND=noninteractive CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export PATH="$HOME/.cargo/bin:$PATH"
CACHE=${KOMBU_CACHE:-$HOME/.cache/kombu-wasm}
WASM_PACK_VERSION=0.15.1
mkdir -p "$CACHE"
# chromedriver leaves a scoped dir per run in TMPDIR: confine them and clean up.
export TMPDIR="$(mktemp -d /tmp/kombu-test.XXXXXX)"
trap 'rm -rf "$TMPDIR"' EXIT
T0=$SECONDS
step() { echo; echo "== [$((SECONDS - T0))s] $*"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # name port seconds
  local i=0
  until port_open "$2"; do
    i=$((i + 1)); [ "$i" -ge $(($3 * 5)) ] && { echo "$1 is not listening on :$2 after $3s" >&2; return 1; }
    sleep 0.2
  done
  echo "$1 is up on :$2"
}

step "Rust target wasm32-unknown-unknown"
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

step "Debian packages: chromium, chromium-driver, redis, rabbitmq"
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v redis-server >/dev/null || need+=(redis-server)
command -v rabbitmq-server >/dev/null || need+=(rabbitmq-server)
command -v jq >/dev/null || need+=(jq)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null >/dev/null
fi

step "wasm-bindgen-cli at Cargo.lock's wasm-bindgen version"
WBG=$(cargo metadata --format-version 1 --locked | jq -r '[.packages[] | select(.name == "wasm-bindgen") | .version] | unique | .[]')
[ "$(wc -w <<<"$WBG")" = 1 ] || { echo "expected one wasm-bindgen version in Cargo.lock, got: $WBG" >&2; exit 1; }
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WBG" ]; then
  cargo install wasm-bindgen-cli --version "=$WBG" --locked --force </dev/null \
    || cargo install wasm-bindgen-cli --version "=$WBG" --force </dev/null
fi

if [ "${SKIP_WASM:-}" != 1 ] && [ "${SKIP_BROWSER:-}" != 1 ]; then
  step "wasm-pack $WASM_PACK_VERSION (the Chromium wasm suites run through wasm-pack test)"
  if [ "$(wasm-pack --version 2>/dev/null)" != "wasm-pack $WASM_PACK_VERSION" ]; then
    cargo install wasm-pack --version "=$WASM_PACK_VERSION" --locked --force </dev/null
  fi
fi

step "Brokers: Redis and RabbitMQ"
if ! port_open 6379; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
    --dir "$CACHE" --logfile "$CACHE/redis.log"
fi
wait_port redis 6379 10
if ! port_open 5672; then
  rabbitmq-server -detached
fi
wait_port rabbitmq 5672 120

step "Python venv for the interop tests (kombu from PyPI)"
REQ=tests/interop/requirements.txt
if [ -f "$REQ" ]; then
  VENV="$CACHE/venv-$(sha256sum "$REQ" | cut -c1-12)"
  if [ ! -x "$VENV/bin/python" ] || [ ! -f "$VENV/.complete" ]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ" </dev/null
    touch "$VENV/.complete"
  fi
  export KOMBU_PYTHON="$VENV/bin/python"
fi

step "SQS emulator: moto's server (from the interop venv) on 127.0.0.1:${MOTO_PORT:=4566}"
# The sqs_* tests find it through MOTO_PORT (default 4566). moto keeps everything in memory;
# the tests use unique queue names and delete their queues.
export MOTO_PORT
if ! port_open "$MOTO_PORT"; then
  nohup "$KOMBU_PYTHON" -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"$CACHE/moto-$MOTO_PORT.log" 2>&1 </dev/null &
  echo $! >"$CACHE/moto-$MOTO_PORT.pid"
fi
wait_port moto "$MOTO_PORT" 60
AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "$KOMBU_PYTHON" - "$MOTO_PORT" <<'PY'
import sys, boto3
boto3.client("sqs", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}").list_queues()
print("moto answers SQS calls")
PY

step "Lints: cargo clippy, warnings are errors (native, and the wasm build of the crate)"
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo clippy --workspace --all-targets --locked -- -D warnings
if [ "${SKIP_WASM:-}" != 1 ]; then
  cargo clippy -p kombu --target wasm32-unknown-unknown --lib --tests --locked -- -D warnings
fi

step "Native tests (unit, integration, interop)"
cargo test --workspace --locked

step "Fuzz the network decoders briefly (cargo-fuzz: gateway frames, AMQP frames)"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked </dev/null
for target in gateway_frame amqp_frame; do
  mkdir -p "$TMPDIR/corpus-$target"
  # The committed seeds are read only; what libFuzzer finds goes to the scratch corpus.
  if ! (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$target" "$TMPDIR/corpus-$target" "corpus/$target" \
      -- -max_total_time="${FUZZ_SECONDS:-20}" >"$TMPDIR/fuzz-$target.log" 2>&1 </dev/null); then
    grep -A6 "panicked" "$TMPDIR/fuzz-$target.log" >&2 || true
    tail -25 "$TMPDIR/fuzz-$target.log" >&2
    echo "fuzz target $target failed (a crashing input is saved under fuzz/artifacts/$target)" >&2
    exit 1
  fi
  echo "$target: $(grep -E '^Done' "$TMPDIR/fuzz-$target.log")"
done

if [ "${SKIP_WASM:-}" != 1 ]; then
  step "wasm tests in Node"
  cargo test -p kombu --target wasm32-unknown-unknown --locked --lib --tests
  if [ "${SKIP_BROWSER:-}" != 1 ]; then
    step "wasm tests in headless Chromium (wasm-pack test --headless --chrome)"
    # The command README.md gives Rust developers. --mode no-install: wasm-pack uses the
    # wasm-bindgen-cli installed above and Debian's chromedriver, and fails instead of
    # downloading anything. wasm-pack sets WASM_BINDGEN_TEST_ONLY_WEB=1, which skips every suite
    # not configured for a browser; ours default to Node (the step above), so
    # WASM_BINDGEN_USE_BROWSER=1 moves them into Chromium. Chromium's flags: webdriver.json.
    # The same suites as the Node step (--lib --test '*'; wasm-pack adds --tests to its build
    # itself and cargo refuses it twice), each run once in Chromium.
    WASM_BINDGEN_USE_BROWSER=1 wasm-pack test --headless --chrome --mode no-install . \
      -p kombu --locked --lib --test '*' 2>&1 | tee "$TMPDIR/wasm-pack-chrome.log"
    # A run where every suite was skipped also exits 0: require real results.
    if grep -q "only configured to run in node.js" "$TMPDIR/wasm-pack-chrome.log" \
        || ! grep -qE "^test result: ok\. [1-9][0-9]* passed" "$TMPDIR/wasm-pack-chrome.log"; then
      echo "wasm-pack test --chrome skipped the wasm suites instead of running them in Chromium" >&2
      exit 1
    fi
  fi
fi

if [ "${SKIP_WASM:-}" != 1 ]; then
  step "npm package (js/): build, Node tests, Chromium test"
  LOCKSUM=$(sha256sum js/package-lock.json | cut -d' ' -f1)
  if [ "$(cat js/node_modules/.ci-locksum 2>/dev/null)" != "$LOCKSUM" ]; then
    (cd js && npm ci --no-audit --no-fund </dev/null && echo "$LOCKSUM" > node_modules/.ci-locksum)
  fi
  js/build.sh
  cargo build -p kombu-gateway --locked   # js/test/gateway.test.mjs runs the real gateway
  (cd js && node --test test/)
fi

step "All tests passed"
