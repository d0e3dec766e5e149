//! Experiment 6: TIME_WAIT is left on the side that closes first (about 60 s
//! on Linux), and a close with `--linger 0` sends RST and leaves nothing.
//! Read from the OS's own socket table.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use tnlm_labs::closing::{run, Options};
use tnlm_labs::sockets::TcpState;

#[test]
fn time_wait_goes_to_the_active_closer_and_linger_zero_leaves_none() {
    if !cfg!(any(target_os = "linux", windows)) {
        eprintln!("skipped: reading the socket table is implemented for Linux and Windows");
        return;
    }
    let observation = run(&Options { watch: false, capture: common::capture_to() }).unwrap();

    let case = &observation.client_first;
    let client_end = case.client_end.as_ref().expect("the client's end is in TIME_WAIT");
    assert_eq!(client_end.state, TcpState::TimeWait, "{case:?}");
    assert!(case.server_end.is_none(), "the passive closer keeps nothing: {case:?}");
    if common::linux() {
        let left = client_end.timer.expect("Linux shows the TIME_WAIT timer");
        assert!(left > Duration::from_secs(50) && left <= Duration::from_secs(60), "{left:?}");
    }

    let case = &observation.server_first;
    assert_eq!(case.server_end.as_ref().map(|s| s.state), Some(TcpState::TimeWait), "{case:?}");
    assert!(case.client_end.is_none(), "{case:?}");

    let case = &observation.linger_zero;
    assert!(case.client_end.is_none() && case.server_end.is_none(), "an RST leaves no state: {case:?}");

    if let Some(ends) = common::wire("closing", observation.wire) {
        assert_eq!(ends[0].first_fin, "client");
        assert_eq!(ends[1].first_fin, "server");
        assert_eq!((ends[2].first_fin, ends[2].client_resets), ("nobody", 1), "{:?}", ends[2]);
        assert!(ends.iter().take(2).all(|e| e.client_resets + e.server_resets == 0), "{ends:?}");
    }
}
