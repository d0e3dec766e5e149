//! Experiment 3: the pulled cable, in network namespaces the tests create
//! (10.78.N.0/24). Without detection the ghost stays and a message to it is
//! not reported delivered; `--heartbeat 1` and `--keepalive 1,1,2` drop it in
//! about 3 s. Needs root and iproute2; elsewhere each test says why it skips.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use tnlm_core::message::DeliveryStatus;
use tnlm_core::requirement::Need;
use tnlm_labs::cable::{run, Detection, Observation, Options, Run};
use tnlm_labs::sockets::TcpState;
use tnlm_labs::LabError;

/// Runs one detection mode; `capture`: record (and count) its packets too.
fn one(detection: Detection, capture: bool) -> Option<Run> {
    let options = Options {
        runs: vec![detection],
        watch: Duration::from_secs(1),
        ack_timeout: Duration::from_secs(1),
        program: PathBuf::from(env!("CARGO_BIN_EXE_tnlm-labs")),
        capture: if capture { common::capture_to() } else { tnlm_labs::CaptureTo::none() },
    };
    match run(&options) {
        Ok(Observation { mut runs }) => runs.pop(),
        Err(LabError::Unsupported(why)) => {
            Need::Netns.missing(&format!("the pulled-cable test ({detection:?})"), why);
            None
        }
        Err(err) => panic!("{err}"),
    }
}

#[test]
fn without_detection_the_ghost_stays_and_is_not_reported_delivered() {
    let Some(run) = one(Detection::Nothing, true) else { return };
    assert!(run.still_listed, "{run:?}");
    assert_eq!(run.message, Some(DeliveryStatus::NotAcknowledged), "the lab report's false receipt is gone");
    let end = run.server_end.as_ref().expect("the server's socket is still there");
    assert_eq!(end.state, TcpState::Established);
    assert!(end.unacked.unwrap_or(0) > 0, "the message waits unacknowledged: {end:?}");
    if let Some(wire) = common::wire("pulled cable", run.wire) {
        assert!(wire.retransmissions >= 1, "{wire:?}");
    }
}

#[test]
fn heartbeat_drops_the_ghost_in_about_three_seconds() {
    let Some(run) = one(Detection::Heartbeat(1), false) else { return };
    let after = run.dropped_after.expect("dropped");
    assert!(after >= Duration::from_secs(2) && after <= Duration::from_millis(4500), "{after:?}");
}

#[test]
fn keepalive_drops_the_idle_ghost_in_about_three_seconds() {
    let Some(run) = one(Detection::Keepalive(1, 1, 2), true) else { return };
    let after = run.dropped_after.expect("dropped");
    assert!(after >= Duration::from_secs(2) && after <= Duration::from_secs(5), "{after:?}");
    if let Some(wire) = common::wire("keepalive", run.wire) {
        assert_eq!((wire.keepalive_probes, wire.server_resets), (2, 1), "{wire:?}");
    }
}
