//! The words payload layouts are described in: how a field is laid out on
//! the wire ([`Wire`]), a payload's fields ([`Describe`]) and a message's
//! entry in the catalog ([`MessageSchema`]). Message types describe
//! themselves in these words (`message.rs`); `schema.rs` reads them.

use crate::header::{Class, TypeCode};

/// How one field is laid out on the wire (bincode, fixed-width little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// One byte.
    U8,
    /// Two bytes, little-endian.
    U16,
    /// Four bytes, little-endian.
    U32,
    /// u64 little-endian byte count, then that many bytes of UTF-8.
    String,
    /// u32 little-endian variant (0 = IPv4, 1 = IPv6), then 4 or 16 address bytes.
    IpAddr,
    /// A [`DeliveryStatus`](crate::message::DeliveryStatus) as u16 little-endian.
    DeliveryStatus,
    /// An [`ErrorCode`](crate::ErrorCode) as u16 little-endian.
    ErrorCode,
    /// u64 little-endian element count, then each element's fields in order.
    /// The first item names one element (for display).
    List(&'static str, &'static [Field]),
}

impl Wire {
    /// A short description for the protocol tables.
    pub fn describe(&self) -> String {
        match self {
            Wire::U8 => "u8".into(),
            Wire::U16 => "u16 LE".into(),
            Wire::U32 => "u32 LE".into(),
            Wire::String => "u64 LE length + UTF-8 bytes".into(),
            Wire::IpAddr => "u32 LE family (0 = IPv4, 1 = IPv6) + 4 or 16 bytes".into(),
            Wire::DeliveryStatus => "u16 LE delivery status".into(),
            Wire::ErrorCode => "u16 LE error code".into(),
            Wire::List(item, _) => format!("u64 LE count + that many `{item}` entries"),
        }
    }
}

/// The address families of a [`Wire::IpAddr`]: the u32 variant bincode writes first,
/// the family's name, and how many address bytes follow (for the dissector).
pub const IP_FAMILIES: [(u32, &str, usize); 2] = [(0, "IPv4", 4), (1, "IPv6", 16)];

/// One named field of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The field's name (as in the Rust struct and the JSON output).
    pub name: &'static str,
    /// The dissector's display filter name without the `tnlm.` prefix, e.g.
    /// `msg.text`. Fields that mean the same in several messages share one.
    pub filter: &'static str,
    /// Its wire layout.
    pub wire: Wire,
}

/// Implemented by every payload type: its fields in wire order.
pub trait Describe {
    /// The fields, in the order bincode writes them.
    const FIELDS: &'static [Field];
}

/// One message: the header pair that selects it and its payload layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageSchema {
    /// The header's type code.
    pub type_code: TypeCode,
    /// The header's class.
    pub class: Class,
    /// The Rust payload type's name.
    pub payload: &'static str,
    /// The payload's fields in wire order (empty for requests without payload).
    pub fields: &'static [Field],
}
