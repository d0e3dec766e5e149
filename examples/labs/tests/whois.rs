//! Experiment 7: three clients from one IP address are told apart by their
//! 4-tuples, in the server's list, in their own lists and in a forwarded message.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use tnlm_labs::whois::{run, Options};

#[test]
fn clients_from_one_address_are_told_apart_by_port() {
    let observation = run(&Options { clients: 3 }).unwrap();
    let clients = &observation.clients;
    assert_eq!(clients.len(), 3);
    for client in clients {
        assert_eq!(client.listed, Some(client.local), "the server lists it at its own address: {client:?}");
        assert_eq!(client.you_in_own_list, Some(client.local), "its own list shows it: {client:?}");
    }
    let ips: HashSet<_> = clients.iter().map(|c| c.local.ip()).collect();
    let ports: HashSet<_> = clients.iter().map(|c| c.local.port()).collect();
    assert_eq!((ips.len(), ports.len()), (1, 3), "same IP, different ports");
    assert_eq!(observation.forwarded_from, Some((clients[0].id, clients[0].local)), "stamped with the sender");
    if cfg!(target_os = "linux") {
        assert_eq!(observation.os_rows, 7, "a listener and both ends of three connections");
    }
}
