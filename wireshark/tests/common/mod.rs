//! Shared by the dissector tests: sample frames of every catalog entry (made by
//! `tnlm-core`'s encoder), the values the dissector must show for them (from core's
//! own `schema::walk`), and the Info text expected for each.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::IpAddr;

use tnlm_core::schema::{self, Field, Value, Wire};
use tnlm_core::{Frame, HEADER_LEN};

/// Sample frames of every catalog entry, with edge values: `tnlm_core::samples`, the list
/// the schema tests and the fuzz seeds use too. Its module docs name the ids and texts the
/// dissector tests expect (one client list of four, some Info texts).
pub use tnlm_core::samples::frames as samples;

/// The encoded frame.
pub fn encode(frame: &Frame) -> Vec<u8> {
    frame.to_bytes().unwrap()
}

/// A frame with `frame`'s header (length fixed up) and the given payload.
pub fn reframe(frame: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = frame[..HEADER_LEN].to_vec();
    out[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The (filter, value) pairs the dissector must add for `frame`'s payload, in wire order,
/// from core's own walk of the encoded bytes. IPv6 addresses use the `<filter>v6` field.
pub fn expected_payload_values(frame: &Frame) -> Vec<(String, String)> {
    let bytes = encode(frame);
    let (type_code, class) = frame.message.kind();
    let schema = schema::lookup(type_code, class).unwrap();
    let walked = schema::walk(schema.fields, &bytes[HEADER_LEN..]).unwrap();
    let mut out = Vec::new();
    flatten(schema.fields, &walked, &mut out);
    out
}

fn flatten(fields: &[Field], values: &[(String, Value)], out: &mut Vec<(String, String)>) {
    for (field, (name, value)) in fields.iter().zip(values) {
        assert_eq!(field.name, name);
        let filter = format!("tnlm.{}", field.filter);
        match (value, field.wire) {
            (Value::Uint(n), _) => out.push((filter, n.to_string())),
            (Value::Text(text), _) => out.push((filter, text.clone())),
            (Value::Ip(IpAddr::V4(ip)), _) => out.push((filter, ip.to_string())),
            (Value::Ip(IpAddr::V6(ip)), _) => out.push((format!("{filter}v6"), ip.to_string())),
            (Value::List(rows), Wire::List(_, item)) => {
                out.push((filter, rows.len().to_string()));
                for row in rows {
                    flatten(item, row, out);
                }
            }
            (Value::List(_), wire) => panic!("list value for {wire:?}"),
        }
    }
}

/// Display text as the dissector shows it in Info: controls become spaces, long text is cut.
pub fn shown(text: &str) -> String {
    let text: String = text.chars().map(|c| if (c as u32) < 0x20 || c as u32 == 0x7f { ' ' } else { c }).collect();
    if text.len() <= 48 {
        return text;
    }
    let mut cut = 48;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut])
}

/// The Info text the dissector must show for `frame`.
pub fn expected_info(frame: &Frame) -> String {
    use tnlm_core::Message;
    let (type_code, class) = frame.message.kind();
    let mut info = format!("{} {}", type_code.letter(), class.name());
    if class != tnlm_core::Class::Indication || frame.request_id != 0 {
        info.push_str(&format!(" #{}", frame.request_id));
    }
    let clients = |n: usize| if n == 1 { "1 client".to_string() } else { format!("{n} clients") };
    let rest = match &frame.message {
        Message::TimeRequest(_)
        | Message::NameRequest(_)
        | Message::ListRequest(_)
        | Message::PingRequest(_)
        | Message::ServerPing(_)
        | Message::Pong(_)
        | Message::Ack(_) => String::new(),
        Message::SendRequest(m) => format!(" to {}: {}", m.to, shown(&m.text)),
        Message::TimeResponse(m) => format!(": {}", shown(&m.time)),
        Message::NameResponse(m) => format!(": {}", shown(&m.name)),
        Message::ListResponse(m) => format!(": {}", clients(m.clients.len())),
        Message::Delivery(m) => format!(": {} to {} ({})", m.status.name(), m.to, shown(&m.reason)),
        Message::Forwarded(m) => format!(" from {}: {}", m.from, shown(&m.text)),
        Message::Hello(m) => format!(
            ": client {} on {}, version {}, max payload {}",
            m.client_id,
            shown(&m.server),
            m.version,
            m.max_payload
        ),
        Message::Shutdown(m) => format!(": {}", shown(&m.reason)),
        Message::Error(m) => format!(": {}: {}", m.code.name(), shown(&m.text)),
    };
    info + &rest
}
