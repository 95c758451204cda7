#!/usr/bin/env bash
# kombu-wasm against the other browser clients a web developer would pick, in one headless
# Chromium page, one client after another, the usual workload (N JSON messages of ~64 B to a
# direct exchange, then consumed with prefetch 100 and acked one by one), ROUNDS rounds
# interleaved (each round runs every client once):
#   - kombu-wasm over amqp+ws:// through a release kombu-gateway's /amqp relay to RabbitMQ,
#   - kombu-wasm over gateway+ws:// through the same gateway,
#   - @cloudamqp/amqp-client (AMQPWebSocketClient) through the same /amqp relay,
#   - @stomp/stompjs over RabbitMQ's Web-STOMP plugin (enabled here if it is not: it is
#     Debian's rabbitmq-server's rabbitmq_web_stomp, port 15674, path /ws).
# Then the download of each (gzipped) and the start-up in Chromium (import to first publish
# resolved, js/bench/startup.mjs). Measures whatever js/wasm/ holds after js/build.sh (or as
# it is, with KOMBU_BENCH_PREBUILT=1).
#
#   bench/browser_peers.sh [N] [ROUNDS] [AMQP_URL]
#     (default 20000, 3, amqp://guest:guest@127.0.0.1:5672//; vhost "/")
# Needs RabbitMQ, js/node_modules (npm ci in js/) and Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
N=${1:-20000}
ROUNDS=${2:-3}
AMQP=${3:-amqp://guest:guest@127.0.0.1:5672//}
STOMP_PORT=${STOMP_PORT:-15674}
die() { echo "bench/browser_peers.sh: $*" >&2; exit 1; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

CREDS=${AMQP#amqp://}; CREDS=${CREDS%%@*}
USER_=${CREDS%%:*}; PASS_=${CREDS#*:}
HOSTPORT=${AMQP#*@}; HOSTPORT=${HOSTPORT%%/*}
command -v node >/dev/null || die "node is not installed"
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || die "no Chromium at ${CHROMIUM:-/usr/bin/chromium} (apt-get install chromium, or set CHROMIUM)"
for m in @cloudamqp/amqp-client @stomp/stompjs playwright-core; do
  [ -d "js/node_modules/$m" ] || die "js/node_modules/$m is missing: run npm ci in js/"
done
(exec 3<>"/dev/tcp/${HOSTPORT%:*}/${HOSTPORT#*:}") 2>/dev/null || die "no AMQP broker at $HOSTPORT"
if ! listening "$STOMP_PORT"; then
  command -v rabbitmq-plugins >/dev/null || die "nothing on port $STOMP_PORT and no rabbitmq-plugins to enable Web-STOMP"
  echo "enabling RabbitMQ's Web-STOMP plugin (rabbitmq-plugins enable rabbitmq_web_stomp)" >&2
  rabbitmq-plugins enable rabbitmq_web_stomp >/dev/null || die "rabbitmq-plugins enable rabbitmq_web_stomp failed (run it as root)"
  for _ in $(seq 30); do listening "$STOMP_PORT" && break; sleep 1; done
  listening "$STOMP_PORT" || die "Web-STOMP does not listen on port $STOMP_PORT"
fi

cargo build -q --release -p kombu-gateway --bin kombu-gateway
build_wasm

WORK=$(mktemp -d)
GW=
cleanup() { [ -n "$GW" ] && kill "$GW" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$((20000 + RANDOM % 20000))
target/release/kombu-gateway --listen 127.0.0.1:$PORT --broker "$AMQP" >"$WORK/gateway.log" 2>&1 &
GW=$!
wait_port $PORT
listening $PORT || { cat "$WORK/gateway.log" >&2; die "kombu-gateway did not start on port $PORT"; }

load_before=$(uptime)
node js/bench/sizes.mjs >"$WORK/sizes" || die "js/bench/sizes.mjs failed"
node --experimental-websocket --no-warnings js/bench/peers.mjs --gateway 127.0.0.1:$PORT \
  --stomp "ws://127.0.0.1:$STOMP_PORT/ws" --n "$N" --runs "$ROUNDS" --user "$USER_" --password "$PASS_" \
  >"$WORK/peers" || { cat "$WORK/peers"; tail -20 "$WORK/gateway.log" >&2; die "a client failed (its line above says why)"; }
node js/bench/startup.mjs 7 --gateway 127.0.0.1:$PORT --stomp "ws://127.0.0.1:$STOMP_PORT/ws" \
  --user "$USER_" --password "$PASS_" >"$WORK/startup" || die "js/bench/startup.mjs failed"
load_after=$(uptime)

python3 - "$WORK" "$load_before" "$load_after" <<'PY'
import json, sys, os
work, before, after = sys.argv[1:4]
rows = lambda f: [json.loads(l) for l in open(os.path.join(work, f)) if l.startswith("{")]
peers, sizes, startup = rows("peers"), rows("sizes"), rows("startup")
clients = list(dict.fromkeys(r["client"] for r in peers))
by = {c: [r for r in peers if r["client"] == c] for c in clients}
print("workload: %d JSON messages (~64 B) to a direct exchange, consumed with prefetch 100, each acked; %s; %d rounds"
      % (peers[0]["messages"], peers[0]["browser"], max(r["run"] for r in peers)))
print("load average before:%s" % before.split("load average:")[1])
print("load average after: %s" % after.split("load average:")[1].strip())
for c in clients:
    v = [r["msgs_per_sec"] for r in by[c]]
    print("  %-26s %s msgs/s  (range %.0f–%.0f)" % (c, " / ".join("%6.0f" % x for x in v), min(v), max(v)))
print("kombu-wasm / peer (per round, then best / best):")
for k in [c for c in clients if c.startswith("kombu-wasm")]:
    for p in [c for c in clients if not c.startswith("kombu-wasm")]:
        per = [a["msgs_per_sec"] / b["msgs_per_sec"] for a, b in zip(by[k], by[p])]
        best = max(r["msgs_per_sec"] for r in by[k]) / max(r["msgs_per_sec"] for r in by[p])
        print("  %-26s / %-24s %.2f–%.2f×  (best %.2f×)" % (k, p, min(per), max(per), best))
print("download, gzip -9 (JavaScript minified by rolldown; as shipped in parentheses):")
for s in sizes:
    js = s["js_minified_gzip"] if s["js_minified_gzip"] is not None else s["js_shipped_gzip"]
    print("  %-26s %8d B total = wasm %7d + JS %6d  (JS as shipped %d)" % (s["client"], s["total_gzip"], s["wasm_gzip"], js, s["js_shipped_gzip"]))
print("start-up in Chromium, import to first publish resolved (new context per run, median / min of %d):" % startup[0]["runs"])
for s in startup:
    print("  %-26s %-42s %5d ms / %5d ms" % (s["module"], s["url"][:42], s["median_ms"], s["min_ms"]))
PY
