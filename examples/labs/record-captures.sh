#!/usr/bin/env bash
# Re-records the reference captures of the lab experiments in examples/captures/labs/
# (the files docs/LABS.md points to) and prints every experiment's output.
# Needs Linux, root (dumpcap on `lo`, network namespaces for `cable`) and tshark:
#   apt-get install tshark
# Usage: sudo bash examples/labs/record-captures.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --locked -q -p tnlm-labs -- --capture-dir examples/captures/labs all
TNLM_REQUIRE=tshark cargo test --locked -q -p tnlm-labs --test captures
