//! Experiment 1 — a burst: one choice sends 100 time requests.
//!
//! The lab report modified its client to send 100 time requests at once, saw
//! only 3 responses arrive, found in Wireshark that the server had sent "only
//! 3 packets", and added `Sleep(500)` between responses. Here a client sends
//! 100 `T` requests with 100 separate `send()` calls and no pause, and counts
//! the responses (matched by request id). The kernel's segment counters and
//! the capture show that TCP carried them in far fewer segments than frames,
//! and the dissector still finds every one of the 100 responses. It runs once
//! with Nagle's algorithm on (the default) and once with `--nodelay` on both
//! ends.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tnlm_core::message::TimeRequest;
use tnlm_core::sockopt::SocketOptions;

use crate::capture::{self, Direction};
use crate::sockets::{self, SegmentCounts};
use crate::{collect_time_responses, connect, explain, heading, ms, start_server, CaptureTo, Result, Tally, TIMEOUT};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Time requests per burst (the lab's 100).
    pub count: u32,
    /// The variants: `false` = Nagle on (default), `true` = `--nodelay` on both ends.
    pub nodelay: Vec<bool>,
    /// Where the captures go.
    pub capture: CaptureTo,
}

/// What one burst showed.
#[derive(Debug, Clone)]
pub struct Variant {
    /// `--nodelay` on client and server.
    pub nodelay: bool,
    /// Requests sent, each with its own `send()` call.
    pub sent: u32,
    /// Time responses received.
    pub received: u32,
    /// Responses that answered one of the requests (by request id), each once.
    pub matched: u32,
    /// From the first `send()` to the last response.
    pub elapsed: Duration,
    /// The kernel's data-segment counters of the client's socket (Linux).
    pub kernel: Option<SegmentCounts>,
    /// What the capture shows: (client → server, server → client).
    pub wire: Option<(Direction, Direction)>,
    /// The capture file.
    pub capture: Option<PathBuf>,
}

/// Every variant that ran.
#[derive(Debug, Clone)]
pub struct Observation {
    /// In the order of [`Options::nodelay`].
    pub variants: Vec<Variant>,
}

/// Runs the bursts and prints what happened.
pub fn run(options: &Options) -> Result<Observation> {
    let mut variants = Vec::new();
    for &nodelay in &options.nodelay {
        variants.push(burst(options, nodelay)?);
    }
    if let [nagle, nodelay] = variants.as_slice() {
        heading("Burst: the two runs side by side");
        println!("   {:<22} {:>10} {:>18} {:>18}", "", "responses", "segments c -> s", "all answered in");
        for (label, v) in [("Nagle on (default)", nagle), ("--nodelay", nodelay)] {
            let segments = v.kernel.map_or_else(|| "?".to_string(), |k| k.data_out.to_string());
            println!("   {label:<22} {:>10} {segments:>18} {:>18}", format!("{}/{}", v.matched, v.sent), ms(v.elapsed));
        }
    }
    explain(WHY);
    Ok(Observation { variants })
}

fn burst(options: &Options, nodelay: bool) -> Result<Variant> {
    let label = if nodelay { "--nodelay (Nagle off) on client and server" } else { "Nagle on (the default)" };
    heading(&format!("Burst: {} time requests, one send() call each, no sleep — {label}", options.count));
    let socket = SocketOptions { nodelay, ..SocketOptions::default() };
    let server_socket = socket.clone();
    let server = start_server(move |c| c.socket = server_socket)?;
    let addr = server.connect_addr();
    let name = if nodelay { "burst-nodelay" } else { "burst-nagle" };
    let capture = capture::maybe_loopback(&options.capture, name, addr.port());
    let (mut connection, mut inbox) = connect(addr, socket)?;
    println!("   client {} connected to server {} (client id {})", connection.local(), addr, connection.id());

    let start = Instant::now();
    let mut pending = HashSet::new();
    for _ in 0..options.count {
        pending.insert(connection.send(TimeRequest)?);
    }
    let sent_in = start.elapsed();
    println!(
        "   sent {} time requests with {} send() calls in {}, no pause between them",
        options.count,
        options.count,
        ms(sent_in)
    );

    let Tally { received, matched, last } = collect_time_responses(&mut inbox, pending, start)?;
    let elapsed = last - start;
    println!(
        "   received {received} of {} time responses ({matched} matched to their request by id) in {}",
        options.count,
        ms(elapsed)
    );
    let kernel = sockets::segment_counts(connection.local(), connection.peer());
    if let Some(k) = kernel {
        println!("   the kernel's counters for this connection (ss -ti):");
        println!("     client -> server: {:>3} TCP segments carried the {} requests", k.data_out, options.count);
        println!(
            "     server -> client: {:>3} TCP segments carried the hello and the {} responses",
            k.data_in, options.count
        );
    }
    let id = connection.id();
    connection.close();
    server.wait_client_gone(id, TIMEOUT);
    server.shutdown();

    let (mut wire, mut file) = (None, None);
    if let Some(capture) = capture {
        match capture.finish().and_then(|f| capture::packets(&f).map(|p| (capture::directions(&p, addr.port()), f))) {
            Ok(((up, down), path)) => {
                println!("   capture {}, read back with the TNLM dissector:", capture::display_path(&path));
                println!(
                    "     client -> server: {:>3} segments with data holding {} T requests",
                    up.segments,
                    up.count("T request")
                );
                println!(
                    "     server -> client: {:>3} segments with data holding {} T responses and {} hello",
                    down.segments,
                    down.count("T response"),
                    down.count("H indication")
                );
                println!("     see it: {} -Y tnlm", capture::tshark_hint(&path));
                wire = Some((up, down));
                file = Some(path);
            }
            Err(err) => println!("   (capture: {err})"),
        }
    }
    Ok(Variant { nodelay, sent: options.count, received, matched, elapsed, kernel, wire, capture: file })
}

const WHY: &str = "\
Why: TCP is a byte stream, not a sequence of packets. 100 send() calls add 100
pieces to one stream; the kernel cuts the stream into segments as it sees fit,
and recv() returns whatever bytes have arrived: several frames at once, or
half of one. With Nagle's algorithm (RFC 896, on by default) a small write
waits while an earlier small segment is still unacknowledged, so the writes
queue up and leave together. --nodelay (TCP_NODELAY) sends each write at
once; Linux may still merge writes that queue behind a segment not yet handed
to the network device (autocorking), so even then the count can stay below
100. Either way every response arrives: TNLM's length field says where each
frame ends, so the decoder finds all 100 however they were cut. The lab
report's Sleep(500) only hid its real bug (reading one message per recv()).
Look at the times too: with Nagle on both ends a burst often takes ~40 ms
instead of ~1 ms. The server's later responses wait for the ACK of its first
one, and the client, having nothing left to send, delays that ACK (delayed
ACK, 40 ms on Linux): the classic Nagle + delayed-ACK stall that --nodelay
avoids.";
