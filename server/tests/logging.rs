//! The server's log cannot be used as an amplifier: however many bad frames a
//! client sends, the default log level gets a bounded number of lines.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::time::Instant;

use common::{RawClient, ServerProcess};
use tnlm_core::frame::offset;
use tnlm_core::message::TimeRequest;
use tnlm_core::{Frame, Message};

/// Bad frames sent on one connection (16 bytes each: 3.2 MB).
const BAD_FRAMES: u32 = 200_000;

/// A header-only frame with a type code no version of TNLM has: answered with
/// an `unknown_type` error, and the connection goes on.
fn unknown_type_frame(id: u32) -> Vec<u8> {
    let mut bytes = Frame::new(id, TimeRequest).to_bytes().unwrap();
    bytes[offset::TYPE] = b'Z';
    bytes
}

#[test]
fn two_hundred_thousand_bad_frames_make_a_bounded_number_of_log_lines() {
    let server = ServerProcess::start_logging("info", &[]);
    let mut client = RawClient::connect(server.addr);
    let id = client.id();
    let mut bytes = Vec::with_capacity(16 * BAD_FRAMES as usize + 16);
    for n in 1..=BAD_FRAMES {
        bytes.extend_from_slice(&unknown_type_frame(n));
    }
    bytes.extend_from_slice(&Frame::new(BAD_FRAMES + 1, TimeRequest).to_bytes().unwrap());
    let mut writer = client.stream.try_clone().unwrap();
    let started = Instant::now();
    let sending = std::thread::spawn(move || writer.write_all(&bytes).unwrap());
    // Every bad frame is still answered; the time request after them too.
    let mut errors = 0u32;
    loop {
        let frame = client.next_frame();
        match frame.message {
            Message::Error(_) => errors += 1,
            Message::TimeResponse(_) => break,
            other => panic!("{other:?}"),
        }
    }
    sending.join().unwrap();
    let took = started.elapsed();
    client.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let _ = client.stream.read_to_end(&mut Vec::new());
    let lines = server.log_until("disconnected:");
    let about = format!("client={id}");
    let lines_about_client = lines.iter().filter(|l| l.contains(&about)).count();
    let log_bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    eprintln!(
        "{BAD_FRAMES} bad frames ({} MB) answered with {errors} errors in {took:?}: {lines_about_client} log lines \
         ({log_bytes} bytes) about client {id}",
        BAD_FRAMES * 16 / 1_000_000
    );
    assert_eq!(errors, BAD_FRAMES);
    // docs/RELIABILITY.md: at most 5 warnings and 1 count per second; the
    // server's one-second windows start at its first bad frame, so a run of
    // `took` touches at most ceil(took) + 1 of them (plus one for clocks
    // that disagree); plus the connection, the total and the disconnection.
    let windows = took.as_secs_f64().ceil() as usize + 2;
    let bound = windows * 6 + 3;
    assert!(
        lines_about_client <= bound,
        "{lines_about_client} lines (bound {bound}): {:?}",
        &lines[..lines.len().min(20)]
    );
}
