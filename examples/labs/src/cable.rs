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
//!   never `delivered`, and the OS table shows the server retransmitting it.
//!   The client's side is shown too (`ss -tino` in its namespace): the killed
//!   client's socket sits in FIN_WAIT_1 retrying its FIN with a growing
//!   backoff, and a second client whose program keeps running (a laptop whose
//!   Wi-Fi dropped) stays ESTABLISHED. Then the cable is plugged back in: the
//!   server hears from the ghost's OS (its FIN, or an RST) and drops it, and
//!   the running client receives the message it was sent during the cut —
//!   after its sender was told `not_acknowledged`;
//! - `--heartbeat 1`: the server pings the silent client and drops it after
//!   3 missed intervals (about 3 s);
//! - `--keepalive 1,1,2`: TCP keepalive probes the idle connection after 1 s,
//!   every 1 s, and the kernel gives up after 2 unanswered probes (about 3 s).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tnlm_client::connection::wait_response;
use tnlm_core::message::{DeliveryStatus, SendRequest};
use tnlm_core::sockopt::{Keepalive, SocketOptions};
use tnlm_core::Message;
use tnlm_server::{Config, RunningServer, Server};

use crate::capture::{self, Capture};
use crate::netns::Netns;
use crate::sockets::SsView;
use crate::sockets::{self, Socket};
use crate::{connect, explain, heading, secs, CaptureTo, LabError, Result, TIMEOUT};

/// How long to wait, after the cable is plugged back in, for the server to
/// hear from the ghost's OS and for the running client to get its message
/// (the retries then due come at most a few seconds apart).
const BACK_IN_WAIT: Duration = Duration::from_secs(60);

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
    /// Without detection: leave the cable out and wait until both sides give
    /// up by themselves (minutes) instead of plugging it back in.
    pub until_gone: bool,
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
    /// The killed client's end as its own OS shows it (`ss -tino` in the
    /// namespace), with the cable still out: after the message to it, or
    /// when the server dropped it.
    pub client_end: Option<SsView>,
    /// Without detection: the end of the client that kept running, at the same time.
    pub running_end: Option<SsView>,
    /// Without detection: once the cable is back, how long until the server
    /// dropped the ghost (it heard the ghost's FIN or RST).
    pub ghost_gone_after_plug: Option<Duration>,
    /// Without detection: once the cable is back, how long until the running
    /// client printed the message sent to it during the cut.
    pub late_message_after_plug: Option<Duration>,
    /// With [`Options::until_gone`]: how long after the cut the killed
    /// client's OS gave up on its FIN (its socket left the table).
    pub client_gave_up_after: Option<Duration>,
    /// With [`Options::until_gone`]: how long after the cut the server
    /// dropped the ghost on its own (TCP gave up on the message).
    pub server_gave_up_after: Option<Duration>,
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
    let mut ghost = spawn_client(&net, addr, &options.program)?;
    let id = ghost.id;
    let ghost_addr = listed_addr(&server, id);
    println!(
        "   client {id} connected from {}; the server lists it",
        ghost_addr.map_or_else(|| "?".into(), |a| a.to_string())
    );
    // Without detection, a second client on the same cable keeps running.
    let mut running = None;
    if detection == Detection::Nothing {
        let client = spawn_client(&net, addr, &options.program)?;
        let from = listed_addr(&server, client.id).map_or_else(|| "?".into(), |a| a.to_string());
        println!("   client {} connected from {from}; its program will keep running", client.id);
        running = Some(client);
    }

    net.pull_cable()?;
    let cut = Instant::now();
    ghost.kill();
    println!("   cable pulled, then client {id}'s program killed: no FIN, no RST can reach the server");
    let ghost_port = ghost_addr.map(|a| a.port());

    let mut run = Run {
        detection,
        ghost: id,
        still_listed: false,
        dropped_after: None,
        message: None,
        server_end: None,
        client_end: None,
        running_end: None,
        ghost_gone_after_plug: None,
        late_message_after_plug: None,
        client_gave_up_after: None,
        server_gave_up_after: None,
        wire: None,
        capture: None,
    };
    if let Some(running) = running.as_mut() {
        let running_port = listed_addr(&server, running.id).map(|a| a.port());
        let ends = Ends { net: &net, ghost: (id, ghost_port), running: (running.id, running_port) };
        watch_ghost(&server, &ends, ghost_addr, options.watch, cut);
        let statuses = message_ghosts(&server, &[id, running.id], options.ack_timeout)?;
        run.message = statuses.first().copied();
        run.still_listed = server.clients().iter().any(|c| c.id == id);
        if let Some(ghost_addr) = ghost_addr {
            run.server_end = sockets::find(addr, ghost_addr).ok().flatten();
            if let Some(end) = &run.server_end {
                println!(
                    "   the server's socket for client {id} ({}): {}, {} bytes unacknowledged, {} retransmissions so far",
                    sockets::source(),
                    end.state,
                    end.unacked.unwrap_or(0),
                    end.retransmits.unwrap_or(0)
                );
            }
        }
        (run.client_end, run.running_end) = ends.show();
        println!(
            "   {} after the cut the server still lists client {id}: {}",
            secs(cut.elapsed()),
            if run.still_listed { "yes — a ghost" } else { "no" }
        );
        if options.until_gone {
            wait_until_gone(&server, &ends, cut, &mut run);
        } else {
            plug_back_in(&server, &ends, running, &mut run)?;
        }
    } else {
        let dropped = server.wait_client_gone(id, Duration::from_secs(60));
        run.dropped_after = dropped.then(|| cut.elapsed());
        run.client_end = ghost_port.and_then(|port| sockets::ss_view(Some(&net.name), port).ok().flatten());
        match run.dropped_after {
            Some(after) => println!("   the server dropped client {id} {} after the cut", secs(after)),
            None => println!("   the server still lists client {id} a minute after the cut"),
        }
        if let Some(end) = &run.client_end {
            println!("   meanwhile client {id}'s own OS (ss -tino in its namespace): {end}");
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

/// A `tnlm-client --json listen` process in the namespace; killed when
/// dropped, whatever happens.
struct NsClient {
    child: Child,
    /// Its client id, from its hello.
    id: u32,
    /// Its further stdout lines (one JSON object each).
    lines: mpsc::Receiver<String>,
}

impl NsClient {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NsClient {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `tnlm-client --json listen` inside the namespace and reads its hello.
fn spawn_client(net: &Netns, server: SocketAddr, program: &std::path::Path) -> Result<NsClient> {
    let program = program.display().to_string();
    let target = server.to_string();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &net.name, &program, "client", "--connect", &target, "--json", "listen"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| LabError::Failed(format!("cannot start the client in the namespace: {e}")))?;
    let stdout = child.stdout.take().ok_or_else(|| LabError::Failed("no pipe to the client".into()))?;
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(std::io::Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut client = NsClient { child, id: 0, lines };
    // The client prints its hello within its connect timeout, or exits.
    let line = client.lines.recv_timeout(TIMEOUT * 2).unwrap_or_default();
    let hello: serde_json::Value = serde_json::from_str(&line)
        .map_err(|_| LabError::Failed(format!("the client did not print its hello: {line:?}")))?;
    match hello["id"].as_u64().and_then(|id| u32::try_from(id).ok()) {
        Some(id) => {
            client.id = id;
            Ok(client)
        }
        None => Err(LabError::Failed(format!("unexpected first line from the client: {line}"))),
    }
}

/// Where the server's list says client `id` is connected from.
fn listed_addr(server: &RunningServer, id: u32) -> Option<SocketAddr> {
    server.clients().into_iter().find(|c| c.id == id).map(|c| SocketAddr::new(c.ip, c.port))
}

/// The two clients on the pulled cable, as their own OS sees them.
struct Ends<'a> {
    net: &'a Netns,
    /// The killed client: its id and local port.
    ghost: (u32, Option<u16>),
    /// The client whose program keeps running.
    running: (u32, Option<u16>),
}

impl Ends<'_> {
    /// `ss -tino` in the namespace for each client's socket.
    fn read(&self) -> (Option<SsView>, Option<SsView>) {
        let view = |port: Option<u16>| port.and_then(|p| sockets::ss_view(Some(&self.net.name), p).ok().flatten());
        (view(self.ghost.1), view(self.running.1))
    }

    /// Prints both clients' sockets; returns them.
    fn show(&self) -> (Option<SsView>, Option<SsView>) {
        let (ghost, running) = self.read();
        let text = |view: &Option<SsView>| view.as_ref().map_or_else(|| "no socket".into(), ToString::to_string);
        println!("     client {}'s own OS (program killed):   {}", self.ghost.0, text(&ghost));
        println!("     client {}'s own OS (program running):  {}", self.running.0, text(&running));
        (ghost, running)
    }
}

/// Looks at the ghost once a second for `watch` (pacing on purpose: we are
/// showing that nothing happens), from the server's side and the clients'.
fn watch_ghost(server: &RunningServer, ends: &Ends, ghost: Option<SocketAddr>, watch: Duration, cut: Instant) {
    let local = server.local_addr();
    let id = ends.ghost.0;
    let mut next = Duration::from_secs(1).min(watch);
    while next <= watch {
        std::thread::sleep(next.saturating_sub(cut.elapsed()));
        let listed = server.clients().iter().any(|c| c.id == id);
        let state = ghost
            .and_then(|g| sockets::find(local, g).ok().flatten())
            .map_or_else(|| "gone".to_string(), |s| s.state.to_string());
        println!(
            "   {:>5} after the cut: the server lists client {id}: {}, its socket {state}",
            secs(cut.elapsed()),
            if listed { "yes" } else { "no" }
        );
        ends.show();
        next += Duration::from_secs(1);
    }
}

/// Another client (on the server's side of the cable) messages each of
/// `ids` and waits for every answer; returns them in the order of `ids`.
fn message_ghosts(server: &RunningServer, ids: &[u32], ack_timeout: Duration) -> Result<Vec<DeliveryStatus>> {
    let (mut connection, mut inbox) = connect(server.local_addr(), SocketOptions::default())?;
    let sent = Instant::now();
    let mut requests = Vec::new();
    for &id in ids {
        requests.push((id, connection.send(SendRequest { to: id, text: "Are you ok?".into() })?));
    }
    let mut statuses = Vec::new();
    for (id, request) in requests {
        let frame = wait_response(&mut inbox, request, sent + ack_timeout + TIMEOUT, |_| {})
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
        statuses.push(delivery.status);
    }
    let me = connection.id();
    connection.close();
    server.wait_client_gone(me, TIMEOUT);
    Ok(statuses)
}

/// The longest `--until-gone` waits: past Linux's ~15 minutes of retries.
const GIVE_UP_WAIT: Duration = Duration::from_secs(20 * 60);

/// `--until-gone`: the cable stays out; looks once a second (pacing on
/// purpose: we are timing the OS's own timers) until the killed client's OS
/// has forgotten its socket and the server has dropped the ghost.
fn wait_until_gone(server: &RunningServer, ends: &Ends, cut: Instant, run: &mut Run) {
    let ghost = ends.ghost.0;
    println!("   the cable stays out: waiting for each side to give up by itself (up to {})", secs(GIVE_UP_WAIT));
    let mut last = ends.read().0;
    while cut.elapsed() < GIVE_UP_WAIT && (run.client_gave_up_after.is_none() || run.server_gave_up_after.is_none()) {
        std::thread::sleep(Duration::from_secs(1));
        let now = ends.read().0;
        if run.client_gave_up_after.is_none() && now.is_none() {
            run.client_gave_up_after = Some(cut.elapsed());
            let tries = last.as_ref().map_or(0, |view| view.fired);
            println!(
                "   client {ghost}'s own OS gave up on its FIN {} after the cut (its socket is gone; last seen after {tries} tries)",
                secs(cut.elapsed())
            );
        }
        last = now.or(last);
        if run.server_gave_up_after.is_none() && !server.clients().iter().any(|c| c.id == ghost) {
            run.server_gave_up_after = Some(cut.elapsed());
            println!(
                "   the server dropped client {ghost} {} after the cut: TCP gave up on the message (its log says why)",
                secs(cut.elapsed())
            );
        }
    }
}

/// Plugs the cable back in and shows what each side then sees: the server
/// hears from the ghost's OS and drops it; the running client receives the
/// message it was sent during the cut.
fn plug_back_in(server: &RunningServer, ends: &Ends, running: &mut NsClient, run: &mut Run) -> Result<()> {
    ends.net.plug_cable()?;
    let back = Instant::now();
    println!("   cable plugged back in; both clients' OS and the server retry what they could not send");
    let ghost = ends.ghost.0;
    if server.wait_client_gone(ghost, BACK_IN_WAIT) {
        run.ghost_gone_after_plug = Some(back.elapsed());
        println!(
            "   the server dropped client {ghost} {} after the cable came back (its log line says how: FIN or reset)",
            secs(back.elapsed())
        );
    } else {
        println!("   the server still lists client {ghost} {} after the cable came back", secs(BACK_IN_WAIT));
    }
    let deadline = back + BACK_IN_WAIT;
    while let Ok(line) = running.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains(r#""type":"message""#) {
            run.late_message_after_plug = Some(back.elapsed());
            println!(
                "   client {} (still running) printed the message {} after the cable came back: {line}",
                running.id,
                secs(back.elapsed())
            );
            println!("     — its sender had been told not_acknowledged: that meant \"not known\", not \"lost\"");
            break;
        }
    }
    ends.show();
    let listed = server.clients().iter().any(|c| c.id == running.id);
    println!("   the server lists client {}: {}", running.id, if listed { "yes, it never left" } else { "no" });
    Ok(())
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
empty probes on an idle connection and resets it when they go unanswered).

The client's side: killing the program closed its socket, so its OS did
start the release — it queued a FIN (FIN_WAIT_1). With the cable out the FIN
cannot get through (here it cannot even leave: the address is gone, hence
'not sent yet'; on a real cable it leaves and is lost, and ss shows
timer:(on,...)), so the OS retries with a doubling interval (the backoff);
an orphaned socket gives up after net.ipv4.tcp_orphan_retries tries (0
means 8: 108 s with `cable --until-gone`). A client whose program keeps running has nothing to
send and stays ESTABLISHED. When the cable comes back, the next retry on
either side gets through: the server's retransmitted message reaches the
killed client's OS, which no longer wants data and answers RST (or its own
FIN arrives first), so the ghost is dropped; the running client simply
receives the message, late — after its sender was told `not_acknowledged`.";
