#!/usr/bin/env bash
# The conformance checker against tnlm-server (called from .ci/run): starts
# the server on 127.0.0.1, runs `tnlm-client conform --timers` against it and
# prints its report; fails if a case fails. Waits on the server's `listening
# on` line (never a sleep). Extra arguments go to the server (e.g. --nodelay).
#
# Short timers, so that the run takes seconds: the ping comes after 2 s of
# silence, a half-sent frame is cut off after 1 s, and an unacknowledged
# message is answered after 1 s (before the 3 x 2 s heartbeat drops its
# silent target, which would make it target_gone).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -q -p tnlm-server -p tnlm-client

work=$(mktemp -d "${TMPDIR:-/tmp}/tnlm-conform.XXXXXX")
server_pid=
cleanup() {
  [[ -z $server_pid ]] || kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkfifo "$work/server.out"
target/debug/tnlm-server --bind 127.0.0.1 --port 0 --heartbeat 2 --frame-timeout 1 --ack-timeout 1 "$@" </dev/null >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
exec {server_out}<"$work/server.out"
IFS= read -r -t 60 line <&"$server_out" || { cat "$work/server.err" >&2; echo "no 'listening on' line" >&2; exit 1; }
cat <&"$server_out" >/dev/null &
addr=${line#listening on }
echo "tnlm-client -c $addr conform --timers (tnlm-server --heartbeat 2 --frame-timeout 1 --ack-timeout 1${*:+ $*})"
target/debug/tnlm-client -c "$addr" conform --timers
