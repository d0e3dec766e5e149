//! The C client of examples/c-client, built with `cc -std=c11 -Wall -Wextra
//! -Werror`: against tnlm-server, and against a scripted server that splits
//! its frames into single bytes and coalesces several into one write.
//!
//! Skips (with a message) where no C compiler is installed, and on Windows;
//! `TNLM_REQUIRE=cc` (or `all`, as in CI) makes a missing compiler a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::thread;

use common::{server, RawClient, TIMEOUT};
use tnlm_core::message::*;
use tnlm_core::requirement::Need;
use tnlm_core::{Decoder, Frame, Message};

/// The compiled client, or `None` (after saying why) without a C compiler
/// or on Windows (there ci/c-client.sh builds it with mingw and runs it).
fn c_client() -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if cfg!(windows) {
                eprintln!("skipped: the C client's Windows build is tested by ci/c-client.sh");
                return None;
            }
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/c-client/tnlm-c-client.c");
            let binary = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tnlm-c-client");
            let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
            let built = Command::new(&cc)
                .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-o"])
                .arg(&binary)
                .arg(&source)
                .output();
            match built {
                Ok(out) if out.status.success() => Some(binary),
                Ok(out) => panic!("{cc} failed on {}:\n{}", source.display(), String::from_utf8_lossy(&out.stderr)),
                Err(err) => {
                    Need::CCompiler.missing("the C client's tests", format!("no C compiler ({cc}: {err})"));
                    None
                }
            }
        })
        .as_deref()
}

fn run(client: &Path, target: &str, args: &[&str]) -> Output {
    Command::new(client).arg(target).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn time_name_list_and_send_against_tnlm_server() {
    let Some(client) = c_client() else { return };
    let server = server();
    let target = server.local_addr().to_string();
    let mut receiver = RawClient::connect(server.local_addr());

    let time = run(client, &target, &["time"]);
    assert!(time.status.success() && stdout(&time).starts_with("server time: 20"), "{time:?}");
    let name = run(client, &target, &["name"]);
    assert_eq!(stdout(&name), "server name: test-server\n");
    let list = run(client, &target, &["list"]);
    let text = stdout(&list);
    assert!(text.starts_with("2 clients connected:\n    ID  IP          PORT  SINCE\n"), "{text}");
    assert!(text.lines().nth(2).unwrap().starts_with("     1  127.0.0.1  "), "{text}");
    assert!(text.lines().nth(3).unwrap().ends_with("  (you)"), "{text}");

    // The receiver acks on its own thread, so the C client's send can succeed.
    let id = receiver.id();
    let acker = thread::spawn(move || {
        let frame = receiver.next_frame();
        receiver.send_frame(Frame::new(frame.request_id, Ack));
        frame.message
    });
    let sent = run(client, &target, &["send", &id.to_string(), "Hello world! 你好"]);
    assert_eq!(stdout(&sent), format!("message delivered to client {id}\n"), "{sent:?}");
    assert!(sent.status.success());
    let Message::Forwarded(message) = acker.join().unwrap() else { panic!() };
    assert_eq!(message.text, "Hello world! 你好");

    let missing = run(client, &target, &["send", "999", "hi"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stdout(&missing).ends_with("(no_such_client)\n"), "{missing:?}");
    assert_eq!(run(client, &target, &["frobnicate"]).status.code(), Some(2));
}

/// The scripted server writes the hello one byte per write, then a ping, a
/// forwarded message and the answer to `T` request #1 in one write; the C
/// client must pong, ack, print the message and then the time.
#[test]
fn split_and_coalesced_frames_from_a_scripted_server() {
    let Some(client) = c_client() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let script = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let hello = Hello { client_id: 7, server: "script".into(), version: 1, max_payload: 2048 };
        for byte in Frame::indication(hello).to_bytes().unwrap() {
            stream.write_all(&[byte]).unwrap();
        }
        let mut from_client = Reader { stream: stream.try_clone().unwrap(), decoder: Decoder::default() };
        let request = from_client.next();
        assert_eq!((request.request_id, &request.message), (1, &Message::TimeRequest(TimeRequest)));
        let mut burst = Vec::new();
        for frame in [
            Frame::new(5, ServerPing),
            Frame::new(6, Forwarded { from: 2, from_ip: [10, 0, 0, 2].into(), from_port: 4000, text: "hi\n".into() }),
            Frame::new(1, TimeResponse { time: "2026-11-25T12:00:00.000+08:00".into() }),
        ] {
            burst.extend(frame.to_bytes().unwrap());
        }
        stream.write_all(&burst).unwrap();
        [from_client.next(), from_client.next()]
    });
    let out = run(client, &target, &["time"]);
    assert_eq!(
        stdout(&out),
        "[message from 2 (10.0.0.2:4000)] hi\\n\nserver time: 2026-11-25T12:00:00.000+08:00\n",
        "{out:?}"
    );
    assert!(out.status.success());
    let [pong, ack] = script.join().unwrap();
    assert_eq!(pong, Frame::new(5, Pong));
    assert_eq!(ack, Frame::new(6, Ack));
}

/// Frames from the C client, decoded.
struct Reader {
    stream: std::net::TcpStream,
    decoder: Decoder,
}

impl Reader {
    fn next(&mut self) -> Frame {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(frame) = self.decoder.next_frame().unwrap() {
                return frame;
            }
            let n = self.stream.read(&mut chunk).unwrap();
            assert_ne!(n, 0, "the C client closed early");
            self.decoder.feed(&chunk[..n]);
        }
    }
}
