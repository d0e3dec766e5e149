//! Typed errors: what can go wrong decoding or encoding a frame, and the
//! error codes a peer sends back in an error frame.

use serde_repr::{Deserialize_repr, Serialize_repr};

use crate::header::{Class, TypeCode};

/// The code carried by an error frame (`E`), telling the peer what it did wrong.
///
/// The numeric values are part of the wire format and never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize_repr, Deserialize_repr)]
#[repr(u16)]
pub enum ErrorCode {
    /// The first four bytes of a frame were not the magic `TNLM`.
    BadMagic = 1,
    /// The header's version byte names a protocol version this peer does not speak.
    UnsupportedVersion = 2,
    /// The header's length field exceeds the receiver's payload limit.
    Oversize = 3,
    /// The payload could not be decoded as the layout its type and class call for.
    MalformedPayload = 4,
    /// The type byte is not one of version 1's letters, or the class byte is
    /// not 0, 1 or 2.
    UnknownType = 5,
    /// A reserved header field was not zero.
    InvalidHeader = 6,
    /// A known type and class that this peer does not accept in this
    /// direction: not in the Messages table (e.g. a `T` indication), or not one
    /// the sender may send (e.g. a client sending a `T` response).
    UnexpectedFrame = 7,
    /// The stream ended in the middle of a frame.
    Truncated = 8,
    /// The server already serves `--max-clients` clients.
    TooManyClients = 9,
    /// The peer was silent for too long (heartbeat), or took too long to send a
    /// whole frame (e.g. one byte at a time).
    Timeout = 10,
    /// The peer did not read what was sent to it for too long.
    SlowConsumer = 11,
}

impl ErrorCode {
    /// Every code, in numeric order (for documentation and the dissector).
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::BadMagic,
        ErrorCode::UnsupportedVersion,
        ErrorCode::Oversize,
        ErrorCode::MalformedPayload,
        ErrorCode::UnknownType,
        ErrorCode::InvalidHeader,
        ErrorCode::UnexpectedFrame,
        ErrorCode::Truncated,
        ErrorCode::TooManyClients,
        ErrorCode::Timeout,
        ErrorCode::SlowConsumer,
    ];

    /// A stable snake_case name, used in JSON output and the dissector.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::BadMagic => "bad_magic",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::Oversize => "oversize",
            ErrorCode::MalformedPayload => "malformed_payload",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidHeader => "invalid_header",
            ErrorCode::UnexpectedFrame => "unexpected_frame",
            ErrorCode::Truncated => "truncated",
            ErrorCode::TooManyClients => "too_many_clients",
            ErrorCode::Timeout => "timeout",
            ErrorCode::SlowConsumer => "slow_consumer",
        }
    }

    /// The numeric value on the wire.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// What becomes of the connection after an error frame with this code
    /// (the table in docs/PROTOCOL.md is made from it).
    pub fn consequence(self) -> &'static str {
        match self {
            code if code.is_fatal() => "closed: the framing is lost",
            ErrorCode::TooManyClients | ErrorCode::Timeout => "closed",
            ErrorCode::SlowConsumer => {
                "reserved, not sent: a slow consumer is cut off without a word (it does not read)"
            }
            _ => "goes on: the bad frame was skipped",
        }
    }

    /// True for errors after which the sender closes the connection, because
    /// the stream's framing can no longer be trusted.
    pub fn is_fatal(self) -> bool {
        matches!(self, ErrorCode::BadMagic | ErrorCode::UnsupportedVersion | ErrorCode::Oversize | ErrorCode::Truncated)
    }
}

/// Why bytes from the network could not be turned into a frame.
///
/// Errors for which [`DecodeError::is_fatal`] is true mean the stream has lost
/// its framing (the length field cannot be trusted): the receiver reports the
/// error and closes. The others concern one frame whose bytes have already been
/// skipped, so the stream can go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame did not start with the magic bytes.
    #[error("bad magic {found:02x?} (expected \"TNLM\"): not a TNLM stream or framing lost")]
    BadMagic {
        /// The bytes found where the magic should be (as many as had arrived).
        found: Vec<u8>,
    },
    /// The version byte is not one this implementation speaks.
    #[error("unsupported protocol version {0} (this peer speaks version {v})", v = crate::VERSION)]
    UnsupportedVersion(u8),
    /// The length field exceeds the payload limit.
    #[error("frame payload of {length} bytes exceeds the limit of {max} bytes")]
    Oversize {
        /// The length the header claimed.
        length: u32,
        /// The receiver's limit.
        max: u32,
        /// The header's request id, so an error reply can echo it.
        request_id: u32,
    },
    /// A reserved header byte was not zero.
    #[error("reserved header byte is {reserved:#04x}, must be 0")]
    InvalidHeader {
        /// The reserved byte's value.
        reserved: u8,
        /// The header's request id, so an error reply can echo it.
        request_id: u32,
    },
    /// The type byte is not one of version 1's letters, or the class byte is
    /// not 0, 1 or 2.
    #[error("unknown frame type {type_code:#04x} ({printable}) with class {class}", printable = printable(*type_code))]
    UnknownType {
        /// The header's type byte.
        type_code: u8,
        /// The header's class byte.
        class: u8,
        /// The header's request id, so an error reply can echo it.
        request_id: u32,
    },
    /// A known type and class that this receiver does not accept from its
    /// peer: not in the Messages table at all (e.g. a `T` indication), or not
    /// one the peer may send (e.g. a client sending a `T` response).
    #[error("a {type_name} {class_name} is not accepted here", type_name = type_code.name(), class_name = class.name())]
    UnexpectedFrame {
        /// The header's type.
        type_code: TypeCode,
        /// The header's class.
        class: Class,
        /// The header's request id, so an error reply can echo it.
        request_id: u32,
    },
    /// The payload did not decode as its type's layout.
    #[error("malformed {what} payload: {detail}")]
    MalformedPayload {
        /// Which message the header announced.
        what: &'static str,
        /// What the payload decoder said.
        detail: String,
        /// The header's request id, so an error reply can echo it.
        request_id: u32,
    },
    /// The stream ended with part of a frame buffered.
    #[error("connection closed in the middle of a frame ({buffered} bytes buffered)")]
    Truncated {
        /// How many bytes of the incomplete frame had arrived.
        buffered: usize,
        /// The request id of the incomplete frame when its whole header had
        /// arrived, else 0.
        request_id: u32,
    },
}

fn printable(byte: u8) -> String {
    if byte.is_ascii_graphic() {
        format!("'{}'", byte as char)
    } else {
        "not printable".to_string()
    }
}

impl DecodeError {
    /// True when framing is lost and the connection must be closed.
    pub fn is_fatal(&self) -> bool {
        self.code().is_fatal()
    }

    /// The error code to send back to the peer.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::BadMagic { .. } => ErrorCode::BadMagic,
            DecodeError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            DecodeError::Oversize { .. } => ErrorCode::Oversize,
            DecodeError::InvalidHeader { .. } => ErrorCode::InvalidHeader,
            DecodeError::UnknownType { .. } => ErrorCode::UnknownType,
            DecodeError::UnexpectedFrame { .. } => ErrorCode::UnexpectedFrame,
            DecodeError::MalformedPayload { .. } => ErrorCode::MalformedPayload,
            DecodeError::Truncated { .. } => ErrorCode::Truncated,
        }
    }

    /// The request id of the offending frame when its whole header was read
    /// and its version is 1 (the only layout known to put the id at offset
    /// 8); 0 for `bad_magic`, `unsupported_version` and a stream that ended
    /// inside a header.
    pub fn request_id(&self) -> u32 {
        match self {
            DecodeError::Oversize { request_id, .. }
            | DecodeError::InvalidHeader { request_id, .. }
            | DecodeError::UnknownType { request_id, .. }
            | DecodeError::UnexpectedFrame { request_id, .. }
            | DecodeError::MalformedPayload { request_id, .. }
            | DecodeError::Truncated { request_id, .. } => *request_id,
            DecodeError::BadMagic { .. } | DecodeError::UnsupportedVersion(_) => 0,
        }
    }
}

/// Why a frame could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The payload would exceed the payload limit.
    #[error("payload of {length} bytes exceeds the limit of {max} bytes")]
    Oversize {
        /// The payload size (or a lower bound of it).
        length: u64,
        /// The limit.
        max: u32,
    },
    /// bincode refused the value (should not happen for TNLM's types).
    #[error("cannot encode payload: {0}")]
    Bincode(#[from] bincode::Error),
}
