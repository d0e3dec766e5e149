//! # tnlm-server — the TNLM server as a library
//!
//! The binary `tnlm-server` is a thin command line over [`Server`]; tests and
//! examples start the same server in-process with [`Server::spawn`].
//!
//! Shape (the lab's design, done right):
//! - the thread that calls [`Server::run`] accepts connections;
//! - the whole protocol is core's, without I/O ([`tnlm_core::proto`]): the
//!   hub (who is connected, forwarded messages and their receipts, every
//!   client's queue, what each request means), shared behind one lock, and
//!   a connection machine per client (its session, what it is owed, the
//!   write deadline, its departure);
//! - one of two engines ([`Engine`]) moves the bytes:
//!   - *threads* (the default): each client gets one named thread
//!     (`client-<id>`) that reads its requests and writes the answers
//!     itself; frames for it from elsewhere (forwarded messages, receipts)
//!     wait in its queue in the hub and are written by the thread that
//!     queued them (one non-blocking send) or a short-lived flusher
//!     (`client-<id>-tx`), so frames never interleave and a slow client
//!     cannot block anyone else;
//!   - *events*: a few workers (`events-<n>`), each with its own event loop,
//!     share the clients; a worker is the only thread that touches its
//!     clients' sockets, and is woken when the hub has frames for them;
//! - forwarded messages are answered `delivered` only once the target's
//!   client acknowledges them;
//! - a heartbeat drops clients that fall silent, so a pulled cable does not
//!   leave a ghost in the list.

pub mod config;
mod engine;
mod hub_lock;
pub mod memory;
mod server;
mod shared;
mod socket_options;
mod spare_descriptor;

pub use config::{Config, Engine};
pub use server::{RunningServer, Server, ShutdownHandle};
