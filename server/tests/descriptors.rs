//! At its open-file limit the server still answers the clients waiting in
//! its listen queue: each is told `too_many_clients` instead of waiting for
//! a hello that cannot come. Linux only: the server process is started with
//! a low `RLIMIT_NOFILE`.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{RawClient, ServerProcess};
use tnlm_core::message::ErrorBody;
use tnlm_core::{ErrorCode, Message};

/// The server's open-file limit: its own few descriptors, and room for
/// a couple of dozen clients.
const LIMIT: u64 = 32;

#[test]
fn at_the_open_file_limit_waiting_clients_are_refused_and_served_again_once_one_leaves() {
    // The child inherits the limit; this process gets its own back at once.
    // This file holds one test, so no other test runs in this process meanwhile.
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
    rlimit::Resource::NOFILE.set(LIMIT, hard).unwrap();
    let server = ServerProcess::start(&["--heartbeat", "0"]);
    rlimit::Resource::NOFILE.set(soft, hard).unwrap();

    let mut served = Vec::new();
    let refusal = loop {
        assert!(served.len() < LIMIT as usize, "{} clients served under a limit of {LIMIT} files", served.len());
        let mut client = RawClient::connect_silent(server.addr);
        match client.next_frame().message {
            Message::Hello(_) => served.push(client),
            Message::Error(body) => break body,
            other => panic!("expected a hello or an error, got {other:?}"),
        }
    };
    let ErrorBody { code, text } = refusal;
    assert_eq!(code, ErrorCode::TooManyClients, "{text}");
    assert!(text.contains("open-file limit"), "{text}");
    server.wait_log("out of file descriptors");

    // Another one waiting is refused too: the server does not stall.
    let mut again = RawClient::connect_silent(server.addr);
    assert!(matches!(again.next_frame().message, Message::Error(ErrorBody { code: ErrorCode::TooManyClients, .. })));

    // One leaves: once the server has closed its socket, the next is served.
    let open_files = || std::fs::read_dir(format!("/proc/{}/fd", server.child.id())).unwrap().count();
    let before = open_files();
    drop(served.pop());
    server.wait_log("disconnected:");
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_files() >= before {
        assert!(Instant::now() < deadline, "the departed client's socket is still open after 10 s");
        std::thread::yield_now();
    }
    let mut next = RawClient::connect_silent(server.addr);
    assert!(matches!(next.next_frame().message, Message::Hello(_)), "not served after a client left");
    eprintln!("{} clients served at a limit of {LIMIT} open files, then refused", served.len() + 1);
}
