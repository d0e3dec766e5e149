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
//!   have every hello);
//! - `publish` (NATS only): pairs again; A publishes to B's subject, and as
//!   nothing comes back to A, A's request completes when B has the message.
//!
//! `--rate R` turns the closed loop into an open one: each connection starts
//! R batches a second, evenly spread over the connections.
//!
//! `--protocol redis` drives a Redis server the same way, with the nearest
//! equivalent commands (`time`: `PING` as a multi-bulk, like
//! `redis-benchmark -t ping_mbulk`; `message`: A `PUBLISH`es on a channel
//! that B is `SUBSCRIBE`d to, and a message counts as relayed when B has
//! it), so `ci/bench.sh` compares both servers with one generator.
//! `--protocol nats` does the same for NATS (`time`: `PING`; `message`:
//! request-reply, A publishes with a reply subject and B publishes the answer
//! back, the twin of a message and its receipt; `publish`: a plain `PUB`).
//!
//! Layout, one job per file; they import each other in one direction only:
//! - `args`: the flags and the checks clap cannot express;
//! - `workload`: what a run asks ([`Kind`]) of which server ([`Protocol`]),
//!   the request every batch copies, and which codec reads the answers;
//! - `tnlm`, `redis`, `nats`: one codec per protocol (TNLM headers are read with
//!   core's [`Header`](tnlm_core::Header) and [`offset`](tnlm_core::frame::offset)),
//!   each producing an `incoming::Incoming`;
//! - `plan`: the run as every worker sees it, and its share-out among threads;
//! - `worker`: one event-loop thread and its connections;
//! - `conn`: one connection's role, buffers and batch;
//! - `in_flight`: the requests of a batch whose answers come in any order;
//! - `report`: each worker's tally and the [`Summary`], as text or JSON;
//! - `cpu`: the CPU time of the generator, the server and the machine;
//! - this file: the run itself (start the workers, wait, add up).
//!
//! [`Connection`]: crate::connection::Connection

pub(crate) mod args;
mod conn;
mod cpu;
mod in_flight;
mod incoming;
mod kind;
mod nats;
mod plan;
mod redis;
mod report;
mod tnlm;
mod worker;
mod workload;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

pub use args::{BenchArgs, MAX_BATCH_BYTES};
pub use report::Summary;
pub use workload::{Kind, Protocol};

use crate::cli::{Cli, Target};
use crate::error::ClientError;
use cpu::CpuClock;
use plan::Plan;
use report::{millis, Tally};
use worker::{Shared, Worker};

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
    args.check_kind().map_err(ClientError::Failed)?;
    let plan = Arc::new(Plan::new(addr, args, settings));
    let threads = args.threads.min(plan.units()) as usize;
    let shared = Arc::new(Shared::new(threads));
    let started = Instant::now();
    let (handles, done) = spawn_workers(&plan, &shared, threads)?;
    shared.barrier.wait();
    let connect = started.elapsed();
    let start = Instant::now();
    let cpu = CpuClock::start(args.server_pid);
    if progress && !shared.failed.load(Ordering::SeqCst) {
        eprintln!("bench: {} connections open in {:.1} ms", args.clients, millis(connect));
    }
    wait_for_workers(&done, handles.len(), &shared, start, progress);
    let elapsed = start.elapsed();
    let cpu = cpu.used_since();
    let total = join_workers(handles)?;
    // From the first batch to the last answer (idle runs: the whole hold).
    let elapsed = match total.last_answer {
        Some(last) if args.kind != Kind::Idle => last.saturating_duration_since(start),
        _ => elapsed,
    };
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let capacity_s = cores as f64 * start.elapsed().as_secs_f64();
    Ok(total.summary(args, threads as u32, elapsed, connect, cpu, capacity_s))
}

/// A worker thread: what it counted, or why it failed.
type WorkerHandle = thread::JoinHandle<Result<Tally, String>>;

/// Starts one worker thread per job of `plan`; each sends on the returned
/// channel when it ends.
fn spawn_workers(
    plan: &Arc<Plan>,
    shared: &Arc<Shared>,
    threads: usize,
) -> Result<(Vec<WorkerHandle>, Receiver<()>), ClientError> {
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    let mut handles = Vec::new();
    for job in plan.jobs(threads) {
        let (plan, shared, done) = (Arc::clone(plan), Arc::clone(shared), done_tx.clone());
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
    Ok((handles, done_rx))
}

/// Waits until `workers` threads have ended, printing the answers per second
/// every second with `progress`.
fn wait_for_workers(done: &Receiver<()>, workers: usize, shared: &Shared, start: Instant, progress: bool) {
    let mut finished = 0;
    let mut last = (start, 0u64);
    while finished < workers {
        match done.recv_timeout(Duration::from_secs(1)) {
            Ok(()) => finished += 1,
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) if progress => {
                let (now, completed) = (Instant::now(), shared.completed.load(Ordering::Relaxed));
                let rate = (completed - last.1) as f64 / (now - last.0).as_secs_f64();
                eprintln!("bench: {:6.1} s  {completed:>12} answered  {rate:>12.0} /s", (now - start).as_secs_f64());
                last = (now, completed);
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Joins every worker and adds up their tallies; the first failure fails the run.
fn join_workers(handles: Vec<WorkerHandle>) -> Result<Tally, ClientError> {
    let mut total = Tally::new();
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(tally)) => total.merge(&tally),
            Ok(Err(err)) => first_error = first_error.or(Some(err)),
            Err(_) => first_error = first_error.or(Some("a generator thread panicked".to_string())),
        }
    }
    match first_error {
        Some(err) => Err(ClientError::Failed(format!("bench failed: {err}"))),
        None => Ok(total),
    }
}

/// The first address `target` resolves to.
fn resolve(target: &Target) -> Result<SocketAddr, ClientError> {
    let text = target.to_string();
    let failed = |source| ClientError::Connect { target: text.clone(), source };
    (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(failed)?
        .next()
        .ok_or_else(|| failed(io::Error::new(io::ErrorKind::NotFound, "the host name has no address")))
}
