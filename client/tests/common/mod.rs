//! Test helpers: an in-process server, and `tnlm-client` processes that are
//! killed after a deadline so a bug cannot hang CI. Nothing here sleeps:
//! tests wait for output lines or process exit, each with a timeout.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::Value;
use tnlm_server::{Config, RunningServer, Server};
use wait_timeout::ChildExt;

/// The longest any client process may run, or any expected line may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The name the test server answers with.
pub const SERVER_NAME: &str = "test-server";

/// A server on 127.0.0.1 with a free port, serving in a background thread.
pub fn start_server() -> RunningServer {
    start_server_with(test_config())
}

/// The configuration [`start_server`] uses (on the engine under test,
/// `TNLM_TEST_ENGINE`), to start from for [`start_server_with`].
pub fn test_config() -> Config {
    Config {
        port: 0,
        bind: Some("127.0.0.1".parse().unwrap()),
        name: SERVER_NAME.into(),
        engine: tnlm_server::Engine::under_test(),
        ..Config::default()
    }
}

/// A server with `config`, serving in a background thread.
pub fn start_server_with(config: Config) -> RunningServer {
    Server::bind(config).unwrap().spawn()
}

/// `127.0.0.1:PORT` of a running server.
pub fn target(server: &RunningServer) -> String {
    server.local_addr().to_string()
}

/// An address where nothing listens (a port just freed).
pub fn refused_target() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A running `tnlm-client` process whose stdout is read line by line.
pub struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    stdout_thread: Option<JoinHandle<()>>,
    stderr_thread: Option<JoinHandle<String>>,
}

/// A finished client process.
#[derive(Debug)]
pub struct Finished {
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl Finished {
    /// Every stdout line parsed as JSON (panics on a line that is not).
    pub fn json(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{self:#?}")))
            .collect()
    }

    /// The JSON lines whose `"type"` is `kind`.
    pub fn json_of(&self, kind: &str) -> Vec<Value> {
        self.json().into_iter().filter(|v| v["type"] == kind).collect()
    }

    /// Asserts exit code `code`, showing all output otherwise.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{self:#?}");
        assert!(!self.stderr.contains("panicked"), "the client panicked\n{self:#?}");
        self
    }
}

impl Client {
    /// Starts `tnlm-client ARGS` with stdin closed.
    pub fn spawn(args: &[&str]) -> Client {
        Client::start(args, Stdio::null())
    }

    /// Starts `tnlm-client ARGS`, writes `input` to its stdin, then closes it.
    pub fn spawn_with_input(args: &[&str], input: &str) -> Client {
        let mut client = Client::start(args, Stdio::piped());
        let mut stdin = client.stdin.take().unwrap();
        let input = input.to_string();
        thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        client
    }

    /// Starts `tnlm-client ARGS` with stdin kept open for [`Client::send_line`].
    pub fn spawn_interactive(args: &[&str]) -> Client {
        Client::start(args, Stdio::piped())
    }

    /// Starts `tnlm-client ARGS` inside network namespace `ns` (needs root).
    pub fn spawn_in_netns(ns: &str, args: &[&str]) -> Client {
        let mut full = vec!["netns", "exec", ns, env!("CARGO_BIN_EXE_tnlm-client")];
        full.extend_from_slice(args);
        Client::start_program("ip", &full, Stdio::null())
    }

    /// Kills the process at once (SIGKILL: no FIN, no goodbye).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn start(args: &[&str], stdin: Stdio) -> Client {
        Client::start_program(env!("CARGO_BIN_EXE_tnlm-client"), args, stdin)
    }

    fn start_program(program: &str, args: &[&str], stdin: Stdio) -> Client {
        let mut child = Command::new(program)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = crossbeam_channel::unbounded();
        let stdout = child.stdout.take().unwrap();
        let stdout_thread = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr_thread = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Client {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            stdout_thread: Some(stdout_thread),
            stderr_thread: Some(stderr_thread),
        }
    }

    /// Writes one line to the client's stdin.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the client's stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the next stdout line satisfying `wanted` and returns it;
    /// panics (showing the output so far) after [`DEADLINE`].
    pub fn wait_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.lines.recv_deadline(deadline) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(err) => {
                    let why = if err == RecvTimeoutError::Timeout { "timed out" } else { "stdout closed" };
                    panic!("{why} waiting for {what}; stdout so far:\n{}", self.seen.join("\n"));
                }
            }
        }
    }

    /// Waits for the next stdout line that is a JSON object of type `kind`.
    pub fn wait_json(&mut self, kind: &str) -> Value {
        let line = self.wait_line(kind, |line| serde_json::from_str::<Value>(line).is_ok_and(|v| v["type"] == kind));
        serde_json::from_str(&line).unwrap()
    }

    /// Waits (up to [`DEADLINE`], then kills it) for the process to exit and
    /// returns everything it printed.
    pub fn finish(mut self) -> Finished {
        self.stdin = None;
        let status = match self.child.wait_timeout(DEADLINE).unwrap() {
            Some(status) => status,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stdout = self.drain_stdout();
                panic!("client still running after {DEADLINE:?}; killed. stdout:\n{stdout}");
            }
        };
        let stdout = self.drain_stdout();
        let stderr = self.stderr_thread.take().unwrap().join().unwrap();
        Finished { code: status.code(), stdout, stderr }
    }

    fn drain_stdout(&mut self) -> String {
        if let Some(thread) = self.stdout_thread.take() {
            thread.join().unwrap();
        }
        self.seen.extend(self.lines.try_iter());
        let mut text = self.seen.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        text
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `tnlm-client ARGS` to completion with stdin closed.
pub fn run(args: &[&str]) -> Finished {
    Client::spawn(args).finish()
}

/// The text of numbered message `n`: 60 KiB, starting with `n` in six digits.
pub fn numbered(n: usize) -> String {
    format!("{n:06}{}", "x".repeat(60 * 1024 - 6))
}

/// Sends numbered message `n` to `to` and returns the status of its delivery.
pub fn send_numbered(
    sender: &mut tnlm_client::Connection,
    inbox: &mut tnlm_client::Inbox,
    to: u32,
    n: usize,
) -> tnlm_core::message::DeliveryStatus {
    let id = sender.send(tnlm_core::message::SendRequest { to, text: numbered(n) }).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let frame = tnlm_client::connection::wait_response(inbox, id, deadline, |f| panic!("unexpected {f:?}")).unwrap();
    let tnlm_core::Message::Delivery(delivery) = frame.message else { panic!("{frame:?}") };
    delivery.status
}

/// Sends numbered messages 0, 1, 2, … to `to` until one is not delivered;
/// panics if more than `most` are. Returns how many were, and the refusal.
pub fn send_until_refused(
    sender: &mut tnlm_client::Connection,
    inbox: &mut tnlm_client::Inbox,
    to: u32,
    most: usize,
) -> (usize, tnlm_core::message::DeliveryStatus) {
    use tnlm_core::message::DeliveryStatus;
    let mut delivered = 0;
    loop {
        match send_numbered(sender, inbox, to, delivered) {
            DeliveryStatus::Delivered if delivered <= most => delivered += 1,
            DeliveryStatus::Delivered => panic!("{delivered} messages of 60 KiB delivered, past the bound"),
            status => return (delivered, status),
        }
    }
}
