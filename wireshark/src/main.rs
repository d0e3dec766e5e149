//! `cargo run -p tnlm-wireshark [OUTPUT]`: writes the generated dissector to OUTPUT,
//! by default `wireshark/tnlm.lua` in the workspace (found from this crate's manifest
//! directory, so it works from any current directory). Without OUTPUT it also refreshes
//! the filter field table in `wireshark/README.md` and the coloring rules
//! `wireshark/tnlm.colorfilters`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = match (args.next(), args.next()) {
        (None, _) => {
            let readme = crate_dir.join("README.md");
            if let Some(updated) = std::fs::read_to_string(&readme).ok().and_then(|r| tnlm_wireshark::splice_readme(&r))
            {
                if let Err(err) = std::fs::write(&readme, updated) {
                    eprintln!("error: cannot write {}: {err}", readme.display());
                    return ExitCode::FAILURE;
                }
                println!("updated the field table in {}", readme.display());
            }
            let colors = crate_dir.join("tnlm.colorfilters");
            if let Err(err) = std::fs::write(&colors, tnlm_wireshark::colorfilters()) {
                eprintln!("error: cannot write {}: {err}", colors.display());
                return ExitCode::FAILURE;
            }
            println!("wrote {}", colors.display());
            crate_dir.join("tnlm.lua")
        }
        (Some(arg), None) if arg == "-h" || arg == "--help" => {
            println!("usage: tnlm-wireshark [OUTPUT]\n\nWrites the TNLM Wireshark dissector generated from tnlm-core to OUTPUT\n(default: wireshark/tnlm.lua in the workspace).");
            return ExitCode::SUCCESS;
        }
        (Some(path), None) => PathBuf::from(path),
        (Some(_), Some(_)) => {
            eprintln!("error: expected at most one argument, the output path (see --help)");
            return ExitCode::from(2);
        }
    };
    let lua = tnlm_wireshark::generate();
    match std::fs::write(&output, &lua) {
        Ok(()) => {
            println!("wrote {} ({} bytes)", output.display(), lua.len());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: cannot write {}: {err}", output.display());
            ExitCode::FAILURE
        }
    }
}
