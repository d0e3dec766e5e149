#!/usr/bin/env bash
# Runs every test of the workspace: unit, property, integration and end-to-end
# tests over real loopback sockets, and the Wireshark dissector's tests. This is
# the README's test command. Extra arguments go to every `cargo test`.
#
# Tests whose need is missing here (tshark and dumpcap, network namespaces,
# IPv6, a raised open-file limit, `ss`) print `SKIP <test>: needs …` and pass;
# TNLM_REQUIRE=all (CI) turns each such skip into a failure naming the test,
# TNLM_REQUIRE=netns,ipv6 just those (names: core/src/requirement.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
# The server's and the client's whole suites again against the event engine
# (`--engine events`): both engines drive the same protocol core and must
# behave the same on the wire.
TNLM_TEST_ENGINE=events cargo test --locked -p tnlm-server -p tnlm-client "$@"
# The dissector in mlua, once per Lua version: mlua builds exactly one Lua per
# build, so the two runs are separate cargo invocations with different features.
cargo test --locked -p tnlm-wireshark --features lua52 --test mlua "$@"
cargo test --locked -p tnlm-wireshark --features lua54 --test mlua "$@"
# The fuzz crate (core/fuzz) is a workspace of its own, as cargo-fuzz lays it out:
# its unit tests (the checks the fuzz targets apply, on every seed), then a check
# that the committed seed corpus is what the samples in tnlm-core generate today.
cargo test --locked --manifest-path core/fuzz/Cargo.toml "$@"
cargo run --locked -q --manifest-path core/fuzz/Cargo.toml --example seed -- --check
echo "fuzz seed corpus: up to date"
# The Chinese documents against their English twins: the same sections, the
# same code blocks (ci/docs-parity.py).
python3 ci/docs-parity.py --self-test
python3 ci/docs-parity.py
# The student guides' Linux commands, run as written (docs/GUIDE.md and the
# Chinese guide, whose commands the parity check keeps identical).
bash ci/guide-commands.sh docs/GUIDE.md
bash ci/guide-commands.sh docs/zh/GUIDE.md
