//! Bad input to a live server: each case ends in a typed error frame and/or a
//! close, never a panic or a hang, and other clients keep being served.
#![allow(clippy::unwrap_used)]

mod common;

use common::{server, server_with, Event, RawClient};
use std::io::Write;
use tnlm_core::frame::offset;
use tnlm_core::message::*;

use tnlm_core::{ErrorCode, Frame, Message, DEFAULT_MAX_PAYLOAD, HEADER_LEN};

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
    let server = server_with(|c| c.max_payload = 1024);
    let mut client = RawClient::connect(server.local_addr());
    assert_eq!(client.hello.as_ref().unwrap().max_payload, 1024);
    let ok = Frame::new(1, SendRequest { to: 1, text: "x".repeat(1024 - 12) }).to_bytes().unwrap();
    assert_eq!(ok.len(), HEADER_LEN + 1024);
    client.write_raw(&ok);
    // Client 1 sent to itself: the forwarded copy is too big to pass on.
    let Message::Delivery(d) = client.next_frame().message else { panic!() };
    assert_eq!(d.status, DeliveryStatus::TooLarge);
    let mut too_big = Vec::new();
    Frame::new(2, SendRequest { to: 1, text: "x".repeat(1024 - 11) }).encode_into(&mut too_big, u32::MAX).unwrap();
    client.write_raw(&too_big);
    let frames = client.frames_until_closed();
    // The whole header was read: the error echoes its request id.
    assert!(matches!(
        &frames[..],
        [Frame { request_id: 2, message: Message::Error(ErrorBody { code: ErrorCode::Oversize, .. }) }]
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
    // The whole header was read: the error echoes its request id.
    assert!(matches!(
        &frames[..],
        [Frame { request_id: 5, message: Message::Error(ErrorBody { code: ErrorCode::Truncated, .. }) }]
    ));
    still_serving(&server);
}

#[test]
fn truncated_inside_the_header_answers_id_0() {
    let server = server();
    let mut client = RawClient::connect(server.local_addr());
    client.write_raw(&time_request(5)[..HEADER_LEN - 1]);
    client.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let frames = client.frames_until_closed();
    assert!(matches!(
        &frames[..],
        [Frame { request_id: 0, message: Message::Error(ErrorBody { code: ErrorCode::Truncated, .. }) }]
    ));
}

#[test]
fn oversize_echoes_the_request_id_and_closes() {
    let bytes = header_with(41, |b| set_length(b, u32::MAX));
    let server = server();
    let mut client = RawClient::connect(server.local_addr());
    client.write_raw(&bytes);
    let frames = client.frames_until_closed();
    assert!(matches!(
        &frames[..],
        [Frame { request_id: 41, message: Message::Error(ErrorBody { code: ErrorCode::Oversize, .. }) }]
    ));
}

#[test]
fn bad_magic_and_unsupported_version_answer_id_0() {
    for bytes in [header_with(42, |b| b[0] = b'X'), header_with(43, |b| b[offset::VERSION] = 2)] {
        let server = server();
        let mut client = RawClient::connect(server.local_addr());
        client.write_raw(&bytes);
        let frames = client.frames_until_closed();
        assert!(matches!(&frames[..], [Frame { request_id: 0, message: Message::Error(_) }]), "{frames:?}");
    }
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
    expect_recoverable(&bytes, ErrorCode::InvalidHeader, 8);
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

/// What a hostile case must end in.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// An error frame with this code, then the server closes.
    Fatal(ErrorCode),
    /// An error frame with this code echoing this request id; the connection goes on.
    Recoverable(ErrorCode, u32),
}

fn header_with(id: u32, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = time_request(id);
    edit(&mut bytes);
    bytes
}

fn set_length(bytes: &mut [u8], length: u32) {
    bytes[offset::LENGTH..offset::LENGTH + 4].copy_from_slice(&length.to_le_bytes());
}

/// `SendRequest { to: 1, text: "hello" }` cut to `keep` payload bytes, with
/// the length field telling the truth about the cut.
fn send_cut_at(id: u32, keep: usize) -> Vec<u8> {
    let mut bytes = Frame::new(id, SendRequest { to: 1, text: "hello".into() }).to_bytes().unwrap();
    bytes.truncate(HEADER_LEN + keep);
    set_length(&mut bytes, keep as u32);
    bytes
}

/// A frame a client may not send, as a client would send it.
fn forbidden(id: u32, message: impl Into<Message>) -> Vec<u8> {
    Frame::new(id, message).to_bytes().unwrap()
}

fn hostile_cases() -> Vec<(&'static str, Vec<u8>, Outcome)> {
    use ErrorCode::*;
    use Outcome::*;
    let v4: std::net::IpAddr = [127, 0, 0, 1].into();
    let mut cases = vec![
        ("magic byte 0 wrong", header_with(1, |b| b[0] = b'X'), Fatal(BadMagic)),
        ("magic byte 1 wrong", header_with(1, |b| b[1] = 0), Fatal(BadMagic)),
        ("magic byte 2 wrong", header_with(1, |b| b[2] = b'l'), Fatal(BadMagic)),
        ("magic byte 3 wrong", header_with(1, |b| b[3] = 0xFF), Fatal(BadMagic)),
        ("lab report's text frame", b"#T#".to_vec(), Fatal(BadMagic)),
        ("HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), Fatal(BadMagic)),
        ("version 0", header_with(1, |b| b[offset::VERSION] = 0), Fatal(UnsupportedVersion)),
        ("version 2", header_with(1, |b| b[offset::VERSION] = 2), Fatal(UnsupportedVersion)),
        ("version 255", header_with(1, |b| b[offset::VERSION] = 255), Fatal(UnsupportedVersion)),
        ("length max+1", header_with(1, |b| set_length(b, DEFAULT_MAX_PAYLOAD + 1)), Fatal(Oversize)),
        ("length 0x7FFFFFFF", header_with(1, |b| set_length(b, 0x7FFF_FFFF)), Fatal(Oversize)),
        ("length 0xFFFFFFFF", header_with(1, |b| set_length(b, u32::MAX)), Fatal(Oversize)),
        ("type 0", header_with(2, |b| b[offset::TYPE] = 0), Recoverable(UnknownType, 2)),
        ("type 'Z'", header_with(3, |b| b[offset::TYPE] = b'Z'), Recoverable(UnknownType, 3)),
        ("type 't' (lowercase)", header_with(4, |b| b[offset::TYPE] = b't'), Recoverable(UnknownType, 4)),
        ("type 0xFF", header_with(5, |b| b[offset::TYPE] = 0xFF), Recoverable(UnknownType, 5)),
        ("class 3", header_with(6, |b| b[offset::CLASS] = 3), Recoverable(UnknownType, 6)),
        ("class 0xFF", header_with(7, |b| b[offset::CLASS] = 0xFF), Recoverable(UnknownType, 7)),
        ("H as a request", header_with(8, |b| b[offset::TYPE] = b'H'), Recoverable(UnexpectedFrame, 8)),
        ("T as an indication", header_with(28, |b| b[offset::CLASS] = 2), Recoverable(UnexpectedFrame, 28)),
        ("E as a request", header_with(29, |b| b[offset::TYPE] = b'E'), Recoverable(UnexpectedFrame, 29)),
        ("A as a request", header_with(30, |b| b[offset::TYPE] = b'A'), Recoverable(UnexpectedFrame, 30)),
        (
            "a T response with a payload that does not decode: the direction is checked first",
            header_with(31, |b| {
                b[offset::CLASS] = 1;
                set_length(b, 1);
                b.push(0xFF);
            }),
            Recoverable(UnexpectedFrame, 31),
        ),
        (
            "reserved 1 on an unknown type: the reserved byte is checked first",
            header_with(32, |b| {
                b[offset::RESERVED] = 1;
                b[offset::TYPE] = b'Z';
            }),
            Recoverable(InvalidHeader, 32),
        ),
        ("reserved 1", header_with(9, |b| b[offset::RESERVED] = 1), Recoverable(InvalidHeader, 9)),
        ("reserved 0xFF", header_with(10, |b| b[offset::RESERVED] = 0xFF), Recoverable(InvalidHeader, 10)),
        ("M request with length 0", send_cut_at(11, 0), Recoverable(MalformedPayload, 11)),
        ("M request cut inside `to`", send_cut_at(12, 2), Recoverable(MalformedPayload, 12)),
        ("M request cut after `to`", send_cut_at(13, 4), Recoverable(MalformedPayload, 13)),
        ("M request cut inside the text length", send_cut_at(14, 9), Recoverable(MalformedPayload, 14)),
        ("M request cut inside the text", send_cut_at(15, 14), Recoverable(MalformedPayload, 15)),
        (
            "T request with 1 trailing byte",
            {
                let mut b = time_request(16);
                b.push(0);
                set_length(&mut b, 1);
                b
            },
            Recoverable(MalformedPayload, 16),
        ),
        (
            "text length u64::MAX",
            {
                let mut b = Frame::new(17, SendRequest { to: 1, text: "abcd".into() }).to_bytes().unwrap();
                b[HEADER_LEN + 4..HEADER_LEN + 12].copy_from_slice(&u64::MAX.to_le_bytes());
                b
            },
            Recoverable(MalformedPayload, 17),
        ),
        (
            "invalid UTF-8 text",
            {
                let mut b = Frame::new(18, SendRequest { to: 1, text: "abcd".into() }).to_bytes().unwrap();
                let last = b.len() - 2;
                b[last] = 0xC3; // a lead byte followed by ASCII
                b
            },
            Recoverable(MalformedPayload, 18),
        ),
        (
            "a response from a client",
            forbidden(19, TimeResponse { time: "now".into() }),
            Recoverable(UnexpectedFrame, 19),
        ),
        (
            "a delivery receipt from a client",
            forbidden(20, Delivery { to: 1, status: DeliveryStatus::Delivered, reason: String::new() }),
            Recoverable(UnexpectedFrame, 20),
        ),
        (
            "a forged forwarded message",
            forbidden(21, Forwarded { from: 9, from_ip: v4, from_port: 1, text: "spoof".into() }),
            Recoverable(UnexpectedFrame, 21),
        ),
        (
            "a hello from a client",
            forbidden(22, Hello { client_id: 1, server: "me".into(), version: 1, max_payload: 1 }),
            Recoverable(UnexpectedFrame, 22),
        ),
        (
            "a shutdown from a client",
            forbidden(23, Shutdown { reason: "bye".into() }),
            Recoverable(UnexpectedFrame, 23),
        ),
        (
            "an error from a client",
            forbidden(24, ErrorBody { code: BadMagic, text: "no".into() }),
            Recoverable(UnexpectedFrame, 24),
        ),
        ("a ping indication from a client", forbidden(25, ServerPing), Recoverable(UnexpectedFrame, 25)),
        (
            "a list response from a client",
            forbidden(26, ListResponse { clients: vec![] }),
            Recoverable(UnexpectedFrame, 26),
        ),
    ];
    // A receipt is not what a client sends: the direction is checked before
    // the payload, so the unknown status is never looked at (a client decoding
    // the same frame says malformed_payload: see tnlm-core's decoder tests).
    cases.push((
        "status code 999 in a receipt from a client",
        {
            let mut b = forbidden(27, Delivery { to: 1, status: DeliveryStatus::Delivered, reason: String::new() });
            b[HEADER_LEN + 4..HEADER_LEN + 6].copy_from_slice(&999u16.to_le_bytes());
            b
        },
        Recoverable(UnexpectedFrame, 27),
    ));
    cases
}

#[test]
fn table_of_hostile_inputs() {
    let cases = hostile_cases();
    assert!(cases.len() >= 30, "the suite promises at least 30 cases, has {}", cases.len());
    let server = server();
    for (name, bytes, outcome) in cases {
        let mut client = RawClient::connect(server.local_addr());
        client.write_raw(&bytes);
        match outcome {
            Outcome::Fatal(code) => {
                let frames = client.frames_until_closed();
                let codes: Vec<ErrorCode> = frames
                    .iter()
                    .filter_map(|f| match &f.message {
                        Message::Error(e) => Some(e.code),
                        _ => None,
                    })
                    .collect();
                assert_eq!(codes, [code], "{name}: {frames:?}");
            }
            Outcome::Recoverable(code, id) => {
                client.write_raw(&time_request(77));
                let frame = client.next_frame();
                let Message::Error(body) = &frame.message else { panic!("{name}: {frame:?}") };
                assert_eq!((body.code, frame.request_id), (code, id), "{name}: {body:?}");
                let next = client.next_frame();
                assert!(matches!(next.message, Message::TimeResponse(_)) && next.request_id == 77, "{name}: {next:?}");
            }
        }
    }
    still_serving(&server);
}

#[test]
fn a_frame_trickled_one_byte_per_100_ms_is_cut_off_by_the_frame_timeout() {
    let frame_timeout = std::time::Duration::from_millis(500);
    // docs/RELIABILITY.md: the `timeout` error arrives within the frame timeout
    // plus min(timeout / 8, 1 s) (how late a connection's timer may fire) plus
    // 0.25 s for the OS to schedule the threads on a loaded machine.
    let bound = frame_timeout + frame_timeout / 8 + std::time::Duration::from_millis(250);
    let server = server_with(|c| c.frame_timeout = frame_timeout);
    let mut slowloris = RawClient::connect(server.local_addr());
    let mut writer = slowloris.stream.try_clone().unwrap();
    let started = std::time::Instant::now();
    let trickle = std::thread::spawn(move || {
        for byte in time_request(1) {
            if writer.write_all(&[byte]).is_err() {
                return;
            }
            // Pacing the attack, not waiting for anything: one byte per 100 ms.
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    });
    let error = slowloris.next_frame();
    let cut_off = started.elapsed();
    assert!(matches!(&error.message, Message::Error(e) if e.code == ErrorCode::Timeout), "{error:?}");
    assert!(slowloris.frames_until_closed().is_empty(), "the connection closes after the error");
    eprintln!("slowloris cut off after {cut_off:?} (frame timeout {frame_timeout:?}, bound {bound:?})");
    assert!(cut_off >= frame_timeout && cut_off <= bound, "cut off after {cut_off:?}");
    trickle.join().unwrap();
    still_serving(&server);
}

#[test]
fn connect_and_say_nothing_is_dropped_by_the_heartbeat() {
    let server = server_with(|c| c.heartbeat = Some(std::time::Duration::from_millis(200)));
    let mut mute = RawClient::connect_silent(server.local_addr());
    let frames = mute.frames_until_closed();
    assert!(matches!(frames.first().map(|f| &f.message), Some(Message::Hello(_))));
    assert!(matches!(frames.last().map(|f| &f.message), Some(Message::Error(e)) if e.code == ErrorCode::Timeout));
    still_serving(&server);
}

#[test]
fn a_peer_trickling_after_a_fatal_error_is_cut_off_after_the_two_second_drain() {
    let server = server();
    let mut bad = RawClient::connect(server.local_addr());
    bad.write_raw(b"XXXXXXXXXXXXXXXX"); // bad magic: fatal, the server drains then closes
    let frames = bad.frames_until_closed();
    assert!(frames.iter().any(|f| matches!(&f.message, Message::Error(e) if e.code == ErrorCode::BadMagic)));
    // Before the drain had one deadline, each byte restarted its 2 s wait and
    // the (already unlisted) connection thread lived on for as long as this went.
    let started = std::time::Instant::now();
    let mut cut_off = false;
    while started.elapsed() < std::time::Duration::from_secs(10) {
        if bad.stream.write_all(b"x").is_err() {
            cut_off = true;
            break;
        }
        // Pacing the trickle, not waiting for anything: one byte per 100 ms.
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(cut_off, "still accepting bytes after {:?}", started.elapsed());
    eprintln!("trickling peer cut off after {:?}", started.elapsed());
    still_serving(&server);
}
