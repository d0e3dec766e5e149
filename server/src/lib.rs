//! # tnlm-server — the TNLM server as a library
//!
//! The binary `tnlm-server` is a thin command line over [`Server`]; tests and
//! examples start the same server in-process with [`Server::spawn`].
//!
//! Shape (the lab's design, done right):
//! - the thread that calls [`Server::run`] accepts connections;
//! - each client gets a named reader thread (`client-<id>`) that decodes
//!   requests and answers them, and a writer thread (`client-<id>-tx`) that
//!   owns the socket's write side and drains a bounded queue, so frames from
//!   several threads never interleave and a slow client cannot block anyone
//!   else for long;
//! - a [`registry`] maps client ids to their queues for `L` and `M`;
//! - forwarded messages are answered `delivered` only once the target's
//!   client acknowledges them (a `deliveries` book and its reaper thread);
//! - a heartbeat drops clients that fall silent, so a pulled cable does not
//!   leave a ghost in the list.

pub mod config;
mod connection;
mod deliveries;
mod handler;
pub mod registry;
mod server;
mod writer;

pub use config::Config;
pub use server::{RunningServer, Server, ShutdownHandle};
