//! # tnlm-labs — the lab report's TCP experiments, one command each
//!
//! The lab report (sections 四 and 五) asks students to *observe* TCP at work:
//! coalescing of a burst, many clients at once, a pulled cable, ephemeral
//! ports, the listen queue, TIME_WAIT and RST, and how a server tells its
//! clients apart — and, as the course's next chapter, how many clients a
//! server can hold (C10k). Each module here is one of those experiments. It
//! starts a real TNLM server in this process (the `tnlm-server` library; the
//! C10k experiment runs it in a process of its own), talks to it
//! with the `tnlm-client` library or plain sockets, reads what the operating
//! system says (`/proc/net/tcp`, `ss`, `netstat`), optionally records a
//! pcapng with dumpcap, and prints what it saw in plain words and numbers.
//!
//! The binary `tnlm-labs` runs them: `cargo run -p tnlm-labs -- burst`.
//! Every `run` function also returns its observation as a struct, which the
//! tests in `tests/` check. `docs/LABS.md` walks through each one.

pub mod backlog;
pub mod burst;
pub mod c10k;
pub mod cable;
pub mod capture;
pub mod closing;
pub mod many;
pub mod netns;
pub mod ports;
pub mod process_stats;
pub mod sockets;
pub mod whois;

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tnlm_client::connection::{wait_response, Settings};
use tnlm_client::{ClientError, Connection, Event, EventSource, Inbox};
use tnlm_core::sockopt::SocketOptions;
use tnlm_core::{Frame, Message};
use tnlm_server::{Config, RunningServer, Server};

/// How long any single wait in an experiment may take before it is a failure.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why an experiment did not produce its observation.
#[derive(Debug)]
pub enum LabError {
    /// This machine cannot run it (no root, no network namespaces, not Linux, …).
    Unsupported(String),
    /// Something went wrong while running it.
    Failed(String),
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabError::Unsupported(why) => write!(f, "cannot run here: {why}"),
            LabError::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for LabError {}

impl From<io::Error> for LabError {
    fn from(err: io::Error) -> LabError {
        LabError::Failed(err.to_string())
    }
}

impl From<ClientError> for LabError {
    fn from(err: ClientError) -> LabError {
        LabError::Failed(err.to_string())
    }
}

impl From<String> for LabError {
    fn from(why: String) -> LabError {
        LabError::Failed(why)
    }
}

/// The result of an experiment step.
pub type Result<T> = std::result::Result<T, LabError>;

/// Where an experiment writes its pcapng captures; `None`: no captures.
#[derive(Debug, Clone, Default)]
pub struct CaptureTo {
    /// The directory the `.pcapng` files go to.
    pub dir: Option<PathBuf>,
}

impl CaptureTo {
    /// No captures.
    pub fn none() -> CaptureTo {
        CaptureTo { dir: None }
    }

    /// Captures into `dir`.
    pub fn dir(dir: impl Into<PathBuf>) -> CaptureTo {
        CaptureTo { dir: Some(dir.into()) }
    }
}

/// The repository root (this crate lives in `examples/labs`).
pub fn repo_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("..");
    root.canonicalize().unwrap_or(root)
}

/// Where captures go unless told otherwise: `target/labs/` in the repository.
pub fn default_capture_dir() -> PathBuf {
    repo_root().join("target").join("labs")
}

/// The Wireshark dissector generated from `tnlm-core`.
pub fn dissector() -> PathBuf {
    repo_root().join("wireshark").join("tnlm.lua")
}

/// Starts a TNLM server in this process on 127.0.0.1 and a free port, with
/// `tweak` applied to the default configuration.
pub fn start_server(tweak: impl FnOnce(&mut Config)) -> Result<RunningServer> {
    let mut config = Config { bind: Some([127, 0, 0, 1].into()), port: 0, name: "lab".into(), ..Config::default() };
    tweak(&mut config);
    let server = Server::bind(config).map_err(|e| LabError::Failed(format!("cannot start the server: {e}")))?;
    Ok(server.spawn())
}

/// Connection settings with these socket options and [`TIMEOUT`].
pub fn settings(socket: SocketOptions) -> Settings {
    Settings { socket, timeout: TIMEOUT, heartbeat: None }
}

/// Connects a `tnlm-client` library connection to `server` (waits for the hello).
pub fn connect(server: SocketAddr, socket: SocketOptions) -> Result<(Connection, Inbox)> {
    Ok(Connection::open(&server.to_string(), &settings(socket))?)
}

/// Sends one request and waits for its response; indications meanwhile are ignored.
pub fn request(connection: &mut Connection, inbox: &mut Inbox, message: impl Into<Message>) -> Result<Message> {
    let id = connection.send(message)?;
    let frame: Frame = wait_response(inbox, id, Instant::now() + TIMEOUT, |_| {})
        .map_err(|e| LabError::Failed(format!("no response to request #{id}: {e:?}")))?;
    Ok(frame.message)
}

/// How the answers to a burst of time requests came back.
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    /// Time responses received.
    pub received: u32,
    /// Of those, the ones whose request id was one of the burst's.
    pub matched: u32,
    /// When the last of them arrived.
    pub last: Instant,
}

/// Reads time responses until every id in `pending` is answered or
/// [`TIMEOUT`] after `start` has passed; other frames are ignored.
pub fn collect_time_responses(inbox: &mut Inbox, mut pending: HashSet<u32>, start: Instant) -> Result<Tally> {
    let mut tally = Tally { received: 0, matched: 0, last: start };
    while !pending.is_empty() {
        match inbox.next_event(Some(start + TIMEOUT)) {
            None => break,
            Some(Event::Closed(reason)) => return Err(LabError::Failed(format!("connection closed: {reason}"))),
            Some(Event::Frame(frame)) if matches!(frame.message, Message::TimeResponse(_)) => {
                tally.received += 1;
                tally.matched += u32::from(pending.remove(&frame.request_id));
                tally.last = Instant::now();
            }
            Some(_) => {}
        }
    }
    Ok(tally)
}

/// Reads a plain socket until the server's hello (sent right after `accept()`)
/// and returns the client id in it.
pub fn read_hello(stream: &mut std::net::TcpStream) -> Result<u32> {
    use std::io::Read;
    stream.set_read_timeout(Some(TIMEOUT))?;
    let mut decoder = tnlm_core::Decoder::new(1 << 16);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(frame) = decoder.next_frame().map_err(|e| LabError::Failed(e.to_string()))? {
            return hello_id(Some(frame.message));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return hello_id(None),
            Ok(n) => decoder.feed(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(LabError::Failed(format!("no hello within {}", secs(TIMEOUT))));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The client id in the first frame a server sent (`None`: it closed
/// first), or what went wrong, in words: a refusal (`too_many_clients`, the
/// shutdown notice) or anything else.
pub fn hello_id(first: Option<Message>) -> Result<u32> {
    match first {
        Some(Message::Hello(hello)) => Ok(hello.client_id),
        Some(Message::Error(body)) => Err(LabError::Failed(format!(
            "the server refused instead of saying hello: {} ({})",
            body.text,
            body.code.name()
        ))),
        Some(other) => Err(LabError::Failed(format!("expected the hello, got {}", other.payload_name()))),
        None => Err(LabError::Failed("the server closed before its hello".into())),
    }
}

/// Milliseconds with two decimals, for printing.
pub fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

/// Seconds with two decimals, for printing.
pub fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// Prints an experiment's heading.
pub fn heading(title: &str) {
    println!();
    println!("== {title}");
}

/// Prints the "why" paragraph of an experiment, indented.
pub fn explain(text: &str) {
    println!();
    for line in text.lines() {
        println!("   {line}");
    }
}
