//! `examples/c-client/tnlm.h` is rendered from `tnlm_core::c_header`; this
//! test fails when the committed file is stale. Run with `TNLM_BLESS=1` to
//! rewrite it.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

#[test]
fn c_header_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/c-client/tnlm.h");
    let fresh = tnlm_core::c_header::render();
    if std::fs::read_to_string(&path).ok().as_deref() == Some(fresh.as_str()) {
        return;
    }
    if std::env::var_os("TNLM_BLESS").is_some() {
        std::fs::write(&path, fresh).unwrap();
        return;
    }
    panic!("examples/c-client/tnlm.h is stale: run `TNLM_BLESS=1 cargo test -p tnlm-core --test c_header`");
}
