//! Shared by the dissector tests: sample frames of every catalog entry (made by
//! `tnlm-core`'s encoder), the values the dissector must show for them (from core's
//! own `schema::walk`), and the Info text expected for each.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tnlm_core::message::{
    Ack, ClientInfo, Delivery, DeliveryStatus, ErrorBody, Forwarded, Hello, ListRequest, ListResponse, NameRequest,
    NameResponse, PingRequest, Pong, SendRequest, ServerPing, Shutdown, TimeRequest, TimeResponse,
};
use tnlm_core::schema::{self, Field, Value, Wire};
use tnlm_core::{ErrorCode, Frame, DEFAULT_MAX_PAYLOAD, HEADER_LEN, VERSION};

/// Text with multi-byte UTF-8 of every length, controls and separators.
pub const UNICODE: &str = "héllo wörld — 你好, мир! 🦀👩\u{200d}💻 a#b*c\nd\t\0end";

fn client(id: u32, ip: IpAddr, port: u16, since: &str) -> ClientInfo {
    ClientInfo { id, ip, port, since: since.into() }
}

/// Sample frames: every catalog entry at least once, with edge values.
pub fn samples() -> Vec<Frame> {
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let v6: IpAddr = "2001:db8::1:2:3:4".parse().unwrap();
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped());
    let mut frames = vec![
        Frame::indication(Hello {
            client_id: 1,
            server: "lab-host".into(),
            version: VERSION,
            max_payload: DEFAULT_MAX_PAYLOAD,
        }),
        Frame::new(7, TimeRequest),
        Frame::new(u32::MAX, NameRequest),
        Frame::new(9, ListRequest),
        Frame::new(10, SendRequest { to: 2, text: "Hello world!".into() }),
        Frame::new(11, SendRequest { to: u32::MAX, text: String::new() }),
        Frame::new(12, SendRequest { to: 0, text: UNICODE.into() }),
        Frame::new(7, TimeResponse { time: "2026-11-25T12:00:00.123+08:00".into() }),
        Frame::new(8, NameResponse { name: "服务器-Ωmega".into() }),
        Frame::new(13, ListResponse { clients: Vec::new() }),
        Frame::new(
            14,
            ListResponse { clients: vec![client(1, Ipv4Addr::LOCALHOST.into(), 50000, "2026-01-01T00:00:00+00:00")] },
        ),
        Frame::new(
            9,
            ListResponse {
                clients: vec![
                    client(1, v4, 1, "2026-01-01T00:00:00+00:00"),
                    client(2, v6, 65535, "2026-01-01T00:00:01.5-05:30"),
                    client(3, Ipv6Addr::LOCALHOST.into(), 4579, ""),
                    client(u32::MAX, mapped, 0, "ünïcode"),
                ],
            },
        ),
        Frame::indication(Forwarded { from: 2, from_ip: v4, from_port: 40000, text: "Hello world!".into() }),
        Frame::indication(Forwarded { from: 4, from_ip: v6, from_port: 1, text: UNICODE.into() }),
        Frame::indication(Hello {
            client_id: u32::MAX,
            server: "日本語サーバ".into(),
            version: u8::MAX,
            max_payload: 0,
        }),
        Frame::indication(Shutdown { reason: "server is shutting down".into() }),
        Frame::indication(Shutdown { reason: String::new() }),
        Frame::new(0, PingRequest),
        Frame::new(3, ServerPing),
        Frame::new(3, Pong),
        Frame::new(21, Ack),
    ];
    for (n, status) in DeliveryStatus::ALL.into_iter().enumerate() {
        frames.push(Frame::new(
            100 + n as u32,
            Delivery { to: n as u32, status, reason: format!("{} é", status.name()) },
        ));
    }
    for (n, code) in ErrorCode::ALL.into_iter().enumerate() {
        frames.push(Frame::new(200 + n as u32, ErrorBody { code, text: format!("{}: ✗", code.name()) }));
    }
    frames
}

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
    if class != tnlm_core::Class::Indication {
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
