# Sourced (bash) by ci/windows.sh and ci/release.sh: a throwaway Wine prefix in
# which Rust programs for x86_64-pc-windows-gnu run. Needs wine64 and
# gcc-mingw-w64-x86-64. Sets WINE and WINESERVER, exports WINEPREFIX, WINEDEBUG
# and WINEDLLOVERRIDES, and on exit stops the prefix's wineserver (with every
# Wine process still in it) and removes the prefix.

WINE=/usr/lib/wine/wine64
WINESERVER=/usr/lib/wine/wineserver
wine_prefix=$(mktemp -d "${TMPDIR:-/tmp}/tnlm-wine.XXXXXX")
wine_cleanup() {
  WINEPREFIX=$wine_prefix "$WINESERVER" -k 2>/dev/null || true
  rm -rf "$wine_prefix"
}
trap wine_cleanup EXIT
export WINEPREFIX=$wine_prefix WINEDEBUG=-all
# No Mono or Gecko: wineboot would otherwise try to download them.
export WINEDLLOVERRIDES="mscoree,mshtml="

# One persistent wineserver (and one set of prefix services) for every step.
"$WINESERVER" -p
"$WINE" wineboot --init >"$wine_prefix/wineboot.log" 2>&1 || {
  cat "$wine_prefix/wineboot.log" >&2
  exit 1
}
echo "Wine prefix $WINEPREFIX: $("$WINE" --version)"

# Rust >= 1.78's std takes random bytes (HashMap seeds) from
# bcryptprimitives.dll!ProcessPrng, which Wine 8.0 lacks: a shim DLL answers
# with RtlGenRandom (advapi32!SystemFunction036). A Wine that has the DLL keeps its own.
wine_system32=$wine_prefix/drive_c/windows/system32
if [[ ! -e $wine_system32/bcryptprimitives.dll ]]; then
  cat >"$wine_prefix/bcryptprimitives.c" <<'EOF'
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length); /* RtlGenRandom */

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
EOF
  x86_64-w64-mingw32-gcc -shared -O2 -s -o "$wine_system32/bcryptprimitives.dll" \
    "$wine_prefix/bcryptprimitives.c" -ladvapi32
  echo "installed the bcryptprimitives.dll shim (ProcessPrng -> RtlGenRandom)"
fi
