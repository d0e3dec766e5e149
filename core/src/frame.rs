//! The frame: a fixed 16-byte header followed by a bincode payload.
//!
//! ```text
//!  0        4     5     6     7     8              12             16
//!  +--------+-----+-----+-----+-----+--------------+--------------+-------------
//!  | "TNLM" | ver | type|class|rsvd | request id   | length       | payload …
//!  +--------+-----+-----+-----+-----+--------------+--------------+-------------
//!    4 B      u8    u8    u8    u8    u32 LE         u32 LE         length bytes
//! ```
//!
//! Frame boundaries come only from the length field, so any number of frames
//! in one TCP segment, or one frame over many segments, decode the same.

pub use crate::header::{
    offset, Class, Header, TypeCode, DEFAULT_MAX_PAYLOAD, DEFAULT_PORT, HEADER_LEN, MAGIC, MAX_NAME_LEN,
    MIN_MAX_PAYLOAD, VERSION,
};

use crate::error::EncodeError;
use crate::message::Message;

/// A whole frame: a request id and the message it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Chosen by the client for requests, echoed in responses; 0 for indications.
    pub request_id: u32,
    /// What the frame says; it determines the type code and class.
    pub message: Message,
}

impl Frame {
    /// A frame with the given request id.
    pub fn new(request_id: u32, message: impl Into<Message>) -> Frame {
        Frame { request_id, message: message.into() }
    }

    /// An indication (request id 0).
    pub fn indication(message: impl Into<Message>) -> Frame {
        Frame::new(0, message)
    }

    /// Appends the encoded frame to `out`, failing (and appending nothing) if
    /// the payload would exceed `max_payload` bytes.
    pub fn encode_into(&self, out: &mut Vec<u8>, max_payload: u32) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[0u8; HEADER_LEN]);
        if let Err(err) = self.message.encode_payload(out, u64::from(max_payload)) {
            out.truncate(start);
            return Err(match *err {
                bincode::ErrorKind::SizeLimit => {
                    EncodeError::Oversize { length: u64::from(max_payload) + 1, max: max_payload }
                }
                _ => EncodeError::Bincode(err),
            });
        }
        let length = (out.len() - start - HEADER_LEN) as u32;
        let (type_code, class) = self.message.kind();
        let header = Header {
            version: VERSION,
            type_code: type_code as u8,
            class: class as u8,
            reserved: 0,
            request_id: self.request_id,
            length,
        };
        out[start..start + HEADER_LEN].copy_from_slice(&header.to_bytes());
        Ok(())
    }

    /// The encoded frame as a new vector (payload limited to [`DEFAULT_MAX_PAYLOAD`]).
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(HEADER_LEN + 32);
        self.encode_into(&mut out, DEFAULT_MAX_PAYLOAD)?;
        Ok(out)
    }

    /// A one-line summary such as `T request #7`, for logs and the client.
    pub fn summary(&self) -> String {
        let (type_code, class) = self.message.kind();
        format!("{} {} #{}", type_code.letter(), class.name(), self.request_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::*;

    #[test]
    fn header_layout_is_as_documented() {
        let bytes = Frame::new(7, TimeRequest).to_bytes().unwrap();
        assert_eq!(bytes, [b'T', b'N', b'L', b'M', 1, b'T', 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn length_field_counts_payload_bytes() {
        let bytes = Frame::new(1, NameResponse { name: "ab".into() }).to_bytes().unwrap();
        assert_eq!(&bytes[12..16], &[10, 0, 0, 0]);
        assert_eq!(bytes.len(), HEADER_LEN + 10);
    }

    #[test]
    fn oversize_payload_is_refused_and_nothing_written() {
        let mut out = vec![9];
        let big = Frame::new(1, SendRequest { to: 1, text: "x".repeat(100) });
        let err = big.encode_into(&mut out, 50).unwrap_err();
        assert!(matches!(err, EncodeError::Oversize { max: 50, .. }));
        assert_eq!(out, [9]);
    }
}
