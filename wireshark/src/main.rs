//! `cargo run -p tnlm-wireshark [OUTPUT]`: writes the generated dissector to OUTPUT,
//! by default `wireshark/tnlm.lua` in the workspace (found from this crate's manifest
//! directory, so it works from any current directory). Without OUTPUT it also refreshes
//! the filter field table in `wireshark/README.md`, the coloring rules
//! `wireshark/tnlm.colorfilters` and the profile `wireshark/profiles/TNLM/colorfilters`.
//!
//! `cargo run -p tnlm-wireshark -- install [--plugins DIR] [--config DIR] [--dry-run]`:
//! copies the dissector and the TNLM profile into the user's personal Wireshark folders.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use tnlm_wireshark::install::{self, Folders};

const USAGE: &str = "usage: tnlm-wireshark [OUTPUT]
       tnlm-wireshark install [--plugins DIR] [--config DIR] [--dry-run]

Writes the TNLM Wireshark dissector generated from tnlm-core to OUTPUT (default:
wireshark/tnlm.lua in the workspace, with the README's field table and the coloring
rules and profile next to it).

install: copies the dissector (tnlm.lua) into your personal Lua plugins folder and the
\"TNLM\" configuration profile (its coloring rules first, then Wireshark's defaults) into
your personal configuration folder, and prints where. The folders are those that
`tshark -G folders` reports, else Wireshark's defaults (Linux, macOS:
~/.local/lib/wireshark/plugins and ~/.config/wireshark; Windows:
%APPDATA%\\Wireshark\\plugins and %APPDATA%\\Wireshark). Then restart Wireshark (or
Analyze > Reload Lua Plugins) and pick the profile: Edit > Configuration Profiles, or
click \"Profile\" in the status bar.
  --plugins DIR   the Lua plugins folder to use
  --config DIR    the personal configuration folder to use (the profile goes to
                  DIR/profiles/TNLM)
  --dry-run       print where the files would go, write nothing";

fn write(path: &PathBuf, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn regenerate_all(crate_dir: &std::path::Path) -> Result<PathBuf, String> {
    let readme = crate_dir.join("README.md");
    if let Some(updated) = std::fs::read_to_string(&readme).ok().and_then(|r| tnlm_wireshark::splice_readme(&r)) {
        write(&readme, &updated)?;
        println!("updated the field table in {}", readme.display());
    }
    let colors = crate_dir.join("tnlm.colorfilters");
    write(&colors, &tnlm_wireshark::colorfilters())?;
    println!("wrote {}", colors.display());
    let profile = crate_dir.join("profiles").join(install::PROFILE_NAME).join("colorfilters");
    write(&profile, &install::profile_colorfilters(None))?;
    println!("wrote {}", profile.display());
    Ok(crate_dir.join("tnlm.lua"))
}

fn run_install(args: &[OsString]) -> Result<(), String> {
    let (mut plugins, mut config, mut dry_run) = (None, None, false);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("--plugins") => plugins = Some(PathBuf::from(it.next().ok_or("--plugins needs a folder")?)),
            Some("--config") => config = Some(PathBuf::from(it.next().ok_or("--config needs a folder")?)),
            Some("--dry-run") => dry_run = true,
            _ => return Err(format!("unknown install option {} (see --help)", arg.to_string_lossy())),
        }
    }
    let mut folders = match (&plugins, &config) {
        (Some(p), Some(c)) => Folders { plugins: p.clone(), config: c.clone(), global: None },
        _ => Folders::detect()?,
    };
    if let Some(p) = plugins {
        folders.plugins = p;
    }
    if let Some(c) = config {
        folders.config = c;
    }
    if folders.global.is_none() {
        // The global rules, when only the personal folders were given.
        folders.global = Folders::detect().ok().and_then(|f| f.global);
    }
    let done = install::install(&folders, dry_run)?;
    let verb = if dry_run { "would write" } else { "wrote" };
    for (what, path) in done {
        println!("{verb} the {what}: {}", path.display());
    }
    if !dry_run {
        println!(
            "Restart Wireshark (or Analyze > Reload Lua Plugins), then choose the profile \"{}\" \
             (Edit > Configuration Profiles, or the status bar); tshark: -C {}",
            install::PROFILE_NAME,
            install::PROFILE_NAME
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = match args.first().and_then(|a| a.to_str()) {
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("install") => {
            return match run_install(&args[1..]) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::FAILURE
                }
            };
        }
        _ if args.len() > 1 => {
            eprintln!("error: expected at most one argument, the output path (see --help)");
            return ExitCode::from(2);
        }
        _ => match args.first() {
            Some(path) => PathBuf::from(path),
            None => match regenerate_all(&crate_dir) {
                Ok(path) => path,
                Err(err) => {
                    eprintln!("error: {err}");
                    return ExitCode::FAILURE;
                }
            },
        },
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
