#!/usr/bin/env bash
# The scale part of ci/bench.sh: one release tnlm-server (its own process)
# holds BENCH_HOLD idle clients (default 10,000); measures the time to accept
# them all, the server's RSS and threads, `list` latency with all of them
# listed, and the time round trip at BENCH_ACTIVE more clients (default 1,000)
# x 10 requests/s each. The clients live in two other processes.
#
#   ci/bench-scale.sh SERVER_BIN CLIENT_BIN ROWS_FILE
#   BENCH_ENGINE=events BENCH_HOLD=18000 ci/bench-scale.sh ...   the event engine, 19,000 clients in all
#
# Limits met here: 20,000 open files per process (hard), so one server holds
# at most about 19,900 clients; vm.max_map_count 65,530 (the thread engine:
# one thread per client, about four mappings each): about 15,000 clients fit.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVER=$1
CLIENT=$2
ROWS=$3
OUT=target/bench
mkdir -p "$OUT"
HOLD=${BENCH_HOLD:-10000}
ACTIVE=${BENCH_ACTIVE:-1000}
RATE=${BENCH_RATE:-10}
SECS=${BENCH_SECS:-5}
ENGINE=${BENCH_ENGINE:-threads}
ulimit -n "$(ulimit -Hn)"

# shellcheck source=ci/bench-lib.sh
source ci/bench-lib.sh

rss_mb() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
threads_of() { awk '/^Threads/ { print $2 }' "/proc/$1/status"; }

echo "== $HOLD clients held by one server ($ENGINE engine)"
# Emptied first, so wait_line cannot see an earlier run's lines.
: >"$OUT/scale-server.out"
: >"$OUT/scale-holder.err"
# --max-frame 1 MiB: an `L` answer never exceeds the payload limit, and the
# whole list of 10,000+ clients (47 bytes each) needs about 500 KB.
"$SERVER" --bind 127.0.0.1 --port 0 --nodelay --max-clients $((HOLD + ACTIVE + 100)) --max-frame 1048576 \
  --engine "$ENGINE" </dev/null >"$OUT/scale-server.out" 2>"$OUT/scale-server.err" &
SPID=$!
pids+=("$SPID")
wait_line "$OUT/scale-server.out" '^listening on ' 30
ADDR=$(sed -n 's/^listening on //p' "$OUT/scale-server.out")
rss_idle=$(rss_mb "$SPID")

# The holder connects everyone (as fast as the server accepts) and stays.
"$CLIENT" --connect "$ADDR" --timeout 60 bench --kind idle --clients "$HOLD" --threads 2 --duration 600 \
  >"$OUT/scale-holder.out" 2>"$OUT/scale-holder.err" &
HPID=$!
pids+=("$HPID")
wait_line "$OUT/scale-holder.err" 'connections open in' 120
accept_ms=$(sed -n 's/.*connections open in \([0-9.]*\) ms.*/\1/p' "$OUT/scale-holder.err")
rss_held=$(rss_mb "$SPID")
threads=$(threads_of "$SPID")
listed=$("$CLIENT" --connect "$ADDR" --json list | grep -o '"id":' | wc -l)
echo "accepted $HOLD clients in $accept_ms ms; server RSS ${rss_idle} MB idle -> ${rss_held} MB; $threads threads; list shows $listed"

list=$("$CLIENT" --connect "$ADDR" --json bench --kind list --clients 1 --requests 50 --server-pid "$SPID")
echo "list of $listed: p50 $(json_field p50_us <<<"$list") µs, p99 $(json_field p99_us <<<"$list") µs, max $(json_field max_us <<<"$list") µs"

rtt=$("$CLIENT" --connect "$ADDR" --timeout 60 --json bench --clients "$ACTIVE" --rate "$RATE" --duration $((SECS * 2)) \
  --server-pid "$SPID")
rss_busy=$(rss_mb "$SPID")
echo "time at $ACTIVE clients × $RATE req/s (with $HOLD idle): $(json_field rps <<<"$rtt") req/s," \
  "p50 $(json_field p50_us <<<"$rtt") µs, p99 $(json_field p99_us <<<"$rtt") µs, p99.9 $(json_field p999_us <<<"$rtt") µs;" \
  "server RSS $rss_busy MB"

kill "$HPID" 2>/dev/null || true
wait "$HPID" 2>/dev/null || true

{
  echo
  echo "| scale ($HOLD clients held by one server, $ENGINE engine) | measured | target | CPU s used by other processes / available |"
  echo "| --- | ---: | ---: | ---: |"
  echo "| time to accept all $HOLD (every hello received) | $accept_ms ms | — | |"
  echo "| server RSS: idle / $HOLD clients / + $ACTIVE active | $rss_idle / $rss_held / $rss_busy MB | ≤ 150 MB | |"
  echo "| server threads with $HOLD clients | $threads | — | |"
  echo "| \`list\` of $listed entries: p50 / p99 / max | $(json_field p50_us <<<"$list") / $(json_field p99_us <<<"$list") / $(json_field max_us <<<"$list") µs | < 50 ms | $(others "$list") |"
  echo "| time RTT at $ACTIVE clients × $RATE req/s (+ $HOLD idle): p50 / p99 / p99.9 | $(json_field p50_us <<<"$rtt") / $(json_field p99_us <<<"$rtt") / $(json_field p999_us <<<"$rtt") µs | p99 < 1 ms | $(others "$rtt") |"
} >>"$ROWS"
