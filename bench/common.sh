# Shared by the bench/ scripts (sourced, from the repository root).

# The run with the highest msgs_per_sec among the JSON lines on stdin.
best() { python3 -c 'import json,sys; r=[json.loads(l) for l in sys.stdin if l.startswith("{")]; b=max(r,key=lambda x:x["msgs_per_sec"]); print(json.dumps(b))'; }

# VENV: a venv with tests/interop/requirements.txt (Python kombu), made once — the same one
# scripts/test.sh makes for the interop tests.
python_venv() {
  local cache=${KOMBU_CACHE:-$HOME/.cache/kombu-wasm} req=tests/interop/requirements.txt
  VENV="$cache/venv-$(sha256sum "$req" | cut -c1-12)"
  if [ ! -f "$VENV/.complete" ]; then
    rm -rf "$VENV"; python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req" </dev/null
    touch "$VENV/.complete"
  fi
}

# Wait (up to 5 s) until something listens on 127.0.0.1:$1.
wait_port() { for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }

# The npm package's wasm (js/build.sh), or, with KOMBU_BENCH_PREBUILT=1, whatever js/wasm/
# already holds: re-running a benchmark on a loaded machine then skips the build's minutes.
build_wasm() {
  if [ "${KOMBU_BENCH_PREBUILT:-}" = 1 ]; then
    [ -f js/wasm/kombu_bg.wasm ] && [ -f js/wasm/kombu_ws_bg.wasm ] || { echo "KOMBU_BENCH_PREBUILT=1 but js/wasm/ has no build: run js/build.sh" >&2; exit 1; }
  else
    js/build.sh >/dev/null
  fi
}
