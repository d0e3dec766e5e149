#!/usr/bin/env bash
# Runs every test of the workspace: unit, property, integration and end-to-end
# tests over real loopback sockets, and the Wireshark dissector's tests. This is
# the README's test command. Extra arguments go to every `cargo test`.
#
# The tshark tests skip (with a message) where tshark/dumpcap are missing or may
# not capture; set TNLM_REQUIRE_TSHARK=1 to make that a failure (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
# The dissector in mlua, once per Lua version: mlua builds exactly one Lua per
# build, so the two runs are separate cargo invocations with different features.
cargo test --locked -p tnlm-wireshark --features lua52 --test mlua "$@"
cargo test --locked -p tnlm-wireshark --features lua54 --test mlua "$@"
# The student guide's Linux commands, run as written (docs/GUIDE.md).
bash ci/guide-commands.sh
