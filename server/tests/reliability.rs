//! Under load and under abuse: a client that never reads, a thousand busy
//! clients, ten thousand connections, and shutdown in the middle of it all.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use common::{server_with, RawClient, ServerProcess};
use tnlm_core::message::*;
use tnlm_core::requirement::Need;
use tnlm_core::{ErrorCode, Frame, Message};

/// docs/RELIABILITY.md: a time request of a third client while another never
/// reads is answered within 0.5 s (a quarter of the test's 2 s write timeout,
/// which is what a request stuck behind the stalled socket would wait).
const BYSTANDER_BOUND: Duration = Duration::from_millis(500);

/// docs/RELIABILITY.md: shutdown joins every thread within 2 s: the 1.5 s
/// grace for clients to close, then up to 0.5 s to cut off the rest and join.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(2);

/// Lets this process hold `wanted` open files, raising its soft limit up to
/// the hard one if needed.
fn allow_open_files(wanted: u64) -> bool {
    #[cfg(unix)]
    {
        let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
        soft >= wanted || (wanted <= hard && rlimit::Resource::NOFILE.set(wanted, hard).is_ok())
    }
    #[cfg(not(unix))]
    {
        let _ = wanted;
        true
    }
}

/// A client whose receive window is tiny and which never reads after its hello.
fn stuck_client(addr: SocketAddr) -> (TcpStream, u32) {
    let client = RawClient::connect_small_window(addr);
    let id = client.id();
    (client.stream, id)
}

#[test]
fn a_client_that_never_reads_cannot_stall_anyone() {
    // A server process of its own, so its memory can be measured alone.
    let server = ServerProcess::start(&[
        "--queue-bytes",
        "65536",
        "--write-timeout",
        "2",
        "--ack-timeout",
        "1",
        "--send-buffer",
        "4096",
    ]);
    let addr = server.addr;
    let (_stuck, stuck_id) = stuck_client(addr);
    let before = server.rss_kib();

    // Two flooders each offer 10,000 messages of 1 KiB (20 MB in all).
    let text = "x".repeat(1024);
    let flooders: Vec<_> = (0..2)
        .map(|_| {
            let text = text.clone();
            thread::spawn(move || {
                let mut client = RawClient::connect(addr);
                let mut bytes = Vec::new();
                for id in 1..=10_000u32 {
                    Frame::new(id, SendRequest { to: stuck_id, text: text.clone() })
                        .encode_into(&mut bytes, 1 << 20)
                        .unwrap();
                }
                let writer = client.stream.try_clone().unwrap();
                let sending = thread::spawn(move || (&writer).write_all_bytes(&bytes));
                let mut statuses = BTreeMap::<&'static str, u32>::new();
                for _ in 0..10_000 {
                    let Message::Delivery(d) = client.next_frame().message else { panic!() };
                    *statuses.entry(d.status.name()).or_default() += 1;
                }
                sending.join().unwrap();
                statuses
            })
        })
        .collect();

    // Meanwhile a third client's time requests keep being answered.
    let mut bystander = RawClient::connect(addr);
    let mut slowest = Duration::ZERO;
    for _ in 0..200 {
        let started = Instant::now();
        assert!(matches!(bystander.request(TimeRequest), Message::TimeResponse(_)));
        slowest = slowest.max(started.elapsed());
    }

    let mut total = BTreeMap::<&'static str, u32>::new();
    for flooder in flooders {
        for (status, n) in flooder.join().unwrap() {
            *total.entry(status).or_default() += n;
        }
    }
    let after = server.rss_kib();
    eprintln!(
        "20,000 × 1 KiB messages to a client that never reads: {total:?}; bystander's slowest time request \
         {slowest:?}; server RSS {before:?} KiB before, {after:?} KiB after"
    );
    // The behaviour, not the relay's speed: every message is answered, none as
    // delivered, the stuck client's queue filled (so senders were refused at
    // once), and every answer is one a stuck or departed target can get.
    assert_eq!(total.values().sum::<u32>(), 20_000, "every message gets its receipt: {total:?}");
    assert_eq!(total.get("delivered"), None, "nothing was acknowledged, so nothing is delivered");
    assert!(total.get("queue_full").is_some_and(|&n| n > 0), "the 64 KiB queue never filled: {total:?}");
    let expected = ["queue_full", "not_acknowledged", "target_gone", "no_such_client"];
    assert!(total.keys().all(|status| expected.contains(status)), "{total:?}");
    // The bystander never waits on the stuck socket: a request stalled behind
    // it would take up to the 2 s write timeout.
    assert!(slowest <= BYSTANDER_BOUND, "a bystander's time request took {slowest:?}");
    if let (Some(before), Some(after)) = (before, after) {
        assert!(after.saturating_sub(before) < 16 * 1024, "server memory grew from {before} to {after} KiB");
    }
    // And the stuck client is cut off once a write stays blocked for the write timeout.
    server.wait_log("disconnecting a slow consumer");
}

trait WriteAll {
    fn write_all_bytes(self, bytes: &[u8]);
}

impl WriteAll for &TcpStream {
    fn write_all_bytes(mut self, bytes: &[u8]) {
        use std::io::Write;
        self.write_all(bytes).unwrap();
    }
}

#[test]
fn a_thousand_clients_times_a_hundred_requests() {
    assert!(allow_open_files(8192), "cannot raise the open-file limit for 1,000 clients");
    let server = server_with(|_| {});
    let addr = server.local_addr();
    let started = Instant::now();
    let workers: Vec<_> = (0..10)
        .map(|_| {
            thread::spawn(move || {
                let mut clients: Vec<RawClient> = (0..100).map(|_| RawClient::connect(addr)).collect();
                let mut burst = Vec::new();
                for id in 1..=100u32 {
                    Frame::new(id, TimeRequest).encode_into(&mut burst, 1 << 20).unwrap();
                }
                for client in &mut clients {
                    client.write_raw(&burst);
                }
                let mut answered = 0;
                for client in &mut clients {
                    for id in 1..=100u32 {
                        let frame = client.next_frame();
                        assert_eq!(frame.request_id, id, "responses come back in order, none lost");
                        assert!(matches!(frame.message, Message::TimeResponse(_)));
                        answered += 1;
                    }
                }
                answered
            })
        })
        .collect();
    let answered: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    eprintln!("1,000 clients × 100 requests: {answered} responses in {:?}", started.elapsed());
    assert_eq!(answered, 100_000);
}

#[test]
fn ten_thousand_connections_at_once() {
    // The server runs as its own process: each side then holds 10,000
    // sockets, within the usual 20,000 open-file limit per process.
    if !allow_open_files(12_000) {
        Need::OpenFiles.missing("ten_thousand_connections_at_once", "this process may not open 12,000 files");
        return;
    }
    // No heartbeat: a ping (id 1) arriving during a slow connect phase would be
    // taken for the answer to the observer's request 1. A 1 MiB payload limit,
    // so that the list of 10,000 (470,008 bytes) fits in one `L` response.
    let server = ServerProcess::start(&["--max-clients", "10000", "--heartbeat", "0", "--max-frame", "1048576"]);
    let addr = server.addr;
    let started = Instant::now();
    let streams: Vec<TcpStream> = (0..10_000).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let connected = started.elapsed();
    for stream in &streams {
        let mut raw = RawClient::from_stream(stream.try_clone().unwrap());
        assert!(matches!(raw.next_frame().message, Message::Hello(_)));
    }
    let greeted = started.elapsed();
    // One more is refused with a typed error.
    let mut extra = RawClient::connect_silent(addr);
    let frames = extra.frames_until_closed();
    assert!(
        matches!(
            &frames[..],
            [Frame { message: Message::Error(ErrorBody { code: ErrorCode::TooManyClients, .. }), .. }]
        ),
        "{frames:?}"
    );
    let mut observer = RawClient::from_stream(streams[0].try_clone().unwrap());
    let listed = Instant::now();
    let Message::ListResponse(list) = observer.request(ListRequest) else { panic!() };
    let list_took = listed.elapsed();
    assert_eq!(list.clients.len(), 10_000);
    eprintln!(
        "10,000 connections: connected in {connected:?}, all greeted after {greeted:?}; list of 10,000 in \
         {list_took:?}; server RSS {:?} KiB",
        server.rss_kib()
    );
    drop(observer);
    drop(streams);
    // Once they have gone, the server serves newcomers again.
    for _ in 0..10_000 {
        server.wait_log("disconnected:");
    }
    let mut late = RawClient::connect(addr);
    assert!(matches!(late.request(NameRequest), Message::NameResponse(_)));
}

#[test]
fn shutdown_under_load_answers_or_fails_everything_and_joins_quickly() {
    let server = server_with(|c| c.ack_timeout = Duration::from_secs(30));
    let addr = server.local_addr();
    let mut busy: Vec<RawClient> = (0..50).map(|_| RawClient::connect(addr)).collect();
    let listener_id = busy[0].id();
    // Each client has 200 time requests and one unacknowledged message in flight.
    for client in busy.iter_mut().skip(1) {
        let mut bytes = Vec::new();
        for id in 1..=200u32 {
            Frame::new(id, TimeRequest).encode_into(&mut bytes, 1 << 20).unwrap();
        }
        Frame::new(201, SendRequest { to: listener_id, text: "in flight".into() })
            .encode_into(&mut bytes, 1 << 20)
            .unwrap();
        client.write_raw(&bytes);
    }
    // Wait until the last time request of every client is answered
    // (the message stays pending: client 1 never acknowledges).
    for client in busy.iter_mut().skip(1) {
        let mut times = 0;
        while times < 200 {
            if matches!(client.next_frame().message, Message::TimeResponse(_)) {
                times += 1;
            }
        }
    }
    let started = Instant::now();
    server.shutdown();
    let took = started.elapsed();
    for client in busy.iter_mut().skip(1) {
        let frames = client.frames_until_closed();
        let receipt = frames.iter().find(|f| f.request_id == 201);
        assert!(
            matches!(
                receipt,
                Some(Frame { message: Message::Delivery(Delivery { status: DeliveryStatus::TargetGone, .. }), .. })
            ),
            "the in-flight message must be answered: {frames:?}"
        );
        assert!(matches!(frames.last(), Some(Frame { message: Message::Shutdown(_), .. })), "{frames:?}");
    }
    eprintln!("shutdown with 50 busy clients: every thread joined in {took:?}");
    assert!(took <= SHUTDOWN_BOUND, "shutdown took {took:?}");
}
