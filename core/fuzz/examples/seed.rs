//! Writes the seed corpus: real frames of every message kind, encoded by tnlm-core, into
//! `corpus/frame_decoder/` and `corpus/payload_decoder/` (next to this crate's Cargo.toml).
//!
//! ```text
//! cargo run --example seed            # rewrite the seeds
//! cargo run --example seed -- --check # fail if the committed seeds are stale
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!("usage: seed [--check]   (unknown argument {other})");
            return ExitCode::from(2);
        }
    };
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut stale = 0;
    for (target, seeds) in
        [("frame_decoder", tnlm_core_fuzz::frame_seeds()), ("payload_decoder", tnlm_core_fuzz::payload_seeds())]
    {
        for (_, data) in &seeds {
            match target {
                "frame_decoder" => tnlm_core_fuzz::check_frame_stream(data),
                _ => tnlm_core_fuzz::check_payload(data),
            }
        }
        let dir = corpus.join(target);
        let wanted: BTreeMap<String, Vec<u8>> =
            seeds.into_iter().map(|(name, data)| (format!("{name}.bin"), data)).collect();
        let present: BTreeMap<String, Vec<u8>> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.path().is_file())
                    .map(|e| {
                        (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        if check {
            for name in wanted.keys().chain(present.keys()).collect::<std::collections::BTreeSet<_>>() {
                if wanted.get(name) != present.get(name) {
                    eprintln!("stale seed: {}", dir.join(name).display());
                    stale += 1;
                }
            }
            continue;
        }
        if let Err(err) = write_dir(&dir, &wanted, &present) {
            eprintln!("error: cannot write {}: {err}", dir.display());
            return ExitCode::FAILURE;
        }
        println!("{}: {} seeds", dir.display(), wanted.len());
    }
    if stale > 0 {
        eprintln!("{stale} seed file(s) differ: run `cargo run --example seed` in core/fuzz");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn write_dir(
    dir: &Path,
    wanted: &BTreeMap<String, Vec<u8>>,
    present: &BTreeMap<String, Vec<u8>>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for name in present.keys().filter(|name| !wanted.contains_key(*name)) {
        std::fs::remove_file(dir.join(name))?;
    }
    for (name, data) in wanted {
        std::fs::write(dir.join(name), data)?;
    }
    Ok(())
}
