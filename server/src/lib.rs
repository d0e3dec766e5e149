//! # tnlm-server — the TNLM server as a library
//!
//! The binary `tnlm-server` is a thin command line over [`Server`]; tests and
//! examples start the same server in-process with [`Server::spawn`].
//!
//! Shape (the lab's design, done right):
//! - the thread that calls [`Server::run`] accepts connections;
//! - each client gets one named thread (`client-<id>`) that decodes its
//!   requests and writes the answers itself; frames for it from other
//!   threads (forwarded messages, receipts) wait in its bounded outbox and a
//!   short-lived flusher thread (`client-<id>-tx`) writes them, so frames
//!   never interleave and a slow client cannot block anyone else;
//! - a registry maps client ids to their outboxes for `L` and `M`;
//! - forwarded messages are answered `delivered` only once the target's
//!   client acknowledges them (a `deliveries` book and its reaper thread);
//! - a heartbeat drops clients that fall silent, so a pulled cable does not
//!   leave a ghost in the list.

mod bad_input_log;
pub mod config;
mod connection;
mod deliveries;
mod handler;
mod registry;
mod server;
mod shared;
mod writer;

pub use config::Config;
pub use server::{RunningServer, Server, ShutdownHandle};
