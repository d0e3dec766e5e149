#!/usr/bin/env bash
# Checks wireshark/tnlm.lua in Wireshark 4.4+ (Debian 13 "trixie": Lua 5.4), in a
# debootstrap chroot this script builds once (needs root; ~3-6 minutes the first time,
# cached in $TNLM_TRIXIE_ROOT, default /var/tmp/tnlm-trixie).
#
# It checks that the fields register with a clean stderr, and that every sample capture in
# examples/captures/ (with labs/many-clients and the hand-made hard/ ones), and a capture
# of every message kind (coalesced, split, malformed) made by the text2pcap test, dissect
# to exactly the same fields, Info column, request/response links, message traces,
# unanswered warnings (one pass, -2 with and without a filter) and -z tnlm,stat output as
# with the host's tshark (Debian 12: Wireshark 4.0, Lua 5.2).
#
# The Debian mirror is taken from this machine's apt sources.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${TNLM_TRIXIE_ROOT:-/var/tmp/tnlm-trixie}"
suite="${TNLM_TRIXIE_SUITE:-trixie}"

if [ ! -x "$root/usr/bin/tshark" ]; then
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap ||
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap; }
  mirror=$(grep -rhoE '^URIs: *[^ ]+/debian/?$' /etc/apt/sources.list.d/ 2>/dev/null | head -1 | sed 's/^URIs: *//')
  if [ -z "$mirror" ]; then
    mirror=$(grep -hoE '^deb +[^ ]+/debian/? ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')
  fi
  [ -n "$mirror" ] || { echo "error: no Debian mirror found in /etc/apt/sources*" >&2; exit 1; }
  rm -rf "$root"
  debootstrap --variant=minbase "$suite" "$root" "$mirror"
  echo "wireshark-common wireshark-common/install-setuid boolean false" | chroot "$root" debconf-set-selections
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends tshark
fi

in_root() { chroot "$root" env HOME=/root "$@"; }
version=$(in_root tshark --version | head -1)
echo "== $version"

# As root, Wireshark 4.4+ ignores -X lua_script unless the global init.lua allows it.
global=$(in_root tshark -G folders | awk -F':[ \t]*' '/^Global Lua Plugins/{print $2}')
init="$root$global/init.lua"
if ! grep -qs '^run_user_scripts_when_superuser *= *true' "$init"; then
  mkdir -p "$(dirname "$init")"
  echo "run_user_scripts_when_superuser = true" >>"$init"
fi

work="$root/tmp/tnlm"
rm -rf "$work" && mkdir -p "$work"
cp wireshark/tnlm.lua examples/captures/*.pcapng examples/captures/labs/many-clients.pcapng examples/captures/hard/*.pcapng "$work/"
# Also every message kind, coalesced, split and malformed (built by the text2pcap test).
TNLM_KEEP_PCAP_DIR="$work" cargo test --locked -q -p tnlm-wireshark --test tshark text2pcap >/dev/null
lua="lua_script:/tmp/tnlm/tnlm.lua"

fail=0
errors=$(in_root tshark -G fields -X "$lua" 2>&1 >"$work/fields.txt" | grep -v '^Running as user' || true)
if [ -n "$errors" ]; then echo "FAIL: tshark -G fields printed: $errors"; fail=1; fi
count=$(grep -c $'\ttnlm\\.' "$work/fields.txt" || true)
want=$(tshark -G fields -X lua_script:wireshark/tnlm.lua 2>/dev/null | grep -c $'\ttnlm\\.' || true)
echo "fields registered: $count (host: $want)"
[ "$count" -gt 0 ] && [ "$count" = "$want" ] || { echo "FAIL: field registration differs"; fail=1; }

fields=(-e frame.number -e tnlm.type -e tnlm.class -e tnlm.request_id -e tnlm.length -e tnlm.client.id
        -e tnlm.client.ip -e tnlm.client.port -e tnlm.msg.from -e tnlm.msg.to -e tnlm.msg.text -e tnlm.status
        -e tnlm.error.code -e tnlm.name -e tnlm.time -e _ws.col.Info -e _ws.malformed -e _ws.lua.error
        -e tnlm.request_in -e tnlm.response_in -e tnlm.response_time -e tnlm.conn.client_id -e tnlm.conn.server
        -e tnlm.trace.key -e tnlm.trace.request_in -e tnlm.trace.indication_in -e tnlm.trace.ack_in
        -e tnlm.trace.response_in -e tnlm.trace.time)
# Without a display filter, only the TNLM packets' lines (those with a tnlm.type): TCP's
# own Info text for other segments differs between Wireshark versions.
only_tnlm() {
  if [ "$1" = "two passes, no filter" ]; then awk -F'\t' '$2 != ""'; else cat; fi
}
# compare NAME WHAT TSHARK-ARGS...: the chroot's output against the host's, for one capture.
compare() {
  local name=$1 what=$2
  shift 2
  local new old errors
  new=$(in_root tshark -X "$lua" -r "/tmp/tnlm/$name" "$@" 2>"$work/err.txt" | only_tnlm "$what")
  old=$(tshark -X lua_script:wireshark/tnlm.lua -r "$capture" "$@" 2>/dev/null | only_tnlm "$what")
  errors=$(grep -v '^Running as user' "$work/err.txt" || true)
  if [ -n "$errors" ]; then
    echo "FAIL $name ($what): stderr: $errors"; fail=1
  elif [ "$new" != "$old" ]; then
    echo "FAIL $name ($what): differs from the host's tshark:"; diff <(echo "$old") <(echo "$new") | head -20; fail=1
  elif [ -z "$new" ] && [ "$what" != unanswered ]; then
    echo "FAIL $name ($what): no output"; fail=1
  else
    echo "ok   $name ($what): $(echo "$new" | grep -c .) lines, same as $(tshark --version | head -1 | cut -d' ' -f1-3)"
  fi
}
for capture in examples/captures/*.pcapng examples/captures/labs/many-clients.pcapng \
  examples/captures/hard/*.pcapng "$work/samples.pcapng"; do
  name=$(basename "$capture")
  compare "$name" "one pass" -Y tnlm -T fields -E occurrence=a "${fields[@]}"
  compare "$name" "two passes" -2 -Y tnlm -T fields -E occurrence=a "${fields[@]}"
  # Two passes without a display filter: the first pass builds no tree.
  compare "$name" "two passes, no filter" -2 -T fields -E occurrence=a "${fields[@]}"
  compare "$name" unanswered -2 -Y tnlm.expert.no_response -T fields -e frame.number
  compare "$name" statistics -q -z tnlm,stat
done
exit "$fail"
