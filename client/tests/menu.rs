//! The interactive menu, driven through stdin end to end as a real process.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread;
use std::time::Duration;

use common::{
    refused_target, send_numbered, send_until_refused, start_server, start_server_with, target, test_config, Client,
    DEADLINE, SERVER_NAME,
};
use crossbeam_channel::{Receiver, Sender};
use tnlm_client::connection::{Settings, MAX_QUEUED_MESSAGE_BYTES};
use tnlm_client::Connection;
use tnlm_core::message::DeliveryStatus;
use tnlm_core::sockopt::SocketOptions;

const NOT_CONNECTED: &str = "not connected — choose 1 first";

#[test]
fn a_scripted_session_does_everything() {
    let server = start_server();
    let port = server.local_addr().port();
    let mut listener = Client::spawn(&["--connect", &target(&server), "--json", "listen", "--count", "1"]);
    let listener_id = listener.wait_json("hello")["id"].as_u64().unwrap();

    let text = "hi #1 * 你好";
    let script = format!("3\n1\n127.0.0.1\n{port}\n3\n4\n5\n6\n{listener_id}\n{text}\n2\n7\n");
    let out = Client::spawn_with_input(&[], &script).finish();
    out.assert_code(0);
    let stdout = &out.stdout;
    let position = |needle: &str| stdout.find(needle).unwrap_or_else(|| panic!("no {needle:?} in:\n{stdout}"));

    assert!(stdout.starts_with("Please input the operation number:\n+-------+"), "{stdout}");
    assert!(position(NOT_CONNECTED) < position("connected to 127.0.0.1:"));
    assert!(position("server time: 20") > position("you are client"));
    position(&format!("server name: {SERVER_NAME}"));
    position("2 clients connected:");
    position("(you)");
    position(&format!("message delivered to client {listener_id}"));
    position(&format!("disconnected from 127.0.0.1:{port}"));
    assert!(stdout.ends_with("bye\n"), "{stdout}");

    let received = listener.finish();
    assert_eq!(received.assert_code(0).json_of("message")[0]["text"], text);
}

#[test]
fn indications_are_printed_while_the_menu_waits_for_input() {
    let server = start_server();
    let mut menu = Client::spawn_interactive(&["--connect", &target(&server)]);
    let hello = menu.wait_line("hello", |l| l.contains("you are client"));
    let id = hello.rsplit(' ').next().unwrap().to_string();

    common::run(&["--connect", &target(&server), "send", &id, "ping"]).assert_code(0);
    let line = menu.wait_line("the message", |l| l.starts_with("[message from "));
    assert!(line.ends_with(")] ping"), "{line}");

    menu.send_line("7");
    let out = menu.finish();
    assert!(out.assert_code(0).stdout.ends_with("bye\n"));
}

#[test]
fn a_server_shutdown_returns_the_menu_to_disconnected() {
    let server = start_server();
    let mut menu = Client::spawn_interactive(&["--connect", &target(&server)]);
    menu.wait_line("hello", |l| l.contains("you are client"));
    server.shutdown();
    menu.wait_line("the shutdown notice", |l| l.starts_with("[the server is shutting down"));
    menu.wait_line("the close", |l| l.starts_with("connection to ") && l.contains("closed"));
    menu.send_line("3");
    menu.wait_line("not connected", |l| l == NOT_CONNECTED);
    menu.close_stdin();
    let out = menu.finish();
    assert!(out.assert_code(0).stdout.contains("end of input"));
}

#[test]
fn bad_input_gets_a_message_and_the_menu_again() {
    let out = Client::spawn_with_input(&[], "9\nfoo\n4\n6\n").finish();
    out.assert_code(0);
    assert!(out.stdout.contains("invalid choice \"9\": type a number from 1 to 7"), "{}", out.stdout);
    assert!(out.stdout.contains("invalid choice \"foo\""));
    assert_eq!(out.stdout.matches(NOT_CONNECTED).count(), 2);
    assert_eq!(out.stdout.matches("| 7     | Exit.").count(), 3, "{}", out.stdout);
}

#[test]
fn a_refused_connect_keeps_the_menu_running() {
    let addr = refused_target();
    let script = format!("1\n{}\n{}\n7\n", addr.ip(), addr.port());
    let out = Client::spawn_with_input(&[], &script).finish();
    out.assert_code(0);
    assert!(out.stdout.contains(&format!("error: cannot connect to {addr}: connection refused")), "{}", out.stdout);

    let out = Client::spawn_with_input(&["--connect", &addr.to_string()], "").finish();
    out.assert_code(0);
    assert!(out.stdout.contains("connection refused"));
}

#[test]
fn connect_defaults_come_from_the_connect_flag() {
    let server = start_server();
    let port = server.local_addr().port();
    let out = Client::spawn_with_input(&["--connect", &target(&server)], "2\n1\n\n\n4\n").finish();
    out.assert_code(0);
    assert!(out.stdout.contains(&format!("server port [{port}]:")), "{}", out.stdout);
    assert_eq!(out.stdout.matches("you are client").count(), 2, "{}", out.stdout);
    assert!(out.stdout.contains(&format!("server name: {SERVER_NAME}")));
    assert!(out.stdout.contains("end of input"));
}

#[test]
fn an_oversized_message_is_refused_and_the_connection_kept() {
    let server = start_server();
    let max = tnlm_core::DEFAULT_MAX_PAYLOAD as usize;
    let pasted = "x".repeat(max + 1);
    let script = format!("6\n1\n{pasted}\n3\n7\n");
    let out = Client::spawn_with_input(&["--connect", &target(&server)], &script).finish();
    out.assert_code(0);
    let stdout = &out.stdout;
    let refused = stdout.find("error: cannot send that request").unwrap_or_else(|| panic!("no refusal in:\n{stdout}"));
    assert!(stdout.contains(&format!("exceeds the limit of {max} bytes")), "{stdout}");
    let time = stdout.find("server time: ").unwrap_or_else(|| panic!("no time after the refusal:\n{stdout}"));
    assert!(refused < time, "{stdout}");
    assert!(!stdout.contains("closed"), "the connection was dropped:\n{stdout}");
    assert!(stdout.ends_with("bye\n"), "{stdout}");
}

/// The menu's stdout, read line by line until a line containing `pause_at`,
/// then not at all (a terminal paused with Ctrl-S) until `resume` is sent.
fn paused_output(stdout: ChildStdout, pause_at: &'static str) -> (Receiver<String>, Sender<()>) {
    let (tx, lines) = crossbeam_channel::unbounded();
    let (resume, resumed) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let mut paused = Some(resumed);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let pause = line.contains(pause_at);
            if tx.send(line).is_err() {
                return;
            }
            if let Some(resumed) = paused.take_if(|_| pause) {
                let _: Result<(), _> = resumed.recv();
            }
        }
    });
    (lines, resume)
}

/// Kills the process when the test ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// docs/RELIABILITY.md: the menu keeps the 16 MiB bound on forwarded messages
/// not yet shown. A menu whose terminal stops taking output holds messages up
/// to the bound; the next one is dropped unacknowledged (its sender hears
/// `not_acknowledged`); once the terminal reads again every held message is
/// shown, in order, and new ones are accepted.
#[test]
fn messages_the_menu_cannot_show_are_bounded_and_refused_unacknowledged() {
    let server = start_server_with(tnlm_server::Config { ack_timeout: Duration::from_millis(500), ..test_config() });
    let mut menu = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_tnlm-client"))
            .args(["--connect", &target(&server)])
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (lines, resume) = paused_output(menu.0.stdout.take().unwrap(), "you are client");
    let next_line = || lines.recv_timeout(DEADLINE).expect("a line from the menu");
    let hello = std::iter::repeat_with(next_line).find(|l| l.contains("you are client")).unwrap();
    let to: u32 = hello.rsplit(' ').next().unwrap().parse().unwrap();
    let settings = Settings::new(&SocketOptions::default(), DEADLINE);
    let (mut sender, mut sender_inbox) = Connection::open(&target(&server), &settings).unwrap();

    // Besides the messages waiting in its queue, the stuck menu has taken the ones
    // in the stdout pipe (64 KiB on Linux: one message) and the one it is writing.
    let most = MAX_QUEUED_MESSAGE_BYTES / (60 * 1024) + 2;
    let (delivered, refused) = send_until_refused(&mut sender, &mut sender_inbox, to, most);
    assert_eq!(refused, DeliveryStatus::NotAcknowledged);
    assert!((delivered + 1) * 61 * 1024 > MAX_QUEUED_MESSAGE_BYTES, "refused after only {delivered}");

    // The terminal reads again: every delivered message is shown, the refused one never.
    resume.send(()).unwrap();
    let shown = |n: usize| format!("{n:06}");
    let next_message = || loop {
        let line = next_line();
        if let Some((_, text)) = line.split_once("] ").filter(|_| line.starts_with("[message from ")) {
            break text[..6].to_string();
        }
    };
    for n in 0..delivered {
        assert_eq!(next_message(), shown(n));
    }
    assert_eq!(send_numbered(&mut sender, &mut sender_inbox, to, delivered + 1), DeliveryStatus::Delivered);
    assert_eq!(next_message(), shown(delivered + 1));

    let stdin = menu.0.stdin.as_mut().unwrap();
    stdin.write_all(b"7\n").unwrap();
    stdin.flush().unwrap();
    std::iter::repeat_with(next_line).find(|l| l.ends_with("bye")).unwrap();
}
