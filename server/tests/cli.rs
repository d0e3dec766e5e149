//! The `tnlm-server` binary as users run it: the listening line, flags,
//! socket options, and the three ways to stop it.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{RawClient, ServerProcess};
use tnlm_core::message::*;
use tnlm_core::{Frame, Message};

#[test]
fn prints_listening_line_and_serves() {
    let server = ServerProcess::start(&[]);
    let mut client = RawClient::connect(server.addr);
    assert_eq!(client.request(NameRequest), NameResponse { name: "cli-test".into() }.into());
}

#[test]
fn welcome_banner_on_stderr_says_where_and_how_to_stop() {
    let server = ServerProcess::start(&[]);
    let banner = server.log_until("to stop").join("\n");
    let port = server.addr.port();
    for expected in [
        "Welcome to the TNLM server".to_string(),
        format!("Listening on 127.0.0.1, TCP port {port}"),
        format!("tnlm-client -c 127.0.0.1:{port}"),
        match tnlm_server::Engine::under_test() {
            tnlm_server::Engine::Threads => {
                "Serving each client on a thread of its own (--engine threads).".to_string()
            }
            tnlm_server::Engine::Events => "event-loop worker".to_string(),
        },
        "`quit` or press Ctrl-C".to_string(),
    ] {
        assert!(banner.contains(&expected), "{expected:?} missing in {banner}");
    }
}

#[test]
fn log_requests_logs_each_answered_request_at_the_default_level() {
    let server = ServerProcess::start_logging("info", &["--log-requests"]);
    let mut alice = RawClient::connect(server.addr);
    let mut bob = RawClient::connect(server.addr);
    let (a, b) = (alice.id(), bob.id());
    assert!(matches!(alice.request(TimeRequest), Message::TimeResponse(_)));
    server.wait_log(&format!("client {a} asked for the time"));
    alice.request(NameRequest);
    server.wait_log(&format!("client {a} asked for the server's name"));
    alice.request(ListRequest);
    server.wait_log(&format!("client {a} asked for the client list (2 connected)"));
    alice.request(SendRequest { to: 99, text: "hi".into() });
    server.wait_log(&format!("client {a} asked to send a message to client 99 (2 bytes)"));
    server.wait_log(&format!("client {a}'s message to client 99: no_such_client"));
    let sent = alice.send(SendRequest { to: b, text: "Hello world!".into() });
    server.wait_log(&format!("client {a} asked to send a message to client {b} (12 bytes)"));
    let indication = bob.next_frame();
    bob.send_frame(Frame::new(indication.request_id, Ack));
    assert_eq!(alice.next_frame().request_id, sent);
    server.wait_log(&format!("client {a}'s message to client {b}: delivered"));
}

#[test]
fn without_log_requests_requests_are_not_logged_at_the_default_level() {
    let server = ServerProcess::start_logging("info", &[]);
    let mut client = RawClient::connect(server.addr);
    client.request(TimeRequest);
    drop(client);
    let log = server.log_until("disconnected");
    assert!(!log.iter().any(|line| line.contains("asked for")), "{log:#?}");
}

#[test]
fn quit_on_stdin_notifies_clients_and_exits_zero() {
    let mut server = ServerProcess::start(&[]);
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
    let mut server = ServerProcess::start(&[]);
    let mut before = RawClient::connect(server.addr);
    drop(server.child.stdin.take());
    // The server logs once it has read the end of stdin; only then is "still serving" a finding.
    server.wait_log("end of stdin: no more console commands");
    let mut after = RawClient::connect(server.addr);
    for client in [&mut before, &mut after] {
        assert!(matches!(client.request(TimeRequest), Message::TimeResponse(_)));
    }
    assert!(server.child.try_wait().unwrap().is_none());
}

#[cfg(unix)]
#[test]
fn sigterm_exits_cleanly() {
    let mut server = ServerProcess::start(&[]);
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
    let server = ServerProcess::start(&[
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
    let long_name = "n".repeat(tnlm_core::MAX_NAME_LEN + 1);
    // A limit below 1024 bytes or a name over 255 bytes: frames the server
    // sends could exceed the limit in its hello (PROTOCOL.md, "Limits").
    let limits = [&["--max-frame", "1023"][..], &["--name", &long_name]];
    for args in
        [&["--keepalive", "0"][..], &["--port", "70000"], &["--linger", "-1"], &["--bogus"]].into_iter().chain(limits)
    {
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
