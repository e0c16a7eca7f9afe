#!/usr/bin/env bash
# The cost of answering in another protocol: the same chat endpoint (OpenAI behind it, the mock)
# queried as an OpenAI chat completion (passed through), as Anthropic Messages and as an OpenAI
# Response (both translated in and back), in one run: throughput at concurrency 32 and latency at
# a fixed 500 req/s, whole answers and streams. Gateway pinned to one core, mock and load
# generator to the other. Loopback only; every phase is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
. bench/lib.sh
start_servers
create_endpoint bench
sleep 0.5

load() { taskset -c "$OTHER_CPU" "$BIN/modelgate-loadgen" --duration "$DURATION" --warmup "$WARMUP" --token "$TOKEN" "$@"; }
MSG='"messages":[{"role":"user","content":"Is Santa real?"}]'
declare -A URL=([openai]="$GW/v1/chat/completions" [anthropic]="$GW/v1/messages" [responses]="$GW/v1/responses")
declare -A BODY=(
  [openai]="{\"model\":\"bench\",$MSG,\"max_tokens\":100}"
  [anthropic]="{\"model\":\"bench\",$MSG,\"max_tokens\":100}"
  [responses]="{\"model\":\"bench\",\"input\":\"Is Santa real?\",\"max_output_tokens\":100}"
)
# Rounds alternate the three protocols, and each ratio is taken within its round: this machine's
# load drifts over minutes, and a protocol measured a minute after another would carry the drift.
ROUNDS=${ROUNDS:-3}
results=()
for round in $(seq "$ROUNDS"); do
  for p in openai anthropic responses; do
    echo "== round $round: $p" >&2
    c32=$(load --url "${URL[$p]}" --body "${BODY[$p]}" --concurrency 32)
    r500=$(load --url "${URL[$p]}" --body "${BODY[$p]}" --rate 500)
    stream=${BODY[$p]%\}},\"stream\":true}
    s8=$(load --url "${URL[$p]}" --body "$stream" --concurrency 8 --stream)
    results+=("{\"round\": $round, \"protocol\": \"$p\", \"c32\": $c32, \"r500\": $r500, \"stream\": $s8}")
  done
done

python3 - "$DURATION" "$ROUNDS" "${results[@]}" <<'PY'
import json, sys, datetime, statistics
duration, rounds = sys.argv[1], int(sys.argv[2])
runs = [json.loads(x) for x in sys.argv[3:]]
by = {(r["round"], r["protocol"]): r for r in runs}
med = statistics.median
ms = lambda us: f"{us / 1000:.3f}"
def value(p, phase, key):
    return med(by[(i, p)][phase][key] for i in range(1, rounds + 1))
def slower(p, phase):
    # Per round: the protocol's throughput against OpenAI's in the same round; then the median.
    return med(by[(i, "openai")][phase]["rps"] / max(by[(i, p)][phase]["rps"], 1) for i in range(1, rounds + 1))
print(f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {duration} per phase, {rounds} interleaved rounds "
      "(medians; ratios within each round), one chat endpoint (OpenAI on the mock).")
print()
print("| measure | OpenAI chat (passed through) | Anthropic Messages | OpenAI Responses |")
print("|---|---|---|---|")
cells = lambda phase: " | ".join(f"{value(p, phase, 'rps'):.0f} ({slower(p, phase):.2f}x slower)" for p in ("anthropic", "responses"))
print(f"| req/s at concurrency 32 | {value('openai', 'c32', 'rps'):.0f} | {cells('c32')} |")
lat = lambda p: f"{ms(value(p, 'r500', 'p50_us'))} / {ms(value(p, 'r500', 'p99_us'))}"
print(f"| p50 / p99 at 500 req/s, ms | {lat('openai')} | {lat('anthropic')} | {lat('responses')} |")
print(f"| streaming: req/s at concurrency 8 | {value('openai', 'stream', 'rps'):.0f} | {cells('stream')} |")
print(f"| streaming: time to first byte p50, ms | " + " | ".join(ms(value(p, 'stream', 'ttfb_p50_us')) for p in ("openai", "anthropic", "responses")) + " |")
errors = lambda p: sum(by[(i, p)][ph]["errors"] for i in range(1, rounds + 1) for ph in ("c32", "r500", "stream"))
print(f"| errors | {errors('openai')} | {errors('anthropic')} | {errors('responses')} |")
PY
