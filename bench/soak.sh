#!/usr/bin/env bash
# Memory over time: a fixed request rate for a long while against an endpoint with everything
# that keeps state per request turned on (a token rate limit, so the tokenizer is loaded; an
# inference table logging every payload; usage records), sampling modelgate's RSS.
#
#   bench/soak.sh                           # 3,000 req/s for 30 minutes, a sample a minute
#   RATE=1000 DURATION=5m EVERY=15 bench/soak.sh
#
# Prints the samples, then idle RSS before load, steady RSS, growth over the second half of the run
# in MiB/min (warm-up excluded), RSS after load stops, and errors and dropped records. Loopback only;
# bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-3000}
DURATION=${DURATION:-30m}
EVERY=${EVERY:-60}
. bench/lib.sh
start_servers
create_endpoint soak '"ai_gateway": {"rate_limits": [{"key": "endpoint", "tokens": 1000000000000, "renewal_period": "minute"}],
  "inference_table_config": {"enabled": true, "catalog_name": "bench", "schema_name": "logs"}}'
sleep 0.5
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$GW_PID/status"; }
IDLE=$(rss_kb)

BODY='{"model":"soak","messages":[{"role":"user","content":"Is Santa real?"}],"max_tokens":100}'
taskset -c "$OTHER_CPU" "$BIN/modelgate-loadgen" --duration "$DURATION" --warmup 1s --token "$TOKEN" \
  --url "$GW/serving-endpoints/chat/completions" --body "$BODY" --rate "$RATE" > "$WORK/load.json" &
LOAD=$!
: > "$WORK/samples"
START=$(date +%s)
while kill -0 "$LOAD" 2>/dev/null; do
  sleep "$EVERY"
  kill -0 "$LOAD" 2>/dev/null || break
  echo "$(( $(date +%s) - START )) $(rss_kb)" | tee -a "$WORK/samples" >&2
done
wait "$LOAD"
sleep 2
AFTER=$(rss_kb)
DROPPED=$(curl -sf -H "$H" "$GW/metrics" | awk '/^writer_dropped_total/ {s += $2} END {print s + 0}')

python3 - "$WORK/samples" "$WORK/load.json" "$IDLE" "$AFTER" "$DROPPED" "$RATE" "$DURATION" <<'PY'
import json, sys, datetime
samples = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
load = json.load(open(sys.argv[2]))
idle, after = float(sys.argv[3]) / 1024, float(sys.argv[4]) / 1024
half = samples[len(samples) // 2:] or samples
steady = sum(r for _, r in half) / len(half) / 1024 if half else 0
if len(half) >= 2 and half[-1][0] > half[0][0]:
    growth = (half[-1][1] - half[0][1]) / 1024 / ((half[-1][0] - half[0][0]) / 60)
else:
    growth = 0.0
print(f"Soak {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: {sys.argv[6]} req/s for {sys.argv[7]}, modelgate on 1 core.\n")
print("| measure | value |")
print("|---|---|")
print(f"| requests answered / errors | {load['all']} / {load['errors']} |")
print(f"| latency p50 / p99 | {load['p50_us'] / 1000:.3f} / {load['p99_us'] / 1000:.3f} ms |")
print(f"| RSS idle, before load | {idle:.1f} MB |")
print(f"| RSS steady (mean of the second half) | {steady:.1f} MB |")
print(f"| RSS growth over the second half | {growth:+.3f} MB/min |")
print(f"| RSS after load stops | {after:.1f} MB |")
print(f"| usage and inference records dropped | {sys.argv[5]} |")
print("\nSamples (seconds, RSS MB): " + ", ".join(f"{t:.0f}: {r / 1024:.1f}" for t, r in samples))
PY
