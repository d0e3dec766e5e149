//! # tnlm-core — the TNLM protocol in one place
//!
//! TNLM ("Time, Name, List, Message") is a small request/response/indication protocol
//! over TCP, built for a computer-networks lab. This crate is the single source of truth
//! for everything both ends (and the Wireshark dissector) must agree on:
//!
//! - [`frame`]: the fixed 16-byte header, type codes and classes, and [`Frame`] encoding;
//! - [`message`]: the payload of every frame as Rust types;
//! - [`decoder`]: a streaming decoder that turns any split or coalesced byte stream into
//!   whole frames, with a hard payload limit and typed errors;
//! - [`schema`]: a machine-readable description of every payload layout, used to
//!   generate the dissector and the protocol tables;
//! - [`c_header`]: the C header `examples/c-client/tnlm.h`, rendered from the same
//!   description, for C programs;
//! - [`sockopt`]: the socket options (`--nodelay`, `--keepalive`, `--linger`, …) shared
//!   by both binaries, applied through socket2 with small per-platform modules;
//! - [`cli`]: command-line pieces both programs share (seconds, logging);
//! - [`net`]: address helpers (dual-stack listeners, canonical peer addresses);
//! - [`proto`]: protocol logic without I/O, fed bytes and the time (the heartbeat, one
//!   for both ends);
//! - [`samples`]: sample frames of every message kind with edge values, shared by the
//!   schema tests, the dissector tests and the fuzz seeds;
//! - [`requirement`]: what the test suites need from the machine (network namespaces,
//!   IPv6, tshark, …) and the `TNLM_REQUIRE` switch that turns a missing one from a
//!   skip into a failure, as in CI.

pub mod c_header;
pub mod cli;
pub mod codec;
pub mod decoder;
pub mod error;
pub mod frame;
pub mod header;
pub mod layout;
pub mod message;
pub mod net;
pub mod proto;
pub mod requirement;
pub mod samples;
pub mod schema;
pub mod sockopt;

pub use decoder::Decoder;
pub use error::{DecodeError, EncodeError, ErrorCode};
pub use frame::{
    Class, Frame, Header, TypeCode, DEFAULT_MAX_PAYLOAD, DEFAULT_PORT, HEADER_LEN, MAGIC, MAX_NAME_LEN,
    MIN_MAX_PAYLOAD, VERSION,
};
pub use message::Message;
