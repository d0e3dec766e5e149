//! What a departed client leaves behind: nothing. Its thread, stack and
//! buffers are released when it leaves, not when the next client arrives.
//! Linux only: the server process's threads and memory are read from /proc.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{RawClient, ServerProcess};
use tnlm_core::requirement::Need;

/// How many clients come and go.
const CLIENTS: usize = 3_000;
/// docs/RELIABILITY.md: within this long after the last has left, the server
/// is back to its idle threads, …
const RELEASED_WITHIN: Duration = Duration::from_secs(1);
/// … has unmapped the departed threads' stacks (fewer mappings than this;
/// 6,072 when they were joined only at the next accept), …
const MAX_MAPPINGS: usize = 1_000;
/// … and holds at most 5 MB more resident memory than before they came
/// (about 1.9 MB of it is glibc's cache of exited threads' stacks, of which
/// only touched pages count; the freed heap goes back by `malloc_trim`, see
/// the server's `memory` module).
const RSS_SLACK_KIB: u64 = 5_000_000 / 1024;

/// One field of /proc/PID/status, as a number (`VmRSS` in KiB, `Threads`).
fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Polls `condition` until it holds or `timeout` passes; returns how long it took.
fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if condition() {
            return Some(started.elapsed());
        }
        if started.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Connects [`CLIENTS`] clients (each reads its hello), then drops them all and
/// waits until the server has logged every departure. No client connects
/// meanwhile, so no accept can be what releases their resources.
/// Returns the server's (threads, RSS in KiB) while they were connected.
fn come_and_go(server: &ServerProcess) -> (u64, u64) {
    let pid = server.child.id();
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let client = RawClient::connect(server.addr);
            let _ = client.id();
            client.stream
        })
        .collect();
    let peak = (status_field(pid, "Threads:"), status_field(pid, "VmRSS:"));
    drop(clients);
    for _ in 0..CLIENTS {
        server.wait_log("disconnected:");
    }
    peak
}

#[test]
fn departed_clients_free_their_threads_and_memory_when_they_leave() {
    if rlimit_files() < 2 * CLIENTS as u64 + 100 {
        Need::OpenFiles.missing("departed_clients_free_their_threads_and_memory_when_they_leave", "too few open files");
        return;
    }
    let server = ServerProcess::start(&["--heartbeat", "0"]);
    let pid = server.child.id();
    let mappings = || std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap().lines().count();
    // One client served and gone: the server's own threads have all started.
    drop(RawClient::connect(server.addr));
    server.wait_log("disconnected:");
    let (idle_threads, baseline_rss) = (status_field(pid, "Threads:"), status_field(pid, "VmRSS:"));

    let (peak_threads, peak_rss) = come_and_go(&server);
    let left = Instant::now();
    let back = wait_until(RELEASED_WITHIN, || {
        status_field(pid, "Threads:") <= idle_threads
            && mappings() < MAX_MAPPINGS
            && status_field(pid, "VmRSS:") <= baseline_rss + RSS_SLACK_KIB
    });
    let (threads, rss, maps) = (status_field(pid, "Threads:"), status_field(pid, "VmRSS:"), mappings());
    eprintln!(
        "{CLIENTS} clients came and went: threads {idle_threads} -> {peak_threads} -> {threads}, RSS \
         {baseline_rss} -> {peak_rss} -> {rss} KiB, {maps} mappings; released {back:?} after the last left \
         (checked {:?})",
        left.elapsed()
    );
    assert!(back.is_some(), "not released within {RELEASED_WITHIN:?}: {threads} threads, {rss} KiB, {maps} mappings");
}

/// This process's open-file limit, raised to the hard limit.
fn rlimit_files() -> u64 {
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
    if soft < hard {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
    rlimit::Resource::NOFILE.get().unwrap().0
}
