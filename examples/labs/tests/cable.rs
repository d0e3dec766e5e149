//! Experiment 3: the pulled cable, in network namespaces the tests create
//! (10.78.N.0/24). Without detection the ghost stays and a message to it is
//! not reported delivered; the killed client's own OS holds its socket in
//! FIN_WAIT_1, a running client's stays ESTABLISHED, and once the cable is
//! back the ghost is dropped and the running client gets its message late.
//! `--heartbeat 1` and `--keepalive 1,1,2` drop the ghost in about 3 s.
//! Needs root and iproute2; elsewhere each test says why it skips.
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
        until_gone: false,
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
fn the_clients_side_retries_its_fin_and_sees_the_cable_come_back() {
    let Some(run) = one(Detection::Nothing, false) else { return };
    // When the watch ended, the cable was still out.
    let killed = run.client_end.as_ref().expect("the killed client's socket, from its own OS");
    assert_eq!(killed.state, TcpState::FinWait1, "{killed:?}");
    assert!(killed.fired >= 1 && killed.backoff >= 1, "its FIN is retried with a growing backoff: {killed:?}");
    assert_eq!(run.running_end.as_ref().map(|end| end.state), Some(TcpState::Established));
    // Cable back: the server hears from the ghost's OS, the running client gets the message.
    let gone = run.ghost_gone_after_plug.expect("the ghost is dropped once the cable is back");
    assert!(gone < Duration::from_secs(30), "{gone:?}");
    assert!(run.late_message_after_plug.is_some(), "the running client receives the message late");
}

#[test]
fn heartbeat_drops_the_ghost_in_about_three_seconds() {
    let Some(run) = one(Detection::Heartbeat(1), false) else { return };
    let after = run.dropped_after.expect("dropped");
    let killed = run.client_end.expect("the killed client's socket, from its own OS");
    assert_eq!(killed.state, TcpState::FinWait1, "{killed:?}");
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
