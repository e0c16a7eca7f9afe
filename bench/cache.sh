#!/usr/bin/env bash
# The response cache's worth: the same chat endpoint (OpenAI behind it, the mock) with
# ai_gateway.cache_config on, queried with a body that repeats (every query after the first is a
# hit) and with a body made unique per query (every query a miss: looked up, sent to the provider,
# stored), and an endpoint without a cache as the baseline. Throughput at concurrency 32 and
# latency at a fixed 500 req/s, in interleaved rounds (medians of in-round ratios: this machine's
# load drifts). Gateway pinned to one core, mock and load generator to the other. Loopback only;
# every phase is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
. bench/lib.sh
start_servers
create_endpoint bench
create_endpoint cached '"ai_gateway": {"cache_config": {"enabled": true, "ttl_seconds": 3600}}'
sleep 0.5

load() { taskset -c "$OTHER_CPU" "$BIN/modelgate-loadgen" --duration "$DURATION" --warmup "$WARMUP" --token "$TOKEN" "$@"; }
ticks() { awk '{print $14 + $15}' "/proc/$GW_PID/stat"; }
URL="$GW/v1/chat/completions"
ask() { echo "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"$2\"}],\"max_tokens\":100,\"temperature\":0}"; }
ROUNDS=${ROUNDS:-3}
results=()
for round in $(seq "$ROUNDS"); do
  for phase in none miss hit; do
    echo "== round $round: $phase" >&2
    case $phase in
      none) args=(--body "$(ask bench 'Is Santa real?')") ;;
      miss) args=(--body "$(ask cached 'Is Santa real? (query %N%)')" --unique) ;;
      hit) args=(--body "$(ask cached 'Is Santa real?')") ;;
    esac
    t0=$(ticks)
    c32=$(load --url "$URL" "${args[@]}" --concurrency 32)
    t1=$(ticks)
    r500=$(load --url "$URL" "${args[@]}" --rate 500)
    results+=("{\"round\": $round, \"phase\": \"$phase\", \"ticks\": $((t1 - t0)), \"c32\": $c32, \"r500\": $r500}")
  done
done
HITS=$(curl -sf -H "$H" "$GW/metrics" | awk '/^cache_lookup_count_total.*result="hit"/ {print $2}')
MISSES=$(curl -sf -H "$H" "$GW/metrics" | awk '/^cache_lookup_count_total.*result="miss"/ {print $2}')

python3 - "$DURATION" "$ROUNDS" "${HITS:-0}" "${MISSES:-0}" "$(getconf CLK_TCK)" "${results[@]}" <<'PY'
import json, sys, datetime, statistics
duration, rounds, hits, misses, tick = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
runs = [json.loads(x) for x in sys.argv[6:]]
by = {(r["round"], r["phase"]): r for r in runs}
med = statistics.median
ms = lambda us: f"{us / 1000:.3f}"
value = lambda p, phase, key: med(by[(i, p)][phase][key] for i in range(1, rounds + 1))
faster = lambda p, q, phase: med(by[(i, p)][phase]["rps"] / max(by[(i, q)][phase]["rps"], 1) for i in range(1, rounds + 1))
quicker = lambda p, q: med(by[(i, q)]["r500"]["p50_us"] / max(by[(i, p)]["r500"]["p50_us"], 1) for i in range(1, rounds + 1))
print(f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {duration} per phase, {rounds} interleaved rounds "
      "(medians; ratios within each round), chat with temperature 0 on the mock.")
print()
print("| measure | no cache | cache miss (unique queries) | cache hit (repeated query) |")
print("|---|---|---|---|")
print(f"| req/s at concurrency 32 | {value('none', 'c32', 'rps'):.0f} | {value('miss', 'c32', 'rps'):.0f} | {value('hit', 'c32', 'rps'):.0f} |")
cpu = lambda p: med(by[(i, p)]["ticks"] / tick * 1e6 / max(by[(i, p)]["c32"]["all"], 1) for i in range(1, rounds + 1))
print(f"| gateway CPU per request at concurrency 32, µs | {cpu('none'):.1f} | {cpu('miss'):.1f} | {cpu('hit'):.1f} |")
lat = lambda p: f"{ms(value(p, 'r500', 'p50_us'))} / {ms(value(p, 'r500', 'p99_us'))}"
print(f"| p50 / p99 at 500 req/s, ms | {lat('none')} | {lat('miss')} | {lat('hit')} |")
errors = lambda p: sum(by[(i, p)][ph]["errors"] for i in range(1, rounds + 1) for ph in ("c32", "r500"))
print(f"| errors | {errors('none')} | {errors('miss')} | {errors('hit')} |")
print()
print(f"Hit vs miss: {faster('hit', 'miss', 'c32'):.2f}x the throughput, p50 at 500 req/s {quicker('hit', 'miss'):.2f}x lower "
      f"(target: at least 2x). Miss vs no cache: {faster('miss', 'none', 'c32'):.2f}x the throughput. "
      f"Gateway CPU per request, miss / hit: {cpu('miss') / max(cpu('hit'), 1e-9):.2f}x. Server counted {hits} hits and {misses} misses.")
PY
