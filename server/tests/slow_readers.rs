//! Many slow readers at once: all their queues together stay within
//! `--queue-total`, and past it senders hear `queue_full` at once.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};

use common::{RawClient, ServerProcess};
use tnlm_core::message::*;
use tnlm_core::{Frame, Message};

const READERS: u32 = 8;
const MESSAGES_EACH: u32 = 64;
const TEXT: usize = 8 * 1024;
const QUEUE_TOTAL: usize = 1024 * 1024;

/// A client with a 4 KiB receive buffer that reads its hello, then never again.
fn stuck_reader(addr: SocketAddr) -> (TcpStream, u32) {
    let client = RawClient::connect_small_window(addr);
    let id = client.id();
    (client.stream, id)
}

#[test]
fn many_slow_readers_together_hold_at_most_the_total_queue_budget() {
    // Each reader alone could hold 1 MiB (--queue-bytes); 8 of them 8 MiB.
    let server = ServerProcess::start(&[
        "--queue-bytes",
        "1048576",
        "--queue-total",
        &QUEUE_TOTAL.to_string(),
        "--send-buffer",
        "4096",
        "--ack-timeout",
        "1",
        "--heartbeat",
        "0",
    ]);
    let readers: Vec<(TcpStream, u32)> = (0..READERS).map(|_| stuck_reader(server.addr)).collect();
    // 512 messages of 8 KiB (4 MiB), round robin over the readers.
    let mut bytes = Vec::new();
    for n in 0..READERS * MESSAGES_EACH {
        let to = readers[(n % READERS) as usize].1;
        Frame::new(n + 1, SendRequest { to, text: "x".repeat(TEXT) }).encode_into(&mut bytes, 1 << 20).unwrap();
    }
    let mut sender = RawClient::connect(server.addr);
    let writer = {
        let mut stream = sender.stream.try_clone().unwrap();
        std::thread::spawn(move || std::io::Write::write_all(&mut stream, &bytes).unwrap())
    };
    let mut statuses = BTreeMap::<&str, u32>::new();
    for _ in 0..READERS * MESSAGES_EACH {
        let Message::Delivery(delivery) = sender.next_frame().message else { panic!() };
        *statuses.entry(delivery.status.name()).or_default() += 1;
    }
    writer.join().unwrap();
    let accepted = READERS * MESSAGES_EACH - statuses.get("queue_full").copied().unwrap_or(0);
    eprintln!(
        "{} messages of 8 KiB to {READERS} readers that never read, --queue-total 1 MiB: {statuses:?}",
        READERS * MESSAGES_EACH
    );
    assert_eq!(statuses.get("delivered"), None);
    // What was taken fits the budget, plus what the readers' sockets took
    // meanwhile (generously 128 KiB each): 150-200 here, where each reader's
    // own limit would have taken all 512.
    let room = QUEUE_TOTAL + READERS as usize * 128 * 1024;
    assert!(accepted as usize * TEXT <= room, "{accepted} messages taken: {statuses:?}");
    assert!(statuses.get("queue_full").is_some_and(|&n| n > 0), "{statuses:?}");
    drop(readers);
}
