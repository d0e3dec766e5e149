//! The engines: who reads and writes the sockets. Each only moves bytes
//! between its sockets and core's connection machines
//! ([`tnlm_core::proto::conn`]), and sleeps until their next deadline; what
//! the bytes mean, what is owed to whom and when a client is given up on is
//! decided in core, the same for every engine.
//!
//! - [`threads`] (`--engine threads`, the default): one thread per client
//!   with blocking reads, the lab's design;
//! - [`events`] (`--engine events`): a few workers with event loops (mio:
//!   epoll, or the Windows backend) serve every client.

pub(crate) mod events;
pub(crate) mod threads;
