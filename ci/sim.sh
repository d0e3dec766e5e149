#!/usr/bin/env bash
# Runs the protocol core's deterministic simulation (core/tests/simulation.rs)
# on random seeds for SECONDS (default 60) and ends with how many it ran
# (`N seeds`). A seed that breaks a promise stops the run and prints the seed
# and the one-line command that replays it. CI runs the fixed seeds 0..9999
# as part of `cargo test`; this script is for longer searches.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
TNLM_SIM_SECONDS="$seconds" cargo test --locked -q -p tnlm-core --test simulation -- --nocapture 2>&1 |
  grep -v '^running \|^test result\|^$\|^\.$'
