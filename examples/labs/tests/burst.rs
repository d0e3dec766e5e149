//! Experiment 1: 100 requests from 100 send() calls all come back, in fewer
//! TCP segments than frames; the dissector still finds every response.
#![allow(clippy::unwrap_used)]

mod common;

use tnlm_labs::burst::{run, Options};

#[test]
fn a_burst_of_100_is_answered_in_full_and_nagle_coalesces_it() {
    let observation = run(&Options { count: 100, nodelay: vec![false], capture: common::capture_to() }).unwrap();
    let nagle = &observation.variants[0];
    assert_eq!((nagle.received, nagle.matched), (100, 100), "{nagle:?}");
    if let Some(kernel) = common::kernel("burst (Nagle)", nagle.kernel) {
        assert!(kernel.data_out < 100, "Nagle should have coalesced the 100 writes: {kernel:?}");
        assert!(kernel.data_in < 101, "the server's answers are batched too: {kernel:?}");
    }
    if let Some((up, down)) = common::wire("burst (Nagle)", nagle.wire.clone()) {
        assert_eq!(up.count("T request"), 100, "{up:?}");
        assert_eq!(down.count("T response"), 100, "{down:?}");
        assert!(up.segments < 100, "fewer segments than requests: {up:?}");
        assert!(down.segments < 100, "fewer segments than responses: {down:?}");
        if let Some(kernel) = nagle.kernel {
            assert_eq!(kernel.data_out as usize, up.segments, "the kernel and the capture agree");
        }
    }
}

#[test]
fn with_nodelay_every_response_still_arrives() {
    let observation = run(&Options { count: 100, nodelay: vec![true], capture: common::capture_to() }).unwrap();
    let nodelay = &observation.variants[0];
    assert!(nodelay.nodelay);
    assert_eq!((nodelay.received, nodelay.matched), (100, 100), "{nodelay:?}");
    if let Some((up, down)) = common::wire("burst (--nodelay)", nodelay.wire.clone()) {
        assert_eq!((up.count("T request"), down.count("T response")), (100, 100));
    }
}
