//! The connection API used directly: request ids, one-write batches,
//! indications handed to the callback while waiting, clean close, the bound
//! on forwarded messages nobody takes.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{send_numbered, send_until_refused, start_server, start_server_with, target, test_config};
use tnlm_client::connection::{wait_response, Settings, WaitError, MAX_QUEUED_MESSAGE_BYTES};
use tnlm_client::{CloseReason, Connection, Event, EventSource, Inbox};
use tnlm_core::message::{DeliveryStatus, SendRequest, TimeRequest};
use tnlm_core::sockopt::SocketOptions;
use tnlm_core::Message;

const TIMEOUT: Duration = Duration::from_secs(10);

fn open(addr: &str) -> (Connection, Inbox) {
    Connection::open(addr, &Settings::new(&SocketOptions::default(), TIMEOUT)).unwrap()
}

#[test]
fn request_ids_count_up_from_one_and_batches_are_answered() {
    let server = start_server();
    let (mut connection, mut inbox) = open(&target(&server));
    assert_eq!(connection.hello().server, common::SERVER_NAME);
    assert_eq!(connection.send(TimeRequest).unwrap(), 1);
    let batch = connection.send_batch((0..50).map(|_| Message::from(TimeRequest))).unwrap();
    assert_eq!(batch, (2..=51).collect::<Vec<u32>>());
    let deadline = Instant::now() + TIMEOUT;
    for id in 1..=51 {
        let frame = wait_response(&mut inbox, id, deadline, |f| panic!("unexpected {f:?}")).unwrap();
        assert_eq!(frame.request_id, id);
    }
    connection.close();
}

#[test]
fn indications_reach_the_callback_while_waiting() {
    let server = start_server();
    let (mut receiver, mut receiver_inbox) = open(&target(&server));
    let (mut sender, mut sender_inbox) = open(&target(&server));
    let to = receiver.id();
    let id = sender.send(SendRequest { to, text: "x\ny".into() }).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let delivery = wait_response(&mut sender_inbox, id, deadline, |_| {}).unwrap();
    let Message::Delivery(delivery) = delivery.message else { panic!("{delivery:?}") };
    assert_eq!(delivery.status, DeliveryStatus::Delivered);

    let mut seen = Vec::new();
    let time_id = receiver.send(TimeRequest).unwrap();
    wait_response(&mut receiver_inbox, time_id, deadline, |f| seen.push(f.clone())).unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let Message::Forwarded(message) = &seen[0].message else { panic!("{seen:?}") };
    assert_eq!((message.from, message.text.as_str()), (sender.id(), "x\ny"));
    assert_eq!(message.from_port, sender.local().port());
}

#[test]
fn a_wait_times_out_and_a_server_close_is_reported() {
    let server = start_server();
    let (_connection, mut inbox) = open(&target(&server));
    let soon = Instant::now() + Duration::from_millis(50);
    assert!(matches!(wait_response(&mut inbox, 99, soon, |_| {}), Err(WaitError::Timeout)));

    server.shutdown();
    let deadline = Instant::now() + TIMEOUT;
    let mut notices = 0;
    let result = wait_response(&mut inbox, 99, deadline, |_| notices += 1);
    assert!(matches!(result, Err(WaitError::Closed(CloseReason::Eof | CloseReason::Io(_)))), "{result:?}");
    assert_eq!(notices, 1);
}

#[test]
fn close_joins_the_receiver_and_reports_a_local_close() {
    let server = start_server();
    let (connection, mut inbox) = open(&target(&server));
    connection.close();
    let event = inbox.next_event(Some(Instant::now() + TIMEOUT));
    assert!(matches!(event, Some(Event::Closed(CloseReason::Local))), "{event:?}");
    assert!(inbox.next_event(Some(Instant::now() + TIMEOUT)).is_none());
}

#[test]
fn an_oversize_message_is_refused_before_sending() {
    let server = start_server();
    let (mut connection, _inbox) = open(&target(&server));
    let max = connection.hello().max_payload as usize;
    let err = connection.send(SendRequest { to: 1, text: "x".repeat(max) }).unwrap_err();
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
}

/// The number at the start of the next forwarded message in `inbox`.
fn take_numbered(inbox: &mut Inbox) -> usize {
    let event = inbox.next_event(Some(Instant::now() + TIMEOUT));
    let Some(Event::Frame(frame)) = event else { panic!("{event:?}") };
    let Message::Forwarded(message) = frame.message else { panic!("{frame:?}") };
    message.text[..6].parse().unwrap()
}

#[test]
fn messages_nobody_takes_are_bounded_and_refused_unacknowledged() {
    let server = start_server_with(tnlm_server::Config { ack_timeout: Duration::from_millis(500), ..test_config() });
    let (target_connection, mut target_inbox) = open(&target(&server));
    let (mut sender, mut sender_inbox) = open(&target(&server));
    let to = target_connection.id();

    // The target takes no events: its inbox fills up to the bound, then refuses.
    let most = MAX_QUEUED_MESSAGE_BYTES / (60 * 1024);
    let (delivered, refused) = send_until_refused(&mut sender, &mut sender_inbox, to, most);
    assert_eq!(refused, DeliveryStatus::NotAcknowledged);
    assert!(delivered * 60 * 1024 <= MAX_QUEUED_MESSAGE_BYTES, "{delivered}");
    assert!((delivered + 1) * 61 * 1024 > MAX_QUEUED_MESSAGE_BYTES, "refused after only {delivered}");

    // Taking one event makes room for one more; the refused message was never queued.
    assert_eq!(take_numbered(&mut target_inbox), 0);
    assert_eq!(send_numbered(&mut sender, &mut sender_inbox, to, delivered + 1), DeliveryStatus::Delivered);
    for n in 1..delivered {
        assert_eq!(take_numbered(&mut target_inbox), n);
    }
    assert_eq!(take_numbered(&mut target_inbox), delivered + 1);

    // An empty inbox accepts again.
    assert_eq!(send_numbered(&mut sender, &mut sender_inbox, to, delivered + 2), DeliveryStatus::Delivered);
    assert_eq!(take_numbered(&mut target_inbox), delivered + 2);
}

/// The client's own heartbeat pings draw from its request ids: non-zero and
/// never the id of another request (PROTOCOL.md, "Heartbeat").
#[test]
fn heartbeat_pings_use_fresh_nonzero_request_ids() {
    use std::io::Write;
    use tnlm_core::message::{Hello, Pong};
    use tnlm_core::{Decoder, Frame};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let settings =
        Settings { heartbeat: Some(Duration::from_millis(50)), ..Settings::new(&SocketOptions::default(), TIMEOUT) };
    let fake = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let hello = Hello { client_id: 1, server: "fake".into(), version: 1, max_payload: 65536 };
        stream.write_all(&Frame::indication(hello).to_bytes().unwrap()).unwrap();
        let mut decoder = Decoder::default();
        let mut ids = Vec::new();
        let mut buffer = [0u8; 256];
        while ids.len() < 3 {
            while let Some(frame) = decoder.next_frame().unwrap() {
                assert!(matches!(frame.message, Message::PingRequest(_)), "{frame:?}");
                stream.write_all(&Frame::new(frame.request_id, Pong).to_bytes().unwrap()).unwrap();
                ids.push(frame.request_id);
            }
            let n = std::io::Read::read(&mut stream, &mut buffer).unwrap();
            assert_ne!(n, 0, "the client closed");
            decoder.feed(&buffer[..n]);
        }
        ids
    });
    let (mut connection, _inbox) = Connection::open(&addr, &settings).unwrap();
    let pings = fake.join().unwrap();
    let request = connection.send(TimeRequest).unwrap();
    assert!(pings.iter().all(|&id| id != 0 && id != request), "pings {pings:?}, request {request}");
    let mut sorted = pings.clone();
    sorted.dedup();
    assert_eq!(sorted, pings, "ping ids repeat");
}
