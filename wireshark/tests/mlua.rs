//! Layer 1: the generated dissector run by mlua inside a mock of Wireshark's Lua API
//! (`tests/mock/wireshark.lua`), fed frames made by `tnlm-core`'s encoder: every message
//! kind, coalesced into one segment and split over many, malformed in every way the
//! decoder knows. Checks every field value against core's own walk of the bytes.
//!
//! Built only with one Lua version, in separate runs (mlua allows one per build):
//! `cargo test -p tnlm-wireshark --features lua52` and `... --features lua54`.
#![cfg(any(feature = "lua52", feature = "lua54"))]
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv6Addr;

use common::{encode, expected_info, expected_payload_values, reframe, samples};
use mlua::{Function, Lua, Table, Value};
use tnlm_core::message::{ListResponse, NameRequest, NameResponse, SendRequest, Shutdown, TimeRequest, TimeResponse};
use tnlm_core::{Frame, HEADER_LEN};

/// One tree item (or expert info) as the mock recorded it.
#[derive(Debug, Clone)]
struct Item {
    depth: usize,
    abbrev: String,
    expert: Option<String>,
    value: Option<String>,
    shown: Option<String>,
    text: String,
}

/// What one segment produced.
#[derive(Debug)]
struct Packet {
    info: String,
    protocol: String,
    items: Vec<Item>,
    experts: Vec<String>,
    errors: Vec<String>,
    pending: usize,
    handled: bool,
}

impl Packet {
    fn values(&self, abbrev: &str) -> Vec<String> {
        self.items.iter().filter(|i| i.abbrev == abbrev).filter_map(|i| i.value.clone()).collect()
    }

    fn count(&self, abbrev: &str) -> usize {
        self.items.iter().filter(|i| i.abbrev == abbrev).count()
    }

    fn has_expert(&self, abbrev: &str) -> bool {
        self.experts.iter().any(|e| e.starts_with(&format!("{abbrev} |")))
    }

    /// The TNLM PDUs' root labels ("TNLM Protocol, <info>").
    fn roots(&self) -> Vec<String> {
        self.items.iter().filter(|i| i.abbrev == "tnlm" && i.depth == 0).map(|i| i.text.clone()).collect()
    }
}

struct Wireshark {
    lua: Lua,
    mock: Table,
}

fn text(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        Value::Nil => None,
        other => Some(format!("{other:?}")),
    }
}

impl Wireshark {
    /// A fresh Lua state with the mock and the generated dissector loaded.
    fn new() -> Wireshark {
        let lua = Lua::new();
        let globals = lua.globals();
        let u64_le = lua
            .create_function(|_, bytes: mlua::LuaString| {
                let bytes = bytes.as_bytes();
                let array: [u8; 8] = bytes[..].try_into().map_err(mlua::Error::external)?;
                Ok(u64::from_le_bytes(array).to_string())
            })
            .unwrap();
        globals.set("__u64_le", u64_le).unwrap();
        let ipv6 = lua
            .create_function(|_, bytes: mlua::LuaString| {
                let bytes = bytes.as_bytes();
                let array: [u8; 16] = bytes[..].try_into().map_err(mlua::Error::external)?;
                Ok(Ipv6Addr::from(array).to_string())
            })
            .unwrap();
        globals.set("__ipv6", ipv6).unwrap();
        let mock: Table = lua.load(include_str!("mock/wireshark.lua")).set_name("@mock/wireshark.lua").eval().unwrap();
        lua.load(tnlm_wireshark::generate()).set_name("@tnlm.lua").exec().unwrap();
        Wireshark { lua, mock }
    }

    /// Dissects the segments of one connection; `true` marks server-to-client segments.
    fn stream(&self, segments: &[(bool, Vec<u8>)], opts: &[(&str, Value)]) -> Vec<Packet> {
        let segments: Vec<(u32, bool, Vec<u8>)> = segments.iter().map(|(s, d)| (0, *s, d.clone())).collect();
        self.streams(&segments, opts)
    }

    /// Dissects segments of several connections: (tcp.stream, from the server, bytes).
    fn streams(&self, segments: &[(u32, bool, Vec<u8>)], opts: &[(&str, Value)]) -> Vec<Packet> {
        let segments: Vec<(u32, u16, bool, Vec<u8>)> =
            segments.iter().map(|(st, s, d)| (*st, 0, *s, d.clone())).collect();
        self.servers(&segments, opts)
    }

    /// Dissects segments of several connections to several servers: (client's connection
    /// number, server port (0: the `server_port` option, by default 4579), from the server,
    /// bytes). The client's port is 50000 plus the connection number; every address is 127.0.0.1.
    fn servers(&self, segments: &[(u32, u16, bool, Vec<u8>)], opts: &[(&str, Value)]) -> Vec<Packet> {
        let list = self.lua.create_table().unwrap();
        for (n, (stream, port, from_server, data)) in segments.iter().enumerate() {
            let seg = self.lua.create_table().unwrap();
            seg.set("stream", *stream).unwrap();
            if *port != 0 {
                seg.set("server_port", *port).unwrap();
            }
            seg.set("from_server", *from_server).unwrap();
            seg.set("data", self.lua.create_string(data).unwrap()).unwrap();
            list.set(n + 1, seg).unwrap();
        }
        let options = self.lua.create_table().unwrap();
        for (key, value) in opts {
            options.set(*key, value.clone()).unwrap();
        }
        let dissect: Function = self.mock.get("dissect_stream").unwrap();
        let records: Table = dissect.call((list, options)).unwrap();
        records
            .sequence_values::<Table>()
            .map(|r| {
                let r = r.unwrap();
                let strings = |key: &str| -> Vec<String> {
                    let t: Table = r.get(key).unwrap();
                    t.sequence_values::<Value>().map(|v| text(v.unwrap()).unwrap_or_default()).collect()
                };
                let items: Table = r.get("items").unwrap();
                let items = items
                    .sequence_values::<Table>()
                    .map(|i| {
                        let i = i.unwrap();
                        let depth: i64 = i.get("depth").unwrap();
                        Item {
                            depth: depth as usize,
                            abbrev: text(i.get("abbrev").unwrap()).unwrap_or_default(),
                            expert: text(i.get("expert").unwrap()),
                            value: text(i.get("value").unwrap()),
                            shown: text(i.get("shown").unwrap()),
                            text: text(i.get("text").unwrap()).unwrap_or_default(),
                        }
                    })
                    .collect();
                let pending: mlua::LuaString = r.get("pending").unwrap();
                Packet {
                    info: text(r.get("info").unwrap()).unwrap_or_default(),
                    protocol: text(r.get("protocol").unwrap()).unwrap_or_default(),
                    items,
                    experts: strings("experts"),
                    errors: strings("errors"),
                    pending: pending.as_bytes().len(),
                    handled: r.get("handled").unwrap(),
                }
            })
            .collect()
    }

    /// One segment from the server (port 4579) to a client.
    fn one(&self, bytes: &[u8]) -> Packet {
        self.stream(&[(true, bytes.to_vec())], &[]).pop().unwrap()
    }

    fn eval<T: mlua::FromLuaMulti>(&self, code: &str) -> T {
        self.lua.load(code).eval().unwrap()
    }
}

fn assert_clean(packet: &Packet) {
    assert!(packet.errors.is_empty(), "Lua errors: {:?}\n{packet:#?}", packet.errors);
}

#[test]
fn registers_fields_port_heuristic_prefs_and_experts() {
    let ws = Wireshark::new();
    let port: Value = ws.eval("return __mock.tables['tcp.port'].entries[4579]");
    assert!(matches!(port, Value::UserData(_) | Value::Table(_)), "tcp.port 4579 is not registered");
    let name: String = ws.eval("return __mock.tables['tcp.port'].entries[4579].name");
    assert_eq!(name, "tnlm");
    let heuristics: i64 = ws.eval("return #(__mock.heuristics.tcp or {})");
    assert_eq!(heuristics, 1);
    let (ports, max): (String, i64) = ws.eval("local p = __mock.protos.tnlm.prefs return p.ports, p.max_payload");
    assert_eq!((ports.as_str(), max), ("4579", 65536));
    for field in tnlm_wireshark::fields() {
        let registered: bool = ws.eval(&format!("return __mock.fields[{:?}] ~= nil", field.abbrev));
        assert!(registered, "{} not registered", field.abbrev);
    }
}

#[test]
fn every_message_kind_shows_header_payload_and_info() {
    let ws = Wireshark::new();
    for frame in samples() {
        let bytes = encode(&frame);
        let packet = ws.one(&bytes);
        assert_clean(&packet);
        assert!(!packet.has_expert("tnlm.expert.malformed_payload"), "{frame:?}: {:?}", packet.experts);
        assert_eq!(packet.protocol, "TNLM");
        assert_eq!(packet.info, expected_info(&frame), "{frame:?}");
        assert_eq!(packet.roots(), [format!("TNLM Protocol, {}", expected_info(&frame))]);
        let (type_code, class) = frame.message.kind();
        assert_eq!(packet.values("tnlm.magic"), ["TNLM"]);
        assert_eq!(packet.values("tnlm.version"), ["1"]);
        assert_eq!(packet.values("tnlm.type"), [(type_code as u8).to_string()]);
        assert_eq!(packet.values("tnlm.class"), [(class as u8).to_string()]);
        assert_eq!(packet.values("tnlm.reserved"), ["0"]);
        assert_eq!(packet.values("tnlm.request_id"), [frame.request_id.to_string()]);
        assert_eq!(packet.values("tnlm.length"), [(bytes.len() - HEADER_LEN).to_string()]);
        assert_eq!(packet.count("tnlm.header"), 1);

        // Payload values, in wire order, exactly as core's walk reads them.
        let payload_start = packet.items.iter().position(|i| i.abbrev == "tnlm.payload");
        let got: Vec<(String, String)> = payload_start
            .map(|start| {
                let depth = packet.items[start].depth;
                packet.items[start + 1..]
                    .iter()
                    .take_while(|i| i.depth > depth)
                    .filter(|i| {
                        i.expert.is_none() && i.abbrev != "tnlm.string.length" && !i.abbrev.ends_with(".family")
                    })
                    .filter_map(|i| i.value.clone().map(|v| (i.abbrev.clone(), v)))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(got, expected_payload_values(&frame), "{frame:?}");
        if bytes.len() == HEADER_LEN {
            assert_eq!(packet.count("tnlm.payload"), 0, "empty payloads have no payload tree");
        }
    }
}

#[test]
fn string_lengths_ip_families_and_value_strings_are_shown() {
    let ws = Wireshark::new();
    let frame = Frame::new(5, SendRequest { to: 3, text: "héllo".into() });
    let packet = ws.one(&encode(&frame));
    assert_eq!(packet.values("tnlm.string.length"), ["6"]);
    let frames = samples();
    let list =
        frames.iter().find(|f| matches!(&f.message, tnlm_core::Message::ListResponse(l) if l.clients.len() == 4));
    let packet = ws.one(&encode(list.unwrap()));
    assert_eq!(packet.values("tnlm.client.ip.family"), ["0", "1", "1", "1"]);
    assert_eq!(packet.values("tnlm.client.ip"), ["192.0.2.7"]);
    assert_eq!(packet.values("tnlm.client.ipv6"), ["2001:db8::1:2:3:4", "::1", "::ffff:10.1.2.3"]);
    let delivery = frames.iter().find(|f| matches!(f.message, tnlm_core::Message::Delivery(_))).unwrap();
    let packet = ws.one(&encode(delivery));
    let status = packet.items.iter().find(|i| i.abbrev == "tnlm.status").unwrap();
    assert_eq!(status.shown.as_deref(), Some("delivered"));
    let type_item = packet.items.iter().find(|i| i.abbrev == "tnlm.type").unwrap();
    assert_eq!(type_item.shown.as_deref(), Some("message"));
}

#[test]
fn the_client_list_is_one_subtree_per_client() {
    let ws = Wireshark::new();
    let frames = samples();
    let list =
        frames.iter().find(|f| matches!(&f.message, tnlm_core::Message::ListResponse(l) if l.clients.len() == 4));
    let packet = ws.one(&encode(list.unwrap()));
    assert_clean(&packet);
    let count = packet.items.iter().find(|i| i.abbrev == "tnlm.clients").unwrap();
    let clients: Vec<&Item> = packet.items.iter().filter(|i| i.abbrev == "tnlm.client").collect();
    assert_eq!(clients.len(), 4);
    for client in &clients {
        assert_eq!(client.depth, count.depth + 1, "each client is a child of the count");
    }
    assert_eq!(clients[0].text, "Client 1: 192.0.2.7 port 1, since 2026-01-01T00:00:00+00:00");
    assert_eq!(clients[2].text, "Client 3: ::1 port 4579, since ");
    // Each client's fields are children of its subtree.
    let at = packet.items.iter().position(|i| i.abbrev == "tnlm.client").unwrap();
    let depth = packet.items[at].depth;
    let children: Vec<&str> = packet.items[at + 1..]
        .iter()
        .take_while(|i| i.depth > depth)
        .filter(|i| i.depth == depth + 1)
        .map(|i| i.abbrev.as_str())
        .collect();
    assert_eq!(children, ["tnlm.client.id", "tnlm.client.ip", "tnlm.client.port", "tnlm.client.since"]);
    assert_eq!(packet.info, "L response #9: 4 clients");
}

#[test]
fn info_texts_read_as_designed() {
    let ws = Wireshark::new();
    let infos: Vec<String> = samples().iter().map(|f| ws.one(&encode(f)).info).collect();
    for expected in [
        "T request #7",
        "L response #9: 4 clients",
        "L response #14: 1 client",
        "M indication from 2: Hello world!",
        "M request #10 to 2: Hello world!",
        "M response #100: delivered to 0 (delivered é)",
        "H indication: client 1 on lab-host, version 1, max payload 65536",
        "S indication: server is shutting down",
        "E response #200: bad_magic: bad_magic: ✗",
    ] {
        assert!(infos.iter().any(|i| i == expected), "no Info {expected:?} in {infos:#?}");
    }
}

fn all_samples_stream() -> (Vec<u8>, Vec<String>) {
    let frames = samples();
    let stream: Vec<u8> = frames.iter().flat_map(encode).collect();
    (stream, frames.iter().map(expected_info).collect())
}

#[test]
fn coalesced_frames_in_one_segment_all_decode_and_info_appends() {
    let ws = Wireshark::new();
    let (stream, infos) = all_samples_stream();
    let packet = ws.one(&stream);
    assert_clean(&packet);
    assert_eq!(packet.pending, 0);
    let roots: Vec<String> = infos.iter().map(|i| format!("TNLM Protocol, {i}")).collect();
    assert_eq!(packet.roots(), roots);
    assert_eq!(packet.info, infos.join(", "));
}

/// Splits `stream` at the given cut sizes (cycled) into server segments.
fn split(stream: &[u8], sizes: &[usize]) -> Vec<(bool, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut n = 0;
    while at < stream.len() {
        let size = sizes[n % sizes.len()].min(stream.len() - at);
        out.push((true, stream[at..at + size].to_vec()));
        at += size;
        n += 1;
    }
    out
}

#[test]
fn split_frames_reassemble_whatever_the_segmenting() {
    let ws = Wireshark::new();
    let (stream, infos) = all_samples_stream();
    for sizes in [&[1][..], &[2], &[3, 7], &[15, 16, 17], &[HEADER_LEN], &[5, 100, 1, 33], &[1000]] {
        let packets = ws.stream(&split(&stream, sizes), &[]);
        let mut roots = Vec::new();
        for packet in &packets {
            assert_clean(packet);
            roots.extend(packet.roots());
            if packet.roots().is_empty() {
                assert!(packet.info.contains("[PSH, ACK]"), "a segment without a PDU keeps TCP's Info");
            }
        }
        let expected: Vec<String> = infos.iter().map(|i| format!("TNLM Protocol, {i}")).collect();
        assert_eq!(roots, expected, "segment sizes {sizes:?}");
        assert_eq!(packets.last().unwrap().pending, 0);
    }
}

#[test]
fn a_hundred_responses_in_odd_segments_are_a_hundred_pdus() {
    let ws = Wireshark::new();
    let stream: Vec<u8> = (1..=100)
        .flat_map(|id| encode(&Frame::new(id, TimeResponse { time: "2026-11-25T12:00:00+08:00".into() })))
        .collect();
    for sizes in [&[1460][..], &[4096], &[7, 1000]] {
        let packets = ws.stream(&split(&stream, sizes), &[]);
        let ids: Vec<String> = packets.iter().flat_map(|p| p.values("tnlm.request_id")).collect();
        let expected: Vec<String> = (1..=100).map(|id: u32| id.to_string()).collect();
        assert_eq!(ids, expected);
        assert!(packets.iter().all(|p| p.errors.is_empty()));
    }
}

#[test]
fn without_reassembly_partial_frames_get_expert_info_not_errors() {
    let ws = Wireshark::new();
    let (stream, _) = all_samples_stream();
    for sizes in [&[1][..], &[10], &[HEADER_LEN + 3], &[50]] {
        let packets = ws.stream(&split(&stream, sizes), &[("reassemble", Value::Boolean(false))]);
        for packet in &packets {
            assert_clean(packet);
            assert_eq!(packet.pending, 0);
        }
        assert!(packets
            .iter()
            .any(|p| p.has_expert("tnlm.expert.malformed_payload") || p.has_expert("tnlm.expert.bad_magic")));
    }
}

/// The frame after a bad one must still decode (with reassembly the bad one may swallow the
/// rest of its segment when its header cannot be trusted, so it goes in its own segment).
fn bad_then_good(ws: &Wireshark, bad: &[u8], expert: &str) -> Vec<Packet> {
    let good = encode(&Frame::new(77, TimeRequest));
    let packets = ws.stream(&[(false, bad.to_vec()), (false, good)], &[]);
    assert_clean(&packets[0]);
    assert!(packets[0].has_expert(expert), "{expert} missing for {bad:02x?}: {:#?}", packets[0]);
    assert_eq!(packets[0].pending, 0, "a bad frame must not stall reassembly");
    assert_clean(&packets[1]);
    assert_eq!(packets[1].info, "T request #77");
    packets
}

#[test]
fn bad_magic_unsupported_version_and_oversize_are_expert_info() {
    let ws = Wireshark::new();
    let good = encode(&Frame::new(3, NameResponse { name: "x".into() }));
    let mut bad = good.clone();
    bad[..4].copy_from_slice(b"XNLM");
    let p = bad_then_good(&ws, &bad, "tnlm.expert.bad_magic");
    assert!(p[0].info.starts_with("bad magic"), "{}", p[0].info);
    let p = bad_then_good(&ws, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "tnlm.expert.bad_magic");
    assert_eq!(p[0].count("tnlm.data"), 1);

    let mut bad = good.clone();
    bad[4] = 2;
    let p = bad_then_good(&ws, &bad, "tnlm.expert.unsupported_version");
    assert!(p[0].info.contains("unsupported version 2"), "{}", p[0].info);

    let mut bad = good.clone();
    bad[12..16].copy_from_slice(&(65537u32).to_le_bytes());
    let p = bad_then_good(&ws, &bad, "tnlm.expert.oversize");
    assert!(p[0].info.contains("oversize"), "{}", p[0].info);
    let mut bad = good;
    bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    bad_then_good(&ws, &bad, "tnlm.expert.oversize");
}

#[test]
fn unknown_type_class_and_reserved_byte_are_flagged() {
    let ws = Wireshark::new();
    let good = encode(&Frame::new(3, NameResponse { name: "x".into() }));
    let mut bad = good.clone();
    bad[5] = b'X';
    let p = bad_then_good(&ws, &bad, "tnlm.expert.unknown_type");
    assert_eq!(p[0].info, "X response #3 [unknown type]");
    let mut bad = good.clone();
    bad[6] = 9;
    let p = bad_then_good(&ws, &bad, "tnlm.expert.unknown_type");
    assert_eq!(p[0].info, "N class 9 #3 [unknown type]");
    let mut bad = good.clone();
    bad[5] = 0;
    bad_then_good(&ws, &bad, "tnlm.expert.unknown_type");
    // Known type and class that name no message: unexpected, not unknown.
    let mut bad = good.clone();
    bad[6] = 2;
    let p = bad_then_good(&ws, &bad, "tnlm.expert.unexpected_frame");
    assert_eq!(p[0].info, "N indication #3 [unexpected]");
    // A set reserved byte is flagged, and the frame still decodes.
    let mut bad = good;
    bad[7] = 0x80;
    let p = bad_then_good(&ws, &bad, "tnlm.expert.invalid_header");
    assert_eq!(p[0].info, "N response #3: x");
}

#[test]
fn every_truncated_or_padded_payload_is_malformed_and_the_next_frame_decodes() {
    let ws = Wireshark::new();
    let mut checked = 0;
    for frame in samples() {
        let bytes = encode(&frame);
        let payload = &bytes[HEADER_LEN..];
        let mut variants: Vec<Vec<u8>> = (0..payload.len()).map(|cut| reframe(&bytes, &payload[..cut])).collect();
        for extra in [&[0u8][..], &[0xFF; 9][..]] {
            let mut padded = payload.to_vec();
            padded.extend_from_slice(extra);
            variants.push(reframe(&bytes, &padded));
        }
        for bad in variants {
            // Both in one segment: the bad frame's length is trusted, so the next follows.
            let mut stream = bad.clone();
            stream.extend_from_slice(&encode(&Frame::new(77, TimeRequest)));
            let packet = ws.one(&stream);
            assert_clean(&packet);
            assert!(packet.has_expert("tnlm.expert.malformed_payload"), "{frame:?} as {bad:02x?}: {packet:#?}");
            assert!(packet.info.ends_with(", T request #77"), "{}", packet.info);
            checked += 1;
        }
    }
    assert!(checked > 500, "only {checked}");
}

#[test]
fn unknown_status_and_error_codes_show_as_unknown_with_a_note() {
    let ws = Wireshark::new();
    let frames = samples();
    let delivery = frames.iter().find(|f| matches!(f.message, tnlm_core::Message::Delivery(_))).unwrap();
    let mut bytes = encode(delivery);
    bytes[HEADER_LEN + 4..HEADER_LEN + 6].copy_from_slice(&999u16.to_le_bytes());
    let packet = ws.one(&bytes);
    assert_clean(&packet);
    assert!(!packet.has_expert("tnlm.expert.malformed_payload"), "{:?}", packet.experts);
    assert!(packet
        .experts
        .contains(&"tnlm.expert.unknown_code | Unknown delivery status 999 (from a newer peer?)".into()));
    assert!(packet.info.contains(": Unknown (999) to "), "{}", packet.info);
    assert_eq!(packet.values("tnlm.status"), ["999"]);
    let error = frames.iter().find(|f| matches!(f.message, tnlm_core::Message::Error(_))).unwrap();
    let mut bytes = encode(error);
    bytes[HEADER_LEN..HEADER_LEN + 2].copy_from_slice(&0u16.to_le_bytes());
    let packet = ws.one(&bytes);
    assert_clean(&packet);
    assert!(packet.has_expert("tnlm.expert.unknown_code"), "{:?}", packet.experts);
    assert!(packet.info.contains(": Unknown (0): "), "{}", packet.info);
}

#[test]
fn corrupt_values_are_malformed() {
    let ws = Wireshark::new();
    let check = |bytes: &[u8], why: &str| {
        let packet = ws.one(bytes);
        assert_clean(&packet);
        let expert = packet.experts.iter().find(|e| e.starts_with("tnlm.expert.malformed_payload"));
        assert!(expert.is_some_and(|e| e.contains(why)), "{why}: {:?}", packet.experts);
    };
    // Invalid UTF-8 (lone lead byte, surrogate, overlong).
    for bad in [&[0xC3u8][..], &[0xED, 0xA0, 0x80], &[0xC0, 0x80], &[0xF5, 0x80, 0x80, 0x80]] {
        let mut payload = (bad.len() as u64).to_le_bytes().to_vec();
        payload.extend_from_slice(bad);
        check(&reframe(&encode(&Frame::new(1, NameResponse { name: String::new() })), &payload), "UTF-8");
    }
    // Unknown address family.
    let frames = samples();
    let forwarded = frames.iter().find(|f| matches!(f.message, tnlm_core::Message::Forwarded(_))).unwrap();
    let mut bytes = encode(forwarded);
    bytes[HEADER_LEN + 4] = 2;
    check(&bytes, "address family 2");
    // String length and list count far beyond the payload (u64 high half set, or just big).
    let mut bytes = encode(&Frame::indication(Shutdown { reason: "bye".into() }));
    bytes[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    check(&bytes, "string length exceeds");
    bytes[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&4u64.to_le_bytes());
    check(&bytes, "string length exceeds");
    let mut bytes = encode(&Frame::new(13, ListResponse { clients: Vec::new() }));
    bytes[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    check(&bytes, "count exceeds");
    bytes[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&1u64.to_le_bytes());
    check(&bytes, "count exceeds");
}

#[test]
fn error_frames_and_undelivered_messages_get_notes() {
    let ws = Wireshark::new();
    for frame in samples() {
        let packet = ws.one(&encode(&frame));
        match &frame.message {
            tnlm_core::Message::Error(e) => {
                assert!(packet.experts.contains(&format!("tnlm.expert.error_frame | Error frame: {}", e.code.name())));
            }
            tnlm_core::Message::Delivery(d) => {
                let note = packet.has_expert("tnlm.expert.undelivered");
                assert_eq!(note, d.status != tnlm_core::message::DeliveryStatus::Delivered, "{d:?}");
            }
            _ => assert!(packet.experts.is_empty(), "{frame:?}: {:?}", packet.experts),
        }
    }
}

#[test]
fn heuristic_claims_tnlm_on_other_ports_only() {
    let ws = Wireshark::new();
    let (stream, infos) = all_samples_stream();
    let opts = [("server_port", Value::Integer(5555))];
    let packets = ws.stream(&split(&stream, &[40, 3, 500]), &opts);
    assert!(packets.iter().all(|p| p.handled));
    let roots: Vec<String> = packets.iter().flat_map(Packet::roots).collect();
    assert_eq!(roots.len(), infos.len());
    let packets = ws.stream(&[(true, b"SSH-2.0-OpenSSH_9.2\r\n".to_vec())], &opts);
    assert!(!packets[0].handled);
    assert!(packets[0].items.is_empty());
    // A TNLM magic with another version is not claimed either.
    let mut other = encode(&Frame::new(1, TimeRequest));
    other[4] = 9;
    let packets = ws.stream(&[(false, other)], &opts);
    assert!(!packets[0].handled);
}

#[test]
fn port_range_and_max_payload_preferences_apply() {
    let ws = Wireshark::new();
    let () = ws.eval("__mock.protos.tnlm.prefs('ports', '6000,7000-7002') __mock.protos.tnlm.prefs_changed()");
    let (old, new, range): (bool, bool, bool) =
        ws.eval("local e = __mock.tables['tcp.port'].entries return e[4579] ~= nil, e[6000] ~= nil, e[7001] ~= nil");
    assert_eq!((old, new, range), (false, true, true));
    let frame = encode(&Frame::new(1, TimeResponse { time: "x".repeat(20) }));
    let packets = ws.stream(&[(true, frame.clone())], &[("server_port", Value::Integer(6000))]);
    assert_eq!(packets[0].roots().len(), 1);
    let () = ws.eval("__mock.protos.tnlm.prefs('max_payload', 10)");
    let packet = ws.stream(&[(true, frame)], &[("server_port", Value::Integer(6000))]).pop().unwrap();
    assert!(packet.has_expert("tnlm.expert.oversize"));
    let () = ws.eval("__mock.protos.tnlm.prefs('ports', '') __mock.protos.tnlm.prefs_changed()");
    let none: bool = ws.eval("return next(__mock.tables['tcp.port'].entries) == nil");
    assert!(none);
}

#[test]
fn long_and_control_text_is_tidied_in_info_but_exact_in_the_field() {
    let ws = Wireshark::new();
    let text = format!("line1\nline2\t{}", "é".repeat(40));
    let packet = ws.one(&encode(&Frame::new(4, SendRequest { to: 1, text: text.clone() })));
    assert_eq!(packet.values("tnlm.msg.text"), std::slice::from_ref(&text));
    assert_eq!(packet.info, format!("M request #4 to 1: {}", common::shown(&text)));
    assert!(packet.info.ends_with("..."));
}

/// The value of `abbrev` in each packet (empty when absent).
fn per_packet(packets: &[Packet], abbrev: &str) -> Vec<String> {
    packets.iter().map(|p| p.values(abbrev).join(",")).collect()
}

#[test]
fn requests_and_responses_link_on_every_pass_and_unanswered_ones_are_flagged() {
    use tnlm_core::message::{Ack, Forwarded, Pong, ServerPing};
    let ws = Wireshark::new();
    let fwd = Forwarded { from: 1, from_ip: [127, 0, 0, 1].into(), from_port: 1, text: "x".into() };
    // Request ids are per direction: client request #5 and server ping #5 do not mix.
    let segments = [
        (false, encode(&Frame::new(5, TimeRequest))),                        // 1
        (true, encode(&Frame::new(5, ServerPing))),                          // 2
        (false, encode(&Frame::new(5, Pong))),                               // 3: answers 2
        (true, encode(&Frame::new(5, TimeResponse { time: "now".into() }))), // 4: answers 1
        (false, encode(&Frame::new(6, TimeRequest))),                        // 5: never answered
        (true, encode(&Frame::new(9, fwd))),                                 // 6
        (false, encode(&Frame::new(9, Ack))),                                // 7: answers 6
    ];
    let first = ws.stream(&segments, &[]);
    let want_request_in = ["", "", "2", "1", "", "", "6"];
    assert_eq!(per_packet(&first, "tnlm.request_in"), want_request_in);
    assert_eq!(per_packet(&first, "tnlm.response_time")[3], "0.003000000");
    // One pass: an ask cannot know its answer yet, and is not flagged.
    assert!(first.iter().all(|p| !p.has_expert("tnlm.expert.no_response")));
    for order in ["forward", "reverse"] {
        let again = ws.stream(&segments, &[("revisit", Value::String(ws.lua.create_string(order).unwrap()))]);
        assert!(again.iter().all(|p| p.errors.is_empty()));
        assert_eq!(per_packet(&again, "tnlm.request_in"), want_request_in, "{order}");
        assert_eq!(per_packet(&again, "tnlm.response_in"), ["4", "3", "", "", "", "7", ""], "{order}");
        let flagged: Vec<bool> = again.iter().map(|p| p.has_expert("tnlm.expert.no_response")).collect();
        assert_eq!(flagged, [false, false, false, false, true, false, false], "{order}");
    }
}

#[test]
fn a_first_pass_without_a_tree_still_tracks_and_sets_the_info_column() {
    // tshark -2 without a read filter, and the GUI filling its packet list, dissect the
    // first pass without a tree: nothing is shown, but the Info column is set and the
    // second pass shows exactly what it shows after a first pass with a tree.
    use tnlm_core::message::{Ack, Forwarded};
    let ws = Wireshark::new();
    let fwd = Forwarded { from: 1, from_ip: [127, 0, 0, 1].into(), from_port: 1, text: "x".into() };
    let mut segments = vec![
        (false, encode(&Frame::new(5, TimeRequest))),
        (true, encode(&Frame::new(5, TimeResponse { time: "now".into() }))),
        (false, encode(&Frame::new(6, TimeRequest))),
        (true, encode(&Frame::new(9, fwd))),
        (false, encode(&Frame::new(9, Ack))),
    ];
    let (stream, _) = all_samples_stream();
    segments.extend(split(&stream, &[3, 7, 100]));
    let no_tree = ("tree", Value::Boolean(false));
    let with_tree = ws.stream(&segments, &[]);
    let without = ws.stream(&segments, std::slice::from_ref(&no_tree));
    for (a, b) in with_tree.iter().zip(&without) {
        assert_clean(b);
        assert!(b.items.is_empty(), "{b:#?}");
        assert_eq!(a.info, b.info);
        assert_eq!(a.pending, b.pending);
    }
    let forward = ("revisit", Value::String(ws.lua.create_string("forward").unwrap()));
    let again = ws.stream(&segments, std::slice::from_ref(&forward));
    let again_without = ws.stream(&segments, &[forward, no_tree]);
    assert!(again.iter().any(|p| !p.values("tnlm.request_in").is_empty()));
    for (a, b) in again.iter().zip(&again_without) {
        assert_clean(b);
        assert_eq!(format!("{:?}", a.items), format!("{:?}", b.items));
        assert_eq!(a.info, b.info);
    }
}

#[test]
fn a_message_is_traced_across_connections() {
    use tnlm_core::message::{Ack, Delivery, DeliveryStatus, Forwarded, Hello};
    let ws = Wireshark::new();
    let hello = |id: u32| {
        encode(&Frame::indication(Hello { client_id: id, server: "srv".into(), version: 1, max_payload: 65536 }))
    };
    let fwd = Forwarded { from: 7, from_ip: [127, 0, 0, 1].into(), from_port: 1, text: "hi".into() };
    let delivery = Delivery { to: 8, status: DeliveryStatus::Delivered, reason: "ok".into() };
    let segments = [
        (0, true, hello(7)),                                                          // 1
        (1, true, hello(8)),                                                          // 2
        (0, false, encode(&Frame::new(3, SendRequest { to: 8, text: "hi".into() }))), // 3
        (1, true, encode(&Frame::new(42, fwd))),                                      // 4
        (1, false, encode(&Frame::new(42, Ack))),                                     // 5
        (0, true, encode(&Frame::new(3, delivery))),                                  // 6
    ];
    let revisit = [("revisit", Value::String(ws.lua.create_string("reverse").unwrap()))];
    let packets = ws.streams(&segments, &revisit);
    assert_eq!(per_packet(&packets, "tnlm.conn.client_id"), ["7", "8", "7", "8", "8", "7"]);
    assert_eq!(per_packet(&packets, "tnlm.conn.server"), ["srv"; 6]);
    let key = "7.3@127.0.0.1:4579";
    assert_eq!(per_packet(&packets, "tnlm.trace.key"), ["", "", key, key, key, key]);
    for (abbrev, frame) in [
        ("tnlm.trace.request_in", "3"),
        ("tnlm.trace.indication_in", "4"),
        ("tnlm.trace.ack_in", "5"),
        ("tnlm.trace.response_in", "6"),
        ("tnlm.trace.delivery_id", "42"),
        ("tnlm.trace.time", "0.003000000"),
    ] {
        assert_eq!(per_packet(&packets, abbrev)[2..], [frame; 4], "{abbrev}");
    }
    assert_eq!(packets[3].info, "M indication #42 from 7: hi");
}

#[test]
fn garbage_and_a_mid_stream_start_resynchronise_on_the_magic() {
    let ws = Wireshark::new();
    let t = encode(&Frame::new(1, TimeRequest));
    let n = encode(&Frame::new(2, NameRequest));
    // The tail of a frame whose start was not captured, then whole frames; short and long garbage.
    for junk in [&b"xyz"[..], &b"\x00\x05tail of an earlier frame"[..]] {
        let mut segment = junk.to_vec();
        segment.extend_from_slice(&t);
        segment.extend_from_slice(&n);
        for reassemble in [true, false] {
            let p =
                ws.stream(&[(false, segment.clone())], &[("reassemble", Value::Boolean(reassemble))]).pop().unwrap();
            assert_clean(&p);
            assert_eq!(p.values("tnlm.request_id"), ["1", "2"], "{junk:?}");
            assert!(p.has_expert("tnlm.expert.bad_magic"));
            assert!(p.info.ends_with("T request #1, N request #2"), "{}", p.info);
        }
    }
    // Garbage split from the frame after it across segments.
    let mut stream = b"garbage!".to_vec();
    stream.extend_from_slice(&t);
    let packets = ws.stream(&split(&stream, &[6, 5]).into_iter().map(|(_, d)| (false, d)).collect::<Vec<_>>(), &[]);
    let ids: Vec<String> = packets.iter().flat_map(|p| p.values("tnlm.request_id")).collect();
    assert_eq!(ids, ["1"]);
}

fn hello_frame(id: u32) -> Vec<u8> {
    use tnlm_core::message::Hello;
    encode(&Frame::indication(Hello { client_id: id, server: "srv".into(), version: 1, max_payload: 65536 }))
}

fn forwarded(id: u32, from: u32, text: &str) -> Vec<u8> {
    use tnlm_core::message::Forwarded;
    encode(&Frame::new(id, Forwarded { from, from_ip: [127, 0, 0, 1].into(), from_port: 1, text: text.into() }))
}

fn delivered(id: u32, to: u32) -> Vec<u8> {
    use tnlm_core::message::{Delivery, DeliveryStatus};
    encode(&Frame::new(id, Delivery { to, status: DeliveryStatus::Delivered, reason: "ok".into() }))
}

fn send(id: u32, to: u32, text: &str) -> Vec<u8> {
    encode(&Frame::new(id, SendRequest { to, text: text.into() }))
}

/// Every pass (first with and without a tree, second forward and reverse) gives `field`
/// the same values per packet; returns them.
fn same_on_every_pass(ws: &Wireshark, segments: &[(u32, u16, bool, Vec<u8>)], field: &str) -> Vec<String> {
    let revisit = |order: &str| ("revisit", Value::String(ws.lua.create_string(order).unwrap()));
    let reverse = ws.servers(segments, &[revisit("reverse")]);
    for opts in [vec![revisit("forward")], vec![revisit("forward"), ("tree", Value::Boolean(false))]] {
        let again = ws.servers(segments, &opts);
        assert_eq!(per_packet(&again, field), per_packet(&reverse, field), "{field}");
    }
    reverse.iter().for_each(assert_clean);
    per_packet(&reverse, field)
}

#[test]
fn two_servers_with_the_same_message_keep_their_traces_apart() {
    use tnlm_core::message::Ack;
    let ws = Wireshark::new();
    // Server A (4579) and server B (4580) each have clients 1 and 2, and both client 1s
    // send "hi" to their client 2; B forwards its message first.
    let segments = [
        (0, 4579, true, hello_frame(1)),               // 1  A: client 1
        (1, 4579, true, hello_frame(2)),               // 2  A: client 2
        (2, 4580, true, hello_frame(1)),               // 3  B: client 1
        (3, 4580, true, hello_frame(2)),               // 4  B: client 2
        (0, 4579, false, send(1, 2, "hi")),            // 5  A: M request
        (2, 4580, false, send(1, 2, "hi")),            // 6  B: M request
        (3, 4580, true, forwarded(1, 1, "hi")),        // 7  B: indication
        (1, 4579, true, forwarded(1, 1, "hi")),        // 8  A: indication
        (3, 4580, false, encode(&Frame::new(1, Ack))), // 9  B: ack
        (1, 4579, false, encode(&Frame::new(1, Ack))), // 10 A: ack
        (2, 4580, true, delivered(1, 2)),              // 11 B: response
        (0, 4579, true, delivered(1, 2)),              // 12 A: response
    ];
    let (a, b) = ("1.1@127.0.0.1:4579", "1.1@127.0.0.1:4580");
    assert_eq!(same_on_every_pass(&ws, &segments, "tnlm.trace.key"), ["", "", "", "", a, b, b, a, b, a, b, a]);
    let indication = same_on_every_pass(&ws, &segments, "tnlm.trace.indication_in");
    assert_eq!(indication[4..], ["8", "7", "7", "8", "7", "8", "7", "8"]);
    let request = same_on_every_pass(&ws, &segments, "tnlm.trace.request_in");
    assert_eq!(request[4..], ["5", "6", "6", "5", "6", "5", "6", "5"]);
}

#[test]
fn same_text_messages_forwarded_in_another_order_keep_their_senders() {
    use tnlm_core::message::Ack;
    let ws = Wireshark::new();
    // Clients 1 and 2 both send "same" to client 3; the server forwards 2's first.
    let segments = [
        (0, 4579, true, hello_frame(1)),               // 1
        (1, 4579, true, hello_frame(2)),               // 2
        (2, 4579, true, hello_frame(3)),               // 3
        (0, 4579, false, send(4, 3, "same")),          // 4 from client 1
        (1, 4579, false, send(9, 3, "same")),          // 5 from client 2
        (2, 4579, true, forwarded(1, 2, "same")),      // 6 from 2
        (2, 4579, true, forwarded(2, 1, "same")),      // 7 from 1
        (2, 4579, false, encode(&Frame::new(1, Ack))), // 8 acks 6
        (2, 4579, false, encode(&Frame::new(2, Ack))), // 9 acks 7
        (1, 4579, true, delivered(9, 3)),              // 10
        (0, 4579, true, delivered(4, 3)),              // 11
    ];
    let (one, two) = ("1.4@127.0.0.1:4579", "2.9@127.0.0.1:4579");
    assert_eq!(
        same_on_every_pass(&ws, &segments, "tnlm.trace.key"),
        ["", "", "", one, two, two, one, two, one, two, one]
    );
    let indication = same_on_every_pass(&ws, &segments, "tnlm.trace.indication_in");
    assert_eq!(indication[3..], ["7", "6", "6", "7", "6", "7", "6", "7"]);
    let ack = same_on_every_pass(&ws, &segments, "tnlm.trace.ack_in");
    assert_eq!(ack[3..], ["9", "8", "8", "9", "8", "9", "8", "9"]);
}

#[test]
fn the_same_ports_used_again_are_a_new_connection() {
    let ws = Wireshark::new();
    let time = |id| encode(&Frame::new(id, TimeResponse { time: "now".into() }));
    let segments = [
        (0, 4579, true, hello_frame(1)),                       // 1
        (0, 4579, false, encode(&Frame::new(1, TimeRequest))), // 2: never answered
        (0, 4579, true, hello_frame(5)),                       // 3: same ports, new connection
        (0, 4579, false, encode(&Frame::new(1, TimeRequest))), // 4
        (0, 4579, true, time(1)),                              // 5: answers 4
    ];
    assert_eq!(same_on_every_pass(&ws, &segments, "tnlm.conn.client_id"), ["1", "1", "5", "5", "5"]);
    assert_eq!(same_on_every_pass(&ws, &segments, "tnlm.request_in"), ["", "", "", "", "4"]);
    assert_eq!(same_on_every_pass(&ws, &segments, "tnlm.response_in"), ["", "", "", "5", ""]);
}

#[test]
fn a_long_info_column_is_summarised_not_reset() {
    let ws = Wireshark::new();
    let time = |id| encode(&Frame::new(id, TimeResponse { time: "2026-11-25T12:00:00.000+00:00".into() }));
    let burst: Vec<u8> = (1..=100).flat_map(time).collect();
    let packet = ws.one(&burst);
    assert_clean(&packet);
    assert_eq!(packet.info, "T response #1 \u{2026} #100, 100 frames");
    assert_eq!(packet.roots().len(), 100);
    // Split over segments, with reassembly: the packet that ends them says the same.
    let packets = ws.stream(&split(&burst, &[1000, 4000]), &[]);
    let last = packets.iter().find(|p| p.info.contains('\u{2026}')).unwrap();
    assert!(last.info.starts_with("T response #") && last.info.ends_with(" frames"), "{}", last.info);
    // Mixed kinds name the last in full; a short list stays a list.
    let mut mixed = burst.clone();
    mixed.extend(encode(&Frame::new(7, NameRequest)));
    assert_eq!(ws.one(&mixed).info, "T response #1 \u{2026} N request #7, 101 frames");
    let few: Vec<u8> = (1..=3).flat_map(time).collect();
    assert_eq!(ws.one(&few).info.matches("T response #").count(), 3);
    // On a second pass (the GUI), the same.
    let forward = ("revisit", Value::String(ws.lua.create_string("forward").unwrap()));
    let again = ws.stream(&[(true, burst)], &[forward]);
    assert_eq!(again[0].info, "T response #1 \u{2026} #100, 100 frames");
}

#[test]
fn resync_takes_only_a_plausible_header() {
    let ws = Wireshark::new();
    // A capture that starts inside an M request whose text holds "TNLM" (and even the
    // version byte): only the next real frame decodes.
    let m = send(1, 2, "look: TNLM\x01T\x01 is not a header");
    let at = m.len() - 26;
    let mut segment = m[at..].to_vec();
    segment.extend(encode(&Frame::new(2, TimeRequest)));
    for reassemble in [true, false] {
        let p = ws.stream(&[(false, segment.clone())], &[("reassemble", Value::Boolean(reassemble))]).pop().unwrap();
        assert_clean(&p);
        assert_eq!(p.values("tnlm.request_id"), ["2"], "{p:#?}");
        assert_eq!(p.info, "bad magic, 26 bytes, T request #2");
    }
}

#[test]
fn the_heuristic_claims_a_connection_only_at_its_start() {
    let ws = Wireshark::new();
    let opts = [("server_port", Value::Integer(5555))];
    // A hello whose first segment carries 3 bytes.
    let hello = hello_frame(4);
    let segments = [(true, hello[..3].to_vec()), (true, hello[3..].to_vec())];
    let packets = ws.stream(&segments, &opts);
    assert!(packets.iter().all(|p| p.handled), "{packets:#?}");
    assert_eq!(packets[1].values("tnlm.hello.client_id"), ["4"]);
    // A foreign connection whose second segment starts with a whole TNLM request.
    let segments = [(false, b"GET / HTTP/1.1\r\n\r\n".to_vec()), (false, encode(&Frame::new(1, TimeRequest)))];
    let packets = ws.stream(&segments, &opts);
    assert!(packets.iter().all(|p| !p.handled), "{packets:#?}");
    // ... but a server's hello later between the same ports is a new TNLM connection.
    let segments = [(false, b"GET / HTTP/1.1\r\n\r\n".to_vec()), (true, hello_frame(2))];
    let packets = ws.stream(&segments, &opts);
    assert_eq!(packets.iter().map(|p| p.handled).collect::<Vec<_>>(), [false, true]);
    // A first segment of 3 bytes that are not the magic's start is not claimed.
    let packets = ws.stream(&[(false, b"TNX".to_vec())], &opts);
    assert!(!packets[0].handled);
}

#[test]
fn without_a_tree_bad_frames_read_the_same_in_the_info_column() {
    // The fast path without a tree hands anything unusual to the full path: the Info
    // column must read the same as with a tree, frame by frame.
    let ws = Wireshark::new();
    let mut bad: Vec<Vec<u8>> = Vec::new();
    let t = encode(&Frame::new(1, TimeRequest));
    for (at, value) in [(4, 9u8), (5, b'Z'), (6, 7), (7, 1)] {
        let mut b = t.clone();
        b[at] = value;
        bad.push(b);
    }
    let mut oversize = t.clone();
    oversize[12..16].copy_from_slice(&100_000u32.to_le_bytes());
    bad.push(oversize);
    let name = encode(&Frame::new(2, NameResponse { name: "abc".into() }));
    bad.push(reframe(&name, &name[HEADER_LEN..name.len() - 1]));
    let mut padded = name[HEADER_LEN..].to_vec();
    padded.push(0);
    bad.push(reframe(&name, &padded));
    let mut utf8 = 1u64.to_le_bytes().to_vec();
    utf8.push(0xC3);
    bad.push(reframe(&name, &utf8));
    bad.push(b"garbage before a frame".iter().copied().chain(t.clone()).collect());
    let frames = samples();
    let delivery = frames.iter().find(|f| matches!(f.message, tnlm_core::Message::Delivery(_))).unwrap();
    let error = frames.iter().find(|f| matches!(f.message, tnlm_core::Message::Error(_))).unwrap();
    for (frame, at) in [(delivery, HEADER_LEN + 4), (error, HEADER_LEN)] {
        let mut b = encode(frame);
        b[at..at + 2].copy_from_slice(&999u16.to_le_bytes());
        bad.push(b);
    }
    let segments: Vec<(bool, Vec<u8>)> = bad.into_iter().map(|b| (false, b)).collect();
    let with_tree = ws.stream(&segments, &[]);
    let without = ws.stream(&segments, &[("tree", Value::Boolean(false))]);
    for (a, b) in with_tree.iter().zip(&without) {
        assert_clean(a);
        assert_clean(b);
        assert_eq!(a.info, b.info);
    }
    assert!(
        with_tree.iter().any(|p| p.info.contains("Unknown (999)")),
        "{:?}",
        with_tree.iter().map(|p| &p.info).collect::<Vec<_>>()
    );
}
