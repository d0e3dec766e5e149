//! The scriptable commands, run as real `tnlm-client` processes against an
//! in-process server on 127.0.0.1, in human and `--json` form.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use common::{refused_target, run, start_server, target, Client, SERVER_NAME};
use serde_json::Value;

/// True if `text` is an RFC 3339 timestamp with an explicit offset.
fn is_rfc3339_with_offset(text: &str) -> bool {
    let bytes = text.as_bytes();
    let has_offset = text.ends_with('Z')
        || text.len() > 6 && matches!(bytes[text.len() - 6], b'+' | b'-') && bytes[text.len() - 3] == b':';
    text.len() >= 20 && bytes[4] == b'-' && bytes[10] == b'T' && has_offset
}

#[test]
fn time_prints_the_server_time() {
    let server = start_server();
    let out = run(&["--connect", &target(&server), "time"]);
    out.assert_code(0);
    let time = out.stdout.trim().strip_prefix("server time: ").unwrap();
    assert!(is_rfc3339_with_offset(time), "{time}");

    let out = run(&["--connect", &target(&server), "--json", "time"]);
    let lines = out.assert_code(0).json();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert_eq!(lines[0]["type"], "time");
    assert_eq!(lines[0]["request_id"], 1);
    assert!(is_rfc3339_with_offset(lines[0]["time"].as_str().unwrap()), "{lines:?}");
}

#[test]
fn name_prints_the_server_name() {
    let server = start_server();
    let out = run(&["--connect", &target(&server), "name"]);
    assert_eq!(out.assert_code(0).stdout, format!("server name: {SERVER_NAME}\n"));

    let out = run(&["--json", "--connect", &target(&server), "name"]);
    assert_eq!(out.assert_code(0).json(), [serde_json::json!({"type": "name", "name": SERVER_NAME})]);
}

#[test]
fn list_shows_every_client_and_marks_you() {
    let server = start_server();
    let mut listener = Client::spawn(&["--connect", &target(&server), "--json", "listen", "--timeout", "30"]);
    let listener_id = listener.wait_json("hello")["id"].as_u64().unwrap();

    let out = run(&["--connect", &target(&server), "list"]);
    out.assert_code(0);
    assert!(out.stdout.starts_with("2 clients connected:\n"), "{}", out.stdout);
    let you = out.stdout.lines().filter(|l| l.ends_with("(you)")).collect::<Vec<_>>();
    assert_eq!(you.len(), 1, "{}", out.stdout);
    assert!(out.stdout.lines().any(|l| l.trim_start().starts_with(&format!("{listener_id} "))), "{}", out.stdout);

    let out = run(&["--connect", &target(&server), "--json", "list"]);
    let list = &out.assert_code(0).json()[0];
    assert_eq!(list["type"], "list");
    let clients = list["clients"].as_array().unwrap();
    let ids: Vec<u64> = clients.iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert!(ids.contains(&listener_id) && ids.contains(&list["you"].as_u64().unwrap()), "{list}");
    for client in clients {
        assert_eq!(client["ip"], "127.0.0.1");
        assert!(client["port"].as_u64().unwrap() > 0);
        assert!(is_rfc3339_with_offset(client["since"].as_str().unwrap()), "{client}");
    }
    drop(listener);
}

/// `time --repeat N` (plus `extra` flags): N requests, every response matched.
/// Returns the summary record.
fn burst_with(n: usize, extra: &[&str]) -> Value {
    let server = start_server();
    let started = Instant::now();
    let (addr, repeat) = (target(&server), n.to_string());
    let argv = [&["--connect", &addr, "--json", "time", "--repeat", &repeat][..], extra].concat();
    let out = run(&argv);
    let process_ms = started.elapsed().as_secs_f64() * 1e3;
    out.assert_code(0);
    let times = out.json_of("time");
    assert_eq!(times.len(), n);
    let ids: BTreeSet<u64> = times.iter().map(|t| t["request_id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=n as u64).collect::<BTreeSet<_>>());
    let summary = out.json().pop().unwrap();
    assert_eq!(summary["type"], "repeat");
    for field in ["sent", "received", "matched"] {
        assert_eq!(summary[field], n, "{summary}");
    }
    // The burst is timed inside the process: some time passes (the unit has
    // microsecond resolution), and no more than the whole process took.
    let elapsed_ms = summary["elapsed_ms"].as_f64().unwrap();
    assert!(elapsed_ms > 0.0 && elapsed_ms <= process_ms, "{elapsed_ms} ms, process {process_ms:.3} ms: {summary}");
    summary
}

/// `time --repeat N`: N requests in one write, every response matched.
fn burst(n: usize) {
    let summary = burst_with(n, &[]);
    assert_eq!(summary["writes"], 1, "{summary}");
}

/// `time --repeat N --sends`: one write per request, with Nagle's algorithm on
/// and off; the server answers every one of the N and the client matches them.
#[test]
fn burst_of_100_separate_sends_all_match() {
    for extra in [&["--sends"][..], &["--sends", "--nodelay"]] {
        let summary = burst_with(100, extra);
        assert_eq!(summary["writes"], 100, "{extra:?}: {summary}");
    }
}

#[test]
fn separate_sends_say_so_in_the_summary() {
    let server = start_server();
    let out = run(&["--connect", &target(&server), "time", "--repeat", "3", "--sends"]);
    let summary = out.assert_code(0).stdout.lines().last().unwrap().to_string();
    assert!(summary.starts_with("received 3/3 responses (3 matched) in "), "{summary}");
    assert!(summary.ends_with("; 3 requests written in 3 send() calls"), "{summary}");
    let out = run(&["--connect", &target(&server), "time", "--repeat", "3"]);
    assert!(out.assert_code(0).stdout.trim_end().ends_with("3 requests written in 1 send() call"), "{out:?}");
}

#[test]
fn burst_of_100_time_requests_all_match() {
    burst(100);
}

#[test]
fn burst_of_10000_time_requests_all_match() {
    burst(10_000);
}

#[test]
fn burst_human_output_ends_with_the_summary() {
    let server = start_server();
    let out = run(&["--connect", &target(&server), "time", "--repeat", "100"]);
    out.assert_code(0);
    assert_eq!(out.stdout.lines().filter(|l| l.starts_with("server time: ")).count(), 100);
    let summary = out.stdout.lines().last().unwrap();
    assert!(summary.starts_with("received 100/100 responses (100 matched) in "), "{summary}");
}

#[test]
fn a_message_reaches_the_listener_exactly() {
    let server = start_server();
    let mut listener = Client::spawn(&["--connect", &target(&server), "--json", "listen", "--count", "1"]);
    let hello = listener.wait_json("hello");
    assert_eq!(hello["server"], SERVER_NAME);
    assert_eq!(hello["version"], 1);
    let id = hello["id"].as_u64().unwrap().to_string();

    let text = "a#b*c\n second line 你好 \"quoted\" \\ -x";
    let sent = run(&["--connect", &target(&server), "--json", "send", &id, text]);
    let delivery = &sent.assert_code(0).json()[0];
    assert_eq!(delivery["type"], "delivery");
    assert_eq!(delivery["to"].to_string(), id);
    assert_eq!(delivery["delivered"], true);
    let sender_id = delivery["from"].as_u64().unwrap();

    let out = listener.finish();
    let messages = out.assert_code(0).json_of("message");
    assert_eq!(messages.len(), 1, "{out:?}");
    assert_eq!(messages[0]["text"], text);
    assert_eq!(messages[0]["from"], sender_id);
    let from_addr = messages[0]["from_addr"].as_str().unwrap();
    assert!(from_addr.starts_with("127.0.0.1:"), "{from_addr}");
}

#[test]
fn human_listen_and_send() {
    let server = start_server();
    let mut listener = Client::spawn(&["--connect", &target(&server), "listen", "--count", "1", "--timeout", "30"]);
    let hello = listener.wait_line("hello", |l| l.starts_with("connected to "));
    let id = hello.rsplit(' ').next().unwrap().to_string();

    let sent = run(&["--connect", &target(&server), "send", &id, "Hello world!"]);
    assert_eq!(sent.assert_code(0).stdout, format!("message delivered to client {id}\n"));

    let out = listener.finish();
    let line = out.assert_code(0).stdout.lines().nth(1).unwrap().to_string();
    assert!(line.starts_with("[message from ") && line.ends_with(")] Hello world!"), "{line}");
}

#[test]
fn sending_to_an_unknown_id_fails_with_the_reason() {
    let server = start_server();
    let out = run(&["--connect", &target(&server), "send", "999", "hi"]);
    out.assert_code(1);
    assert!(out.stdout.starts_with("message not delivered to client 999: "), "{out:?}");
    assert!(out.stdout.contains("no_such_client"), "{out:?}");
    assert!(out.stderr.starts_with("error: message not delivered to client 999"), "{out:?}");

    let out = run(&["--connect", &target(&server), "--json", "send", "999", "hi"]);
    let delivery = &out.assert_code(1).json()[0];
    assert_eq!(delivery["delivered"], false);
    assert_eq!(delivery["status"], "no_such_client");
    assert!(!delivery["reason"].as_str().unwrap().is_empty());
}

#[test]
fn connection_refused_is_one_clear_line() {
    let addr = refused_target().to_string();
    for command in ["time", "name", "list", "listen"] {
        let out = run(&["--connect", &addr, command]);
        out.assert_code(1);
        assert_eq!(out.stderr, format!("error: cannot connect to {addr}: connection refused\n"), "{command}");
        assert_eq!(out.stdout, "");
    }
}

#[test]
fn a_command_without_connect_is_a_usage_error() {
    let out = run(&["time"]);
    out.assert_code(2);
    assert!(out.stderr.contains("--connect HOST:PORT"), "{out:?}");
    run(&["--connect", "127.0.0.1:1", "time", "--repeat", "0"]).assert_code(2);
    let out = run(&["--connect", "127.0.0.1:1", "time", "--sends"]);
    assert!(out.assert_code(2).stderr.contains("--repeat"), "--sends needs --repeat: {out:?}");
    run(&["--connect", "127.0.0.1:1", "send", "x", "hi"]).assert_code(2);
}

#[test]
fn help_explains_commands_and_flags() {
    let out = run(&["--help"]);
    out.assert_code(0);
    for word in ["time", "name", "list", "send", "listen", "--connect", "--json", "--timeout", "--nodelay", "Examples"]
    {
        assert!(out.stdout.contains(word), "--help lacks {word}");
    }
    let out = run(&["time", "--help"]);
    for flag in ["--repeat", "--sends", "--timeout", "--nodelay", "--keepalive", "--heartbeat"] {
        assert!(out.assert_code(0).stdout.contains(flag), "time --help lacks {flag}:\n{}", out.stdout);
    }
    let out = run(&["listen", "--help"]);
    assert!(out.assert_code(0).stdout.contains("--count"));
}

#[test]
fn options_may_follow_the_command() {
    let server = start_server();
    let out =
        run(&["-c", &target(&server), "time", "--nodelay", "--timeout", "5", "--linger", "0", "--heartbeat", "0"]);
    assert!(out.assert_code(0).stdout.starts_with("server time: "), "{out:?}");
}

#[test]
fn listen_with_only_a_timeout_succeeds_when_it_ends() {
    let server = start_server();
    let out = run(&["--connect", &target(&server), "--json", "listen", "--timeout", "0.2"]);
    let lines = out.assert_code(0).json();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["type"], "hello");
}

#[test]
fn listen_fails_when_the_count_is_not_reached_in_time() {
    let server = start_server();
    let out = run(&["--connect", &target(&server), "listen", "--count", "1", "--timeout", "0.2"]);
    out.assert_code(1);
    assert!(out.stderr.contains("received 0 of 1 messages"), "{out:?}");
}

#[test]
fn listen_exits_cleanly_on_the_shutdown_notice() {
    let server = start_server();
    let mut listener = Client::spawn(&["--connect", &target(&server), "--json", "listen"]);
    listener.wait_json("hello");
    server.shutdown();
    let out = listener.finish();
    let shutdown: Vec<Value> = out.assert_code(0).json_of("shutdown");
    assert_eq!(shutdown.len(), 1, "{out:?}");
    assert!(shutdown[0]["reason"].is_string());
}
