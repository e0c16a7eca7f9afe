# Shared by the bench scripts, sourced from the repository root. `start_servers` builds the release
# binaries (unless BIN names another build), starts the mock upstream (--fast) and modelgate
# pinned to their own cores, and creates the secret the benchmark endpoints use. It sets BIN,
# WORK, MOCK, MOCK_PID, GW, GW_PID, H and TOKEN, and every process stops when the script exits. The parts
# (`prepare`, `start_mock`, `start_gateway [serve flags]`, `stop_gateway`) serve scripts that run
# several gateways one after the other. Loopback addresses only.

GATEWAY_CPU=${GATEWAY_CPU:-0}
OTHER_CPU=${OTHER_CPU:-1}
TOKEN=mgt_bench_token_0123456789abcdefghijklmnop
# BIN=DIR runs the binaries in DIR (another build, kept for a before/after comparison) unbuilt.
BIN=${BIN:-target/release}
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "${WORK:-}"
}

wait_listen() { # file -> url
  for _ in $(seq 1 100); do
    if grep -q "listening on" "$1" 2>/dev/null; then grep -o 'http://[0-9.:]*' "$1" | head -1; return; fi
    sleep 0.1
  done
  echo "did not start: $(cat "$1")" >&2; exit 1
}

prepare() {
  if [ "$BIN" = target/release ]; then
    cargo build --release --locked -p modelgate -p modelgate-mock-upstream -p modelgate-loadgen >&2
  fi
  WORK=$(mktemp -d)
  trap cleanup EXIT
}

start_mock() {
  taskset -c "$OTHER_CPU" "$BIN/modelgate-mock-upstream" --fast --threads 1 --listen 127.0.0.1:0 > "$WORK/mock.log" 2>&1 &
  MOCK_PID=$!
  PIDS+=($MOCK_PID)
  MOCK=$(wait_listen "$WORK/mock.log")
}

# modelgate on its own core with a fresh data directory; arguments are more `serve` flags.
start_gateway() {
  local data="$WORK/data-${#PIDS[@]}"
  TOKIO_WORKER_THREADS=1 MODELGATE_ADMIN_TOKEN=$TOKEN taskset -c "$GATEWAY_CPU" \
    "$BIN/modelgate" serve --listen 127.0.0.1:0 --data-dir "$data" --log-level warn "$@" > "$WORK/gw.log" 2>&1 &
  GW_PID=$!
  PIDS+=($GW_PID)
  GW=$(wait_listen "$WORK/gw.log")
  H="Authorization: Bearer $TOKEN"
  curl -sf -H "$H" "$GW/api/2.0/secrets/scopes/create" -d '{"scope": "bench"}' > /dev/null
  curl -sf -H "$H" "$GW/api/2.0/secrets/put" -d '{"scope": "bench", "key": "k", "string_value": "sk-bench"}' > /dev/null
}

stop_gateway() {
  kill "$GW_PID" 2>/dev/null || true
  wait "$GW_PID" 2>/dev/null || true
  rm -f "$WORK/gw.log"
}

start_servers() {
  prepare
  start_mock
  start_gateway
}

# An OpenAI chat endpoint named $1 answered by the mock; $2, if given, is more top-level JSON
# (such as an "ai_gateway" member).
create_endpoint() {
  curl -sf -H "$H" "$GW/api/2.0/serving-endpoints" -d "{\"name\": \"$1\", \"config\": {\"served_entities\": [{\"external_model\": {
    \"provider\": \"openai\", \"name\": \"gpt-4o-mini\", \"task\": \"llm/v1/chat\",
    \"openai_config\": {\"openai_api_key\": \"{{secrets/bench/k}}\", \"openai_api_base\": \"$MOCK/v1\"}}}]}${2:+, $2}}" > /dev/null
}
