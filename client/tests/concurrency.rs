//! Many clients at once: ten client processes connected together, each
//! running `time` and `list` concurrently, and the same through the library.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{start_server, target, Client};
use tnlm_client::connection::{wait_response, Settings};
use tnlm_client::Connection;
use tnlm_core::message::{ListRequest, TimeRequest};
use tnlm_core::sockopt::SocketOptions;
use tnlm_core::Message;

const CLIENTS: usize = 10;
const TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn ten_client_processes_at_once() {
    let server = start_server();
    let addr = target(&server);
    let mut listeners: Vec<Client> =
        (0..CLIENTS).map(|_| Client::spawn(&["--connect", &addr, "--json", "listen", "--timeout", "60"])).collect();
    let ids: BTreeSet<u64> = listeners.iter_mut().map(|l| l.wait_json("hello")["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), CLIENTS);

    let workers: Vec<(Client, Client)> = (0..CLIENTS)
        .map(|_| {
            let time = Client::spawn(&["--connect", &addr, "--json", "time", "--repeat", "20"]);
            let list = Client::spawn(&["--connect", &addr, "--json", "list"]);
            (time, list)
        })
        .collect();
    for (time, list) in workers {
        let summary = time.finish().assert_code(0).json().pop().unwrap();
        assert_eq!(summary["matched"], 20);
        let list = list.finish();
        let listed: BTreeSet<u64> = list.assert_code(0).json()[0]["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_u64().unwrap())
            .collect();
        assert!(listed.is_superset(&ids), "{listed:?} lacks some of {ids:?}");
    }

    server.shutdown();
    for listener in listeners {
        assert_eq!(listener.finish().assert_code(0).json_of("shutdown").len(), 1);
    }
}

#[test]
fn ten_library_connections_at_once() {
    let server = start_server();
    let addr = target(&server);
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (addr, barrier) = (addr.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                let (mut connection, mut inbox) =
                    Connection::open(&addr, &Settings::new(&SocketOptions::default(), TIMEOUT)).unwrap();
                barrier.wait(); // everyone is connected before anyone lists
                let ids = connection.send_batch([TimeRequest.into(), ListRequest.into()]).unwrap();
                assert_eq!(ids, [1, 2]);
                let deadline = Instant::now() + TIMEOUT;
                let time = wait_response(&mut inbox, 1, deadline, |_| {}).unwrap();
                assert!(matches!(time.message, Message::TimeResponse(_)), "{time:?}");
                let list = wait_response(&mut inbox, 2, deadline, |_| {}).unwrap();
                let Message::ListResponse(list) = list.message else { panic!("{list:?}") };
                let me = connection.id();
                barrier.wait(); // nobody leaves before everyone has listed
                connection.close();
                (me, list.clients.iter().map(|c| c.id).collect::<BTreeSet<u32>>())
            })
        })
        .collect();
    let results: Vec<(u32, BTreeSet<u32>)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let everyone: BTreeSet<u32> = results.iter().map(|(id, _)| *id).collect();
    assert_eq!(everyone.len(), CLIENTS);
    for (_, listed) in results {
        assert!(listed.is_superset(&everyone), "{listed:?} lacks some of {everyone:?}");
    }
}
