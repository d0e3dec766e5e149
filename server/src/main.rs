//! `tnlm-server`: the TNLM server's command line.
//!
//! Prints `listening on <addr>:<port>` on stdout when ready (scripts wait for
//! that line), a welcome banner and the logs on stderr, and stops cleanly on
//! Ctrl-C, SIGTERM or `quit` typed on stdin.

use std::io::{self, BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use clap::Parser;
use tnlm_core::cli::{parse_secs, parse_secs_or_zero};
use tnlm_core::sockopt::SocketOptions;
use tnlm_server::{config, Config, Server, ShutdownHandle};

/// TNLM server: answers Time, Name, List and Message requests from TNLM clients.
///
/// Each client gets its own thread (or, with `--engine events`, a few event-loop
/// workers serve them all). Type `quit` (or press Ctrl-C) to stop: every
/// client is told, every thread joined. Type `list` to see who is connected.
/// Logs go to stderr; set RUST_LOG=debug to see every request.
#[derive(Debug, Parser)]
#[command(version, after_help = "Example:\n  tnlm-server --port 4579 --nodelay --keepalive 10,2,3")]
struct Cli {
    /// Address to listen on. Default: [::] dual-stack (IPv6 and IPv4), or 0.0.0.0
    /// where IPv6 is unavailable. Use 127.0.0.1 to accept local clients only.
    #[arg(long, value_name = "ADDR")]
    bind: Option<IpAddr>,

    /// TCP port to listen on; 0 picks a free port (printed in the listening line).
    #[arg(long, short, default_value_t = tnlm_core::DEFAULT_PORT)]
    port: u16,

    /// The name answered to N (name) requests. Default: this machine's host name.
    #[arg(long)]
    name: Option<String>,

    /// Largest frame payload accepted from a client, in bytes (at least 1024); a
    /// bigger frame gets an `oversize` error and the connection is closed. No frame
    /// the server sends is larger either (a long client list is cut to fit).
    #[arg(long, value_name = "BYTES", default_value_t = tnlm_core::DEFAULT_MAX_PAYLOAD,
          value_parser = clap::value_parser!(u32).range(i64::from(tnlm_core::MIN_MAX_PAYLOAD)..))]
    max_frame: u32,

    /// Ping a client after SECS seconds of silence and drop it after 3×SECS without
    /// a sign of life, so a client whose cable was pulled leaves the list and stops
    /// being offered messages. 0 turns the heartbeat off (a dead client then stays
    /// until TCP itself notices — see --keepalive and --user-timeout).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs_or_zero)]
    heartbeat: Duration,

    /// Refuse connections beyond this many clients (they get a `too_many_clients` error).
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: u32,

    /// Answer a message `not_acknowledged` when its target has not confirmed receipt
    /// within SECS seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    ack_timeout: Duration,

    /// Close a connection whose client takes longer than SECS seconds to send the rest
    /// of a frame it started (protects against one-byte-at-a-time "slowloris" peers).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    frame_timeout: Duration,

    /// Disconnect a client that does not read: a write to it blocked for SECS seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    write_timeout: Duration,

    /// Bytes of messages from other clients allowed to wait for one client; beyond
    /// that, senders get `queue_full`.
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
    queue_bytes: u64,

    /// Bytes of messages and receipts allowed to wait for all slow clients
    /// together, so that many of them at once cannot exhaust memory; beyond
    /// that, senders get `queue_full`.
    #[arg(long, value_name = "BYTES", default_value_t = tnlm_server::config::DEFAULT_QUEUE_TOTAL as u64, value_parser = clap::value_parser!(u64).range(1024..))]
    queue_total: u64,

    /// Wait SECS seconds after listening before accepting the first client, as if
    /// stopped at a breakpoint between listen() and accept(): clients that connect
    /// meanwhile finish the TCP handshake and wait in the listen queue; their hello
    /// comes once the delay is over. For the backlog experiment (docs/LABS.md).
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_secs_or_zero)]
    accept_delay: Duration,

    /// Log every request answered, one line each at the default level
    /// (`client 2 asked for the time`, and how each message ended), so the
    /// console shows what the lab report's server screenshots ask for.
    #[arg(long)]
    log_requests: bool,

    /// How the server does its I/O: `threads`, one thread per client with
    /// blocking reads (the lab's design); or `events`, a few event-loop workers
    /// (epoll on Linux) serving every client, for many clients at once (C10k).
    /// The protocol and every behaviour are the same.
    #[arg(long, value_enum, default_value_t = config::Engine::Threads)]
    engine: config::Engine,

    /// Worker threads of the event engine (default: one per core). Ignored by
    /// the thread engine.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,

    #[command(flatten)]
    socket: SocketOptions,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tnlm_core::cli::init_logging("info");
    let config = Config {
        bind: cli.bind,
        port: cli.port,
        name: cli.name.unwrap_or_else(config::default_name),
        socket: cli.socket,
        max_payload: cli.max_frame,
        max_clients: cli.max_clients as usize,
        queue_bytes: usize::try_from(cli.queue_bytes).unwrap_or(usize::MAX),
        queue_total: usize::try_from(cli.queue_total).unwrap_or(usize::MAX),
        heartbeat: Some(cli.heartbeat).filter(|secs| !secs.is_zero()),
        ack_timeout: cli.ack_timeout,
        frame_timeout: cli.frame_timeout,
        write_timeout: cli.write_timeout,
        accept_delay: Some(cli.accept_delay).filter(|secs| !secs.is_zero()),
        engine: cli.engine,
        workers: cli.workers.map_or_else(config::default_workers, usize::from),
        log_requests: cli.log_requests,
    };
    let requested = match config.bind {
        Some(ip) => format!("{ip}:{}", config.port),
        None => format!("port {}", config.port),
    };
    if let Err(err) = config.check() {
        eprintln!("error: {err}");
        return ExitCode::from(2); // a bad command line, as clap's own errors
    }
    if config.engine == config::Engine::Threads {
        // Thousands of client threads: keep their freed memory where it can
        // be given back when they leave (tnlm_server::memory).
        tnlm_server::memory::use_one_arena();
    }
    let name = config.name.clone();
    let engine = engine_words(&config);
    let server = match Server::bind(config) {
        Ok(server) => server,
        Err(err) => {
            eprintln!("error: cannot listen on {requested}: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", server.local_addr());
    let _ = io::stdout().flush();
    print_banner(server.local_addr(), &name, &engine);
    install_stop_triggers(server.shutdown_handle());
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The welcome banner of the lab's server screen, on stderr so that the
/// `listening on` line stays the first and only line scripts read on stdout:
/// where it listens, how it serves its clients, how a client reaches it,
/// and how to stop it.
fn print_banner(local: SocketAddr, name: &str, engine: &str) {
    let port = local.port();
    // From this machine; 127.0.0.1 also reaches a dual-stack `[::]` listener.
    let reach = if local.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], port)) } else { local };
    let everywhere = if local.ip().is_unspecified() { " (every address of this machine)" } else { "" };
    let version = env!("CARGO_PKG_VERSION");
    let protocol = tnlm_core::VERSION;
    let mut banner = format!("Welcome to the TNLM server {version} (protocol v{protocol}), named {name:?}.\n");
    banner += &format!("Listening on {}{everywhere}, TCP port {port}.\n", local.ip());
    banner += &format!("Serving {engine}.\n");
    banner += &format!("Connect a client with: tnlm-client -c {reach}\n");
    banner += "Type `list` for the connected clients; type `quit` or press Ctrl-C to stop.\n";
    let _ = io::stderr().write_all(banner.as_bytes());
}

/// How the banner says the server serves its clients.
fn engine_words(config: &Config) -> String {
    match config.engine {
        config::Engine::Threads => "each client on a thread of its own (--engine threads)".into(),
        config::Engine::Events => {
            let workers = config.workers.max(1);
            let plural = if workers == 1 { "" } else { "s" };
            format!("every client from {workers} event-loop worker{plural} (--engine events)")
        }
    }
}

/// Ctrl-C / SIGTERM, and `quit` on stdin, stop the server. End of stdin does
/// not: the server also runs detached (`</dev/null`) as a service.
fn install_stop_triggers(handle: ShutdownHandle) {
    let on_signal = handle.clone();
    if let Err(err) = ctrlc::set_handler(move || on_signal.shutdown()) {
        tracing::warn!("cannot install the Ctrl-C handler: {err}");
    }
    let spawned = thread::Builder::new().name("stdin".into()).spawn(move || read_console(&handle));
    if let Err(err) = spawned {
        tracing::warn!("cannot read commands from stdin: {err}");
    }
}

fn read_console(handle: &ShutdownHandle) {
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "quit" | "exit" => return handle.shutdown(),
            "list" => print_clients(handle),
            "" => {}
            other => eprintln!("unknown command {other:?}; commands: `list`, `quit`"),
        }
    }
    tracing::info!("end of stdin: no more console commands, still serving (stop with Ctrl-C or SIGTERM)");
}

fn print_clients(handle: &ShutdownHandle) {
    let clients = handle.clients();
    println!("{} client(s) connected", clients.len());
    for client in clients {
        let addr = SocketAddr::new(client.ip, client.port);
        println!("  {:>4}  {addr}  since {}", client.id, client.since);
    }
}
