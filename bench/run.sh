#!/usr/bin/env bash
# Reproduces the benchmark figures in bench/README.md.
#
# Pins modelgate to one core (one tokio worker) and the mock upstream plus the load generator to
# the other, then measures the same load direct-to-mock and through modelgate in one run:
#   1. throughput, closed loop, concurrency 32, non-streaming chat;
#   2. latency at a fixed 500 req/s (open loop), non-streaming chat: added p50/p99;
#   3. streaming time to first byte, concurrency 8;
#   4. phases 1 and 2 again with a non-admin token that holds CAN_QUERY through a group (the
#      "governed" caller: permission checks on every request);
#   5. phases 1 to 3 against an endpoint with a rate limit (calls and tokens, never reached) and
#      PII masking on input and output (the "policed" endpoint);
#   6. phases 1 to 3 against an endpoint logging every payload to its inference table (the
#      "logged" endpoint);
#   7. overload: open loop at twice phase 1's throughput through modelgate: every request is
#      answered or shed (503/429) quickly, nothing queues without bound. Usage records are written
#      for every query in every phase;
# the gateway's 1-3 figures relative to direct show their cost against earlier runs.
# plus modelgate's CPU time per request and its resident memory.
# Only loopback addresses are used; every phase is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
. bench/lib.sh
start_servers
create_endpoint bench
create_endpoint policed '"ai_gateway": {"rate_limits": [{"key": "endpoint", "calls": 100000000, "tokens": 1000000000000, "renewal_period": "minute"}],
  "guardrails": {"input": {"pii": {"behavior": "MASK"}}, "output": {"pii": {"behavior": "MASK"}}}}'
create_endpoint logged '"ai_gateway": {"inference_table_config": {"enabled": true, "catalog_name": "bench", "schema_name": "logs", "sampling_fraction": 1}}'
GROUP_ID=$(curl -sf -H "$H" "$GW/api/2.0/preview/scim/v2/Groups" -d '{"displayName": "bench-callers"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
curl -sf -H "$H" "$GW/api/2.0/preview/scim/v2/Users" -d "{\"userName\": \"bench@example.com\", \"groups\": [{\"value\": \"$GROUP_ID\"}]}" > /dev/null
curl -sf -H "$H" -X PATCH "$GW/api/2.0/permissions/serving-endpoints/bench" \
  -d '{"access_control_list": [{"group_name": "bench-callers", "permission_level": "CAN_QUERY"}]}' > /dev/null
USER_TOKEN=$(curl -sf -H "$H" "$GW/api/2.0/token-management/on-behalf-of/tokens" -d '{"user_name": "bench@example.com"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token_value"])')
sleep 0.5

CHAT='{"model":"bench","messages":[{"role":"user","content":"Is Santa real?"}],"max_tokens":100}'
STREAM='{"model":"bench","messages":[{"role":"user","content":"Is Santa real?"}],"max_tokens":100,"stream":true}'
DIRECT_URL="$MOCK/v1/chat/completions"
GW_URL="$GW/serving-endpoints/chat/completions"

load() { taskset -c "$OTHER_CPU" "$BIN/modelgate-loadgen" --duration "$DURATION" --warmup "$WARMUP" --token "${LOAD_TOKEN:-$TOKEN}" "$@"; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/${1:-$GW_PID}/stat"; }
TICK=$(getconf CLK_TCK)

echo "== 1. throughput, concurrency 32" >&2
M0=$(cpu_ticks "$MOCK_PID")
D1=$(load --url "$DIRECT_URL" --body "$CHAT" --concurrency 32)
M1=$(cpu_ticks "$MOCK_PID")
C0=$(cpu_ticks)
G1=$(load --url "$GW_URL" --body "$CHAT" --concurrency 32)
C1=$(cpu_ticks)
echo "== 2. fixed 500 req/s" >&2
D2=$(load --url "$DIRECT_URL" --body "$CHAT" --rate 500)
G2=$(load --url "$GW_URL" --body "$CHAT" --rate 500)
echo "== 3. streaming, concurrency 8" >&2
D3=$(load --url "$DIRECT_URL" --body "$STREAM" --concurrency 8 --stream)
G3=$(load --url "$GW_URL" --body "$STREAM" --concurrency 8 --stream)
echo "== 4. governed caller (CAN_QUERY through a group)" >&2
U1=$(LOAD_TOKEN=$USER_TOKEN load --url "$GW_URL" --body "$CHAT" --concurrency 32)
U2=$(LOAD_TOKEN=$USER_TOKEN load --url "$GW_URL" --body "$CHAT" --rate 500)
echo "== 5. policed endpoint (rate limit + PII masking)" >&2
P_CHAT=${CHAT/\"bench\"/\"policed\"}
P_STREAM=${STREAM/\"bench\"/\"policed\"}
P1=$(load --url "$GW_URL" --body "$P_CHAT" --concurrency 32)
P2=$(load --url "$GW_URL" --body "$P_CHAT" --rate 500)
P3=$(load --url "$GW_URL" --body "$P_STREAM" --concurrency 8 --stream)
echo "== 6. logged endpoint (every payload to the inference table)" >&2
L_CHAT=${CHAT/\"bench\"/\"logged\"}
L_STREAM=${STREAM/\"bench\"/\"logged\"}
L1=$(load --url "$GW_URL" --body "$L_CHAT" --concurrency 32)
L2=$(load --url "$GW_URL" --body "$L_CHAT" --rate 500)
L3=$(load --url "$GW_URL" --body "$L_STREAM" --concurrency 8 --stream)
# Steady memory: every endpoint used, the tokenizer loaded (the policed endpoint's token limit).
STEADY_KB=$(awk '/VmRSS/ {print $2}' "/proc/$GW_PID/status")
echo "== 7. overload: open loop at twice the closed-loop throughput" >&2
W6=$(date +%s.%N); C6=$(cpu_ticks); M6=$(cpu_ticks "$MOCK_PID")
O1=$(load --url "$GW_URL" --body "$CHAT" --rate "$(field "$G1" rps | awk '{printf "%d", $1 * 2}')")
W7=$(date +%s.%N); C7=$(cpu_ticks); M7=$(cpu_ticks "$MOCK_PID")
# How busy each core was in phase 7: whether the gateway or the client side was the bottleneck.
BUSY=$(awk -v w0="$W6" -v w1="$W7" -v g="$((C7 - C6))" -v m="$((M7 - M6))" -v l="$(field "$O1" cpu_ticks)" -v t="$TICK" \
  'BEGIN {s = w1 - w0; printf "%.0f %% / %.0f %% + %.0f %%", 100 * g / t / s, 100 * m / t / s, 100 * l / t / s}')
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$GW_PID/status")
DROPPED=$(curl -sf -H "$H" "$GW/metrics" | awk '/^writer_dropped_total/ {s += $2} END {print s + 0}')
HWM_KB=$(awk '/VmHWM/ {print $2}' "/proc/$GW_PID/status")

python3 - "$D1" "$G1" "$D2" "$G2" "$D3" "$G3" "$C0" "$C1" "$TICK" "$RSS_KB" "$HWM_KB" "$DURATION" "$U1" "$U2" "$P1" "$P2" "$P3" "$L1" "$L2" "$L3" "$DROPPED" "$M0" "$M1" "$O1" "$STEADY_KB" "$BUSY" <<'PY'
import json, sys, datetime
d1, g1, d2, g2, d3, g3 = (json.loads(a) for a in sys.argv[1:7])
c0, c1, tick, rss, hwm = (float(a) for a in sys.argv[7:12])
duration = sys.argv[12]
u1, u2 = (json.loads(a) for a in sys.argv[13:15])
p1, p2, p3 = (json.loads(a) for a in sys.argv[15:18])
l1, l2, l3 = (json.loads(a) for a in sys.argv[18:21])
dropped = sys.argv[21]
m0, m1 = (float(a) for a in sys.argv[22:24])
o1 = json.loads(sys.argv[24])
steady = float(sys.argv[25])
busy = sys.argv[26]
added = lambda g, d, k: max(g[k] - d[k], 1)
# The CPU delta covers warm-up and measured requests alike, so divide by all of them.
cpu_us = (c1 - c0) / tick * 1e6 / max(g1["all"], 1)
# The mock's CPU per response while it answered the load directly (phase 1, direct): what one
# HTTP exchange costs a minimal server on this machine, the yardstick of the gateway's figure.
mock_us = (m1 - m0) / tick * 1e6 / max(d1["all"], 1)
ms = lambda us: f"{us / 1000:.3f}"
rows = [
    ("1. throughput, c=32, non-streaming", "req/s", f"{d1['rps']:.0f}", f"{g1['rps']:.0f}", f"{g1['rps'] / max(d1['rps'], 1):.2f}× of direct"),
    ("1. latency p50 / p99 at c=32", "ms", f"{ms(d1['p50_us'])} / {ms(d1['p99_us'])}", f"{ms(g1['p50_us'])} / {ms(g1['p99_us'])}", ""),
    ("2. latency p50 at 500 req/s", "ms", ms(d2["p50_us"]), ms(g2["p50_us"]), f"added {ms(g2['p50_us'] - d2['p50_us'])} ms"),
    ("2. latency p99 at 500 req/s", "ms", ms(d2["p99_us"]), ms(g2["p99_us"]), f"added {ms(g2['p99_us'] - d2['p99_us'])} ms"),
    ("3. streaming TTFB p50, c=8", "ms", ms(d3["ttfb_p50_us"]), ms(g3["ttfb_p50_us"]), f"added {ms(g3['ttfb_p50_us'] - d3['ttfb_p50_us'])} ms"),
    ("3. streaming TTFB p99, c=8", "ms", ms(d3["ttfb_p99_us"]), ms(g3["ttfb_p99_us"]), f"added {ms(g3['ttfb_p99_us'] - d3['ttfb_p99_us'])} ms"),
    ("4. governed caller: throughput, c=32", "req/s", f"{g1['rps']:.0f} (admin)", f"{u1['rps']:.0f}", f"{u1['rps'] / max(g1['rps'], 1):.3f}× of admin"),
    ("4. governed caller: latency p50 at 500 req/s", "ms", f"{ms(g2['p50_us'])} (admin)", ms(u2["p50_us"]), f"{u2['p50_us'] / max(g2['p50_us'], 1):.3f}× of admin"),
    ("5. policed: throughput, c=32", "req/s", f"{g1['rps']:.0f} (bare)", f"{p1['rps']:.0f}", f"{g1['rps'] / max(p1['rps'], 1):.2f}× slower than bare"),
    ("5. policed: latency p50 at 500 req/s", "ms", f"{ms(g2['p50_us'])} (bare)", ms(p2["p50_us"]), f"added latency {added(p2, d2, 'p50_us') / added(g2, d2, 'p50_us'):.2f}× of bare"),
    ("5. policed: latency p99 at 500 req/s", "ms", f"{ms(g2['p99_us'])} (bare)", ms(p2["p99_us"]), f"added latency {added(p2, d2, 'p99_us') / added(g2, d2, 'p99_us'):.2f}× of bare"),
    ("5. policed: streaming TTFB p50, c=8", "ms", f"{ms(g3['ttfb_p50_us'])} (bare)", ms(p3["ttfb_p50_us"]), f"{p3['ttfb_p50_us'] / max(g3['ttfb_p50_us'], 1):.2f}× of bare"),
    ("6. logged: throughput, c=32", "req/s", f"{g1['rps']:.0f} (bare)", f"{l1['rps']:.0f}", f"{g1['rps'] / max(l1['rps'], 1):.2f}× slower than bare"),
    ("6. logged: latency p50 at 500 req/s", "ms", f"{ms(g2['p50_us'])} (bare)", ms(l2["p50_us"]), f"added latency {added(l2, d2, 'p50_us') / added(g2, d2, 'p50_us'):.2f}× of bare"),
    ("6. logged: latency p99 at 500 req/s", "ms", f"{ms(g2['p99_us'])} (bare)", ms(l2["p99_us"]), f"added latency {added(l2, d2, 'p99_us') / added(g2, d2, 'p99_us'):.2f}× of bare"),
    ("6. logged: streaming TTFB p50, c=8", "ms", f"{ms(g3['ttfb_p50_us'])} (bare)", ms(l3["ttfb_p50_us"]), f"{l3['ttfb_p50_us'] / max(g3['ttfb_p50_us'], 1):.2f}× of bare"),
    ("7. overload: open loop at 2× phase 1's rate", "req/s", f"{2 * g1['rps']:.0f} offered", f"{o1['rps']:.0f} answered", f"{o1['shed']} shed, {o1['errors'] - o1['shed']} other errors, {o1['unsent']} not sent (client at its cap)"),
    ("7. overload: latency p50 / p99 answered, p99 shed", "ms", "", f"{ms(o1['p50_us'])} / {ms(o1['p99_us'])}, shed {ms(o1['shed_p99_us'])}", ""),
    ("7. overload: CPU busy, gateway's core / mock + load generator on the other", "%", "", busy, ""),
    ("errors (direct / gateway, phases 1 to 6)", "count", str(d1["errors"] + d2["errors"] + d3["errors"]), str(sum(x["errors"] for x in (g1, g2, g3, u1, u2, p1, p2, p3, l1, l2, l3))), ""),
    ("usage and inference records dropped (queue full)", "count", "", dropped, ""),
    ("CPU per response (phase 1): mock / gateway", "µs", f"{mock_us:.1f}", f"{cpu_us:.1f}", f"{cpu_us / max(mock_us, 0.1):.2f}× the mock's"),
    ("gateway RSS after phases 1 to 6 (tokenizer loaded) / after phase 7 / peak", "MB", "", f"{steady / 1024:.1f} / {rss / 1024:.1f} / {hwm / 1024:.1f}", ""),
]
print(f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {duration} per phase, modelgate on 1 core (1 worker), mock + load generator on the other.\n")
print("| measure | unit | direct to mock | through modelgate | ratio / added |")
print("|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
added_p50 = (g2["p50_us"] - d2["p50_us"]) / 1000
added_p99 = (g2["p99_us"] - d2["p99_us"]) / 1000
added_ttfb = (g3["ttfb_p50_us"] - d3["ttfb_p50_us"]) / 1000
targets = [
    ("gateway CPU per request at most 3× the mock's", f"{cpu_us / max(mock_us, 0.1):.2f}×", cpu_us <= 3 * mock_us),
    ("added p50 at 500 req/s at most +0.15 ms", f"+{added_p50:.3f} ms", added_p50 <= 0.15),
    ("added p99 at 500 req/s at most +0.5 ms", f"+{added_p99:.3f} ms", added_p99 <= 0.5),
    ("added streaming TTFB at most the added p50", f"+{added_ttfb:.3f} ms vs +{added_p50:.3f} ms", added_ttfb <= added_p50),
    ("policed within 1.2× of bare (throughput)", f"{g1['rps'] / max(p1['rps'], 1):.2f}×", g1["rps"] <= 1.2 * p1["rps"]),
    ("logged within 1.3× of bare (throughput)", f"{g1['rps'] / max(l1['rps'], 1):.2f}×", g1["rps"] <= 1.3 * l1["rps"]),
    ("governed within 1.05× of admin (throughput)", f"{g1['rps'] / max(u1['rps'], 1):.3f}×", g1["rps"] <= 1.05 * u1["rps"]),
    ("overload: no request fails other than shed", f"{o1['errors'] - o1['shed']} other errors", o1["errors"] == o1["shed"]),
    ("steady RSS with the tokenizer loaded under 64 MB", f"{steady / 1024:.1f} MB", steady / 1024 < 64),
]
print("\nIssue 19's targets in this run:\n")
for what, value, met in targets:
    print(f"- {what}: {value}, {'met' if met else 'not met'}")
PY
