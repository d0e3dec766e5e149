//! Experiment 5: with the server's `--accept-delay`, connect() completes at
//! once from the listen queue; the hello comes only when the server accepts.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use tnlm_labs::backlog::{run, Options};

#[test]
fn connect_completes_from_the_listen_queue_before_accept() {
    let delay = Duration::from_secs(2);
    let observation = run(&Options { delay, clients: 3, capture: common::capture_to() }).unwrap();
    assert!(observation.checked_in_time, "the checks ran while the server was not accepting");
    assert_eq!(observation.listed_before_accept, 0, "the server knew nobody before accept()");
    for client in &observation.clients {
        assert!(client.connect < Duration::from_millis(500), "connect() did not wait for accept(): {client:?}");
        // The delay starts when the server runs, just before `run` notes its start.
        assert!(client.hello_at > delay - Duration::from_millis(100), "the hello waited for accept(): {client:?}");
    }
    if common::linux() {
        assert_eq!(observation.queued, Some(3), "three connections in the accept queue");
        assert_eq!(observation.established, 3);
    }
}
