//! Writes a text2pcap hex dump of one long TNLM connection, for timing the dissector on a
//! capture of realistic shape: a hello, then PAIRS request/response pairs, each frame in
//! its own TCP segment (time, name, list of three clients and heartbeat requests in turn).
//!
//! `cargo run --release -p tnlm-wireshark --example bench_capture -- PAIRS > dump.txt`, then
//! `text2pcap -q -D -T 50000,4579 -F pcapng dump.txt bench.pcapng` (`ci/dissector-bench.sh`).
//!
//! `bench_capture many CONNECTIONS PACKETS OUT.pcap` writes a capture of CONNECTIONS
//! connections to one server (each a handshake and a hello) taking turns: a request/response
//! pair each, and every fifth turn a message from one client to the next (the M request,
//! the M indication on the target's connection, its A ack, the M response), until PACKETS
//! packets; one frame per TCP segment.

#[path = "../tests/pcap/mod.rs"]
mod pcap;

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use tnlm_core::message::{
    Ack, ClientInfo, Delivery, DeliveryStatus, Forwarded, Hello, ListRequest, ListResponse, NameRequest, NameResponse,
    PingRequest, Pong, SendRequest, TimeRequest, TimeResponse,
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

fn bytes(frame: &Frame) -> Result<Vec<u8>, String> {
    frame.to_bytes().map_err(|e| e.to_string())
}

/// The many-connection capture (see the module's documentation).
fn many(connections: u32, packets: usize, out: &str) -> Result<(), String> {
    use pcap::{Conn, Pcap};
    let mut p = Pcap::default();
    let mut conns: Vec<Conn> = (0..connections).map(|i| Conn::local(20000 + i as u16, 4579)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        p.open(c);
        let hello = Hello { client_id: i as u32 + 1, server: "bench-server".into(), version: 1, max_payload: 65536 };
        p.send(c, true, &bytes(&Frame::indication(hello))?);
    }
    let mut next_id = vec![1u32; conns.len()];
    let mut delivery = vec![1u32; conns.len()];
    let mut turn = 0usize;
    while p.len() < packets {
        let i = turn % conns.len();
        let id = next_id[i];
        next_id[i] += 1;
        if (turn / conns.len()) % 5 == 4 {
            let to = (i + 1) % conns.len();
            let text = format!("message {id} from client {}", i + 1);
            let request = SendRequest { to: to as u32 + 1, text: text.clone() };
            p.send(&mut conns[i], false, &bytes(&Frame::new(id, request))?);
            let from_port = 20000 + i as u16;
            let fwd = Forwarded { from: i as u32 + 1, from_ip: [127, 0, 0, 1].into(), from_port, text };
            let d = delivery[to];
            delivery[to] += 1;
            p.send(&mut conns[to], true, &bytes(&Frame::new(d, fwd))?);
            p.send(&mut conns[to], false, &bytes(&Frame::new(d, Ack))?);
            let done = Delivery { to: to as u32 + 1, status: DeliveryStatus::Delivered, reason: "acknowledged".into() };
            p.send(&mut conns[i], true, &bytes(&Frame::new(id, done))?);
        } else {
            let (request, response) = pair(id);
            p.send(&mut conns[i], false, &bytes(&Frame::new(id, request))?);
            p.send(&mut conns[i], true, &bytes(&Frame::new(id, response))?);
        }
        turn += 1;
    }
    std::fs::write(out, p.bytes()).map_err(|e| format!("cannot write {out}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("many") {
        let parsed = match (args.get(1), args.get(2), args.get(3)) {
            (Some(c), Some(n), Some(out)) => {
                c.parse::<u32>().ok().zip(n.parse::<usize>().ok()).map(|(c, n)| (c, n, out))
            }
            _ => None,
        };
        let Some((connections, packets, out)) = parsed.filter(|(c, _, _)| (1..=40000).contains(c)) else {
            eprintln!("usage: bench_capture many CONNECTIONS PACKETS OUT.pcap   (CONNECTIONS 1 to 40000)");
            return ExitCode::from(2);
        };
        return match many(connections, packets, out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
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
