//! `tnlm-client bench --protocol nats` over real sockets: against a small
//! NATS server written here (in-process, 127.0.0.1), which splits every write
//! in two and coalesces what one read calls for, so the codec meets partial
//! and joined operations; and against Debian's `nats-server` when it is
//! installed (skipped otherwise: `ci/bench.sh` installs it, the test run does not).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use common::{refused_target, run, DEADLINE};
use serde_json::Value;

/// Runs `bench --protocol nats ARGS --json` against `target` and returns its summary.
fn bench(target: &str, args: &[&str]) -> Value {
    let mut full = vec!["--connect", target, "--json", "bench", "--protocol", "nats"];
    full.extend_from_slice(args);
    let out = run(&full);
    out.assert_code(0);
    let lines = out.json_of("bench");
    assert_eq!(lines.len(), 1, "{out:#?}");
    lines[0].clone()
}

/// What the fake server answers to a client's `PING`.
#[derive(Clone, Copy)]
enum Pong {
    /// `PONG`, as NATS does.
    Pong,
    /// This line instead (an `-ERR`, or garbage).
    Instead(&'static str),
}

/// A writer shared by the connections that publish to its subscriptions.
type Writer = Arc<Mutex<TcpStream>>;
/// Subject → the subscribers' writers and subscription ids.
type Subscriptions = Arc<Mutex<HashMap<String, Vec<(Writer, String)>>>>;

/// Starts a NATS-speaking server on 127.0.0.1 (INFO, CONNECT, SUB, PUB → MSG,
/// PING → PONG) and returns its address.
fn fake_nats(pong: Pong) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let subscriptions = Subscriptions::default();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let subscriptions = Arc::clone(&subscriptions);
            thread::spawn(move || serve(stream, &subscriptions, pong));
        }
    });
    addr
}

/// Serves one connection until the client hangs up.
fn serve(mut stream: TcpStream, subscriptions: &Subscriptions, pong: Pong) {
    stream.set_nodelay(true).unwrap();
    let writer: Writer = Arc::new(Mutex::new(stream.try_clone().unwrap()));
    send(&writer, b"INFO {\"server_id\":\"fake\",\"max_payload\":1048576}\r\n");
    let mut input = Vec::new();
    let mut chunk = [0; 64 * 1024];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        input.extend_from_slice(&chunk[..n]);
        let mut own = Vec::new(); // what this read calls for on this connection, sent at once
        let used = handle_all(&input, &writer, subscriptions, pong, &mut own);
        input.drain(..used);
        send(&writer, &own);
    }
}

/// Handles every whole command of `input`; returns the bytes used. Answers for
/// this connection go to `own`; messages for others are sent at once.
fn handle_all(input: &[u8], writer: &Writer, subscriptions: &Subscriptions, pong: Pong, own: &mut Vec<u8>) -> usize {
    let mut at = 0;
    while let Some(eol) = input[at..].windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8(input[at..at + eol].to_vec()).unwrap();
        let body = at + eol + 2;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[0] {
            "CONNECT" => {}
            "PING" => match pong {
                Pong::Pong => own.extend_from_slice(b"PONG\r\n"),
                Pong::Instead(line) => own.extend_from_slice(line.as_bytes()),
            },
            "SUB" => {
                let entry = (Arc::clone(writer), words[2].to_string());
                subscriptions.lock().unwrap().entry(words[1].to_string()).or_default().push(entry);
            }
            "PUB" => {
                let size: usize = words.last().unwrap().parse().unwrap();
                let Some(payload) = input.get(body..body + size) else { break };
                let reply = if words.len() == 4 { format!(" {}", words[2]) } else { String::new() };
                for (to, sid) in subscriptions.lock().unwrap().get(words[1]).into_iter().flatten() {
                    let mut msg = format!("MSG {} {sid}{reply} {size}\r\n", words[1]).into_bytes();
                    msg.extend_from_slice(payload);
                    msg.extend_from_slice(b"\r\n");
                    if Arc::ptr_eq(to, writer) {
                        own.extend_from_slice(&msg);
                    } else {
                        send(to, &msg);
                    }
                }
                at = body + size + 2;
                continue;
            }
            other => panic!("the fake NATS server does not know {other}"),
        }
        at = body;
    }
    at
}

/// Writes `bytes` to `to` in two writes, split in the middle.
fn send(to: &Writer, bytes: &[u8]) {
    let mut stream = to.lock().unwrap();
    let (first, second) = bytes.split_at(bytes.len() / 2);
    let _ = stream.write_all(first).and_then(|()| stream.flush()).and_then(|()| stream.write_all(second));
}

#[test]
fn pings_requests_and_publishes_are_all_answered() {
    let addr = fake_nats(Pong::Pong);
    let summary = bench(&addr, &["--clients", "4", "--pipeline", "8", "--requests", "400", "--threads", "2"]);
    assert_eq!((summary["kind"].as_str(), summary["protocol"].as_str()), (Some("time"), Some("nats")));
    assert_eq!((summary["requests"].as_u64(), summary["errors"].as_u64()), (Some(400), Some(0)), "{summary}");

    for (kind, pipeline) in [("message", "1"), ("message", "16"), ("publish", "1"), ("publish", "16")] {
        let args = ["--kind", kind, "--clients", "4", "--pipeline", pipeline, "--requests", "320", "--threads", "2"];
        let summary = bench(&addr, &args);
        assert_eq!(summary["requests"], 320, "{kind} P{pipeline}: {summary}");
        assert_eq!(summary["relayed"], 320, "{kind} P{pipeline}: {summary}");
        assert_eq!(summary["errors"], 0, "{kind} P{pipeline}: {summary}");
    }
}

#[test]
fn an_err_or_garbage_from_the_server_fails_the_run_with_its_words() {
    for (instead, words) in [
        ("-ERR 'Authorization Violation'\r\n", "the NATS server says Authorization Violation"),
        ("HELLO there\r\n", "not a NATS operation: \"HELLO there\""),
        ("MSG a 1 99999999\r\n", "over the 1048576 the bench accepts"),
    ] {
        let addr = fake_nats(Pong::Instead(instead));
        let out = run(&["--connect", &addr, "bench", "--protocol", "nats", "--clients", "2", "--requests", "4"]);
        out.assert_code(1);
        assert!(out.stderr.contains(words), "{instead:?}: {out:#?}");
        assert!(!out.stderr.contains("panicked"), "{out:#?}");
    }
}

#[test]
fn kinds_without_a_twin_are_refused() {
    let target = refused_target().to_string();
    for (protocol, kind, words) in [
        ("nats", "list", "no NATS equivalent"),
        ("tnlm", "publish", "always has its receipt"),
        ("redis", "publish", "already is PUBLISH"),
        ("nats", "publish", "even --clients"),
    ] {
        let clients = if words == "even --clients" { "3" } else { "2" };
        let args = ["--connect", &target, "bench", "--protocol", protocol, "--kind", kind, "--clients", clients];
        let out = run(&[&args[..], &["--requests", "1"]].concat());
        out.assert_code(1);
        assert!(out.stderr.contains(words), "{protocol} {kind}: {out:#?}");
    }
}

/// Debian's `nats-server` on a random loopback port, when it is installed.
#[test]
fn a_real_nats_server_answers_every_kind() {
    let Ok(mut server) = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", "-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    else {
        println!("SKIP: nats-server is not installed (ci/bench.sh installs Debian's)");
        return;
    };
    // Its log names the port: "Listening for client connections on 127.0.0.1:PORT".
    let (found, port) = crossbeam_channel::bounded(1);
    let log = server.stderr.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(log).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("client connections on ").nth(1) {
                let _ = found.send(addr.trim().to_string());
            }
        }
    });
    let addr = port.recv_timeout(DEADLINE);
    let outcome = std::panic::catch_unwind(|| {
        let addr = addr.unwrap();
        for kind in ["time", "message", "publish"] {
            let summary = bench(&addr, &["--kind", kind, "--clients", "4", "--pipeline", "4", "--requests", "200"]);
            assert_eq!((summary["requests"].as_u64(), summary["errors"].as_u64()), (Some(200), Some(0)), "{summary}");
        }
    });
    let _ = server.kill();
    let _ = server.wait();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
