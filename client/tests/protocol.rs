//! The client against a scripted fake server on 127.0.0.1: error frames,
//! garbage, a missing hello, frames split into single bytes and responses
//! coalesced out of order. The client must report each clearly and never panic,
//! and quote the server's text with its control characters escaped. Also what
//! the server's end sees of the client's abortive close (`--linger 0`).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::{self, JoinHandle};

use common::{run, Client};
use tnlm_core::message::{
    Ack, Delivery, DeliveryStatus, ErrorBody, Forwarded, Hello, PingRequest, Pong, Shutdown, TimeResponse,
};
use tnlm_core::{Decoder, ErrorCode, Frame, DEFAULT_MAX_PAYLOAD};

/// A one-connection fake server running `script` on the accepted socket; the
/// thread returns what `script` returns.
fn fake_server<T: Send + 'static>(script: impl FnOnce(TcpStream) -> T + Send + 'static) -> (String, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let thread = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_nodelay(true).unwrap();
        script(stream)
    });
    (addr, thread)
}

fn hello() -> Frame {
    Frame::indication(Hello {
        client_id: 7,
        server: "fake".into(),
        version: tnlm_core::VERSION,
        max_payload: DEFAULT_MAX_PAYLOAD,
    })
}

fn write_frames(stream: &mut TcpStream, frames: &[Frame]) {
    let mut bytes = Vec::new();
    for frame in frames {
        frame.encode_into(&mut bytes, DEFAULT_MAX_PAYLOAD).unwrap();
    }
    stream.write_all(&bytes).unwrap();
}

/// Reads until `n` whole request frames have arrived.
fn read_requests(stream: &mut TcpStream, n: usize) -> Vec<Frame> {
    let mut decoder = Decoder::default();
    let mut frames = Vec::new();
    let mut buffer = [0u8; 4096];
    while frames.len() < n {
        let read = stream.read(&mut buffer).unwrap();
        assert!(read > 0, "client closed early");
        decoder.feed(&buffer[..read]);
        while let Some(frame) = decoder.next_frame().unwrap() {
            frames.push(frame);
        }
    }
    frames
}

/// Waits for the client to close its end.
fn drain(stream: &mut TcpStream) {
    let _ = stream.read_to_end(&mut Vec::new());
}

#[test]
fn an_error_frame_is_printed_and_fails() {
    let (addr, server) = fake_server(|mut stream| {
        write_frames(&mut stream, &[hello()]);
        let request = read_requests(&mut stream, 1).remove(0);
        let body = ErrorBody { code: ErrorCode::UnknownType, text: "no such thing".into() };
        write_frames(&mut stream, &[Frame::new(request.request_id, body)]);
        drain(&mut stream);
    });
    let out = run(&["--connect", &addr, "--json", "name"]);
    out.assert_code(1);
    let error = &out.json()[0];
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], 5);
    assert_eq!(error["text"], "no such thing");
    assert!(out.stderr.starts_with("error: the server answered the name request with an error"), "{out:?}");
    server.join().unwrap();
}

#[test]
fn garbage_from_the_server_is_a_clear_failure() {
    let (addr, server) = fake_server(|mut stream| {
        write_frames(&mut stream, &[hello()]);
        read_requests(&mut stream, 1);
        stream.write_all(b"GARBAGE, not a frame").unwrap();
        drain(&mut stream);
    });
    let out = run(&["--connect", &addr, "time"]);
    out.assert_code(1);
    assert!(out.stderr.starts_with("error: the server broke the protocol: bad magic"), "{out:?}");
    server.join().unwrap();
}

#[test]
fn a_server_that_never_says_hello_is_reported() {
    let (addr, server) = fake_server(drop);
    let out = run(&["--connect", &addr, "time"]);
    out.assert_code(1);
    assert!(out.stderr.starts_with(&format!("error: connected to {addr}, but the connection closed")), "{out:?}");
    server.join().unwrap();
}

#[test]
fn frames_split_into_single_bytes_decode() {
    let (addr, server) = fake_server(|mut stream| {
        let request = {
            let mut bytes = Vec::new();
            hello().encode_into(&mut bytes, DEFAULT_MAX_PAYLOAD).unwrap();
            for byte in bytes {
                stream.write_all(&[byte]).unwrap();
            }
            read_requests(&mut stream, 1).remove(0)
        };
        let response = Frame::new(request.request_id, TimeResponse { time: "2026-01-01T00:00:00+00:00".into() });
        for byte in response.to_bytes().unwrap() {
            stream.write_all(&[byte]).unwrap();
        }
        drain(&mut stream);
    });
    let out = run(&["--connect", &addr, "time"]);
    assert_eq!(out.assert_code(0).stdout, "server time: 2026-01-01T00:00:00+00:00\n");
    server.join().unwrap();
}

#[test]
fn coalesced_responses_in_any_order_are_matched_by_id() {
    let (addr, server) = fake_server(|mut stream| {
        write_frames(&mut stream, &[hello()]);
        let requests = read_requests(&mut stream, 100);
        let responses: Vec<Frame> = requests
            .iter()
            .rev()
            .map(|r| Frame::new(r.request_id, TimeResponse { time: format!("t{}", r.request_id) }))
            .collect();
        write_frames(&mut stream, &responses);
        drain(&mut stream);
    });
    let out = run(&["--connect", &addr, "--json", "time", "--repeat", "100"]);
    let summary = out.assert_code(0).json().pop().unwrap();
    assert_eq!((summary["received"].as_u64(), summary["matched"].as_u64()), (Some(100), Some(100)));
    server.join().unwrap();
}

/// `time --repeat N --sends`: a server that answers each request as soon as
/// it has read it (not after the whole burst) gets all N requests, and every
/// answer is matched.
#[test]
fn separate_sends_reach_the_server_and_are_all_answered() {
    const N: usize = 50;
    let (addr, server) = fake_server(|mut stream| {
        write_frames(&mut stream, &[hello()]);
        let (mut decoder, mut buffer, mut ids) = (Decoder::default(), [0u8; 4096], Vec::new());
        while ids.len() < N {
            let read = stream.read(&mut buffer).unwrap();
            assert!(read > 0, "client closed after {} requests", ids.len());
            decoder.feed(&buffer[..read]);
            while let Some(request) = decoder.next_frame().unwrap() {
                assert!(matches!(request.message, tnlm_core::Message::TimeRequest(_)), "{request:?}");
                write_frames(&mut stream, &[Frame::new(request.request_id, TimeResponse { time: "t".into() })]);
                ids.push(request.request_id);
            }
        }
        drain(&mut stream);
        ids
    });
    let out = run(&["--connect", &addr, "--json", "time", "--repeat", &N.to_string(), "--sends"]);
    let summary = out.assert_code(0).json().pop().unwrap();
    assert_eq!(summary["writes"].as_u64(), Some(N as u64), "{summary}");
    assert_eq!((summary["received"].as_u64(), summary["matched"].as_u64()), (Some(N as u64), Some(N as u64)));
    let ids = server.join().unwrap();
    assert_eq!(ids, (1..=N as u32).collect::<Vec<_>>(), "the server got every request, in order");
}

#[test]
fn a_burst_with_missing_responses_fails_after_the_timeout() {
    let (addr, server) = fake_server(|mut stream| {
        write_frames(&mut stream, &[hello()]);
        let requests = read_requests(&mut stream, 10);
        let responses: Vec<Frame> =
            requests[..9].iter().map(|r| Frame::new(r.request_id, TimeResponse { time: "t".into() })).collect();
        write_frames(&mut stream, &responses);
        drain(&mut stream);
    });
    let out = run(&["--connect", &addr, "--timeout", "0.5", "--json", "time", "--repeat", "10"]);
    let summary = out.assert_code(1).json().pop().unwrap();
    assert_eq!((summary["received"].as_u64(), summary["matched"].as_u64()), (Some(9), Some(9)));
    assert!(out.stderr.contains("only 9 of 10"), "{out:?}");
    server.join().unwrap();
}

/// Server text with a terminal title escape, a bell, a screen clear, a carriage
/// return and a newline starting a fake line of output.
const HOSTILE: &str = "\u{1b}]0;owned\u{7}\u{1b}[2J\rfake\nerror: not from the client";

/// What a fake server answers, given the request id it answers (0: none).
type Answer = fn(u32) -> Frame;

fn hostile_error(request_id: u32) -> Frame {
    Frame::new(request_id, ErrorBody { code: ErrorCode::UnknownType, text: HOSTILE.into() })
}

#[test]
fn server_text_in_error_messages_has_its_control_characters_escaped() {
    // (the client's command, whether the server says hello first, requests it reads, its answer)
    let cases: [(&[&str], bool, usize, Answer); 6] = [
        (&["name"], true, 1, hostile_error),
        (&["time", "--repeat", "2"], true, 2, hostile_error),
        (&["listen", "--count", "1"], true, 0, hostile_error),
        (&["send", "9", "hi"], true, 1, |id| {
            Frame::new(id, Delivery { to: 9, status: DeliveryStatus::NotAcknowledged, reason: HOSTILE.into() })
        }),
        (&["time"], false, 0, hostile_error),
        (&["time"], false, 0, |_| Frame::indication(Shutdown { reason: HOSTILE.into() })),
    ];
    for (command, says_hello, requests, answer) in cases {
        let (addr, server) = fake_server(move |mut stream| {
            if says_hello {
                write_frames(&mut stream, &[hello()]);
            }
            let id = read_requests(&mut stream, requests).last().map_or(0, |r| r.request_id);
            write_frames(&mut stream, &[answer(id)]);
            drain(&mut stream);
        });
        let mut args = vec!["--connect", addr.as_str(), "--timeout", "5"];
        args.extend_from_slice(command);
        let out = run(&args);
        out.assert_code(1);
        let raw = |c: char| c.is_control() && c != '\n';
        assert!(
            !out.stderr.contains(raw) && !out.stdout.contains(raw),
            "{command:?}: raw control characters\n{out:#?}"
        );
        let escaped = "\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\rfake\\nerror: not from the client";
        assert!(out.stderr.contains(escaped), "{command:?}\n{out:#?}");
        assert_eq!(out.stderr.lines().filter(|l| l.starts_with("error: ")).count(), 1, "{command:?}\n{out:#?}");
        server.join().unwrap();
    }
}

/// The sockets between ports `a` and `b` (IPv4, either side) as
/// `/proc/net/tcp` lists them: (local port, remote port, state), the state in
/// its hex code (`01` established, `06` TIME_WAIT). The kernel prints the
/// table in chunks, so while other sockets come and go one read may repeat or
/// miss a row: this is the union of three reads.
#[cfg(target_os = "linux")]
fn tcp_sockets(a: u16, b: u16) -> std::collections::BTreeSet<(u16, u16, String)> {
    let port = |field: &str| field.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
    let mut found = std::collections::BTreeSet::new();
    for _ in 0..3 {
        for line in std::fs::read_to_string("/proc/net/tcp").unwrap().lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(state)) =
                (fields.get(1).and_then(|f| port(f)), fields.get(2).and_then(|f| port(f)), fields.get(3))
            else {
                continue;
            };
            if (local, remote) == (a, b) || (local, remote) == (b, a) {
                found.insert((local, remote, state.to_string()));
            }
        }
    }
    found
}

/// `--linger 0` as docs/PLATFORMS.md describes it on Linux: the client shuts
/// down only its read side, then closes, so the peer reads a reset and no FIN,
/// and no TIME_WAIT is left for the client's port.
#[cfg(target_os = "linux")]
#[test]
fn linger_0_closes_with_a_reset_and_leaves_no_time_wait() {
    let (tx, rx) = std::sync::mpsc::channel();
    let (addr, server) = fake_server(move |mut stream| {
        stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        let client_port = stream.peer_addr().unwrap().port();
        write_frames(&mut stream, &[hello()]);
        let request = read_requests(&mut stream, 1).remove(0);
        let while_open = tcp_sockets(client_port, stream.local_addr().unwrap().port());
        write_frames(&mut stream, &[Frame::new(request.request_id, TimeResponse { time: "t".into() })]);
        let after_close = stream.read(&mut [0u8; 64]).map_err(|e| e.kind());
        tx.send((client_port, while_open, after_close)).unwrap();
    });
    let out = run(&["--connect", &addr, "--linger", "0", "time"]);
    assert_eq!(out.assert_code(0).stdout, "server time: t\n");
    server.join().unwrap(); // the server's end is closed too
    let (client_port, while_open, after_close) = rx.recv().unwrap();
    let server_port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let established = |local, remote| (local, remote, "01".to_string());
    let both = [established(client_port, server_port), established(server_port, client_port)];
    assert_eq!(while_open, both.into(), "both ends established, as /proc/net/tcp shows them");
    // A FIN first would read as end of stream (Ok(0)) even with an RST after it.
    assert_eq!(after_close, Err(std::io::ErrorKind::ConnectionReset), "the client's close was not a bare RST");
    let left = tcp_sockets(client_port, server_port);
    assert!(
        !left.iter().any(|(_, _, state)| state == "06"),
        "TIME_WAIT left between ports {client_port} and {server_port}: {left:?}"
    );
}

/// A fake server that forwards one message (delivery id 41) and expects, in
/// this order: the ack, then a ping (answered), then the close. With
/// `--linger 0` the close is an RST, which could overtake the ack: the
/// client must not close before its ping is answered.
fn acks_then_a_ping_before_the_close() -> (String, JoinHandle<()>) {
    fake_server(|mut stream| {
        stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        let forwarded =
            Forwarded { from: 3, from_ip: std::net::Ipv4Addr::LOCALHOST.into(), from_port: 5555, text: "hi".into() };
        write_frames(&mut stream, &[hello(), Frame::new(41, forwarded)]);
        let frames = read_requests(&mut stream, 2);
        assert_eq!((frames[0].request_id, &frames[0].message), (41, &Ack.into()), "{frames:?}");
        assert_eq!(frames[1].message, PingRequest.into(), "{frames:?}");
        write_frames(&mut stream, &[Frame::new(frames[1].request_id, Pong)]);
        let after = stream.read(&mut [0u8; 64]).map_err(|e| e.kind());
        assert!(!matches!(after, Ok(n) if n > 0), "more after the ping: {after:?}");
    })
}

#[test]
fn an_abortive_close_after_acks_waits_for_a_ping_answer() {
    let (addr, server) = acks_then_a_ping_before_the_close();
    let out = run(&["--connect", &addr, "--linger", "0", "--heartbeat", "0", "listen", "--count", "1"]);
    assert!(out.assert_code(0).stdout.contains("] hi"), "{out:?}");
    server.join().unwrap();
}

#[test]
fn the_menu_s_abortive_close_after_acks_waits_for_a_ping_answer() {
    let (addr, server) = acks_then_a_ping_before_the_close();
    let mut menu = Client::spawn_interactive(&["--connect", &addr, "--linger", "0", "--heartbeat", "0"]);
    menu.wait_line("the message", |l| l.starts_with("[message from "));
    menu.send_line("7");
    menu.finish().assert_code(0);
    server.join().unwrap();
}
