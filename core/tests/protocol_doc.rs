//! `docs/PROTOCOL.md` carries tables rendered from `tnlm_core::schema`; this
//! test fails when they are stale. Run with `TNLM_BLESS=1` to rewrite them.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

const BEGIN: &str = "<!-- BEGIN GENERATED: tnlm_core::schema::markdown_tables -->\n";
const END: &str = "<!-- END GENERATED -->";

#[test]
fn protocol_tables_are_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/PROTOCOL.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find(BEGIN).expect("BEGIN marker missing") + BEGIN.len();
    let end = start + doc[start..].find(END).expect("END marker missing");
    let fresh = format!("{}{}", tnlm_core::schema::markdown_tables(), examples());
    if doc[start..end] == fresh {
        return;
    }
    if std::env::var_os("TNLM_BLESS").is_some() {
        std::fs::write(&path, format!("{}{fresh}{}", &doc[..start], &doc[end..])).unwrap();
        return;
    }
    panic!("docs/PROTOCOL.md tables are stale: run `TNLM_BLESS=1 cargo test -p tnlm-core --test protocol_doc`");
}

/// Hex dumps of real encoded frames, one per class, for the document.
fn examples() -> String {
    use tnlm_core::message::*;
    use tnlm_core::Frame;
    let frames = [
        ("`T` request, id 7", Frame::new(7, TimeRequest)),
        ("`M` request, id 8: \"hi\" to client 2", Frame::new(8, SendRequest { to: 2, text: "hi".into() })),
        (
            "`M` response, id 8: delivered",
            Frame::new(8, Delivery { to: 2, status: DeliveryStatus::Delivered, reason: "ok".into() }),
        ),
        (
            "`M` indication, delivery id 42: \"hi\" from client 1 at 127.0.0.1:50000",
            Frame::new(42, Forwarded { from: 1, from_ip: [127, 0, 0, 1].into(), from_port: 50000, text: "hi".into() }),
        ),
        ("`A` response, id 42: the receiver's acknowledgement", Frame::new(42, Ack)),
    ];
    let mut out = String::from("\n### Example frames (encoded by `tnlm-core`)\n");
    for (title, frame) in frames {
        let bytes = frame.to_bytes().unwrap();
        out.push_str(&format!("\n{title}, {} bytes:\n\n```text\n", bytes.len()));
        for (row, chunk) in bytes.chunks(16).enumerate() {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let text: String = chunk.iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '.' }).collect();
            out.push_str(&format!("{:04x}  {:<47}  {text}\n", row * 16, hex.join(" ")));
        }
        out.push_str("```\n");
    }
    out
}
