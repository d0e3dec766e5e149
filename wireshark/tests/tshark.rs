//! Layer 2: the committed `wireshark/tnlm.lua` in the real tshark.
//!
//! - registration: `tshark -G fields -X lua_script:…` lists every field, stderr is clean;
//! - a deterministic capture built with `text2pcap` from encoder bytes (every message kind
//!   one per segment, coalesced, split in odd sizes, then a bad-magic segment) dissects to
//!   exactly the expected PDUs, Info texts and payload values;
//! - live captures on loopback (dumpcap) of an in-process server and raw clients: every type
//!   present, a burst of N requests shows exactly N time responses, the list shows each
//!   client, messages show from/to/text, errors are flagged but nothing is a Lua error;
//! - the committed sample captures in `examples/captures/` show what their names say.
//!
//! Without tshark, text2pcap or capture rights a test prints `SKIP: …` and passes, unless
//! `TNLM_REQUIRE=tshark` (or `all`, as in CI), where it fails.
#![allow(clippy::unwrap_used)]

mod common;
mod pcap;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{encode, expected_info, expected_payload_values, samples};
use serde_json::Value as Json;
use support::{column, fields, tshark, CaptureError, Scenario};
use tnlm_core::message::TimeRequest;
use tnlm_core::requirement::Need;
use tnlm_core::{Class, Frame};

/// Returns true (after printing why) when the test should stop here and pass;
/// fails instead where tshark is required (`TNLM_REQUIRE=tshark` or `all`).
fn skip(reason: &str) -> bool {
    Need::Tshark.missing("a tshark test", reason);
    true
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

fn tshark_missing() -> bool {
    !have("tshark") && skip("tshark is not installed (apt-get install tshark)")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tnlm-tshark-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn registration_lists_every_field_without_errors() {
    if tshark_missing() {
        return;
    }
    let (version, _) = tshark(&["--version"]).unwrap();
    eprintln!("{}", version.lines().next().unwrap_or(""));
    let lua = support::lua_arg();
    let (out, problems) = tshark(&["-G", "fields", "-X", &lua]).unwrap();
    assert!(problems.is_empty(), "tshark stderr: {problems:?}");
    let registered: BTreeSet<&str> =
        out.lines().filter_map(|l| l.split('\t').nth(2)).filter(|a| a.starts_with("tnlm")).collect();
    assert!(
        registered.contains("tnlm"),
        "the tnlm protocol is not registered; as root on Wireshark 4.4+, set run_user_scripts_when_superuser = true \
         in the global init.lua (see wireshark/README.md)"
    );
    for field in tnlm_wireshark::fields() {
        assert!(registered.contains(field.abbrev.as_str()), "{} is not registered", field.abbrev);
    }
    for expert in
        ["bad_magic", "unsupported_version", "oversize", "malformed_payload", "unknown_type", "unexpected_frame"]
    {
        assert!(registered.contains(format!("tnlm.expert.{expert}").as_str()), "expert {expert} missing");
    }
}

/// One segment for text2pcap: `true` = from the server (port 4579) to the client.
type Segment = (bool, Vec<u8>);

/// Writes a text2pcap hex dump (direction line, then offset lines) and converts it.
fn text2pcap(segments: &[Segment], dir: &Path) -> PathBuf {
    let mut dump = String::new();
    for (from_server, data) in segments {
        // text2pcap -T CLIENT,SERVER: `I` goes client -> server, `O` server -> client.
        dump.push_str(if *from_server { "O\n" } else { "I\n" });
        for (n, line) in data.chunks(16).enumerate() {
            let _ = write!(dump, "{:06x}", n * 16);
            for byte in line {
                let _ = write!(dump, " {byte:02x}");
            }
            dump.push('\n');
        }
    }
    let txt = dir.join("stream.txt");
    let pcap = dir.join("stream.pcapng");
    std::fs::write(&txt, dump).unwrap();
    let out = Command::new("text2pcap")
        .args(["-q", "-D", "-T", "50000,4579", "-F", "pcapng"])
        .arg(&txt)
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(out.status.success(), "text2pcap failed: {}", String::from_utf8_lossy(&out.stderr));
    pcap
}

fn split(stream: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let (mut at, mut n) = (0, 0);
    while at < stream.len() {
        let size = sizes[n % sizes.len()].min(stream.len() - at);
        out.push(stream[at..at + size].to_vec());
        at += size;
        n += 1;
    }
    out
}

/// Every `tnlm.*` string value in a tshark JSON tree, grouped by field, in document order.
fn json_values(json: &Json, out: &mut BTreeMap<String, Vec<String>>) {
    match json {
        Json::Object(map) => {
            for (key, value) in map {
                match value {
                    Json::String(s) if key.starts_with("tnlm.") => out.entry(key.clone()).or_default().push(s.clone()),
                    Json::Array(items) if key.starts_with("tnlm.") && items.iter().all(Json::is_string) => {
                        for item in items {
                            out.entry(key.clone()).or_default().push(item.as_str().unwrap_or("").to_string());
                        }
                    }
                    other => json_values(other, out),
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|i| json_values(i, out)),
        _ => {}
    }
}

fn tshark_json(file: &Path) -> Vec<Json> {
    let lua = support::lua_arg();
    let file = file.display().to_string();
    let (out, problems) = tshark(&["-X", &lua, "-r", &file, "-T", "json", "--no-duplicate-keys"]).unwrap();
    assert!(problems.is_empty(), "tshark stderr: {problems:?}");
    serde_json::from_str::<Vec<Json>>(&out).unwrap()
}

#[test]
fn text2pcap_stream_dissects_exactly() {
    if tshark_missing() || (!have("text2pcap") && skip("text2pcap is not installed (apt-get install tshark)")) {
        return;
    }
    let dir = temp_dir("text2pcap");
    let frames = samples();
    let from_server = |f: &Frame| f.message.kind().1 != Class::Request;
    let mut segments: Vec<Segment> = Vec::new();
    let mut expected: Vec<&Frame> = Vec::new();
    // A: one frame per segment.
    for frame in &frames {
        segments.push((from_server(frame), encode(frame)));
        expected.push(frame);
    }
    // B: all server frames coalesced into one segment, then all client frames into another.
    for side in [true, false] {
        let side_frames: Vec<&Frame> = frames.iter().filter(|f| from_server(f) == side).collect();
        segments.push((side, side_frames.iter().flat_map(|f| encode(f)).collect()));
        expected.extend(side_frames);
    }
    // C: the server frames again, split into odd segment sizes.
    let server_frames: Vec<&Frame> = frames.iter().filter(|f| from_server(f)).collect();
    let stream: Vec<u8> = server_frames.iter().flat_map(|f| encode(f)).collect();
    for piece in split(&stream, &[1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144]) {
        segments.push((true, piece));
    }
    expected.extend(server_frames);
    // D: a client that does not speak TNLM, then a good frame in its own segment.
    segments.push((false, b"GET / HTTP/1.1\r\nHost: tnlm\r\n\r\n".to_vec()));
    let last = Frame::new(4242, TimeRequest);
    segments.push((false, encode(&last)));
    let pcap = text2pcap(&segments, &dir);
    // ci/wireshark-4.4.sh replays this capture in another Wireshark version.
    if let Some(keep) = std::env::var_os("TNLM_KEEP_PCAP_DIR") {
        std::fs::copy(&pcap, Path::new(&keep).join("samples.pcapng")).unwrap();
    }

    let names = ["tnlm.request_id", "tnlm.type", "tnlm.class", "_ws.col.Info", "_ws.malformed", "_ws.lua.error"];
    let rows = fields(&pcap, "tnlm", &names).unwrap();
    let mut expected_ids: Vec<String> = expected.iter().map(|f| f.request_id.to_string()).collect();
    expected_ids.push(last.request_id.to_string());
    assert_eq!(column(&rows, 0), expected_ids, "request ids of all PDUs, in order");
    let types: Vec<String> = expected.iter().map(|f| format!("'{}'", f.message.kind().0.letter())).collect();
    assert_eq!(column(&rows, 1)[..types.len()], types[..]);
    let classes: Vec<String> = expected.iter().map(|f| (f.message.kind().1 as u8).to_string()).collect();
    assert_eq!(column(&rows, 2)[..classes.len()], classes[..]);
    // Info: each packet's PDUs joined with ", ", in order.
    let mut infos: Vec<String> = expected.iter().map(|f| expected_info(f)).collect();
    infos.push(expected_info(&last));
    let shown: Vec<String> = column(&rows, 3).iter().filter(|i| !i.starts_with("bad magic")).cloned().collect();
    assert_eq!(shown.join(", "), infos.join(", "));
    assert!(column(&rows, 5).is_empty(), "Lua errors: {:?}", column(&rows, 5));
    // Only the HTTP segment is malformed (bad magic), with expert info.
    let malformed = fields(&pcap, "_ws.malformed", &["tnlm.magic", "_ws.expert.message"]).unwrap();
    assert_eq!(malformed.len(), 1, "{malformed:?}");
    assert_eq!(malformed[0][0], ["GET "]);
    assert!(malformed[0][1].iter().any(|m| m.contains("Bad magic")), "{malformed:?}");

    // Payload values in the one-frame-per-segment part, via JSON (--no-duplicate-keys).
    let packets = tshark_json(&pcap);
    for (frame, packet) in frames.iter().zip(&packets) {
        let mut got = BTreeMap::new();
        json_values(packet, &mut got);
        let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, value) in expected_payload_values(frame) {
            want.entry(key).or_default().push(value);
        }
        for (key, values) in want {
            if values.iter().any(|v| v.chars().any(char::is_control)) {
                continue; // tshark escapes control characters in its output
            }
            assert_eq!(got.get(&key), Some(&values), "{key} of {frame:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Captures `scenario` live; `None` (after a skip message) when capturing is not possible here.
fn live(scenario: &Scenario, dir: &Path) -> Option<(PathBuf, support::Facts)> {
    if tshark_missing() {
        return None;
    }
    match support::capture(scenario) {
        Ok((pcap, facts)) => {
            let file = dir.join(format!("{}.pcapng", scenario.name));
            std::fs::write(&file, pcap).unwrap();
            Some((file, facts))
        }
        Err(CaptureError::Unavailable(why)) => {
            skip(&format!("cannot capture on loopback: {why}"));
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// [`fields`] for a live capture. Its server listened on a port the OS picked,
/// so the dissector finds the streams by its heuristic; TCP tries a dissector
/// registered for either port before any heuristic, and a client's port can
/// be one (44322 is Performance Co-Pilot's), hence heuristics first.
fn live_fields(file: &Path, filter: &str, names: &[&str]) -> support::Result<Vec<Vec<Vec<String>>>> {
    support::fields_with(&["-o", "tcp.try_heuristic_first:TRUE"], file, filter, names)
}

/// Per PDU: (type, class), from a fields run whose first two columns are tnlm.type, tnlm.class.
fn kinds(rows: &[Vec<Vec<String>>]) -> Vec<(String, String)> {
    rows.iter().flat_map(|r| r[0].iter().cloned().zip(r[1].iter().cloned()).collect::<Vec<_>>()).collect()
}

fn count(kinds: &[(String, String)], letter: char, class: Class) -> usize {
    let (t, c) = (format!("'{letter}'"), (class as u8).to_string());
    kinds.iter().filter(|(kt, kc)| *kt == t && *kc == c).count()
}

#[test]
fn live_capture_of_a_full_session() {
    let dir = temp_dir("live");
    let burst = 100;
    let Some((file, facts)) = live(&Scenario::full(burst), &dir) else { return };
    let names = [
        "tnlm.type",
        "tnlm.class",
        "tnlm.client.id",
        "tnlm.client.port",
        "tnlm.msg.from",
        "tnlm.msg.to",
        "tnlm.msg.text",
        "tnlm.status",
        "tnlm.error.code",
        "tnlm.msg.from_ip",
        "tnlm.msg.from_port",
        "_ws.lua.error",
        "tnlm.name",
        "tnlm.time",
    ];
    let rows = live_fields(&file, "tnlm", &names).unwrap();
    let kinds = kinds(&rows);
    let letters: BTreeSet<String> = kinds.iter().map(|(t, _)| t.clone()).collect();
    for letter in ["'T'", "'N'", "'L'", "'M'", "'H'", "'S'", "'E'"] {
        assert!(letters.contains(letter), "no {letter} frame in {letters:?}");
    }
    // One time request, the burst, one after the malformed frame.
    assert_eq!(count(&kinds, 'T', Class::Response), burst + 2);
    assert_eq!(count(&kinds, 'T', Class::Request), burst + 2);
    assert_eq!(count(&kinds, 'H', Class::Indication), 4, "three clients and the stranger");
    assert_eq!(count(&kinds, 'S', Class::Indication), 3);
    let (ids, ports): (Vec<String>, Vec<String>) =
        facts.clients.iter().map(|(id, port)| (id.to_string(), port.to_string())).unzip();
    assert_eq!(column(&rows, 2), ids, "the list shows each client");
    assert_eq!(column(&rows, 3), ports);
    let (c1, c2) = (&ids[0], &ids[1]);
    assert_eq!(column(&rows, 4), std::slice::from_ref(c1), "forwarded from client 1");
    assert_eq!(column(&rows, 5), [c2.clone(), c2.clone(), "999".into(), "999".into(), "1".into()]);
    let texts = column(&rows, 6);
    assert_eq!(texts.iter().filter(|t| *t == support::HELLO_TEXT).count(), 2, "{texts:?}");
    assert_eq!(column(&rows, 7), ["0", "1"], "delivered, then no_such_client");
    assert_eq!(column(&rows, 8), ["1", "4"], "bad_magic to the stranger, malformed_payload to client 1");
    assert_eq!(column(&rows, 9), ["127.0.0.1"]);
    assert_eq!(column(&rows, 10), [ports[0].clone()]);
    assert!(column(&rows, 11).is_empty(), "Lua errors: {:?}", column(&rows, 11));
    assert_eq!(column(&rows, 12), [support::SERVER_NAME]);
    assert_eq!(column(&rows, 13).len(), burst + 2);
    // Malformed marks only where the frames were bad, each with our expert info.
    let bad = live_fields(&file, "_ws.malformed", &["tnlm.magic", "_ws.expert.message"]).unwrap();
    assert_eq!(bad.len(), 2, "{bad:?}");
    let messages: Vec<String> = column(&bad, 1);
    assert!(messages.iter().any(|m| m.contains("Bad magic")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("Malformed SendRequest")), "{messages:?}");
    // JSON with --no-duplicate-keys keeps every coalesced PDU.
    let mut values = BTreeMap::new();
    for packet in tshark_json(&file) {
        json_values(&packet, &mut values);
    }
    assert_eq!(values.get("tnlm.type").map(Vec::len), Some(kinds.len()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn live_capture_of_a_10000_request_burst() {
    let dir = temp_dir("burst");
    let burst = 10_000;
    let scenario = Scenario { name: "burst-10000", clients: 1, burst, ..Scenario::default() };
    let Some((file, _)) = live(&scenario, &dir) else { return };
    let rows = live_fields(&file, "tnlm", &["tnlm.type", "tnlm.class", "_ws.lua.error", "_ws.malformed"]).unwrap();
    let kinds = kinds(&rows);
    assert_eq!(count(&kinds, 'T', Class::Response), burst);
    assert_eq!(count(&kinds, 'T', Class::Request), burst);
    assert!(column(&rows, 2).is_empty() && column(&rows, 3).is_empty());
    eprintln!("{burst} requests in {} packets with TNLM PDUs", rows.len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn example_captures_dissect_as_described() {
    if tshark_missing() {
        return;
    }
    let captures = workspace().join("examples").join("captures");
    for scenario in Scenario::all() {
        let file = captures.join(format!("{}.pcapng", scenario.name));
        assert!(file.exists(), "{} is missing: run ci/captures.sh", file.display());
        let names = [
            "tnlm.type",
            "tnlm.class",
            "tnlm.client.id",
            "tnlm.msg.text",
            "tnlm.status",
            "tnlm.error.code",
            "tnlm.name",
            "_ws.lua.error",
            "tnlm.msg.to",
        ];
        let rows = fields(&file, "tnlm", &names).unwrap();
        let kinds = kinds(&rows);
        let what = scenario.name;
        assert!(column(&rows, 7).is_empty(), "{what}: Lua errors");
        assert_eq!(count(&kinds, 'H', Class::Indication), scenario.clients + usize::from(scenario.malformed), "{what}");
        assert_eq!(count(&kinds, 'S', Class::Indication), scenario.clients, "{what}");
        let malformed = fields(&file, "_ws.malformed", &["frame.number"]).unwrap();
        assert_eq!(malformed.is_empty(), !scenario.malformed, "{what}: malformed marks {malformed:?}");
        match what {
            "time" => assert_eq!((count(&kinds, 'T', Class::Request), count(&kinds, 'T', Class::Response)), (1, 1)),
            "name" => assert_eq!(column(&rows, 6), [support::SERVER_NAME]),
            "list" => {
                assert_eq!(column(&rows, 2), ["1", "2", "3"]);
                let lua = support::lua_arg();
                let file = file.display().to_string();
                let (verbose, _) = tshark(&["-X", &lua, "-r", &file, "-V", "-Y", "tnlm.clients"]).unwrap();
                for id in 1..=3 {
                    assert!(verbose.contains(&format!("Client {id}: 127.0.0.1 port ")), "{verbose}");
                }
            }
            "message" => {
                assert_eq!(column(&rows, 3), [support::HELLO_TEXT, support::HELLO_TEXT]);
                assert_eq!(column(&rows, 4), ["0"]);
            }
            "message-unknown-id" => {
                assert_eq!(column(&rows, 4), ["1"]);
                assert_eq!(column(&rows, 8), ["999", "999"]);
            }
            "burst-100" => assert_eq!(count(&kinds, 'T', Class::Response), 100),
            "malformed" => assert_eq!(column(&rows, 5), ["1", "4"]),
            _ => {}
        }
    }
}

/// Per frame: the frames its PDUs link to, and the response times, as an independent
/// reading of the capture finds them (only header fields and ports, core's exchange table).
#[derive(Debug, Default, PartialEq)]
struct Links {
    request_in: BTreeMap<u64, Vec<u64>>,
    response_in: BTreeMap<u64, Vec<u64>>,
    times: BTreeMap<u64, Vec<f64>>,
    unanswered: BTreeSet<u64>,
}

fn parse_u64(s: &str) -> u64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

fn type_of(shown: &str) -> Option<tnlm_core::TypeCode> {
    let letter = shown.trim_matches('\'');
    letter.bytes().next().and_then(tnlm_core::TypeCode::from_byte).filter(|_| letter.len() == 1)
}

/// An exchange waiting for its answer: (tcp.stream, opened by the server, request id).
type OpenKey = (String, bool, String);
/// The ask: frame number, time, type code and class.
type Opened = (u64, f64, tnlm_core::TypeCode, Class);

/// The request/response pairs of a capture, worked out from the header fields alone.
fn known_pairs(file: &Path) -> Links {
    use tnlm_core::schema::{ERROR_ANSWERS, EXCHANGES};
    let names = ["frame.number", "tcp.stream", "tcp.srcport", "frame.time_relative", "tnlm.type", "tnlm.class"];
    let rows = support::fields(file, "tnlm", &[&names[..], &["tnlm.request_id", "tcp.dstport"]].concat()).unwrap();
    // The server's port: where indications come from and requests go to.
    let mut servers: BTreeSet<&str> = BTreeSet::new();
    for r in &rows {
        if r[5].iter().any(|c| c == "2") {
            servers.insert(r[2][0].as_str());
        }
        if r[5].iter().any(|c| c == "0") {
            servers.insert(r[7][0].as_str());
        }
    }
    let class_of = |c: &str| Class::from_byte(c.parse().unwrap()).unwrap();
    let mut open: BTreeMap<OpenKey, Opened> = BTreeMap::new();
    let mut links = Links::default();
    for r in &rows {
        let frame = parse_u64(&r[0][0]);
        let time: f64 = r[3][0].parse().unwrap();
        let from_server = servers.contains(r[2][0].as_str());
        for ((t, c), id) in r[4].iter().zip(&r[5]).zip(&r[6]) {
            let (Some(t), class) = (type_of(t), class_of(c)) else { continue };
            match class {
                Class::Request => {
                    open.insert((r[1][0].clone(), false, id.clone()), (frame, time, t, class));
                }
                Class::Indication if id != "0" => {
                    open.insert((r[1][0].clone(), true, id.clone()), (frame, time, t, class));
                }
                Class::Response => {
                    let key = (r[1][0].clone(), !from_server, id.clone());
                    let Some(&(ask, ask_time, at, ac)) = open.get(&key) else { continue };
                    let answers = EXCHANGES.iter().any(|e| e.ask == (at, ac) && e.answer == (t, class))
                        || ((t, class) == ERROR_ANSWERS && ac == Class::Request);
                    if answers {
                        open.remove(&key);
                        links.request_in.entry(frame).or_default().push(ask);
                        links.response_in.entry(ask).or_default().push(frame);
                        links.times.entry(frame).or_default().push(time - ask_time);
                    }
                }
                Class::Indication => {}
            }
        }
    }
    links.unanswered = open.values().map(|v| v.0).collect();
    links
}

/// The links the dissector shows, in one pass (`extra` empty) or two (`-2`).
fn shown_links(file: &Path, extra: &[&str]) -> Links {
    let names = ["frame.number", "tnlm.request_in", "tnlm.response_in", "tnlm.response_time", "_ws.lua.error"];
    let rows = support::fields_with(extra, file, "tnlm", &names).unwrap();
    let mut links = Links::default();
    for r in &rows {
        assert!(r[4].is_empty(), "Lua error: {:?}", r[4]);
        let frame = parse_u64(&r[0][0]);
        if !r[1].is_empty() {
            links.request_in.insert(frame, r[1].iter().map(|s| parse_u64(s)).collect());
        }
        if !r[2].is_empty() {
            links.response_in.insert(frame, r[2].iter().map(|s| parse_u64(s)).collect());
        }
        if !r[3].is_empty() {
            links.times.insert(frame, r[3].iter().map(|s| s.parse().unwrap()).collect());
        }
    }
    let flagged = support::fields_with(extra, file, "tnlm.expert.no_response", &["frame.number"]).unwrap();
    links.unanswered = flagged.iter().map(|r| parse_u64(&r[0][0])).collect();
    links
}

fn assert_links(file: &Path, want: &Links, extra: &[&str]) {
    let got = shown_links(file, extra);
    let what = format!("{} {extra:?}", file.display());
    assert_eq!(got.request_in, want.request_in, "{what}: Request in");
    for (frame, times) in &want.times {
        let shown = got.times.get(frame).unwrap_or_else(|| panic!("{what}: no response time in frame {frame}"));
        assert_eq!(shown.len(), times.len(), "{what}: frame {frame}");
        for (a, b) in shown.iter().zip(times) {
            assert!((a - b).abs() < 2e-9, "{what}: frame {frame}: response time {a} s, capture says {b} s");
        }
    }
    assert_eq!(got.times.len(), want.times.len(), "{what}: response times");
    if extra.contains(&"-2") {
        // Two passes: the requests know their answers, and unanswered ones are flagged.
        assert_eq!(got.response_in, want.response_in, "{what}: Response in");
        assert_eq!(got.unanswered, want.unanswered, "{what}: unanswered");
    } else {
        // One pass: a request cannot know what comes later; nothing is flagged on a guess.
        assert!(got.unanswered.is_empty(), "{what}: flagged in one pass: {:?}", got.unanswered);
    }
}

fn sample_captures() -> Vec<PathBuf> {
    let dir = workspace().join("examples").join("captures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcapng"))
        .collect();
    files.sort();
    files
}

#[test]
fn sample_captures_link_requests_and_responses_in_one_and_two_passes() {
    if tshark_missing() {
        return;
    }
    let mut pairs = 0;
    for file in sample_captures() {
        let want = known_pairs(&file);
        pairs += want.times.values().map(Vec::len).sum::<usize>();
        assert_links(&file, &want, &[]);
        assert_links(&file, &want, &["-2"]);
    }
    assert!(pairs >= 110, "only {pairs} request/response pairs in the sample captures");
}

#[test]
fn a_message_is_traced_across_connections_in_the_sample_capture() {
    if tshark_missing() {
        return;
    }
    let file = workspace().join("examples").join("captures").join("message.pcapng");
    let names = [
        "frame.number",
        "tcp.stream",
        "tnlm.conn.client_id",
        "tnlm.conn.server",
        "tnlm.trace.key",
        "tnlm.trace.request_in",
        "tnlm.trace.indication_in",
        "tnlm.trace.ack_in",
        "tnlm.trace.response_in",
        "frame.time_relative",
        "_ws.col.Info",
        "tcp.dstport",
    ];
    let mut key = String::new();
    for extra in [&[][..], &["-2"]] {
        let rows = support::fields_with(extra, &file, "tnlm.trace.key", &names).unwrap();
        let at =
            |letter: &str| rows.iter().find(|r| r[10][0].starts_with(letter)).unwrap_or_else(|| panic!("{letter}"));
        let (request, indication, ack, response) =
            (at("M request"), at("M indication"), at("A response"), at("M response"));
        assert_eq!(rows.len(), 4, "{extra:?}: {rows:?}");
        let frames: Vec<&String> = [request, indication, ack, response].iter().map(|r| &r[0][0]).collect();
        // The key: the sender's id, its request id and the server the request went to.
        key = format!("1.1@127.0.0.1:{}", request[11][0]);
        for r in [request, response] {
            assert_eq!(r[2], ["1"], "the sender is client 1");
        }
        for r in [indication, ack] {
            assert_eq!(r[2], ["2"], "the target is client 2");
            assert_ne!(r[1], request[1], "another connection");
        }
        for r in &rows {
            assert_eq!(r[3], [support::SERVER_NAME]);
            assert_eq!(r[4], [key.clone()], "sender 1, request #1, at the server");
            // Every frame links the others; in one pass only those already seen.
            let upto = if extra.is_empty() { frames.iter().position(|f| **f == r[0][0]).unwrap() } else { 3 };
            for (col, frame) in (5..=8).zip(&frames).take(upto + 1) {
                assert_eq!(r[col], [frame.to_string()], "{extra:?} field {} in frame {}", names[col], r[0][0]);
            }
        }
        assert!(indication[10][0].starts_with("M indication #1 from 1: "), "{}", indication[10][0]);
        let filtered =
            support::fields_with(extra, &file, &format!("tnlm.trace.key == \"{key}\""), &["frame.number"]).unwrap();
        assert_eq!(filtered.len(), 4);
    }
    // The end-to-end time is the M response's time after the M request.
    let lua = support::lua_arg();
    let (verbose, _) =
        tshark(&["-2", "-X", &lua, "-r", &file.display().to_string(), "-V", "-Y", "tnlm.type == 'A'"]).unwrap();
    for line in [
        format!("[Message trace: {key}]"),
        format!("[Trace key: {key}]"),
        "[Delivery ID: 1]".to_string(),
        "[Connection's client ID: 2]".to_string(),
    ] {
        assert!(verbose.contains(&line), "no {line:?} in\n{verbose}");
    }
}

#[test]
fn statistics_count_pdus_codes_and_response_times() {
    if tshark_missing() {
        return;
    }
    let lua = support::lua_arg();
    let captures = workspace().join("examples").join("captures");
    for extra in [&[][..], &["-2"]] {
        let stat = |name: &str| {
            let file = captures.join(name).display().to_string();
            let mut args = extra.to_vec();
            args.extend(["-q", "-X", &lua, "-z", "tnlm,stat", "-r", &file]);
            let (out, problems) = tshark(&args).unwrap();
            assert!(problems.is_empty(), "{problems:?}");
            out
        };
        let row = |out: &str, label: &str| -> Vec<String> {
            let line = out.lines().find(|l| l.trim_start().starts_with(label));
            let line = line.unwrap_or_else(|| panic!("no {label:?} row in\n{out}"));
            line.trim_start()[label.len()..].split_whitespace().map(str::to_string).collect()
        };
        let burst = stat("burst-100.pcapng");
        assert!(burst.contains("TNLM statistics"), "{burst}");
        assert_eq!(row(&burst, "T request"), ["100"]);
        assert_eq!(row(&burst, "T response"), ["100"]);
        assert_eq!(row(&burst, "H indication"), ["1"]);
        let times = burst.lines().filter(|l| l.trim_start().starts_with("T request")).nth(1).unwrap();
        let cols: Vec<&str> = times.split_whitespace().collect();
        assert_eq!((cols[2], cols[6]), ("100", "0"), "answered, unanswered: {times}");
        let (min, avg, max): (f64, f64, f64) =
            (cols[3].parse().unwrap(), cols[4].parse().unwrap(), cols[5].parse().unwrap());
        assert!(min <= avg && avg <= max && max < 1000.0, "{times}");
        let message = stat("message-unknown-id.pcapng");
        assert_eq!(row(&message, "no_such_client"), ["1"]);
        let malformed = stat("malformed.pcapng");
        assert_eq!(row(&malformed, "bad_magic"), ["1"]);
        assert_eq!(row(&malformed, "malformed_payload"), ["1"]);
    }
}

/// Segments of one connection whose capture starts in the middle of a frame in both
/// directions: T request/response #1 are cut, #2 and N #3 are whole.
fn mid_stream_segments() -> Vec<Segment> {
    use tnlm_core::message::{NameRequest, NameResponse, TimeResponse};
    let time = |id| encode(&Frame::new(id, TimeResponse { time: "2026-11-25T12:00:00.000+00:00".into() }));
    let t1 = encode(&Frame::new(1, TimeRequest));
    let mut client = t1[t1.len() - 10..].to_vec();
    client.extend(encode(&Frame::new(2, TimeRequest)));
    let r1 = time(1);
    let mut server = r1[r1.len() - 7..].to_vec();
    server.extend(time(2));
    vec![
        (false, client),
        (true, server),
        (false, encode(&Frame::new(3, NameRequest))),
        (true, encode(&Frame::new(3, NameResponse { name: "capture".into() }))),
    ]
}

#[test]
fn a_capture_that_starts_mid_stream_resynchronises() {
    if tshark_missing() || (!have("text2pcap") && skip("text2pcap is not installed (apt-get install tshark)")) {
        return;
    }
    let dir = temp_dir("mid-stream");
    let pcap = text2pcap(&mid_stream_segments(), &dir);
    let committed = workspace().join("examples").join("captures").join("mid-stream.pcapng");
    if std::env::var_os("TNLM_BLESS").is_some() {
        std::fs::copy(&pcap, &committed).unwrap();
    }
    for file in [&pcap, &committed] {
        let names = ["tnlm.request_id", "tnlm.request_in", "_ws.col.Info", "_ws.lua.error"];
        let rows = fields(file, "tnlm", &names).unwrap();
        assert_eq!(column(&rows, 0), ["2", "2", "3", "3"], "{}: the whole frames decode", file.display());
        assert_eq!(column(&rows, 1).len(), 2, "#2 and #3 are linked");
        let infos = column(&rows, 2);
        assert!(infos[0].starts_with("bad magic, 10 bytes skipped, T request #2"), "{infos:?}");
        assert!(infos[1].starts_with("bad magic, 7 bytes skipped, T response #2"), "{infos:?}");
        assert!(column(&rows, 3).is_empty());
        assert_links(file, &known_pairs(file), &["-2"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn coloring_rules_are_valid_filters_that_match_what_they_name() {
    if tshark_missing() {
        return;
    }
    let captures = workspace().join("examples").join("captures");
    let matches = |file: &str, filter: &str| {
        let rows = support::fields_with(&["-2"], &captures.join(file), filter, &["frame.number"]).unwrap();
        rows.len()
    };
    let rules = tnlm_wireshark::colorfilters();
    let filter = |name: &str| {
        let line = rules.lines().find(|l| l.starts_with(&format!("@{name}@"))).unwrap();
        line.split('@').nth(2).unwrap().to_string()
    };
    assert_eq!(matches("malformed.pcapng", &filter("TNLM error")), 2);
    assert_eq!(matches("message-unknown-id.pcapng", &filter("TNLM failed delivery")), 1);
    assert_eq!(matches("message.pcapng", &filter("TNLM failed delivery")), 0);
    assert_eq!(matches("message.pcapng", &filter("TNLM indication")), 5, "2 hellos, the message, 2 shutdowns");
    assert_eq!(matches("message.pcapng", &filter("TNLM unanswered")), 0);
}

/// What the raw bytes of a capture say, read without the dissector: tshark with TNLM
/// disabled gives each TCP segment's payload, which is reassembled per connection and
/// direction here, split into frames by their headers, and paired by core's exchange
/// table. Frames are credited to the packet whose segment completes them, as Wireshark's
/// reassembly shows them.
struct RawReading {
    links: Links,
    /// Frame number -> the client id of its connection (from the connection's hello),
    /// for frames with a TNLM PDU that follow the hello.
    client_id: BTreeMap<u64, String>,
    /// The number of request/response pairs.
    pairs: usize,
}

fn raw_reading(file: &Path) -> RawReading {
    use tnlm_core::schema::{ERROR_ANSWERS, EXCHANGES};
    let lua = support::lua_arg();
    let f = file.display().to_string();
    let names = ["frame.number", "tcp.stream", "tcp.srcport", "tcp.dstport", "frame.time_relative", "tcp.payload"];
    let mut args = vec!["-X", &lua, "--disable-protocol", "tnlm", "--disable-heuristic", "tnlm_tcp", "-r", &f];
    args.extend(["-Y", "tcp.len > 0", "-T", "fields"]);
    for n in names {
        args.extend(["-e", n]);
    }
    let (out, problems) = tshark(&args).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    // Per connection and direction: bytes waiting for the rest of their frame.
    let mut buffers: BTreeMap<(String, String), Vec<u8>> = BTreeMap::new();
    // Per frame: the (connection, source port, time, type, class, id, payload) of each PDU it completes.
    type Pdu = (String, String, f64, u8, u8, u32, Vec<u8>);
    let mut pdus: Vec<(u64, Pdu)> = Vec::new();
    for line in out.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let frame = parse_u64(cols[0]);
        let time: f64 = cols[4].parse().unwrap();
        let payload: Vec<u8> =
            (0..cols[5].len() / 2).map(|i| u8::from_str_radix(&cols[5][2 * i..2 * i + 2], 16).unwrap()).collect();
        let buf = buffers.entry((cols[1].to_string(), cols[2].to_string())).or_default();
        buf.extend(payload);
        loop {
            // Resynchronise on the magic (a capture may start in the middle of a frame).
            let start = buf.windows(4).position(|w| w == b"TNLM").unwrap_or(buf.len().saturating_sub(3));
            buf.drain(..start);
            if buf.len() < tnlm_core::HEADER_LEN {
                break;
            }
            let length = u32::from_le_bytes(buf[12..16].try_into().unwrap()) as usize;
            if buf[4] != tnlm_core::VERSION || length > 65536 {
                buf.drain(..4);
                continue;
            }
            if buf.len() < tnlm_core::HEADER_LEN + length {
                break;
            }
            let id = u32::from_le_bytes(buf[8..12].try_into().unwrap());
            let body = buf[tnlm_core::HEADER_LEN..tnlm_core::HEADER_LEN + length].to_vec();
            pdus.push((frame, (cols[1].to_string(), cols[2].to_string(), time, buf[5], buf[6], id, body)));
            buf.drain(..tnlm_core::HEADER_LEN + length);
        }
    }
    // The server's port per connection: where indications come from and requests go to.
    let mut server: BTreeMap<String, String> = BTreeMap::new();
    let ports: BTreeMap<(String, String), String> = out
        .lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .map(|c| ((c[1].to_string(), c[2].to_string()), c[3].to_string()))
        .collect();
    for (_, (conn, src, _, _, class, _, _)) in &pdus {
        match *class {
            2 => server.insert(conn.clone(), src.clone()),
            0 => server.insert(conn.clone(), ports[&(conn.clone(), src.clone())].clone()),
            _ => None,
        };
    }
    let mut reading = RawReading { links: Links::default(), client_id: BTreeMap::new(), pairs: 0 };
    let mut open: BTreeMap<OpenKey, Opened> = BTreeMap::new();
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for (frame, (conn, src, time, t, c, id, body)) in &pdus {
        let (Some(t), Some(class)) = (tnlm_core::TypeCode::from_byte(*t), Class::from_byte(*c)) else { continue };
        if (t, class) == (tnlm_core::TypeCode::Hello, Class::Indication) && body.len() >= 4 {
            ids.insert(conn.clone(), u32::from_le_bytes(body[..4].try_into().unwrap()).to_string());
        }
        if let Some(client) = ids.get(conn) {
            reading.client_id.insert(*frame, client.clone());
        }
        let from_server = server.get(conn) == Some(src);
        let id = id.to_string();
        match class {
            Class::Request => {
                open.insert((conn.clone(), false, id), (*frame, *time, t, class));
            }
            Class::Indication if id != "0" => {
                open.insert((conn.clone(), true, id), (*frame, *time, t, class));
            }
            Class::Response => {
                let key = (conn.clone(), !from_server, id);
                let Some(&(ask, ask_time, at, ac)) = open.get(&key) else { continue };
                let answers = EXCHANGES.iter().any(|e| e.ask == (at, ac) && e.answer == (t, class))
                    || ((t, class) == ERROR_ANSWERS && ac == Class::Request);
                if answers {
                    open.remove(&key);
                    reading.pairs += 1;
                    reading.links.request_in.entry(*frame).or_default().push(ask);
                    reading.links.response_in.entry(ask).or_default().push(*frame);
                    reading.links.times.entry(*frame).or_default().push(time - ask_time);
                }
            }
            Class::Indication => {}
        }
    }
    reading.links.unanswered = open.values().map(|v| v.0).collect();
    reading
}

/// The dissector's links and connection client ids in a run of tshark with `extra`
/// options and display filter `filter` ("": none; every packet is printed).
fn shown_with_filter(file: &Path, extra: &[&str], filter: &str) -> (Links, BTreeMap<u64, String>) {
    let names = ["frame.number", "tnlm.request_in", "tnlm.response_in", "tnlm.response_time", "_ws.lua.error"];
    let rows = support::fields_with(extra, file, filter, &[&names[..], &["tnlm.conn.client_id"]].concat()).unwrap();
    let mut links = Links::default();
    let mut ids = BTreeMap::new();
    for r in &rows {
        assert!(r[4].is_empty(), "Lua error: {:?}", r[4]);
        let frame = parse_u64(&r[0][0]);
        if !r[1].is_empty() {
            links.request_in.insert(frame, r[1].iter().map(|s| parse_u64(s)).collect());
        }
        if !r[2].is_empty() {
            links.response_in.insert(frame, r[2].iter().map(|s| parse_u64(s)).collect());
        }
        if !r[3].is_empty() {
            links.times.insert(frame, r[3].iter().map(|s| s.parse().unwrap()).collect());
        }
        if let Some(id) = r[5].first() {
            ids.insert(frame, id.clone());
        }
    }
    (links, ids)
}

#[test]
fn every_pass_with_or_without_a_filter_links_as_the_raw_bytes_say() {
    if tshark_missing() {
        return;
    }
    let labs = workspace().join("examples").join("captures").join("labs");
    let mut files = vec![labs.join("many-clients.pcapng"), labs.join("closing.pcapng"), labs.join("backlog.pcapng")];
    files.extend(sample_captures());
    // The hand-made hard cases, but for out-of-order segments (read in capture order,
    // the raw bytes are out of order too).
    for name in ["two-servers", "same-text-reordered", "stray-magic", "heuristic-start", "port-reuse"] {
        files.push(workspace().join("examples").join("captures").join("hard").join(format!("{name}.pcapng")));
    }
    let mut pairs = 0;
    for file in &files {
        let want = raw_reading(file);
        pairs += want.pairs;
        for (extra, filter) in [(&[][..], ""), (&["-2"][..], ""), (&["-2"][..], "tnlm"), (&[][..], "tnlm")] {
            let what = format!("{} {extra:?} -Y {filter:?}", file.display());
            let (got, ids) = shown_with_filter(file, extra, filter);
            assert_eq!(got.request_in, want.links.request_in, "{what}: Request in");
            if extra.contains(&"-2") {
                assert_eq!(got.response_in, want.links.response_in, "{what}: Response in");
            }
            for (frame, times) in &want.links.times {
                let shown = &got.times[frame];
                for (a, b) in shown.iter().zip(times) {
                    assert!((a - b).abs() < 2e-9, "{what}: frame {frame}: {a} s, the bytes say {b} s");
                }
            }
            for (frame, id) in &want.client_id {
                assert_eq!(ids.get(frame), Some(id), "{what}: frame {frame}'s connection's client id");
            }
        }
    }
    let many = raw_reading(&labs.join("many-clients.pcapng"));
    assert!(many.pairs >= 1000, "many-clients.pcapng: {} pairs", many.pairs);
    assert!(pairs >= 1100, "{pairs} pairs");
}

mod hard {
    //! Hand-made captures of the hard cases (`examples/captures/hard/`, rewritten by
    //! `TNLM_BLESS=1`): what a live capture on loopback rarely shows.
    use super::pcap::{Conn, Pcap};
    use super::*;
    use tnlm_core::message::{Ack, Delivery, DeliveryStatus, Forwarded, Hello, SendRequest, TimeResponse};

    pub fn hello(id: u32) -> Vec<u8> {
        encode(&Frame::indication(Hello { client_id: id, server: "hard".into(), version: 1, max_payload: 65536 }))
    }
    pub fn send(id: u32, to: u32, text: &str) -> Vec<u8> {
        encode(&Frame::new(id, SendRequest { to, text: text.into() }))
    }
    pub fn forwarded(id: u32, from: u32, port: u16, text: &str) -> Vec<u8> {
        encode(&Frame::new(id, Forwarded { from, from_ip: [127, 0, 0, 1].into(), from_port: port, text: text.into() }))
    }
    pub fn delivered(id: u32, to: u32) -> Vec<u8> {
        encode(&Frame::new(id, Delivery { to, status: DeliveryStatus::Delivered, reason: "acknowledged".into() }))
    }
    pub fn ack(id: u32) -> Vec<u8> {
        encode(&Frame::new(id, Ack))
    }
    pub fn time_request(id: u32) -> Vec<u8> {
        encode(&Frame::new(id, TimeRequest))
    }
    pub fn time_response(id: u32) -> Vec<u8> {
        encode(&Frame::new(id, TimeResponse { time: "2026-12-07T12:00:00.000+00:00".into() }))
    }

    /// Servers A (4579) and B (4580, found by the heuristic) with clients 1 and 2 each;
    /// both client 1s send "hi" to their client 2, and B forwards first.
    fn two_servers() -> Pcap {
        let mut p = Pcap::default();
        let mut c =
            [Conn::local(41001, 4579), Conn::local(41002, 4579), Conn::local(41003, 4580), Conn::local(41004, 4580)];
        for (i, conn) in c.iter_mut().enumerate() {
            p.open(conn);
            p.send(conn, true, &hello(i as u32 % 2 + 1));
        }
        p.send(&mut c[0], false, &send(1, 2, "hi"));
        p.send(&mut c[2], false, &send(1, 2, "hi"));
        p.send(&mut c[3], true, &forwarded(1, 1, 41003, "hi"));
        p.send(&mut c[1], true, &forwarded(1, 1, 41001, "hi"));
        p.send(&mut c[3], false, &ack(1));
        p.send(&mut c[1], false, &ack(1));
        p.send(&mut c[2], true, &delivered(1, 2));
        p.send(&mut c[0], true, &delivered(1, 2));
        p
    }

    /// One server; clients 1 and 2 send "same" to client 3, forwarded 2's first.
    fn same_text_reordered() -> Pcap {
        let mut p = Pcap::default();
        let mut c = [Conn::local(42001, 4579), Conn::local(42002, 4579), Conn::local(42003, 4579)];
        for (i, conn) in c.iter_mut().enumerate() {
            p.open(conn);
            p.send(conn, true, &hello(i as u32 + 1));
        }
        p.send(&mut c[0], false, &send(4, 3, "same"));
        p.send(&mut c[1], false, &send(9, 3, "same"));
        p.send(&mut c[2], true, &forwarded(1, 2, 42002, "same"));
        p.send(&mut c[2], true, &forwarded(2, 1, 42001, "same"));
        p.send(&mut c[2], false, &ack(1));
        p.send(&mut c[2], false, &ack(2));
        p.send(&mut c[1], true, &delivered(9, 3));
        p.send(&mut c[0], true, &delivered(4, 3));
        p
    }

    /// A capture that starts inside an M request whose text holds "TNLM" and what
    /// follows a header's magic; then a T request and its answer.
    fn stray_magic() -> Pcap {
        let mut p = Pcap::default();
        let mut c = Conn::local(43001, 4579);
        let m = send(7, 2, "see: TNLM\u{1}T\u{1} is text, not a header");
        let mut first = m[m.len() - 32..].to_vec();
        first.extend(time_request(8));
        p.send(&mut c, false, &first);
        p.send(&mut c, true, &delivered(7, 2)[5..]);
        p.send(&mut c, true, &time_response(8));
        p
    }

    /// A hello, then a T request in three segments sent out of order (the last first,
    /// then the first, then an overlapping middle), and its answer.
    fn out_of_order() -> Pcap {
        let mut p = Pcap::default();
        let mut c = Conn::local(44001, 4579);
        p.open(&mut c);
        p.send(&mut c, true, &hello(1));
        let mut two = time_request(1);
        two.extend(time_request(2));
        p.send_pieces(&mut c, false, &two, &[(20, 32), (0, 10), (6, 24)]);
        let mut answers = time_response(1);
        answers.extend(time_response(2));
        p.send(&mut c, true, &answers);
        p
    }

    /// On ports with no dissector (the heuristic's): a connection whose first segment
    /// carries 3 bytes of the hello, and a foreign one whose second segment starts with
    /// a whole TNLM header.
    fn heuristic_start() -> Pcap {
        let mut p = Pcap::default();
        let mut c = Conn::local(45001, 47000);
        p.open(&mut c);
        let h = hello(3);
        p.send(&mut c, true, &h[..3]);
        p.send(&mut c, true, &h[3..]);
        p.send(&mut c, false, &time_request(1));
        p.send(&mut c, true, &time_response(1));
        let mut f = Conn::local(45002, 47001);
        p.open(&mut f);
        p.send(&mut f, false, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        p.send(&mut f, false, &time_request(1));
        p.send(&mut f, true, b"HTTP/1.1 200 OK\r\n\r\n");
        p
    }

    /// The same ports used by two connections one after the other (client ids 1 and 5),
    /// each asking T #1.
    fn port_reuse() -> Pcap {
        let mut p = Pcap::default();
        let mut c = Conn::local(46001, 4579);
        p.open(&mut c);
        p.send(&mut c, true, &hello(1));
        p.send(&mut c, false, &time_request(1));
        p.close(&mut c);
        let mut again = c.again();
        p.open(&mut again);
        p.send(&mut again, true, &hello(5));
        p.send(&mut again, false, &time_request(1));
        p.send(&mut again, true, &time_response(1));
        p
    }

    pub fn all() -> Vec<(&'static str, Pcap)> {
        vec![
            ("two-servers", two_servers()),
            ("same-text-reordered", same_text_reordered()),
            ("stray-magic", stray_magic()),
            ("out-of-order", out_of_order()),
            ("heuristic-start", heuristic_start()),
            ("port-reuse", port_reuse()),
        ]
    }

    /// Writes every hard capture as pcapng into `dir` (and, with `TNLM_BLESS`, into
    /// `examples/captures/hard/`); returns name -> path.
    pub fn write(dir: &Path) -> BTreeMap<&'static str, PathBuf> {
        let bless = std::env::var_os("TNLM_BLESS").is_some();
        let committed = workspace().join("examples").join("captures").join("hard");
        let mut out = BTreeMap::new();
        for (name, pcap) in all() {
            let raw = dir.join(format!("{name}.pcap"));
            std::fs::write(&raw, pcap.bytes()).unwrap();
            let file = dir.join(format!("{name}.pcapng"));
            let (r, f) = (raw.display().to_string(), file.display().to_string());
            tshark(&["-r", &r, "-F", "pcapng", "-w", &f]).unwrap();
            if bless {
                std::fs::create_dir_all(&committed).unwrap();
                std::fs::copy(&file, committed.join(format!("{name}.pcapng"))).unwrap();
            }
            out.insert(name, file);
        }
        out
    }
}

/// Field values of every TNLM packet in tshark `extra` runs, one string per packet
/// (occurrences joined by commas), keyed by frame number.
fn per_frame(file: &Path, extra: &[&str], filter: &str, field: &str) -> BTreeMap<u64, String> {
    let rows = support::fields_with(extra, file, filter, &["frame.number", field, "_ws.lua.error"]).unwrap();
    rows.iter()
        .inspect(|r| assert!(r[2].is_empty(), "Lua error: {:?}", r[2]))
        .filter(|r| !r[1].is_empty())
        .map(|r| (parse_u64(&r[0][0]), r[1].join(",")))
        .collect()
}

/// Every way of running tshark that must give the same links: one pass, two passes
/// without and with a display filter.
const PASSES: [(&[&str], &str); 4] = [(&[], ""), (&[], "tnlm"), (&["-2"], ""), (&["-2"], "tnlm")];

#[test]
fn hard_captures_trace_and_link_right_in_every_pass() {
    if tshark_missing() {
        return;
    }
    let dir = temp_dir("hard");
    let files = hard::write(&dir);
    let committed = workspace().join("examples").join("captures").join("hard");
    for (name, made) in &files {
        let kept = committed.join(format!("{name}.pcapng"));
        assert!(
            kept.exists(),
            "{} is missing: run TNLM_BLESS=1 cargo test -p tnlm-wireshark --test tshark hard",
            kept.display()
        );
        let file = kept.as_path();
        let _ = made;
        let trace = |extra: &[&str], filter: &str, field: &str| per_frame(file, extra, filter, field);
        match *name {
            "two-servers" | "same-text-reordered" => {
                // frame -> (key, request frame, indication frame), from the wire.
                let rows = support::fields(
                    file,
                    "tnlm.type == 'M' || tnlm.type == 'A'",
                    &[
                        "frame.number",
                        "tcp.srcport",
                        "tcp.dstport",
                        "tnlm.class",
                        "tnlm.request_id",
                        "tnlm.msg.from",
                        "tnlm.msg.to",
                    ],
                )
                .unwrap();
                assert_eq!(rows.len(), 8, "{name}");
                for (extra, filter) in PASSES {
                    let keys = trace(extra, filter, "tnlm.trace.key");
                    let ind = trace(extra, filter, "tnlm.trace.indication_in");
                    let req = trace(extra, filter, "tnlm.trace.request_in");
                    let what = format!("{name} {extra:?} -Y {filter:?}");
                    // Requests: rows 0 and 1; indications 2 and 3 (forwarded in the other
                    // order); acks 4, 5; responses 6, 7 (the second request's first).
                    let frame = |i: usize| parse_u64(&rows[i][0][0]);
                    let server_port = |i: usize| rows[i][2][0].clone();
                    let sender =
                        |i: usize| if *name == "two-servers" { "1".to_string() } else { ["1", "2"][i].to_string() };
                    for (request, indication, ack, response) in [(0, 3, 5, 7), (1, 2, 4, 6)] {
                        let key =
                            format!("{}.{}@127.0.0.1:{}", sender(request), rows[request][4][0], server_port(request));
                        assert_eq!(rows[indication][5][0], sender(request), "{what}: the wire's own pairing");
                        for i in [request, indication, ack, response] {
                            assert_eq!(keys.get(&frame(i)), Some(&key), "{what}: frame {}", frame(i));
                            if !extra.is_empty() || i >= indication {
                                assert_eq!(
                                    ind.get(&frame(i)),
                                    Some(&frame(indication).to_string()),
                                    "{what}: frame {}",
                                    frame(i)
                                );
                            }
                            assert_eq!(
                                req.get(&frame(i)),
                                Some(&frame(request).to_string()),
                                "{what}: frame {}",
                                frame(i)
                            );
                        }
                    }
                    let distinct: BTreeSet<&String> = keys.values().collect();
                    assert_eq!(distinct.len(), 2, "{what}: {keys:?}");
                }
            }
            "stray-magic" => {
                for (extra, filter) in PASSES {
                    let info = trace(extra, filter, "_ws.col.Info");
                    let ids = trace(extra, filter, "tnlm.request_id");
                    assert_eq!(ids.values().collect::<Vec<_>>(), ["8", "8"], "{extra:?}: {info:?}");
                    assert!(info.values().all(|i| !i.contains("malformed")), "{info:?}");
                    assert_eq!(trace(extra, filter, "tnlm.request_in").values().collect::<Vec<_>>(), ["1"]);
                }
            }
            "out-of-order" => {
                let ooo = ["-o", "tcp.reassemble_out_of_order:TRUE"];
                for (extra, filter) in PASSES {
                    let args: Vec<&str> = extra.iter().chain(&ooo).copied().collect();
                    let ids = trace(&args, filter, "tnlm.request_id");
                    let all: Vec<&str> = ids.values().flat_map(|v| v.split(',')).collect();
                    assert_eq!(all, ["0", "1", "2", "1", "2"], "{args:?}: {ids:?}");
                    assert!(trace(&args, filter, "tnlm.expert.bad_magic").is_empty());
                    let links = trace(&args, filter, "tnlm.request_in");
                    assert_eq!(links.len(), 1, "{links:?}");
                }
            }
            "heuristic-start" => {
                for (extra, filter) in PASSES {
                    // Frames 1-7: the TNLM connection; 8-13: the foreign one.
                    let tnlm = trace(extra, filter, "tnlm.type");
                    assert!(tnlm.keys().all(|f| *f <= 7), "{extra:?}: the foreign connection was claimed: {tnlm:?}");
                    let ids = trace(extra, filter, "tnlm.conn.client_id");
                    assert_eq!(ids.len(), 3, "{extra:?}: the hello and the exchange: {ids:?}");
                    assert!(ids.values().all(|i| i == "3"));
                    assert_eq!(trace(extra, filter, "tnlm.request_in").len(), 1);
                }
            }
            "port-reuse" => {
                for (extra, filter) in PASSES {
                    let ids = trace(extra, filter, "tnlm.conn.client_id");
                    let ids: Vec<&str> = ids.values().map(String::as_str).collect();
                    assert_eq!(ids, ["1", "1", "5", "5", "5"], "{extra:?}");
                    let links = trace(extra, filter, "tnlm.request_in");
                    assert_eq!(links.len(), 1, "{extra:?}: {links:?}");
                    let asked = links.values().next().unwrap();
                    let second = trace(extra, filter, "tnlm.request_id");
                    assert!(second.keys().any(|f| f.to_string() == *asked), "{second:?}");
                    assert!(
                        parse_u64(asked) > *second.keys().next().unwrap() + 3,
                        "the answer links into the new connection"
                    );
                }
            }
            other => panic!("no check for {other}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_long_info_column_is_summarised_in_every_pass() {
    if tshark_missing() {
        return;
    }
    let file = workspace().join("examples").join("captures").join("burst-100.pcapng");
    for (extra, filter) in PASSES {
        let info = per_frame(&file, extra, filter, "_ws.col.Info");
        let responses: Vec<&String> = info.values().filter(|i| i.starts_with("T response")).collect();
        assert_eq!(responses, ["T response #1 \u{2026} #100, 100 frames"], "{extra:?} -Y {filter:?}");
        let requests: Vec<&String> = info.values().filter(|i| i.starts_with("T request")).collect();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].matches("T request #").count(), 100, "a list that fits stays a list");
    }
}

#[test]
fn the_installed_profile_colours_tnlm_frames_before_tcp() {
    if tshark_missing() {
        return;
    }
    let dir = temp_dir("install");
    let (plugins, config) = (dir.join("plugins"), dir.join("config"));
    let out = Command::new(env!("CARGO_BIN_EXE_tnlm-wireshark"))
        .arg("install")
        .arg("--plugins")
        .arg(&plugins)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    let (lua, colors) = (plugins.join("tnlm.lua"), config.join("profiles").join("TNLM").join("colorfilters"));
    assert!(said.contains(&lua.display().to_string()) && said.contains(&colors.display().to_string()), "{said}");
    assert_eq!(std::fs::read_to_string(&lua).unwrap(), tnlm_wireshark::generate());
    // The installed profile keeps Wireshark's default rules, after TNLM's.
    let rules = std::fs::read_to_string(&colors).unwrap();
    let names: Vec<&str> = rules.lines().filter(|l| l.starts_with('@')).map(|l| l.split('@').nth(1).unwrap()).collect();
    let tcp = names.iter().position(|n| *n == "TCP");
    let last_tnlm = names.iter().rposition(|n| n.starts_with("TNLM ")).unwrap();
    assert!(tcp.is_none_or(|tcp| tcp > last_tnlm), "{names:?}");
    let colour = |profile: Option<&str>, file: &str| -> BTreeMap<u64, String> {
        let capture = workspace().join("examples").join("captures").join(file);
        let mut cmd = Command::new("tshark");
        cmd.env("WIRESHARK_CONFIG_DIR", &config);
        if let Some(p) = profile {
            cmd.args(["-C", p]);
        }
        cmd.args(["--color", "-2", "-X"]).arg(format!("lua_script:{}", lua.display())).arg("-r").arg(&capture);
        cmd.args(["-Y", "tnlm", "-T", "fields", "-e", "frame.number", "-e", "frame.coloring_rule.name"]);
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split_once('\t').unwrap())
            .map(|(f, n)| (parse_u64(f), n.to_string()))
            .collect()
    };
    let message = colour(Some("TNLM"), "message.pcapng");
    assert_eq!(message.values().filter(|n| *n == "TNLM indication").count(), 5, "{message:?}");
    let malformed = colour(Some("TNLM"), "malformed.pcapng");
    assert_eq!(malformed.values().filter(|n| *n == "TNLM error").count(), 2, "{malformed:?}");
    let unknown = colour(Some("TNLM"), "message-unknown-id.pcapng");
    assert_eq!(unknown.values().filter(|n| *n == "TNLM failed delivery").count(), 1, "{unknown:?}");
    if tcp.is_some() {
        // Without the profile, Wireshark's "TCP" rule wins: why the profile exists.
        let plain = colour(None, "message.pcapng");
        assert!(plain.values().all(|n| !n.starts_with("TNLM")), "{plain:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every capture the tests know: the samples, the lab captures and the hard ones.
fn every_capture() -> Vec<PathBuf> {
    let mut files = sample_captures();
    for sub in ["labs", "hard"] {
        let dir = workspace().join("examples").join("captures").join(sub);
        let mut more: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "pcapng"))
            .collect();
        more.sort();
        files.extend(more);
    }
    files
}

#[test]
fn the_info_column_is_the_same_with_and_without_a_tree() {
    // Plain tshark builds no tree (the dissector's fast path); -T fields builds one.
    if tshark_missing() {
        return;
    }
    let lua = support::lua_arg();
    for file in every_capture() {
        let f = file.display().to_string();
        for extra in [&[][..], &["-2"]] {
            let mut args = extra.to_vec();
            args.extend(["-X", &lua, "-r", &f, "-o", "gui.column.format:\"No.\",\"%m\",\"Info\",\"%i\""]);
            let (plain, problems) = tshark(&args).unwrap();
            assert!(problems.is_empty(), "{problems:?}");
            let plain: BTreeMap<u64, String> = plain
                .lines()
                .map(|l| l.trim_start().split_once(' ').unwrap())
                .map(|(n, info)| (parse_u64(n), info.to_string()))
                .collect();
            let tree = per_frame(&file, extra, "tnlm", "_ws.col.Info");
            assert!(!tree.is_empty() || file.to_string_lossy().contains("cable"), "{f}: no TNLM frame");
            for (frame, info) in &tree {
                assert_eq!(plain.get(frame), Some(info), "{f} {extra:?}: frame {frame}");
            }
        }
    }
}
