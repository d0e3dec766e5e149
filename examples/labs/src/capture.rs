//! Recording an experiment's packets with dumpcap (Linux) and reading them
//! back with tshark and the TNLM dissector.
//!
//! The capture is trustworthy without any sleep: [`Capture::start`] returns
//! once dumpcap has said "Capturing on" *and* written the pcapng headers (so
//! the interface is open and the filter set); [`Capture::finish`] sends a UDP
//! marker datagram that matches the filter, waits until dumpcap has written
//! it (so every earlier packet is on disk too), then stops dumpcap with
//! SIGINT. The marker is removed again with tshark. [`Dumpcap`] does the
//! capturing, for the experiments and for the dissector's tests
//! (`wireshark/tests/support/mod.rs`).
//!
//! Where dumpcap is missing, or may not capture (not root, not in the
//! `wireshark` group, not Linux), [`Capture::start`] says so with
//! [`CaptureError::Unavailable`] and the experiment goes on without.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::{CaptureTo, TIMEOUT};

/// Why there is no capture.
#[derive(Debug)]
pub enum CaptureError {
    /// dumpcap is missing or may not capture here: the experiment goes on without.
    Unavailable(String),
    /// Capturing failed.
    Failed(String),
}

impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaptureError::Unavailable(why) => write!(f, "no capture: {why}"),
            CaptureError::Failed(why) => write!(f, "capture failed: {why}"),
        }
    }
}

impl From<String> for CaptureError {
    fn from(why: String) -> CaptureError {
        CaptureError::Failed(why)
    }
}

enum Chunk {
    Data,
    Eof,
}

/// A running dumpcap writing pcapng into this process: the capture scheme
/// of the module docs, shared by the experiments ([`Capture`]) and the
/// dissector's tests (`wireshark/tests/support/mod.rs`).
pub struct Dumpcap {
    child: Child,
    timeout: Duration,
    data: Arc<Mutex<Vec<u8>>>,
    chunks: Receiver<Chunk>,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

fn interrupt(pid: u32) {
    let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status();
}

impl Dumpcap {
    /// Runs `dumpcap -i INTERFACE -f FILTER -w -` and returns once it captures:
    /// it has said "Capturing on" and written the pcapng headers. Each wait,
    /// here and in [`Dumpcap::finish`], gives up after `timeout`.
    pub fn start(interface: &str, filter: &str, timeout: Duration) -> Result<Dumpcap, CaptureError> {
        let spawned = Command::new("dumpcap")
            .args(["-q", "-i", interface, "-f", filter, "-w", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                return Err(CaptureError::Unavailable(format!("cannot run dumpcap ({e}); apt-get install tshark")))
            }
        };
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(CaptureError::Failed("no pipes to dumpcap".into()));
        };
        let (lines, stderr) = collect_lines(stderr);
        let (data, chunks, reader) = collect_bytes(stdout);
        let mut dumpcap = Dumpcap { child, timeout, data, chunks, stderr, reader: Some(reader) };
        let deadline = Instant::now() + timeout;
        loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains("Capturing on") => break,
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(dumpcap.refused()),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(CaptureError::Failed(dumpcap.stopped("did not start capturing in time")))
                }
            }
        }
        // "Capturing on" comes before the interface is open; the pcapng headers after.
        match dumpcap.chunks.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Chunk::Data) => Ok(dumpcap),
            Ok(Chunk::Eof) | Err(RecvTimeoutError::Disconnected) => Err(dumpcap.refused()),
            Err(RecvTimeoutError::Timeout) => {
                Err(CaptureError::Failed(dumpcap.stopped("wrote no capture header in time")))
            }
        }
    }

    /// Sends a marker datagram to `marker_to` (it must pass the filter and
    /// cross the interface), waits until dumpcap has written it, so every
    /// earlier packet is written too, stops dumpcap with SIGINT and returns
    /// the pcapng bytes, marker included.
    pub fn finish(mut self, marker_to: SocketAddr) -> Result<Vec<u8>, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let marker = format!("TNLM-CAPTURE-END-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let socket = UdpSocket::bind(SocketAddr::new(unspecified(marker_to), 0)).map_err(|e| e.to_string())?;
        socket.set_broadcast(true).map_err(|e| e.to_string())?;
        socket.send_to(marker.as_bytes(), marker_to).map_err(|e| format!("marker: {e}"))?;
        let deadline = Instant::now() + self.timeout;
        let mut searched = 0;
        loop {
            {
                let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
                let from = searched.min(data.len()).saturating_sub(marker.len());
                if data[from..].windows(marker.len()).any(|w| w == marker.as_bytes()) {
                    break;
                }
                searched = data.len();
            }
            match self.chunks.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Chunk::Data) => {}
                Ok(Chunk::Eof) | Err(RecvTimeoutError::Disconnected) => return Err(self.stopped("exited early")),
                Err(RecvTimeoutError::Timeout) => return Err(self.stopped("never wrote the end marker")),
            }
        }
        interrupt(self.child.id());
        loop {
            match self.chunks.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Chunk::Data) => {}
                Ok(Chunk::Eof) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => return Err(self.stopped("did not stop on SIGINT")),
            }
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let status = self.child.wait().map_err(|e| format!("waiting for dumpcap: {e}"))?;
        if !status.success() {
            return Err(format!("dumpcap failed ({status}): {}", self.said()));
        }
        Ok(std::mem::take(&mut *self.data.lock().unwrap_or_else(|p| p.into_inner())))
    }

    /// dumpcap exited before capturing: why, from its first real line (it
    /// explains a refusal at length), with a hint when it lacks the rights.
    fn refused(&mut self) -> CaptureError {
        let _ = self.child.wait();
        let lines = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        let first = lines.iter().map(|l| l.trim()).find(|l| !l.is_empty() && !l.starts_with("Capturing on"));
        let first = first.unwrap_or("no reason given").trim_start_matches("dumpcap: ");
        let hint = if first.contains("permission") { " (run as root, or join the wireshark group)" } else { "" };
        CaptureError::Unavailable(format!("dumpcap exited: {first}{hint}"))
    }

    fn said(&self) -> String {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).join(" / ")
    }

    fn stopped(&mut self, what: &str) -> String {
        interrupt(self.child.id());
        let _ = self.child.wait();
        format!("dumpcap {what}: {}", self.said())
    }
}

impl Drop for Dumpcap {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            interrupt(self.child.id());
            let _ = self.child.wait();
        }
    }
}

/// Keeps every line dumpcap writes to stderr, and passes each on as it comes.
fn collect_lines(stderr: ChildStderr) -> (Receiver<String>, Arc<Mutex<Vec<String>>>) {
    let (line_tx, lines) = mpsc::channel();
    let kept = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&kept);
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(std::result::Result::ok) {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(line.clone());
            let _ = line_tx.send(line);
        }
    });
    (lines, kept)
}

/// Collects the pcapng dumpcap writes to stdout; a [`Chunk`] announces each
/// piece and the end.
fn collect_bytes(mut stdout: ChildStdout) -> (Arc<Mutex<Vec<u8>>>, Receiver<Chunk>, JoinHandle<()>) {
    let data = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&data);
    let (chunk_tx, chunks) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 65536];
        loop {
            match stdout.read(&mut buf) {
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    sink.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(&buf[..n]);
                    let _ = chunk_tx.send(Chunk::Data);
                }
            }
        }
        let _ = chunk_tx.send(Chunk::Eof);
    });
    (data, chunks, reader)
}

/// An experiment's capture, written to `<dir>/<name>.pcapng` when finished.
pub struct Capture {
    dumpcap: Dumpcap,
    file: PathBuf,
    marker_to: SocketAddr,
}

impl Capture {
    /// Captures on `interface` with the BPF `filter` into `<dir>/<name>.pcapng`.
    /// `marker_to` must pass the filter and leave through the interface: the
    /// end-of-capture datagram is sent there.
    pub fn start(
        to: &CaptureTo,
        name: &str,
        interface: &str,
        filter: &str,
        marker_to: SocketAddr,
    ) -> Result<Capture, CaptureError> {
        let Some(dir) = &to.dir else {
            return Err(CaptureError::Unavailable("captures turned off (--no-capture)".into()));
        };
        if !cfg!(target_os = "linux") {
            return Err(CaptureError::Unavailable(
                "the examples capture on Linux only; on Windows start Wireshark on the loopback adapter".into(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| CaptureError::Failed(format!("{}: {e}", dir.display())))?;
        let file = dir.join(format!("{name}.pcapng"));
        let dumpcap = Dumpcap::start(interface, filter, TIMEOUT)?;
        Ok(Capture { dumpcap, file, marker_to })
    }

    /// Starts a capture of the TCP traffic to and from `port` on the loopback interface.
    pub fn loopback(to: &CaptureTo, name: &str, port: u16) -> Result<Capture, CaptureError> {
        let marker_to = SocketAddr::from(([127, 0, 0, 1], port));
        Capture::start(to, name, "lo", &format!("port {port}"), marker_to)
    }

    /// Stops the capture (see the module docs) and writes the file without the
    /// marker. Returns the file's path.
    pub fn finish(self) -> Result<PathBuf, String> {
        let pcap = self.dumpcap.finish(self.marker_to)?;
        strip_marker(&pcap, &self.file)?;
        Ok(self.file)
    }
}

fn unspecified(like: SocketAddr) -> std::net::IpAddr {
    match like {
        SocketAddr::V4(_) => [0, 0, 0, 0].into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// Writes `pcap` to `out` without the UDP end marker (through tshark), or as
/// it is if tshark is missing.
fn strip_marker(pcap: &[u8], out: &Path) -> Result<(), String> {
    let raw = out.with_extension("raw.pcapng");
    std::fs::write(&raw, pcap).map_err(|e| format!("{}: {e}", raw.display()))?;
    let (raw_s, out_s) = (raw.display().to_string(), out.display().to_string());
    let result = Command::new("tshark").args(["-r", &raw_s, "-Y", "not udp", "-F", "pcapng", "-w", &out_s]).output();
    match result {
        Ok(output) if output.status.success() => {
            let _ = std::fs::remove_file(&raw);
            Ok(())
        }
        Ok(output) => Err(format!("tshark could not rewrite the capture: {}", String::from_utf8_lossy(&output.stderr))),
        Err(_) => std::fs::rename(&raw, out).map_err(|e| e.to_string()),
    }
}

/// Runs tshark with the TNLM dissector on `file` and returns the fields of
/// every packet matching `filter`, one `Vec` per packet, one `String` per
/// field (several occurrences joined by `,`).
pub fn tshark_fields(file: &Path, filter: &str, fields: &[&str]) -> Result<Vec<Vec<String>>, String> {
    let lua = format!("lua_script:{}", crate::dissector().display());
    let file = file.display().to_string();
    // The experiments' servers listen on a port the OS picks, so the dissector
    // finds their streams by its heuristic. TCP tries a dissector registered
    // for either port before any heuristic, and a client's port can be one
    // (44322 is Performance Co-Pilot's): heuristics first, then.
    let mut args = vec!["-X", &lua, "-o", "tcp.try_heuristic_first:TRUE", "-r", &file, "-T", "fields"];
    args.extend(["-E", "occurrence=a", "-E", "aggregator=,"]);
    args.extend(["-E", "separator=/t", "-Y", filter]);
    for field in fields {
        args.extend(["-e", field]);
    }
    let output = Command::new("tshark")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run tshark ({e}); apt-get install tshark"))?;
    if !output.status.success() {
        return Err(format!("tshark failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text.lines().map(|line| line.split('\t').map(str::to_string).collect()).collect())
}

/// One TCP packet of a capture, as tshark and the TNLM dissector see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Packet {
    /// Seconds since the first packet of the capture.
    pub time: f64,
    /// TCP source port.
    pub src_port: u16,
    /// TCP destination port.
    pub dst_port: u16,
    /// TCP payload bytes.
    pub len: usize,
    /// SYN flag.
    pub syn: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// Wireshark's analysis: a retransmission.
    pub retransmission: bool,
    /// Wireshark's analysis: a keep-alive probe.
    pub keepalive: bool,
    /// The TNLM frames the dissector found in it, as `"T response"`, `"H indication"`, …
    pub frames: Vec<String>,
}

const PACKET_FIELDS: [&str; 11] = [
    "frame.time_relative",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.len",
    "tcp.flags.syn",
    "tcp.flags.fin",
    "tcp.flags.reset",
    "tcp.analysis.retransmission",
    "tcp.analysis.keep_alive",
    "tnlm.type",
    "tnlm.class",
];

/// Every TCP packet of `file`, read in one pass of tshark with the dissector.
pub fn packets(file: &Path) -> Result<Vec<Packet>, String> {
    let rows = tshark_fields(file, "tcp", &PACKET_FIELDS)?;
    let flag = |v: Option<&String>| v.is_some_and(|v| v == "1" || v == "True");
    let present = |v: Option<&String>| v.is_some_and(|v| !v.is_empty());
    let number = |v: Option<&String>| v.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok(rows
        .iter()
        .map(|row| {
            let types = row.get(9).map_or("", String::as_str).split(',');
            let classes = row.get(10).map_or("", String::as_str).split(',');
            let frames = types
                .zip(classes)
                .filter(|(t, _)| !t.is_empty())
                .map(|(letter, class)| {
                    let class = match class {
                        "0" => "request",
                        "1" => "response",
                        "2" => "indication",
                        _ => "?",
                    };
                    format!("{} {class}", letter.trim_matches('\''))
                })
                .collect();
            Packet {
                time: row.first().and_then(|t| t.parse().ok()).unwrap_or(0.0),
                src_port: number(row.get(1)) as u16,
                dst_port: number(row.get(2)) as u16,
                len: number(row.get(3)) as usize,
                syn: flag(row.get(4)),
                fin: flag(row.get(5)),
                rst: flag(row.get(6)),
                retransmission: present(row.get(7)),
                keepalive: present(row.get(8)),
                frames,
            }
        })
        .collect())
}

/// The server's port: where the first SYN went.
pub fn server_port(packets: &[Packet]) -> Option<u16> {
    packets.iter().find(|p| p.syn).map(|p| p.dst_port)
}

/// What one direction of a TCP connection looked like on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Direction {
    /// TCP segments carrying data (`tcp.len > 0`).
    pub segments: usize,
    /// TNLM frames the dissector found, by type letter and class
    /// (`"T response"`, `"H indication"`, …).
    pub frames: BTreeMap<String, usize>,
}

impl Direction {
    /// All TNLM frames in this direction.
    pub fn frame_count(&self) -> usize {
        self.frames.values().sum()
    }

    /// Frames of one kind, e.g. `"T request"`.
    pub fn count(&self, kind: &str) -> usize {
        self.frames.get(kind).copied().unwrap_or(0)
    }
}

/// Data segments and TNLM frames per direction of the traffic to and from a
/// server port: `(client → server, server → client)`.
pub fn directions(packets: &[Packet], server_port: u16) -> (Direction, Direction) {
    let (mut up, mut down) = (Direction::default(), Direction::default());
    for packet in packets.iter().filter(|p| p.len > 0) {
        let direction = if packet.src_port == server_port { &mut down } else { &mut up };
        direction.segments += 1;
        for frame in &packet.frames {
            *direction.frames.entry(frame.clone()).or_default() += 1;
        }
    }
    (up, down)
}

/// The command that shows a capture with the TNLM dissector.
pub fn tshark_hint(file: &Path) -> String {
    format!("tshark -X lua_script:wireshark/tnlm.lua -r {}", display_path(file))
}

/// A path relative to the repository root when it is inside it.
pub fn display_path(file: &Path) -> String {
    let root = crate::repo_root();
    let file = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
    file.strip_prefix(&root).map_or_else(|_| file.display().to_string(), |p| p.display().to_string())
}

/// Starts a loopback capture, or prints why there is none (silently none
/// when captures are turned off).
pub fn maybe_loopback(to: &CaptureTo, name: &str, port: u16) -> Option<Capture> {
    to.dir.as_ref()?;
    match Capture::loopback(to, name, port) {
        Ok(capture) => Some(capture),
        Err(err) => {
            println!("   ({err})");
            None
        }
    }
}
