#!/usr/bin/env bash
# Hosted models: the added latency of serving a registered version through modelgate (the process
# runtime's replica, proxied) against calling that replica directly, in the same run; the cold
# start (a query to an entity scaled to zero, until its answer) against a warm query; and the
# embedded runtime's throughput with a real model (all-MiniLM-L6-v2, fetched by make), on the
# gateway's one core. The process replica is the mock upstream (--fast). Loopback only; ~2 min.
# DURATION=10s WARMUP=2s COLD_RUNS=5 BIN=DIR bench/hosting.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
COLD_RUNS=${COLD_RUNS:-5}
make -s .venv/models/all-MiniLM-L6-v2/model.safetensors
MODEL_DIR=$(cd .venv/models/all-MiniLM-L6-v2 && pwd)
start_servers
ABS_BIN=$(cd "$BIN" && pwd)
SRC="$WORK/model"
mkdir -p "$SRC" && echo "weights" > "$SRC/weights.bin"
# The gateway serves a second time with a short idle time, for the cold starts.
kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
TOKIO_WORKER_THREADS=1 MODELGATE_ADMIN_TOKEN=$TOKEN taskset -c "$GATEWAY_CPU" \
  "$BIN/modelgate" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --log-level warn --scale-to-zero-after 1s > "$WORK/gw2.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)
GW=$(wait_listen "$WORK/gw2.log")

curl -sf -H "$H" "$GW/api/2.0/registered-models" -d '{"name": "bench.echo"}' > /dev/null
curl -sf -H "$H" "$GW/api/2.0/registered-models/bench.echo/versions" -d "{\"source\": \"$SRC\", \"runtime\": \"process\",
  \"command\": [\"taskset\", \"-c\", \"$OTHER_CPU\", \"$ABS_BIN/modelgate-mock-upstream\", \"--fast\", \"--listen\", \"127.0.0.1:\$PORT\"]}" > /dev/null
curl -sf -H "$H" "$GW/api/2.0/registered-models" -d '{"name": "bench.minilm"}' > /dev/null
curl -sf -H "$H" "$GW/api/2.0/registered-models/bench.minilm/versions" -d "{\"source\": \"$MODEL_DIR\", \"runtime\": \"embedded\"}" > /dev/null
curl -sf -H "$H" "$GW/api/2.0/serving-endpoints" -d '{"name": "minilm", "config": {"served_entities": [{"name": "minilm",
  "entity_name": "bench.minilm", "entity_version": "1", "workload_size": "Small", "scale_to_zero_enabled": false}]}}' > /dev/null
for name in warm cold; do
  zero=$([ "$name" = cold ] && echo true || echo false)
  curl -sf -H "$H" "$GW/api/2.0/serving-endpoints" -d "{\"name\": \"$name\", \"config\": {\"served_entities\": [{\"name\": \"echo\",
    \"entity_name\": \"bench.echo\", \"entity_version\": \"1\", \"workload_size\": \"Large\", \"scale_to_zero_enabled\": $zero}]}}" > /dev/null
done
for _ in $(seq 1 300); do
  states=$(for n in warm cold minilm; do curl -sf -H "$H" "$GW/api/2.0/serving-endpoints/$n"; done | grep -c '"config_update":"NOT_UPDATING"' || true)
  [ "$states" = 3 ] && break; sleep 0.1
done
PORT=$(curl -sf -H "$H" "$GW/api/2.0/serving-endpoints/warm/served-models/echo/logs" | grep -o 'on port [0-9]*' | head -1 | awk '{print $3}')

CHAT='{"model":"warm","messages":[{"role":"user","content":"Is Santa real?"}],"max_tokens":100}'
load() { taskset -c "$OTHER_CPU" "$BIN/modelgate-loadgen" --duration "$DURATION" --warmup "$WARMUP" --token "$TOKEN" "$@"; }
echo "== added latency at 500 req/s: replica direct vs through modelgate" >&2
D=$(load --url "http://127.0.0.1:$PORT/v1/chat/completions" --body "$CHAT" --rate 500)
G=$(load --url "$GW/serving-endpoints/chat/completions" --body "$CHAT" --rate 500)
echo "== throughput, concurrency 16 (within a Large entity's 16 replicas x 4)" >&2
DT=$(load --url "http://127.0.0.1:$PORT/v1/chat/completions" --body "$CHAT" --concurrency 16)
GT=$(load --url "$GW/serving-endpoints/chat/completions" --body "$CHAT" --concurrency 16)

echo "== embeddings: one sentence per query, concurrency 4, the model on the gateway's core" >&2
EMBED='{"model":"minilm","input":"A man is eating a piece of bread in the park on a sunny afternoon.","encoding_format":"float"}'
E=$(load --url "$GW/serving-endpoints/embeddings" --body "$EMBED" --concurrency 4)
E8='{"model":"minilm","input":["a","b c","d e f","g h i j","k l m n o","p q r s t u","v w x y z","hello world"],"encoding_format":"float"}'
E8R=$(load --url "$GW/serving-endpoints/embeddings" --body "$E8" --concurrency 4)
echo "== cold starts" >&2
ask() { curl -sf -o /dev/null -w '%{time_total}' -H "$H" "$GW/serving-endpoints/cold/invocations" -d '{"messages": [{"role": "user", "content": "hi"}]}'; }
COLD=(); WARM=()
for _ in $(seq 1 "$COLD_RUNS"); do
  for _ in $(seq 1 100); do
    curl -sf -H "$H" "$GW/api/2.0/serving-endpoints/cold" | grep -q 'Scaled to zero' && break; sleep 0.1
  done
  COLD+=("$(ask)"); WARM+=("$(ask)")
done

python3 - "$D" "$G" "$DT" "$GT" "${COLD[*]}" "${WARM[*]}" "$DURATION" "$E" "$E8R" <<'PY'
import json, statistics, sys, datetime
d, g, dt, gt = (json.loads(a) for a in sys.argv[1:5])
e, e8 = json.loads(sys.argv[8]), json.loads(sys.argv[9])
cold = [float(x) * 1000 for x in sys.argv[5].split()]
warm = [float(x) * 1000 for x in sys.argv[6].split()]
ms = lambda us: f"{us / 1000:.3f}"
print(f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {sys.argv[7]} per phase; modelgate on 1 core, the replica (mock --fast) and the load generator on the other.\n")
print("| measure | unit | replica direct | through modelgate | ratio / added |")
print("|---|---|---|---|---|")
print(f"| latency p50 at 500 req/s | ms | {ms(d['p50_us'])} | {ms(g['p50_us'])} | added {ms(g['p50_us'] - d['p50_us'])} ms |")
print(f"| latency p99 at 500 req/s | ms | {ms(d['p99_us'])} | {ms(g['p99_us'])} | added {ms(g['p99_us'] - d['p99_us'])} ms |")
print(f"| throughput, c=16 | req/s | {dt['rps']:.0f} | {gt['rps']:.0f} | {gt['rps'] / max(dt['rps'], 1):.2f}x of direct |")
print(f"| errors | count | {d['errors'] + dt['errors']} | {g['errors'] + gt['errors']} | |")
print(f"| cold start: query to answer, median of {len(cold)} | ms | | {statistics.median(cold):.1f} | {statistics.median(cold) / max(statistics.median(warm), 0.001):.0f}x a warm query ({statistics.median(warm):.1f} ms) |")
print(f"| embedded all-MiniLM-L6-v2, 1 sentence per query, c=4 | sentences/s on 1 core | | {e['rps']:.0f} | p50 {ms(e['p50_us'])} ms, errors {e['errors']} |")
print(f"| embedded all-MiniLM-L6-v2, 8 short texts per query, c=4 | texts/s on 1 core | | {e8['rps'] * 8:.0f} | p50 {ms(e8['p50_us'])} ms per query, errors {e8['errors']} |")
PY
