//! What the TNLM fuzz targets check, shared by the targets in `fuzz_targets/`, the seed
//! writer in `examples/seed.rs` and the unit tests below (`cargo test` runs every seed
//! through both checks on stable, without libFuzzer).
//!
//! - [`check_frame_stream`] (target `frame_decoder`): byte 0 of the input picks the
//!   decoder's payload limit and how the rest, a byte stream, is split into reads. The
//!   stream is decoded read by read and also in one piece; both must give the same frames
//!   and errors, every frame must re-encode to exactly the bytes it was decoded from, every
//!   error must be the one its header calls for, fatal errors must stick, and the buffer must
//!   stay within one frame plus one read.
//! - [`check_payload`] (target `payload_decoder`): byte 0 picks a catalog entry (type code
//!   and class), the rest is decoded as its payload inside a well-formed header. The real
//!   decoder (bincode) and the schema's walk (the dissector's view) must agree on accept vs
//!   reject, and on every field value when both accept.
//!
//! The checks panic on any violation, which libFuzzer reports as a crash.

use std::ops::Range;
use std::sync::OnceLock;

use serde_json::{Map, Value as Json};
use tnlm_core::message::{
    Ack, DeliveryStatus, ListRequest, NameRequest, NameResponse, PingRequest, Pong, ServerPing, TimeRequest,
};
use tnlm_core::samples;
use tnlm_core::schema::{self, Field, MessageSchema, Value, Wire};
use tnlm_core::{
    Class, DecodeError, Decoder, ErrorCode, Frame, Header, Message, TypeCode, DEFAULT_MAX_PAYLOAD, HEADER_LEN, MAGIC,
    VERSION,
};

/// The payload limits `frame_decoder` uses, picked by the top two bits of byte 0: the
/// default, and three small ones so that oversize frames are easy to reach.
pub const LIMITS: [u32; 4] = [DEFAULT_MAX_PAYLOAD, 0, 24, 300];

/// How `frame_decoder` interprets byte 0 of its input: `LLHSSSSS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// `LL`: the decoder's payload limit, one of [`LIMITS`].
    pub max_payload: u32,
    /// `H`: the stream follows [`HISTORY_FRAMES`] valid frames, all in the first read, so the
    /// decoder has consumed more than 4 KiB and compacts its buffer on the next read (a path
    /// that inputs of at most 4 KiB cannot reach otherwise).
    pub history: bool,
    /// `SSSSS`: 0, the whole stream in one read; n > 0, reads of 1 to n² bytes
    /// (pseudo-random, seeded by the mode byte), so n = 1 is one byte at a time.
    pub split: u8,
    byte: u8,
}

/// How many frames [`Mode::history`] puts before the stream (16 bytes each).
pub const HISTORY_FRAMES: u32 = 300;

impl Mode {
    /// The mode selected by byte 0.
    pub fn from_byte(byte: u8) -> Mode {
        Mode { max_payload: LIMITS[usize::from(byte >> 6)], history: byte & 0x20 != 0, split: byte & 0x1F, byte }
    }

    /// The byte that selects `LIMITS[limit]`, `history` and `split` (0..=31).
    pub fn byte(limit: usize, history: bool, split: u8) -> u8 {
        assert!(limit < LIMITS.len() && split < 32);
        (limit as u8) << 6 | u8::from(history) << 5 | split
    }

    /// The stream split into reads.
    pub fn chunks<'a>(&self, stream: &'a [u8]) -> Vec<&'a [u8]> {
        if self.split == 0 {
            return vec![stream];
        }
        let max_chunk = u32::from(self.split) * u32::from(self.split);
        let mut state = 0x9E37_79B9u32 ^ u32::from(self.byte); // never 0
        let mut rest = stream;
        let mut chunks = Vec::new();
        while !rest.is_empty() {
            // xorshift32
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let size = (1 + state % max_chunk) as usize;
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            chunks.push(chunk);
            rest = tail;
        }
        chunks
    }
}

/// The frames of [`Mode::history`] (empty payloads, so valid under every limit) and their bytes.
fn history() -> &'static (Vec<Frame>, Vec<u8>) {
    static HISTORY: OnceLock<(Vec<Frame>, Vec<u8>)> = OnceLock::new();
    HISTORY.get_or_init(|| {
        let empty: [Message; 7] = [
            TimeRequest.into(),
            NameRequest.into(),
            ListRequest.into(),
            PingRequest.into(),
            ServerPing.into(),
            Pong.into(),
            Ack.into(),
        ];
        let frames: Vec<Frame> =
            (1..=HISTORY_FRAMES).map(|id| Frame::new(id, empty[id as usize % empty.len()].clone())).collect();
        let bytes = frames.iter().flat_map(|f| f.to_bytes().expect("empty payload")).collect();
        (frames, bytes)
    })
}

/// One result of `Decoder::next_frame` and the stream bytes it consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Frame(Frame, Range<usize>),
    /// A fatal error consumes nothing; `BadMagic`'s bytes depend on how much had
    /// arrived, so they are checked where the error happens and cleared here.
    Error(DecodeError, Range<usize>),
}

/// The `frame_decoder` check. See the [crate docs](crate).
pub fn check_frame_stream(data: &[u8]) {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let mode = Mode::from_byte(mode);
    let (frames, prefix) = if mode.history { history() } else { &(Vec::new(), Vec::new()) };
    let full = [prefix.as_slice(), stream].concat();
    // The history goes in the first read, with the stream's first chunk.
    let chunks = mode.chunks(stream);
    let first = [prefix.as_slice(), chunks.first().copied().unwrap_or_default()].concat();
    let reads: Vec<&[u8]> = std::iter::once(&first[..]).chain(chunks.iter().skip(1).copied()).collect();
    let split = decode_in_reads(&full, frames, mode.max_payload, &reads);
    let whole = decode_in_reads(&full, frames, mode.max_payload, &[prefix, stream]);
    assert_eq!(split, whole, "decoding in reads ({mode:?}) differs from decoding in one piece");
}

/// Feeds `chunks` (which concatenate to `stream`) one by one, draining after each, and
/// checks every invariant on the way. The stream starts with the encoding of `history`,
/// whose frames are only compared, not checked in depth. Returns what came after them.
fn decode_in_reads(stream: &[u8], history: &[Frame], max_payload: u32, chunks: &[&[u8]]) -> Vec<Event> {
    let mut decoder = Decoder::new(max_payload);
    assert_eq!(decoder.max_payload(), max_payload);
    let max_frame = HEADER_LEN + max_payload as usize;
    let mut events = Vec::new();
    let mut history = history.iter();
    let mut fatal: Option<DecodeError> = None;
    let mut fed = 0;
    for chunk in chunks {
        let before = decoder.buffered();
        decoder.feed(chunk);
        fed += chunk.len();
        if let Some(err) = &fatal {
            assert_eq!(decoder.buffered(), before, "bytes kept after the fatal error {err:?}");
            assert_eq!(decoder.next_frame().as_ref(), Err(err), "the fatal error did not stick");
            continue;
        }
        assert_eq!(decoder.buffered(), before + chunk.len(), "feed lost or invented bytes");
        assert!(
            decoder.buffered() <= max_frame + chunk.len(),
            "buffered {} > one frame + one read",
            decoder.buffered()
        );
        loop {
            let start = fed - decoder.buffered();
            let result = decoder.next_frame();
            let end = fed - decoder.buffered();
            assert!(start <= end, "the buffer grew while decoding");
            if let Some(expected) = history.next() {
                assert_eq!(result.as_ref(), Ok(&Some(expected.clone())), "history frame at {start}");
                continue;
            }
            match result {
                Ok(None) => {
                    assert_eq!(start, end, "Ok(None) consumed bytes");
                    break;
                }
                Ok(Some(frame)) => {
                    check_frame(&frame, &stream[start..end], max_payload);
                    events.push(Event::Frame(frame, start..end));
                }
                Err(err) if err.is_fatal() => {
                    assert_eq!(start, end, "the fatal error {err:?} consumed bytes");
                    check_fatal(&err, &stream[start..fed], max_payload);
                    assert_eq!(decoder.next_frame().as_ref(), Err(&err), "the fatal error did not stick");
                    fatal = Some(err.clone());
                    let err = match err {
                        DecodeError::BadMagic { .. } => DecodeError::BadMagic { found: Vec::new() },
                        other => other,
                    };
                    events.push(Event::Error(err, start..end));
                    break;
                }
                Err(err) => {
                    check_skipped(&err, &stream[start..end], max_payload);
                    events.push(Event::Error(err, start..end));
                }
            }
        }
        if fatal.is_none() {
            // What is left is part of one frame: less than a header, or a checked header
            // and less than its payload.
            assert!(decoder.buffered() < max_frame, "{} bytes left after draining", decoder.buffered());
        }
    }
    assert_eq!(fed, stream.len());
    assert!(history.next().is_none(), "history frames missing");
    match decoder.finish() {
        Ok(()) => assert_eq!(decoder.buffered(), 0),
        Err(DecodeError::Truncated { buffered, request_id }) => {
            assert!(buffered > 0 && buffered == decoder.buffered());
            if buffered < HEADER_LEN {
                assert_eq!(request_id, 0, "an id named from a partial header");
            }
        }
        Err(other) => panic!("finish returned {other:?}"),
    }
    events
}

fn header_of(bytes: &[u8]) -> Header {
    Header::read(bytes.first_chunk::<HEADER_LEN>().expect("a whole header"))
}

/// A decoded frame is exactly the bytes it came from, re-encoded, and decodes again alone.
fn check_frame(frame: &Frame, bytes: &[u8], max_payload: u32) {
    let mut encoded = Vec::new();
    frame.encode_into(&mut encoded, max_payload).expect("a decoded frame re-encodes within the same limit");
    assert_eq!(encoded, bytes, "{frame:?} re-encodes to other bytes than it was decoded from");
    let mut decoder = Decoder::new(max_payload);
    decoder.feed(&encoded);
    assert_eq!(decoder.next_frame().as_ref(), Ok(&Some(frame.clone())), "round trip");
    assert_eq!(decoder.next_frame(), Ok(None));
    assert_eq!(decoder.finish(), Ok(()));

    let header = header_of(bytes);
    let (type_code, class) = frame.message.kind();
    assert_eq!((header.type_code, header.class), (type_code as u8, class as u8));
    assert_eq!(header.request_id, frame.request_id);
    let schema = schema::lookup(type_code, class).expect("every message kind is in the catalog");
    assert_eq!(frame.message.payload_name(), schema.payload);
    check_walk_agrees(schema, &bytes[HEADER_LEN..], Some(&frame.message));
}

/// A fatal error is the one the (partial) header in `available` calls for.
fn check_fatal(err: &DecodeError, available: &[u8], max_payload: u32) {
    match err {
        DecodeError::BadMagic { found } => {
            assert_eq!(found.len(), available.len().min(MAGIC.len()), "BadMagic reports what arrived");
            assert_eq!(found[..], available[..found.len()]);
            assert_ne!(found[..], MAGIC[..found.len()], "BadMagic for a good magic prefix");
        }
        DecodeError::UnsupportedVersion(version) => {
            let header = header_of(available);
            assert_eq!(available[..4], MAGIC);
            assert_eq!(header.version, *version);
            assert_ne!(*version, VERSION);
        }
        DecodeError::Oversize { length, max, request_id } => {
            let header = header_of(available);
            assert_eq!(available[..4], MAGIC);
            assert_eq!(header.version, VERSION, "the version is checked before the length");
            assert_eq!((header.length, *max), (*length, max_payload));
            assert!(*length > max_payload);
            assert_eq!(*request_id, header.request_id, "a read header's id is echoed");
        }
        other => panic!("{other:?} is not a fatal error, yet is_fatal() says it is"),
    }
    assert!(err.code().is_fatal());
    if !matches!(err, DecodeError::Oversize { .. }) {
        assert_eq!(err.request_id(), 0);
    }
}

/// A non-fatal error consumed exactly one frame whose header passed the checks, and is the
/// error that frame calls for.
fn check_skipped(err: &DecodeError, bytes: &[u8], max_payload: u32) {
    assert!(!err.code().is_fatal());
    let header = header_of(bytes);
    assert_eq!(bytes[..4], MAGIC);
    assert_eq!(header.version, VERSION);
    assert!(header.length <= max_payload);
    assert_eq!(bytes.len(), HEADER_LEN + header.length as usize, "{err:?} skipped other than one frame");
    let payload = &bytes[HEADER_LEN..];
    let known = TypeCode::from_byte(header.type_code)
        .zip(Class::from_byte(header.class))
        .and_then(|(type_code, class)| schema::lookup(type_code, class));
    match err {
        DecodeError::InvalidHeader { reserved, request_id } => {
            assert_eq!(*reserved, header.reserved);
            assert_ne!(*reserved, 0);
            assert_eq!(*request_id, header.request_id);
        }
        DecodeError::UnknownType { type_code, class, request_id } => {
            assert_eq!(header.reserved, 0, "reserved byte checked before the type");
            assert_eq!((*type_code, *class, *request_id), (header.type_code, header.class, header.request_id));
            let letters = TypeCode::from_byte(header.type_code).zip(Class::from_byte(header.class));
            assert!(letters.is_none(), "{err:?} for a known type and class");
        }
        DecodeError::UnexpectedFrame { type_code, class, request_id } => {
            assert_eq!(header.reserved, 0, "reserved byte checked before the direction");
            assert_eq!((*type_code as u8, *class as u8, *request_id), (header.type_code, header.class, header.request_id));
            assert!(known.is_none(), "{err:?} for a catalog entry (this decoder accepts every one)");
        }
        DecodeError::MalformedPayload { what, request_id, detail: _ } => {
            assert_eq!(header.reserved, 0, "reserved byte checked after the payload");
            let schema = known.expect("MalformedPayload only for catalog entries");
            assert_eq!((*what, *request_id), (schema.payload, header.request_id));
            assert_eq!(err.request_id(), header.request_id);
            check_walk_agrees(schema, payload, None);
        }
        other => panic!("next_frame returned {other:?} as a non-fatal error"),
    }
}

/// The `payload_decoder` check. See the [crate docs](crate).
pub fn check_payload(data: &[u8]) {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let catalog = schema::catalog();
    let schema = &catalog[usize::from(pick) % catalog.len()];
    let Ok(length) = u32::try_from(payload.len()) else {
        return;
    };
    let request_id = 0xF0F0_0000 | u32::from(pick);
    let header = Header {
        version: VERSION,
        type_code: schema.type_code as u8,
        class: schema.class as u8,
        reserved: 0,
        request_id,
        length,
    };
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(payload);
    let mut decoder = Decoder::new(length.max(DEFAULT_MAX_PAYLOAD));
    decoder.feed(&bytes);
    match decoder.next_frame() {
        Ok(Some(frame)) => {
            assert_eq!(frame.message.kind(), (schema.type_code, schema.class));
            assert_eq!(frame.request_id, request_id);
            check_frame(&frame, &bytes, length.max(DEFAULT_MAX_PAYLOAD));
        }
        Err(err @ DecodeError::MalformedPayload { .. }) => check_skipped(&err, &bytes, decoder.max_payload()),
        other => panic!("{}: payload of {} bytes gave {other:?}", schema.payload, payload.len()),
    }
    assert_eq!(decoder.next_frame(), Ok(None));
    assert_eq!(decoder.buffered(), 0);
}

/// The schema walk agrees with the real decoder on `payload`: `decoded` is what the decoder
/// made of it (`None`: it rejected it as malformed).
///
/// The walk reads layouts only: it takes any u16 as a delivery status or error code, where
/// the decoder (serde_repr) rejects values that name no variant. So the walk's answer is
/// narrowed by [`check_codes`] before it is compared; see the report in
/// `walk_accepts_codes_the_decoder_rejects` below.
fn check_walk_agrees(schema: &MessageSchema, payload: &[u8], decoded: Option<&Message>) {
    let walked = schema::walk(schema.fields, payload).and_then(|values| {
        check_codes(schema.fields, &values)?;
        Ok(values)
    });
    match (decoded, walked) {
        (Some(message), Ok(values)) => {
            let serde_view = serde_json::to_value(message).expect("serializes");
            if schema.fields.is_empty() {
                assert_eq!(serde_view, Json::Null);
                assert!(values.is_empty() && payload.is_empty());
                return;
            }
            let walked_view = walked_to_json(&values);
            assert_eq!(walked_view, serde_view, "{}: walk and decoder read different values", schema.payload);
            assert_eq!(walked_view.to_string(), serde_view.to_string(), "{}: field order", schema.payload);
        }
        (None, Err(_)) => {}
        (Some(message), Err(why)) => {
            panic!("{}: decoder accepted {message:?}, walk rejected: {why}", schema.payload)
        }
        (None, Ok(values)) => panic!("{}: decoder rejected, walk accepted {values:?}", schema.payload),
    }
}

/// Rejects delivery statuses and error codes that name no variant, as the decoder does.
fn check_codes(fields: &[Field], values: &[(String, Value)]) -> Result<(), String> {
    for (field, (name, value)) in fields.iter().zip(values) {
        assert_eq!(field.name, name);
        match (field.wire, value) {
            (Wire::DeliveryStatus, Value::Uint(code))
                if !DeliveryStatus::ALL.iter().any(|s| u64::from(s.code()) == *code) =>
            {
                return Err(format!("no delivery status {code}"));
            }
            (Wire::ErrorCode, Value::Uint(code)) if !ErrorCode::ALL.iter().any(|c| u64::from(c.code()) == *code) => {
                return Err(format!("no error code {code}"));
            }
            (Wire::List(_, item), Value::List(rows)) => {
                for row in rows {
                    check_codes(item, row)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The walk's values as JSON, in the shape serde_json gives the decoded message.
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

/// Compile-time guard: a new `Message` variant breaks this match, the cue to add a sample to
/// `tnlm_core::samples` (the unit tests then check that the samples cover the catalog).
pub fn variant_name(message: &Message) -> &'static str {
    match message {
        Message::TimeRequest(_) => "TimeRequest",
        Message::NameRequest(_) => "NameRequest",
        Message::ListRequest(_) => "ListRequest",
        Message::SendRequest(_) => "SendRequest",
        Message::TimeResponse(_) => "TimeResponse",
        Message::NameResponse(_) => "NameResponse",
        Message::ListResponse(_) => "ListResponse",
        Message::Delivery(_) => "Delivery",
        Message::Forwarded(_) => "Forwarded",
        Message::Hello(_) => "Hello",
        Message::Shutdown(_) => "Shutdown",
        Message::Error(_) => "Error",
        Message::PingRequest(_) => "PingRequest",
        Message::ServerPing(_) => "ServerPing",
        Message::Pong(_) => "Pong",
        Message::Ack(_) => "Ack",
    }
}

/// One seed file: its name and contents.
pub type Seed = (String, Vec<u8>);

fn encode(frame: &Frame) -> Vec<u8> {
    frame.to_bytes().expect("samples fit the default limit")
}

/// Seeds for `frame_decoder`: each sample alone, all of them in one stream read in
/// several ways, and a few streams with a bad frame in front of a good one.
pub fn frame_seeds() -> Vec<Seed> {
    let frames = samples::frames();
    let mut seeds = Vec::new();
    for (n, frame) in frames.iter().enumerate() {
        let mut data = vec![Mode::byte(0, false, 0)];
        data.extend(encode(frame));
        seeds.push((format!("{n:02}-{}", frame.message.payload_name()), data));
    }
    let stream: Vec<u8> = frames.iter().flat_map(encode).collect();
    for (limit, history, split, name) in [
        (0, false, 0, "all"),
        (0, false, 1, "all-bytewise"),
        (0, false, 7, "all-reads-49"),
        (3, false, 3, "all-limit-300"),
        (0, true, 5, "all-after-history"),
        (2, true, 2, "all-after-history-limit-24"),
    ] {
        let mut data = vec![Mode::byte(limit, history, split)];
        data.extend_from_slice(&stream);
        seeds.push((format!("stream-{name}"), data));
    }
    let good = encode(&Frame::new(9, TimeRequest));
    let hello = encode(&Frame::new(3, NameResponse { name: "ab".into() }));
    let with = |at: usize, byte: u8| {
        let mut bytes = hello.clone();
        bytes[at] = byte;
        bytes
    };
    let bad: [(&str, Vec<u8>); 7] = [
        ("bad-magic", with(1, b'X')),
        ("bad-version", with(4, 2)),
        ("oversize", with(15, 0xFF)),
        ("reserved", with(7, 1)),
        ("unknown-type", with(5, b'Z')),
        ("unknown-class", with(6, 3)),
        ("bad-utf8", with(hello.len() - 1, 0xC3)),
    ];
    for (name, mut bytes) in bad {
        bytes.extend_from_slice(&good);
        seeds.push((format!("bad-{name}"), [&[Mode::byte(0, false, 2)][..], &bytes].concat()));
    }
    seeds
}

/// Seeds for `payload_decoder`: each sample's payload after its catalog index.
pub fn payload_seeds() -> Vec<Seed> {
    let catalog = schema::catalog();
    samples::frames()
        .iter()
        .enumerate()
        .map(|(n, frame)| {
            let kind = frame.message.kind();
            let index = catalog.iter().position(|m| (m.type_code, m.class) == kind).expect("in the catalog");
            let mut data = vec![u8::try_from(index).expect("fewer than 256 kinds")];
            data.extend_from_slice(&encode(frame)[HEADER_LEN..]);
            (format!("{n:02}-{}", frame.message.payload_name()), data)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use tnlm_core::message::Delivery;

    #[test]
    fn samples_cover_every_catalog_entry() {
        let kinds: BTreeSet<(u8, u8)> = samples::frames()
            .iter()
            .map(|f| {
                let _ = variant_name(&f.message);
                let (t, c) = f.message.kind();
                (t as u8, c as u8)
            })
            .collect();
        let catalog: BTreeSet<(u8, u8)> =
            schema::catalog().iter().map(|m| (m.type_code as u8, m.class as u8)).collect();
        assert_eq!(kinds, catalog);
    }

    #[test]
    fn every_seed_passes_both_checks() {
        for (_, data) in frame_seeds() {
            check_frame_stream(&data);
            // Every mode over the same stream.
            for mode in 0..=255u8 {
                check_frame_stream(&[&[mode][..], &data[1..]].concat());
            }
        }
        for (_, data) in payload_seeds() {
            check_payload(&data);
            // Every prefix and every catalog entry for the same bytes.
            for cut in 0..data.len() {
                check_payload(&data[..cut]);
            }
            for pick in 0..=255u8 {
                check_payload(&[&[pick][..], &data[1..]].concat());
            }
        }
    }

    #[test]
    fn chunks_concatenate_to_the_stream() {
        let stream: Vec<u8> = (0..=255).collect();
        for byte in 0..=255u8 {
            let mode = Mode::from_byte(byte);
            let chunks = mode.chunks(&stream);
            assert_eq!(chunks.concat(), stream);
            let limit = (u32::from(mode.split) * u32::from(mode.split)).max(1) as usize;
            assert!(chunks.iter().all(|c| !c.is_empty() && (mode.split == 0 || c.len() <= limit)));
            if mode.split == 1 {
                assert!(chunks.iter().all(|c| c.len() == 1));
            }
        }
    }

    /// Found while writing the payload check, kept as documentation: the schema walk (the
    /// dissector's view) takes any u16 as a delivery status or error code, the decoder does
    /// not. `check_walk_agrees` allows for exactly this and nothing else.
    #[test]
    fn walk_accepts_codes_the_decoder_rejects() {
        let frame = Frame::new(1, Delivery { to: 2, status: DeliveryStatus::Delivered, reason: String::new() });
        let mut payload = encode(&frame)[HEADER_LEN..].to_vec();
        payload[4..6].copy_from_slice(&999u16.to_le_bytes());
        let schema = schema::lookup(TypeCode::Message, Class::Response).unwrap();
        assert!(schema::walk(schema.fields, &payload).is_ok());
        let values = schema::walk(schema.fields, &payload).unwrap();
        assert!(check_codes(schema.fields, &values).is_err());
        let index = schema::catalog().iter().position(|m| m == schema).unwrap() as u8;
        check_payload(&[&[index][..], &payload].concat()); // the decoder rejects it, and that is accepted
    }
}
