#!/usr/bin/env bash
# The lab in C (examples/c/), built every way students build it, and run
# under Wine (called from .ci/run, after ci/c-client.sh):
#
#   1. every source (the reference server and menu client, and their
#      skeletons) with cc -std=c11 and as C++ with c++ -x c++ -std=c++17,
#      both -Wall -Wextra -Werror; the same with x86_64-w64-mingw32-gcc/g++;
#      examples/c-client as C++ too; and through CMakeLists.txt (the Visual Studio project) with cmake;
#   2. the Windows build of the C server under Wine: `tnlm-client conform
#      --timers` against it, then tnlm-client's menu (scripted) and
#      `tnlm-client listen` exchanging a message through it;
#   3. the Windows build of the menu client under Wine, driven through its
#      stdin, against the Linux tnlm-server.
#
# The Linux builds are tested by client/tests/c_lab.rs (part of ci/test.sh):
# conformance, the menu client end to end, Rust and C together, and that the
# skeletons are generated from the reference. Waits on the programs' own
# lines (never a sleep).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { echo "== $* [$((SECONDS - started)) s]"; }
DEADLINE=60 # seconds any one step may take

missing=()
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(gcc-mingw-w64-x86-64)
command -v x86_64-w64-mingw32-g++ >/dev/null || missing+=(g++-mingw-w64-x86-64)
command -v c++ >/dev/null || missing+=(g++)
command -v cmake >/dev/null || missing+=(cmake make)
[[ -x /usr/lib/wine/wine64 ]] || missing+=(wine64)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; }
  install || { apt-get update -q && install; }
fi

lab=examples/c
out=target/c-lab
mkdir -p "$out"
sources=(tnlm-server.c tnlm-menu-client.c skeleton/tnlm-server.c skeleton/tnlm-menu-client.c)
WARN=(-Wall -Wextra -Werror -O2)
build() { # LABEL COMPILER FLAGS... -- the four sources; outputs $out/LABEL-NAME
  local label=$1 compiler=$2 source name
  shift 2
  step "build ($label): $compiler $*"
  for source in "${sources[@]}"; do
    name=${source//\//-}
    name=${name%.c}
    "$compiler" "$@" -o "$out/$label-$name$exe" "$lab/$source" $libs
  done
}
exe= libs=-pthread
build c11 cc -std=c11 "${WARN[@]}"
build cxx17 c++ -x c++ -std=c++17 "${WARN[@]}"
# Static runtime libraries: the .exe then needs no mingw DLL next to it.
exe=.exe libs="-lws2_32 -static-libgcc"
build win-c11 x86_64-w64-mingw32-gcc -std=c11 "${WARN[@]}"
libs="-lws2_32 -static-libgcc -static-libstdc++"
build win-cxx17 x86_64-w64-mingw32-g++ -x c++ -std=c++17 "${WARN[@]}"

step "build: examples/c-client as C++ (c++ and mingw g++)"
c++ -x c++ -std=c++17 "${WARN[@]}" -o "$out/cxx17-tnlm-c-client" examples/c-client/tnlm-c-client.c
x86_64-w64-mingw32-g++ -x c++ -std=c++17 "${WARN[@]}" -static-libgcc -static-libstdc++ \
  -o "$out/win-cxx17-tnlm-c-client.exe" examples/c-client/tnlm-c-client.c -lws2_32 -lshell32

step "build: CMakeLists.txt (as C, then as C++)"
cmake -S "$lab" -B "$out/cmake-c" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$out/cmake-c" -j 2 >/dev/null
cmake -S "$lab" -B "$out/cmake-cxx" -DCMAKE_BUILD_TYPE=Release -DTNLM_AS_CPP=ON >/dev/null
cmake --build "$out/cmake-cxx" -j 2 >/dev/null
cargo build --locked -q -p tnlm-server -p tnlm-client

work=$(mktemp -d "${TMPDIR:-/tmp}/tnlm-c-lab.XXXXXX")
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

source ci/wine-prefix.sh
trap 'wine_cleanup; cleanup' EXIT # wine-prefix.sh set its own

step "the Windows C server under Wine: tnlm-client conform --timers"
mkfifo "$work/server.out"
"$WINE" "$out/win-c11-tnlm-server.exe" --bind 127.0.0.1 --port 0 --heartbeat 2 --frame-timeout 1 --ack-timeout 1 \
  </dev/null >"$work/server.out" 2>"$work/server.err" &
pids+=($!)
exec {server_out}<"$work/server.out"
IFS= read -r -t "$DEADLINE" line <&"$server_out" || fail "the C server never said 'listening on'"
line=${line%$'\r'}
addr=${line#listening on }
cat <&"$server_out" >/dev/null &
timeout "$DEADLINE" target/debug/tnlm-client -c "$addr" conform --timers >"$work/conform.txt" || {
  cat "$work/conform.txt"
  fail "conform against the C server under Wine"
}
tail -1 "$work/conform.txt"

step "tnlm-client's menu, scripted, against the Windows C server under Wine"
c_addr=$addr
mkfifo "$work/listen.out"
target/debug/tnlm-client -c "$c_addr" --json listen --count 1 </dev/null >"$work/listen.out" 2>"$work/listen.err" &
pids+=($!)
exec {listen_out}<"$work/listen.out"
IFS= read -r -t "$DEADLINE" hello <&"$listen_out" || fail "the listener got no hello from the C server"
[[ $hello =~ \"id\":([0-9]+) ]] || fail "no id in the listener's hello: $hello"
printf '1\n127.0.0.1\n%s\n3\n4\n5\n6\n%s\n%s\n7\n' "${c_addr##*:}" "${BASH_REMATCH[1]}" "to Wine, 你好" |
  timeout "$DEADLINE" target/debug/tnlm-client >"$work/rust-menu.txt" 2>"$work/rust-menu.err" ||
  fail "tnlm-client's menu failed: $(cat "$work/rust-menu.txt")"
for pattern in 'you are client [0-9]+$' 'server time: [0-9]{4}-' 'server name: ' '\(you\)$' "message delivered to client ${BASH_REMATCH[1]}\$" 'bye$'; do
  grep -Eq "$pattern" "$work/rust-menu.txt" || fail "no line matching /$pattern/ in the menu's output: $(cat "$work/rust-menu.txt")"
done
IFS= read -r -t "$DEADLINE" message <&"$listen_out" || fail "the listener got no message"
[[ $message == *'"text":"to Wine, 你好"'* ]] || fail "the listener got $message"
echo "ok: connect, time, name, list, send (delivered), exit"

step "the Windows menu client under Wine against tnlm-server"
mkfifo "$work/rust-server.out"
target/debug/tnlm-server --bind 127.0.0.1 --port 0 --name c-lab </dev/null >"$work/rust-server.out" 2>"$work/rust-server.err" &
pids+=($!)
exec {rust_out}<"$work/rust-server.out"
IFS= read -r -t "$DEADLINE" line <&"$rust_out" || fail "tnlm-server never said 'listening on'"
addr=${line#listening on }
cat <&"$rust_out" >/dev/null &
printf '1\n127.0.0.1\n%s\n3\n4\n5\n6\n4000000000\nhi\n2\n7\n' "${addr##*:}" |
  timeout "$DEADLINE" "$WINE" "$out/win-cxx17-tnlm-menu-client.exe" >"$work/menu.out" 2>"$work/menu.err" ||
  fail "the menu client failed: $(cat "$work/menu.out")"
tr -d '\r' <"$work/menu.out" >"$work/menu.txt"
for pattern in 'my id is [0-9]+$' 'server time: [0-9]{4}-' 'server name: c-lab$' '\(you\)$' '\(no_such_client\)$' '^> disconnected$' 'bye$'; do
  grep -Eq "$pattern" "$work/menu.txt" || fail "no line matching /$pattern/ in the menu's output: $(cat "$work/menu.txt")"
done
echo "ok: connect, time, name, list, send, disconnect, exit"

step "done"
