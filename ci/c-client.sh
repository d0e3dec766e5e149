#!/usr/bin/env bash
# The C client of examples/c-client, end to end (called from .ci/run):
#
#   1. builds it with `cc -std=c11 -Wall -Wextra -Werror`, and for Windows with
#      x86_64-w64-mingw32-gcc and the same flags (installs gcc-mingw-w64-x86-64
#      and wine64 if missing);
#   2. starts the Linux tnlm-server on 127.0.0.1 and a `tnlm-client listen` to
#      receive messages;
#   3. runs time, name, list, send (delivered) and send (no such client) with
#      the Linux build, then with the Windows build under Wine, checking the
#      printed lines and the exit codes.
#
# Split and coalesced frames are covered by server/tests/c_client.rs (part of
# ci/test.sh), which drives the Linux build with a scripted server.
# Waits on the programs' own lines (never a sleep).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { echo "== $* [$((SECONDS - started)) s]"; }
DEADLINE=60 # seconds any one step may take

missing=()
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(gcc-mingw-w64-x86-64)
[[ -x /usr/lib/wine/wine64 ]] || missing+=(wine64)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; }
  install || { apt-get update -q && install; }
fi

out=target/c-client
mkdir -p "$out"
FLAGS=(-std=c11 -Wall -Wextra -Werror -O2)
step "build: cc ${FLAGS[*]}"
cc "${FLAGS[@]}" -o "$out/tnlm-c-client" examples/c-client/tnlm-c-client.c
step "build: x86_64-w64-mingw32-gcc ${FLAGS[*]}"
# Static libgcc: the .exe then needs no mingw DLL next to it under Wine.
x86_64-w64-mingw32-gcc "${FLAGS[@]}" -static-libgcc -o "$out/tnlm-c-client.exe" \
  examples/c-client/tnlm-c-client.c -lws2_32 -lshell32
cargo build --locked -q -p tnlm-server -p tnlm-client

work=$(mktemp -d "${TMPDIR:-/tmp}/tnlm-c.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for log in "$work"/*.err; do [[ -s $log ]] && { echo "--- ${log##*/}"; tail -20 "$log"; } >&2; done
  exit 1
}

step "tnlm-server and a listening tnlm-client on 127.0.0.1"
mkfifo "$work/server.out" "$work/listen.out"
target/debug/tnlm-server --bind 127.0.0.1 --port 0 --name c-e2e </dev/null >"$work/server.out" 2>"$work/server.err" &
pids+=($!)
exec {server_out}<"$work/server.out"
IFS= read -r -t "$DEADLINE" line <&"$server_out" || fail "the server never said 'listening on'"
addr=${line#listening on }
cat <&"$server_out" >/dev/null &
target/debug/tnlm-client -c "$addr" --json listen </dev/null >"$work/listen.out" 2>"$work/listen.err" &
pids+=($!)
exec {listen_out}<"$work/listen.out"
IFS= read -r -t "$DEADLINE" hello <&"$listen_out" || fail "the listener got no hello"
[[ $hello =~ \"id\":([0-9]+) ]] || fail "no id in the listener's hello: $hello"
listener=${BASH_REMATCH[1]}

# check NAME EXPECTED_CODE PATTERN -- COMMAND...: runs it, strips \r (Windows
# line ends), and wants the exit code and a line matching PATTERN (grep -E).
check() {
  local name=$1 want=$2 pattern=$3 got=0
  shift 4
  timeout "$DEADLINE" "$@" >"$work/run.out" 2>"$work/run.err" || got=$?
  tr -d '\r' <"$work/run.out" >"$work/run.txt"
  ((got == want)) || fail "$name: exit code $got, expected $want: $(cat "$work/run.txt" "$work/run.err")"
  [[ -z $pattern ]] || grep -Eq "$pattern" "$work/run.txt" || fail "$name: no line matching /$pattern/ in: $(cat "$work/run.txt")"
  echo "ok   $name: $(head -1 "$work/run.txt")"
}

# run_all LABEL COMMAND...: every request, with COMMAND as the C client.
run_all() {
  local label=$1
  shift
  local text="Grüße from the $label C client ✓"
  check "$label time" 0 '^server time: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.[0-9]{3}[+-][0-9]{2}:[0-9]{2}$' -- "$@" "$addr" time
  check "$label name" 0 '^server name: c-e2e$' -- "$@" "$addr" name
  check "$label list" 0 "^ +$listener  127\.0\.0\.1 " -- "$@" "$addr" list
  grep -Eq '\(you\)$' "$work/run.txt" || fail "$label list: no (you) row"
  check "$label send" 0 "^message delivered to client $listener$" -- "$@" "$addr" send "$listener" "$text"
  IFS= read -r -t "$DEADLINE" message <&"$listen_out" || fail "$label send: the listener got nothing"
  [[ $message == *"\"text\":\"$text\""* ]] || fail "$label send: the listener got $message"
  check "$label send to nobody" 1 '\(no_such_client\)$' -- "$@" "$addr" send 4000000000 hi
  check "$label bad command line" 2 '' -- "$@" "$addr" frobnicate
}

step "the Linux build against tnlm-server"
run_all Linux "$out/tnlm-c-client"

step "the Windows build under Wine against the Linux tnlm-server"
source ci/wine-prefix.sh
trap 'wine_cleanup; cleanup' EXIT # wine-prefix.sh set its own
run_all Windows "$WINE" "$out/tnlm-c-client.exe"

step "done"
