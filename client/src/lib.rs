//! # tnlm-client — the TNLM client as a library
//!
//! The binary `tnlm-client` is a thin shell over this crate; tests and the
//! load generator reuse the same pieces.
//!
//! Shape (the lab's client, done right):
//! - [`connection`]: one TCP connection to a server. A receiver thread
//!   (`tnlm-receiver`) reads the socket, feeds the streaming decoder and hands
//!   every decoded frame to the main thread over a channel; the main thread
//!   writes requests and matches responses by request id.
//! - [`commands`]: the scriptable subcommands (`time`, `name`, `list`, `send`,
//!   `listen`), each a short function over a connection.
//! - [`bench`](mod@bench): the load generator (`bench`): event-loop threads over many
//!   connections, pipelined batches, HdrHistogram latencies.
//! - [`conform`]: the conformance checker (`conform`): the cases of
//!   docs/PROTOCOL.md run against any server over raw sockets.
//! - [`menu`]: the seed's interactive 7-item menu. Stdin is read by its own
//!   thread into the same channel as network events, so messages from other
//!   clients are printed the moment they arrive.
//! - [`output`]: what gets printed, as human text or as one JSON object per line.
//! - [`cli`]: the command line, parsed by clap.

pub mod bench;
pub mod cli;
pub mod commands;
pub mod conform;
pub mod connection;
pub mod console;
pub mod error;
pub mod menu;
pub mod output;

use std::process::ExitCode;

pub use cli::{Cli, Command, Target};
pub use connection::{CloseReason, Connection, Event, EventSource, Inbox, QueuedMessages};
pub use error::ClientError;

/// Runs the client as the command line asks and returns the process exit code:
/// 0 on success, 1 when the operation failed (a one-line `error: …` message
/// has then been printed on stderr), 3 when the conformance checker could
/// not test ([`ClientError::exit_code`]).
///
/// Call [`Cli::check`] first: a subcommand without `--connect` is a usage error.
pub fn run(cli: &Cli) -> ExitCode {
    let result = match (&cli.command, &cli.connect) {
        (None, _) => menu::run(cli),
        (Some(command), Some(target)) => commands::run(cli, target, command),
        (Some(_), None) => Err(ClientError::Failed("this command needs --connect HOST:PORT".into())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
