//! The `tnlm-server` binary as users run it: the listening line, flags,
//! socket options, and the three ways to stop it.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use common::{RawClient, TIMEOUT};
use tnlm_core::message::*;
use tnlm_core::{Frame, Message};

/// A running `tnlm-server` process and the address from its listening line.
struct Process {
    child: Child,
    addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
    /// Receives once stdout reaches end of file, i.e. the process has exited.
    stdout_closed: mpsc::Receiver<()>,
}

fn start(args: &[&str]) -> Process {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tnlm-server"))
        .args(["--bind", "127.0.0.1", "--port", "0", "--name", "cli-test"])
        .args(args)
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = forward_lines(child.stderr.take().unwrap());
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("{line:?}"));
    let stdout_closed = watch_eof(stdout);
    Process { child, addr: addr.parse().unwrap(), stderr, stdout_closed }
}

fn watch_eof(mut stdout: BufReader<ChildStdout>) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        let _ = tx.send(());
    });
    rx
}

fn forward_lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

impl Process {
    /// Waits for a stderr line containing `needle`; returns it.
    fn wait_log(&self, needle: &str) -> String {
        loop {
            let line = self.stderr.recv_timeout(TIMEOUT).unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.stdout_closed.recv_timeout(TIMEOUT).expect("server did not exit");
        self.child.wait().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prints_listening_line_and_serves() {
    let server = start(&[]);
    let mut client = RawClient::connect(server.addr);
    assert_eq!(client.request(NameRequest), NameResponse { name: "cli-test".into() }.into());
}

#[test]
fn quit_on_stdin_notifies_clients_and_exits_zero() {
    let mut server = start(&[]);
    let mut client = RawClient::connect(server.addr);
    server.child.stdin.as_mut().unwrap().write_all(b"quit\n").unwrap();
    let frames = client.frames_until_closed();
    assert!(matches!(frames.last(), Some(Frame { message: Message::Shutdown(_), .. })), "{frames:?}");
    drop(client);
    assert!(server.wait_exit().success());
    server.wait_log("all client threads joined");
}

#[test]
fn end_of_stdin_is_not_quit() {
    let mut server = start(&[]);
    drop(server.child.stdin.take());
    let mut client = RawClient::connect(server.addr);
    assert!(matches!(client.request(TimeRequest), Message::TimeResponse(_)));
    assert!(server.child.try_wait().unwrap().is_none());
}

#[cfg(unix)]
#[test]
fn sigterm_exits_cleanly() {
    let mut server = start(&[]);
    let mut client = RawClient::connect(server.addr);
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let frames = client.frames_until_closed();
    assert!(matches!(frames.last(), Some(Frame { message: Message::Shutdown(_), .. })));
    assert!(server.wait_exit().success());
}

#[cfg(target_os = "linux")]
#[test]
fn socket_flags_are_applied_to_accepted_connections() {
    let server = start(&[
        "--nodelay",
        "--keepalive",
        "7,3,4",
        "--linger",
        "0",
        "--user-timeout",
        "1500",
        "--recv-buffer",
        "65536",
        "--send-buffer",
        "65536",
    ]);
    let _client = RawClient::connect(server.addr);
    let line = server.wait_log("socket options:");
    for expected in [
        "nodelay=on",
        "keepalive=on (time=7s interval=3s retries=4)",
        "linger=0s",
        "user_timeout=1500ms",
        "recv_buffer=131072",
        "send_buffer=131072",
    ] {
        assert!(line.contains(expected), "{expected:?} missing in {line:?}");
    }
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [&["--keepalive", "0"][..], &["--port", "70000"], &["--linger", "-1"], &["--bogus"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_tnlm-server")).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error:") && !stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_tnlm-server"))
        .args(["--bind", "127.0.0.1", "--port", &port])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen on 127.0.0.1:"), "{stderr}");
}
