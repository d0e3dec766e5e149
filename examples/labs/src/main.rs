//! `tnlm-labs`: the lab report's TCP experiments, one command each.
//!
//! `cargo run -p tnlm-labs -- burst` (or `many`, `cable`, `ports`, `backlog`,
//! `closing`, `whois`, `c10k`, `all`). Each prints what it observed; docs/LABS.md
//! explains what to look for and why.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tnlm_labs::{backlog, burst, c10k, cable, closing, many, ports, whois, CaptureTo, LabError};
use tnlm_server::Engine;
use tracing_subscriber::EnvFilter;

/// The lab report's TCP experiments, one command each. Every experiment starts its
/// own TNLM server in this process (c10k: in processes of its own), on 127.0.0.1
/// and a free port, so it does not disturb a server you run yourself; it prints
/// what it observes in plain words and numbers, and on Linux records a pcapng
/// capture to open in Wireshark with the TNLM dissector. The server's log lines are shown as `[server] …`.
/// See docs/LABS.md for what to look for and why.
#[derive(Debug, Parser)]
#[command(name = "tnlm-labs", version, after_help = "Example:\n  cargo run -p tnlm-labs -- burst")]
struct Cli {
    /// Where to write the captures (Linux; needs dumpcap with capture rights, e.g. root).
    #[arg(long, value_name = "DIR", global = true, default_value_os_t = tnlm_labs::default_capture_dir())]
    capture_dir: PathBuf,

    /// Do not record captures.
    #[arg(long, global = true)]
    no_capture: bool,

    /// The experiment.
    #[command(subcommand)]
    experiment: Experiment,
}

#[derive(Debug, Subcommand)]
enum Experiment {
    /// 1. One choice sends 100 time requests (100 send() calls, no sleep): count the
    ///    responses and the TCP segments, with Nagle on and with --nodelay.
    Burst {
        /// Requests per burst.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        count: u32,
        /// Only the run with Nagle's algorithm on (the default).
        #[arg(long, conflicts_with = "nodelay_only")]
        nagle_only: bool,
        /// Only the run with --nodelay on both ends.
        #[arg(long)]
        nodelay_only: bool,
    },
    /// 2. Many clients burst at the same moment; every response is accounted for.
    Many {
        /// How many clients.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
        clients: u16,
        /// Time requests per client.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        requests: u32,
        /// Set --nodelay on every socket.
        #[arg(long)]
        nodelay: bool,
    },
    /// 3. Pull a client's cable (Linux, root: a network namespace): the server keeps the
    ///    ghost without detection, drops it with --heartbeat or --keepalive.
    Cable {
        /// Seconds to watch the ghost when nothing detects it.
        #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
        watch: u64,
        /// Only this run.
        #[arg(long, value_enum)]
        only: Option<CableRun>,
        /// In the run without detection, leave the cable out and wait until each
        /// side gives up by itself: the killed client's OS on its FIN (Linux: about
        /// 2 minutes) and the server on the message (about 15 minutes).
        #[arg(long)]
        until_gone: bool,
    },
    /// 4. Ephemeral ports: the client never binds; each connect gets a new source port.
    Ports {
        /// Connections, one after the other.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
        connections: u16,
    },
    /// 5. The listen queue: connect() completes before the server calls accept()
    ///    (the server's --accept-delay).
    Backlog {
        /// The server's --accept-delay, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 3.0)]
        delay: f64,
        /// Clients that connect during the delay.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=1000))]
        clients: u16,
    },
    /// 6. Closing states: who is left in TIME_WAIT and for how long; --linger 0 sends
    ///    RST and leaves none. Read from the OS's socket table.
    Closing {
        /// Then wait until the TIME_WAIT is gone and say how long it lasted (~60 s on Linux).
        #[arg(long)]
        watch: bool,
    },
    /// 7. Who is who: clients from one IP address told apart by the 4-tuple.
    #[command(alias = "who-is-who")]
    Whois {
        /// How many clients.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(2..=100))]
        clients: u16,
    },
    /// 8. C10k: the same load against both server engines (threads, events): the
    ///    server's threads, RSS, context switches per request, and the most clients
    ///    each holds.
    C10k {
        /// Idle clients (held by other processes).
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        clients: u32,
        /// Active clients, each sending time requests one after the other.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
        active: u16,
        /// Time requests per active client.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        requests: u32,
        /// Worker threads of the events engine (default: one per core).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        workers: Option<u16>,
        /// Only this engine.
        #[arg(long, value_enum)]
        engine: Option<Engine>,
        /// Then connect more idle clients until the server stops accepting them, or MAX
        /// are connected (takes a while, and a thread per client with `threads`).
        #[arg(long, value_name = "MAX", num_args = 0..=1, default_missing_value = "30000",
              value_parser = clap::value_parser!(u32).range(1..))]
        probe: Option<u32>,
    },
    /// All of the above with their defaults (cable only where it can run).
    All,
    /// Runs a lab server in this process until stdin closes (used by `c10k`).
    #[command(hide = true)]
    Serve {
        /// The engine.
        #[arg(long, value_enum, default_value_t = Engine::Threads)]
        engine: Engine,
        /// Workers of the events engine.
        #[arg(long, default_value_t = tnlm_server::config::default_workers())]
        workers: usize,
    },
    /// Connects idle clients and holds them until stdin closes (used by `c10k`).
    #[command(hide = true)]
    Hold {
        /// The server.
        addr: std::net::SocketAddr,
        /// How many clients.
        #[arg(long)]
        clients: usize,
    },
    /// Runs tnlm-client with the given arguments (used by `cable` inside the namespace).
    #[command(hide = true, disable_help_flag = true)]
    Client {
        /// tnlm-client's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// One run of the `cable` experiment.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CableRun {
    /// No heartbeat, no keepalive.
    Nothing,
    /// --heartbeat 1.
    Heartbeat,
    /// --keepalive 1,1,2.
    Keepalive,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Experiment::Client { args } = &cli.experiment {
        return run_client(args);
    }
    // A server with thousands of clients would log a line for each: warnings only.
    let quiet = matches!(cli.experiment, Experiment::Serve { .. } | Experiment::Hold { .. });
    init_server_log(if quiet { "tnlm_server=warn" } else { "tnlm_server=info" });
    let capture = if cli.no_capture { CaptureTo::none() } else { CaptureTo::dir(&cli.capture_dir) };
    let result = match cli.experiment {
        Experiment::All => all(&capture),
        experiment => one(experiment, &capture),
    };
    let _ = io::stdout().flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(LabError::Unsupported(why)) => {
            eprintln!("cannot run this experiment here: {why}");
            eprintln!("docs/LABS.md describes how to do it by hand (also on Windows).");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn one(experiment: Experiment, capture: &CaptureTo) -> Result<(), LabError> {
    let capture = capture.clone();
    match experiment {
        Experiment::Burst { count, nagle_only, nodelay_only } => {
            let nodelay = match (nagle_only, nodelay_only) {
                (true, _) => vec![false],
                (_, true) => vec![true],
                _ => vec![false, true],
            };
            burst::run(&burst::Options { count, nodelay, capture }).map(drop)
        }
        Experiment::Many { clients, requests, nodelay } => {
            many::run(&many::Options { clients: clients.into(), requests, nodelay, capture }).map(drop)
        }
        Experiment::Cable { watch, only, until_gone } => {
            let runs = match only {
                None => vec![cable::Detection::Nothing, HEARTBEAT, KEEPALIVE],
                Some(CableRun::Nothing) => vec![cable::Detection::Nothing],
                Some(CableRun::Heartbeat) => vec![HEARTBEAT],
                Some(CableRun::Keepalive) => vec![KEEPALIVE],
            };
            let program = std::env::current_exe()?;
            let watch = Duration::from_secs(watch);
            let ack_timeout = Duration::from_secs(2);
            cable::run(&cable::Options { runs, watch, ack_timeout, program, capture, until_gone }).map(drop)
        }
        Experiment::Ports { connections } => ports::run(&ports::Options { connections: connections.into() }).map(drop),
        Experiment::Backlog { delay, clients } => {
            let delay = Duration::try_from_secs_f64(delay)
                .map_err(|_| LabError::Failed(format!("--delay {delay} is not a number of seconds")))?;
            backlog::run(&backlog::Options { delay, clients: clients.into(), capture }).map(drop)
        }
        Experiment::Closing { watch } => closing::run(&closing::Options { watch, capture }).map(drop),
        Experiment::Whois { clients } => whois::run(&whois::Options { clients: clients.into() }).map(drop),
        Experiment::C10k { clients, active, requests, workers, engine, probe } => {
            let options = c10k::Options {
                engines: engine.map_or_else(|| vec![Engine::Threads, Engine::Events], |e| vec![e]),
                workers: workers.map_or_else(tnlm_server::config::default_workers, usize::from),
                idle: clients as usize,
                active: active.into(),
                requests,
                probe: probe.map(|n| n as usize),
                program: std::env::current_exe()?,
            };
            c10k::run(&options).map(drop)
        }
        Experiment::Serve { engine, workers } => c10k::serve(engine, workers),
        Experiment::Hold { addr, clients } => c10k::hold(addr, clients),
        Experiment::All | Experiment::Client { .. } => Ok(()),
    }
}

const HEARTBEAT: cable::Detection = cable::Detection::Heartbeat(1);
const KEEPALIVE: cable::Detection = cable::Detection::Keepalive(1, 1, 2);

/// Every experiment with its defaults; `cable` is skipped (with the reason) where it cannot run.
fn all(capture: &CaptureTo) -> Result<(), LabError> {
    let experiments = [
        Experiment::Burst { count: 100, nagle_only: false, nodelay_only: false },
        Experiment::Many { clients: 10, requests: 100, nodelay: false },
        Experiment::Cable { watch: 5, only: None, until_gone: false },
        Experiment::Ports { connections: 5 },
        Experiment::Backlog { delay: 3.0, clients: 3 },
        Experiment::Closing { watch: false },
        Experiment::Whois { clients: 3 },
        Experiment::C10k { clients: 2000, active: 50, requests: 200, workers: None, engine: None, probe: None },
    ];
    for experiment in experiments {
        match one(experiment, capture) {
            Err(LabError::Unsupported(why)) => println!("\n(skipped: {why})"),
            other => other?,
        }
    }
    Ok(())
}

/// `tnlm-labs client ARGS…` is `tnlm-client ARGS…`.
fn run_client(args: &[String]) -> ExitCode {
    let cli = tnlm_client::Cli::parse_from(std::iter::once("tnlm-client".to_string()).chain(args.iter().cloned()));
    if let Err(err) = cli.check() {
        err.exit();
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(io::stderr).try_init();
    tnlm_client::run(&cli)
}

/// The in-process server's log lines go to stderr as `   [server] …`
/// (`RUST_LOG` overrides the default filter).
fn init_server_log(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Prefixed)
        .with_ansi(io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .with_level(false)
        .try_init();
}

/// Writes each log line to stderr behind a `[server]` prefix.
struct Prefixed;

impl Write for Prefixed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stdout().flush(); // keep our stdout lines and the log in order
        let mut err = io::stderr().lock();
        err.write_all(b"   [server] ")?;
        err.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
