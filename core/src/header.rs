//! The fixed 16-byte header every frame starts with: its constants, field
//! offsets, the type and class codes, and a decoded [`Header`]. The bottom
//! of the crate: it imports nothing else of it.

/// The four bytes every frame starts with (readable in a hex dump).
pub const MAGIC: [u8; 4] = *b"TNLM";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// The size of the fixed header in bytes.
pub const HEADER_LEN: usize = 16;
/// The default payload limit (64 KiB); both ends may configure another.
pub const DEFAULT_MAX_PAYLOAD: u32 = 64 * 1024;
/// The smallest payload limit a server may announce in its hello. Every
/// frame a server sends fits in the limit it announced, and its fixed texts
/// (error texts, delivery reasons, the shutdown reason, a name of at most
/// [`MAX_NAME_LEN`] bytes) fit in this one.
pub const MIN_MAX_PAYLOAD: u32 = 1024;
/// The longest server name (bytes of UTF-8) a server sends in its hello and
/// `N` responses.
pub const MAX_NAME_LEN: usize = 255;
/// The default TCP port of a TNLM server.
pub const DEFAULT_PORT: u16 = 4579;

/// Byte offsets of the header fields (used by the decoder, docs and dissector).
pub mod offset {
    /// Magic, 4 bytes.
    pub const MAGIC: usize = 0;
    /// Protocol version, 1 byte.
    pub const VERSION: usize = 4;
    /// Type code, 1 byte (ASCII letter).
    pub const TYPE: usize = 5;
    /// Class, 1 byte.
    pub const CLASS: usize = 6;
    /// Reserved, 1 byte, must be 0.
    pub const RESERVED: usize = 7;
    /// Request id, u32 little-endian.
    pub const REQUEST_ID: usize = 8;
    /// Payload length, u32 little-endian.
    pub const LENGTH: usize = 12;
}

/// What a frame is about: the seed's ASCII letters plus the frames TNLM adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TypeCode {
    /// `T`: the server's local time.
    Time = b'T',
    /// `N`: the server's host name.
    Name = b'N',
    /// `L`: the list of connected clients.
    List = b'L',
    /// `M`: a text message from one client to another.
    Message = b'M',
    /// `H`: the hello the server sends on connect.
    Hello = b'H',
    /// `S`: the server is shutting down.
    Shutdown = b'S',
    /// `E`: an error report.
    Error = b'E',
    /// `P`: a heartbeat ping (request or indication), answered by a `P` response (pong).
    Ping = b'P',
    /// `A`: a client's acknowledgement of a forwarded message.
    Ack = b'A',
}

impl TypeCode {
    /// Every type code, in wire order of first appearance.
    pub const ALL: [TypeCode; 9] = [
        TypeCode::Time,
        TypeCode::Name,
        TypeCode::List,
        TypeCode::Message,
        TypeCode::Hello,
        TypeCode::Shutdown,
        TypeCode::Error,
        TypeCode::Ping,
        TypeCode::Ack,
    ];

    /// The type for a wire byte, if known.
    pub fn from_byte(byte: u8) -> Option<TypeCode> {
        TypeCode::ALL.into_iter().find(|t| *t as u8 == byte)
    }

    /// The ASCII letter on the wire.
    pub fn letter(self) -> char {
        self as u8 as char
    }

    /// A lowercase English name.
    pub fn name(self) -> &'static str {
        match self {
            TypeCode::Time => "time",
            TypeCode::Name => "name",
            TypeCode::List => "list",
            TypeCode::Message => "message",
            TypeCode::Hello => "hello",
            TypeCode::Shutdown => "shutdown",
            TypeCode::Error => "error",
            TypeCode::Ping => "ping",
            TypeCode::Ack => "ack",
        }
    }
}

/// Whether a frame asks, answers, or is pushed by the server unasked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Class {
    /// Client to server; the server answers with a response echoing the request id.
    Request = 0,
    /// Answer to a request or to an indication that asks for one (same id).
    Response = 1,
    /// Pushed by the server unasked. Its id is 0, except for the two that the
    /// client answers: a heartbeat ping and a forwarded message (acknowledged).
    Indication = 2,
}

impl Class {
    /// Every class, in numeric order.
    pub const ALL: [Class; 3] = [Class::Request, Class::Response, Class::Indication];

    /// The class for a wire byte, if known.
    pub fn from_byte(byte: u8) -> Option<Class> {
        Class::ALL.into_iter().find(|c| *c as u8 == byte)
    }

    /// A lowercase English name.
    pub fn name(self) -> &'static str {
        match self {
            Class::Request => "request",
            Class::Response => "response",
            Class::Indication => "indication",
        }
    }
}

/// A decoded header. `type_code` and `class` are raw bytes: the header is
/// checked before its payload is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Protocol version.
    pub version: u8,
    /// Raw type byte.
    pub type_code: u8,
    /// Raw class byte.
    pub class: u8,
    /// Reserved byte (0 in version 1).
    pub reserved: u8,
    /// Request id (0 for indications).
    pub request_id: u32,
    /// Payload length in bytes.
    pub length: u32,
}

impl Header {
    /// Reads the header fields from exactly [`HEADER_LEN`] bytes, without checking them.
    pub fn read(bytes: &[u8; HEADER_LEN]) -> Header {
        let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        Header {
            version: bytes[offset::VERSION],
            type_code: bytes[offset::TYPE],
            class: bytes[offset::CLASS],
            reserved: bytes[offset::RESERVED],
            request_id: u32_at(offset::REQUEST_ID),
            length: u32_at(offset::LENGTH),
        }
    }

    /// Writes this header (with the magic) as [`HEADER_LEN`] bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[offset::VERSION] = self.version;
        out[offset::TYPE] = self.type_code;
        out[offset::CLASS] = self.class;
        out[offset::RESERVED] = self.reserved;
        out[offset::REQUEST_ID..offset::REQUEST_ID + 4].copy_from_slice(&self.request_id.to_le_bytes());
        out[offset::LENGTH..offset::LENGTH + 4].copy_from_slice(&self.length.to_le_bytes());
        out
    }
}
