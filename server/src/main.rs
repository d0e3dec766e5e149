//! `tnlm-server`: the TNLM server's command line.
//!
//! Prints `listening on <addr>:<port>` on stdout when ready, logs to stderr,
//! and stops cleanly on Ctrl-C, SIGTERM or `quit` typed on stdin.

use std::io::{self, BufRead, IsTerminal, Write};
use std::net::IpAddr;
use std::process::ExitCode;
use std::thread;

use clap::Parser;
use tnlm_core::sockopt::SocketOptions;
use tnlm_server::{config, Config, Server, ShutdownHandle};
use tracing_subscriber::EnvFilter;

/// TNLM server: answers Time, Name, List and Message requests from TNLM clients.
///
/// Each client gets its own thread. Type `quit` (or press Ctrl-C) to stop: every
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

    /// Largest frame payload accepted from a client, in bytes; a bigger frame gets
    /// an `oversize` error and the connection is closed.
    #[arg(long, value_name = "BYTES", default_value_t = tnlm_core::DEFAULT_MAX_PAYLOAD,
          value_parser = clap::value_parser!(u32).range(64..))]
    max_frame: u32,

    #[command(flatten)]
    socket: SocketOptions,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let config = Config {
        bind: cli.bind,
        port: cli.port,
        name: cli.name.unwrap_or_else(config::default_name),
        socket: cli.socket,
        max_payload: cli.max_frame,
        ..Config::default()
    };
    let requested = match config.bind {
        Some(ip) => format!("{ip}:{}", config.port),
        None => format!("port {}", config.port),
    };
    let server = match Server::bind(config) {
        Ok(server) => server,
        Err(err) => {
            eprintln!("error: cannot listen on {requested}: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", server.local_addr());
    let _ = io::stdout().flush();
    install_stop_triggers(server.shutdown_handle());
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
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
        let Ok(line) = line else { return };
        match line.trim() {
            "quit" | "exit" => return handle.shutdown(),
            "list" => print_clients(handle),
            "" => {}
            other => eprintln!("unknown command {other:?}; commands: `list`, `quit`"),
        }
    }
}

fn print_clients(handle: &ShutdownHandle) {
    let clients = handle.clients();
    println!("{} client(s) connected", clients.len());
    for client in clients {
        let addr = std::net::SocketAddr::new(client.ip, client.port);
        println!("  {:>4}  {addr}  since {}", client.id, client.since);
    }
}
