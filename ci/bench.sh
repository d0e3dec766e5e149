#!/usr/bin/env bash
# Benchmarks TNLM against Redis and NATS on this machine, side by side, in one
# run, and then holds 10,000 clients on one server. Not part of the test run
# (it takes about eight minutes and wants a quiet machine). Loopback only.
#
#   ci/bench.sh                 everything
#   BENCH_SCALE=0 ci/bench.sh   skip the 10,000-client part
#   BENCH_SECS=10 ci/bench.sh   longer runs (default 5 s each)
#   BENCH_REPEAT=1 ci/bench.sh  one run per test (default: best of 3, TNLM and
#                               Redis alternating, against a busy machine)
#   BENCH_THREADS=N             generator threads (default: the core count)
#   BENCH_NATS=0 ci/bench.sh    skip the NATS rows
#
# Installs Debian's redis-server and redis-tools, and nats-server, if missing
# (apt-get, as root), starts its own redis-server (own port, no persistence,
# loopback), nats-server (own port, loopback, no auth) and a release
# tnlm-server (--nodelay, as Redis sets TCP_NODELAY; NATS does too), and stops
# them on exit. Prints each pair and the ratios TNLM/Redis and TNLM/NATS, and
# writes docs/BENCHMARKS.md-ready rows to target/bench/rows.md.
#
# What is compared (50 clients; pipeline 1 and 16):
# - TNLM `time` requests vs `redis-benchmark -t ping_mbulk`, and vs Redis PING
#   driven by the same generator (`tnlm-client bench --protocol redis`);
# - TNLM relayed messages (A sends to B, B acknowledges, A gets `delivered`)
#   vs Redis PUBLISH delivered to a subscriber (25 publishers, 25 subscribers).
# - NATS, driven by the same generator (`--protocol nats`): time vs PING;
#   relayed messages vs request-reply (A publishes with a reply subject, B
#   publishes the answer back: the twin of a message and its receipt) and vs
#   plain PUB to a subscriber.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${BENCH_SECS:-5}
SCALE=${BENCH_SCALE:-1}
REPEAT=${BENCH_REPEAT:-3}
GEN_THREADS=${BENCH_THREADS:-$(nproc)}
NATS=${BENCH_NATS:-1}
OUT=target/bench
mkdir -p "$OUT"
ROWS=$OUT/rows.md
NATS_ROWS=$OUT/rows-nats.md
: >"$ROWS"
: >"$NATS_ROWS"
POINTS=$OUT/chart.tsv
: >"$POINTS"
# point GROUP SERIES RATE: one bar of the chart (ci/bench-chart.py draws them).
point() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$POINTS"; }

# shellcheck source=ci/bench-lib.sh
source ci/bench-lib.sh

load() { cut -d' ' -f1 /proc/loadavg; }
# CPU seconds all processes have used since boot (from /proc/stat).
machine_busy() { awk '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / 100 }' /proc/stat; }
# CPU seconds (user + system) of a process so far.
cpu_of() { awk '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / 100 }' "/proc/$1/stat"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# Counts syscalls and context switches of process $1 for $2 s into file $3, in
# the background (perf from Debian's linux-perf; skipped where it is missing).
count_start() {
  : >"$3"
  if command -v perf >/dev/null; then
    perf stat -e raw_syscalls:sys_enter,context-switches -x, -p "$1" -o "$3" -- sleep "$2" 2>/dev/null &
    PERF_PID=$!
  else
    PERF_PID=
  fi
}
# Waits for the counting to end (call it in this shell, not in a $(...)).
count_wait() {
  if [[ -n "$PERF_PID" ]]; then
    wait "$PERF_PID" 2>/dev/null || true
  fi
}
# Prints "syscalls / context switches" per request from file $1 for $2 requests.
count_per_request() {
  # perf writes "<not supported>" or "<not counted>" where it cannot count: n/a, not 0.
  awk -F, -v n="$2" '$3 == "raw_syscalls:sys_enter" { s = $1 } $3 == "context-switches" { c = $1 }
    END { if (n > 0 && s ~ /^[0-9.]+$/ && c ~ /^[0-9.]+$/) printf "%.2f / %.2f", s / n, c / n; else print "n/a" }' "$1"
}

echo "== tools"
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server redis-tools
fi
if [[ "$NATS" != 0 ]] && ! command -v nats-server >/dev/null; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nats-server
fi
redis-server --version
if [[ "$NATS" != 0 ]]; then
  nats-server --version
fi
cargo build --release --locked -q -p tnlm-server -p tnlm-client
SERVER=${CARGO_TARGET_DIR:-target}/release/tnlm-server
CLIENT=${CARGO_TARGET_DIR:-target}/release/tnlm-client

echo "== machine"
echo "cores: $(nproc); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "kernel: $(uname -r); $(rustc --version); $(redis-server --version | cut -d' ' -f1-3)"
if [[ "$NATS" != 0 ]]; then
  nats-server --version
fi
echo "load average now: $(cut -d' ' -f1-3 /proc/loadavg); busiest other processes:"
ps -eo pid,pcpu,comm --sort=-pcpu | sed -n 2,5p

echo "== servers"
# free_port FROM: the first of the 100 ports from FROM on which nothing listens.
free_port() {
  local port
  for port in $(seq "$1" $(($1 + 99))); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  echo "no free port from $1" >&2
  exit 1
}
RPORT=$(free_port 16379)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --logfile "$OUT/redis.log" &
RPID=$!
pids+=("$RPID")
for _ in $(seq 100); do
  [[ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" == PONG ]] && break
  sleep 0.05
done
echo "redis-server pid $RPID on 127.0.0.1:$RPORT"
if [[ "$NATS" != 0 ]]; then
  NPORT=$(free_port 14222)
  : >"$OUT/nats.log"
  nats-server -a 127.0.0.1 -p "$NPORT" </dev/null 2>"$OUT/nats.log" &
  NPID=$!
  pids+=("$NPID")
  wait_line "$OUT/nats.log" 'Server is ready' 30
  echo "nats-server pid $NPID on 127.0.0.1:$NPORT"
fi

# start_tnlm EXTRA_ARGS...: sets TPID and TADDR (the log files are per engine).
start_tnlm() {
  local log="$OUT/tnlm-$*"
  log=${log// /_}
  : >"$log.out" # before the server starts: wait_line must not see an old run's line
  "$SERVER" --bind 127.0.0.1 --port 0 --nodelay "$@" </dev/null >"$log.out" 2>"$log.err" &
  TPID=$!
  pids+=("$TPID")
  wait_line "$log.out" '^listening on ' 30
  TADDR=$(sed -n 's/^listening on //p' "$log.out")
  echo "tnlm-server $* pid $TPID on $TADDR"
}
stop_tnlm() {
  kill "$TPID" 2>/dev/null || true
  wait "$TPID" 2>/dev/null || true
}
# Both engines run side by side: TPID/TADDR the thread engine (the default),
# EPID/EADDR the event engine with one worker per core.
start_tnlm --engine events
EPID=$TPID EADDR=$TADDR
start_tnlm --engine threads

# bench ADDR PID ARGS...: one run of our generator; prints its JSON line.
bench() {
  local addr=$1 pid=$2
  shift 2
  "$CLIENT" --connect "$addr" --json bench --server-pid "$pid" --threads "$GEN_THREADS" "$@"
}
lat() { echo "$(json_field p50_us <<<"$1") / $(json_field p99_us <<<"$1")"; }
cpu() { echo "$(json_field cpu_s <<<"$1") / $(json_field server_cpu_s <<<"$1")"; }
# rate JSON FIELD: the run's rate (rps, or relayed_per_s for messages).
rate() { json_field "$2" <<<"$1"; }
better() { awk -v a="$1" -v b="${2:-0}" 'BEGIN { exit !(a > b) }'; }

# measure NAME PID ADDR FIELD ARGS...: one generator run with the server's
# syscalls and context switches counted; keeps it in BEST_<NAME> if its rate
# beats the best so far.
measure() {
  local name=$1 pid=$2 addr=$3 field=$4 json count
  shift 4
  count_start "$pid" "$SECS" "$OUT/perf-$name.txt"
  json=$(bench "$addr" "$pid" "$@")
  count_wait
  count=$(count_per_request "$OUT/perf-$name.txt" \
    "$(awk -v r="$(rate "$json" "$field")" -v s="$SECS" 'BEGIN { printf "%.0f", r * s }')")
  echo "  $name: $(rate "$json" "$field")/s"
  local best_var="BEST_$name"
  if better "$(rate "$json" "$field")" "$(rate "${!best_var:-}" "$field")"; then
    printf -v "BEST_$name" '%s' "$json"
    printf -v "COUNT_$name" '%s' "$count"
  fi
}

# redis_benchmark P N: one `redis-benchmark -t ping_mbulk` run of N requests;
# keeps the best in RB_* (rate, latency, CPU, others, counts).
redis_benchmark() {
  local P=$1 n=$2 before busy_before started csv rps gcpu scpu
  before=$(cpu_of "$RPID")
  busy_before=$(machine_busy)
  started=$(date +%s.%N)
  count_start "$RPID" "$SECS" "$OUT/perf-redis-benchmark.txt"
  TIMEFORMAT='%U %S'
  { time redis-benchmark -h 127.0.0.1 -p "$RPORT" -c 50 -P "$P" -n "$n" -t ping_mbulk --csv \
    >"$OUT/redis-benchmark.csv"; } 2>"$OUT/redis-benchmark.time"
  count_wait
  csv=$(tail -1 "$OUT/redis-benchmark.csv")
  rps=$(cut -d'"' -f4 <<<"$csv")
  echo "  redis-benchmark: $rps/s"
  better "$rps" "${RB_RPS:-0}" || return 0
  RB_RPS=$rps
  gcpu=$(awk '{ printf "%.2f", $1 + $2 }' "$OUT/redis-benchmark.time")
  scpu=$(awk -v a="$(cpu_of "$RPID")" -v b="$before" 'BEGIN { printf "%.2f", a - b }')
  RB_CPU="$gcpu / $scpu"
  RB_OTHERS=$(awk -v a="$(machine_busy)" -v b="$busy_before" -v g="$gcpu" -v s="$scpu" -v t0="$started" \
    -v t1="$(date +%s.%N)" -v n="$(nproc)" 'BEGIN { o = a - b - g - s; if (o < 0) o = 0; printf "%.1f / %.0f", o, (t1 - t0) * n }')
  RB_LAT="$(awk -v v="$(cut -d'"' -f10 <<<"$csv")" 'BEGIN { printf "%.0f", v * 1000 }') / $(awk -v v="$(cut -d'"' -f14 <<<"$csv")" 'BEGIN { printf "%.0f", v * 1000 }')"
  RB_COUNT=$(count_per_request "$OUT/perf-redis-benchmark.txt" \
    "$(awk -v r="$rps" -v s="$SECS" 'BEGIN { printf "%.0f", r * s }')")
}

{
  echo "| test (50 clients, best of $REPEAT) | TNLM | Redis | TNLM/Redis | CPU s used by other processes / available: TNLM run; Redis run | p50 / p99 µs TNLM; Redis | CPU s generator / server: TNLM; Redis | server syscalls / context switches per request: TNLM; Redis |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
} >>"$ROWS"

{
  echo "| test (50 clients, best of $REPEAT) | TNLM | NATS | TNLM/NATS | CPU s used by other processes / available: TNLM run; NATS run | p50 / p99 µs TNLM; NATS | CPU s generator / server: TNLM; NATS | server syscalls / context switches per request: TNLM; NATS |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
} >>"$NATS_ROWS"

# row_in FILE OTHER NAME TNLM_RATE OTHER_RATE OTHERS LATENCIES CPU COUNTS: prints
# the pair and its ratio, and appends the row to FILE.
row_in() {
  local file=$1 other=$2 r
  shift 2
  r=$(ratio "$2" "$3")
  printf '%-52s TNLM %10.0f/s  %-5s %10.0f/s  ratio %s\n' "$1" "$2" "$other" "$3" "$r"
  printf '| %s | %.0f/s | %.0f/s | **%s×** | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$r" "$4" "$5" "$6" "$7" >>"$file"
}
row() { row_in "$ROWS" Redis "$@"; }
nats_row() { row_in "$NATS_ROWS" NATS "$@"; }

echo "== time requests vs PING ($SECS s each, best of $REPEAT, alternating)"
for P in 1 16; do
  unset BEST_tnlm BEST_events BEST_redis BEST_nats RB_RPS
  for _ in $(seq "$REPEAT"); do
    measure tnlm "$TPID" "$TADDR" rps --clients 50 --pipeline "$P" --duration "$SECS"
    measure events "$EPID" "$EADDR" rps --clients 50 --pipeline "$P" --duration "$SECS"
    measure redis "$RPID" "127.0.0.1:$RPORT" rps --protocol redis --clients 50 --pipeline "$P" --duration "$SECS"
    if [[ "$NATS" != 0 ]]; then
      measure nats "$NPID" "127.0.0.1:$NPORT" rps --protocol nats --clients 50 --pipeline "$P" --duration "$SECS"
    fi
    # About $SECS s of requests at the rate Redis just showed.
    redis_benchmark "$P" "$(awk -v r="$(rate "$BEST_redis" rps)" -v s="$SECS" 'BEGIN { n = int(r * s); print (n < 10000 ? 10000 : n) }')"
  done
  t=$BEST_tnlm
  r=$BEST_redis
  row "time vs redis-benchmark ping_mbulk, P$P" "$(rate "$t" rps)" "$RB_RPS" "$(others "$t"); $RB_OTHERS" \
    "$(lat "$t"); $RB_LAT" "$(cpu "$t"); $RB_CPU" "$COUNT_tnlm; $RB_COUNT"
  row "time vs PING, same generator, P$P" "$(rate "$t" rps)" "$(rate "$r" rps)" "$(others "$t"); $(others "$r")" \
    "$(lat "$t"); $(lat "$r")" "$(cpu "$t"); $(cpu "$r")" "$COUNT_tnlm; $COUNT_redis"
  e=$BEST_events
  row "time vs PING, same generator, P$P, **event engine**" "$(rate "$e" rps)" "$(rate "$r" rps)" \
    "$(others "$e"); $(others "$r")" "$(lat "$e"); $(lat "$r")" "$(cpu "$e"); $(cpu "$r")" "$COUNT_events; $COUNT_redis"
  if [[ "$NATS" != 0 ]]; then
    n=$BEST_nats
    nats_row "time vs NATS PING, same generator, P$P" "$(rate "$t" rps)" "$(rate "$n" rps)" \
      "$(others "$t"); $(others "$n")" "$(lat "$t"); $(lat "$n")" "$(cpu "$t"); $(cpu "$n")" "$COUNT_tnlm; $COUNT_nats"
    nats_row "time vs NATS PING, same generator, P$P, **event engine**" "$(rate "$e" rps)" "$(rate "$n" rps)" \
      "$(others "$e"); $(others "$n")" "$(lat "$e"); $(lat "$n")" "$(cpu "$e"); $(cpu "$n")" "$COUNT_events; $COUNT_nats"
  fi
  point "time, P$P" "TNLM threads" "$(rate "$t" rps)"
  point "time, P$P" "TNLM events" "$(rate "$e" rps)"
  point "time, P$P" "Redis PING" "$(rate "$r" rps)"
  point "time, P$P" "redis-benchmark" "$RB_RPS"
  if [[ "$NATS" != 0 ]]; then
    point "time, P$P" "NATS PING" "$(rate "$n" rps)"
  fi
  if [[ $P == 16 ]]; then
    TNLM_P16=$t
  fi
done

echo "== relayed messages vs PUBLISH → subscriber (and NATS request-reply, PUB → SUB) ($SECS s each, best of $REPEAT, alternating)"
for P in 1 16; do
  unset BEST_tnlm BEST_events BEST_redis BEST_nats BEST_nats_pub
  for _ in $(seq "$REPEAT"); do
    measure tnlm "$TPID" "$TADDR" relayed_per_s --kind message --clients 50 --pipeline "$P" --duration "$SECS"
    measure events "$EPID" "$EADDR" relayed_per_s --kind message --clients 50 --pipeline "$P" --duration "$SECS"
    measure redis "$RPID" "127.0.0.1:$RPORT" relayed_per_s --protocol redis --kind message --clients 50 \
      --pipeline "$P" --duration "$SECS"
    if [[ "$NATS" != 0 ]]; then
      measure nats "$NPID" "127.0.0.1:$NPORT" relayed_per_s --protocol nats --kind message --clients 50 \
        --pipeline "$P" --duration "$SECS"
      measure nats_pub "$NPID" "127.0.0.1:$NPORT" relayed_per_s --protocol nats --kind publish --clients 50 \
        --pipeline "$P" --duration "$SECS"
    fi
  done
  t=$BEST_tnlm
  r=$BEST_redis
  row "relayed messages, 25 pairs, P$P" "$(rate "$t" relayed_per_s)" "$(rate "$r" relayed_per_s)" \
    "$(others "$t"); $(others "$r")" "$(lat "$t"); $(lat "$r")" "$(cpu "$t"); $(cpu "$r")" "$COUNT_tnlm; $COUNT_redis"
  e=$BEST_events
  point "messages, P$P" "TNLM threads" "$(rate "$t" relayed_per_s)"
  point "messages, P$P" "TNLM events" "$(rate "$e" relayed_per_s)"
  point "messages, P$P" "Redis PUBLISH" "$(rate "$r" relayed_per_s)"
  if [[ "$NATS" != 0 ]]; then
    point "messages, P$P" "NATS request-reply" "$(rate "$BEST_nats" relayed_per_s)"
    point "messages, P$P" "NATS PUB to SUB" "$(rate "$BEST_nats_pub" relayed_per_s)"
  fi
  row "relayed messages, 25 pairs, P$P, **event engine**" "$(rate "$e" relayed_per_s)" "$(rate "$r" relayed_per_s)" \
    "$(others "$e"); $(others "$r")" "$(lat "$e"); $(lat "$r")" "$(cpu "$e"); $(cpu "$r")" "$COUNT_events; $COUNT_redis"
  if [[ "$NATS" != 0 ]]; then
    for twin in nats nats_pub; do
      n_var="BEST_$twin" c_var="COUNT_$twin"
      n=${!n_var}
      what=$([[ $twin == nats ]] && echo "request-reply" || echo "PUB → SUB")
      nats_row "relayed messages vs NATS $what, 25 pairs, P$P" "$(rate "$t" relayed_per_s)" \
        "$(rate "$n" relayed_per_s)" "$(others "$t"); $(others "$n")" "$(lat "$t"); $(lat "$n")" \
        "$(cpu "$t"); $(cpu "$n")" "$COUNT_tnlm; ${!c_var}"
      nats_row "relayed messages vs NATS $what, 25 pairs, P$P, **event engine**" "$(rate "$e" relayed_per_s)" \
        "$(rate "$n" relayed_per_s)" "$(others "$e"); $(others "$n")" "$(lat "$e"); $(lat "$n")" \
        "$(cpu "$e"); $(cpu "$n")" "$COUNT_events; ${!c_var}"
    done
  fi
done

echo "== is the generator the bottleneck? time P16 with 1, $GEN_THREADS and $((GEN_THREADS * 2)) generator threads"
check="time P16:"
for threads in 1 "$GEN_THREADS" $((GEN_THREADS * 2)); do
  if [[ $threads == "$GEN_THREADS" ]]; then
    g=$TNLM_P16
  else
    g=$("$CLIENT" --connect "$TADDR" --json bench --server-pid "$TPID" --threads "$threads" --clients 50 \
      --pipeline 16 --duration "$SECS")
  fi
  check="$check $threads thread(s) $(rate "$g" rps)/s (CPU s generator / server $(cpu "$g"); others $(others "$g"));"
done
echo "$check"
stop_tnlm
kill "$EPID" 2>/dev/null || true
wait "$EPID" 2>/dev/null || true
if [[ "$NATS" != 0 ]]; then
  {
    echo
    cat "$NATS_ROWS"
  } >>"$ROWS"
fi
{
  echo
  echo "Generator check, $check"
} >>"$ROWS"

if [[ "$SCALE" != 0 ]]; then
  # The thread engine as far as it goes here (10,000), then the event engine
  # with 19,000 clients in all (18,000 idle + 1,000 active).
  BENCH_ENGINE=threads bash ci/bench-scale.sh "$SERVER" "$CLIENT" "$ROWS"
  BENCH_ENGINE=events BENCH_HOLD=${BENCH_EVENTS_HOLD:-18000} bash ci/bench-scale.sh "$SERVER" "$CLIENT" "$ROWS"
fi

python3 ci/bench-chart.py "$POINTS" "$OUT/chart.svg" "TNLM (both engines), Redis and NATS on $(nproc) cores, 50 clients"
echo "== rows for docs/BENCHMARKS.md ($ROWS); chart for docs/images/bench.svg: $OUT/chart.svg"
cat "$ROWS"
