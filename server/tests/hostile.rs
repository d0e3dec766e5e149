//! Bad input to a live server: each case ends in a typed error frame and/or a
//! close, never a panic or a hang, and other clients keep being served.
#![allow(clippy::unwrap_used)]

mod common;

use common::{server, server_with, Event, RawClient};
use tnlm_core::frame::offset;
use tnlm_core::message::*;
use tnlm_core::{ErrorCode, Frame, Message, HEADER_LEN};

fn time_request(id: u32) -> Vec<u8> {
    Frame::new(id, TimeRequest).to_bytes().unwrap()
}

/// Sends `bytes`, expects an error frame with `code`, then the connection to
/// close; afterwards a fresh client is still served.
fn expect_fatal(bytes: &[u8], code: ErrorCode) {
    let server = server();
    let mut bad = RawClient::connect(server.local_addr());
    bad.write_raw(bytes);
    let frames = bad.frames_until_closed();
    let errors: Vec<&ErrorBody> = frames
        .iter()
        .filter_map(|f| match &f.message {
            Message::Error(body) => Some(body),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1, "{frames:?}");
    assert_eq!(errors[0].code, code, "{:?}", errors[0]);
    still_serving(&server);
}

/// Sends `bytes` then a time request: expects an error frame with `code`
/// echoing `request_id`, and the connection to go on.
fn expect_recoverable(bytes: &[u8], code: ErrorCode, request_id: u32) {
    let server = server();
    let mut client = RawClient::connect(server.local_addr());
    client.write_raw(bytes);
    client.write_raw(&time_request(77));
    let frame = client.next_frame();
    let Message::Error(body) = &frame.message else { panic!("{frame:?}") };
    assert_eq!((body.code, frame.request_id), (code, request_id), "{body:?}");
    let next = client.next_frame();
    assert_eq!(next.request_id, 77);
    assert!(matches!(next.message, Message::TimeResponse(_)));
    still_serving(&server);
}

fn still_serving(server: &tnlm_server::RunningServer) {
    let mut other = RawClient::connect(server.local_addr());
    assert!(matches!(other.request(NameRequest), Message::NameResponse(_)));
}

#[test]
fn wrong_magic() {
    let mut bytes = time_request(1);
    bytes[0] = b'X';
    expect_fatal(&bytes, ErrorCode::BadMagic);
}

#[test]
fn the_seed_text_protocol_is_rejected() {
    expect_fatal(b"#T#", ErrorCode::BadMagic);
}

#[test]
fn unsupported_version() {
    let mut bytes = time_request(1);
    bytes[offset::VERSION] = 2;
    expect_fatal(&bytes, ErrorCode::UnsupportedVersion);
}

#[test]
fn length_0xffffffff() {
    let mut bytes = time_request(1);
    bytes[offset::LENGTH..offset::LENGTH + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    expect_fatal(&bytes, ErrorCode::Oversize);
}

#[test]
fn length_just_over_the_configured_limit() {
    let server = server_with(|c| c.max_payload = 1000);
    let mut client = RawClient::connect(server.local_addr());
    assert_eq!(client.hello.as_ref().unwrap().max_payload, 1000);
    let ok = Frame::new(1, SendRequest { to: 1, text: "x".repeat(1000 - 12) }).to_bytes().unwrap();
    assert_eq!(ok.len(), HEADER_LEN + 1000);
    client.write_raw(&ok);
    // Client 1 sent to itself: the forwarded copy is too big to pass on.
    let Message::Delivery(d) = client.next_frame().message else { panic!() };
    assert_eq!(d.status, DeliveryStatus::TooLarge);
    let too_big = Frame::new(2, SendRequest { to: 1, text: "x".repeat(1000 - 11) }).to_bytes().unwrap();
    client.write_raw(&too_big);
    let frames = client.frames_until_closed();
    assert!(matches!(
        &frames[..],
        [Frame { message: Message::Error(ErrorBody { code: ErrorCode::Oversize, .. }), .. }]
    ));
}

#[test]
fn random_garbage() {
    let garbage: Vec<u8> = (0u32..4096).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    assert_ne!(&garbage[..4], b"TNLM");
    expect_fatal(&garbage, ErrorCode::BadMagic);
}

#[test]
fn truncated_frame_then_close() {
    let server = server();
    let mut client = RawClient::connect(server.local_addr());
    let bytes = Frame::new(5, SendRequest { to: 1, text: "hello".into() }).to_bytes().unwrap();
    client.write_raw(&bytes[..bytes.len() - 3]);
    client.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let frames = client.frames_until_closed();
    assert!(matches!(
        &frames[..],
        [Frame { message: Message::Error(ErrorBody { code: ErrorCode::Truncated, .. }), .. }]
    ));
    still_serving(&server);
}

#[test]
fn undecodable_payload_is_reported_and_the_connection_goes_on() {
    let mut bytes = Frame::new(9, SendRequest { to: 1, text: "ok".into() }).to_bytes().unwrap();
    let last = bytes.len() - 1;
    bytes[last] = 0xFF; // not UTF-8
    expect_recoverable(&bytes, ErrorCode::MalformedPayload, 9);
}

#[test]
fn payload_shorter_than_its_layout() {
    let mut bytes = Frame::new(4, SendRequest { to: 1, text: "abc".into() }).to_bytes().unwrap();
    bytes.truncate(HEADER_LEN + 6);
    bytes[offset::LENGTH..offset::LENGTH + 4].copy_from_slice(&6u32.to_le_bytes());
    expect_recoverable(&bytes, ErrorCode::MalformedPayload, 4);
}

#[test]
fn empty_request_with_trailing_bytes() {
    let mut bytes = time_request(3);
    bytes.push(0);
    bytes[offset::LENGTH] = 1;
    expect_recoverable(&bytes, ErrorCode::MalformedPayload, 3);
}

#[test]
fn unknown_type_code() {
    let mut bytes = time_request(6);
    bytes[offset::TYPE] = b'Z';
    expect_recoverable(&bytes, ErrorCode::UnknownType, 6);
}

#[test]
fn unknown_class() {
    let mut bytes = time_request(6);
    bytes[offset::CLASS] = 9;
    expect_recoverable(&bytes, ErrorCode::UnknownType, 6);
}

#[test]
fn nonzero_reserved_byte() {
    let mut bytes = time_request(8);
    bytes[offset::RESERVED] = 1;
    expect_recoverable(&bytes, ErrorCode::InvalidHeader, 0);
}

#[test]
fn a_client_may_not_send_indications_or_responses() {
    let forged =
        Frame::new(12, Forwarded { from: 42, from_ip: [1, 2, 3, 4].into(), from_port: 1, text: "spoof".into() });
    expect_recoverable(&forged.to_bytes().unwrap(), ErrorCode::UnexpectedFrame, 12);
    let response = Frame::new(13, NameResponse { name: "me".into() });
    expect_recoverable(&response.to_bytes().unwrap(), ErrorCode::UnexpectedFrame, 13);
}

#[test]
fn one_byte_at_a_time_still_works() {
    let server = server();
    let mut client = RawClient::connect(server.local_addr());
    for byte in time_request(21) {
        client.write_raw(&[byte]);
    }
    let frame = client.next_frame();
    assert_eq!(frame.request_id, 21);
}

#[test]
fn a_client_that_connects_and_closes_at_once_is_harmless() {
    let server = server();
    for _ in 0..20 {
        let mut silent = RawClient::connect_silent(server.local_addr());
        silent.stream.shutdown(std::net::Shutdown::Both).unwrap();
        assert!(!matches!(silent.next_event(), Event::Error(_)));
    }
    still_serving(&server);
}
