//! Writes a text2pcap hex dump of one long TNLM connection, for timing the dissector on a
//! capture of realistic shape: a hello, then PAIRS request/response pairs, each frame in
//! its own TCP segment (time, name, list of three clients and heartbeat requests in turn).
//!
//! `cargo run --release -p tnlm-wireshark --example bench_capture -- PAIRS > dump.txt`, then
//! `text2pcap -q -D -T 50000,4579 -F pcapng dump.txt bench.pcapng` (`ci/dissector-bench.sh`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use tnlm_core::message::{
    ClientInfo, Hello, ListRequest, ListResponse, NameRequest, NameResponse, PingRequest, Pong, TimeRequest,
    TimeResponse,
};
use tnlm_core::{Frame, Message};

/// One segment as text2pcap reads it: a direction line, then offset + hex lines.
fn segment(out: &mut String, from_server: bool, frame: &Frame) -> Result<(), String> {
    let bytes = frame.to_bytes().map_err(|e| e.to_string())?;
    out.push_str(if from_server { "O\n" } else { "I\n" });
    for (n, line) in bytes.chunks(16).enumerate() {
        let _ = write!(out, "{:06x}", n * 16);
        for byte in line {
            let _ = write!(out, " {byte:02x}");
        }
        out.push('\n');
    }
    Ok(())
}

fn pair(id: u32) -> (Message, Message) {
    let since = "2026-11-25T12:00:00.000+00:00".to_string();
    match id % 4 {
        0 => (TimeRequest.into(), TimeResponse { time: since }.into()),
        1 => (NameRequest.into(), NameResponse { name: "bench-server".into() }.into()),
        2 => {
            let clients = (1..=3)
                .map(|n| ClientInfo { id: n, ip: [127, 0, 0, 1].into(), port: 50000 + n as u16, since: since.clone() })
                .collect();
            (ListRequest.into(), ListResponse { clients }.into())
        }
        _ => (PingRequest.into(), Pong.into()),
    }
}

fn run(pairs: u32) -> Result<(), String> {
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    let mut out = String::new();
    let hello = Hello { client_id: 1, server: "bench-server".into(), version: 1, max_payload: 65536 };
    segment(&mut out, true, &Frame::indication(hello))?;
    for id in 1..=pairs {
        let (request, response) = pair(id);
        segment(&mut out, false, &Frame::new(id, request))?;
        segment(&mut out, true, &Frame::new(id, response))?;
        if out.len() > 1 << 20 {
            stdout.write_all(out.as_bytes()).map_err(|e| e.to_string())?;
            out.clear();
        }
    }
    stdout.write_all(out.as_bytes()).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let pairs = std::env::args().nth(1).map_or(Ok(105_000), |a| a.parse::<u32>());
    let Ok(pairs) = pairs else {
        eprintln!("usage: bench_capture [PAIRS]   (default 105000)");
        return ExitCode::from(2);
    };
    match run(pairs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
