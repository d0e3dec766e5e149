#!/usr/bin/env bash
# Release artefacts, in target/release-artifacts/:
#
#   tnlm-VERSION-windows-x86_64.zip   tnlm-server.exe, tnlm-client.exe (x86_64-pc-windows-gnu,
#                                     statically linked: they import only Windows' own DLLs),
#                                     tnlm.lua (the Wireshark dissector)
#   tnlm-VERSION-linux-x86_64.tar.gz  tnlm-server, tnlm-client (x86_64 glibc), tnlm.lua
#   SHA256SUMS
#
# The Windows programs are built like in ci/windows.sh (Debian's Rust with
# -Zbuild-std, in target/win), the Linux ones with rustup's toolchain. Before
# packing, the script checks the .exe imports and runs the end-to-end test
# (ci/windows-e2e.sh) on exactly these binaries, the .exe under Wine
# (TNLM_RELEASE_E2E=0 skips that); after packing, ci/release-check.sh checks
# the zip, the tarball and SHA256SUMS as a user gets them.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { echo "== $* [$((SECONDS - started)) s]"; }
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

readonly GNU=x86_64-pc-windows-gnu
WIN_TARGET_DIR=${TNLM_WIN_TARGET_DIR:-$PWD/target/win}
WIN=(env "PATH=/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 "CARGO_TARGET_DIR=$WIN_TARGET_DIR")
version=$(cargo pkgid -p tnlm-server)
version=${version##*[@#]}
out=target/release-artifacts
windows=tnlm-$version-windows-x86_64
linux=tnlm-$version-linux-x86_64

step "tools (ci/windows.sh --install-only)"
bash ci/windows.sh --install-only

step "release build for $GNU"
"${WIN[@]}" cargo build -Zbuild-std --release --locked -p tnlm-server -p tnlm-client --target $GNU
step "release build for Linux"
cargo build --release --locked -p tnlm-server -p tnlm-client

step "assemble $out/"
rm -rf "$out"
mkdir -p "$out/$windows" "$out/$linux"
for program in tnlm-server tnlm-client; do
  x86_64-w64-mingw32-strip -o "$out/$windows/$program.exe" "$WIN_TARGET_DIR/$GNU/release/$program.exe"
  strip -o "$out/$linux/$program" "target/release/$program"
done
cp wireshark/tnlm.lua "$out/$windows/"
cp wireshark/tnlm.lua "$out/$linux/"

# Statically linked: nothing but DLLs every Windows 10 and later has (no
# libgcc_s_seh-1.dll, libwinpthread-1.dll, vcruntime140.dll, ...).
system_dll='^(kernel32|ntdll|msvcrt|ws2_32|userenv|advapi32|bcrypt|bcryptprimitives|api-ms-win-[a-z0-9-]+)\.dll$'
for exe in "$out/$windows"/*.exe; do
  dlls=$(x86_64-w64-mingw32-objdump -p "$exe" | sed -n 's/^\s*DLL Name: //p' | sort -fu)
  echo "${exe##*/} imports: $(echo $dlls)"
  if extra=$(grep -viE "$system_dll" <<<"$dlls"); then
    echo "error: ${exe##*/} needs DLLs that Windows does not ship: $extra" >&2
    exit 1
  fi
done
for program in "$out/$linux"/tnlm-*; do
  echo "${program##*/} needs: $(readelf -d "$program" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"
done

# The full end-to-end test (every request, every socket flag, three pairings).
# CI sets TNLM_RELEASE_E2E=0: ci/windows.sh has just run the same test on the
# same source, and the packed artefacts get the check below either way.
if [[ ${TNLM_RELEASE_E2E:-1} != 0 ]]; then
  step "end to end on these binaries (the .exe under Wine)"
  (
    source ci/wine-prefix.sh
    bash ci/windows-e2e.sh "$out/$windows" "$out/$linux"
  )
fi

step "pack"
(cd "$out" && python3 -m zipfile -c "$windows.zip" "$windows" && tar -czf "$linux.tar.gz" "$linux" &&
  sha256sum "$windows.zip" "$linux.tar.gz" "$windows"/* "$linux"/* >SHA256SUMS)
ls -l "$out"

step "check what ships: checksums, contents, the unzipped .exe under Wine (ci/release-check.sh)"
bash ci/release-check.sh
step "release artefacts ready in $out/"
