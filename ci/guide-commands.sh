#!/usr/bin/env bash
# Runs the Linux commands of a student guide (docs/GUIDE.md, or the one given:
# docs/zh/GUIDE.md) exactly as written, against a real tnlm-server on
# 127.0.0.1:4579, and checks that every file and function named in its
# socket-call map exists.
#
# A shell block in the guide is run when the line before its ```sh fence is a
# marker comment:
#   <!-- guide-test: server -->      (re)start the server with this command, in the
#                                     background; wait for its `listening on` line
#   <!-- guide-test: background -->  start it in the background; wait for its first line
#   <!-- guide-test: run [exit=N] --> run it (with bash -e: a block of several commands
#                                     stops at the first that fails); it must exit
#                                     with N (default 0)
#   <!-- guide-test: lab [root] -->   run an experiment; `root`: only as root (it makes
#                                     network namespaces), skipped with a message otherwise
# The programs are this workspace's debug builds, put first on PATH, as the
# guide's "put the programs on your PATH" step does. Called by ci/test.sh;
# TNLM_GUIDE_LABS=0 leaves out the experiments (they have their own tests).
# Blocks that need tshark skip without it, unless TNLM_REQUIRE names tshark or
# says all (CI), or the older TNLM_REQUIRE_TSHARK=1.
set -euo pipefail
cd "$(dirname "$0")/.."

# True when TNLM_REQUIRE (all, or a comma-separated list) names the need $1.
requires() { [[ ${TNLM_REQUIRE:-} == all || ,${TNLM_REQUIRE:-}, == *,$1,* ]]; }
guide=${1:-docs/GUIDE.md}
readonly DEADLINE=30 # seconds to wait for a program's first line

cargo build -q --locked -p tnlm-server -p tnlm-client -p tnlm-labs
export PATH="${CARGO_TARGET_DIR:-$PWD/target}/debug:$PATH"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# start_waiting NAME COMMAND: runs COMMAND in the background and waits (on a
# pipe, no polling) for its first stdout line, which it echoes.
start_waiting() {
  local name=$1 command=$2 line fd
  mkfifo "$work/$name.out"
  bash -c "$command" <"/dev/null" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=("$!")
  exec {fd}<"$work/$name.out"
  IFS= read -r -t "$DEADLINE" line <&"$fd" || {
    cat "$work/$name.err" >&2
    fail "no output from: $command"
  }
  cat <&"$fd" >/dev/null & # keep draining its output
  exec {fd}<&-
  echo "    $line"
}

stop_all() {
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}

if ss -Htln 'sport = :4579' | grep -q .; then
  fail "port 4579 is in use; the guide's commands need it"
fi

blocks=0
run_block() {
  local marker=$1 block=$2 kind expect=0 rc
  read -r kind rest <<<"$marker"
  [[ $rest =~ exit=([0-9]+) ]] && expect=${BASH_REMATCH[1]}
  blocks=$((blocks + 1))
  echo "== [$kind] $block"
  case $kind in
  server)
    stop_all
    rm -f "$work"/*.out
    start_waiting "server$blocks" "exec $block"
    ;;
  background) start_waiting "bg$blocks" "exec $block" ;;
  run | lab)
    if [[ $kind == lab && ${TNLM_GUIDE_LABS:-1} == 0 ]]; then
      echo "    (skipped: TNLM_GUIDE_LABS=0)"
      return
    fi
    if [[ $kind == lab && $rest == *root* && $EUID -ne 0 ]]; then
      requires netns && fail "a network namespace is needed (root) but TNLM_REQUIRE asks for it"
      echo "    (skipped: needs root for its network namespace)"
      return
    fi
    if [[ $block == *tshark* ]] && ! command -v tshark >/dev/null; then
      { [[ ${TNLM_REQUIRE_TSHARK:-0} == 1 ]] || requires tshark; } && fail "tshark is missing but TNLM_REQUIRE asks for it"
      echo "    (skipped: tshark is not installed; apt-get install tshark)"
      return
    fi
    set +e
    timeout 300 bash -e -c "$block" >"$work/run.out" 2>&1
    rc=$?
    set -e
    sed 's/^/    /' "$work/run.out" | tail -n 4
    ((rc == expect)) || {
      cat "$work/run.out" >&2
      fail "exit code $rc, expected $expect: $block"
    }
    ;;
  *) fail "unknown marker '$marker' in $guide" ;;
  esac
}

# Read the guide: a marker, then the ```sh block right after it.
marker='' block='' in_block=0
while IFS= read -r line; do
  if ((in_block)); then
    if [[ $line == '```' ]]; then
      run_block "$marker" "$block"
      in_block=0 marker='' block=''
    else
      block+="${block:+$'\n'}$line"
    fi
  elif [[ $line =~ ^'<!-- guide-test: '(.*)' -->'$ ]]; then
    marker=${BASH_REMATCH[1]}
  elif [[ -n $marker && $line == '```sh' ]]; then
    in_block=1
  elif [[ -n $marker && -n $line ]]; then
    fail "marker '$marker' is not followed by a \`\`\`sh block in $guide"
  fi
done <"$guide"
stop_all
((blocks >= 10)) || fail "only $blocks marked blocks found in $guide"

# The socket-call map: every `file` → `Type::function` it names must exist
# (the calls in parentheses after them are library calls, not checked).
python3 - "$guide" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
section = text.split("\n## 2. ", 1)[1].split("\n## 3. ", 1)[0]
checked = 0
for row in (line for line in section.splitlines() if line.startswith("| ")):
    # The TNLM column, without the calls shown in parentheses (`Socket::new`)
    # (the Chinese guide writes them in full-width parentheses)
    tnlm = re.sub(r"[(（][^)）]*[)）]", "", row.split(" | ")[1])
    # "`path` → `name`, `name` (...), running `path2` → `name`": names belong to the path before them
    for path, names in re.findall(r"`([a-z]+/src/[a-z_/]+\.rs)` → ((?:[^`]*`[^`/]+`)+?)(?=[^`]*(?:`[a-z]+/src/|$))", tnlm):
        source = open(path, encoding="utf-8").read()
        for name in re.findall(r"`([A-Za-z_:]+)", names):
            last = name.split("::")[-1]
            pattern = rf"fn {last}\b" if last.islower() else rf"\b{last}\b"
            if not re.search(pattern, source):
                sys.exit(f"FAIL: the socket-call map names {name} in {path}, which has no {pattern!r}")
            checked += 1
if checked < 20:
    sys.exit(f"FAIL: only {checked} names found in the socket-call map")
print(f"guide: the socket-call map's {checked} file/function names exist")
PY
echo "guide: $blocks command blocks ran as written"
