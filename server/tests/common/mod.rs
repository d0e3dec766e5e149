//! Test helpers: an in-process server and a raw protocol client built only on
//! `tnlm-core`, so the tests see exactly what goes over the wire.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tnlm_core::message::Hello;
use tnlm_core::{DecodeError, Decoder, Frame, Message};
use tnlm_server::{Config, RunningServer, Server};

/// How long any single wait in a test may take before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A server on 127.0.0.1 with a free port, named `test-server`, on the
/// engine under test.
pub fn server() -> RunningServer {
    server_with(|_| {})
}

/// Like [`server`], with the config adjusted by `tweak`.
pub fn server_with(tweak: impl FnOnce(&mut Config)) -> RunningServer {
    let mut config = Config {
        bind: Some("127.0.0.1".parse().unwrap()),
        port: 0,
        name: "test-server".into(),
        engine: tnlm_server::Engine::under_test(),
        ..Config::default()
    };
    tweak(&mut config);
    Server::bind(config).unwrap().spawn()
}

/// What a raw read produced.
#[derive(Debug)]
pub enum Event {
    Frame(Frame),
    Error(DecodeError),
    Closed,
}

/// A protocol client with no logic of its own.
pub struct RawClient {
    pub stream: TcpStream,
    pub decoder: Decoder,
    pub hello: Option<Hello>,
    next_id: u32,
}

impl RawClient {
    /// Connects and reads the hello.
    pub fn connect(addr: SocketAddr) -> RawClient {
        let mut client = RawClient::connect_silent(addr);
        match client.next_frame().message {
            Message::Hello(hello) => client.hello = Some(hello),
            other => panic!("expected hello first, got {other:?}"),
        }
        client
    }

    /// Connects with a 4 KiB receive buffer (a window that fills after a
    /// few frames) and reads the hello: a client that can be made to stop
    /// reading.
    pub fn connect_small_window(addr: SocketAddr) -> RawClient {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&addr.into()).unwrap();
        let mut client = RawClient::from_stream(socket.into());
        match client.next_frame().message {
            Message::Hello(hello) => client.hello = Some(hello),
            other => panic!("expected hello first, got {other:?}"),
        }
        client
    }

    /// Connects without reading anything.
    pub fn connect_silent(addr: SocketAddr) -> RawClient {
        RawClient::from_stream(TcpStream::connect_timeout(&addr, TIMEOUT).unwrap())
    }

    /// Wraps a connected stream, without reading anything.
    pub fn from_stream(stream: TcpStream) -> RawClient {
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        RawClient { stream, decoder: Decoder::new(16 << 20), hello: None, next_id: 1 }
    }

    /// The id the server assigned.
    pub fn id(&self) -> u32 {
        self.hello.as_ref().unwrap().client_id
    }

    /// Sends a request with the next request id; returns that id.
    pub fn send(&mut self, message: impl Into<Message>) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.stream.write_all(&Frame::new(id, message).to_bytes().unwrap()).unwrap();
        id
    }

    /// Sends a request and returns the response (which must echo its id).
    pub fn request(&mut self, message: impl Into<Message>) -> Message {
        let id = self.send(message);
        let frame = self.next_frame();
        assert_eq!(frame.request_id, id, "response must echo the request id: {frame:?}");
        frame.message
    }

    /// Sends a whole frame as given (any class, any id).
    pub fn send_frame(&mut self, frame: Frame) {
        self.stream.write_all(&frame.to_bytes().unwrap()).unwrap();
    }

    /// Writes raw bytes.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next frame; panics on anything else.
    pub fn next_frame(&mut self) -> Frame {
        match self.next_event() {
            Event::Frame(frame) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame, decode error or end of stream (waits at most [`TIMEOUT`]).
    pub fn next_event(&mut self) -> Event {
        let mut chunk = [0u8; 8192];
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => return Event::Frame(frame),
                Ok(None) => {}
                Err(err) => return Event::Error(err),
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Event::Closed,
                Ok(n) => self.decoder.feed(&chunk[..n]),
                Err(err) if err.kind() == ErrorKind::ConnectionReset => return Event::Closed,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => panic!("read failed (timeout?): {err}"),
            }
        }
    }

    /// Reads frames until the server closes; returns them.
    pub fn frames_until_closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        loop {
            match self.next_event() {
                Event::Frame(frame) => frames.push(frame),
                Event::Closed => return frames,
                Event::Error(err) => panic!("server sent undecodable bytes: {err}"),
            }
        }
    }
}

/// A running `tnlm-server` process and the address from its listening line.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
    /// Receives once stdout reaches end of file, i.e. the process has exited.
    stdout_closed: mpsc::Receiver<()>,
}

impl ServerProcess {
    /// Starts `tnlm-server` on 127.0.0.1 with a free port, named `cli-test`,
    /// logging at debug level, and waits for its listening line.
    pub fn start(args: &[&str]) -> ServerProcess {
        ServerProcess::start_logging("debug", args)
    }

    /// As [`start`](Self::start), with `RUST_LOG` set to `level`.
    pub fn start_logging(level: &str, args: &[&str]) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tnlm-server"))
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--name",
                "cli-test",
                "--engine",
                tnlm_server::Engine::under_test().name(),
            ])
            .args(args)
            .env("RUST_LOG", level)
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
        ServerProcess { child, addr: addr.parse().unwrap(), stderr, stdout_closed }
    }
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

impl ServerProcess {
    /// Waits for a stderr line containing `needle`; returns it.
    pub fn wait_log(&self, needle: &str) -> String {
        loop {
            let line = self.stderr.recv_timeout(TIMEOUT).unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Every stderr line up to and including the first containing `needle`.
    pub fn log_until(&self, needle: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line =
                self.stderr.recv_timeout(TIMEOUT).unwrap_or_else(|_| panic!("no log line with {needle:?}: {lines:#?}"));
            let found = line.contains(needle);
            lines.push(line);
            if found {
                return lines;
            }
        }
    }

    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.stdout_closed.recv_timeout(TIMEOUT).expect("server did not exit");
        self.child.wait().unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// The server process's resident memory in KiB (Linux).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}
