#!/usr/bin/env bash
# Re-records the sample captures in examples/captures/ (one small pcapng per function)
# from a real in-process server on loopback, then checks them with the tshark tests.
# Needs dumpcap with capture rights on `lo` (root, or the wireshark group) and tshark:
#   apt-get install tshark
# Usage: bash ci/captures.sh [OUTDIR]   (default: examples/captures)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-examples/captures}"
cargo run --locked -q -p tnlm-wireshark --example captures -- "$out"
if [ "$out" = "examples/captures" ]; then
  # mid-stream.pcapng: a connection captured from the middle of a frame, built with text2pcap
  TNLM_BLESS=1 TNLM_REQUIRE=tshark cargo test --locked -q -p tnlm-wireshark --test tshark a_capture_that_starts_mid_stream
  # hard/*.pcapng: hand-made hard cases (two servers, reordered messages, out-of-order
  # segments, a 3-byte first segment, reused ports...), written by the tests' pcap writer
  TNLM_BLESS=1 TNLM_REQUIRE=tshark cargo test --locked -q -p tnlm-wireshark --test tshark hard_captures
  TNLM_REQUIRE=tshark cargo test --locked -q -p tnlm-wireshark --test tshark example_captures
fi
