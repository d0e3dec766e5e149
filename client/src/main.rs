//! `tnlm-client`: the command line over the [`tnlm_client`] library.

use std::process::ExitCode;

use clap::Parser;
use tnlm_client::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = cli.check() {
        err.exit();
    }
    // `RUST_LOG` wins, else `debug` with `--verbose`, else `warn`.
    tnlm_core::cli::init_logging(if cli.verbose { "debug" } else { "warn" });
    tnlm_client::run(&cli)
}
