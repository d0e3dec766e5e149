#!/usr/bin/env bash
# End to end across platforms: the Windows tnlm-server.exe and tnlm-client.exe
# (run under Wine) talk to each other and to the Linux binaries over 127.0.0.1.
#
#   ci/windows-e2e.sh WINDOWS_BIN_DIR LINUX_BIN_DIR
#
# ci/windows.sh runs it with WINEPREFIX, WINEDEBUG and WINEDLLOVERRIDES set up.
# For each pairing (Windows server + Windows clients, Windows server + Linux
# clients, Linux server + Windows clients) it does every request type, a
# forwarded message, an unknown id, a burst of 1,000 time requests, a refused
# connection and a bad command line, with every socket option set on both
# ends, then stops the server with `quit`. It waits on the server's
# `listening on <addr>:<port>` line and on the listener's hello (never a
# sleep), and asserts on exit codes and --json fields, never on OS error text.
# Only this project's own warning wording is matched ("retries unsupported").
set -euo pipefail

if (($# != 2)); then
  echo "usage: $0 WINDOWS_BIN_DIR LINUX_BIN_DIR" >&2
  exit 2
fi
win_dir=$1
linux_dir=$2
WINE=${WINE:-/usr/lib/wine/wine64}
for file in "$win_dir/tnlm-server.exe" "$win_dir/tnlm-client.exe" "$linux_dir/tnlm-server" "$linux_dir/tnlm-client"; do
  [[ -f $file ]] || { echo "missing $file" >&2; exit 2; }
done

# Every socket option, on every client and on the server.
FLAGS=(--nodelay --keepalive 7,3,4 --linger 0 --user-timeout 1500 --recv-buffer 65536 --send-buffer 65536)
DEADLINE=60 # seconds any one step may take before it counts as hung
TEXT="Grüße from the e2e test ✓"

work=$(mktemp -d "${TMPDIR:-/tmp}/tnlm-e2e.XXXXXX")
started=()
cleanup() {
  local pid
  for pid in "${started[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

checks=0
fail() {
  echo "FAIL [$pairing]: $*" >&2
  for log in "$work"/*.err; do
    [[ -s $log ]] && { echo "--- ${log##*/}"; tail -20 "$log"; } >&2
  done
  exit 1
}
ok() { checks=$((checks + 1)); }

# The command that runs program $2 (server|client) for platform $1 (windows|linux).
program() {
  case $1 in
    windows) cmd=("$WINE" "$win_dir/tnlm-$2.exe") ;;
    linux) cmd=("$linux_dir/tnlm-$2") ;;
  esac
}

# start_server OS NAME: starts it on a free port; sets server_pid, server_port, server_in.
start_server() {
  program "$1" server
  local name=$2 line
  mkfifo "$work/$name.in" "$work/$name.out"
  exec {server_in}<>"$work/$name.in" # its stdin, held open: `quit` goes here
  RUST_LOG=debug "${cmd[@]}" --port 0 --name "$name" "${FLAGS[@]}" \
    <"$work/$name.in" >"$work/$name.out" 2>"$work/$name.err" &
  server_pid=$!
  started+=("$server_pid")
  exec {server_out}<"$work/$name.out"
  IFS= read -r -t "$DEADLINE" line <&"$server_out" || fail "server $name never said 'listening on'"
  line=${line%$'\r'}
  [[ $line =~ ^listening\ on\ (.+):([0-9]+)$ ]] || fail "unexpected first line from the server: $line"
  server_port=${BASH_REMATCH[2]}
  ((server_port > 0)) || fail "port 0 in '$line'"
  cat <&"$server_out" >"$work/$name.stdout" & # the rest of its stdout (console `list` output)
  exec {server_out}<&-
  ok
}

# client OS ARGS...: runs one client command with every flag and --json against
# the server; sets rc and out (stdout), stderr goes to $work/client.err.
client() {
  program "$1" client
  shift
  set +e
  timeout "$DEADLINE" "${cmd[@]}" -c "127.0.0.1:$server_port" --json --verbose "${FLAGS[@]}" "$@" \
    >"$work/client.out" 2>"$work/client.err"
  rc=$?
  set -e
  ((rc != 124)) || fail "client $* hung"
  out=$(tr -d '\r' <"$work/client.out")
}

# expect_json FILTER: the jq filter over the client's output lines must be true.
expect_json() {
  jq -e -s "$1" <<<"$out" >/dev/null || fail "expected $1 from: $out"
  ok
}

# The flags took effect on a client of OS $1 (its --verbose log and warnings).
expect_flags_applied() {
  local err=$work/client.err
  grep -q "socket options in effect: nodelay=on keepalive=on" "$err" || fail "no effective options in $(cat "$err")"
  grep -q "linger=0s" "$err" || fail "linger not read back as 0s"
  case $1 in
    windows)
      # Wine 8.0 has no TCP_KEEPCNT: retries warn, time and interval stay applied.
      grep -q "retries unsupported" "$err" || fail "no 'retries unsupported' warning"
      grep -q "time 7s and interval 3s are applied" "$err" || fail "keepalive time/interval not reported applied"
      grep -q -- "--user-timeout not applied" "$err" || fail "no --user-timeout warning"
      grep -q "recv_buffer=65536 send_buffer=65536" "$err" || fail "buffers not read back as set"
      ;;
    linux)
      ! grep -q "warning" "$err" || fail "unexpected warning on Linux: $(grep warning "$err")"
      grep -q "time=7s interval=3s retries=4" "$err" || fail "keepalive not read back"
      grep -q "user_timeout=1500ms recv_buffer=131072 send_buffer=131072" "$err" || fail "user timeout/buffers"
      ;;
  esac
  ok
}

# One server on platform $1, clients on platform $2.
pairing() {
  local server_os=$1 client_os=$2 name="e2e-$1" listener_pid listener_out line id
  pairing="$server_os server, $client_os clients"
  echo "-- $pairing"
  start_server "$server_os" "$name"

  # A listener, to receive a forwarded message; ready once its hello is printed.
  program "$client_os" client
  mkfifo "$work/listener.out"
  timeout "$DEADLINE" "${cmd[@]}" -c "127.0.0.1:$server_port" --json "${FLAGS[@]}" listen --count 1 \
    >"$work/listener.out" 2>"$work/listener.err" &
  listener_pid=$!
  started+=("$listener_pid")
  exec {listener_out}<"$work/listener.out"
  IFS= read -r -t "$DEADLINE" line <&"$listener_out" || fail "no hello from the listener"
  out=${line%$'\r'}
  expect_json ".[0].type == \"hello\" and .[0].server == \"$name\" and .[0].version >= 1"
  id=$(jq -r .id <<<"$out")

  client "$client_os" time
  ((rc == 0)) || fail "time: exit $rc"
  expect_json 'length == 1 and .[0].type == "time" and .[0].request_id >= 1
    and (.[0].time | test("^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?([+-]\\d\\d:\\d\\d|Z)$"))'
  expect_flags_applied "$client_os"

  client "$client_os" name
  ((rc == 0)) || fail "name: exit $rc"
  expect_json ".[0].type == \"name\" and .[0].name == \"$name\""

  client "$client_os" list
  ((rc == 0)) || fail "list: exit $rc"
  expect_json ".[0].type == \"list\" and (.[0].clients | any(.id == $id and .ip == \"127.0.0.1\" and .port > 0))
    and (.[0].you as \$you | .[0].clients | any(.id == \$you))"

  client "$client_os" send "$id" "$TEXT"
  ((rc == 0)) || fail "send: exit $rc"
  expect_json ".[0].type == \"delivery\" and .[0].to == $id and .[0].delivered == true"
  local from
  from=$(jq -r '.from // empty' <<<"$out")
  IFS= read -r -t "$DEADLINE" line <&"$listener_out" || fail "the listener got no message"
  out=${line%$'\r'}
  expect_json ".[0].type == \"message\" and .[0].text == \"$TEXT\"
    and (.[0].from_addr | startswith(\"127.0.0.1:\"))${from:+ and .[0].from == $from}"
  exec {listener_out}<&-
  wait "$listener_pid" || fail "listener exit $?"

  client "$client_os" send 4000000000 "to nobody"
  ((rc == 1)) || fail "send to an unknown id: exit $rc, expected 1"
  expect_json '.[0].type == "delivery" and .[0].delivered == false and .[0].status == "no_such_client"'

  client "$client_os" time --repeat 1000
  ((rc == 0)) || fail "time --repeat 1000: exit $rc"
  expect_json 'map(select(.type == "time")) | length == 1000'
  expect_json '.[-1] | .type == "repeat" and .sent == 1000 and .received == 1000 and .matched == 1000'
  echo "   1,000 time requests: $(jq -r 'select(.type == "repeat") | .elapsed_ms' <<<"$out") ms"

  # A bad command line is exit code 2.
  client "$client_os" time --repeat banana
  ((rc == 2)) || fail "bad command line: exit $rc, expected 2"
  ok

  # The server applied every flag to each connection and said what it lacks.
  local err=$work/$name.err
  grep -q "socket options: nodelay=on keepalive=on" "$err" || fail "server logged no effective options"
  if [[ $server_os == windows ]]; then
    grep -q "retries unsupported" "$err" || fail "Windows server: no 'retries unsupported' warning"
    grep -q -- "--user-timeout not applied" "$err" || fail "Windows server: no --user-timeout warning"
  else
    ! grep -q "not applied\|unsupported" "$err" || fail "Linux server warned: $(grep 'not applied\|unsupported' "$err")"
  fi
  ok

  echo quit >&"$server_in"
  local status=0
  wait "$server_pid" || status=$?
  ((status == 0)) || fail "server exit $status after quit"
  exec {server_in}>&-
  rm -f "$work"/*.in "$work"/*.out
  ok

  # Now nothing listens on that port: a refused connection is exit code 1.
  client "$client_os" time
  ((rc == 1)) || fail "refused connection: exit $rc, expected 1"
  ok
}

pairing windows windows
pairing windows linux
pairing linux windows
echo "windows e2e: $checks checks passed"
