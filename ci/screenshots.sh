#!/usr/bin/env bash
# Screenshots of the TNLM dissector in the real Wireshark GUI, for the docs:
#   docs/images/wireshark-list.png       an L response, each client expanded
#   docs/images/wireshark-trace.png      a message traced across two connections
#   docs/images/wireshark-error.png      an error frame with its expert info
#   docs/images/wireshark-stats.png      Statistics > TNLM
# Runs Wireshark under Xvfb with a fresh configuration folder per picture, into which
# `tnlm-wireshark install` puts the TNLM profile (TNLM's coloring rules first), and
# fails if Wireshark shows a Lua error or the dissector reports one, or if the picture
# of a traced message lacks the TNLM indication color.
#   bash ci/screenshots.sh [OUTDIR]     (default docs/images)
# Needs: apt-get install wireshark xvfb xdotool imagemagick x11-utils
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/images}"
lua="${TNLM_LUA:-wireshark/tnlm.lua}"   # TNLM_LUA: another dissector file (to check this script)
caps="examples/captures"
for tool in wireshark tshark Xvfb xdotool import; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing (apt-get install wireshark xvfb xdotool imagemagick x11-utils)" >&2; exit 1; }
done
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Runs "$@" until it succeeds, at most $1 tenths of a second.
poll() {
  local tenths=$1
  shift
  for _ in $(seq "$tenths"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

# The X server: it writes its display number to fd 3 when ready.
exec 3>"$work/display"
Xvfb -displayfd 3 -screen 0 1600x1200x24 -nolisten tcp 2>"$work/xvfb.log" &
pids+=($!)
poll 100 test -s "$work/display" || { echo "error: Xvfb did not start" >&2; cat "$work/xvfb.log" >&2; exit 1; }
export DISPLAY=":$(head -1 "$work/display")"
export XDG_RUNTIME_DIR="$work/xdg"
mkdir -m 700 -p "$XDG_RUNTIME_DIR"

# A readiness signal: Wireshark calls a tap's draw() once the file has been read.
cat >"$work/ready.lua" <<'LUA'
local path = os.getenv("TNLM_READY_FILE")
local tap = Listener.new("frame")
function tap.draw()
  local f = io.open(path, "w")
  f:write("ready\n")
  f:close()
end
LUA

# The dissector itself must run clean on every capture used.
for cap in list message malformed burst-100; do
  errors=$(tshark -X "lua_script:$lua" -r "$caps/$cap.pcapng" -Y _ws.lua.error 2>&1 | grep -v '^Running as user' || true)
  [ -z "$errors" ] || { echo "error: Lua errors in $cap.pcapng: $errors" >&2; exit 1; }
done

# shot NAME CAPTURE FILTER FRAME DETAILS_HEIGHT [wireshark options...]
# Opens CAPTURE filtered, selects FRAME, expands the TNLM tree, saves NAME.png.
shot() {
  local name=$1 cap=$2 filter=$3 frame=$4 details=$5
  shift 5
  local cfg="$work/cfg-$name"
  mkdir -p "$cfg"
  printf 'gui.geometry_main_x: 0\ngui.geometry_main_y: 0\ngui.geometry_main_width: 1600\ngui.geometry_main_height: 1200\ngui.geometry_main_maximized: FALSE\n' >"$cfg/recent_common"
  printf 'gui.geometry_main_upper_pane: %s\n' "$details" >"$cfg/recent"
  # The TNLM profile, as users install it (the dissector itself comes from -X below);
  # the pane sizes are per profile.
  cargo run --locked -q -p tnlm-wireshark -- install --plugins "$work/plugins" --config "$cfg" >/dev/null
  cp "$cfg/recent" "$cfg/profiles/TNLM/recent"
  local ready="$work/$name.ready"
  TNLM_READY_FILE="$ready" WIRESHARK_CONFIG_DIR="$cfg" wireshark -C TNLM -X "lua_script:$lua" -X "lua_script:$work/ready.lua" -r "$caps/$cap.pcapng" -Y "$filter" -g "$frame" \
    -o gui.layout_type:1 -o gui.layout_content_1:PDETAILS -o gui.layout_content_2:PLIST -o gui.layout_content_3:NONE \
    "$@" >"$work/$name.out" 2>"$work/$name.err" &
  local pid=$!
  pids+=("$pid")
  # Ready when the file has been read; a window titled just "Wireshark" is a
  # message box (Lua errors are shown that way).
  if ! poll 600 test -s "$ready"; then
    import -window root "$work/$name-failed.png" || true
    echo "error: $name: Wireshark did not open $cap.pcapng (see its stderr below)" >&2
    cat "$work/$name.err" >&2
    exit 1
  fi
  local win
  win=$(xdotool search --onlyvisible --pid "$pid" --name "$cap.pcapng" | head -1)
  settle "$win"
  local w
  for w in $(xdotool search --onlyvisible --pid "$pid" --name .); do
    if [ "$(xdotool getwindowname "$w")" = Wireshark ]; then dialog=1; fi
  done
  if [ -n "${dialog:-}" ]; then
    import -window root "$out/$name-error-dialog.png"
    echo "error: $name: Wireshark shows a message box (a Lua error?); see $out/$name-error-dialog.png" >&2
    exit 1
  fi
  if grep -i 'lua' "$work/$name.err" >&2; then
    echo "error: $name: Wireshark logged a Lua problem" >&2
    exit 1
  fi
  if [ "$name" != wireshark-stats ]; then
    # Select the first details row, collapse all, go to the last top-level row
    # (TNLM), expand everything under it.
    # Retried until the tree changes: the first click can come before the
    # window takes input.
    import -window "$win" "$work/before.rgb"
    local tries=0
    while :; do
      xdotool mousemove --window "$win" 200 98 click 1
      xdotool key --window "$win" ctrl+Left End shift+Right
      settle "$win"
      import -window "$win" "$work/after.rgb"
      cmp -s "$work/before.rgb" "$work/after.rgb" || break
      tries=$((tries + 1))
      [ "$tries" -lt 50 ] || { echo "error: $name: the details tree did not expand" >&2; exit 1; }
    done
  else
    local stats=""
    for w in $(xdotool search --onlyvisible --pid "$pid" --name .); do
      case "$(xdotool getwindowname "$w")" in *"TNLM statistics"*) stats=$w ;; esac
    done
    [ -n "$stats" ] || { echo "error: the TNLM statistics window did not open" >&2; exit 1; }
    settle "$stats"
    import -window "$stats" "$out/$name.png"
  fi
  if [ "$name" != wireshark-stats ]; then
    import -window "$win" "$out/$name.png"
  fi
  if [ "$name" = wireshark-trace ]; then
    # The M indication's row has the "TNLM indication" background (16-bit
    # 50372,59110,65535 in tnlm.colorfilters: #C4E6FF).
    local colors
    colors=$(convert "$out/$name.png" -format %c histogram:info:-)
    if ! grep -qi 'C4E6FF' <<<"$colors"; then
      echo "error: $name: no row in the TNLM indication color: the profile's rules did not apply" >&2
      exit 1
    fi
  fi
  kill "$pid"
  echo "wrote $out/$name.png"
}

# Waits until two screenshots of the window in a row are identical (rendering done).
settle() {
  local a="$work/settle-a.rgb" b="$work/settle-b.rgb"
  import -window "$1" "$a"
  for _ in $(seq 50); do
    import -window "$1" "$b"
    if cmp -s "$a" "$b"; then return 0; fi
    mv "$b" "$a"
  done
}

shot wireshark-list list 'tnlm.clients' 18 820
shot wireshark-trace message 'tnlm.trace.key' 15 760
shot wireshark-error malformed "tnlm.expert.bad_magic || tnlm.type == 'E'" 11 760
shot wireshark-stats message-unknown-id 'tnlm' 8 600 -z tnlm,stat
