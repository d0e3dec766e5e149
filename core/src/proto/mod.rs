//! Protocol logic without I/O: state machines fed what arrived and the time
//! (`now`), answering with what is due and when they next need to be asked.
//!
//! They never read a socket or a clock themselves, so the server's and the
//! client's drivers (blocking threads today) use the same logic, and unit
//! tests drive it with a made-up clock: no sockets, no sleeps.
//!
//! - [`session`]: one client connection as the server sees it: framing,
//!   error replies, the heartbeat and the frame timeout;
//! - [`heartbeat`]: ping a silent peer, give up on a dead one;
//! - [`deliveries`]: forwarded messages waiting for their acknowledgement, and
//!   how each one ends.

pub mod deliveries;
pub mod heartbeat;
pub mod session;
