#!/usr/bin/env bash
# Times tshark without and with the dissector and prints the ratios, on two captures:
#   one:  one connection, a hello, then PAIRS request/response pairs (210,001 frames)
#   many: 200 connections to one server taking turns, request/response pairs and
#         messages (M request, M indication, A ack, M response), 200,000 packets
# one frame per TCP segment (wireshark/examples/bench_capture.rs), and two kinds of run:
#   plain:  tshark -r FILE (the Info column; Wireshark builds no tree)
#   fields: tshark -r FILE -T fields with the fields of wireshark/README.md (a tree)
# each in one pass and in two (-2). The baseline is the same command with the protocol
# and its heuristic disabled (the same script loaded). CPU time (user + system), best of RUNS.
#   bash ci/dissector-bench.sh [PAIRS] [RUNS] [PACKETS]   (defaults 105000, 3, 200000)
# Needs tshark, text2pcap (apt-get install tshark), GNU time and bc.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs="${1:-105000}"
runs="${2:-3}"
packets="${3:-200000}"
dir="target/dissector-bench"
mkdir -p "$dir"
one="$dir/bench-$pairs.pcapng"
many="$dir/many-200-$packets.pcap"
if [ ! -s "$one" ] || [ ! -s "$many" ]; then
  cargo build --locked -q --release -p tnlm-wireshark --example bench_capture
  exe="${CARGO_TARGET_DIR:-target}/release/examples/bench_capture"
  "$exe" "$pairs" > "$dir/dump.txt"
  text2pcap -q -D -T 50000,4579 -F pcapng "$dir/dump.txt" "$one"
  rm -f "$dir/dump.txt"
  "$exe" many 200 "$packets" "$many"
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

echo "$(tshark --version 2>/dev/null | head -1); CPU seconds, best of $runs"
echo "| capture | run | TNLM disabled | with the dissector | ratio |"
echo "| --- | --- | --- | --- | --- |"
disabled=(-X lua_script:$lua --disable-protocol tnlm --disable-heuristic tnlm_tcp)
for cap in "$one" "$many"; do
  packets_in=$(capinfos -c -M "$cap" | awk '/Number of packets/ {print $NF}')
  name="$(basename "$cap") ($packets_in packets)"
  for kind in plain fields; do
    extra=()
    [ "$kind" = fields ] && extra=("${fields[@]}")
    for pass in one two; do
      p=()
      [ "$pass" = two ] && p=(-2)
      without=$(best "${p[@]}" "${disabled[@]}" -r "$cap" "${extra[@]}")
      with=$(best "${p[@]}" -X lua_script:$lua -r "$cap" "${extra[@]}")
      echo "| $name | $kind, $pass pass$([ "$pass" = two ] && echo "es (-2)") | $without | $with | $(echo "scale=2; $with / $without" | bc -l) |"
    done
  done
done
