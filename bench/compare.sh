#!/usr/bin/env bash
# Before/after on a noisy machine: two builds of modelgate (BEFORE and AFTER, directories holding
# their release binaries) run side by side on the same core against the same mock, and are queried
# in alternating rounds, so a drift of the machine's load hits both alike. Per round: throughput
# at concurrency 32 (with CPU time per request) and latency at a fixed 500 req/s, non-streaming
# chat on a bare endpoint; the report gives medians of the in-round ratios.
#   bench/compare.sh /tmp/base-target/release target/release
# The mock and the load generator come from AFTER. Loopback only; every phase is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."

BEFORE=${1:?usage: bench/compare.sh BEFORE_BIN_DIR AFTER_BIN_DIR}
AFTER=${2:?usage: bench/compare.sh BEFORE_BIN_DIR AFTER_BIN_DIR}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
BIN=$AFTER
. bench/lib.sh
prepare
start_mock
BIN=$BEFORE start_gateway
create_endpoint bench
GW_BEFORE=$GW; PID_BEFORE=$GW_PID
BIN=$AFTER start_gateway
create_endpoint bench
GW_AFTER=$GW; PID_AFTER=$GW_PID
sleep 0.5

load() { taskset -c "$OTHER_CPU" "$AFTER/modelgate-loadgen" --duration "$DURATION" --warmup "$WARMUP" --token "$TOKEN" "$@"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CHAT='{"model":"bench","messages":[{"role":"user","content":"Is Santa real?"}],"max_tokens":100}'
ROUNDS=${ROUNDS:-5}
results=()
for round in $(seq "$ROUNDS"); do
  for which in before after; do
    echo "== round $round: $which" >&2
    if [ "$which" = before ]; then url=$GW_BEFORE; pid=$PID_BEFORE; else url=$GW_AFTER; pid=$PID_AFTER; fi
    t0=$(ticks "$pid")
    c32=$(load --url "$url/v1/chat/completions" --body "$CHAT" --concurrency 32)
    t1=$(ticks "$pid")
    r500=$(load --url "$url/v1/chat/completions" --body "$CHAT" --rate 500)
    results+=("{\"round\": $round, \"which\": \"$which\", \"ticks\": $((t1 - t0)), \"c32\": $c32, \"r500\": $r500}")
  done
done

python3 - "$DURATION" "$ROUNDS" "$(getconf CLK_TCK)" "$BEFORE" "$AFTER" "${results[@]}" <<'PY'
import json, sys, datetime, statistics
duration, rounds, tick, before, after = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
runs = [json.loads(x) for x in sys.argv[6:]]
by = {(r["round"], r["which"]): r for r in runs}
med = statistics.median
R = range(1, rounds + 1)
cpu = lambda r: r["ticks"] / tick * 1e6 / max(r["c32"]["all"], 1)
value = lambda w, f: med(f(by[(i, w)]) for i in R)
ratio = lambda f: med(f(by[(i, "after")]) / max(f(by[(i, "before")]), 1e-9) for i in R)
rps = lambda r: r["c32"]["rps"]
p50 = lambda r: r["r500"]["p50_us"]
p99 = lambda r: r["r500"]["p99_us"]
print(f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {duration} per phase, {rounds} alternating rounds "
      f"(medians; ratios within each round). Before: {before}; after: {after}.")
print()
print("| measure | before | after | after / before |")
print("|---|---|---|---|")
print(f"| req/s at concurrency 32 | {value('before', rps):.0f} | {value('after', rps):.0f} | {ratio(rps):.3f} |")
print(f"| CPU per request at concurrency 32, µs | {value('before', cpu):.1f} | {value('after', cpu):.1f} | {ratio(cpu):.3f} |")
print(f"| p50 at 500 req/s, ms | {value('before', p50) / 1000:.3f} | {value('after', p50) / 1000:.3f} | {ratio(p50):.3f} |")
print(f"| p99 at 500 req/s, ms | {value('before', p99) / 1000:.3f} | {value('after', p99) / 1000:.3f} | {ratio(p99):.3f} |")
errors = lambda w: sum(by[(i, w)][ph]["errors"] for i in R for ph in ("c32", "r500"))
print(f"| errors | {errors('before')} | {errors('after')} | |")
PY
