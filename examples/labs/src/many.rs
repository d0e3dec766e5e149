//! Experiment 2 — many clients at once, each bursting.
//!
//! The lab report ran two clients that each sent 100 time requests at the
//! same moment and checked that both got 100 answers. Here N clients (10 by
//! default) connect, wait at a barrier, then all send their 100 requests at
//! once, each with its own `send()` calls, from their own threads; every
//! response is matched to its request by id. The server serves each client on
//! its own thread, so one client's burst never delays another's answers for
//! long.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use tnlm_client::{Connection, Inbox};
use tnlm_core::message::TimeRequest;
use tnlm_core::sockopt::SocketOptions;

use crate::capture;
use crate::{
    collect_time_responses, connect, explain, heading, ms, start_server, CaptureTo, LabError, Result, Tally, TIMEOUT,
};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many clients burst at once.
    pub clients: usize,
    /// Time requests per client.
    pub requests: u32,
    /// `--nodelay` on every socket.
    pub nodelay: bool,
    /// Where the capture goes.
    pub capture: CaptureTo,
}

/// What one client saw.
#[derive(Debug, Clone)]
pub struct ClientResult {
    /// Its id, from the server's hello.
    pub id: u32,
    /// Its address (the server's view: IP and ephemeral port).
    pub local: SocketAddr,
    /// Time responses received.
    pub received: u32,
    /// Responses that answered one of its own requests, each once.
    pub matched: u32,
    /// From its first request to its last response.
    pub elapsed: Duration,
}

/// What the experiment showed.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Requests each client sent.
    pub requests: u32,
    /// One entry per client.
    pub clients: Vec<ClientResult>,
    /// How many clients the server listed while they all were connected.
    pub listed: usize,
    /// From the capture: T responses per client port.
    pub wire_responses: Option<BTreeMap<u16, usize>>,
    /// The capture file.
    pub capture: Option<PathBuf>,
}

/// Runs the experiment and prints what happened.
pub fn run(options: &Options) -> Result<Observation> {
    heading(&format!(
        "Many clients at once: {} clients, each sends {} time requests at the same moment",
        options.clients, options.requests
    ));
    let socket = SocketOptions { nodelay: options.nodelay, ..SocketOptions::default() };
    let server_socket = socket.clone();
    let server = start_server(move |c| c.socket = server_socket)?;
    let addr = server.connect_addr();
    let capture = capture::maybe_loopback(&options.capture, "many-clients", addr.port());
    let mut connections = Vec::new();
    for _ in 0..options.clients {
        connections.push(connect(addr, socket.clone())?);
    }
    let listed = server.clients().len();
    println!("   {} clients connected; the server lists {listed}", connections.len());

    let barrier = Arc::new(Barrier::new(connections.len()));
    let requests = options.requests;
    let threads: Vec<_> = connections
        .into_iter()
        .map(|(connection, inbox)| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                burst(connection, inbox, requests)
            })
        })
        .collect();
    let mut clients = Vec::new();
    for thread in threads {
        let (result, connection) = thread.join().map_err(|_| LabError::Failed("a client thread panicked".into()))??;
        clients.push((result, connection));
    }
    println!("   {:>6}  {:<21} {:>5} {:>9} {:>8} {:>10}", "client", "address", "sent", "received", "matched", "time");
    for (c, _) in &clients {
        println!(
            "   {:>6}  {:<21} {:>5} {:>9} {:>8} {:>10}",
            c.id,
            c.local.to_string(),
            requests,
            c.received,
            c.matched,
            ms(c.elapsed)
        );
    }
    let received: u32 = clients.iter().map(|(c, _)| c.received).sum();
    let matched: u32 = clients.iter().map(|(c, _)| c.matched).sum();
    let sent = requests * clients.len() as u32;
    println!("   total: {sent} requests sent, {received} responses received, {matched} matched to their own request");
    let ids: Vec<u32> = clients.iter().map(|(c, _)| c.id).collect();
    let results: Vec<ClientResult> = clients
        .into_iter()
        .map(|(result, connection)| {
            connection.close();
            result
        })
        .collect();
    for id in ids {
        server.wait_client_gone(id, TIMEOUT);
    }
    server.shutdown();

    let (mut wire_responses, mut file) = (None, None);
    if let Some(capture) = capture {
        match capture.finish().and_then(|f| responses_per_client(&f, addr.port()).map(|r| (f, r))) {
            Ok((path, per_client)) => {
                let total: usize = per_client.values().sum();
                println!(
                    "   capture {}: {} TCP connections, {total} T responses in all (the dissector counted them)",
                    capture::display_path(&path),
                    per_client.len()
                );
                println!("     see it: {} -Y \"tnlm.type == 'T'\"", capture::tshark_hint(&path));
                wire_responses = Some(per_client);
                file = Some(path);
            }
            Err(err) => println!("   (capture: {err})"),
        }
    }
    explain(WHY);
    Ok(Observation { requests, clients: results, listed, wire_responses, capture: file })
}

/// One client's burst, on its own thread.
fn burst(mut connection: Connection, mut inbox: Inbox, requests: u32) -> Result<(ClientResult, Connection)> {
    let start = Instant::now();
    let mut pending = HashSet::new();
    for _ in 0..requests {
        pending.insert(connection.send(TimeRequest)?);
    }
    let Tally { received, matched, last } = collect_time_responses(&mut inbox, pending, start)?;
    let result =
        ClientResult { id: connection.id(), local: connection.local(), received, matched, elapsed: last - start };
    Ok((result, connection))
}

/// T responses per client port, from the capture.
fn responses_per_client(file: &std::path::Path, server_port: u16) -> std::result::Result<BTreeMap<u16, usize>, String> {
    let mut per_client = BTreeMap::new();
    for packet in capture::packets(file)?.iter().filter(|p| p.src_port == server_port) {
        let responses = packet.frames.iter().filter(|f| *f == "T response").count();
        *per_client.entry(packet.dst_port).or_default() += responses;
    }
    per_client.retain(|_, n| *n > 0);
    Ok(per_client)
}

const WHY: &str = "\
Why: every client has its own TCP connection, and the server gives each
connection its own thread, which reads that client's requests and writes its
responses. The connections share nothing but the listening port: the kernel
delivers each segment to the right socket by its 4-tuple (see `who-is-who`),
so bursts from different clients never mix, and each client matches the
responses to its own requests by request id.";
