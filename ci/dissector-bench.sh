#!/usr/bin/env bash
# Times tshark on a capture of 210,001 TNLM frames (one connection: a hello, then
# 105,000 request/response pairs, one frame per TCP segment), without and with the
# dissector, and prints the ratio. Fields output, the same command both ways; CPU time.
#   bash ci/dissector-bench.sh [PAIRS] [RUNS]   (defaults 105000 and 3; best run counts)
# Needs tshark, text2pcap (apt-get install tshark), GNU time and bc.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs="${1:-105000}"
runs="${2:-3}"
dir="target/dissector-bench"
mkdir -p "$dir"
cap="$dir/bench-$pairs.pcapng"
if [ ! -s "$cap" ]; then
  cargo run --locked -q --release -p tnlm-wireshark --example bench_capture -- "$pairs" > "$dir/dump.txt"
  text2pcap -q -D -T 50000,4579 -F pcapng "$dir/dump.txt" "$cap"
  rm -f "$dir/dump.txt"
fi
lua="wireshark/tnlm.lua"
fields=(-T fields -e frame.number -e tcp.len -e tnlm.type -e tnlm.request_id -e tnlm.request_in -e tnlm.response_time)

# Best of $runs CPU seconds (user + system) of: tshark "$@" > /dev/null. CPU time,
# not wall-clock time, so that other jobs on a shared machine count less.
best() {
  local best_s=""
  for _ in $(seq "$runs"); do
    local s
    /usr/bin/time -f '%U %S' -o "$dir/time.txt" tshark "$@" > /dev/null 2> "$dir/stderr.txt"
    if grep -v '^Running as user' "$dir/stderr.txt" | grep -q .; then
      cat "$dir/stderr.txt" >&2
      exit 1
    fi
    s=$(awk '{print $1 + $2}' "$dir/time.txt")
    if [ -z "$best_s" ] || [ "$(echo "$s < $best_s" | bc -l)" = 1 ]; then best_s=$s; fi
  done
  printf '%.2f' "$best_s"
}

pdus=$(tshark -X lua_script:$lua -r "$cap" -T fields -e tnlm.type -E occurrence=a -E aggregator=, 2>/dev/null \
  | tr ',' '\n' | grep -c .)
packets=$(capinfos -c -M "$cap" | awk '/Number of packets/ {print $NF}')
echo "capture: $cap ($packets packets, $pdus TNLM frames); $(tshark --version 2>/dev/null | head -1)"
# "Without": the same script loaded and the same fields asked for, the protocol and
# its heuristic disabled, so the only difference is the dissection.
# Two passes are compared with two passes: tshark's own second pass is not the dissector's.
disabled=(-X lua_script:$lua --disable-protocol tnlm --disable-heuristic tnlm_tcp)
without=$(best "${disabled[@]}" -r "$cap" "${fields[@]}")
without_two=$(best -2 "${disabled[@]}" -r "$cap" "${fields[@]}")
with=$(best -X lua_script:$lua -r "$cap" "${fields[@]}")
two=$(best -2 -X lua_script:$lua -r "$cap" "${fields[@]}")
echo "CPU seconds, best of $runs:"
echo "tshark, TNLM disabled (one pass):    ${without} s"
echo "tshark, TNLM disabled (-2):          ${without_two} s"
echo "tshark with it (one pass):           ${with} s  ($(echo "scale=2; $with / $without" | bc -l)x the one pass disabled)"
echo "tshark with it, two passes (-2):     ${two} s  ($(echo "scale=2; $two / $without_two" | bc -l)x -2 disabled)"
