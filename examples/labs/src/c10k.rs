//! Experiment 8 — C10k: the same load against both server engines.
//!
//! The lab's server gives every client a thread of its own. That is the
//! simplest design to read, and it costs a thread, a stack and a context
//! switch per request; the "C10k problem" asks what happens with ten thousand
//! clients. Here each engine (`threads`, then `events`) runs as a server in a
//! process of its own, so that what `/proc` says about it is the server's
//! alone: idle clients (held by other processes) connect, then a few active
//! clients send time requests, and the experiment prints the server's
//! threads, resident memory, open files and context switches per request, the
//! request rate and latencies, and the most clients it could hold on this
//! machine — computed from the costs per client and the machine's limits, or,
//! with `--probe`, found by connecting until the server stops accepting.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use tnlm_client::{Connection, Inbox};
use tnlm_core::message::TimeRequest;
use tnlm_core::sockopt::SocketOptions;
use tnlm_server::Engine;

use crate::process_stats::{self, Limits, Sample};
use crate::{connect, explain, heading, ms, read_hello, request, secs, start_server, LabError, Result, TIMEOUT};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The engines, one run each, in this order.
    pub engines: Vec<Engine>,
    /// Workers of the event engine.
    pub workers: usize,
    /// Idle clients: connected, silent, held by other processes.
    pub idle: usize,
    /// Active clients, each sending its requests one after the other.
    pub active: usize,
    /// Time requests per active client.
    pub requests: u32,
    /// After the load, keep connecting clients until the server stops
    /// accepting them or this many are connected (`None`: only compute the ceiling).
    pub probe: Option<usize>,
    /// The `tnlm-labs` program, run as the server (`serve`) and as the idle clients (`hold`).
    pub program: PathBuf,
}

/// What one engine showed.
#[derive(Debug, Clone)]
pub struct EngineRun {
    /// The engine.
    pub engine: Engine,
    /// Idle clients connected.
    pub idle: usize,
    /// Active clients connected.
    pub active: usize,
    /// Time requests answered.
    pub answered: u64,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Median latency of a time request.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// The server process with only the first client, which it keeps (Linux):
    /// the baseline of the costs per client.
    pub first: Option<Sample>,
    /// The server process with every client connected, before the load (Linux).
    pub loaded: Option<Sample>,
    /// Context switches of the server's threads during the load (Linux).
    pub switches: Option<u64>,
    /// The most clients the server could hold, computed per limit (Linux).
    pub ceilings: Vec<Ceiling>,
    /// What `--probe` found.
    pub probe: Option<Probe>,
}

impl EngineRun {
    /// Server context switches per answered request.
    pub fn switches_per_request(&self) -> Option<f64> {
        self.switches.map(|s| s as f64 / self.answered.max(1) as f64)
    }

    /// The limit that bites first.
    pub fn ceiling(&self) -> Option<&Ceiling> {
        self.ceilings.iter().min_by_key(|c| c.clients)
    }
}

/// How many clients one limit allows, at the costs per client measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceiling {
    /// The limit, with its value (`open files (RLIMIT_NOFILE 20000)`).
    pub limit: String,
    /// The clients it allows.
    pub clients: u64,
}

/// How far `--probe` got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Clients connected and greeted by the server at once, at most (its own
    /// first client included).
    pub held: usize,
    /// Why it stopped there.
    pub stopped: String,
}

/// What the experiment showed.
#[derive(Debug, Clone)]
pub struct Observation {
    /// One run per engine, in the order of [`Options::engines`].
    pub runs: Vec<EngineRun>,
}

/// Runs the experiment and prints what happened.
pub fn run(options: &Options) -> Result<Observation> {
    let per_process = process_stats::raise_open_files().map_or(10_000, |n| n.saturating_sub(100).max(100) as usize);
    let mut runs = Vec::new();
    for &engine in &options.engines {
        runs.push(one_engine(options, engine, per_process)?);
    }
    if runs.len() > 1 {
        side_by_side(options, &runs);
    }
    explain(WHY);
    Ok(Observation { runs })
}

fn one_engine(options: &Options, engine: Engine, per_process: usize) -> Result<EngineRun> {
    let workers = if engine == Engine::Events { format!(" ({} workers)", options.workers) } else { String::new() };
    heading(&format!(
        "C10k, engine {}{workers}: {} idle clients, then {} clients × {} time requests",
        name(engine),
        options.idle,
        options.active,
        options.requests
    ));
    let mut server = LabProcess::start(&options.program, &serve_args(engine, options.workers))?;
    let addr = server.listening()?;
    let pid = server.pid();
    println!("   server: process {pid} (`tnlm-labs serve --engine {}`) on {addr}", name(engine));
    let first = process_stats::sample(pid);
    print_sample("with 1 client:", first);

    let idle_holders = connect_idle(options, addr, per_process)?;
    let (load, loaded, switches) = active_load(options, addr, pid)?;
    let clients = options.idle + options.active;
    let ceilings = match first.zip(loaded) {
        Some((first, loaded)) => ceilings(clients, &first, &loaded, &process_stats::limits(pid)),
        None => Vec::new(),
    };
    print_ceilings(first.zip(loaded), clients, &ceilings);
    let probe = match options.probe {
        // The server's own first client counts too.
        Some(up_to) => Some(probe(&options.program, addr, options.idle + 1, up_to, per_process)?),
        None => None,
    };
    drop(idle_holders);
    server.stop()?;
    Ok(EngineRun {
        engine,
        idle: options.idle,
        active: options.active,
        answered: load.answered,
        elapsed: load.elapsed,
        p50: load.p50,
        p99: load.p99,
        first,
        loaded,
        switches,
        ceilings,
        probe,
    })
}

/// Connects the idle clients from processes of their own; all of them, or an error.
fn connect_idle(options: &Options, addr: SocketAddr, per_process: usize) -> Result<Vec<LabProcess>> {
    let started = Instant::now();
    let (holders, held, failure) = hold_clients(&options.program, addr, options.idle, per_process)?;
    if let Some(why) = failure {
        return Err(LabError::Failed(format!("only {held} of {} idle clients connected: {why}", options.idle)));
    }
    let pids: Vec<String> = holders.iter().map(|p| p.pid().to_string()).collect();
    println!("   {held} idle clients connected in {} (held by process {})", secs(started.elapsed()), pids.join(", "));
    Ok(holders)
}

/// Connects the active clients, reads the server (`pid`), lets them send their
/// time requests, and reads the server again before they close: the load, the
/// server with every client connected, and its context switches meanwhile.
fn active_load(options: &Options, addr: SocketAddr, pid: u32) -> Result<(Load, Option<Sample>, Option<u64>)> {
    let connections = (0..options.active)
        .map(|_| connect(addr, SocketOptions::default()))
        .collect::<Result<Vec<(Connection, Inbox)>>>()?;
    let loaded = process_stats::sample(pid);
    print_sample(&format!("with {} clients:", 1 + options.idle + connections.len()), loaded);
    let (load, connections) = time_requests(connections, options.requests)?;
    let after = process_stats::sample(pid);
    for (connection, _) in connections {
        connection.close();
    }
    println!(
        "   {} active clients sent {} time requests one after another: {} answered in {} ({:.0}/s), p50 {}, p99 {}",
        options.active,
        u64::from(options.requests) * options.active as u64,
        load.answered,
        ms(load.elapsed),
        load.answered as f64 / load.elapsed.as_secs_f64().max(1e-9),
        ms(load.p50),
        ms(load.p99)
    );
    let switches = loaded.zip(after).map(|(before, after)| after.switches.saturating_sub(before.switches));
    if let Some(switches) = switches {
        println!(
            "   context switches of the server's threads meanwhile: {switches} ({:.2} per request)",
            switches as f64 / load.answered.max(1) as f64
        );
    }
    Ok((load, loaded, switches))
}

/// The arguments of `tnlm-labs serve` for `engine`.
fn serve_args(engine: Engine, workers: usize) -> Vec<String> {
    vec!["serve".into(), "--engine".into(), name(engine).into(), "--workers".into(), workers.to_string()]
}

/// The engine's name on the command line.
pub fn name(engine: Engine) -> &'static str {
    match engine {
        Engine::Threads => "threads",
        Engine::Events => "events",
    }
}

/// How the time requests of the active clients went.
struct Load {
    answered: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

/// Every connection sends `requests` time requests, each after the answer to
/// the last, all connections at once; returns the tally and the connections
/// (still open, so the server's threads keep their context-switch counts
/// until they are read).
fn time_requests(connections: Vec<(Connection, Inbox)>, requests: u32) -> Result<(Load, Vec<(Connection, Inbox)>)> {
    let barrier = Arc::new(Barrier::new(connections.len() + 1));
    let threads: Vec<_> = connections
        .into_iter()
        .map(|(mut connection, mut inbox)| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || -> Result<(Vec<Duration>, (Connection, Inbox))> {
                barrier.wait();
                let mut latencies = Vec::with_capacity(requests as usize);
                for _ in 0..requests {
                    let sent = Instant::now();
                    request(&mut connection, &mut inbox, TimeRequest)?;
                    latencies.push(sent.elapsed());
                }
                Ok((latencies, (connection, inbox)))
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let (mut latencies, mut connections) = (Vec::new(), Vec::new());
    for thread in threads {
        let (mine, connection) = thread.join().map_err(|_| LabError::Failed("a client thread panicked".into()))??;
        latencies.extend(mine);
        connections.push(connection);
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let at = |q: f64| latencies.get(((latencies.len().max(1) - 1) as f64 * q).round() as usize).copied();
    let load = Load {
        answered: latencies.len() as u64,
        elapsed,
        p50: at(0.50).unwrap_or_default(),
        p99: at(0.99).unwrap_or_default(),
    };
    Ok((load, connections))
}

/// Connects `clients` idle clients to `addr` from processes of their own,
/// `per_process` each: the processes, how many clients the server greeted,
/// and why the last process stopped short, if it did.
fn hold_clients(
    program: &Path,
    addr: SocketAddr,
    clients: usize,
    per_process: usize,
) -> Result<(Vec<LabProcess>, usize, Option<String>)> {
    let (mut holders, mut held) = (Vec::new(), 0);
    while held < clients {
        let want = (clients - held).min(per_process);
        let mut holder =
            LabProcess::start(program, &["hold".into(), addr.to_string(), "--clients".into(), want.to_string()])?;
        let line = holder.line()?;
        let (count, failure) = match line.strip_prefix("held ").map(|rest| rest.split_once(", then: ")) {
            Some(Some((count, why))) => (count, Some(why.to_string())),
            Some(None) => (line["held ".len()..].trim(), None),
            None => return Err(LabError::Failed(format!("unexpected line from the holding process: {line}"))),
        };
        held += count.parse::<usize>().map_err(|_| LabError::Failed(format!("unexpected line: {line}")))?;
        holders.push(holder);
        if failure.is_some() {
            return Ok((holders, held, failure));
        }
    }
    Ok((holders, held, None))
}

/// `--probe`: connects more idle clients until the server stops greeting them
/// or `up_to` are connected in all (`already` are).
fn probe(program: &Path, addr: SocketAddr, already: usize, up_to: usize, per_process: usize) -> Result<Probe> {
    println!("   probing: connecting more idle clients until the server stops accepting them (at most {up_to})…");
    let started = Instant::now();
    let (holders, held, failure) = hold_clients(program, addr, up_to.saturating_sub(already), per_process)?;
    let held = already + held;
    let stopped = failure.unwrap_or_else(|| format!("reached --probe {up_to}"));
    println!(
        "   probe: {held} clients connected and greeted at once; stopped after {}: {stopped}",
        secs(started.elapsed())
    );
    drop(holders);
    Ok(Probe { held, stopped })
}

/// How many clients each limit allows: the clients connected at `loaded`
/// (`clients` and the server's own first one) plus the headroom left under the
/// limit divided by the cost of one client (the growth from `first` to
/// `loaded`, over `clients`). Limits a client does not measurably cost are
/// left out.
fn ceilings(clients: usize, first: &Sample, loaded: &Sample, limits: &Limits) -> Vec<Ceiling> {
    let n = clients.max(1) as f64;
    let now = clients as u64 + 1;
    let cost = |now: u64, before: u64| now.saturating_sub(before) as f64 / n;
    let at = |limit: Option<u64>, used: Option<u64>, per_client: f64, what: String| {
        let (limit, used) = (limit?, used?);
        (per_client >= 0.5)
            .then(|| Ceiling { limit: what, clients: now + (limit.saturating_sub(used) as f64 / per_client) as u64 })
    };
    let tasks_label = format!(
        "threads (kernel.pid_max or threads-max {}; {} in use on the machine)",
        opt(limits.tasks),
        opt(limits.tasks_in_use)
    );
    [
        at(
            limits.open_files,
            Some(loaded.files),
            cost(loaded.files, first.files),
            format!("open files (RLIMIT_NOFILE {})", opt(limits.open_files)),
        ),
        at(
            limits.max_map_count,
            Some(loaded.maps),
            cost(loaded.maps, first.maps),
            format!("memory map areas (vm.max_map_count {})", opt(limits.max_map_count)),
        ),
        at(limits.tasks, limits.tasks_in_use, cost(loaded.threads, first.threads), tasks_label),
        // RSS grows by KiB per client: compare it in KiB, with no threshold.
        limits.mem_available_kib.map(|available| {
            let per_client = cost(loaded.rss_kib, first.rss_kib).max(0.001);
            Ceiling {
                limit: format!("memory (MemAvailable {} MB)", available / 1024),
                clients: now + (available as f64 / per_client) as u64,
            }
        }),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn opt(value: Option<u64>) -> String {
    value.map_or_else(|| "?".into(), |v| v.to_string())
}

fn print_sample(when: &str, sample: Option<Sample>) {
    match sample {
        Some(s) => println!(
            "   {when:<18} {} threads, RSS {:.1} MB, {} open files, {} memory map areas",
            s.threads,
            mb(s.rss_kib),
            s.files,
            s.maps
        ),
        None => println!("   {when:<18} (threads, memory and context switches are read from /proc: Linux only)"),
    }
}

fn print_ceilings(samples: Option<(Sample, Sample)>, clients: usize, ceilings: &[Ceiling]) {
    let Some((first, loaded)) = samples else {
        println!("   the most clients it holds: not computed here (the costs per client come from /proc: Linux only)");
        return;
    };
    let n = clients.max(1) as f64;
    let per = |now: u64, before: u64| now.saturating_sub(before) as f64 / n;
    println!(
        "   each client costs the server {:.2} threads, {:.1} KB of RSS, {:.2} open files, {:.2} memory map areas",
        per(loaded.threads, first.threads),
        per(loaded.rss_kib, first.rss_kib) * 1.024,
        per(loaded.files, first.files),
        per(loaded.maps, first.maps)
    );
    println!("   the most clients it holds, computed from those costs and this machine's limits:");
    let width = ceilings.iter().map(|c| c.limit.len()).max().unwrap_or(0);
    for ceiling in ceilings {
        println!("     {:<width$} {:>10}", ceiling.limit, ceiling.clients);
    }
    if let Some(first) = ceilings.iter().min_by_key(|c| c.clients) {
        println!("     the first to bite: {}, at about {} clients", first.limit, first.clients);
    }
}

fn side_by_side(options: &Options, runs: &[EngineRun]) {
    heading(&format!(
        "C10k: the engines side by side ({} idle + {} active clients, {} time requests each)",
        options.idle, options.active, options.requests
    ));
    println!(
        "   {:<8} {:>8} {:>8} {:>17} {:>10} {:>9} {:>9} {:>13} {:>9}",
        "engine", "threads", "RSS MB", "switches/request", "requests/s", "p50", "p99", "most clients", "probed"
    );
    for run in runs {
        let loaded = run.loaded;
        println!(
            "   {:<8} {:>8} {:>8} {:>17} {:>10.0} {:>9} {:>9} {:>13} {:>9}",
            name(run.engine),
            loaded.map_or_else(|| "?".into(), |s| s.threads.to_string()),
            loaded.map_or_else(|| "?".into(), |s| format!("{:.1}", mb(s.rss_kib))),
            run.switches_per_request().map_or_else(|| "?".into(), |s| format!("{s:.2}")),
            run.answered as f64 / run.elapsed.as_secs_f64().max(1e-9),
            ms(run.p50),
            ms(run.p99),
            run.ceiling().map_or_else(|| "?".into(), |c| c.clients.to_string()),
            run.probe.as_ref().map_or_else(|| "-".into(), |p| p.held.to_string()),
        );
    }
    println!("   (most clients: computed from the costs per client and this machine's limits; probed: --probe)");
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// `tnlm-labs serve`: a lab server with this engine in a process of its own,
/// on 127.0.0.1 and a free port. It connects a first client to itself and
/// keeps it: once that client has its hello, every thread the server keeps is
/// running, so `listening on ADDR`, printed then, is the signal that the
/// server is ready and its baseline can be read. Serves until its standard
/// input closes, then shuts down.
pub fn serve(engine: Engine, workers: usize) -> Result<()> {
    let server = start_server(|config| {
        config.engine = engine;
        config.workers = workers.max(1);
        config.max_clients = 1_000_000; // the machine's limits decide, not a setting
    })?;
    let addr = server.connect_addr();
    let mut first = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    read_hello(&mut first)?;
    println!("listening on {addr}");
    io::stdout().flush()?;
    io::copy(&mut io::stdin().lock(), &mut io::sink())?;
    drop(first);
    server.shutdown();
    Ok(())
}

/// `tnlm-labs hold`: connects up to `clients` clients to `addr`, each waiting
/// for the server's hello, then holds them, silent, until standard input
/// closes. Prints `held N` or `held N, then: why it stopped`.
pub fn hold(addr: SocketAddr, clients: usize) -> Result<()> {
    let mut held = Vec::with_capacity(clients);
    let mut failure = None;
    while held.len() < clients {
        let greeted = TcpStream::connect_timeout(&addr, TIMEOUT)
            .map_err(|e| LabError::Failed(format!("connect: {e}")))
            .and_then(|mut stream| read_hello(&mut stream).map(|_| stream));
        match greeted {
            Ok(stream) => held.push(stream),
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    match failure {
        None => println!("held {}", held.len()),
        Some(err) => println!("held {}, then: {err}", held.len()),
    }
    io::stdout().flush()?;
    io::copy(&mut io::stdin().lock(), &mut io::sink())?;
    Ok(())
}

/// A `tnlm-labs` child process (server or holder) that runs until its
/// standard input closes; dropping it closes that and waits for the exit.
struct LabProcess {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl LabProcess {
    fn start(program: &Path, args: &[String]) -> Result<LabProcess> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| LabError::Failed(format!("cannot run {}: {e}", program.display())))?;
        let stdout = child.stdout.take().ok_or_else(|| LabError::Failed("no stdout".into()))?;
        Ok(LabProcess { child, stdout: BufReader::new(stdout) })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line it prints (it bounds its own waits).
    fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(LabError::Failed(format!("process {} ended without a word", self.pid())));
        }
        Ok(line.trim_end().to_string())
    }

    /// The server's address, from its `listening on ADDR` line.
    fn listening(&mut self) -> Result<SocketAddr> {
        let line = self.line()?;
        let addr = line.strip_prefix("listening on ").and_then(|a| a.parse().ok());
        addr.ok_or_else(|| LabError::Failed(format!("the server said {line:?}, not `listening on ADDR`")))
    }

    /// Closes its standard input and waits until it has ended.
    fn stop(&mut self) -> Result<()> {
        drop(self.child.stdin.take());
        let status = self.child.wait()?;
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        match status.success() {
            true => Ok(()),
            false => Err(LabError::Failed(format!("process {} ended with {status}", self.pid()))),
        }
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

const WHY: &str = "\
Why: with the threads engine every client, idle or not, has a thread of its
own in the server: a stack (256 KiB reserved, a few KiB touched), four memory
map areas (the stack and the small alternate signal stack Rust gives every
thread, each with a guard page) and a task the kernel schedules. Each
request wakes that thread from its blocking read, and it goes back to sleep
when it has answered: about one context switch per request; every idle
thread also wakes on its own timer (heartbeat and frame timeout, every 2.5 s
by default). The events engine keeps a few workers, each waiting in epoll
(Linux) for whichever of its sockets are ready; one wakeup serves every
socket that is ready, so under load a context switch is shared by several
requests, and an idle client costs only its socket and a small entry in a
table. Both engines need one file descriptor per client, so RLIMIT_NOFILE
bounds both; the threads engine meets vm.max_map_count first (and then
kernel.pid_max, which every process on the machine shares), well before it
runs out of memory. RSS does not count the kernel's socket buffers (see
`ss -tm`), which both engines pay alike. The computed ceilings assume the
cost per client stays what it was at this load; --probe connects clients
until the server stops greeting them, from processes of their own, so that
the client side's open-file limit does not end the probe first (loopback
clients share one source address: about 28,000 ephemeral ports to one
server port).";
