//! The whole protocol without I/O: state machines fed what arrived and the
//! time (`now`), answering with what is due and when they next need to be
//! asked. They never read a socket or the monotonic clock, take no lock and
//! start no thread, so every engine drives the same logic and tests drive it
//! with a made-up clock: no sockets, no sleeps.
//!
//! - [`hub`]: what spans connections (who is connected, the deliveries,
//!   every client's queue and their budget, what each request means);
//! - [`conn`]: one connection's life on the server, around its session;
//! - [`session`]: framing, error replies, the heartbeat and the frame timeout;
//! - [`client`]: one connection as a client sees it (pongs, acks, its
//!   heartbeat, why it ended);
//! - [`queue`]: one client's queue of frames from elsewhere, and the limits;
//! - [`deliveries`]: forwarded messages waiting for their acknowledgement,
//!   and how each one ends;
//! - [`heartbeat`]: ping a silent peer, give up on a dead one;
//! - [`bad_input`]: rate-limited warnings about a client's bad frames.

pub mod bad_input;
pub mod client;
pub mod conn;
pub mod deliveries;
pub mod heartbeat;
pub mod hub;
pub mod queue;
pub mod session;
