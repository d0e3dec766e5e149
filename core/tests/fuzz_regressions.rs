//! Regression tests from fuzzing: `core/fuzz` (cargo-fuzz targets `frame_decoder` and
//! `payload_decoder`; `bash ci/fuzz.sh run SECS` runs them). Each test replays, bytes inline,
//! an input the fuzzers found or that their checks are built around, so the behaviour stays
//! pinned in `cargo test` without cargo-fuzz or nightly flags.
//!
//! Fuzzing so far (rustc 1.95 + RUSTC_BOOTSTRAP, AddressSanitizer, debug assertions and
//! overflow checks): frame_decoder 871,437 executions in 20 min, payload_decoder 2,446,777 in
//! 10 min; no crash, hang or oversized allocation.
#![allow(clippy::unwrap_used)]

use tnlm_core::message::{Delivery, DeliveryStatus, ErrorBody};
use tnlm_core::schema::{self, Value};
use tnlm_core::{Class, Decoder, ErrorCode, Frame, TypeCode};

/// `M` response (Delivery) #7: to = 2, status = u16 at payload offset 4, reason = "".
fn delivery(status: u16) -> Vec<u8> {
    let [lo, hi] = status.to_le_bytes();
    let mut frame = vec![b'T', b'N', b'L', b'M', 1, b'M', 1, 0, 7, 0, 0, 0, 14, 0, 0, 0];
    frame.extend_from_slice(&[2, 0, 0, 0, lo, hi, 0, 0, 0, 0, 0, 0, 0, 0]);
    frame
}

/// `E` response (ErrorBody) #8: code = u16 at payload offset 0, text = "".
fn error_body(code: u16) -> Vec<u8> {
    let [lo, hi] = code.to_le_bytes();
    let mut frame = vec![b'T', b'N', b'L', b'M', 1, b'E', 1, 0, 8, 0, 0, 0, 10, 0, 0, 0];
    frame.extend_from_slice(&[lo, hi, 0, 0, 0, 0, 0, 0, 0, 0]);
    frame
}

/// The schema walk (the dissector's view) reads layouts only: it takes any u16 as a delivery
/// status or an error code. The decoder (serde_repr) rejects a value that names no variant as
/// a malformed payload, and skips the frame. `payload_decoder` checks that walk and decoder
/// agree on everything else; this pins the one known difference, so a change on either side
/// (say, the walk starting to check codes, or the decoder tolerating unknown ones) is noticed.
#[test]
fn walk_takes_any_status_or_error_code_the_decoder_only_known_ones() {
    assert_eq!(DeliveryStatus::ALL.len(), 6, "a new status: make `unknown` below one past the last");
    let cases = [
        (TypeCode::Message, 7, delivery(6), delivery(DeliveryStatus::NotAcknowledged.code()), 6),
        (TypeCode::Error, 8, error_body(0), error_body(ErrorCode::BadMagic.code()), 0),
    ];
    let expected = [
        Frame::new(7, Delivery { to: 2, status: DeliveryStatus::NotAcknowledged, reason: String::new() }),
        Frame::new(8, ErrorBody { code: ErrorCode::BadMagic, text: String::new() }),
    ];
    for ((type_code, id, unknown, known, code), expected) in cases.into_iter().zip(expected) {
        let layout = schema::lookup(type_code, Class::Response).unwrap();
        // An unknown code: the walk reads it, the decoder rejects the frame and goes on.
        let walked = schema::walk(layout.fields, &unknown[16..]).unwrap();
        assert!(walked.iter().any(|(_, value)| *value == Value::Uint(code)), "{walked:?}");
        let mut decoder = Decoder::default();
        decoder.feed(&unknown);
        decoder.feed(&known);
        let err = decoder.next_frame().unwrap_err();
        assert_eq!((err.code(), err.request_id(), err.is_fatal()), (ErrorCode::MalformedPayload, id, false));
        // A known code: both accept, and the bytes are exactly the encoder's.
        assert!(schema::walk(layout.fields, &known[16..]).is_ok());
        assert_eq!(decoder.next_frame().unwrap(), Some(expected.clone()));
        assert_eq!(expected.to_bytes().unwrap(), known);
        assert_eq!(decoder.next_frame().unwrap(), None);
    }
}
