//! Experiment 5 — the listen queue: `connect()` completes before `accept()`.
//!
//! The lab report asks: with a breakpoint between the server's `listen()` and
//! `accept()`, does a client's `connect()` succeed at once? Here the server
//! runs with `--accept-delay SECS`: it listens at once but calls `accept()`
//! only after SECS seconds. Clients connect meanwhile: `connect()` returns in
//! a fraction of a millisecond, the operating system shows them ESTABLISHED
//! and the listening socket's accept queue holding them, yet the server does
//! not know them yet (its list is empty) and their hello — the first thing
//! the server's code sends — arrives only once it accepts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tnlm_core::sockopt::SocketOptions;

use crate::capture;
use crate::sockets::{self, TcpState};
use crate::{explain, heading, ms, secs, start_server, CaptureTo, Result, TIMEOUT};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's `--accept-delay`.
    pub delay: Duration,
    /// How many clients connect during the delay.
    pub clients: usize,
    /// Where the capture goes.
    pub capture: CaptureTo,
}

/// One client's view.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its address.
    pub local: SocketAddr,
    /// How long `connect()` took.
    pub connect: Duration,
    /// Its id, from the hello.
    pub id: u32,
    /// From `connect()` returning to the hello arriving.
    pub hello_after: Duration,
    /// From the server's start to the hello arriving.
    pub hello_at: Duration,
}

/// What the experiment showed.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The server's accept delay.
    pub delay: Duration,
    /// Every client.
    pub clients: Vec<Client>,
    /// Clients the server listed while they were all connected and it had not accepted yet.
    pub listed_before_accept: usize,
    /// The listening socket's accept-queue length then (Linux).
    pub queued: Option<u32>,
    /// The clients' ends that the OS showed ESTABLISHED then.
    pub established: usize,
    /// Those checks ran before the delay was over (so before any `accept()`).
    pub checked_in_time: bool,
    /// The capture file.
    pub capture: Option<PathBuf>,
}

/// Runs the experiment and prints what happened.
pub fn run(options: &Options) -> Result<Observation> {
    heading(&format!(
        "Backlog: the server listens but calls accept() only after {} (--accept-delay)",
        secs(options.delay)
    ));
    let delay = options.delay;
    let server = start_server(move |c| c.accept_delay = Some(delay))?;
    let started = Instant::now();
    let addr = server.connect_addr();
    let capture = capture::maybe_loopback(&options.capture, "backlog", addr.port());
    println!("   server listening on {addr}, not accepting yet");

    let mut streams = Vec::new();
    for _ in 0..options.clients {
        let before = Instant::now();
        let (stream, _) = tnlm_core::net::connect(&addr.to_string(), &SocketOptions::default(), TIMEOUT)?;
        let took = before.elapsed();
        let local = stream.local_addr()?;
        println!("   client {local}: connect() returned after {} — connected", ms(took));
        streams.push((stream, local, took, Instant::now()));
    }

    let listed_before_accept = server.clients().len();
    let table = sockets::table().unwrap_or_default();
    let queued = table.iter().find(|s| s.state == TcpState::Listen && s.local == addr).and_then(|s| s.rx_queue);
    let established = streams
        .iter()
        .filter(|(_, local, _, _)| table.iter().any(|s| s.is(*local, addr) && s.state == TcpState::Established))
        .count();
    let still_waiting = started.elapsed() < delay;
    println!(
        "   meanwhile ({} after the server started{}):",
        secs(started.elapsed()),
        if still_waiting { ", accept() not called yet" } else { "" }
    );
    println!("     the OS ({}) shows {established} of these connections ESTABLISHED", sockets::source());
    if let Some(queued) = queued {
        println!("     the listening socket's accept queue holds {queued} connections");
    }
    println!("     the server's own list has {listed_before_accept} clients: accept() has not handed them over");

    let mut clients = Vec::new();
    for (mut stream, local, connect, connected_at) in streams {
        let id = crate::read_hello(&mut stream)?;
        let hello_after = connected_at.elapsed();
        let hello_at = started.elapsed();
        println!("   client {local}: hello arrived {} after connect() returned — it is client {id}", secs(hello_after));
        clients.push(Client { local, connect, id, hello_after, hello_at });
    }
    for client in &clients {
        server.wait_client_gone(client.id, TIMEOUT);
    }
    server.shutdown();

    let mut file = None;
    if let Some(capture) = capture {
        match capture.finish() {
            Ok(path) => {
                println!("   capture {}:", capture::display_path(&path));
                match timeline(&path, addr.port(), &clients.iter().map(|c| c.local.port()).collect::<Vec<_>>()) {
                    Ok((handshakes, hellos)) => println!(
                        "     the server's SYN-ACKs at {}, its hellos at {} (times since the capture began)",
                        span(&handshakes),
                        span(&hellos)
                    ),
                    Err(err) => println!("     ({err})"),
                }
                println!("     see it: {} -t r", capture::tshark_hint(&path));
                file = Some(path);
            }
            Err(err) => println!("   (capture: {err})"),
        }
    }
    explain(WHY);
    Ok(Observation {
        delay,
        clients,
        listed_before_accept,
        queued,
        established,
        checked_in_time: still_waiting,
        capture: file,
    })
}

/// From the capture: (SYN-ACK times, hello times) in seconds since the first
/// SYN, for the connections from `clients` (not the server's own wake-up
/// connection at shutdown).
fn timeline(file: &std::path::Path, port: u16, clients: &[u16]) -> std::result::Result<(Vec<f64>, Vec<f64>), String> {
    let (mut handshakes, mut hellos, mut greeted) = (Vec::new(), Vec::new(), std::collections::HashSet::new());
    for packet in capture::packets(file)?.iter().filter(|p| p.src_port == port && clients.contains(&p.dst_port)) {
        if packet.syn {
            handshakes.push(packet.time);
        } else if packet.len > 0 && greeted.insert(packet.dst_port) {
            hellos.push(packet.time);
        }
    }
    Ok((handshakes, hellos))
}

fn span(times: &[f64]) -> String {
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let max = times.iter().copied().fold(0.0, f64::max);
    format!("{min:.3}–{max:.3} s")
}

const WHY: &str = "\
Why: listen() turns the socket into a listening one and gives the kernel a
queue for it (its length is the backlog argument; TNLM asks for 1024, Linux
caps it at net.core.somaxconn). From then on the *kernel* answers every SYN
with a SYN-ACK and completes the three-way handshake by itself; the finished
connection waits in the accept queue. connect() returns as soon as the
handshake is done, whether or not the server program has called accept().
accept() only takes the next finished connection off the queue and gives the
program a socket for it. Data the client sends meanwhile is buffered by the
kernel too. If the queue is full, Linux drops further handshakes (the
client's connect() retries its SYN and waits), Windows refuses them.";
