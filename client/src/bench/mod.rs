//! `tnlm-client bench`: the load generator.
//!
//! It opens C connections and keeps P requests in flight on each: it writes a
//! batch of P requests in one `write`, waits until all P are answered, and
//! writes the next batch (the way `redis-benchmark -P` pipelines). Every
//! answer's latency — from the write of its batch to the read that brought it
//! — goes into an HdrHistogram; the summary gives requests/s and the p50, p99
//! and p99.9 latencies.
//!
//! It has to measure the server, not itself, on a 2-core machine where both
//! share the CPU. So it does not use the library's [`Connection`]
//! (a receiver thread and a channel hop per connection): a few event-loop
//! threads (`--threads`, default 1; mio over epoll / IOCP) serve every
//! connection, requests are copied from a pre-encoded frame with only the
//! request id patched, answers are recognised from the 16-byte header
//! without decoding or allocating, and everything a read makes us send
//! (the next batch, acks, pongs) leaves in one `write`. The summary reports
//! the generator's own CPU time, and the server's with `--server-pid`, so a
//! run shows whether the generator was the bottleneck.
//!
//! Kinds:
//! - `time`: `T` requests (request / response through one connection thread);
//! - `message`: the connections form pairs; A sends `M` requests to B, B
//!   acknowledges each forwarded message as it arrives (as the library's
//!   receiver thread does), and A's batch completes on the `delivered`
//!   receipts — the full relay path: A's thread, B's outbox, B, B's thread,
//!   the delivery book, A's outbox;
//! - `list`: `L` requests (the registry read, its answer grows with the clients);
//! - `idle`: connect everyone, then hold the connections for `--duration`,
//!   answering heartbeat pings (the scale test; `connect_ms` is the time to
//!   have every hello).
//!
//! `--rate R` turns the closed loop into an open one: each connection starts
//! R batches a second, evenly spread over the connections.
//!
//! `--protocol redis` drives a Redis server the same way, with the nearest
//! equivalent commands (`time`: `PING` as a multi-bulk, like
//! `redis-benchmark -t ping_mbulk`; `message`: A `PUBLISH`es on a channel
//! that B is `SUBSCRIBE`d to, and a message counts as relayed when B has
//! it), so `ci/bench.sh` compares both servers with one generator.
//!
//! [`Connection`]: crate::connection::Connection

mod cpu;
mod in_flight;
mod incoming;
mod redis;
mod report;
mod tnlm;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;
use socket2::SockRef;
use tnlm_core::message::{ListRequest, SendRequest, TimeRequest};

use crate::cli::{parse_secs, Cli, Target};
use crate::error::ClientError;
use cpu::CpuClock;
use in_flight::InFlight;
use incoming::Incoming;
pub use report::Summary;
use report::{millis, Tally};

/// The `bench` subcommand's flags.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct BenchArgs {
    /// How many connections to open. Example: --clients 50
    #[arg(long, value_name = "C", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,

    /// Requests in flight on each connection: each batch of P is written at once, and the
    /// next batch goes when all P are answered. Example: --pipeline 16
    #[arg(long, value_name = "P", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub pipeline: u32,

    /// Stop after N requests in all (spread over the connections). Example: --requests 1000000
    #[arg(long, value_name = "N", conflicts_with = "duration", required_unless_present = "duration",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// Stop starting batches after SECS seconds (then wait for the answers still due).
    /// Example: --duration 10
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<Duration>,

    /// What to ask: time (request/response), message (A sends to B, B acknowledges, A waits
    /// for the receipt: the full relay path; needs an even --clients), list (the client
    /// list), idle (connect, then only hold the connections for --duration).
    #[arg(long, value_enum, default_value_t = Kind::Time)]
    pub kind: Kind,

    /// Open loop: each connection starts R batches per second (evenly spread), instead of
    /// the next batch as soon as the last is answered. Example: --rate 10
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate: Option<u32>,

    /// Event-loop threads of the generator (connections are shared out among them).
    #[arg(long, value_name = "T", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: u32,

    /// Bytes of text in each message (--kind message).
    #[arg(long, value_name = "BYTES", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub size: u32,

    /// Connections being opened at once (waiting for their hello) while connecting.
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_window: u32,

    /// The server's process id: its CPU time during the run is reported next to the
    /// generator's (Linux, from /proc), to show which side was the bottleneck.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,

    /// The server's protocol: tnlm, or redis to measure a Redis server the same way
    /// (time = PING, message = PUBLISH to a channel another connection SUBSCRIBEd to).
    #[arg(long, value_enum, default_value_t = Protocol::Tnlm)]
    pub protocol: Protocol,
}

/// The most bytes one batch may take: a batch is --pipeline copies of the request in one
/// buffer, written at once.
pub const MAX_BATCH_BYTES: u64 = 64 * 1024 * 1024;

impl BenchArgs {
    /// Checks what clap cannot: one batch (--pipeline requests of this kind and --size)
    /// must fit in [`MAX_BATCH_BYTES`].
    pub fn check(&self) -> Result<(), String> {
        // The largest request of the run: the highest partner id and channel number.
        let request = template(self.protocol, self.kind, &bench_text(self.size), u32::MAX, self.clients as usize);
        let request = request.len() as u64;
        let batch = request * u64::from(self.pipeline);
        if batch <= MAX_BATCH_BYTES {
            return Ok(());
        }
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        Err(format!(
            "--pipeline {} requests of {request} bytes make a batch of {:.1} MiB, over the limit of {:.0} MiB: \
             use --pipeline {} or less (or a smaller --size)",
            self.pipeline,
            mib(batch),
            mib(MAX_BATCH_BYTES),
            MAX_BATCH_BYTES / request
        ))
    }
}

/// What a bench run asks the server.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `T` requests.
    Time,
    /// `M` requests from A to B, acknowledged by B, answered by the receipt.
    Message,
    /// `L` requests.
    List,
    /// No requests: connect and hold.
    Idle,
}

/// Which server a bench run talks to.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// A TNLM server.
    Tnlm,
    /// A Redis server (for comparisons).
    Redis,
}

/// Runs the benchmark against `target` and prints progress (stderr, not with
/// `--json`) and the summary (stdout).
pub fn run(cli: &Cli, target: &Target, args: &BenchArgs) -> Result<(), ClientError> {
    let summary = measure(target, args, &cli.settings(), !cli.json)?;
    summary.print(cli.json)?;
    if summary.requests == 0 && args.kind != Kind::Idle {
        return Err(ClientError::Failed("no request was answered".into()));
    }
    Ok(())
}

/// Runs the benchmark and returns its summary; `progress` prints a line a
/// second on stderr. The settings' timeout bounds the connect phase (without
/// progress) and the wait for the last answers; their socket options apply
/// to every connection (which always has `TCP_NODELAY`).
pub fn measure(
    target: &Target,
    args: &BenchArgs,
    settings: &crate::connection::Settings,
    progress: bool,
) -> Result<Summary, ClientError> {
    args.check().map_err(ClientError::Failed)?;
    let addr = resolve(target)?;
    if args.kind == Kind::Message && !args.clients.is_multiple_of(2) {
        return Err(ClientError::Failed("--kind message pairs the connections: give an even --clients".into()));
    }
    if args.kind == Kind::Idle && args.duration.is_none() {
        return Err(ClientError::Failed("--kind idle holds the connections for --duration SECS".into()));
    }
    if args.protocol == Protocol::Redis && args.kind == Kind::List {
        return Err(ClientError::Failed("--kind list has no Redis equivalent".into()));
    }
    let plan = Arc::new(Plan::new(addr, args, settings));
    let threads = args.threads.min(plan.units()) as usize;
    let shared = Arc::new(Shared {
        barrier: Barrier::new(threads + 1),
        failed: AtomicBool::new(false),
        completed: AtomicU64::new(0),
    });
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    let started = Instant::now();
    let mut handles = Vec::new();
    for job in plan.jobs(threads) {
        let (plan, shared, done) = (Arc::clone(&plan), Arc::clone(&shared), done_tx.clone());
        let handle = thread::Builder::new()
            .name(format!("bench-{}", job.index))
            .spawn(move || {
                let outcome = Worker::run(job, &plan, &shared);
                let _ = done.send(());
                outcome
            })
            .map_err(|e| ClientError::Failed(format!("cannot start a generator thread: {e}")))?;
        handles.push(handle);
    }
    drop(done_tx);
    shared.barrier.wait();
    let connect = started.elapsed();
    let start = Instant::now();
    let cpu = CpuClock::start(args.server_pid);
    if progress && !shared.failed.load(Ordering::SeqCst) {
        eprintln!("bench: {} connections open in {:.1} ms", args.clients, millis(connect));
    }
    let mut finished = 0;
    let mut last = (start, 0u64);
    while finished < handles.len() {
        match done_rx.recv_timeout(Duration::from_secs(1)) {
            Ok(()) => finished += 1,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) if progress => {
                let (now, completed) = (Instant::now(), shared.completed.load(Ordering::Relaxed));
                let rate = (completed - last.1) as f64 / (now - last.0).as_secs_f64();
                eprintln!("bench: {:6.1} s  {completed:>12} answered  {rate:>12.0} /s", (now - start).as_secs_f64());
                last = (now, completed);
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu.used_since();
    let mut total = Tally::new();
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(tally)) => total.merge(&tally),
            Ok(Err(err)) => first_error = first_error.or(Some(err)),
            Err(_) => first_error = first_error.or(Some("a generator thread panicked".to_string())),
        }
    }
    if let Some(err) = first_error {
        return Err(ClientError::Failed(format!("bench failed: {err}")));
    }
    // From the first batch to the last answer (idle runs: the whole hold).
    let elapsed = match total.last_answer {
        Some(last) if args.kind != Kind::Idle => last.saturating_duration_since(start),
        _ => elapsed,
    };
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let capacity_s = cores as f64 * start.elapsed().as_secs_f64();
    Ok(total.summary(args, threads as u32, elapsed, connect, cpu, capacity_s))
}

fn resolve(target: &Target) -> Result<SocketAddr, ClientError> {
    let text = target.to_string();
    let failed = |source| ClientError::Connect { target: text.clone(), source };
    (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(failed)?
        .next()
        .ok_or_else(|| failed(io::Error::new(io::ErrorKind::NotFound, "the host name has no address")))
}

/// Everything the worker threads share read-only.
struct Plan {
    addr: SocketAddr,
    kind: Kind,
    protocol: Protocol,
    clients: u32,
    pipeline: u32,
    requests: Option<u64>,
    duration: Option<Duration>,
    /// Between two batches of one connection (open loop).
    interval: Option<Duration>,
    text: String,
    window: usize,
    timeout: Duration,
    socket: tnlm_core::sockopt::SocketOptions,
}

impl Plan {
    fn new(addr: SocketAddr, args: &BenchArgs, settings: &crate::connection::Settings) -> Plan {
        let text = bench_text(args.size);
        Plan {
            addr,
            kind: args.kind,
            protocol: args.protocol,
            clients: args.clients,
            pipeline: args.pipeline,
            requests: args.requests,
            duration: args.duration,
            interval: args.rate.map(|rate| Duration::from_secs_f64(1.0 / f64::from(rate))),
            text,
            window: args.connect_window as usize,
            timeout: settings.timeout,
            socket: settings.socket.clone(),
        }
    }

    /// Connections come in units that must share a thread: pairs for `message`.
    fn unit(&self) -> u32 {
        if self.kind == Kind::Message {
            2
        } else {
            1
        }
    }

    fn units(&self) -> u32 {
        self.clients / self.unit()
    }

    /// Shares the connections (and the request budget) out among `threads`.
    fn jobs(&self, threads: usize) -> Vec<Job> {
        let units = self.units() as usize;
        let mut jobs = Vec::new();
        let mut first = 0;
        let mut budget_left = self.requests;
        for index in 0..threads {
            let mine = units / threads + usize::from(index < units % threads);
            let conns = mine * self.unit() as usize;
            let budget = self.requests.map(|n| {
                let share =
                    if index + 1 == threads { budget_left.unwrap_or(0) } else { n * mine as u64 / units as u64 };
                budget_left = budget_left.map(|left| left - share);
                share
            });
            jobs.push(Job { index, first, conns, budget });
            first += conns;
        }
        jobs
    }
}

/// One worker thread's share.
struct Job {
    index: usize,
    /// Global index of its first connection.
    first: usize,
    conns: usize,
    /// Requests it may start (`None`: until the deadline).
    budget: Option<u64>,
}

struct Shared {
    barrier: Barrier,
    failed: AtomicBool,
    /// Answers so far, for the progress line.
    completed: AtomicU64,
}

/// What a connection does in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Sends batches and waits for their answers.
    Requester,
    /// `message`'s B: receives and acknowledges (TNLM) or is subscribed (Redis).
    Receiver,
    /// Only holds the connection.
    Idle,
}

/// One connection of a worker.
struct Conn {
    stream: TcpStream,
    role: Role,
    /// Connected and greeted (TNLM hello, Redis PONG or subscribe confirmation).
    ready: bool,
    /// Id from the TNLM hello.
    id: u32,
    /// A partial frame carried over to the next read.
    partial: Vec<u8>,
    /// Bytes waiting to be written.
    out: Vec<u8>,
    /// One request, encoded; batches are copies with the request id patched.
    template: Vec<u8>,
    /// Requests of the current batch not answered yet.
    outstanding: u32,
    batch_start: Instant,
    next_id: u32,
    /// The answer due next, where answers come in request order (`time`, `list`).
    expect_id: u32,
    /// TNLM `message`: the batch's requests still waiting, answered in any order.
    in_flight: Option<InFlight>,
    /// Will start no more batches.
    finished: bool,
}

struct Worker<'a> {
    plan: &'a Plan,
    shared: &'a Shared,
    poll: Poll,
    conns: Vec<Conn>,
    first: usize,
    budget: Option<u64>,
    tally: Tally,
    /// Open loop: when each connection starts its next batch.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    deadline: Option<Instant>,
    scratch: Vec<u8>,
    /// Answers already added to the shared progress counter.
    reported: u64,
    /// Redis `message`: messages published (each should reach a subscriber).
    published: u64,
}

impl<'a> Worker<'a> {
    fn run(job: Job, plan: &'a Plan, shared: &'a Shared) -> Result<Tally, String> {
        let worker = Poll::new().map(|poll| Worker {
            plan,
            shared,
            poll,
            conns: Vec::with_capacity(job.conns),
            first: job.first,
            budget: job.budget,
            tally: Tally::new(),
            timers: BinaryHeap::new(),
            deadline: None,
            scratch: vec![0; 256 * 1024],
            reported: 0,
            published: 0,
        });
        let mut worker = match worker {
            Ok(worker) => worker,
            Err(err) => {
                shared.failed.store(true, Ordering::SeqCst);
                shared.barrier.wait();
                return Err(format!("cannot create an event loop: {err}"));
            }
        };
        let connected = worker.connect_all(job.conns);
        if connected.is_err() {
            shared.failed.store(true, Ordering::SeqCst);
        }
        shared.barrier.wait();
        connected?;
        if shared.failed.load(Ordering::SeqCst) {
            return Ok(worker.tally);
        }
        worker.measure()?;
        Ok(worker.tally)
    }

    /// Opens `count` connections, at most `window` waiting for their hello at once.
    fn connect_all(&mut self, count: usize) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        let mut opened = 0;
        let mut ready = 0;
        let mut last_progress = Instant::now();
        while ready < count {
            while opened < count && opened - ready < self.plan.window {
                self.open(opened)?;
                opened += 1;
            }
            let wait = self.plan.timeout.saturating_sub(last_progress.elapsed());
            if wait.is_zero() {
                return Err(format!(
                    "{} of {count} connections got no greeting within {:?}",
                    count - ready,
                    self.plan.timeout
                ));
            }
            self.poll.poll(&mut events, Some(wait)).map_err(|e| format!("poll: {e}"))?;
            for event in events.iter() {
                let index = event.token().0;
                let was_ready = self.conns[index].ready;
                self.service(index, event.is_readable(), Instant::now())?;
                if !was_ready && self.conns[index].ready {
                    ready += 1;
                    last_progress = Instant::now();
                }
            }
            if self.shared.failed.load(Ordering::Relaxed) {
                return Err("another generator thread failed".into());
            }
        }
        self.pair_up();
        Ok(())
    }

    fn open(&mut self, index: usize) -> Result<(), String> {
        let global = self.first + index;
        let mut stream = TcpStream::connect(self.plan.addr).map_err(|e| format!("connect {}: {e}", self.plan.addr))?;
        let _ = stream.set_nodelay(true);
        let _ = self.plan.socket.apply(SockRef::from(&stream));
        self.poll
            .registry()
            .register(&mut stream, Token(index), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| format!("register: {e}"))?;
        let role = match self.plan.kind {
            Kind::Idle => Role::Idle,
            Kind::Message if global % 2 == 1 => Role::Receiver,
            _ => Role::Requester,
        };
        let mut out = Vec::new();
        if self.plan.protocol == Protocol::Redis {
            // The greeting we wait for: a PONG, or the subscribe confirmation.
            match role {
                Role::Receiver => out.extend_from_slice(&redis::command(&["SUBSCRIBE", &redis::channel(global - 1)])),
                _ => out.extend_from_slice(&redis::command(&["PING"])),
            }
        }
        self.conns.push(Conn {
            stream,
            role,
            ready: false,
            id: 0,
            partial: Vec::new(),
            out,
            template: Vec::new(),
            outstanding: 0,
            batch_start: Instant::now(),
            next_id: 1,
            expect_id: 1,
            in_flight: (role == Role::Requester
                && self.plan.kind == Kind::Message
                && self.plan.protocol == Protocol::Tnlm)
                .then(InFlight::default),
            finished: role != Role::Requester,
        });
        Ok(())
    }

    /// Builds each requester's request template (for `message`, addressed to its partner).
    fn pair_up(&mut self) {
        for index in 0..self.conns.len() {
            if self.conns[index].role != Role::Requester {
                continue;
            }
            let to = self.conns.get(index + 1).map_or(0, |b| b.id);
            let template = template(self.plan.protocol, self.plan.kind, &self.plan.text, to, self.first + index);
            self.conns[index].template = template;
        }
    }

    /// The measured run: batches until the budget or the deadline, then the last answers.
    fn measure(&mut self) -> Result<(), String> {
        let start = Instant::now();
        self.deadline = self.plan.duration.map(|d| start + d);
        let clients = f64::from(self.plan.clients.max(1));
        for index in 0..self.conns.len() {
            match self.plan.interval {
                Some(interval) if self.conns[index].role == Role::Requester => {
                    let offset = interval.mul_f64((self.first + index) as f64 / clients);
                    self.timers.push(Reverse((start + offset, index)));
                }
                _ => self.start_batch(index, start),
            }
            self.flush(index)?;
        }
        let mut events = Events::with_capacity(1024);
        let mut drain_deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if self.deadline.is_some_and(|d| now >= d) {
                self.stop_starting();
            }
            if self.all_done() {
                break;
            }
            if self.starting_over() {
                let deadline = *drain_deadline.get_or_insert(now + self.plan.timeout);
                if now >= deadline {
                    let lost: u64 = self.conns.iter().map(|c| u64::from(c.outstanding)).sum();
                    self.tally.errors += lost + self.unrelayed();
                    break;
                }
            }
            self.fire_timers(now)?;
            let mut wake = now + Duration::from_millis(200);
            if let Some(d) = self.deadline.filter(|d| *d > now) {
                wake = wake.min(d);
            }
            if let Some(Reverse((due, _))) = self.timers.peek() {
                wake = wake.min(*due);
            }
            self.poll.poll(&mut events, Some(wake.saturating_duration_since(now))).map_err(|e| format!("poll: {e}"))?;
            let now = Instant::now();
            for event in events.iter() {
                self.service(event.token().0, event.is_readable(), now)?;
            }
            let delta = self.tally.answered - self.reported;
            if delta > 0 {
                self.shared.completed.fetch_add(delta, Ordering::Relaxed);
                self.reported = self.tally.answered;
            }
        }
        Ok(())
    }

    /// The deadline passed (or the budget ran out): no batch starts any more.
    fn stop_starting(&mut self) {
        for conn in &mut self.conns {
            conn.finished = true;
        }
        self.timers.clear();
    }

    fn starting_over(&self) -> bool {
        self.conns.iter().all(|c| c.finished)
    }

    /// Redis only: messages published but not yet seen by their subscriber.
    fn unrelayed(&self) -> u64 {
        if self.plan.protocol == Protocol::Redis && self.plan.kind == Kind::Message {
            self.published.saturating_sub(self.tally.relayed)
        } else {
            0
        }
    }

    fn all_done(&self) -> bool {
        match self.plan.kind {
            // Idle: hold until the deadline.
            Kind::Idle => self.deadline.is_some_and(|d| Instant::now() >= d),
            _ => self.starting_over() && self.conns.iter().all(|c| c.outstanding == 0) && self.unrelayed() == 0,
        }
    }

    fn fire_timers(&mut self, now: Instant) -> Result<(), String> {
        while let Some(Reverse((due, index))) = self.timers.peek().copied() {
            if due > now {
                break;
            }
            self.timers.pop();
            let conn = &mut self.conns[index];
            if conn.outstanding == 0 && !conn.finished {
                self.start_batch(index, now);
                self.flush(index)?;
            }
            if let Some(interval) = self.plan.interval {
                if !self.conns[index].finished {
                    // Keep the schedule; if we fell behind, catch up from now.
                    self.timers.push(Reverse(((due + interval).max(now), index)));
                }
            }
        }
        Ok(())
    }

    /// Appends the next batch of `index` to its output.
    fn start_batch(&mut self, index: usize, now: Instant) {
        let conn = &mut self.conns[index];
        if conn.role != Role::Requester || conn.finished || conn.outstanding > 0 {
            return;
        }
        let n = match &mut self.budget {
            Some(left) => {
                let n = u64::from(self.plan.pipeline).min(*left);
                *left -= n;
                n as u32
            }
            None => self.plan.pipeline,
        };
        if n == 0 {
            conn.finished = true;
            return;
        }
        let tnlm = self.plan.protocol == Protocol::Tnlm;
        if let Some(in_flight) = &mut conn.in_flight {
            in_flight.start(conn.next_id, n);
        }
        for _ in 0..n {
            let at = conn.out.len();
            conn.out.extend_from_slice(&conn.template);
            if tnlm {
                tnlm::set_request_id(&mut conn.out[at..], conn.next_id);
                conn.next_id = conn.next_id.wrapping_add(1).max(1);
            }
        }
        conn.outstanding = n;
        conn.batch_start = now;
        if self.plan.protocol == Protocol::Redis && self.plan.kind == Kind::Message {
            self.published += u64::from(n);
        }
    }

    /// Reads what arrived on `index`, handles it, and writes what that calls for.
    fn service(&mut self, index: usize, readable: bool, now: Instant) -> Result<(), String> {
        if readable {
            self.read(index, now)?;
        }
        self.flush(index)
    }

    fn read(&mut self, index: usize, now: Instant) -> Result<(), String> {
        loop {
            let n = match self.conns[index].stream.read(&mut self.scratch) {
                Ok(0) => return Err(format!("connection {} closed by the server", self.first + index)),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(format!("connection {}: {err}", self.first + index)),
            };
            let scratch = std::mem::take(&mut self.scratch);
            let result = if self.conns[index].partial.is_empty() {
                self.consume(index, &scratch[..n], now)
            } else {
                let mut joined = std::mem::take(&mut self.conns[index].partial);
                joined.extend_from_slice(&scratch[..n]);
                self.consume(index, &joined, now)
            };
            self.scratch = scratch;
            result?;
        }
    }

    /// Handles every whole frame in `bytes`; keeps a partial one for later.
    fn consume(&mut self, index: usize, bytes: &[u8], now: Instant) -> Result<(), String> {
        let mut at = 0;
        while at < bytes.len() {
            let next = match self.plan.protocol {
                Protocol::Tnlm => tnlm::next(&bytes[at..])?,
                Protocol::Redis => redis::next(&bytes[at..])?,
            };
            let Some((incoming, used)) = next else { break };
            at += used;
            self.handle(index, incoming, now)?;
        }
        if at < bytes.len() {
            self.conns[index].partial = bytes[at..].to_vec();
        }
        Ok(())
    }

    fn handle(&mut self, index: usize, incoming: Incoming, now: Instant) -> Result<(), String> {
        let conn = &mut self.conns[index];
        match incoming {
            Incoming::Hello(id) if !conn.ready => {
                conn.ready = true;
                conn.id = id;
            }
            Incoming::Refused(why) => return Err(format!("connection {}: {why}", self.first + index)),
            Incoming::Ping(id) => conn.out.extend_from_slice(&tnlm::pong(id)),
            Incoming::Relayed { ack } => {
                self.tally.relayed += 1;
                if let Some(id) = ack {
                    conn.out.extend_from_slice(&tnlm::ack(id));
                }
            }
            // Redis greets with a PONG, which later answers PINGs.
            Incoming::Hello(_) | Incoming::Answer { .. } if conn.outstanding > 0 => {
                let (id, ok) = match incoming {
                    Incoming::Answer { id, ok } => (id, ok),
                    _ => (None, true),
                };
                match (id, &mut conn.in_flight) {
                    (Some(id), Some(in_flight)) => {
                        if !in_flight.answer(id) {
                            return Err(format!("answer #{id} matches no request of the batch still waiting"));
                        }
                    }
                    (Some(id), None) => {
                        if id != conn.expect_id {
                            return Err(format!("answer #{id} arrived where #{} was due", conn.expect_id));
                        }
                        conn.expect_id = conn.expect_id.wrapping_add(1).max(1);
                    }
                    (None, _) => {}
                }
                conn.outstanding -= 1;
                self.tally.record(ok, now.saturating_duration_since(conn.batch_start), now);
                if conn.outstanding == 0 && self.plan.interval.is_none() {
                    self.start_batch(index, now);
                }
            }
            Incoming::Hello(_) | Incoming::Answer { .. } | Incoming::Other => {}
        }
        Ok(())
    }

    /// Writes what `index` has to send, as far as the socket takes it.
    fn flush(&mut self, index: usize) -> Result<(), String> {
        let conn = &mut self.conns[index];
        let mut written = 0;
        while written < conn.out.len() {
            match conn.stream.write(&conn.out[written..]) {
                Ok(0) => return Err(format!("connection {}: the socket takes no more", self.first + index)),
                Ok(n) => written += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                // Not connected yet: the writable event comes when it is.
                Err(err) if err.kind() == io::ErrorKind::NotConnected => break,
                Err(err) => return Err(format!("connection {}: {err}", self.first + index)),
            }
        }
        conn.out.drain(..written);
        Ok(())
    }
}

/// The text of every `message` request: `size` bytes.
fn bench_text(size: u32) -> String {
    "tnlm-bench-message-".chars().cycle().take(size as usize).collect()
}

/// One request of the run, encoded: batches are copies of it. `to` is the receiver's
/// client id (TNLM `message`), `sender` the sender's global connection index (Redis
/// `message`'s channel).
fn template(protocol: Protocol, kind: Kind, text: &str, to: u32, sender: usize) -> Vec<u8> {
    match (protocol, kind) {
        (Protocol::Tnlm, Kind::Message) => tnlm::frame(SendRequest { to, text: text.to_string() }),
        (Protocol::Tnlm, Kind::List) => tnlm::frame(ListRequest),
        (Protocol::Tnlm, _) => tnlm::frame(TimeRequest),
        (Protocol::Redis, Kind::Message) => redis::command(&["PUBLISH", &redis::channel(sender), text]),
        (Protocol::Redis, _) => redis::command(&["PING"]),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn args(kind: Kind, pipeline: u32, size: u32) -> BenchArgs {
        BenchArgs {
            clients: 2,
            pipeline,
            requests: Some(1),
            duration: None,
            kind,
            rate: None,
            threads: 1,
            size,
            connect_window: 1,
            server_pid: None,
            protocol: Protocol::Tnlm,
        }
    }

    #[test]
    fn a_batch_is_capped_at_64_mib() {
        assert!(args(Kind::Time, 100_000, 16).check().is_ok());
        assert!(args(Kind::Message, 1_000, 60_000).check().is_ok());
        let err = args(Kind::Message, 100_000, 60_000).check().unwrap_err();
        let request = template(Protocol::Tnlm, Kind::Message, &bench_text(60_000), 1, 0).len() as u64;
        let most = MAX_BATCH_BYTES / request;
        assert!(err.contains("64 MiB") && err.contains(&format!("--pipeline {most} or less")), "{err}");
        assert!(args(Kind::Message, most as u32, 60_000).check().is_ok());
        assert!(args(Kind::Message, most as u32 + 1, 60_000).check().is_err());
        let redis = BenchArgs { protocol: Protocol::Redis, ..args(Kind::Message, 100_000, 60_000) };
        assert!(redis.check().is_err());
    }

    #[test]
    fn jobs_share_out_connections_and_requests() {
        let args = BenchArgs {
            clients: 10,
            pipeline: 1,
            requests: Some(1001),
            duration: None,
            kind: Kind::Message,
            rate: None,
            threads: 3,
            size: 16,
            connect_window: 10,
            server_pid: None,
            protocol: Protocol::Tnlm,
        };
        let plan = Plan::new("127.0.0.1:1".parse().unwrap(), &args, &crate::connection::Settings::default());
        let jobs = plan.jobs(3);
        assert_eq!(jobs.iter().map(|j| j.conns).collect::<Vec<_>>(), [4, 4, 2]);
        assert!(jobs.iter().all(|j| j.first % 2 == 0));
        assert_eq!(jobs.iter().map(|j| j.budget.unwrap()).sum::<u64>(), 1001);
    }
}
