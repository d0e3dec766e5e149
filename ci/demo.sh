#!/usr/bin/env bash
# The main job in one command: builds TNLM, starts a server on the default port
# (4579, or $TNLM_PORT) and opens the interactive client menu connected to it.
# Extra arguments go to the client, e.g. `ci/demo.sh --nodelay`.
# When the client exits, the server is stopped (Ctrl-C) and its log is kept in
# target/demo-server.log.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${TNLM_PORT:-4579}"
log=target/demo-server.log

cargo build --release --locked --quiet -p tnlm-server -p tnlm-client
mkdir -p target
: >"$log"

# The server prints "listening on <addr>:<port>" once ready: wait for that line.
exec 3< <(exec ./target/release/tnlm-server --port "$port" </dev/null 2>>"$log")
server_pid=$!
trap 'kill -INT "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true' EXIT
if ! read -r -t 30 ready <&3; then
  echo "error: the server did not start; see $log:" >&2
  cat "$log" >&2
  exit 1
fi
echo "server: $ready (log: $log)"

./target/release/tnlm-client --connect "127.0.0.1:$port" "$@"
