//! A streaming frame decoder in the check-then-parse style.
//!
//! Feed it bytes exactly as they come off the socket — one at a time, a
//! partial header, ten frames at once — and take whole frames out. It checks
//! the header first (magic, version, length against the limit: the fatal
//! checks) and only then waits for the payload, so a hostile length field can
//! never make it allocate more than the payload limit. Once the whole frame
//! is there it checks, in this order, the reserved byte, the type and class,
//! whether this receiver accepts that pair (see [`Decoder::accepting`]), and
//! the payload; the first that fails is the error, and the frame is skipped.

use crate::error::DecodeError;
use crate::frame::{Class, Frame, Header, TypeCode, DEFAULT_MAX_PAYLOAD, HEADER_LEN, MAGIC, VERSION};
use crate::message::{self, Message};

/// Turns a byte stream into frames. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
    max_payload: u32,
    failed: Option<DecodeError>,
    /// The (type, class) pairs this receiver takes from its peer.
    accepts: &'static [(TypeCode, Class)],
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_PAYLOAD)
    }
}

impl Decoder {
    /// A decoder that rejects payloads longer than `max_payload` bytes.
    /// It accepts every message of the Messages table; see [`accepting`](Self::accepting).
    pub fn new(max_payload: u32) -> Decoder {
        Decoder { buf: Vec::new(), start: 0, max_payload, failed: None, accepts: message::ANY_DIRECTION }
    }

    /// The same decoder, accepting only the (type, class) pairs in `accepts`
    /// (e.g. [`message::FROM_CLIENT`] in a server): any other pair of known
    /// type and class is skipped as [`DecodeError::UnexpectedFrame`] before
    /// its payload is decoded.
    pub fn accepting(self, accepts: &'static [(TypeCode, Class)]) -> Decoder {
        Decoder { accepts, ..self }
    }

    /// The payload limit.
    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    /// Sets the payload limit for the frames not yet returned, e.g. to the
    /// one a server's hello announced, without losing bytes already fed.
    pub fn set_max_payload(&mut self, max_payload: u32) {
        self.max_payload = max_payload;
    }

    /// Appends bytes received from the peer.
    ///
    /// Callers feed what one `read` returned and then drain frames with
    /// [`next_frame`](Self::next_frame), so the buffer stays within one frame
    /// plus one read. After a fatal error, fed bytes are dropped.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return; // framing is lost: nothing more will be decoded, keep nothing
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4096 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed.
    ///
    /// A non-fatal error (see [`DecodeError::is_fatal`]) consumes the bad
    /// frame, and decoding can continue. After a fatal error the decoder
    /// returns that same error forever: the stream has lost its framing.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.try_next();
        if let Err(err) = &result {
            if err.is_fatal() {
                self.failed = Some(err.clone());
            }
        }
        result
    }

    /// Call at end of stream: an error if part of a frame is still buffered.
    /// It names the cut frame's request id when its whole header had arrived.
    pub fn finish(&self) -> Result<(), DecodeError> {
        let available = &self.buf[self.start..];
        match available.len() {
            0 => Ok(()),
            buffered => {
                let request_id = available.first_chunk::<HEADER_LEN>().map_or(0, |h| Header::read(h).request_id);
                Err(DecodeError::Truncated { buffered, request_id })
            }
        }
    }

    fn try_next(&mut self) -> Result<Option<Frame>, DecodeError> {
        let available = &self.buf[self.start..];
        check_magic(available)?;
        let Some(header_bytes) = available.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let header = Header::read(header_bytes);
        check_header(&header, self.max_payload)?;
        let total = HEADER_LEN + header.length as usize;
        if available.len() < total {
            return Ok(None);
        }
        let payload = &available[HEADER_LEN..total];
        self.start += total;
        parse_payload(&header, payload, self.accepts).map(Some)
    }
}

/// Fails as soon as the bytes that have arrived differ from the magic.
fn check_magic(available: &[u8]) -> Result<(), DecodeError> {
    let n = available.len().min(MAGIC.len());
    if available[..n] != MAGIC[..n] {
        return Err(DecodeError::BadMagic { found: available[..n].to_vec() });
    }
    Ok(())
}

/// The header checks that decide whether the length field can be trusted.
fn check_header(header: &Header, max_payload: u32) -> Result<(), DecodeError> {
    if header.version != VERSION {
        return Err(DecodeError::UnsupportedVersion(header.version));
    }
    if header.length > max_payload {
        return Err(DecodeError::Oversize { length: header.length, max: max_payload, request_id: header.request_id });
    }
    Ok(())
}

/// Interprets a complete frame whose header passed [`check_header`]:
/// reserved byte, type and class, direction, payload, in that order.
fn parse_payload(header: &Header, payload: &[u8], accepts: &[(TypeCode, Class)]) -> Result<Frame, DecodeError> {
    let request_id = header.request_id;
    if header.reserved != 0 {
        return Err(DecodeError::InvalidHeader { reserved: header.reserved, request_id });
    }
    let unknown = || DecodeError::UnknownType { type_code: header.type_code, class: header.class, request_id };
    let type_code = TypeCode::from_byte(header.type_code).ok_or_else(unknown)?;
    let class = Class::from_byte(header.class).ok_or_else(unknown)?;
    let unexpected = || DecodeError::UnexpectedFrame { type_code, class, request_id };
    if !accepts.contains(&(type_code, class)) {
        return Err(unexpected());
    }
    let decoded = Message::decode_payload(type_code, class, payload).ok_or_else(unexpected)?;
    let message = decoded.map_err(|err| DecodeError::MalformedPayload {
        what: crate::schema::lookup(type_code, class).map_or("?", |m| m.payload),
        detail: err.to_string(),
        request_id: header.request_id,
    })?;
    Ok(Frame { request_id: header.request_id, message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::*;

    fn encode(frames: &[Frame]) -> Vec<u8> {
        let mut out = Vec::new();
        for frame in frames {
            frame.encode_into(&mut out, DEFAULT_MAX_PAYLOAD).unwrap();
        }
        out
    }

    fn drain(decoder: &mut Decoder) -> Vec<Frame> {
        std::iter::from_fn(|| decoder.next_frame().unwrap()).collect()
    }

    #[test]
    fn coalesced_frames_all_come_out() {
        let frames: Vec<Frame> = (1..=100).map(|id| Frame::new(id, TimeRequest)).collect();
        let mut decoder = Decoder::default();
        decoder.feed(&encode(&frames));
        assert_eq!(drain(&mut decoder), frames);
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn one_byte_at_a_time() {
        let frames = vec![
            Frame::new(3, SendRequest { to: 2, text: "a#b*c\nd 你好".into() }),
            Frame::indication(Shutdown { reason: "bye".into() }),
        ];
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        for byte in encode(&frames) {
            decoder.feed(&[byte]);
            out.extend(drain(&mut decoder));
        }
        assert_eq!(out, frames);
        assert!(decoder.finish().is_ok());
    }

    #[test]
    fn bad_magic_is_detected_from_the_first_byte_and_sticks() {
        let mut decoder = Decoder::default();
        decoder.feed(b"G");
        let err = decoder.next_frame().unwrap_err();
        assert!(matches!(err, DecodeError::BadMagic { .. }) && err.is_fatal());
        decoder.feed(&encode(&[Frame::new(1, TimeRequest)]));
        assert_eq!(decoder.next_frame().unwrap_err(), err);
    }

    #[test]
    fn oversize_length_is_rejected_before_the_payload_arrives() {
        let mut bytes = encode(&[Frame::new(1, TimeRequest)]);
        bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut decoder = Decoder::new(1024);
        decoder.feed(&bytes);
        let err = DecodeError::Oversize { length: u32::MAX, max: 1024, request_id: 1 };
        assert_eq!(decoder.next_frame().unwrap_err(), err);
    }

    #[test]
    fn unknown_type_is_skipped_and_decoding_goes_on() {
        let mut bytes = encode(&[Frame::new(5, TimeRequest), Frame::new(6, NameRequest)]);
        bytes[5] = b'Z';
        let mut decoder = Decoder::default();
        decoder.feed(&bytes);
        let err = decoder.next_frame().unwrap_err();
        assert_eq!(err, DecodeError::UnknownType { type_code: b'Z', class: 0, request_id: 5 });
        assert!(!err.is_fatal());
        assert_eq!(decoder.next_frame().unwrap(), Some(Frame::new(6, NameRequest)));
    }

    #[test]
    fn malformed_payload_echoes_request_id() {
        let mut bytes = encode(&[Frame::new(9, SendRequest { to: 1, text: "hi".into() })]);
        let last = bytes.len() - 1;
        bytes[last] = 0xFF; // invalid UTF-8
        let mut decoder = Decoder::default();
        decoder.feed(&bytes);
        let err = decoder.next_frame().unwrap_err();
        assert!(matches!(err, DecodeError::MalformedPayload { request_id: 9, .. }), "{err:?}");
    }

    #[test]
    fn truncated_stream_is_reported_at_finish() {
        let bytes = encode(&[Frame::new(1, TimeRequest)]);
        let mut decoder = Decoder::default();
        decoder.feed(&bytes[..10]);
        assert_eq!(decoder.next_frame().unwrap(), None);
        assert_eq!(decoder.finish(), Err(DecodeError::Truncated { buffered: 10, request_id: 0 }));
        decoder.feed(&bytes[10..]);
        let cut = encode(&[Frame::new(4, NameRequest)]);
        decoder.feed(&cut[..HEADER_LEN - 1]);
        assert_eq!(decoder.next_frame().unwrap(), Some(Frame::new(1, TimeRequest)));
        assert_eq!(decoder.finish(), Err(DecodeError::Truncated { buffered: HEADER_LEN - 1, request_id: 0 }));
        decoder.feed(&cut[HEADER_LEN - 1..]);
        let longer = encode(&[Frame::new(6, SendRequest { to: 1, text: "hi".into() })]);
        decoder.feed(&longer[..HEADER_LEN + 1]);
        assert_eq!(decoder.next_frame().unwrap(), Some(Frame::new(4, NameRequest)));
        assert_eq!(decoder.finish(), Err(DecodeError::Truncated { buffered: HEADER_LEN + 1, request_id: 6 }));
    }

    #[test]
    fn an_unknown_value_inside_a_payload_is_malformed() {
        let receipt = Delivery { to: 1, status: DeliveryStatus::Delivered, reason: String::new() };
        let mut bytes = encode(&[Frame::new(4, receipt)]);
        bytes[HEADER_LEN + 4] = 6; // status 6 does not exist in version 1
        let mut decoder = Decoder::default();
        decoder.feed(&bytes);
        let err = decoder.next_frame().unwrap_err();
        assert_eq!((err.code(), err.request_id()), (crate::ErrorCode::MalformedPayload, 4));
    }

    #[test]
    fn errors_after_a_whole_header_echo_its_request_id() {
        let mut bytes = encode(&[Frame::new(11, TimeRequest)]);
        bytes[crate::frame::offset::RESERVED] = 3;
        let mut decoder = Decoder::default();
        decoder.feed(&bytes);
        assert_eq!(decoder.next_frame().unwrap_err(), DecodeError::InvalidHeader { reserved: 3, request_id: 11 });
    }

    #[test]
    fn the_direction_is_checked_before_the_payload() {
        let server = || Decoder::default().accepting(message::FROM_CLIENT);
        // A T response with a payload that would not even decode.
        let mut bytes = encode(&[Frame::new(3, TimeRequest)]);
        bytes[crate::frame::offset::CLASS] = Class::Response as u8;
        bytes[crate::frame::offset::LENGTH] = 1;
        bytes.push(0xFF);
        let mut decoder = server();
        decoder.feed(&bytes);
        let expected =
            DecodeError::UnexpectedFrame { type_code: TypeCode::Time, class: Class::Response, request_id: 3 };
        assert_eq!(decoder.next_frame().unwrap_err(), expected);
        // A pair that is in no table (a T indication) is unexpected too, not unknown.
        bytes[crate::frame::offset::CLASS] = Class::Indication as u8;
        let mut decoder = Decoder::default();
        decoder.feed(&bytes);
        assert_eq!(decoder.next_frame().unwrap_err().code(), crate::ErrorCode::UnexpectedFrame);
        // What a client may send still decodes.
        let mut decoder = server();
        decoder.feed(&encode(&[Frame::new(9, Pong), Frame::new(10, Ack), Frame::new(11, PingRequest)]));
        assert_eq!(drain(&mut decoder).len(), 3);
    }
}
