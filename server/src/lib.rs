//! # tnlm-server — the TNLM server as a library
//!
//! The binary `tnlm-server` is a thin command line over [`Server`]; tests and
//! examples start the same server in-process with [`Server::spawn`].
//!
//! Shape (the lab's design, done right):
//! - the thread that calls [`Server::run`] accepts connections;
//! - the protocol itself (framing, error replies, heartbeat, frame timeout)
//!   is core's sans-IO session, driven by one of two engines ([`Engine`]):
//!   - *threads* (the default): each client gets one named thread
//!     (`client-<id>`) that reads its requests and writes the answers
//!     itself; frames for it from other threads (forwarded messages,
//!     receipts) wait in its bounded outbox and a short-lived flusher thread
//!     (`client-<id>-tx`) writes them, so frames never interleave and a slow
//!     client cannot block anyone else;
//!   - *events*: a few workers (`events-<n>`), each with its own event loop,
//!     share the clients; a worker is the only thread that touches its
//!     clients' sockets, and frames from elsewhere wait in their outboxes
//!     until it is woken to write them;
//! - a registry maps client ids to their outboxes for `L` and `M`;
//! - forwarded messages are answered `delivered` only once the target's
//!   client acknowledges them (a `deliveries` book and its reaper thread);
//! - a heartbeat drops clients that fall silent, so a pulled cable does not
//!   leave a ghost in the list.

pub mod config;
mod connection;
mod events;
mod hub_lock;
pub mod memory;
mod server;
mod shared;
mod socket_options;
mod spare_descriptor;

pub use config::{Config, Engine};
pub use server::{RunningServer, Server, ShutdownHandle};
