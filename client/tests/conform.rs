//! `tnlm-client conform`: it passes against tnlm-server, and against a server
//! that breaks the spec it fails the right cases, by name.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use common::{run, start_server_with, target, test_config};
use serde_json::Value;
use tnlm_core::{Decoder, Frame, Message};

/// tnlm-server with a 1 s ack timeout, so `not_acknowledged` is answered
/// within 1 s instead of 5.
fn quick_server() -> tnlm_server::RunningServer {
    start_server_with(tnlm_server::Config { ack_timeout: Duration::from_secs(1), ..test_config() })
}

/// The names of the cases with `"passed": passed`, and the summary's counts.
fn cases(lines: &[Value], passed: bool) -> Vec<String> {
    lines
        .iter()
        .filter(|v| v["type"] == "conform" && v["passed"] == passed)
        .map(|v| v["case"].as_str().unwrap().to_string())
        .collect()
}

/// With short timers, the `--timers` cases too (as ci/conform.sh runs it).
#[test]
fn tnlm_server_passes_every_case() {
    let server = start_server_with(tnlm_server::Config {
        heartbeat: Some(Duration::from_secs(2)),
        frame_timeout: Duration::from_secs(1),
        ack_timeout: Duration::from_secs(1),
        ..test_config()
    });
    let finished = run(&["-c", &target(&server), "conform", "--timers", "--json"]);
    finished.assert_code(0);
    let lines = finished.json();
    assert_eq!(cases(&lines, false), Vec::<String>::new());
    let passed = cases(&lines, true);
    assert!(passed.len() >= 28, "{passed:?}");
    let expected = ["hello", "list of several clients", "queue_full", "not_acknowledged", "coalesced frames"];
    for case in expected.into_iter().chain(["truncated", "server ping answered", "timeout (frame timeout)"]) {
        assert!(passed.iter().any(|c| c == case), "{case} missing from {passed:?}");
    }
    let summary = finished.json_of("conform_summary");
    assert_eq!(summary[0]["failed"], 0);
    assert_eq!(summary[0]["passed"], passed.len());
}

#[test]
fn the_human_output_names_each_case_and_its_section() {
    let server = quick_server();
    let finished = run(&["-c", &target(&server), "conform"]);
    finished.assert_code(0);
    let lines: Vec<&str> = finished.stdout.lines().collect();
    assert!(lines[0].starts_with("ok    hello") && lines[0].ends_with("PROTOCOL.md: Hello"), "{lines:?}");
    assert!(lines.last().unwrap().ends_with("passed, 0 failed"), "{lines:?}");
}

/// A server whose ack timeout (60 s) is longer than the checker waits (2 s):
/// only `not_acknowledged` fails, for want of an answer.
#[test]
fn a_server_with_a_long_ack_timeout_fails_not_acknowledged_only() {
    let server = start_server_with(tnlm_server::Config { ack_timeout: Duration::from_secs(60), ..test_config() });
    let finished = run(&["-c", &target(&server), "--timeout", "2", "conform", "--json"]);
    finished.assert_code(1);
    assert_eq!(cases(&finished.json(), false), ["not_acknowledged"]);
    assert!(finished.stderr.contains("1 of"), "{finished:#?}");
}

/// In front of tnlm-server, a proxy that sets the request id of every error
/// frame to 0 (what the server did before errors echoed it): exactly the
/// cases whose error must echo a request id fail.
#[test]
fn a_server_that_answers_errors_with_id_0_fails_those_cases() {
    let server = quick_server();
    let proxy = proxy_editing(server.local_addr(), zero_error_ids);
    let finished = run(&["-c", &proxy.to_string(), "conform", "--json"]);
    finished.assert_code(1);
    let failed = cases(&finished.json(), false);
    let expected = ["oversize", "invalid_header", "unknown_type", "unexpected_frame", "malformed_payload", "truncated"];
    assert_eq!(failed, expected, "{}", finished.stdout);
    let lines = finished.json();
    let oversize = lines.iter().find(|v| v["case"] == "oversize").unwrap();
    assert_eq!(oversize["detail"], "the error should carry request id 41, has 0");
    assert_eq!(oversize["section"], "Checking a frame, and errors");
}

/// Sets the request id of an error frame to 0.
fn zero_error_ids(frame: &mut Frame) {
    if matches!(frame.message, Message::Error(_)) {
        frame.request_id = 0;
    }
}

/// Listens on 127.0.0.1; each connection is relayed to `server`, the
/// server's frames decoded, changed by `edit` and re-encoded.
fn proxy_editing(server: SocketAddr, edit: fn(&mut Frame)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let upstream = TcpStream::connect(server).unwrap();
            // Without Nagle, as the checker itself: one frame per write must not wait 40 ms.
            client.set_nodelay(true).unwrap();
            upstream.set_nodelay(true).unwrap();
            relay_raw(client.try_clone().unwrap(), upstream.try_clone().unwrap());
            thread::spawn(move || relay_editing(upstream, client, edit));
        }
    });
    addr
}

/// Client to server, byte for byte, passing on the end of the stream.
fn relay_raw(mut from: TcpStream, mut to: TcpStream) {
    thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Server to client, frame by frame, each changed by `edit`.
fn relay_editing(mut from: TcpStream, mut to: TcpStream, edit: fn(&mut Frame)) {
    let mut decoder = Decoder::new(16 << 20);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        decoder.feed(&chunk[..n]);
        while let Ok(Some(mut frame)) = decoder.next_frame() {
            edit(&mut frame);
            let mut bytes = Vec::new();
            frame.encode_into(&mut bytes, u32::MAX).unwrap();
            if to.write_all(&bytes).is_err() {
                return;
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

/// A listener on 127.0.0.1 whose every connection is handed to `serve` on a
/// thread of its own (the fake servers below).
fn fake_server(serve: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            thread::spawn(move || serve(stream));
        }
    });
    addr
}

/// Accepts and says nothing until the client leaves.
fn silent(mut stream: TcpStream) {
    let _ = stream.read(&mut [0u8; 1024]);
}

/// Answers anything with an HTTP error, as a web server would.
fn http(mut stream: TcpStream) {
    let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let _ = stream.read(&mut [0u8; 1024]);
}

/// Sends a hello, then a ping every 20 ms for as long as the client stays,
/// and never answers anything.
fn endless_pinger(mut stream: TcpStream) {
    use tnlm_core::message::{Hello, ServerPing};
    let hello = Hello { client_id: 1, server: "pinger".into(), version: tnlm_core::VERSION, max_payload: 65_536 };
    let mut bytes = Frame::indication(hello).to_bytes().unwrap();
    for id in 1u32.. {
        if stream.write_all(&bytes).is_err() {
            return;
        }
        bytes = Frame::new(id, ServerPing).to_bytes().unwrap();
        // Pacing a fake peer, not waiting for anything.
        thread::sleep(Duration::from_millis(20));
    }
}

/// Against what is not a TNLM server it says so at once, exit code 3, with
/// the summary still printed.
#[test]
fn a_silent_or_foreign_server_cannot_be_tested_exit_code_3() {
    for (what, serve) in [("silent", silent as fn(TcpStream)), ("http", http)] {
        let addr = fake_server(serve);
        let started = std::time::Instant::now();
        let finished = run(&["-c", &addr.to_string(), "--timeout", "0.5", "conform"]);
        finished.assert_code(3);
        assert!(finished.stderr.contains("could not test"), "{what}: {finished:#?}");
        assert!(finished.stdout.trim_end().ends_with("0 passed, 0 failed"), "{what}: {finished:#?}");
        assert!(started.elapsed() < Duration::from_secs(10), "{what}: took {:?}", started.elapsed());
    }
    let refused = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    run(&["-c", &refused.to_string(), "--timeout", "0.5", "conform"]).assert_code(3);
}

/// A server that pings more often than `--timeout` can no longer keep the
/// checker waiting: every case ends in bounded time and the summary comes.
#[test]
fn an_endless_pinger_cannot_keep_the_checker_waiting() {
    let addr = fake_server(endless_pinger);
    let started = std::time::Instant::now();
    let finished = run(&["-c", &addr.to_string(), "--timeout", "0.3", "conform", "--json"]);
    finished.assert_code(1);
    let summary = finished.json_of("conform_summary");
    assert_eq!(summary[0]["passed"].as_u64().unwrap() + summary[0]["failed"].as_u64().unwrap(), 27);
    let failed = cases(&finished.json(), false);
    assert!(failed.contains(&"time".to_string()), "{failed:?}");
    // 27 cases, each bounded by 6 × 0.3 s (most end after one 0.3 s wait).
    assert!(started.elapsed() < Duration::from_secs(27 * 2), "took {:?}", started.elapsed());
}

/// A server whose `M` responses name the wrong target fails the cases that
/// read a receipt, saying so.
#[test]
fn a_receipt_naming_the_wrong_target_fails() {
    fn shift_to(frame: &mut Frame) {
        if let Message::Delivery(delivery) = &mut frame.message {
            delivery.to += 1;
        }
    }
    let server = quick_server();
    let proxy = proxy_editing(server.local_addr(), shift_to);
    let finished = run(&["-c", &proxy.to_string(), "conform", "--json"]);
    finished.assert_code(1);
    let lines = finished.json();
    let delivered = lines.iter().find(|v| v["case"] == "delivered").unwrap();
    assert_eq!(delivered["passed"], false);
    assert!(delivered["detail"].as_str().unwrap().contains("as its target; the request named"), "{delivered}");
    assert!(cases(&lines, true).contains(&"time".to_string()), "the other cases still pass");
}

/// A server that gives every client the same id fails, naming the rule.
#[test]
fn a_server_that_reuses_client_ids_fails() {
    fn same_id(frame: &mut Frame) {
        if let Message::Hello(hello) = &mut frame.message {
            hello.client_id = 7;
        }
    }
    let server = quick_server();
    let proxy = proxy_editing(server.local_addr(), same_id);
    let finished = run(&["-c", &proxy.to_string(), "conform", "--json"]);
    finished.assert_code(1);
    let lines = finished.json();
    let hello = lines.iter().find(|v| v["case"] == "hello").unwrap();
    assert!(hello["detail"].as_str().unwrap().contains("ids are never reused"), "{hello}");
}

/// Answers a request that arrives within 200 ms of the connection before
/// it sends its hello (then the hello, then nothing more).
fn answers_before_hello(mut stream: TcpStream) {
    use tnlm_core::message::{Hello, TimeResponse};
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut request = [0u8; 16];
    if stream.read_exact(&mut request).is_ok() {
        let id = u32::from_le_bytes([request[8], request[9], request[10], request[11]]);
        let answer = Frame::new(id, TimeResponse { time: "2026-01-01T00:00:00.000+00:00".into() });
        let _ = stream.write_all(&answer.to_bytes().unwrap());
    }
    let hello = Hello { client_id: 1, server: "eager".into(), version: tnlm_core::VERSION, max_payload: 65_536 };
    let _ = stream.write_all(&Frame::indication(hello).to_bytes().unwrap());
    stream.set_read_timeout(None).unwrap();
    let _ = stream.read(&mut [0u8; 1024]);
}

/// A server that answers before its hello fails `hello before anything`.
#[test]
fn an_answer_before_the_hello_fails() {
    let addr = fake_server(answers_before_hello);
    let finished = run(&["-c", &addr.to_string(), "--timeout", "0.5", "conform", "--json"]);
    finished.assert_code(1);
    let lines = finished.json();
    let first = lines.iter().find(|v| v["case"] == "hello before anything").unwrap();
    assert_eq!(first["passed"], false);
    assert!(first["detail"].as_str().unwrap().contains("the first frame must be the hello"), "{first}");
}
