//! `tnlm-client`: the command line over the [`tnlm_client`] library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tnlm_client::Cli;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = cli.check() {
        err.exit();
    }
    init_logging(cli.verbose);
    tnlm_client::run(&cli)
}

/// Logs to stderr (colours only on a terminal); `RUST_LOG` wins, else `debug`
/// with `--verbose`, else `warn`.
fn init_logging(verbose: bool) {
    let default = if verbose { "debug" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
