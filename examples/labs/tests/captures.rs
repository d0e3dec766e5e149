//! The reference captures in `examples/captures/labs/` (recorded with
//! `examples/labs/record-captures.sh`, and pointed to by docs/LABS.md) show
//! what the guide says they show, read with tshark and the TNLM dissector
//! (one tshark pass per file). Skips with a message where tshark is missing
//! (`TNLM_REQUIRE=tshark` or `all`: fail instead).
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::process::Command;

use tnlm_core::requirement::Need;
use tnlm_labs::capture::{directions, packets, server_port, Packet};

/// The packets of `examples/captures/labs/NAME.pcapng`, or `None` without tshark.
fn capture(name: &str) -> Option<Vec<Packet>> {
    let have_tshark = Command::new("tshark").arg("--version").output().is_ok_and(|o| o.status.success());
    if !have_tshark {
        Need::Tshark.missing(&format!("the {name} capture check"), "tshark is not installed (apt-get install tshark)");
        return None;
    }
    let file = tnlm_labs::repo_root().join("examples").join("captures").join("labs").join(format!("{name}.pcapng"));
    assert!(file.exists(), "{} is missing: run examples/labs/record-captures.sh", file.display());
    Some(packets(&file).unwrap())
}

#[test]
fn the_burst_captures_hold_100_responses_in_few_segments() {
    for name in ["burst-nagle", "burst-nodelay"] {
        let Some(packets) = capture(name) else { return };
        let (up, down) = directions(&packets, server_port(&packets).unwrap());
        assert_eq!((up.count("T request"), down.count("T response")), (100, 100), "{name}: {up:?} {down:?}");
        assert!(up.segments < 100 && down.segments < 100, "{name}: {up:?} {down:?}");
    }
}

#[test]
fn the_many_clients_capture_holds_a_thousand_responses_on_ten_connections() {
    let Some(packets) = capture("many-clients") else { return };
    let port = server_port(&packets).unwrap();
    let (up, down) = directions(&packets, port);
    assert_eq!((up.count("T request"), down.count("T response"), down.count("H indication")), (1000, 1000, 10));
    let clients: HashSet<u16> =
        packets.iter().filter(|p| p.len > 0 && p.src_port == port).map(|p| p.dst_port).collect();
    assert_eq!(clients.len(), 10);
}

#[test]
fn the_closing_capture_has_two_orderly_closes_and_one_reset() {
    let Some(packets) = capture("closing") else { return };
    assert_eq!(packets.iter().filter(|p| p.rst).count(), 1);
    assert!(packets.iter().filter(|p| p.fin).count() >= 4, "two FINs for each orderly close");
}

#[test]
fn the_backlog_capture_shows_hellos_long_after_the_handshakes() {
    let Some(packets) = capture("backlog") else { return };
    let port = server_port(&packets).unwrap();
    let first_synack = packets.iter().find(|p| p.syn && p.src_port == port).unwrap().time;
    let hellos: Vec<f64> =
        packets.iter().filter(|p| p.frames.iter().any(|f| f == "H indication")).map(|p| p.time).collect();
    assert_eq!(hellos.len(), 3);
    assert!(hellos[0] - first_synack > 2.0, "{first_synack} {hellos:?}");
}

#[test]
fn the_cable_captures_show_retransmissions_pings_and_keepalive_probes() {
    let Some(packets) = capture("cable-no-detection") else { return };
    let port = server_port(&packets).unwrap();
    let message = packets.iter().filter(|p| p.frames.iter().any(|f| f == "M indication")).count();
    assert_eq!(message, 2, "the messages to the ghost and to the client that kept running");
    assert!(packets.iter().filter(|p| p.retransmission).count() >= 3);
    // Cable back: the ghost's OS resets, the running client acknowledges the message late.
    assert!(packets.iter().any(|p| p.rst && p.src_port != port), "the killed client's RST");
    assert!(packets.iter().any(|p| p.frames.iter().any(|f| f == "A response")), "the late ack");
    let Some(packets) = capture("cable-heartbeat") else { return };
    assert!(packets.iter().any(|p| p.frames.iter().any(|f| f == "P indication")), "the server's ping");
    let Some(packets) = capture("cable-keepalive") else { return };
    assert_eq!(packets.iter().filter(|p| p.keepalive).count(), 2);
    assert_eq!(packets.iter().filter(|p| p.rst).count(), 1);
}
