//! Experiment 4: the client never binds; each connect gets a new ephemeral
//! source port, which the server's list shows.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use tnlm_labs::ports::{run, Options};

#[test]
fn every_connect_gets_a_new_ephemeral_port() {
    let observation = run(&Options { connections: 5 }).unwrap();
    if let Some(before) = observation.before_connect {
        assert_eq!(before.port(), 0, "an unbound socket has no port yet");
    }
    assert_ne!(observation.after_connect.port(), 0, "connect() bound it");
    let ports: HashSet<u16> = observation.ports.iter().copied().collect();
    assert_eq!(ports.len(), 5, "five different source ports: {:?}", observation.ports);
    assert!(!ports.contains(&observation.server_port));
    if let Some((low, high)) = observation.range {
        assert!(observation.ports.iter().all(|p| (low..=high).contains(p)), "{:?} in {low}-{high}", observation.ports);
    }
}
