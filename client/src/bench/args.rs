//! The arguments of `tnlm-client bench`: its flags, and the checks clap cannot express.

use std::time::Duration;

use clap::Args;

use super::workload::{bench_text, template, Kind, Protocol};
use tnlm_core::cli::parse_secs;

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
    /// list), idle (connect, then only hold the connections for --duration), publish
    /// (NATS only: A publishes to B's subject, counted when B has it; even --clients).
    #[arg(long, value_enum, default_value_t = Kind::Time)]
    pub kind: Kind,

    /// Open loop: each connection starts R batches per second (evenly spread), instead of
    /// the next batch as soon as the last is answered. Example: --rate 10
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate: Option<u32>,

    /// Event-loop threads of the generator (connections are shared out among them).
    #[arg(long, value_name = "T", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: u32,

    /// Bytes of text in each message (--kind message and publish).
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
    /// (time = PING, message = PUBLISH to a channel another connection SUBSCRIBEd to),
    /// or nats for a NATS server (time = PING; message = request-reply: A publishes with
    /// a reply subject, B publishes the answer back; publish = plain PUB to a SUBscriber).
    #[arg(long, value_enum, default_value_t = Protocol::Tnlm)]
    pub protocol: Protocol,
}

/// The most bytes one batch may take: a batch is --pipeline copies of the request in one
/// buffer, written at once.
pub const MAX_BATCH_BYTES: u64 = 64 * 1024 * 1024;

impl BenchArgs {
    /// Checks the combinations a run cannot make: `message` and `publish` pair
    /// the connections, `idle` needs a duration, only TNLM has `list`, and only
    /// NATS has `publish`.
    pub(super) fn check_kind(&self) -> Result<(), String> {
        if matches!(self.kind, Kind::Message | Kind::Publish) && !self.clients.is_multiple_of(2) {
            let kind = format!("{:?}", self.kind).to_lowercase();
            return Err(format!("--kind {kind} pairs the connections: give an even --clients"));
        }
        if self.kind == Kind::Idle && self.duration.is_none() {
            return Err("--kind idle holds the connections for --duration SECS".into());
        }
        match (self.protocol, self.kind) {
            (Protocol::Redis, Kind::List) => Err("--kind list has no Redis equivalent".into()),
            (Protocol::Nats, Kind::List) => Err("--kind list has no NATS equivalent".into()),
            (Protocol::Tnlm, Kind::Publish) => {
                Err("--kind publish is NATS's: a TNLM message always has its receipt (--kind message)".into())
            }
            (Protocol::Redis, Kind::Publish) => {
                Err("--kind publish is NATS's: Redis's --kind message already is PUBLISH to a subscriber".into())
            }
            _ => Ok(()),
        }
    }

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
}
