#!/usr/bin/env bash
# Where the gateway's CPU goes: runs bench/run.sh's phase-1 load (closed loop, concurrency 32,
# non-streaming chat) against one endpoint and samples `modelgate serve` with `perf record
# --call-graph dwarf`, then prints the functions with the most self time and the most inclusive
# time. ENDPOINT_JSON adds top-level JSON to the endpoint (an "ai_gateway" member, say) to profile
# a policed or logged endpoint instead of the bare one.
#
#   bench/profile.sh                 # the bare endpoint, 8 s of samples
#   SECONDS_SAMPLED=15 TOP=60 bench/profile.sh
#   PERF_DATA=/tmp/gw.perf bench/profile.sh   # keep the samples for `perf report -i`
#
# Needs `perf` (Debian: linux-perf) and a kernel that lets this user sample its own processes
# (`kernel.perf_event_paranoid` at most 2). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_SAMPLED=${SECONDS_SAMPLED:-8}
TOP=${TOP:-40}
. bench/lib.sh
start_servers
create_endpoint bench "${ENDPOINT_JSON:-}"
PERF_DATA=${PERF_DATA:-$WORK/perf.data}
CHAT='{"model":"bench","messages":[{"role":"user","content":"Is Santa real?"}],"max_tokens":100}'

taskset -c "$OTHER_CPU" "$BIN/modelgate-loadgen" --url "$GW/serving-endpoints/chat/completions" --token "$TOKEN" \
  --body "$CHAT" --concurrency 32 --warmup 2s --duration "$((SECONDS_SAMPLED + 4))s" > "$WORK/load.json" &
LOAD=$!
sleep 3
perf record -F 499 --call-graph dwarf,16384 -o "$PERF_DATA" -p "$GW_PID" -- sleep "$SECONDS_SAMPLED" 2> "$WORK/perf.log" > /dev/null
wait "$LOAD"
echo "load: $(cat "$WORK/load.json")"
echo
echo "== self time, top $TOP"
perf report -i "$PERF_DATA" --no-children --sort symbol --percent-limit 0.3 --stdio -g none 2> /dev/null \
  | grep -v '^#' | grep -v '^$' | sed 's/  *-  *-  *$//' | cut -c1-150 | head -n "$TOP"
echo
echo "== inclusive time (callee included), top $TOP"
perf report -i "$PERF_DATA" --children --sort symbol --percent-limit 1 --stdio -g none 2> /dev/null \
  | grep -v '^#' | grep -v '^$' | sed 's/  *-  *-  *$//' | cut -c1-170 | head -n "$TOP"
