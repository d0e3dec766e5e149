//! A machine-readable description of every payload layout.
//!
//! The Wireshark dissector generator and the protocol tables in
//! `docs/PROTOCOL.md` are produced from this description, and the tests below
//! check it against the real encoder, so the three can never drift apart.

use crate::header::{Class, TypeCode};
pub use crate::layout::{Describe, Field, MessageSchema, Wire, IP_FAMILIES};

/// Every message TNLM defines.
pub fn catalog() -> &'static [MessageSchema] {
    crate::message::CATALOG
}

/// The message selected by a header's type code and class.
pub fn lookup(type_code: TypeCode, class: Class) -> Option<&'static MessageSchema> {
    catalog().iter().find(|m| m.type_code == type_code && m.class == class)
}

/// A value read by [`walk`]: enough to check a layout, not to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Any unsigned integer field.
    Uint(u64),
    /// A string field.
    Text(String),
    /// An address field.
    Ip(std::net::IpAddr),
    /// A list: one row of values per element.
    List(Vec<Vec<(String, Value)>>),
}

/// Reads `bytes` following `fields` only (no serde), returning each field's
/// name and value. Fails unless the layout consumes exactly all bytes.
///
/// This is the same walk the Lua dissector performs, so testing it against the
/// real encoder proves the description is right.
pub fn walk(fields: &[Field], bytes: &[u8]) -> Result<Vec<(String, Value)>, String> {
    let mut cursor = Cursor { bytes, at: 0 };
    let values = cursor.fields(fields)?;
    if cursor.at != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - cursor.at));
    }
    Ok(values)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("need {n} bytes at offset {}", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |acc, b| acc << 8 | u64::from(*b)))
    }

    fn fields(&mut self, fields: &[Field]) -> Result<Vec<(String, Value)>, String> {
        fields.iter().map(|f| Ok((f.name.to_string(), self.value(f.wire)?))).collect()
    }

    fn value(&mut self, wire: Wire) -> Result<Value, String> {
        Ok(match wire {
            Wire::U8 => Value::Uint(self.uint(1)?),
            Wire::U16 | Wire::DeliveryStatus | Wire::ErrorCode => Value::Uint(self.uint(2)?),
            Wire::U32 => Value::Uint(self.uint(4)?),
            Wire::String => {
                let len = usize::try_from(self.uint(8)?).map_err(|e| e.to_string())?;
                let text = std::str::from_utf8(self.take(len)?).map_err(|e| e.to_string())?;
                Value::Text(text.to_string())
            }
            Wire::IpAddr => match self.uint(4)? {
                0 => Value::Ip(<[u8; 4]>::try_from(self.take(4)?).map_err(|e| e.to_string())?.into()),
                1 => Value::Ip(<[u8; 16]>::try_from(self.take(16)?).map_err(|e| e.to_string())?.into()),
                other => return Err(format!("bad address family {other}")),
            },
            Wire::List(_, item) => {
                let count = self.uint(8)?;
                let mut rows = Vec::new();
                for _ in 0..count {
                    rows.push(self.fields(item)?);
                }
                Value::List(rows)
            }
        })
    }
}

/// One field of the fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderField {
    /// Field name (the dissector's filter is `tnlm.<name>`).
    pub name: &'static str,
    /// Byte offset from the start of the frame.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// What it holds.
    pub meaning: &'static str,
}

/// The fixed header, field by field (see [`crate::header::offset`]).
pub const HEADER: [HeaderField; 7] = {
    use crate::header::offset;
    [
        HeaderField { name: "magic", offset: offset::MAGIC, size: 4, meaning: "the ASCII bytes `TNLM`" },
        HeaderField { name: "version", offset: offset::VERSION, size: 1, meaning: "protocol version, 1" },
        HeaderField { name: "type", offset: offset::TYPE, size: 1, meaning: "type code, an ASCII letter" },
        HeaderField {
            name: "class",
            offset: offset::CLASS,
            size: 1,
            meaning: "0 = request, 1 = response, 2 = indication",
        },
        HeaderField { name: "reserved", offset: offset::RESERVED, size: 1, meaning: "must be 0" },
        HeaderField {
            name: "request_id",
            offset: offset::REQUEST_ID,
            size: 4,
            meaning: "u32 LE; chosen by the client, echoed by the response; in indications 0, \
                      except `M` (the delivery id) and `P` (the ping id), which the client echoes",
        },
        HeaderField { name: "length", offset: offset::LENGTH, size: 4, meaning: "u32 LE; payload bytes that follow" },
    ]
};

/// Which side of a connection sends a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The client (requests, and the `P` pong and `A` ack responses).
    Client,
    /// The server (responses, indications, errors).
    Server,
}

/// One exchange: a frame that expects an answer on the same connection, the answer
/// (same request id, sent by the other side), and who opens it. An `E` response from
/// the server with the request's id also answers any client request (see [`ERROR_ANSWERS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    /// Type code and class of the frame that expects an answer.
    pub ask: (TypeCode, Class),
    /// Type code and class of its answer.
    pub answer: (TypeCode, Class),
    /// Who sends `ask` (the other side sends `answer`).
    pub opener: Sender,
}

/// Every exchange of the protocol (the rules in docs/PROTOCOL.md): requests and their
/// responses, the server's ping and the client's pong, a forwarded message and its ack.
/// The Wireshark dissector links asks to answers from this table.
pub const EXCHANGES: &[Exchange] = {
    use Class::{Indication, Request, Response};
    use TypeCode::{Ack, List, Message, Name, Ping, Time};
    &[
        Exchange { ask: (Time, Request), answer: (Time, Response), opener: Sender::Client },
        Exchange { ask: (Name, Request), answer: (Name, Response), opener: Sender::Client },
        Exchange { ask: (List, Request), answer: (List, Response), opener: Sender::Client },
        Exchange { ask: (Message, Request), answer: (Message, Response), opener: Sender::Client },
        Exchange { ask: (Ping, Request), answer: (Ping, Response), opener: Sender::Client },
        Exchange { ask: (Ping, Indication), answer: (Ping, Response), opener: Sender::Server },
        Exchange { ask: (Message, Indication), answer: (Ack, Response), opener: Sender::Server },
    ]
};

/// The frame that may answer any client request in place of its response: an error
/// carrying the request's id (errors for an unreadable header carry 0 and answer none).
pub const ERROR_ANSWERS: (TypeCode, Class) = (TypeCode::Error, Class::Response);

/// The protocol tables of `docs/PROTOCOL.md`, rendered from this description.
/// A test keeps the document in step with it.
pub fn markdown_tables() -> String {
    use crate::message::DeliveryStatus;
    use crate::ErrorCode;
    use std::fmt::Write;

    let mut out = String::new();
    let _ = writeln!(out, "### Header ({} bytes)\n", crate::HEADER_LEN);
    let _ = writeln!(out, "| offset | size | field | meaning |\n| --- | --- | --- | --- |");
    for f in HEADER {
        let _ = writeln!(out, "| {} | {} | `{}` | {} |", f.offset, f.size, f.name, f.meaning);
    }
    let _ = writeln!(out, "\n### Messages\n");
    let _ = writeln!(out, "| type | hex | class | payload | fields |\n| --- | --- | --- | --- | --- |");
    for m in catalog() {
        let fields: Vec<&str> = m.fields.iter().map(|f| f.name).collect();
        let fields = if fields.is_empty() { "(empty)".to_string() } else { fields.join(", ") };
        let (letter, byte) = (m.type_code.letter(), m.type_code as u8);
        let _ = writeln!(
            out,
            "| `{letter}` {} | 0x{byte:02X} | {} ({}) | `{}` | {fields} |",
            m.type_code.name(),
            m.class as u8,
            m.class.name(),
            m.payload
        );
    }
    let _ = writeln!(out, "\n### Payload layouts\n");
    let mut seen: Vec<&str> = Vec::new();
    for m in catalog().iter().filter(|m| !m.fields.is_empty()) {
        render_layout(&mut out, m.payload, m.fields, &mut seen);
    }
    let _ = writeln!(out, "### Delivery status codes (`M` response)\n");
    let _ = writeln!(out, "| code | name |\n| --- | --- |");
    for s in DeliveryStatus::ALL {
        let _ = writeln!(out, "| {} | `{}` |", s.code(), s.name());
    }
    let _ = writeln!(out, "\n### Error codes (`E` response)\n");
    let _ = writeln!(out, "| code | name | the connection afterwards |\n| --- | --- | --- |");
    for e in ErrorCode::ALL {
        let _ = writeln!(out, "| {} | `{}` | {} |", e.code(), e.name(), e.consequence());
    }
    out
}

fn render_layout(out: &mut String, name: &str, fields: &[Field], seen: &mut Vec<&'static str>) {
    use std::fmt::Write;
    let _ = writeln!(out, "`{name}`:\n\n| offset | field | encoding |\n| --- | --- | --- |");
    let mut offset = Some(0usize);
    for f in fields {
        let at = offset.map_or_else(|| "…".to_string(), |o| o.to_string());
        let _ = writeln!(out, "| {at} | `{}` | {} |", f.name, f.wire.describe());
        offset = offset.and_then(|o| f.wire.fixed_size().map(|size| o + size));
    }
    let _ = writeln!(out);
    for f in fields {
        if let Wire::List(item, item_fields) = f.wire {
            if !seen.contains(&item) {
                seen.push(item);
                render_layout(out, item, item_fields, seen);
            }
        }
    }
}

impl Wire {
    /// The size in bytes, if it does not depend on the value.
    pub fn fixed_size(&self) -> Option<usize> {
        match self {
            Wire::U8 => Some(1),
            Wire::U16 | Wire::DeliveryStatus | Wire::ErrorCode => Some(2),
            Wire::U32 => Some(4),
            Wire::String | Wire::IpAddr | Wire::List(..) => None,
        }
    }
}
