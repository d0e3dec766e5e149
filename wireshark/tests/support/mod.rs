//! Shared by the tshark tests and the `captures` example: a raw TNLM client built on
//! `tnlm-core`, a loopback capture (`tnlm_labs::capture::Dumpcap`: ready when dumpcap has
//! written its headers, ended once a UDP marker datagram shows up in its output, never by a
//! sleep), the traffic scenarios that make the sample captures, and helpers to run tshark.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use tnlm_core::message::{Ack, ListRequest, NameRequest, SendRequest, TimeRequest};
use tnlm_core::{Decoder, Frame, Message};
use tnlm_labs::capture::Dumpcap;
use tnlm_server::{Config, Server};

/// The longest any single wait may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Errors are plain text: these helpers serve tests and a developer tool.
pub type Result<T> = std::result::Result<T, String>;

fn err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A protocol client with no logic of its own: it sends what it is told and reads frames.
pub struct RawClient {
    stream: TcpStream,
    decoder: Decoder,
    /// The id from the server's hello.
    pub id: u32,
    next_id: u32,
}

impl RawClient {
    /// Connects and reads the hello.
    pub fn connect(addr: SocketAddr) -> Result<RawClient> {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(err("connect"))?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(err("set_read_timeout"))?;
        let mut client = RawClient { stream, decoder: Decoder::new(16 << 20), id: 0, next_id: 1 };
        match client.next_frame()?.map(|f| f.message) {
            Some(Message::Hello(hello)) => client.id = hello.client_id,
            other => return Err(format!("expected a hello first, got {other:?}")),
        }
        Ok(client)
    }

    /// Connects without reading anything.
    pub fn connect_silent(addr: SocketAddr) -> Result<RawClient> {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(err("connect"))?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(err("set_read_timeout"))?;
        Ok(RawClient { stream, decoder: Decoder::new(16 << 20), id: 0, next_id: 1 })
    }

    /// The client's local (source) port.
    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().map_or(0, |a| a.port())
    }

    /// Sends a request with the next request id; returns that id.
    pub fn send(&mut self, message: impl Into<Message>) -> Result<u32> {
        let id = self.next_id;
        self.next_id += 1;
        let bytes = Frame::new(id, message).to_bytes().map_err(err("encode"))?;
        self.write_raw(&bytes)?;
        Ok(id)
    }

    /// Writes raw bytes.
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).map_err(err("write"))
    }

    /// Sends a request and returns the response (which must echo its id).
    pub fn request(&mut self, message: impl Into<Message>) -> Result<Message> {
        let id = self.send(message)?;
        let frame = self.next_frame()?.ok_or("connection closed before the response")?;
        if frame.request_id != id {
            return Err(format!("response to #{id} came as {frame:?}"));
        }
        Ok(frame.message)
    }

    /// The next frame, or `None` when the server closed the connection.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        let mut chunk = [0u8; 16384];
        loop {
            if let Some(frame) = self.decoder.next_frame().map_err(err("decode"))? {
                return Ok(Some(frame));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.decoder.feed(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// Reads frames until the shutdown notice (or the end of the stream).
    pub fn until_shutdown(&mut self) -> Result<()> {
        while let Some(frame) = self.next_frame()? {
            if matches!(frame.message, Message::Shutdown(_)) {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Why a capture could not be made; `Unavailable` (no dumpcap, no rights) lets a test skip.
pub use tnlm_labs::capture::CaptureError;

/// What a scenario does; see [`Scenario::all`] for the sample captures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scenario {
    /// File name stem of the sample capture.
    pub name: &'static str,
    /// How many clients connect (and get a hello).
    pub clients: usize,
    /// Client 1 asks the time.
    pub time: bool,
    /// Client 1 asks the name.
    pub name_request: bool,
    /// Client 1 asks the list.
    pub list: bool,
    /// Client 1 sends "Hello world!" to client 2.
    pub message: bool,
    /// Client 1 sends a message to an id nobody has.
    pub unknown: bool,
    /// The last client writes this many time requests in one go and reads the responses.
    pub burst: usize,
    /// A stranger sends non-TNLM bytes (bad magic), and client 1 a malformed payload.
    pub malformed: bool,
}

/// The id no client has in the scenarios.
pub const UNKNOWN_ID: u32 = 999;
/// The message text of the scenarios.
pub const HELLO_TEXT: &str = "Hello world!";
/// The server name of the scenarios.
pub const SERVER_NAME: &str = "capture";

impl Scenario {
    /// One small capture per function (the files in `examples/captures/`).
    pub fn all() -> Vec<Scenario> {
        let base = Scenario { clients: 1, ..Scenario::default() };
        vec![
            Scenario { name: "hello", ..base },
            Scenario { name: "time", time: true, ..base },
            Scenario { name: "name", name_request: true, ..base },
            Scenario { name: "list", clients: 3, list: true, ..base },
            Scenario { name: "message", clients: 2, message: true, ..base },
            Scenario { name: "message-unknown-id", unknown: true, ..base },
            Scenario { name: "burst-100", burst: 100, ..base },
            Scenario { name: "malformed", malformed: true, ..base },
        ]
    }

    /// Everything at once, with a burst of `burst` time requests.
    pub fn full(burst: usize) -> Scenario {
        Scenario {
            name: "full",
            clients: 3,
            time: true,
            name_request: true,
            list: true,
            message: true,
            unknown: true,
            burst,
            malformed: true,
        }
    }
}

/// What happened in a scenario, to check the capture against.
#[derive(Debug, Default)]
pub struct Facts {
    /// The server's port.
    pub port: u16,
    /// (id, source port) of each client, in connection order.
    pub clients: Vec<(u32, u16)>,
}

/// Starts a server, captures the scenario's traffic on loopback, shuts the server down
/// (every client gets the shutdown notice) and returns the pcapng bytes.
pub fn capture(scenario: &Scenario) -> std::result::Result<(Vec<u8>, Facts), CaptureError> {
    let config = Config { bind: Some([127, 0, 0, 1].into()), port: 0, name: SERVER_NAME.into(), ..Config::default() };
    let server = Server::bind(config).map_err(err("bind"))?.spawn();
    let addr = server.local_addr();
    let capture = Dumpcap::start("lo", &format!("port {}", addr.port()), TIMEOUT)?;
    let mut facts = Facts { port: addr.port(), clients: Vec::new() };
    let mut clients = Vec::new();
    for _ in 0..scenario.clients.max(1) {
        let client = RawClient::connect(addr)?;
        facts.clients.push((client.id, client.local_port()));
        clients.push(client);
    }
    run(scenario, addr, &mut clients)?;
    let result: Result<()> = thread::scope(|s| {
        let stopper = s.spawn(|| server.shutdown());
        for client in &mut clients {
            client.until_shutdown()?;
        }
        clients.clear();
        stopper.join().map_err(|_| "server shutdown panicked".to_string())
    });
    result?;
    let pcap = capture.finish(SocketAddr::from(([127, 0, 0, 1], addr.port())))?;
    Ok((pcap, facts))
}

fn expect(what: &str, ok: bool, got: &Message) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}: unexpected {got:?}"))
    }
}

fn run(scenario: &Scenario, addr: SocketAddr, clients: &mut [RawClient]) -> Result<()> {
    let ids: Vec<u32> = clients.iter().map(|c| c.id).collect();
    let first = &mut clients[0];
    if scenario.time {
        let got = first.request(TimeRequest)?;
        expect("time", matches!(got, Message::TimeResponse(_)), &got)?;
    }
    if scenario.name_request {
        let got = first.request(NameRequest)?;
        expect("name", matches!(&got, Message::NameResponse(n) if n.name == SERVER_NAME), &got)?;
    }
    if scenario.list {
        let got = first.request(ListRequest)?;
        expect("list", matches!(&got, Message::ListResponse(l) if l.clients.len() == ids.len()), &got)?;
    }
    if scenario.message {
        let to = *ids.get(1).ok_or("the message scenario needs two clients")?;
        let request_id = first.send(SendRequest { to, text: HELLO_TEXT.into() })?;
        // The target acknowledges (as tnlm-client's receiver does); only then
        // does the sender hear "delivered".
        let forwarded = clients[1].next_frame()?.ok_or("connection closed before the message")?;
        match &forwarded.message {
            Message::Forwarded(f) if f.text == HELLO_TEXT => {}
            other => return Err(format!("expected the forwarded message, got {other:?}")),
        }
        let ack = Frame::new(forwarded.request_id, Ack).to_bytes().map_err(err("encode"))?;
        clients[1].write_raw(&ack)?;
        let got = clients[0].next_frame()?.ok_or("connection closed before the receipt")?;
        expect("receipt id", got.request_id == request_id, &got.message)?;
        let got = got.message;
        expect("delivery", matches!(&got, Message::Delivery(d) if d.status.name() == "delivered"), &got)?;
    }
    if scenario.unknown {
        let got = clients[0].request(SendRequest { to: UNKNOWN_ID, text: "anyone there?".into() })?;
        expect("unknown id", matches!(&got, Message::Delivery(d) if d.status.name() == "no_such_client"), &got)?;
    }
    if scenario.burst > 0 {
        let last = clients.len() - 1;
        let client = &mut clients[last];
        let mut bytes = Vec::new();
        let mut wanted = Vec::new();
        for _ in 0..scenario.burst {
            let id = client.next_id;
            client.next_id += 1;
            Frame::new(id, TimeRequest).encode_into(&mut bytes, u32::MAX).map_err(err("encode"))?;
            wanted.push(id);
        }
        client.write_raw(&bytes)?;
        for id in wanted {
            let frame = client.next_frame()?.ok_or("closed during the burst")?;
            if frame.request_id != id || !matches!(frame.message, Message::TimeResponse(_)) {
                return Err(format!("burst: expected time response #{id}, got {frame:?}"));
            }
        }
    }
    if scenario.malformed {
        // A stranger speaking HTTP (after the hello, so a dissector on another port has
        // recognised the connection): the server answers bad_magic and closes.
        let mut stranger = RawClient::connect(addr)?;
        stranger.write_raw(b"GET / HTTP/1.1\r\nHost: tnlm\r\n\r\n")?;
        let mut saw_error = false;
        loop {
            match stranger.next_frame() {
                Ok(Some(frame)) => saw_error |= matches!(frame.message, Message::Error(_)),
                Ok(None) => break,
                Err(e) => return Err(format!("stranger: {e}")),
            }
        }
        if !saw_error {
            return Err("the server sent no error to the stranger".into());
        }
        // A valid header whose payload is cut short: malformed_payload, and the connection goes on.
        let client = &mut clients[0];
        let mut bad = Frame::new(500, SendRequest { to: 1, text: "cut".into() }).to_bytes().map_err(err("encode"))?;
        bad.truncate(bad.len() - 2);
        let length = (bad.len() - tnlm_core::HEADER_LEN) as u32;
        bad[12..16].copy_from_slice(&length.to_le_bytes());
        client.write_raw(&bad)?;
        let got = client.next_frame()?.ok_or("closed after a malformed payload")?;
        expect("malformed", matches!(got.message, Message::Error(_)) && got.request_id == 500, &got.message)?;
        let got = client.request(TimeRequest)?;
        expect("time after malformed", matches!(got, Message::TimeResponse(_)), &got)?;
    }
    Ok(())
}

/// The dissector users run: the committed file.
pub fn lua_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tnlm.lua")
}

/// `-X lua_script:<tnlm.lua>`.
pub fn lua_arg() -> String {
    format!("lua_script:{}", lua_script().display())
}

/// Runs tshark; returns stdout and the stderr lines that are not the harmless root warning.
pub fn tshark(args: &[&str]) -> Result<(String, Vec<String>)> {
    let out = Command::new("tshark").args(args).stdin(Stdio::null()).output().map_err(err("run tshark"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<String> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !l.starts_with("Running as user \"root\""))
        .map(str::to_string)
        .collect();
    if !out.status.success() {
        return Err(format!("tshark {args:?} failed ({}): {}", out.status, problems.join("\n")));
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), problems))
}

/// Runs `tshark -r FILE -T fields` with the dissector and returns, per packet that
/// matches `filter`, per field, all occurrences. Fails on any stderr output.
pub fn fields(file: &Path, filter: &str, names: &[&str]) -> Result<Vec<Vec<Vec<String>>>> {
    fields_with(&[], file, filter, names)
}

/// [`fields`] with extra tshark options first (e.g. `-2` for two passes).
pub fn fields_with(extra: &[&str], file: &Path, filter: &str, names: &[&str]) -> Result<Vec<Vec<Vec<String>>>> {
    let lua = lua_arg();
    let file = file.display().to_string();
    let mut args = extra.to_vec();
    args.extend(["-X", &lua, "-r", &file, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=\u{1e}"]);
    args.extend(["-E", "separator=\u{1f}"]);
    if !filter.is_empty() {
        args.extend(["-Y", filter]);
    }
    for name in names {
        args.extend(["-e", name]);
    }
    let (out, problems) = tshark(&args)?;
    if !problems.is_empty() {
        return Err(format!("tshark printed on stderr: {}", problems.join("\n")));
    }
    Ok(out
        .lines()
        .map(|line| {
            line.split('\u{1f}')
                .map(|f| if f.is_empty() { Vec::new() } else { f.split('\u{1e}').map(str::to_string).collect() })
                .collect()
        })
        .collect())
}

/// All occurrences of field `index` over all packets, in order.
pub fn column(rows: &[Vec<Vec<String>>], index: usize) -> Vec<String> {
    rows.iter().flat_map(|r| r.get(index).cloned().unwrap_or_default()).collect()
}

/// Writes `pcap` without the capture's UDP marker datagram to `out` (via tshark).
pub fn strip_marker(pcap: &[u8], out: &Path) -> Result<()> {
    let raw = out.with_extension("raw.pcapng");
    std::fs::write(&raw, pcap).map_err(err("write capture"))?;
    let (raw_s, out_s) = (raw.display().to_string(), out.display().to_string());
    let result = tshark(&["-r", &raw_s, "-Y", "tcp", "-F", "pcapng", "-w", &out_s]);
    let _ = std::fs::remove_file(&raw);
    let (_, problems) = result?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}
