//! Deadlines that hold whatever the peer does: the write timeout is one
//! deadline for a client's pending output (not a timeout per `send` that a
//! trickle of reading restarts), and shutdown ends within its grace even while
//! a departing client still has output it will never read.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{server_with, RawClient, ServerProcess};
use tnlm_core::message::*;
use tnlm_core::{Frame, Message};

#[test]
fn a_client_reading_a_trickle_is_cut_off_one_write_timeout_after_its_output_stalls() {
    let write_timeout = Duration::from_secs(1);
    // docs/RELIABILITY.md: cut off within --write-timeout + 0.25 s.
    let bound = write_timeout + Duration::from_millis(250);
    let server = ServerProcess::start(&["--write-timeout", "1", "--send-buffer", "4096", "--heartbeat", "0"]);
    // 500 listed clients make each `list` answer about 24 KB.
    let _others: Vec<TcpStream> = (0..500).map(|_| RawClient::connect(server.addr).stream).collect();
    let mut slow = RawClient::connect_small_window(server.addr);
    let mut bytes = Vec::new();
    for id in 1..=100u32 {
        Frame::new(id, ListRequest).encode_into(&mut bytes, 1 << 20).unwrap();
    }
    let started = Instant::now();
    slow.write_raw(&bytes);
    // 2.4 MB are owed; read 256 bytes every 25 ms (10 KB/s): each of the
    // server's blocked writes makes a little progress, none completes.
    let reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 256];
        while matches!(slow.stream.read(&mut chunk), Ok(n) if n > 0) {
            // Pacing the slow reader, not waiting for anything.
            std::thread::sleep(Duration::from_millis(25));
        }
    });
    // The server says when it cut the client off.
    server.wait_log("slow consumer");
    let cut_off = started.elapsed();
    eprintln!("a reader of 10 KB/s owed 2.4 MB: cut off after {cut_off:?} (write timeout {write_timeout:?})");
    assert!(cut_off >= write_timeout && cut_off <= bound, "cut off after {cut_off:?}");
    reader.join().unwrap();
}

#[test]
fn shutdown_ends_within_its_grace_while_a_departing_client_has_unread_output() {
    let server = server_with(|c| {
        c.write_timeout = Duration::from_secs(10);
        c.socket.send_buffer = Some(4096);
    });
    let addr = server.local_addr();
    let stuck = RawClient::connect_small_window(addr);
    let stuck_id = {
        let Message::ListResponse(list) = RawClient::connect(addr).request(ListRequest) else { panic!() };
        list.clients.iter().map(|c| c.id).min().unwrap()
    };
    // Another client fills the stuck one's queue with messages it never reads …
    let mut sender = RawClient::connect(addr);
    let text = "x".repeat(8 * 1024);
    let mut bytes = Vec::new();
    for id in 1..=40u32 {
        Frame::new(id, SendRequest { to: stuck_id, text: text.clone() }).encode_into(&mut bytes, 1 << 20).unwrap();
    }
    sender.write_raw(&bytes);
    // The first message reaches its receive buffer (the rest cannot: 4 KiB windows) …
    stuck.stream.peek(&mut [0u8; 1]).unwrap();
    // … then it hangs up its sending side: its session ends, with 320 KB still owed to it.
    stuck.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(server.wait_client_gone(stuck_id, Duration::from_secs(10)), "the stuck client was never unlisted");
    let started = Instant::now();
    server.shutdown();
    let took = started.elapsed();
    eprintln!("shutdown with a departing client owed 320 KB it never reads: {took:?}");
    // docs/RELIABILITY.md: shutdown joins every thread within 2 s.
    assert!(took <= Duration::from_secs(2), "shutdown took {took:?}");
}
