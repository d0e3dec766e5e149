//! Property tests for the streaming decoder: any split of a valid stream decodes to the
//! frames that were sent, and no input, however hostile, makes it panic, grow without
//! bound, or forget a fatal error.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use proptest::prelude::*;
use tnlm_core::frame::offset;
use tnlm_core::message::{
    Ack, ClientInfo, Delivery, DeliveryStatus, ErrorBody, Forwarded, Hello, ListRequest, ListResponse, NameRequest,
    NameResponse, PingRequest, Pong, SendRequest, ServerPing, Shutdown, TimeRequest, TimeResponse,
};
use tnlm_core::{DecodeError, Decoder, ErrorCode, Frame, Message, DEFAULT_MAX_PAYLOAD, HEADER_LEN, MAGIC, VERSION};

/// Payload limit for the hostile-input properties: small, so oversize frames are common.
const SMALL_MAX: u32 = 256;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        1 => "[a-z #*!\n]{0,20}",
        1 => Just(String::new()),
        1 => "[\u{80}-\u{7FF}\u{800}-\u{FFFF}\u{10000}-\u{10FFFF}]{1,8}",
    ]
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![any::<[u8; 4]>().prop_map(IpAddr::from), any::<[u8; 16]>().prop_map(IpAddr::from)]
}

fn client_info() -> impl Strategy<Value = ClientInfo> {
    (any::<u32>(), ip(), any::<u16>(), text()).prop_map(|(id, ip, port, since)| ClientInfo { id, ip, port, since })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        Just(Message::from(TimeRequest)),
        Just(Message::from(NameRequest)),
        Just(Message::from(ListRequest)),
        Just(Message::from(PingRequest)),
        Just(Message::from(ServerPing)),
        Just(Message::from(Pong)),
        Just(Message::from(Ack)),
        (any::<u32>(), text()).prop_map(|(to, text)| SendRequest { to, text }.into()),
        text().prop_map(|time| TimeResponse { time }.into()),
        text().prop_map(|name| NameResponse { name }.into()),
        prop::collection::vec(client_info(), 0..5).prop_map(|clients| ListResponse { clients }.into()),
        (any::<u32>(), prop::sample::select(DeliveryStatus::ALL.to_vec()), text())
            .prop_map(|(to, status, reason)| Delivery { to, status, reason }.into()),
        (any::<u32>(), ip(), any::<u16>(), text())
            .prop_map(|(from, from_ip, from_port, text)| { Forwarded { from, from_ip, from_port, text }.into() }),
        (any::<u32>(), text(), any::<u8>(), any::<u32>()).prop_map(|(client_id, server, version, max_payload)| {
            Hello { client_id, server, version, max_payload }.into()
        }),
        text().prop_map(|reason| Shutdown { reason }.into()),
        (prop::sample::select(ErrorCode::ALL.to_vec()), text())
            .prop_map(|(code, text)| ErrorBody { code, text }.into()),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    (any::<u32>(), message()).prop_map(|(request_id, message)| Frame { request_id, message })
}

fn encode(frames: &[Frame], max_payload: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        frame.encode_into(&mut out, max_payload).unwrap();
    }
    out
}

/// Feeds `bytes` in chunks whose sizes cycle through `sizes`, draining after every feed.
fn decode_in_chunks(bytes: &[u8], sizes: &[usize]) -> (Vec<Frame>, Decoder) {
    let mut decoder = Decoder::default();
    let mut frames = Vec::new();
    let mut rest = bytes;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        decoder.feed(chunk);
        while let Some(frame) = decoder.next_frame().unwrap() {
            frames.push(frame);
        }
    }
    (frames, decoder)
}

/// One piece of a hostile stream.
#[derive(Debug, Clone)]
enum Piece {
    /// A valid frame.
    Valid(Frame),
    /// A header with the magic right (and mostly the version) but any type, class,
    /// reserved byte, request id and length, followed by `body` (which may be shorter or
    /// longer than the length says).
    Header { version: u8, type_code: u8, class: u8, reserved: u8, request_id: u32, length: u32, body: Vec<u8> },
    /// Anything.
    Noise(Vec<u8>),
}

fn piece() -> impl Strategy<Value = Piece> {
    let type_byte = prop_oneof![prop::sample::select(b"TNLMHSE".to_vec()), any::<u8>()];
    let class_byte = prop_oneof![0u8..3, any::<u8>()];
    let version = prop_oneof![7 => Just(VERSION), 1 => any::<u8>()];
    let reserved = prop_oneof![3 => Just(0u8), 1 => any::<u8>()];
    let length = prop_oneof![0u32..=SMALL_MAX + 8, any::<u32>()];
    prop_oneof![
        3 => frame().prop_map(Piece::Valid),
        3 => (
            version,
            type_byte,
            class_byte,
            reserved,
            any::<u32>(),
            length,
            prop::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(version, type_code, class, reserved, request_id, length, body)| Piece::Header {
                version, type_code, class, reserved, request_id, length, body
            }),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Piece::Noise),
    ]
}

fn render(pieces: &[Piece]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Valid(frame) => {
                // Frames too big for the small limit go out anyway: the decoder must refuse them.
                frame.encode_into(&mut out, DEFAULT_MAX_PAYLOAD).unwrap();
            }
            Piece::Header { version, type_code, class, reserved, request_id, length, body } => {
                out.extend_from_slice(&MAGIC);
                out.extend_from_slice(&[*version, *type_code, *class, *reserved]);
                out.extend_from_slice(&request_id.to_le_bytes());
                out.extend_from_slice(&length.to_le_bytes());
                out.extend_from_slice(body);
            }
            Piece::Noise(bytes) => out.extend_from_slice(bytes),
        }
    }
    out
}

/// Random streams: pure noise, or pieces with some bytes flipped.
fn hostile_stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..2048),
        1 => prop::collection::vec(piece(), 0..12).prop_map(|pieces| render(&pieces)),
        2 => (prop::collection::vec(piece(), 1..12), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4))
            .prop_map(|(pieces, flips)| {
                let mut bytes = render(&pieces);
                if !bytes.is_empty() {
                    for (at, value) in flips {
                        let at = at.index(bytes.len());
                        bytes[at] = value;
                    }
                }
                bytes
            }),
    ]
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=64, 1..32)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Frames encoded back to back come out equal, however the stream is split.
    #[test]
    fn any_split_decodes_to_the_frames_sent(frames in prop::collection::vec(frame(), 0..16), sizes in chunk_sizes()) {
        let bytes = encode(&frames, DEFAULT_MAX_PAYLOAD);

        let (decoded, decoder) = decode_in_chunks(&bytes, &sizes);
        prop_assert_eq!(&decoded, &frames);
        prop_assert_eq!(decoder.buffered(), 0);
        prop_assert!(decoder.finish().is_ok());

        let (decoded, decoder) = decode_in_chunks(&bytes, &[1]);
        prop_assert_eq!(&decoded, &frames);
        prop_assert_eq!(decoder.buffered(), 0);
        prop_assert!(decoder.finish().is_ok());

        // All at once, too.
        let (decoded, decoder) = decode_in_chunks(&bytes, &[bytes.len().max(1)]);
        prop_assert_eq!(&decoded, &frames);
        prop_assert!(decoder.finish().is_ok());
    }

    /// A stream cut short is reported by `finish` with exactly the bytes of the partial frame.
    #[test]
    fn a_cut_stream_reports_the_partial_frame(frames in prop::collection::vec(frame(), 1..8), cut in any::<prop::sample::Index>(), sizes in chunk_sizes()) {
        let bytes = encode(&frames, DEFAULT_MAX_PAYLOAD);
        let cut = cut.index(bytes.len());
        let (decoded, decoder) = decode_in_chunks(&bytes[..cut], &sizes);
        // Whole frames before the cut come out; the rest is buffered.
        let mut whole = 0;
        let mut end = 0;
        for frame in &frames {
            let len = encode(std::slice::from_ref(frame), DEFAULT_MAX_PAYLOAD).len();
            if end + len > cut {
                break;
            }
            end += len;
            whole += 1;
        }
        prop_assert_eq!(&decoded[..], &frames[..whole]);
        prop_assert_eq!(decoder.buffered(), cut - end);
        if cut == end {
            prop_assert!(decoder.finish().is_ok());
        } else {
            // The cut frame's id is named once its whole header has arrived.
            let request_id = if cut - end >= HEADER_LEN { frames[whole].request_id } else { 0 };
            prop_assert_eq!(decoder.finish(), Err(DecodeError::Truncated { buffered: cut - end, request_id }));
        }
    }

    /// Hostile input never panics, stays bounded while draining after every feed, and a
    /// fatal error sticks.
    #[test]
    fn hostile_input_is_bounded_and_fatal_errors_stick(bytes in hostile_stream(), sizes in chunk_sizes()) {
        let mut decoder = Decoder::new(SMALL_MAX);
        prop_assert_eq!(decoder.max_payload(), SMALL_MAX);
        let mut fatal: Option<DecodeError> = None;
        let mut rest = &bytes[..];
        for &size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            rest = tail;
            decoder.feed(chunk);
            if let Some(err) = &fatal {
                // Once framing is lost, nothing more is decoded from any later bytes.
                prop_assert_eq!(decoder.next_frame(), Err(err.clone()));
                prop_assert_eq!(decoder.next_frame(), Err(err.clone()));
                continue;
            }
            prop_assert!(
                decoder.buffered() <= HEADER_LEN + SMALL_MAX as usize + chunk.len(),
                "buffered {} after a {}-byte feed", decoder.buffered(), chunk.len()
            );
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => {
                        // Whatever decodes re-encodes within the limit, to the same frame.
                        let again = encode(std::slice::from_ref(&frame), SMALL_MAX);
                        let mut check = Decoder::new(SMALL_MAX);
                        check.feed(&again);
                        prop_assert_eq!(check.next_frame(), Ok(Some(frame)));
                    }
                    Ok(None) => {
                        prop_assert!(decoder.buffered() < HEADER_LEN + SMALL_MAX as usize);
                        break;
                    }
                    Err(err) if err.is_fatal() => {
                        prop_assert!(matches!(
                            err,
                            DecodeError::BadMagic { .. } | DecodeError::UnsupportedVersion(_) | DecodeError::Oversize { .. }
                        ), "unexpected fatal error {:?}", err);
                        if let DecodeError::Oversize { length, max, .. } = err {
                            prop_assert!(length > SMALL_MAX);
                            prop_assert_eq!(max, SMALL_MAX);
                        }
                        prop_assert_eq!(decoder.next_frame(), Err(err.clone()));
                        fatal = Some(err);
                        break;
                    }
                    Err(err) => {
                        // Non-fatal: the bad frame was skipped; its error maps to a code.
                        prop_assert!(matches!(
                            err.code(),
                            ErrorCode::MalformedPayload
                                | ErrorCode::UnknownType
                                | ErrorCode::InvalidHeader
                                | ErrorCode::UnexpectedFrame
                        ), "unexpected error {:?}", err);
                        let _ = err.to_string();
                    }
                }
            }
        }
        if let Some(err) = &fatal {
            prop_assert_eq!(decoder.next_frame(), Err(err.clone()));
        }
    }

    /// Frames whose header is corrupted only in its type, class or reserved byte are
    /// skipped without losing the frames around them.
    #[test]
    fn non_fatal_header_errors_skip_exactly_one_frame(
        frames in prop::collection::vec(frame(), 3..8),
        victim in any::<prop::sample::Index>(),
        which in 0usize..3,
        value in any::<u8>(),
        sizes in chunk_sizes(),
    ) {
        let victim = victim.index(frames.len());
        let mut bytes = Vec::new();
        let mut victim_at = 0;
        for (n, frame) in frames.iter().enumerate() {
            if n == victim {
                victim_at = bytes.len();
            }
            frame.encode_into(&mut bytes, DEFAULT_MAX_PAYLOAD).unwrap();
        }
        let field = [offset::TYPE, offset::CLASS, offset::RESERVED][which];
        let original = bytes[victim_at + field];
        let value = if value == original { value.wrapping_add(1) } else { value };
        bytes[victim_at + field] = value;

        let mut decoder = Decoder::default();
        let mut decoded = Vec::new();
        let mut errors = Vec::new();
        let mut rest = &bytes[..];
        for &size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            rest = tail;
            decoder.feed(chunk);
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => decoded.push(frame),
                    Ok(None) => break,
                    Err(err) => {
                        prop_assert!(!err.is_fatal(), "{:?}", err);
                        errors.push(err);
                    }
                }
            }
        }
        prop_assert!(decoder.finish().is_ok());
        // The victim either decodes as another message (a different type/class that happens
        // to accept the payload) or yields exactly one non-fatal error carrying its id.
        prop_assert_eq!(decoded.len() + errors.len(), frames.len());
        if let Some(err) = errors.first() {
            prop_assert_eq!(errors.len(), 1);
            if which == 2 {
                let request_id = frames[victim].request_id;
                prop_assert_eq!(err, &DecodeError::InvalidHeader { reserved: value, request_id });
            }
            prop_assert_eq!(err.request_id(), frames[victim].request_id);
            let mut expected = frames.clone();
            expected.remove(victim);
            prop_assert_eq!(decoded, expected);
        } else {
            prop_assert!(which != 2);
            prop_assert_eq!(&decoded[..victim], &frames[..victim]);
            prop_assert_eq!(&decoded[victim + 1..], &frames[victim + 1..]);
        }
    }
}

/// After a fatal error `feed` keeps nothing, so a caller that keeps reading
/// instead of closing cannot make the decoder buffer without bound.
#[test]
fn buffer_stays_bounded_after_a_fatal_error() {
    let mut decoder = Decoder::new(SMALL_MAX);
    decoder.feed(b"XXXX");
    assert!(decoder.next_frame().unwrap_err().is_fatal());
    for _ in 0..1000 {
        decoder.feed(&[0u8; 64]);
        let _ = decoder.next_frame();
    }
    assert!(decoder.buffered() <= HEADER_LEN + SMALL_MAX as usize + 64, "buffered {}", decoder.buffered());
}
