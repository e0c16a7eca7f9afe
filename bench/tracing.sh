#!/usr/bin/env bash
# The cost of OpenTelemetry tracing: two gateways on the same core and the same mock, one without
# tracing (the default) and one exporting a trace of every query (ratio 1) to the mock's OTLP/HTTP
# route, queried in interleaved rounds (medians of in-round ratios: this machine's load drifts):
# throughput at concurrency 32 and latency at a fixed 500 req/s, non-streaming chat. Gateways
# pinned to one core, mock and load generator to the other. Loopback only; every phase is bounded
# by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
. bench/lib.sh
prepare
start_mock
start_gateway
create_endpoint bench
OFF=$GW
start_gateway --otlp-endpoint "$MOCK" --trace-export-interval 1s
create_endpoint bench
ON=$GW
sleep 0.5

load() { taskset -c "$OTHER_CPU" "$BIN/modelgate-loadgen" --duration "$DURATION" --warmup "$WARMUP" --token "$TOKEN" "$@"; }
CHAT='{"model":"bench","messages":[{"role":"user","content":"Is Santa real?"}],"max_tokens":100}'
ROUNDS=${ROUNDS:-3}
results=()
for round in $(seq "$ROUNDS"); do
  for phase in off on; do
    echo "== round $round: tracing $phase" >&2
    if [ "$phase" = off ]; then base=$OFF; else base=$ON; fi
    c32=$(load --url "$base/v1/chat/completions" --body "$CHAT" --concurrency 32)
    r500=$(load --url "$base/v1/chat/completions" --body "$CHAT" --rate 500)
    results+=("{\"round\": $round, \"phase\": \"$phase\", \"c32\": $c32, \"r500\": $r500}")
  done
done

python3 - "$DURATION" "$ROUNDS" "${results[@]}" <<'PY'
import json, sys, datetime, statistics
duration, rounds = sys.argv[1], int(sys.argv[2])
runs = [json.loads(x) for x in sys.argv[3:]]
by = {(r["round"], r["phase"]): r for r in runs}
med = statistics.median
ms = lambda us: f"{us / 1000:.3f}"
value = lambda p, phase, key: med(by[(i, p)][phase][key] for i in range(1, rounds + 1))
slower = med(by[(i, "off")]["c32"]["rps"] / max(by[(i, "on")]["c32"]["rps"], 1) for i in range(1, rounds + 1))
print(f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {duration} per phase, {rounds} interleaved rounds "
      "(medians; ratios within each round), chat on the mock.")
print()
print("| measure | tracing off (default) | tracing on (every query, OTLP/HTTP protobuf) |")
print("|---|---|---|")
print(f"| req/s at concurrency 32 | {value('off', 'c32', 'rps'):.0f} | {value('on', 'c32', 'rps'):.0f} ({slower:.2f}x slower) |")
lat = lambda p: f"{ms(value(p, 'r500', 'p50_us'))} / {ms(value(p, 'r500', 'p99_us'))}"
print(f"| p50 / p99 at 500 req/s, ms | {lat('off')} | {lat('on')} |")
errors = lambda p: sum(by[(i, p)][ph]["errors"] for i in range(1, rounds + 1) for ph in ("c32", "r500"))
print(f"| errors | {errors('off')} | {errors('on')} |")
PY
