//! The plan of a run: what every worker thread needs to know (read-only), and
//! how the connections and the request budget are shared out among the threads.

use std::net::SocketAddr;
use std::time::Duration;

use super::args::BenchArgs;
use super::workload::{bench_text, Kind, Protocol};
use crate::connection::Settings;

/// Everything the worker threads share read-only.
pub(super) struct Plan {
    /// The server's address.
    pub(super) addr: SocketAddr,
    /// What to ask.
    pub(super) kind: Kind,
    /// The server's protocol.
    pub(super) protocol: Protocol,
    /// Connections in all.
    pub(super) clients: u32,
    /// Requests per batch.
    pub(super) pipeline: u32,
    /// Requests in all (`None`: until the deadline).
    pub(super) requests: Option<u64>,
    /// How long batches are started.
    pub(super) duration: Option<Duration>,
    /// Between two batches of one connection (open loop).
    pub(super) interval: Option<Duration>,
    /// The text of every `message` request.
    pub(super) text: String,
    /// Connections waiting for their greeting at once while connecting.
    pub(super) window: usize,
    /// Bounds the connect phase and the wait for the last answers.
    pub(super) timeout: Duration,
    /// Socket options applied to every connection.
    pub(super) socket: tnlm_core::sockopt::SocketOptions,
}

impl Plan {
    /// The plan for `args` against `addr`, with the timeout and socket options of `settings`.
    pub(super) fn new(addr: SocketAddr, args: &BenchArgs, settings: &Settings) -> Plan {
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

    /// Connections come in units that must share a thread: pairs for `message` and `publish`.
    pub(super) fn unit(&self) -> u32 {
        if matches!(self.kind, Kind::Message | Kind::Publish) {
            2
        } else {
            1
        }
    }

    /// How many units the connections make (the most threads that can share them).
    pub(super) fn units(&self) -> u32 {
        self.clients / self.unit()
    }

    /// Shares the connections (and the request budget) out among `threads`.
    pub(super) fn jobs(&self, threads: usize) -> Vec<Job> {
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
pub(super) struct Job {
    /// The thread's number (in its name).
    pub(super) index: usize,
    /// Global index of its first connection.
    pub(super) first: usize,
    /// How many connections it opens.
    pub(super) conns: usize,
    /// Requests it may start (`None`: until the deadline).
    pub(super) budget: Option<u64>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
        let plan = Plan::new("127.0.0.1:1".parse().unwrap(), &args, &Settings::default());
        let jobs = plan.jobs(3);
        assert_eq!(jobs.iter().map(|j| j.conns).collect::<Vec<_>>(), [4, 4, 2]);
        assert!(jobs.iter().all(|j| j.first % 2 == 0));
        assert_eq!(jobs.iter().map(|j| j.budget.unwrap()).sum::<u64>(), 1001);
    }
}
