//! One test per statement of docs/PROTOCOL.md that the other suites do not
//! pin down: request id 0, answers nobody expects, messages to oneself, empty
//! and largest texts, the refusal that replaces the hello, the time format,
//! the order and size bound of the client list.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use common::{server, server_with, RawClient};
use tnlm_core::message::*;
use tnlm_core::{ErrorCode, Frame, Message, MAX_NAME_LEN, MIN_MAX_PAYLOAD};

/// "Request ids": 0 is a legal request id and is echoed like any other.
#[test]
fn request_id_0_is_echoed() {
    let server = server();
    let mut client = RawClient::connect(server.local_addr());
    client.send_frame(Frame::new(0, TimeRequest));
    let frame = client.next_frame();
    assert!(matches!(frame, Frame { request_id: 0, message: Message::TimeResponse(_) }), "{frame:?}");
}

/// "Answers nobody expects": an `A` for no pending delivery and a `P`
/// response to no ping get no answer; the next request is answered next.
#[test]
fn an_unexpected_ack_or_pong_is_ignored() {
    let server = server();
    let mut client = RawClient::connect(server.local_addr());
    client.send_frame(Frame::new(999, Ack));
    client.send_frame(Frame::new(998, Pong));
    client.send_frame(Frame::new(0, Pong));
    client.send_frame(Frame::new(5, NameRequest));
    let frame = client.next_frame();
    assert!(matches!(frame, Frame { request_id: 5, message: Message::NameResponse(_) }), "{frame:?}");
}

/// "Messages": a client may send to itself; it gets the indication, acks
/// it, and hears `delivered`. Empty text is a message like any other.
#[test]
fn a_message_to_oneself_and_an_empty_message_are_delivered() {
    let server = server();
    let mut client = RawClient::connect(server.local_addr());
    let me = client.id();
    for text in ["to me", ""] {
        let id = client.send(SendRequest { to: me, text: text.into() });
        let indication = client.next_frame();
        let Message::Forwarded(forwarded) = &indication.message else { panic!("{indication:?}") };
        assert_eq!((forwarded.from, forwarded.text.as_str()), (me, text));
        assert_ne!(indication.request_id, 0);
        client.send_frame(Frame::new(indication.request_id, Ack));
        let receipt = client.next_frame();
        assert_eq!(receipt.request_id, id);
        let Message::Delivery(delivery) = receipt.message else { panic!("{receipt:?}") };
        assert_eq!(delivery.status, DeliveryStatus::Delivered);
    }
}

/// "Limits": the largest text that can be delivered is max_payload − 22
/// from an IPv4 sender and max_payload − 34 from an IPv6 one, because the
/// forwarded frame carries the sender's address; one byte more is `too_large`.
#[test]
fn the_largest_deliverable_text_is_max_payload_minus_22_or_34() {
    check_largest_text("127.0.0.1:0", 22);
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        check_largest_text("[::1]:0", 34);
    } else {
        eprintln!("IPv6 case skipped: no ::1 on this machine");
    }
}

fn check_largest_text(bind: &str, overhead: usize) {
    let bind: SocketAddr = bind.parse().unwrap();
    let server = server_with(|c| {
        c.bind = Some(bind.ip());
        c.max_payload = MIN_MAX_PAYLOAD;
    });
    let mut client = RawClient::connect(server.local_addr());
    let me = client.id();
    let largest = MIN_MAX_PAYLOAD as usize - overhead;
    let id = client.send(SendRequest { to: me, text: "x".repeat(largest) });
    let indication = client.next_frame();
    assert!(matches!(indication.message, Message::Forwarded(_)), "{bind}: {indication:?}");
    client.send_frame(Frame::new(indication.request_id, Ack));
    assert_eq!(status_of(client.next_frame(), id), DeliveryStatus::Delivered, "{bind}");
    let id = client.send(SendRequest { to: me, text: "x".repeat(largest + 1) });
    assert_eq!(status_of(client.next_frame(), id), DeliveryStatus::TooLarge, "{bind}");
}

fn status_of(frame: Frame, request_id: u32) -> DeliveryStatus {
    assert_eq!(frame.request_id, request_id);
    let Message::Delivery(delivery) = frame.message else { panic!("{frame:?}") };
    delivery.status
}

/// "Hello": a client over `--max-clients` gets a `too_many_clients` error
/// (request id 0) instead of the hello, then the connection closes.
#[test]
fn too_many_clients_comes_instead_of_the_hello() {
    let server = server_with(|c| c.max_clients = 1);
    let _first = RawClient::connect(server.local_addr());
    let mut second = RawClient::connect_silent(server.local_addr());
    let frames = second.frames_until_closed();
    assert!(
        matches!(
            &frames[..],
            [Frame { request_id: 0, message: Message::Error(ErrorBody { code: ErrorCode::TooManyClients, .. }) }]
        ),
        "{frames:?}"
    );
}

/// "Time": RFC 3339 with milliseconds and a numeric UTC offset (never `Z`),
/// e.g. `2026-11-25T19:30:05.123+08:00`; `since` in a list has whole seconds.
#[test]
fn time_has_milliseconds_and_a_numeric_offset() {
    let server = server();
    let mut client = RawClient::connect(server.local_addr());
    let Message::TimeResponse(TimeResponse { time }) = client.request(TimeRequest) else { panic!() };
    assert_eq!(time.len(), 29, "{time}");
    assert_eq!(&time[19..20], ".", "{time}");
    assert!(matches!(&time[23..24], "+" | "-") && &time[26..27] == ":", "{time}");
    let Message::ListResponse(list) = client.request(ListRequest) else { panic!() };
    let since = &list.clients[0].since;
    assert_eq!(since.len(), 25, "{since}");
    assert!(matches!(&since[19..20], "+" | "-"), "{since}");
}

/// "List": ascending id order, and an `L` response never exceeds the
/// hello's max_payload: past that, the clients with the lowest ids that fit.
#[test]
fn the_list_is_in_id_order_and_fits_in_max_payload() {
    let server = server_with(|c| c.max_payload = MIN_MAX_PAYLOAD);
    let mut clients: Vec<RawClient> = (0..25).map(|_| RawClient::connect(server.local_addr())).collect();
    let newest = clients.last_mut().unwrap();
    let Message::ListResponse(list) = newest.request(ListRequest) else { panic!() };
    // 8 bytes of count, then 47 bytes per IPv4 entry: 21 fit in 1024.
    let ids: Vec<u32> = list.clients.iter().map(|c| c.id).collect();
    assert_eq!(ids, (1..=21).collect::<Vec<u32>>());
    let mut encoded = Vec::new();
    Frame::new(1, list).encode_into(&mut encoded, MIN_MAX_PAYLOAD).expect("the list fits in max_payload");
}

/// "Limits": a server cannot be configured to announce a limit below 1024
/// bytes or a name longer than 255 bytes, so its own frames always fit.
#[test]
fn settings_that_could_overflow_the_announced_limit_are_refused() {
    let small = tnlm_server::Config { max_payload: MIN_MAX_PAYLOAD - 1, ..tnlm_server::Config::default() };
    assert!(small.check().is_err());
    let long = tnlm_server::Config { name: "n".repeat(MAX_NAME_LEN + 1), ..tnlm_server::Config::default() };
    assert!(long.check().is_err());
    assert!(tnlm_server::Config::default().check().is_ok());
}
