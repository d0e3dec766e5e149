//! Experiment 6 — closing states: who is left in TIME_WAIT, for how long,
//! and how `--linger 0` (an RST) leaves none.
//!
//! The lab report ran `netstat -an` after a client quit and found its
//! connection in TIME_WAIT for "less than a minute". Here the example reads
//! the operating system's socket table itself (`/proc/net/tcp` on Linux,
//! `netstat -an` on Windows) right after three ways of ending a connection:
//!
//! 1. the client closes first (the normal case): the client is in TIME_WAIT;
//! 2. the server closes first (it drops a client that sent garbage): now the
//!    *server's* end is in TIME_WAIT — it belongs to whoever closes first;
//! 3. the client closes a socket set up with `--linger 0` (SO_LINGER 0): close
//!    sends RST instead of FIN, and neither end keeps any state.
//!
//! With `watch`, it then waits until the first TIME_WAIT is gone and says how
//! long that took.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tnlm_core::message::TimeRequest;
use tnlm_core::sockopt::SocketOptions;
use tnlm_core::{Decoder, Frame, Message};

use crate::capture;
use crate::sockets::{self, Socket, TcpState};
use crate::{connect, explain, heading, request, secs, start_server, CaptureTo, LabError, Result, TIMEOUT};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// After the three cases, wait until the first TIME_WAIT disappears (about
    /// 60 s on Linux, 120 s or more on Windows) and report how long it lasted.
    pub watch: bool,
    /// Where the capture goes.
    pub capture: CaptureTo,
}

/// One way of closing, and what the OS table showed right after.
#[derive(Debug, Clone)]
pub struct Case {
    /// The client's address.
    pub client: SocketAddr,
    /// The server's address.
    pub server: SocketAddr,
    /// The client's end of the connection in the OS table (`None`: gone).
    pub client_end: Option<Socket>,
    /// The server's end (`None`: gone).
    pub server_end: Option<Socket>,
}

/// How a connection ended on the wire (from the capture).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireEnd {
    /// Who sent the first FIN: `"client"`, `"server"` or `"nobody"`.
    pub first_fin: &'static str,
    /// RST segments from the client.
    pub client_resets: usize,
    /// RST segments from the server.
    pub server_resets: usize,
}

/// What the experiment showed.
#[derive(Debug, Clone)]
pub struct Observation {
    /// 1: the client closes first.
    pub client_first: Case,
    /// 2: the server closes first.
    pub server_first: Case,
    /// 3: the client closes with `--linger 0`.
    pub linger_zero: Case,
    /// With `watch`: how long case 1's TIME_WAIT was seen for.
    pub time_wait_lasted: Option<Duration>,
    /// From the capture: how each case ended, in order.
    pub wire: Option<Vec<WireEnd>>,
    /// The capture file.
    pub capture: Option<PathBuf>,
}

/// Runs the experiment and prints what happened.
pub fn run(options: &Options) -> Result<Observation> {
    heading("Closing states: TIME_WAIT after a normal close, and none after --linger 0");
    let server = start_server(|_| {})?;
    let addr = server.connect_addr();
    let capture = capture::maybe_loopback(&options.capture, "closing", addr.port());
    println!("   server listening on {addr}; the OS's socket table is read from {}", sockets::source());

    println!();
    println!("   1. the client closes first (menu item 2, close())");
    let (mut connection, mut inbox) = connect(addr, SocketOptions::default())?;
    request(&mut connection, &mut inbox, TimeRequest)?;
    let (client, id) = (connection.local(), connection.id());
    connection.close();
    let closed = Instant::now();
    server.wait_client_gone(id, TIMEOUT);
    let client_first = settle(client, addr, |c, s| is(c, TcpState::TimeWait) && s.is_none())?;
    show(&client_first);

    println!();
    println!("   2. the server closes first (it drops a client that does not speak TNLM)");
    let server_first = server_closes_first(addr)?;
    show(&server_first);

    println!();
    println!("   3. the client closes a socket set up with --linger 0 (SO_LINGER on, 0 seconds)");
    let linger_zero = abortive_close(addr, &server)?;
    show(&linger_zero);

    let time_wait_lasted = if options.watch { watch(&client_first, closed)? } else { None };
    server.shutdown();

    let (mut wire, mut file) = (None, None);
    if let Some(capture) = capture {
        let clients = [client_first.client.port(), server_first.client.port(), linger_zero.client.port()];
        match capture.finish().and_then(|f| ends(&f, addr.port(), &clients).map(|e| (f, e))) {
            Ok((path, found)) => {
                println!();
                println!("   capture {}:", capture::display_path(&path));
                for (n, end) in found.iter().enumerate() {
                    println!(
                        "     case {}: first FIN from {}, RST from client {}, RST from server {}",
                        n + 1,
                        end.first_fin,
                        end.client_resets,
                        end.server_resets
                    );
                }
                println!(
                    "     see it: {} -Y 'tcp.flags.fin == 1 || tcp.flags.reset == 1'",
                    capture::tshark_hint(&path)
                );
                wire = Some(found);
                file = Some(path);
            }
            Err(err) => println!("   (capture: {err})"),
        }
    }
    explain(WHY);
    Ok(Observation { client_first, server_first, linger_zero, time_wait_lasted, wire, capture: file })
}

fn is(end: &Option<Socket>, state: TcpState) -> bool {
    end.as_ref().is_some_and(|s| s.state == state)
}

/// Reads both ends of the connection from the OS table until `done` holds
/// (the kernel finishes the close handshake on its own time) or 2 s pass.
fn settle(
    client: SocketAddr,
    server: SocketAddr,
    done: impl Fn(&Option<Socket>, &Option<Socket>) -> bool,
) -> Result<Case> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (client_end, server_end) = sockets::both_ends(client, server)?;
        if done(&client_end, &server_end) || Instant::now() >= deadline {
            return Ok(Case { client, server, client_end, server_end });
        }
        std::thread::sleep(Duration::from_millis(5)); // polling the OS table, not waiting blind
    }
}

fn show(case: &Case) {
    let describe = |end: &Option<Socket>| match end {
        None => "gone (no entry in the table)".to_string(),
        Some(s) if s.state == TcpState::TimeWait => match s.timer {
            Some(left) => format!("TIME_WAIT, {} left", secs(left)),
            None => "TIME_WAIT".to_string(),
        },
        Some(s) => s.state.to_string(),
    };
    println!("      client's socket {} -> {}: {}", case.client, case.server, describe(&case.client_end));
    println!("      server's socket {} -> {}: {}", case.server, case.client, describe(&case.server_end));
}

/// A bare TNLM peer on a plain socket: reads frames, nothing else.
struct Raw {
    stream: TcpStream,
    decoder: Decoder,
}

impl Raw {
    fn new(stream: TcpStream) -> Result<Raw> {
        stream.set_read_timeout(Some(TIMEOUT))?;
        Ok(Raw { stream, decoder: Decoder::new(1 << 20) })
    }

    /// The next frame, or `None` at the end of the stream.
    fn next(&mut self) -> Result<Option<Frame>> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(frame) = self.decoder.next_frame().map_err(|e| LabError::Failed(e.to_string()))? {
                return Ok(Some(frame));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.decoder.feed(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn hello(&mut self) -> Result<u32> {
        crate::hello_id(self.next()?.map(|f| f.message))
    }
}

/// Case 2: the client sends garbage; the server answers with an error and
/// closes first; the client reads to the end and closes second.
fn server_closes_first(addr: SocketAddr) -> Result<Case> {
    let mut raw = Raw::new(TcpStream::connect_timeout(&addr, TIMEOUT)?)?;
    raw.hello()?;
    let client = raw.stream.local_addr()?;
    raw.stream.write_all(b"GET / HTTP/1.1\r\nHost: tnlm\r\n\r\n")?;
    while let Some(frame) = raw.next()? {
        if let Message::Error(body) = frame.message {
            println!("      the server answered: {} ({}), then closed", body.text, body.code.name());
        }
    }
    drop(raw); // close() after the server's FIN
    settle(client, addr, |c, s| c.is_none() && is(s, TcpState::TimeWait))
}

/// Case 3: a socket with `--linger 0` asks for the time, then close() — no shutdown() first.
fn abortive_close(addr: SocketAddr, server: &tnlm_server::RunningServer) -> Result<Case> {
    let options = SocketOptions { linger: Some(0), ..SocketOptions::default() };
    let (stream, _warnings) = tnlm_core::net::connect(&addr.to_string(), &options, TIMEOUT)?;
    let mut raw = Raw::new(stream)?;
    let id = raw.hello()?;
    let client = raw.stream.local_addr()?;
    let request = Frame::new(1, TimeRequest).to_bytes().map_err(|e| LabError::Failed(e.to_string()))?;
    raw.stream.write_all(&request)?;
    match raw.next()?.map(|f| f.message) {
        Some(Message::TimeResponse(t)) => println!("      server time {}; now close()", t.time),
        other => return Err(LabError::Failed(format!("expected the time, got {other:?}"))),
    }
    drop(raw); // SO_LINGER 0: close() sends RST
    server.wait_client_gone(id, TIMEOUT);
    settle(client, addr, |c, s| c.is_none() && s.is_none())
}

/// Polls the OS table every 250 ms (on purpose: it is a stopwatch) until
/// case 1's TIME_WAIT is gone; at most 5 minutes. Returns how long after the
/// close (`closed`) it was last seen plus one polling step at most.
fn watch(case: &Case, closed: Instant) -> Result<Option<Duration>> {
    if !is(&case.client_end, TcpState::TimeWait) {
        return Ok(None);
    }
    println!();
    println!("   watching case 1's TIME_WAIT ({} -> {}) until it is gone …", case.client, case.server);
    let mut next_report = 10;
    let mut last_seen = closed.elapsed();
    while closed.elapsed() < Duration::from_secs(300) {
        let end = sockets::find(case.client, case.server)?;
        if !is(&end, TcpState::TimeWait) {
            println!(
                "      gone: last seen {} after the close, missing {} after it",
                secs(last_seen),
                secs(closed.elapsed())
            );
            return Ok(Some(closed.elapsed()));
        }
        last_seen = closed.elapsed();
        if last_seen.as_secs() >= next_report {
            println!("      still TIME_WAIT {next_report} s after the close");
            next_report += 10;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(None)
}

/// From the capture: how each client port's connection ended.
fn ends(file: &std::path::Path, server_port: u16, clients: &[u16]) -> std::result::Result<Vec<WireEnd>, String> {
    let packets = capture::packets(file)?;
    Ok(clients
        .iter()
        .map(|&port| {
            let mut end = WireEnd { first_fin: "nobody", client_resets: 0, server_resets: 0 };
            for packet in &packets {
                let from_client = packet.src_port == port && packet.dst_port == server_port;
                let from_server = packet.src_port == server_port && packet.dst_port == port;
                if packet.fin && end.first_fin == "nobody" && (from_client || from_server) {
                    end.first_fin = if from_client { "client" } else { "server" };
                }
                end.client_resets += usize::from(packet.rst && from_client);
                end.server_resets += usize::from(packet.rst && from_server);
            }
            end
        })
        .collect())
}

const WHY: &str = "\
Why: closing a TCP connection takes a FIN from each side, each acknowledged.
The side that sends the first FIN (the active closer) ends in TIME_WAIT and
stays there for 2×MSL: Linux uses a fixed 60 s, Windows TcpTimedWaitDelay
(120 s by default on current versions, 240 s on old ones). Meanwhile a late
duplicate segment of this connection cannot be mistaken for part of a new
connection with the same 4-tuple, and if the last ACK was lost the peer's
retransmitted FIN can still be answered. The passive closer goes through
CLOSE_WAIT and LAST_ACK and forgets the connection as soon as its FIN is
acknowledged. So TIME_WAIT belongs to whoever closes first: the client in
case 1, the server in case 2. With SO_LINGER set to 0 seconds (--linger 0),
close() discards unsent data and sends RST: the connection is destroyed at
once on both sides, with no FIN exchange and no TIME_WAIT — and the server
sees `Connection reset by peer` instead of an orderly end of stream.";
