//! The one bincode configuration every TNLM payload uses.
//!
//! bincode 1.3's free functions use fixed-width little-endian integers, but its
//! `DefaultOptions` switch to variable-length integers. To make the wire format
//! explicit (and readable by a Lua dissector), every payload goes through
//! [`options`]: fixed-width integers, little-endian, a size limit, and no
//! trailing bytes after the value.

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

/// The bincode options for a payload of at most `limit` bytes.
///
/// The limit bounds both what the encoder writes and what the decoder may
/// allocate: a string whose length prefix claims more than `limit` bytes is
/// rejected before any allocation.
pub fn options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding().with_little_endian().with_limit(limit).reject_trailing_bytes()
}

/// Appends the encoding of `value` to `out`, failing if it exceeds `limit` bytes.
pub fn encode_into<T: Serialize>(out: &mut Vec<u8>, value: &T, limit: u64) -> bincode::Result<()> {
    options(limit).serialize_into(out, value)
}

/// Decodes exactly one `T` from `bytes`; leftover or missing bytes are errors.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> bincode::Result<T> {
    options(bytes.len() as u64).deserialize(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_fixed_width_little_endian() {
        let mut out = Vec::new();
        encode_into(&mut out, &(1u16, 2u32, 3u64), 64).unwrap();
        assert_eq!(out, [1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn strings_are_u64_length_then_utf8() {
        let mut out = Vec::new();
        encode_into(&mut out, &"hé".to_string(), 64).unwrap();
        assert_eq!(out, [3, 0, 0, 0, 0, 0, 0, 0, b'h', 0xC3, 0xA9]);
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        assert!(decode::<u16>(&[1, 0, 0]).is_err());
    }

    #[test]
    fn huge_length_prefix_is_rejected_without_allocating() {
        let mut bytes = vec![0xFF; 8];
        bytes.extend_from_slice(b"abc");
        assert!(decode::<String>(&bytes).is_err());
    }
}
