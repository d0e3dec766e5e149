#!/usr/bin/env bash
# Checks the release artefacts of ci/release.sh as a user gets them:
#
#   1. SHA256SUMS verifies the zip, the tarball and every file unpacked from them;
#   2. the zip holds exactly tnlm-server.exe, tnlm-client.exe and tnlm.lua, the
#      tarball tnlm-server, tnlm-client and tnlm.lua, and both tnlm.lua files are
#      the committed dissector;
#   3. the unzipped .exe programs run under Wine against the unpacked Linux
#      programs over 127.0.0.1: a Linux server with the Windows client (time,
#      name, list, and a message delivered to a Linux listener), and the Windows
#      server with a Linux client; the server is stopped with `quit`.
#
# It waits on the servers' `listening on` line and the listener's hello, never
# a sleep, and checks exit codes and --json fields. ci/release.sh runs it after
# packing; it can also be run on its own once the artefacts exist.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { echo "== $* [$((SECONDS - started)) s]"; }
fail() {
  echo "FAIL: $*" >&2
  for log in "$work"/*.err; do
    [[ -s $log ]] && { echo "--- ${log##*/}"; tail -20 "$log"; } >&2
  done
  exit 1
}
readonly DEADLINE=60 # seconds any one step may take under Wine

version=$(cargo pkgid -p tnlm-server)
version=${version##*[@#]}
out=target/release-artifacts
windows=tnlm-$version-windows-x86_64
linux=tnlm-$version-linux-x86_64
for file in "$out/$windows.zip" "$out/$linux.tar.gz" "$out/SHA256SUMS"; do
  [[ -f $file ]] || { echo "missing $file: run ci/release.sh first" >&2; exit 2; }
done

source ci/wine-prefix.sh # sets WINE, and an EXIT trap that removes the prefix
work=$(mktemp -d "${TMPDIR:-/tmp}/tnlm-release-check.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
  wine_cleanup
}
trap cleanup EXIT

step "unpack and verify SHA256SUMS"
cp "$out/$windows.zip" "$out/$linux.tar.gz" "$out/SHA256SUMS" "$work/"
(cd "$work" && python3 -m zipfile -e "$windows.zip" . && tar -xzf "$linux.tar.gz" && sha256sum --strict -c SHA256SUMS)

step "contents"
listing() { (cd "$work/$1" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' '); }
[[ $(listing "$windows") == "tnlm-client.exe tnlm-server.exe tnlm.lua " ]] || fail "zip holds: $(listing "$windows")"
[[ $(listing "$linux") == "tnlm-client tnlm-server tnlm.lua " ]] || fail "tarball holds: $(listing "$linux")"
for dir in "$windows" "$linux"; do
  cmp -s "$work/$dir/tnlm.lua" wireshark/tnlm.lua || fail "$dir/tnlm.lua is not wireshark/tnlm.lua"
done
[[ -x $work/$linux/tnlm-server && -x $work/$linux/tnlm-client ]] || fail "the Linux programs are not executable"
win_client=("$WINE" "$work/$windows/tnlm-client.exe")
win_server=("$WINE" "$work/$windows/tnlm-server.exe")
lin_client=("$work/$linux/tnlm-client")
lin_server=("$work/$linux/tnlm-server")
for program in tnlm-server tnlm-client; do
  line=$("$WINE" "$work/$windows/$program.exe" --version | tr -d '\r')
  [[ $line == "$program $version" ]] || fail "$program.exe --version says '$line'"
done

# start NAME COMMAND...: starts a program in the background with its stdin held
# open (for `quit`), and reads its first stdout line into $first.
start() {
  local name=$1 fd
  shift
  mkfifo "$work/$name.in" "$work/$name.out"
  exec {fd}<>"$work/$name.in"
  "$@" <"$work/$name.in" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=("$!")
  eval "${name}_pid=$! ${name}_in=$fd"
  exec {fd}<"$work/$name.out"
  IFS= read -r -t "$DEADLINE" first <&"$fd" || fail "$name printed nothing"
  first=${first%$'\r'}
  cat <&"$fd" >/dev/null &
  exec {fd}<&-
}
# json COMMAND...: runs a client command with --json; fails unless it exits 0; sets $json.
json() {
  json=$(timeout "$DEADLINE" "$@" --json 2>>"$work/client.err" | tr -d '\r') || fail "exit code $? from: $*"
}
port_of() { [[ $1 =~ ^listening\ on\ .*:([0-9]+)$ ]] && echo "${BASH_REMATCH[1]}"; }

step "Linux server (tarball), Windows client (zip) under Wine"
start linserver "${lin_server[@]}" --bind 127.0.0.1 --port 0 --name release-check
port=$(port_of "$first") || fail "unexpected first line: $first"
start listener "${lin_client[@]}" -c "127.0.0.1:$port" --json listen --count 1
listener=$(jq -r 'select(.type == "hello") | .id' <<<"$first")
[[ $listener =~ ^[0-9]+$ ]] || fail "the listener's first line: $first"
json "${win_client[@]}" -c "127.0.0.1:$port" time
jq -e 'select(.type == "time") | .time | test("^[0-9]{4}-")' <<<"$json" >/dev/null || fail "time: $json"
json "${win_client[@]}" -c "127.0.0.1:$port" name
[[ $(jq -r 'select(.type == "name") | .name' <<<"$json") == release-check ]] || fail "name: $json"
json "${win_client[@]}" -c "127.0.0.1:$port" list
jq -e 'select(.type == "list") | .clients | length >= 2' <<<"$json" >/dev/null || fail "list: $json"
json "${win_client[@]}" -c "127.0.0.1:$port" send "$listener" "from the zip"
jq -e 'select(.type == "delivery") | .delivered' <<<"$json" >/dev/null || fail "send: $json"
echo quit >&"$linserver_in"
wait "$linserver_pid" || fail "the Linux server exited with $?"

step "Windows server (zip) under Wine, Linux client (tarball)"
start winserver "${win_server[@]}" --bind 127.0.0.1 --port 0 --name release-check
port=$(port_of "$first") || fail "unexpected first line: $first"
json "${lin_client[@]}" -c "127.0.0.1:$port" time
jq -e 'select(.type == "time")' <<<"$json" >/dev/null || fail "time: $json"
json "${win_client[@]}" -c "127.0.0.1:$port" name
[[ $(jq -r 'select(.type == "name") | .name' <<<"$json") == release-check ]] || fail "name: $json"
echo quit >&"$winserver_in"
wait "$winserver_pid" || fail "the Windows server exited with $?"

step "release artefacts check passed"
