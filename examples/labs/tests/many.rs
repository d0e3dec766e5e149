//! Experiment 2: ten clients burst at once; every response reaches the client
//! that asked, matched to its own request.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use tnlm_labs::many::{run, Options};

#[test]
fn ten_clients_bursting_at_once_get_all_their_responses() {
    let options = Options { clients: 10, requests: 100, nodelay: false, capture: common::capture_to() };
    let observation = run(&options).unwrap();
    assert_eq!(observation.listed, 10);
    assert_eq!(observation.clients.len(), 10);
    for client in &observation.clients {
        assert_eq!((client.received, client.matched), (100, 100), "{client:?}");
    }
    let ids: HashSet<u32> = observation.clients.iter().map(|c| c.id).collect();
    let ports: HashSet<u16> = observation.clients.iter().map(|c| c.local.port()).collect();
    assert_eq!((ids.len(), ports.len()), (10, 10), "distinct ids and source ports");
    if let Some(per_client) = common::wire("many clients", observation.wire_responses) {
        assert_eq!(per_client.len(), 10, "{per_client:?}");
        assert!(per_client.values().all(|&n| n == 100), "{per_client:?}");
        assert_eq!(per_client.keys().copied().collect::<HashSet<u16>>(), ports);
    }
}
