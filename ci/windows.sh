#!/usr/bin/env bash
# Windows, checked and tested on this Debian machine (called from .ci/run):
#
#   1. installs Debian's Rust (rustc-web, cargo-web, rust-web-src, rust-web-clippy),
#      the mingw-w64 cross compiler and wine64 (plus llvm-lib and jq if missing);
#   2. cargo clippy -D warnings for x86_64-pc-windows-gnu and x86_64-pc-windows-msvc
#      (check only): the whole workspace, and on msvc also the dissector's mlua
#      tests (Lua 5.4, vendored C);
#   3. builds the test suite for x86_64-pc-windows-gnu and runs it under Wine;
#   4. ci/windows-e2e.sh: the Windows binaries under Wine talk to each other and
#      to the Linux binaries over 127.0.0.1.
#
# Debian's Rust is used for these Windows builds only: /usr/bin goes first on
# PATH and RUSTC_BOOTSTRAP=1 (for -Zbuild-std, which builds std for the Windows
# targets from rust-web-src) are set per command, never exported, and the
# builds go to their own target directory (target/win), so the Linux build
# stays on rustup's toolchain and the two never wait for each other's lock.
#
# Extra arguments go to the `cargo test` run under Wine (e.g. `-p tnlm-core`);
# `ci/windows.sh --install-only` stops after installing and checking the tools.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { echo "== $* [$((SECONDS - started)) s]"; }
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

readonly GNU=x86_64-pc-windows-gnu MSVC=x86_64-pc-windows-msvc
WIN_TARGET_DIR=${TNLM_WIN_TARGET_DIR:-$PWD/target/win}

step "Windows toolchain: Debian's rustc-web + rust-src, mingw-w64, wine64"
packages=(rustc-web cargo-web rust-web-src rust-web-clippy gcc-mingw-w64-x86-64 wine64)
command -v llvm-lib >/dev/null || packages+=(llvm) # AR for mlua's C on msvc
command -v jq >/dev/null || packages+=(jq)         # the end-to-end test reads --json output
missing=()
for package in "${packages[@]}"; do
  [[ $(dpkg-query -W -f '${db:Status-Status}' "$package" 2>/dev/null) == installed ]] || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; }
  install || { apt-get update -q && install; }
fi

# Debian's toolchain, for the commands it prefixes only.
WIN=(env "PATH=/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 "CARGO_TARGET_DIR=$WIN_TARGET_DIR")
# mlua's vendored Lua is C: for msvc, compile it with mingw's gcc and archive with llvm-lib.
MSVC_CC=("CC_${MSVC//-/_}=x86_64-w64-mingw32-gcc" "AR_${MSVC//-/_}=llvm-lib")

"${WIN[@]}" sh -c 'echo "Windows builds: $(command -v cargo) $(command -v rustc) $(command -v cargo-clippy)"'
"${WIN[@]}" cargo -V
"${WIN[@]}" rustc -V
"${WIN[@]}" cargo clippy -V
if [[ $("${WIN[@]}" sh -c 'command -v cargo') != /usr/bin/cargo ]]; then
  echo "error: Debian's cargo is not /usr/bin/cargo" >&2
  exit 1
fi
# cargo-web puts a second cargo in /usr/bin: the Linux build must keep rustup's.
echo "Linux build: $(command -v cargo): $(cargo -V)"
if command -v rustup >/dev/null && [[ $(command -v cargo) == /usr/bin/cargo ]]; then
  echo "error: rustup is installed but PATH finds /usr/bin/cargo first; put ~/.cargo/bin first" >&2
  exit 1
fi

if [[ ${1:-} == --install-only ]]; then
  exit 0
fi

for target in $GNU $MSVC; do
  lints=(-D warnings)
  # windows-gnu has no native #[thread_local]: clippy then flags `thread_local!`
  # initializers that are already `const` (rust-lang/rust-clippy#17566).
  [[ $target == "$GNU" ]] && lints+=(-A clippy::missing_const_for_thread_local)
  step "cargo clippy --target $target (workspace, all targets)"
  "${WIN[@]}" "${MSVC_CC[@]}" cargo clippy -Zbuild-std --workspace --all-targets --locked --target "$target" \
    -- "${lints[@]}"
done
# The dissector's mlua tests are an optional feature, outside the workspace run:
# once for Windows, on msvc, where mlua's C needs the mingw CC and llvm-lib above.
step "cargo clippy --target $MSVC (tnlm-wireshark --features lua54: mlua and its C)"
"${WIN[@]}" "${MSVC_CC[@]}" cargo clippy -Zbuild-std -p tnlm-wireshark --all-targets --locked --features lua54 \
  --target $MSVC -- -D warnings

step "Wine prefix"
source ci/wine-prefix.sh

# Tests beyond what Wine does in time (every socket call is a round trip to the
# one wineserver); they stay for Linux and real Windows. As observed:
wine_skips=(
  # the flood is slower than the 2 s write timeout: the stuck client is cut off
  # early, so most messages get no_such_client instead of queue_full
  a_client_that_never_reads_cannot_stall_anyone
  # reads time out (WSAETIMEDOUT, 20 s) with 1,000 clients and 2,000 server threads
  a_thousand_clients_times_a_hundred_requests
  # every thread joined after ~4.5 s, over the test's 3 s bound
  shutdown_under_load_answers_or_fails_everything_and_joins_quickly
  # WSAEMFILE ("too many open files") before 10,000 connections
  ten_thousand_connections_at_once
  # shutdown(Both) wakes neither a blocked recv nor a blocked send under Wine
  # (docs/PLATFORMS.md): the departing client's flusher waits out its write
  # timeout, 30 s in all, instead of being cut at the end of the grace
  shutdown_ends_within_its_grace_while_a_departing_client_has_unread_output
  # examples/labs: Wine's netstat.exe takes ~8 s, the check must finish within the 2 s accept delay
  connect_completes_from_the_listen_queue_before_accept
)
skip_args=()
for name in "${wine_skips[@]}"; do
  skip_args+=(--skip "$name")
done

step "cargo test --target $GNU under Wine (skipped under Wine: ${wine_skips[*]})"
# The tshark tests cannot capture here (Linux's tshark, a Windows test binary), the
# netns and kernel-counter tests are Linux's, and the C client's are run by
# ci/c-client.sh (its mingw build under Wine): under Wine they skip, saying so.
runner=CARGO_TARGET_${GNU//-/_}_RUNNER
test_args=("$@")
((${#test_args[@]})) || test_args=(--workspace)
env -u TNLM_REQUIRE_TSHARK -u TNLM_REQUIRE_CC -u TNLM_REQUIRE "${WIN[@]}" "${runner^^}=$WINE" \
  timeout --kill-after=10s 20m cargo test -Zbuild-std --locked --no-fail-fast --target $GNU "${test_args[@]}" -- "${skip_args[@]}"

if (($# == 0)); then
  step "the server's and the client's suites again under Wine, against the event engine (mio's Windows backend)"
  env -u TNLM_REQUIRE_TSHARK -u TNLM_REQUIRE_CC -u TNLM_REQUIRE TNLM_TEST_ENGINE=events "${WIN[@]}" "${runner^^}=$WINE" \
    timeout --kill-after=10s 10m cargo test -Zbuild-std --locked --no-fail-fast --target $GNU -p tnlm-server \
    -p tnlm-client -- "${skip_args[@]}"
fi

step "end to end: Windows and Linux binaries over 127.0.0.1 (ci/windows-e2e.sh)"
"${WIN[@]}" cargo build -Zbuild-std --locked -p tnlm-server -p tnlm-client --target $GNU
cargo build --locked -p tnlm-server -p tnlm-client
bash ci/windows-e2e.sh "$WIN_TARGET_DIR/$GNU/debug" target/debug

step "Windows: all green"
