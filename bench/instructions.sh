#!/usr/bin/env bash
# Instructions the gateway executes per request, counted by valgrind's callgrind: repeatable to
# about 1 % whatever else the machine does, so two builds can be compared on a noisy machine where
# wall-clock figures move by 30 %.
#
#   bench/instructions.sh                    # this checkout's release build
#   bench/instructions.sh OTHER/target/release   # another build (e.g. a worktree of an older commit)
#
# Runs `modelgate serve` under callgrind (one tokio worker) in front of the mock upstream, sends
# SMALL and then LARGE sequential keep-alive chat requests in two separate runs, and prints
# (instructions(LARGE) - instructions(SMALL)) / (LARGE - SMALL): startup and shutdown cancel out.
# Loopback only; needs valgrind, curl and python3. KEEP=DIR keeps the profiles for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${1:-target/release}
SMALL=${SMALL:-200}
LARGE=${LARGE:-1200}
TOKEN=mgt_bench_token_0123456789abcdefghijklmnop
[ "$BIN" = target/release ] && cargo build --release --locked -p modelgate -p modelgate-mock-upstream >&2
MOCK_BIN=target/release/modelgate-mock-upstream
[ -x "$MOCK_BIN" ] || cargo build --release --locked -p modelgate-mock-upstream >&2

count() { # requests -> total instructions of the gateway process
  local n=$1 work
  work=$(mktemp -d)
  "$MOCK_BIN" --fast --threads 1 --listen 127.0.0.1:0 > "$work/mock.log" 2>&1 &
  local mock_pid=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$work/mock.log" && break; sleep 0.1; done
  local mock
  mock=$(grep -o 'http://[0-9.:]*' "$work/mock.log" | head -1)
  TOKIO_WORKER_THREADS=1 MODELGATE_ADMIN_TOKEN=$TOKEN valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
    "$BIN/modelgate" serve --listen 127.0.0.1:0 --data-dir "$work/data" --log-level warn --alert-interval 1h \
    > "$work/gw.log" 2>&1 &
  local gw_pid=$!
  for _ in $(seq 1 600); do grep -q "listening on" "$work/gw.log" && break; sleep 0.1; done
  local gw h
  gw=$(grep -o 'http://[0-9.:]*' "$work/gw.log" | head -1)
  h="Authorization: Bearer $TOKEN"
  curl -sf -H "$h" "$gw/api/2.0/secrets/scopes/create" -d '{"scope": "bench"}' > /dev/null
  curl -sf -H "$h" "$gw/api/2.0/secrets/put" -d '{"scope": "bench", "key": "k", "string_value": "sk-bench"}' > /dev/null
  curl -sf -H "$h" "$gw/api/2.0/serving-endpoints" -d "{\"name\": \"bench\", \"config\": {\"served_entities\": [{\"external_model\": {
    \"provider\": \"openai\", \"name\": \"gpt-4o-mini\", \"task\": \"llm/v1/chat\",
    \"openai_config\": {\"openai_api_key\": \"{{secrets/bench/k}}\", \"openai_api_base\": \"$mock/v1\"}}}]}}" > /dev/null
  sleep 2
  python3 - "$gw" "$TOKEN" "$n" <<'PY'
import http.client, sys, urllib.parse
url, token, n = urllib.parse.urlparse(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection(url.hostname, url.port)
body = b'{"model":"bench","messages":[{"role":"user","content":"Is Santa real?"}],"max_tokens":100}'
for _ in range(n):
    conn.request("POST", "/serving-endpoints/chat/completions", body,
                 {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    assert r.status == 200, r.status
PY
  kill -TERM "$gw_pid"; wait "$gw_pid" || true
  kill "$mock_pid" 2>/dev/null || true
  grep -E '^(summary|totals):' "$work/cg.out" | head -1 | awk '{print $2}'
  # KEEP=DIR keeps each run's callgrind profile (for callgrind_annotate) as DIR/cg-N.out.
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$work/cg.out" "$KEEP/cg-$n.out"; fi
  rm -rf "$work"
}

small=$(count "$SMALL")
large=$(count "$LARGE")
echo "$(( (large - small) / (LARGE - SMALL) )) instructions per request ($BIN; $SMALL and $LARGE requests: $small and $large in all)"
