#!/usr/bin/env bash
# One replica of a scaled-out install (state in PostgreSQL, counters in Redis) against the
# embedded default (SQLite, counters in the process), in one run on this machine:
#   1. throughput, closed loop, concurrency 32, non-streaming chat, bare endpoint;
#   2. latency at a fixed 500 req/s (open loop): added p50/p99 over direct to the mock;
#   3. phases 1 and 2 on an endpoint with a rate limit (calls and tokens, never reached): on the
#      PostgreSQL + Redis replica every query makes the shared check, one Redis round trip.
# The gateway is pinned to one core (one tokio worker), the mock and the load generator to the
# other; PostgreSQL and Redis run where the machine puts them, as they would beside a replica.
# Needs PostgreSQL (PG_URL, a server where a fresh database is created and dropped) and Redis
# (REDIS_URL). Loopback addresses only; every phase is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
. bench/lib.sh
prepare
start_mock
DB="mgbench_$$"
psql -X -q "$PG_URL" -c "CREATE DATABASE $DB"
drop_db() { psql -X -q "$PG_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true; cleanup; }
trap drop_db EXIT
DB_URL="${PG_URL%/*}/$DB"

CHAT='{"model":"bench","messages":[{"role":"user","content":"Is Santa real?"}],"max_tokens":100}'
LIMITED=${CHAT/\"bench\"/\"limited\"}
GW_PATH="/serving-endpoints/chat/completions"
load() { taskset -c "$OTHER_CPU" "$BIN/modelgate-loadgen" --duration "$DURATION" --warmup "$WARMUP" --token "$TOKEN" "$@"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$GW_PID/stat"; }

D1=$(load --url "$MOCK/v1/chat/completions" --body "$CHAT" --concurrency 32)
D2=$(load --url "$MOCK/v1/chat/completions" --body "$CHAT" --rate 500)
declare -A R
for mode in sqlite postgres; do
  echo "== $mode" >&2
  if [ "$mode" = postgres ]; then
    start_gateway --database-url "$DB_URL" --redis-url "$REDIS_URL"
  else
    start_gateway
  fi
  create_endpoint bench
  create_endpoint limited '"ai_gateway": {"rate_limits": [{"key": "endpoint", "calls": 100000000, "tokens": 1000000000000, "renewal_period": "minute"}]}'
  sleep 0.5
  C0=$(cpu_ticks)
  R[$mode.bare1]=$(load --url "$GW$GW_PATH" --body "$CHAT" --concurrency 32)
  C1=$(cpu_ticks)
  R[$mode.cpu]=$((C1 - C0))
  R[$mode.bare2]=$(load --url "$GW$GW_PATH" --body "$CHAT" --rate 500)
  R[$mode.lim1]=$(load --url "$GW$GW_PATH" --body "$LIMITED" --concurrency 32)
  R[$mode.lim2]=$(load --url "$GW$GW_PATH" --body "$LIMITED" --rate 500)
  stop_gateway
done

python3 - "$D1" "$D2" "${R[sqlite.bare1]}" "${R[sqlite.bare2]}" "${R[sqlite.lim1]}" "${R[sqlite.lim2]}" \
  "${R[postgres.bare1]}" "${R[postgres.bare2]}" "${R[postgres.lim1]}" "${R[postgres.lim2]}" \
  "${R[sqlite.cpu]}" "${R[postgres.cpu]}" "$(getconf CLK_TCK)" "$DURATION" <<'PY'
import json, sys, datetime
d1, d2, sb1, sb2, sl1, sl2, pb1, pb2, pl1, pl2 = (json.loads(a) for a in sys.argv[1:11])
s_cpu, p_cpu, tick, duration = float(sys.argv[11]), float(sys.argv[12]), float(sys.argv[13]), sys.argv[14]
# The CPU delta covers warm-up and measured requests alike, so divide by all of them.
us = lambda ticks, run: ticks / tick / max(run["all"], 1) * 1e6
added = lambda run, pct: (run[pct] - d2[pct]) / 1000
print(f"# scale-out bench, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {duration} per phase")
print()
print("| | SQLite (embedded) | PostgreSQL + Redis | ratio |")
print("|---|---|---|---|")
print(f"| bare: req/s at concurrency 32 | {sb1['rps']:.0f} | {pb1['rps']:.0f} | {sb1['rps'] / max(pb1['rps'], 1):.2f}x slower |")
print(f"| bare: CPU per request | {us(s_cpu, sb1):.0f} µs | {us(p_cpu, pb1):.0f} µs | {us(p_cpu, pb1) / max(us(s_cpu, sb1), 1e-9):.2f}x |")
for pct in ("p50_us", "p99_us"):
    print(f"| bare: added {pct[:3]} at 500 req/s | +{added(sb2, pct):.3f} ms | +{added(pb2, pct):.3f} ms | |")
print(f"| rate-limited: req/s at concurrency 32 | {sl1['rps']:.0f} | {pl1['rps']:.0f} | {sl1['rps'] / max(pl1['rps'], 1):.2f}x slower |")
for pct in ("p50_us", "p99_us"):
    print(f"| rate-limited: added {pct[:3]} at 500 req/s | +{added(sl2, pct):.3f} ms | +{added(pl2, pct):.3f} ms | |")
print()
print(f"Shared rate-limit check (Redis round trip): {pb1['rps'] / max(pl1['rps'], 1):.2f}x the bare endpoint's "
      f"time per request on the PostgreSQL + Redis replica, against {sb1['rps'] / max(sl1['rps'], 1):.2f}x for "
      f"in-process counters; p50 +{(pl2['p50_us'] - pb2['p50_us']) / 1000:.3f} ms over bare at 500 req/s.")
print(f"Errors: {sum(r['errors'] for r in (sb1, sb2, sl1, sl2, pb1, pb2, pl1, pl2))}; direct: {d1['rps']:.0f} req/s, "
      f"p50 {d2['p50_us'] / 1000:.3f} ms, p99 {d2['p99_us'] / 1000:.3f} ms.")
PY
