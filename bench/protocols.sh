#!/usr/bin/env bash
# The cost of answering in another protocol: the same chat endpoint (OpenAI behind it, the mock)
# queried as an OpenAI chat completion (passed through), as Anthropic Messages and as an OpenAI
# Response (both translated in and back), in one run: throughput at concurrency 32 and latency at
# a fixed 500 req/s, whole answers and streams. Gateway pinned to one core, mock and load
# generator to the other. Loopback only; every phase is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
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
declare -A R
for p in openai anthropic responses; do
  echo "== $p" >&2
  R[$p.c32]=$(load --url "${URL[$p]}" --body "${BODY[$p]}" --concurrency 32)
  R[$p.r500]=$(load --url "${URL[$p]}" --body "${BODY[$p]}" --rate 500)
  stream=${BODY[$p]%\}},\"stream\":true}
  R[$p.stream]=$(load --url "${URL[$p]}" --body "$stream" --concurrency 8 --stream)
done

python3 - "${R[openai.c32]}" "${R[openai.r500]}" "${R[openai.stream]}" "${R[anthropic.c32]}" "${R[anthropic.r500]}" \
  "${R[anthropic.stream]}" "${R[responses.c32]}" "${R[responses.r500]}" "${R[responses.stream]}" "$DURATION" <<'PY'
import json, sys, datetime
o1, o2, o3, a1, a2, a3, r1, r2, r3 = (json.loads(x) for x in sys.argv[1:10])
ms = lambda us: f"{us / 1000:.3f}"
print(f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {sys.argv[10]} per phase, one chat endpoint (OpenAI on the mock).")
print()
print("| measure | OpenAI chat (passed through) | Anthropic Messages | OpenAI Responses |")
print("|---|---|---|---|")
print(f"| req/s at concurrency 32 | {o1['rps']:.0f} | {a1['rps']:.0f} ({o1['rps'] / max(a1['rps'], 1):.2f}x slower) | {r1['rps']:.0f} ({o1['rps'] / max(r1['rps'], 1):.2f}x slower) |")
print(f"| p50 / p99 at 500 req/s, ms | {ms(o2['p50_us'])} / {ms(o2['p99_us'])} | {ms(a2['p50_us'])} / {ms(a2['p99_us'])} | {ms(r2['p50_us'])} / {ms(r2['p99_us'])} |")
print(f"| streaming: req/s at concurrency 8 | {o3['rps']:.0f} | {a3['rps']:.0f} ({o3['rps'] / max(a3['rps'], 1):.2f}x slower) | {r3['rps']:.0f} ({o3['rps'] / max(r3['rps'], 1):.2f}x slower) |")
print(f"| streaming: time to first byte p50, ms | {ms(o3['ttfb_p50_us'])} | {ms(a3['ttfb_p50_us'])} | {ms(r3['ttfb_p50_us'])} |")
print(f"| errors | {o1['errors'] + o2['errors'] + o3['errors']} | {a1['errors'] + a2['errors'] + a3['errors']} | {r1['errors'] + r2['errors'] + r3['errors']} |")
PY
