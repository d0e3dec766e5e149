//! Experiment 3 — the pulled cable (Linux, root: a network namespace).
//!
//! The lab report pulled a client's network cable, quit the client, and saw
//! the server keep the dead connection (and its thread) for more than ten
//! minutes; a message sent to the ghost was still reported as sent. Here a
//! real TNLM client (this program re-run as `tnlm-labs client …`, which *is*
//! `tnlm-client`) connects from a network namespace; then its cable is pulled
//! ([`Netns::pull_cable`]) and the process is killed, so no FIN or RST can
//! reach the server. Three runs, each with a fresh namespace and server:
//!
//! - no detection (`--heartbeat 0`, no keepalive): the ghost stays listed and
//!   its socket ESTABLISHED; a message to it is answered `not_acknowledged`,
//!   never `delivered`, and the OS table shows the server retransmitting it;
//! - `--heartbeat 1`: the server pings the silent client and drops it after
//!   3 missed intervals (about 3 s);
//! - `--keepalive 1,1,2`: TCP keepalive probes the idle connection after 1 s,
//!   every 1 s, and the kernel gives up after 2 unanswered probes (about 3 s).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tnlm_client::connection::wait_response;
use tnlm_core::message::{DeliveryStatus, SendRequest};
use tnlm_core::sockopt::{Keepalive, SocketOptions};
use tnlm_core::Message;
use tnlm_server::{Config, RunningServer, Server};

use crate::capture::{self, Capture};
use crate::netns::Netns;
use crate::sockets::{self, Socket};
use crate::{connect, explain, heading, secs, CaptureTo, LabError, Result, TIMEOUT};

/// How the server may notice the ghost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// `--heartbeat 0`, no keepalive: the lab report's server.
    Nothing,
    /// `--heartbeat SECS`.
    Heartbeat(u64),
    /// `--keepalive TIME,INTERVAL,RETRIES` with the heartbeat off.
    Keepalive(u32, u32, u32),
}

impl Detection {
    fn flags(self) -> String {
        match self {
            Detection::Nothing => "--heartbeat 0 (no keepalive)".into(),
            Detection::Heartbeat(secs) => format!("--heartbeat {secs}"),
            Detection::Keepalive(t, i, r) => format!("--heartbeat 0 --keepalive {t},{i},{r}"),
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            Detection::Nothing => "cable-no-detection",
            Detection::Heartbeat(_) => "cable-heartbeat",
            Detection::Keepalive(..) => "cable-keepalive",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The runs, in order.
    pub runs: Vec<Detection>,
    /// How long to watch the ghost in the run without detection.
    pub watch: Duration,
    /// The server's `--ack-timeout` (how long a message waits for the ghost's ack).
    pub ack_timeout: Duration,
    /// This program (re-run inside the namespace as `client …`).
    pub program: PathBuf,
    /// Where the captures go.
    pub capture: CaptureTo,
}

/// What one run showed.
#[derive(Debug, Clone)]
pub struct Run {
    /// How the server could notice.
    pub detection: Detection,
    /// The ghost's client id.
    pub ghost: u32,
    /// Without detection: still listed after the watch.
    pub still_listed: bool,
    /// With detection: how long after the cut the server dropped the ghost.
    pub dropped_after: Option<Duration>,
    /// Without detection: the answer to a message sent to the ghost.
    pub message: Option<DeliveryStatus>,
    /// Without detection: the server's end of the ghost connection in the OS
    /// table, after the message.
    pub server_end: Option<Socket>,
    /// What the capture shows.
    pub wire: Option<Wire>,
    /// The capture file.
    pub capture: Option<PathBuf>,
}

/// Counted in a run's capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire {
    /// Segments the server sent again because the ghost never acknowledged them.
    pub retransmissions: usize,
    /// TCP keep-alive probes.
    pub keepalive_probes: usize,
    /// RST segments the server sent (the kernel giving up after keepalive).
    pub server_resets: usize,
}

/// Every run.
#[derive(Debug, Clone)]
pub struct Observation {
    /// In the order of [`Options::runs`].
    pub runs: Vec<Run>,
}

/// Runs the experiment and prints what happened. Fails with
/// [`LabError::Unsupported`] where network namespaces cannot be made.
pub fn run(options: &Options) -> Result<Observation> {
    let mut runs = Vec::new();
    for &detection in &options.runs {
        runs.push(one_run(options, detection)?);
    }
    explain(WHY);
    Ok(Observation { runs })
}

fn one_run(options: &Options, detection: Detection) -> Result<Run> {
    heading(&format!("Pulled cable, server with {}", detection.flags()));
    let net = Netns::create().map_err(|why| {
        LabError::Unsupported(format!("cannot create a network namespace (needs Linux, root and iproute2): {why}"))
    })?;
    let server = start(&net, detection, options.ack_timeout)?;
    let addr = server.local_addr();
    let capture = if options.capture.dir.is_some() {
        let marker = SocketAddr::new(net.broadcast.into(), addr.port());
        match Capture::start(&options.capture, detection.file_name(), &net.host_if, "not ip6", marker) {
            Ok(capture) => Some(capture),
            Err(err) => {
                println!("   ({err})");
                None
            }
        }
    } else {
        None
    };
    println!("   server on {addr}; the client runs in network namespace {} ({})", net.name, net.client_ip);
    let (mut ghost, id) = spawn_ghost(&net, addr, &options.program)?;
    let listed = server.clients().into_iter().find(|c| c.id == id);
    let ghost_addr = listed.map(|c| SocketAddr::new(c.ip, c.port));
    println!(
        "   client {id} connected from {}; the server lists it",
        ghost_addr.map_or_else(|| "?".into(), |a| a.to_string())
    );

    net.pull_cable()?;
    let cut = Instant::now();
    ghost.kill();
    println!("   cable pulled, then the client program killed: no FIN, no RST can reach the server");

    let mut run = Run {
        detection,
        ghost: id,
        still_listed: false,
        dropped_after: None,
        message: None,
        server_end: None,
        wire: None,
        capture: None,
    };
    if detection == Detection::Nothing {
        watch_ghost(&server, id, ghost_addr, options.watch, cut);
        run.message = Some(message_ghost(&server, id, options.ack_timeout)?);
        run.still_listed = server.clients().iter().any(|c| c.id == id);
        if let Some(ghost_addr) = ghost_addr {
            run.server_end = sockets::find(addr, ghost_addr).ok().flatten();
            if let Some(end) = &run.server_end {
                println!(
                    "   the server's socket for it ({}): {}, {} bytes unacknowledged, {} retransmissions so far",
                    sockets::source(),
                    end.state,
                    end.unacked.unwrap_or(0),
                    end.retransmits.unwrap_or(0)
                );
            }
        }
        println!(
            "   {} after the cut the server still lists client {id}: {}",
            secs(cut.elapsed()),
            if run.still_listed { "yes — a ghost" } else { "no" }
        );
    } else {
        let dropped = server.wait_client_gone(id, Duration::from_secs(60));
        run.dropped_after = dropped.then(|| cut.elapsed());
        match run.dropped_after {
            Some(after) => println!("   the server dropped client {id} {} after the cut", secs(after)),
            None => println!("   the server still lists client {id} a minute after the cut"),
        }
    }
    server.shutdown();
    if let Some(capture) = capture {
        match capture.finish() {
            Ok(path) => {
                println!("   capture {}:", capture::display_path(&path));
                let counted = capture::packets(&path).map(|packets| Wire {
                    retransmissions: packets.iter().filter(|p| p.retransmission).count(),
                    keepalive_probes: packets.iter().filter(|p| p.keepalive).count(),
                    server_resets: packets.iter().filter(|p| p.rst && p.src_port == addr.port()).count(),
                });
                match counted {
                    Ok(wire) => {
                        println!(
                            "     {} retransmissions by the server, {} keep-alive probes, {} RST from the server",
                            wire.retransmissions, wire.keepalive_probes, wire.server_resets
                        );
                        run.wire = Some(wire);
                    }
                    Err(err) => println!("     ({err})"),
                }
                println!("     see it: {} -t r", capture::tshark_hint(&path));
                run.capture = Some(path);
            }
            Err(err) => println!("   (capture: {err})"),
        }
    }
    Ok(run)
}

fn start(net: &Netns, detection: Detection, ack_timeout: Duration) -> Result<RunningServer> {
    let mut config = Config {
        bind: Some(net.host_ip.into()),
        port: 0,
        name: "lab".into(),
        heartbeat: None,
        ack_timeout,
        ..Config::default()
    };
    match detection {
        Detection::Nothing => {}
        Detection::Heartbeat(secs) => config.heartbeat = Some(Duration::from_secs(secs)),
        Detection::Keepalive(time, interval, retries) => {
            config.socket = SocketOptions {
                keepalive: Some(Keepalive {
                    time: Duration::from_secs(time.into()),
                    interval: Some(Duration::from_secs(interval.into())),
                    retries: Some(retries),
                }),
                ..SocketOptions::default()
            };
        }
    }
    let server = Server::bind(config).map_err(|e| LabError::Failed(format!("cannot start the server: {e}")))?;
    Ok(server.spawn())
}

/// The client process in the namespace; killed when dropped, whatever happens.
struct Ghost(Child);

impl Ghost {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Ghost {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `tnlm-client --json listen` inside the namespace and reads its hello.
fn spawn_ghost(net: &Netns, server: SocketAddr, program: &std::path::Path) -> Result<(Ghost, u32)> {
    let program = program.display().to_string();
    let target = server.to_string();
    let child = Command::new("ip")
        .args(["netns", "exec", &net.name, &program, "client", "--connect", &target, "--json", "listen"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| LabError::Failed(format!("cannot start the client in the namespace: {e}")))?;
    let mut ghost = Ghost(child);
    let stdout = ghost.0.stdout.take().ok_or_else(|| LabError::Failed("no pipe to the client".into()))?;
    let mut line = String::new();
    // The client prints its hello within its connect timeout, or exits.
    BufReader::new(stdout).read_line(&mut line)?;
    let hello: serde_json::Value = serde_json::from_str(&line)
        .map_err(|_| LabError::Failed(format!("the client did not print its hello: {line:?}")))?;
    let id = hello["id"].as_u64().and_then(|id| u32::try_from(id).ok());
    match id {
        Some(id) => Ok((ghost, id)),
        None => Err(LabError::Failed(format!("unexpected first line from the client: {line}"))),
    }
}

/// Looks at the ghost once a second for `watch` (pacing on purpose: we are
/// showing that nothing happens).
fn watch_ghost(server: &RunningServer, id: u32, ghost: Option<SocketAddr>, watch: Duration, cut: Instant) {
    let local = server.local_addr();
    let mut next = Duration::from_secs(1).min(watch);
    while next <= watch {
        std::thread::sleep(next.saturating_sub(cut.elapsed()));
        let listed = server.clients().iter().any(|c| c.id == id);
        let state = ghost
            .and_then(|g| sockets::find(local, g).ok().flatten())
            .map_or_else(|| "gone".to_string(), |s| s.state.to_string());
        println!(
            "   {:>5} after the cut: listed {}, server's socket {state}",
            secs(cut.elapsed()),
            if listed { "yes" } else { "no" }
        );
        next += Duration::from_secs(1);
    }
}

/// Another client (on the server's side of the cable) messages the ghost.
fn message_ghost(server: &RunningServer, id: u32, ack_timeout: Duration) -> Result<DeliveryStatus> {
    let (mut connection, mut inbox) = connect(server.local_addr(), SocketOptions::default())?;
    let sent = Instant::now();
    let request = connection.send(SendRequest { to: id, text: "Are you ok?".into() })?;
    let frame = wait_response(&mut inbox, request, Instant::now() + ack_timeout + TIMEOUT, |_| {})
        .map_err(|e| LabError::Failed(format!("no answer to the message: {e:?}")))?;
    let Message::Delivery(delivery) = frame.message else {
        return Err(LabError::Failed(format!("unexpected answer {}", frame.summary())));
    };
    println!(
        "   client {} sent \"Are you ok?\" to client {id}: after {} the server answered {} ({})",
        connection.id(),
        secs(sent.elapsed()),
        delivery.status.name(),
        delivery.reason
    );
    let me = connection.id();
    connection.close();
    server.wait_client_gone(me, TIMEOUT);
    Ok(delivery.status)
}

const WHY: &str = "\
Why: TCP only notices a dead peer when it tries to talk to it. An idle
connection whose peer vanished without FIN or RST looks exactly like a quiet
one, so the server keeps it ESTABLISHED — for days — and its thread keeps
waiting in recv(). Once the server has something to send (the message), the
segment goes unacknowledged and TCP retransmits it with growing timeouts; on
Linux it gives up after about 15 minutes (net.ipv4.tcp_retries2 = 15). The
lab report's server said 'sent' because send() had copied the bytes into the
kernel — nothing more. TNLM says `delivered` only when the target's client
acknowledges the message, so the ghost gets `not_acknowledged`. To find
ghosts sooner, someone must ask: the application heartbeat (--heartbeat,
works the same on every OS), or TCP keepalive (--keepalive: the kernel sends
empty probes on an idle connection and resets it when they go unanswered).";
