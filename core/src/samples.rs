//! Sample frames: every message kind with edge values, made once for all the checks.
//!
//! The schema tests (`core/tests/schema.rs`), the Wireshark dissector tests
//! (`wireshark/tests/`) and the fuzz seed corpus (`core/fuzz`) all run over [`frames`], so a
//! new message kind or edge case added here reaches every one of them. Besides the types,
//! the list covers: empty, multi-byte and control-character text ([`UNICODE`]); request
//! ids 0 and `u32::MAX` and one whose four bytes differ (byte order); IPv4, IPv6,
//! IPv4-mapped, loopback and unspecified addresses; ports 0 and 65535; client lists of 0, 1,
//! 2 and 4 entries; every [`DeliveryStatus`] and [`ErrorCode`].
//!
//! The list opens, as every connection does, with the server's `Hello`. Some users look
//! frames up by shape or expect their ids and texts: the dissector tests
//! (`wireshark/tests/mlua.rs`) want exactly one client list of four entries (`#9`, in this
//! order of addresses) and Info texts such as `T request #7`, `L response #14: 1 client`,
//! `M request #10 to 2: Hello world!`, `M indication from 2: Hello world!`,
//! `M response #100: delivered to 0 (delivered é)` and
//! `E response #200: bad_magic: bad_magic: ✗`. Keep them when editing the list; the
//! fuzz seeds (`core/fuzz/corpus/`) must be rewritten after any change
//! (`bash ci/fuzz.sh seeds`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::message::{
    Ack, ClientInfo, Delivery, DeliveryStatus, ErrorBody, Forwarded, Hello, ListRequest, ListResponse, NameRequest,
    NameResponse, PingRequest, Pong, SendRequest, ServerPing, Shutdown, TimeRequest, TimeResponse,
};
use crate::{ErrorCode, Frame, DEFAULT_MAX_PAYLOAD, VERSION};

/// Text that exercises UTF-8 of every length (2-, 3- and 4-byte characters and a
/// zero-width-joiner sequence), control characters (newline, tab, NUL) and the separators
/// `#`, `*` and `,`: what length prefixes, walks, fuzz seeds and the dissector's display
/// must all get right.
pub const UNICODE: &str = "héllo wörld — 你好, мир! 🦀👩\u{200d}💻 a#b*c\nd\t\0end";

/// The `n`th of three forms of `name`, in turn: `name` and `short`, `name` alone (plain
/// ASCII), `name` and `long`, so that reasons and error texts vary between ASCII and
/// multi-byte UTF-8 across the statuses and codes.
fn in_turn(n: u32, name: &str, short: &str, long: &str) -> String {
    match n % 3 {
        0 => format!("{name}{short}"),
        1 => name.to_string(),
        _ => format!("{name}{long}"),
    }
}

fn client(id: u32, ip: IpAddr, port: u16, since: &str) -> ClientInfo {
    ClientInfo { id, ip, port, since: since.into() }
}

/// Real frames of every catalog entry (at least one each), the server's `Hello` first, with
/// edge values in every field. See the [module docs](self) for what is covered and which
/// ids and texts other tests rely on.
pub fn frames() -> Vec<Frame> {
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 1, 2, 3, 4));
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
        Frame::new(0x0102_0304, ListRequest),
        Frame::new(10, SendRequest { to: 2, text: "Hello world!".into() }),
        Frame::new(11, SendRequest { to: u32::MAX, text: String::new() }),
        Frame::new(12, SendRequest { to: 0, text: UNICODE.into() }),
        Frame::new(7, TimeResponse { time: "2026-11-25T12:00:00.123+08:00".into() }),
        Frame::new(8, NameResponse { name: "lab-host.example".into() }),
        Frame::new(9, NameResponse { name: "服务器-Ωmega".into() }),
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
        Frame::new(
            15,
            ListResponse {
                clients: vec![
                    client(5, Ipv4Addr::UNSPECIFIED.into(), 80, "x"),
                    client(0, Ipv6Addr::UNSPECIFIED.into(), 443, "2026-01-01T00:00:00+00:00"),
                ],
            },
        ),
        // Forwarded messages carry the delivery id the receiver acknowledges (or none).
        Frame::indication(Forwarded { from: 2, from_ip: v4, from_port: 40000, text: "Hello world!".into() }),
        Frame::new(13, Forwarded { from: 4, from_ip: v6, from_port: 1, text: UNICODE.into() }),
        Frame::new(
            u32::MAX,
            Forwarded { from: 5, from_ip: Ipv6Addr::LOCALHOST.into(), from_port: 65535, text: String::new() },
        ),
        Frame::new(13, Ack),
        Frame::new(u32::MAX, Ack),
        Frame::indication(Hello {
            client_id: u32::MAX,
            server: "日本語サーバ".into(),
            version: u8::MAX,
            max_payload: 0,
        }),
        Frame::indication(Shutdown { reason: "server is shutting down".into() }),
        Frame::indication(Shutdown { reason: String::new() }),
        Frame::new(0, PingRequest),
        Frame::new(17, ServerPing),
        Frame::new(17, Pong),
    ];
    for (n, status) in (0u32..).zip(DeliveryStatus::ALL) {
        let reason = in_turn(n, status.name(), " é", " — é");
        frames.push(Frame::new(100 + n, Delivery { to: n, status, reason }));
    }
    for (n, code) in (0u32..).zip(ErrorCode::ALL) {
        frames.push(Frame::new(200 + n, ErrorBody { code, text: in_turn(n, code.name(), ": ✗", ": ✗ ошибка") }));
    }
    frames
}
