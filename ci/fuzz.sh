#!/usr/bin/env bash
# Builds the cargo-fuzz targets of tnlm-core (core/fuzz: frame_decoder, payload_decoder),
# installing cargo-fuzz first if it is missing. Optionally runs them.
#
# Usage: bash ci/fuzz.sh            # build both targets and run each on its seeds once (CI)
#        bash ci/fuzz.sh run SECS [TARGET...]
#                                   # build, then fuzz each target (default: both) for SECS
#                                   # seconds, one after the other; a crash fails the script
#        bash ci/fuzz.sh seeds      # rewrite the seed corpus core/fuzz/corpus/<target>/
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, sancov); RUSTC_BOOTSTRAP=1 lets
# the stable toolchain accept them. It is set for the `cargo fuzz` commands only.
# Runs start from the committed seeds (core/fuzz/corpus/<target>/, never written to) and
# keep what they discover in core/fuzz/target/corpus/<target>/; crashes are written to
# core/fuzz/artifacts/<target>/ and libFuzzer's log to core/fuzz/target/logs/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_dir="$PWD/core/fuzz"
targets=(frame_decoder payload_decoder)
mode="${1:-build}"

case "$mode" in
  build) ;;
  run)
    secs="${2:?usage: ci/fuzz.sh run SECS}"
    [[ "$secs" =~ ^[0-9]+$ ]] || { echo "error: SECS must be a number of seconds" >&2; exit 2; }
    if [ $# -gt 2 ]; then
      targets=("${@:3}")
    fi
    ;;
  seeds)
    cargo run --locked -q --manifest-path "$fuzz_dir/Cargo.toml" --example seed
    exit 0
    ;;
  *)
    echo "usage: ci/fuzz.sh [run SECS [TARGET...] | seeds]" >&2
    exit 2
    ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== cargo install cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version

echo "== cargo fuzz build (frame_decoder, payload_decoder)"
# cargo fuzz has no --locked: check the fuzz crate's own Cargo.lock first.
cargo fetch --locked --manifest-path "$fuzz_dir/Cargo.toml"
RUSTC_BOOTSTRAP=1 cargo fuzz build --fuzz-dir "$fuzz_dir"

# Smoke test: each built target runs every committed seed once (-runs=0) and must not crash.
bin_dir="$fuzz_dir/target/$(rustc -vV | sed -n 's/^host: //p')/release"
for target in frame_decoder payload_decoder; do
  echo "== $target on its seeds"
  mkdir -p "$fuzz_dir/artifacts/$target"
  if ! out=$("$bin_dir/$target" -runs=0 -artifact_prefix="$fuzz_dir/artifacts/$target/" \
    "$fuzz_dir/corpus/$target" 2>&1); then
    echo "$out" >&2
    echo "error: $target fails on a committed seed" >&2
    exit 1
  fi
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' <<<"$out" || true
done

[ "$mode" = run ] || exit 0

for target in "${targets[@]}"; do
  echo "== cargo fuzz run $target for ${secs}s"
  corpus="$fuzz_dir/target/corpus/$target"
  logs="$fuzz_dir/target/logs/$target"
  mkdir -p "$corpus" "$logs"
  rm -f "$logs"/*.log
  # -jobs=1: one fuzzing process whose log libFuzzer writes to fuzz-0.log in the working
  # directory ($logs); the parent's output (a copy of it at the end) goes to run.log.
  # -timeout: an input taking 10 s is a hang. -malloc_limit_mb: no input of a few KiB may
  # make the decoder allocate 64 MiB at once.
  status=0
  (cd "$logs" && RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir "$fuzz_dir" "$target" "$corpus" \
    "$fuzz_dir/corpus/$target" -- -max_total_time="$secs" -jobs=1 -timeout=10 -malloc_limit_mb=64 \
    -print_final_stats=1 >run.log 2>&1) || status=$?
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' \
    "$logs/fuzz-0.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$logs/fuzz-0.log" "$logs/run.log" >&2 || true
    echo "error: $target failed (exit $status); crash inputs: $fuzz_dir/artifacts/$target/" >&2
    exit "$status"
  fi
done
