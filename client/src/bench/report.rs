//! The report of a run: what each worker counts ([`Tally`]), and the
//! [`Summary`] made of them, printed for people or as one JSON object.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::args::BenchArgs;
use super::cpu::CpuUsed;
use super::workload::{Kind, Protocol};
use crate::error::ClientError;

/// The final line of a run; `--json` prints it as one object of type `bench`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Always `"bench"`.
    #[serde(rename = "type")]
    pub record: &'static str,
    /// The server's protocol.
    pub protocol: Protocol,
    /// What was asked.
    pub kind: Kind,
    /// Connections.
    pub clients: u32,
    /// Requests in flight per connection.
    pub pipeline: u32,
    /// Generator threads.
    pub threads: u32,
    /// Requests answered (for `message`: receipts received).
    pub requests: u64,
    /// Answers that were errors or not `delivered`, plus requests never answered.
    pub errors: u64,
    /// Messages that reached their receiver (`message` only; 0 otherwise).
    pub relayed: u64,
    /// From the first batch to the last answer, in seconds.
    pub elapsed_s: f64,
    /// Requests answered per second.
    pub rps: f64,
    /// Messages relayed per second (`message` only).
    pub relayed_per_s: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// 99.9th percentile latency, µs.
    pub p999_us: f64,
    /// Largest latency, µs.
    pub max_us: f64,
    /// Mean latency, µs.
    pub mean_us: f64,
    /// Time to open every connection and receive every hello, ms.
    pub connect_ms: f64,
    /// CPU time of this generator during the measured run, s (Linux; else null).
    pub cpu_s: Option<f64>,
    /// CPU time of the `--server-pid` process during the measured run, s.
    pub server_cpu_s: Option<f64>,
    /// CPU time every process on the machine used during the run, s (Linux,
    /// from /proc/stat): what exceeds `cpu_s` + `server_cpu_s` ran beside
    /// the benchmark (builds, tests) and competed with it.
    pub machine_cpu_s: Option<f64>,
    /// CPU time the machine had during the run: cores × elapsed, s.
    pub machine_capacity_s: f64,
}

impl Summary {
    /// Prints the summary on stdout: one JSON line with `json`, else text for people.
    pub(super) fn print(&self, json: bool) -> Result<(), ClientError> {
        if json {
            let line = serde_json::to_string(self).map_err(|e| ClientError::Failed(e.to_string()))?;
            write_stdout(&format!("{line}\n"));
        } else {
            write_stdout(&self.text());
        }
        Ok(())
    }

    /// The summary for people.
    fn text(&self) -> String {
        use std::fmt::Write as _;
        let s = self;
        let mut text = String::new();
        let plural = if s.threads == 1 { "" } else { "s" };
        let _ = writeln!(
            text,
            "bench {}: {} clients × pipeline {} ({} generator thread{plural})",
            s.title(),
            s.clients,
            s.pipeline,
            s.threads
        );
        let _ = writeln!(text, "  connect    {} connections in {:.1} ms", s.clients, s.connect_ms);
        let _ = writeln!(
            text,
            "  answered   {} in {:.2} s = {:.0} requests/s ({} errors)",
            s.requests, s.elapsed_s, s.rps, s.errors
        );
        if matches!(s.kind, Kind::Message | Kind::Publish) {
            let _ = writeln!(text, "  relayed    {} = {:.0} messages/s", s.relayed, s.relayed_per_s);
        }
        if s.requests > 0 {
            let _ = writeln!(
                text,
                "  latency    p50 {:.0} µs  p99 {:.0} µs  p99.9 {:.0} µs  max {:.0} µs  mean {:.0} µs",
                s.p50_us, s.p99_us, s.p999_us, s.max_us, s.mean_us
            );
        }
        s.write_cpu(&mut text);
        text
    }

    /// What was measured, as the first line names it.
    fn title(&self) -> String {
        match (self.protocol, self.kind) {
            (Protocol::Tnlm, kind) => format!("{kind:?}").to_lowercase(),
            (Protocol::Redis, Kind::Time) => "redis PING".into(),
            (Protocol::Redis, Kind::Message) => "redis PUBLISH→SUBSCRIBE".into(),
            (Protocol::Redis, kind) => format!("redis {kind:?}").to_lowercase(),
            (Protocol::Nats, Kind::Time) => "nats PING".into(),
            (Protocol::Nats, Kind::Message) => "nats request→reply".into(),
            (Protocol::Nats, Kind::Publish) => "nats PUB→SUB".into(),
            (Protocol::Nats, kind) => format!("nats {kind:?}").to_lowercase(),
        }
    }

    /// The `cpu` and `machine` lines, where the platform gave the figures.
    fn write_cpu(&self, text: &mut String) {
        use std::fmt::Write as _;
        match (self.cpu_s, self.server_cpu_s) {
            (Some(own), Some(server)) => {
                let _ = writeln!(text, "  cpu        generator {own:.2} s, server {server:.2} s");
            }
            (Some(own), None) => {
                let _ = writeln!(text, "  cpu        generator {own:.2} s");
            }
            _ => {}
        }
        if let Some(machine) = self.machine_cpu_s {
            let _ = writeln!(
                text,
                "  machine    {machine:.2} s of {:.2} s CPU used by all processes (others: {:.2} s)",
                self.machine_capacity_s,
                (machine - self.cpu_s.unwrap_or(0.0) - self.server_cpu_s.unwrap_or(0.0)).max(0.0)
            );
        }
    }
}

/// Writes to stdout; a closed pipe (e.g. `| head`) is not worth a panic.
fn write_stdout(text: &str) {
    let _ = io::stdout().lock().write_all(text.as_bytes());
}

/// What one worker counted.
pub(super) struct Tally {
    /// Every answer's latency, ns.
    histogram: Histogram<u64>,
    /// Answers received.
    pub(super) answered: u64,
    /// Answers that were errors, and requests never answered.
    pub(super) errors: u64,
    /// Messages that reached their receiver.
    pub(super) relayed: u64,
    /// When the last answer arrived.
    pub(super) last_answer: Option<Instant>,
}

impl Tally {
    /// An empty tally.
    pub(super) fn new() -> Tally {
        // 1 ns to 1 hour, 3 significant digits.
        let histogram = Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds");
        Tally { histogram, answered: 0, errors: 0, relayed: 0, last_answer: None }
    }

    /// Counts an answer that arrived at `now`, `latency` after its batch was written.
    #[inline]
    pub(super) fn record(&mut self, ok: bool, latency: Duration, now: Instant) {
        self.answered += 1;
        if !ok {
            self.errors += 1;
        }
        self.histogram.saturating_record(latency.as_nanos().try_into().unwrap_or(u64::MAX).max(1));
        self.last_answer = Some(now);
    }

    /// Adds another worker's counts to these.
    pub(super) fn merge(&mut self, other: &Tally) {
        let _ = self.histogram.add(&other.histogram);
        self.answered += other.answered;
        self.errors += other.errors;
        self.relayed += other.relayed;
        self.last_answer = self.last_answer.max(other.last_answer);
    }

    /// The summary of a run of `args` on `threads` threads: answers over `elapsed`,
    /// `connect` to open the connections, the `cpu` used, and the machine's
    /// `capacity_s` (cores × run time, s).
    pub(super) fn summary(
        &self,
        args: &BenchArgs,
        threads: u32,
        elapsed: Duration,
        connect: Duration,
        cpu: CpuUsed,
        capacity_s: f64,
    ) -> Summary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let us = |ns: u64| ns as f64 / 1000.0;
        let h = &self.histogram;
        Summary {
            record: "bench",
            protocol: args.protocol,
            kind: args.kind,
            clients: args.clients,
            pipeline: args.pipeline,
            threads,
            requests: self.answered,
            errors: self.errors,
            relayed: self.relayed,
            elapsed_s: round(secs, 3),
            rps: round(self.answered as f64 / secs, 0),
            relayed_per_s: round(self.relayed as f64 / secs, 0),
            p50_us: round(us(h.value_at_quantile(0.50)), 1),
            p99_us: round(us(h.value_at_quantile(0.99)), 1),
            p999_us: round(us(h.value_at_quantile(0.999)), 1),
            max_us: round(us(h.max()), 1),
            mean_us: round(h.mean() / 1000.0, 1),
            connect_ms: round(millis(connect), 1),
            cpu_s: cpu.own.map(|s| round(s, 2)),
            server_cpu_s: cpu.server.map(|s| round(s, 2)),
            machine_cpu_s: cpu.machine.map(|s| round(s, 2)),
            machine_capacity_s: round(capacity_s, 2),
        }
    }
}

/// `value` rounded to `digits` decimals.
fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// A duration in milliseconds.
pub(super) fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
