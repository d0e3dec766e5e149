//! The schema in `tnlm_core::schema` checked against the real encoder and decoder: the
//! sample frames of `tnlm_core::samples` (one or more of every catalog entry), their header
//! bytes, a field-by-field walk of their payloads compared with serde's own view (JSON),
//! and truncated payloads.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::{Map, Value as Json};
use tnlm_core::frame::offset;
use tnlm_core::message::{
    Delivery, DeliveryStatus, ErrorBody, Forwarded, ListRequest, ListResponse, NameRequest, NameResponse, Shutdown,
    TimeRequest,
};
use tnlm_core::samples;
use tnlm_core::schema::{self, MessageSchema, Value};
use tnlm_core::{
    Class, DecodeError, Decoder, ErrorCode, Frame, Message, TypeCode, DEFAULT_MAX_PAYLOAD, HEADER_LEN, MAGIC, VERSION,
};

/// Compile-time guard: adding a `Message` variant breaks this match, which is the cue to
/// add a sample to `tnlm_core::samples` (the coverage test then checks the catalog too).
fn variant_index(message: &Message) -> usize {
    match message {
        Message::TimeRequest(_) => 0,
        Message::NameRequest(_) => 1,
        Message::ListRequest(_) => 2,
        Message::SendRequest(_) => 3,
        Message::TimeResponse(_) => 4,
        Message::NameResponse(_) => 5,
        Message::ListResponse(_) => 6,
        Message::Delivery(_) => 7,
        Message::Forwarded(_) => 8,
        Message::Hello(_) => 9,
        Message::Shutdown(_) => 10,
        Message::Error(_) => 11,
        Message::PingRequest(_) => 12,
        Message::ServerPing(_) => 13,
        Message::Pong(_) => 14,
        Message::Ack(_) => 15,
    }
}
const VARIANTS: usize = 16;

fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode_into(&mut out, DEFAULT_MAX_PAYLOAD).unwrap();
    out
}

fn schema_of(frame: &Frame) -> &'static MessageSchema {
    let (type_code, class) = frame.message.kind();
    schema::lookup(type_code, class).unwrap_or_else(|| panic!("{type_code:?}/{class:?} is not in the catalog"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// The walk's output in JSON form: numbers, strings, IPs as strings, lists as arrays of
/// objects, keys in wire order (serde_json is built with `preserve_order`).
fn walked_to_json(values: &[(String, Value)]) -> Json {
    let mut map = Map::new();
    for (name, value) in values {
        let json = match value {
            Value::Uint(n) => Json::from(*n),
            Value::Text(text) => Json::from(text.as_str()),
            Value::Ip(ip) => Json::from(ip.to_string()),
            Value::List(rows) => Json::Array(rows.iter().map(|row| walked_to_json(row)).collect()),
        };
        assert!(map.insert(name.clone(), json).is_none(), "duplicate field {name}");
    }
    Json::Object(map)
}

#[test]
fn samples_cover_every_catalog_entry_and_variant() {
    let catalog = schema::catalog();
    let catalog_keys: BTreeSet<(u8, u8)> = catalog.iter().map(|m| (m.type_code as u8, m.class as u8)).collect();
    assert_eq!(catalog_keys.len(), catalog.len(), "catalog has duplicate (type, class) pairs");
    assert_eq!(catalog.len(), VARIANTS, "one catalog row per Message variant");

    let frames = samples::frames();
    let sample_keys: BTreeSet<(u8, u8)> = frames
        .iter()
        .map(|f| {
            let (t, c) = f.message.kind();
            (t as u8, c as u8)
        })
        .collect();
    assert_eq!(sample_keys, catalog_keys);
    let variants: BTreeSet<usize> = frames.iter().map(|f| variant_index(&f.message)).collect();
    assert_eq!(variants, (0..VARIANTS).collect());
    // Every delivery status and error code, too.
    for status in DeliveryStatus::ALL {
        assert!(frames.iter().any(|f| matches!(&f.message, Message::Delivery(d) if d.status == status)), "{status:?}");
    }
    for code in ErrorCode::ALL {
        assert!(frames.iter().any(|f| matches!(&f.message, Message::Error(e) if e.code == code)), "{code:?}");
    }

    // Every type code and class is used by some message, and names agree.
    for type_code in TypeCode::ALL {
        assert!(catalog.iter().any(|m| m.type_code == type_code), "{type_code:?} unused");
        assert_eq!(TypeCode::from_byte(type_code as u8), Some(type_code));
        assert!(type_code.letter().is_ascii_uppercase());
    }
    for class in Class::ALL {
        assert!(catalog.iter().any(|m| m.class == class), "{class:?} unused");
        assert_eq!(Class::from_byte(class as u8), Some(class));
    }
    for frame in &frames {
        let schema = schema_of(frame);
        assert_eq!(frame.message.payload_name(), schema.payload);
        // Indications carry id 0, except the two a client answers by id:
        // the heartbeat ping and the forwarded message (acknowledged).
        let answered = matches!(frame.message, Message::ServerPing(_) | Message::Forwarded(_));
        if schema.class == Class::Indication && !answered {
            assert_eq!(frame.request_id, 0, "indications carry request id 0");
        }
    }
}

#[test]
fn header_bytes_match_the_documented_offsets() {
    for frame in samples::frames() {
        let bytes = encode(&frame);
        let schema = schema_of(&frame);
        assert!(bytes.len() >= HEADER_LEN);
        assert_eq!(bytes[offset::MAGIC..offset::MAGIC + 4], MAGIC, "{frame:?}");
        assert_eq!(bytes[offset::VERSION], VERSION);
        assert_eq!(bytes[offset::TYPE], schema.type_code as u8);
        assert_eq!(bytes[offset::TYPE] as char, schema.type_code.letter());
        assert_eq!(bytes[offset::CLASS], schema.class as u8);
        assert_eq!(bytes[offset::RESERVED], 0);
        assert_eq!(u32_at(&bytes, offset::REQUEST_ID), frame.request_id);
        assert_eq!(u32_at(&bytes, offset::LENGTH) as usize, bytes.len() - HEADER_LEN);
        assert_eq!(offset::LENGTH + 4, HEADER_LEN);
        // to_bytes is the same encoding.
        assert_eq!(frame.to_bytes().unwrap(), bytes);
        // The summary names the letter, class and id.
        assert_eq!(
            frame.summary(),
            format!("{} {} #{}", schema.type_code.letter(), schema.class.name(), frame.request_id)
        );
    }
}

#[test]
fn header_table_matches_offsets_and_encoded_bytes() {
    // The table tiles the header exactly, in order.
    let mut at = 0;
    for field in schema::HEADER {
        assert_eq!(field.offset, at, "{} is not where the previous field ends", field.name);
        at += field.size;
    }
    assert_eq!(at, HEADER_LEN);
    let expected_offsets = [
        ("magic", offset::MAGIC, 4),
        ("version", offset::VERSION, 1),
        ("type", offset::TYPE, 1),
        ("class", offset::CLASS, 1),
        ("reserved", offset::RESERVED, 1),
        ("request_id", offset::REQUEST_ID, 4),
        ("length", offset::LENGTH, 4),
    ];
    let table: Vec<(&str, usize, usize)> = schema::HEADER.iter().map(|f| (f.name, f.offset, f.size)).collect();
    assert_eq!(table, expected_offsets);

    // Each field, read from an encoded frame through the table, holds what it should.
    for frame in samples::frames() {
        let bytes = encode(&frame);
        let (type_code, class) = frame.message.kind();
        for field in schema::HEADER {
            let raw = &bytes[field.offset..field.offset + field.size];
            let value = raw.iter().rev().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
            let expected = match field.name {
                "magic" => {
                    assert_eq!(raw, MAGIC);
                    continue;
                }
                "version" => u64::from(VERSION),
                "type" => u64::from(type_code as u8),
                "class" => u64::from(class as u8),
                "reserved" => 0,
                "request_id" => u64::from(frame.request_id),
                "length" => (bytes.len() - HEADER_LEN) as u64,
                other => panic!("unexpected header field {other}"),
            };
            assert_eq!(value, expected, "{} of {frame:?}", field.name);
        }
    }
}

#[test]
fn walk_consumes_the_payload_and_agrees_with_serde() {
    for frame in samples::frames() {
        let bytes = encode(&frame);
        let payload = &bytes[HEADER_LEN..];
        let schema = schema_of(&frame);
        let walked = schema::walk(schema.fields, payload)
            .unwrap_or_else(|err| panic!("walk of {} failed: {err}", schema.payload));
        let names: Vec<&str> = walked.iter().map(|(n, _)| n.as_str()).collect();
        let schema_names: Vec<&str> = schema.fields.iter().map(|f| f.name).collect();
        assert_eq!(names, schema_names);

        let serde_view = serde_json::to_value(&frame.message).unwrap();
        if schema.fields.is_empty() {
            assert_eq!(serde_view, Json::Null, "{}: unit payload serializes as null", schema.payload);
            assert!(payload.is_empty(), "{}: unit payload is empty on the wire", schema.payload);
            assert!(walked.is_empty());
            continue;
        }
        let walked_view = walked_to_json(&walked);
        assert_eq!(walked_view, serde_view, "{}", schema.payload);
        // Map equality ignores order; the serialized text does not (preserve_order).
        assert_eq!(
            serde_json::to_string(&walked_view).unwrap(),
            serde_json::to_string(&serde_view).unwrap(),
            "{}: field order differs",
            schema.payload
        );
    }
}

#[test]
fn every_sample_decodes_back_alone_and_all_together() {
    let frames = samples::frames();
    let mut stream = Vec::new();
    for frame in &frames {
        let bytes = encode(frame);
        let mut decoder = Decoder::default();
        decoder.feed(&bytes);
        assert_eq!(decoder.next_frame().unwrap().as_ref(), Some(frame));
        assert_eq!(decoder.next_frame().unwrap(), None);
        assert_eq!(decoder.buffered(), 0);
        stream.extend_from_slice(&bytes);
    }
    let mut decoder = Decoder::default();
    decoder.feed(&stream);
    let decoded: Vec<Frame> = std::iter::from_fn(|| decoder.next_frame().unwrap()).collect();
    assert_eq!(decoded, frames);
    assert!(decoder.finish().is_ok());
}

/// A frame with `frame`'s header but `payload` (length fixed up) and request id `id`.
fn reframe(frame: &[u8], payload: &[u8], id: u32) -> Vec<u8> {
    let mut out = frame[..HEADER_LEN].to_vec();
    out[offset::REQUEST_ID..offset::REQUEST_ID + 4].copy_from_slice(&id.to_le_bytes());
    out[offset::LENGTH..offset::LENGTH + 4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn assert_malformed_then_next(bad: &[u8], id: u32, what: &str, next: &Frame) {
    let mut decoder = Decoder::default();
    decoder.feed(bad);
    decoder.feed(&encode(next));
    let err = decoder.next_frame().unwrap_err();
    match &err {
        DecodeError::MalformedPayload { what: w, request_id, .. } => {
            assert_eq!((*w, *request_id), (what, id), "{err}");
        }
        other => panic!("{what}: expected MalformedPayload, got {other:?}"),
    }
    assert!(!err.is_fatal());
    assert_eq!(err.code(), ErrorCode::MalformedPayload);
    assert_eq!(err.request_id(), id);
    assert_eq!(decoder.next_frame().unwrap().as_ref(), Some(next), "{what}: frame after the bad one");
    assert_eq!(decoder.next_frame().unwrap(), None);
    assert!(decoder.finish().is_ok());
}

#[test]
fn truncated_payloads_are_malformed_and_decoding_goes_on() {
    let frames = samples::frames();
    let mut checked = 0;
    for (n, frame) in frames.iter().enumerate() {
        let bytes = encode(frame);
        let payload = &bytes[HEADER_LEN..];
        let schema = schema_of(frame);
        // The frame after the bad one: the next sample, so every kind follows some bad frame.
        let next = &frames[(n + 1) % frames.len()];
        for cut in 0..payload.len() {
            let id = 0xA000_0000 | (n as u32) << 16 | cut as u32;
            assert!(
                schema::walk(schema.fields, &payload[..cut]).is_err(),
                "{}: walk accepted {cut} bytes",
                schema.payload
            );
            assert_malformed_then_next(&reframe(&bytes, &payload[..cut], id), id, schema.payload, next);
            checked += 1;
        }
    }
    assert!(checked > 500, "only {checked} truncations checked");
}

#[test]
fn trailing_bytes_are_malformed_and_decoding_goes_on() {
    let frames = samples::frames();
    for (n, frame) in frames.iter().enumerate() {
        let bytes = encode(frame);
        let schema = schema_of(frame);
        let next = &frames[(n + 1) % frames.len()];
        for extra in [&[0u8][..], &[0xFF; 9][..]] {
            let mut payload = bytes[HEADER_LEN..].to_vec();
            payload.extend_from_slice(extra);
            let id = 0xB000_0000 | n as u32;
            assert!(schema::walk(schema.fields, &payload).is_err(), "{}: walk accepted trailing bytes", schema.payload);
            assert_malformed_then_next(&reframe(&bytes, &payload, id), id, schema.payload, next);
        }
    }
}

#[test]
fn corrupt_text_and_address_family_are_malformed() {
    // Invalid UTF-8 in a string field.
    let frame = Frame::new(3, NameResponse { name: "ab".into() });
    let mut bytes = encode(&frame);
    let last = bytes.len() - 1;
    bytes[last] = 0xC3; // lone lead byte
    let schema = schema_of(&frame);
    assert!(schema::walk(schema.fields, &bytes[HEADER_LEN..]).is_err());
    assert_malformed_then_next(&bytes, 3, "NameResponse", &Frame::new(4, TimeRequest));

    // Address family 2 does not exist.
    let frame =
        Frame::indication(Forwarded { from: 1, from_ip: Ipv4Addr::LOCALHOST.into(), from_port: 9, text: "x".into() });
    let mut bytes = encode(&frame);
    let family = HEADER_LEN + 4; // after `from: u32`
    assert_eq!(bytes[family..family + 4], [0, 0, 0, 0]);
    bytes[family] = 2;
    let schema = schema_of(&frame);
    assert!(schema::walk(schema.fields, &bytes[HEADER_LEN..]).is_err());
    assert_malformed_then_next(&bytes, 0, "Forwarded", &Frame::new(5, ListRequest));

    // Unknown delivery status and error code values.
    for (frame, at, what) in [
        (Frame::new(6, Delivery { to: 1, status: DeliveryStatus::Delivered, reason: String::new() }), 4, "Delivery"),
        (Frame::new(7, ErrorBody { code: ErrorCode::BadMagic, text: String::new() }), 0, "ErrorBody"),
    ] {
        let mut bytes = encode(&frame);
        bytes[HEADER_LEN + at..HEADER_LEN + at + 2].copy_from_slice(&999u16.to_le_bytes());
        assert_malformed_then_next(&bytes, frame.request_id, what, &Frame::new(8, NameRequest));
    }
}

#[test]
fn string_length_prefix_larger_than_the_payload_is_malformed() {
    let frame = Frame::new(11, Shutdown { reason: "bye".into() });
    let mut bytes = encode(&frame);
    bytes[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_malformed_then_next(&bytes, 11, "Shutdown", &Frame::new(12, TimeRequest));
    let mut bytes = encode(&Frame::new(13, ListResponse { clients: Vec::new() }));
    bytes[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert_malformed_then_next(&bytes, 13, "ListResponse", &Frame::new(14, TimeRequest));
}

#[test]
fn every_exchange_names_catalog_messages_of_the_right_classes() {
    use tnlm_core::schema::{Sender, ERROR_ANSWERS, EXCHANGES};
    for e in EXCHANGES {
        for (type_code, class) in [e.ask, e.answer] {
            assert!(schema::lookup(type_code, class).is_some(), "{e:?} names a message not in the catalog");
        }
        assert_eq!(e.answer.1, Class::Response, "{e:?}: answers are responses");
        let opener_class = if e.opener == Sender::Client { Class::Request } else { Class::Indication };
        assert_eq!(e.ask.1, opener_class, "{e:?}: clients ask with requests, the server with indications");
    }
    // Every request kind the client may send is answered by something.
    for m in schema::catalog().iter().filter(|m| m.class == Class::Request) {
        assert!(EXCHANGES.iter().any(|e| e.ask == (m.type_code, m.class)), "{} has no exchange", m.payload);
    }
    assert!(schema::lookup(ERROR_ANSWERS.0, ERROR_ANSWERS.1).is_some());
}
