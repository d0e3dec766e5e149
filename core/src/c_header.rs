//! The C header `examples/c-client/tnlm.h`, rendered from this crate.
//!
//! A C program (the example client, or a student's own) gets every constant,
//! header offset, type letter, class, code and payload layout from it, so it
//! cannot drift from the Rust implementation: a test in `core/tests/c_header.rs`
//! fails when the committed file differs from [`render`]
//! (`TNLM_BLESS=1 cargo test -p tnlm-core --test c_header` rewrites it).

use std::fmt::Write;

use crate::frame::{offset, Class, TypeCode};
use crate::message::DeliveryStatus;
use crate::schema::{catalog, Field, Wire, IP_FAMILIES};
use crate::ErrorCode;

/// The whole header file.
pub fn render() -> String {
    let mut out = String::new();
    out.push_str(PREAMBLE);
    constants(&mut out);
    header_offsets(&mut out);
    type_letters(&mut out);
    payload_layouts(&mut out);
    codes(&mut out);
    out.push_str("\n#endif /* TNLM_H */\n");
    out
}

const PREAMBLE: &str = "\
/* tnlm.h: the TNLM protocol, version 1, for C programs.
 *
 * GENERATED from the Rust crate tnlm-core (core/src/c_header.rs); do not edit.
 * Regenerate with: TNLM_BLESS=1 cargo test -p tnlm-core --test c_header
 * The protocol itself is explained in docs/PROTOCOL.md.
 *
 * Every integer on the wire is little-endian. A frame is a 16-byte header
 * followed by `length` bytes of payload. In a payload, a string is a u64
 * byte count followed by that many bytes of UTF-8 (no terminating 0), an IP
 * address is a u32 family (0 = IPv4, 1 = IPv6) followed by 4 or 16 bytes,
 * and a list is a u64 count followed by that many entries.
 */
#ifndef TNLM_H
#define TNLM_H
";

fn constants(out: &mut String) {
    let _ = writeln!(out, "\n/* Constants */");
    let _ = writeln!(out, "#define TNLM_MAGIC \"{}\" /* the first 4 bytes of every frame */", as_text(&crate::MAGIC));
    define(out, "TNLM_VERSION", crate::VERSION, "the protocol version this header describes");
    define(out, "TNLM_HEADER_LEN", crate::HEADER_LEN, "bytes in a frame header");
    define(out, "TNLM_DEFAULT_PORT", crate::DEFAULT_PORT, "a server's default TCP port");
    define(out, "TNLM_DEFAULT_MAX_PAYLOAD", crate::DEFAULT_MAX_PAYLOAD, "a server's default payload limit");
    define(
        out,
        "TNLM_MIN_MAX_PAYLOAD",
        crate::MIN_MAX_PAYLOAD,
        "the smallest max_payload a hello announces; no server frame exceeds the announced one",
    );
    define(out, "TNLM_MAX_NAME_LEN", crate::MAX_NAME_LEN, "the longest server name, in bytes");
}

fn header_offsets(out: &mut String) {
    let _ = writeln!(out, "\n/* Header: byte offsets of its fields */");
    for field in crate::schema::HEADER {
        let name = format!("TNLM_OFF_{}", field.name.to_uppercase());
        let size = match field.size {
            1 => "u8".to_string(),
            4 if field.name != "magic" => "u32".to_string(),
            n => format!("{n} bytes"),
        };
        define(out, &name, field.offset, &size);
    }
    debug_assert_eq!(offset::LENGTH + 4, crate::HEADER_LEN);
}

fn type_letters(out: &mut String) {
    let _ = writeln!(out, "\n/* Frame types (ASCII letters) and classes */");
    for t in TypeCode::ALL {
        let _ = writeln!(out, "#define TNLM_TYPE_{} '{}'", t.name().to_uppercase(), t.letter());
    }
    for c in Class::ALL {
        define(out, &format!("TNLM_CLASS_{}", c.name().to_uppercase()), c as u8, "");
    }
}

fn payload_layouts(out: &mut String) {
    let _ = writeln!(out, "\n/* Payload layouts, field by field in wire order. TNLM_<PAYLOAD>_<FIELD> is the");
    let _ = writeln!(out, " * byte offset of a field, given while the fields before it have a fixed size. */");
    let mut seen: Vec<&str> = Vec::new();
    for m in catalog() {
        let name = upper_snake(m.payload);
        if seen.contains(&m.payload) {
            continue;
        }
        seen.push(m.payload);
        let _ = writeln!(
            out,
            "\n/* {} = '{}' {}: {} */",
            m.payload,
            m.type_code.letter(),
            m.class.name(),
            if m.fields.is_empty() { "empty payload".to_string() } else { describe_fields(m.fields) }
        );
        layout(out, &name, m.fields, &mut seen);
    }
    let _ = writeln!(out, "\n/* IP address families */");
    for (family, name, bytes) in IP_FAMILIES {
        define(out, &format!("TNLM_FAMILY_{}", name.to_uppercase()), family, &format!("then {bytes} bytes"));
    }
}

fn layout(out: &mut String, name: &str, fields: &[Field], seen: &mut Vec<&'static str>) {
    let mut at = Some(0usize);
    for f in fields {
        if let Some(offset) = at {
            define(out, &format!("TNLM_{name}_{}", f.name.to_uppercase()), offset, &f.wire.describe());
        }
        at = at.and_then(|o| f.wire.fixed_size().map(|size| o + size));
    }
    for f in fields {
        if let Wire::List(item, item_fields) = f.wire {
            if !seen.contains(&item) {
                seen.push(item);
                let _ = writeln!(out, "/* one `{item}` entry of {}: {} */", name, describe_fields(item_fields));
                layout(out, &upper_snake(item), item_fields, seen);
            }
        }
    }
}

fn codes(out: &mut String) {
    let _ = writeln!(out, "\n/* Delivery statuses (u16, in an M response) */");
    for s in DeliveryStatus::ALL {
        define(out, &format!("TNLM_STATUS_{}", s.name().to_uppercase()), s.code(), "");
    }
    let _ = writeln!(out, "\n/* Error codes (u16, in an E frame) */");
    for e in ErrorCode::ALL {
        define(out, &format!("TNLM_ERROR_{}", e.name().to_uppercase()), e.code(), e.consequence());
    }
    name_function(out, "tnlm_status_name", DeliveryStatus::ALL.iter().map(|s| (s.code(), s.name())));
    name_function(out, "tnlm_error_name", ErrorCode::ALL.iter().map(|e| (e.code(), e.name())));
}

/// `static const char *NAME(unsigned code)`: a code's snake_case name, or "unknown".
fn name_function<'a>(out: &mut String, name: &str, codes: impl Iterator<Item = (u16, &'a str)>) {
    let _ = writeln!(out, "\nstatic inline const char *{name}(unsigned code) {{\n    switch (code) {{");
    for (code, text) in codes {
        let _ = writeln!(out, "    case {code}: return \"{text}\";");
    }
    let _ = writeln!(out, "    default: return \"unknown\";\n    }}\n}}");
}

fn define(out: &mut String, name: &str, value: impl std::fmt::Display, comment: &str) {
    let line = format!("#define {name} {value}");
    if comment.is_empty() {
        let _ = writeln!(out, "{line}");
    } else {
        let _ = writeln!(out, "{line:<44} /* {comment} */");
    }
}

fn describe_fields(fields: &[Field]) -> String {
    let parts: Vec<String> = fields.iter().map(|f| format!("{} ({})", f.name, short(&f.wire))).collect();
    parts.join(", ")
}

fn short(wire: &Wire) -> String {
    match wire {
        Wire::U8 => "u8".into(),
        Wire::U16 | Wire::DeliveryStatus | Wire::ErrorCode => "u16".into(),
        Wire::U32 => "u32".into(),
        Wire::String => "string".into(),
        Wire::IpAddr => "ip".into(),
        Wire::List(item, _) => format!("list of {item}"),
    }
}

/// `SendRequest` -> `SEND_REQUEST`, `client` -> `CLIENT`.
fn upper_snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn as_text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_offsets_are_as_a_c_reader_expects() {
        let header = render();
        assert!(header.contains("#define TNLM_OFF_REQUEST_ID 8"), "{header}");
        assert!(header.contains("#define TNLM_TYPE_TIME 'T'"), "{header}");
        assert!(header.contains("#define TNLM_SEND_REQUEST_TEXT 4"), "{header}");
        assert!(header.contains("#define TNLM_HELLO_SERVER 4"), "{header}");
        assert!(!header.contains("TNLM_HELLO_VERSION"), "offset after a string is not fixed");
        assert!(header.contains("case 4: return \"too_large\";"), "{header}");
        assert_eq!(upper_snake("ErrorBody"), "ERROR_BODY");
    }
}
