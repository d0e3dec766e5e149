//! Shared by the experiment tests: where captures go, and how a missing
//! capture (no dumpcap, no rights, not Linux) becomes a skip with a message —
//! or a failure with `TNLM_REQUIRE=tshark` (or `all`, as in CI).
#![allow(dead_code)]

use tnlm_core::requirement::Need;
use tnlm_labs::CaptureTo;

/// Captures go to this test target's scratch directory, never into the tree.
pub fn capture_to() -> CaptureTo {
    CaptureTo::dir(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("labs"))
}

/// The capture's part of the observation, or `None` after saying why it is skipped.
pub fn wire<T>(what: &str, wire: Option<T>) -> Option<T> {
    if wire.is_none() {
        Need::Tshark.missing(
            &format!("the capture check of {what}"),
            "no capture here (needs Linux, dumpcap with capture rights, tshark)",
        );
    }
    wire
}

/// The kernel's TCP counters of the observation, or `None` after saying why they
/// are missing (no `ss`, not Linux); with `TNLM_REQUIRE=socket-table` that fails.
pub fn kernel<T>(what: &str, kernel: Option<T>) -> Option<T> {
    if kernel.is_none() {
        Need::SocketTable.missing(what, "the kernel's counters could not be read (needs Linux and `ss` from iproute2)");
    }
    kernel
}

/// True where the experiment can read TIME_WAIT timers and queue lengths from the OS.
pub fn linux() -> bool {
    cfg!(target_os = "linux")
}
