//! Records the sample captures in `examples/captures/` (one small pcapng per function:
//! hello, time, name, list with 3 clients, message delivered, message to an unknown id,
//! a 100-request burst, malformed frames) from a real in-process server on loopback.
//!
//! `cargo run -p tnlm-wireshark --example captures [OUTDIR]` (run by `ci/captures.sh`);
//! needs dumpcap with capture rights on `lo` and tshark (to drop the end marker).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let out_dir = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("examples").join("captures"),
        PathBuf::from,
    );
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("error: cannot create {}: {e}", out_dir.display());
        return ExitCode::FAILURE;
    }
    for scenario in support::Scenario::all() {
        let file = out_dir.join(format!("{}.pcapng", scenario.name));
        let result = support::capture(&scenario)
            .map_err(|e| e.to_string())
            .and_then(|(pcap, _)| support::strip_marker(&pcap, &file));
        match result {
            Ok(()) => println!("wrote {}", file.display()),
            Err(e) => {
                eprintln!("error: {}: {e}", scenario.name);
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
