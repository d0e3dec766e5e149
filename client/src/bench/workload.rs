//! The workload of a run: what it asks ([`Kind`], defined in `kind.rs`), of which server
//! ([`Protocol`]), and the request every batch is made of, encoded by that
//! protocol's codec; and which codec reads the answers.

use clap::ValueEnum;
use serde::Serialize;
use tnlm_core::message::{ListRequest, SendRequest, TimeRequest};

use super::incoming::Incoming;
pub use super::kind::Kind;
use super::{nats, redis, tnlm};

/// Which server a bench run talks to.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// A TNLM server.
    Tnlm,
    /// A Redis server (for comparisons).
    Redis,
    /// A NATS server (for comparisons).
    Nats,
}

impl Protocol {
    /// The next answer in `bytes` and its length, read by this protocol's
    /// codec; `None` until it is whole.
    #[inline]
    pub(super) fn next(self, bytes: &[u8]) -> Result<Option<(Incoming, usize)>, String> {
        match self {
            Protocol::Tnlm => tnlm::next(bytes),
            Protocol::Redis => redis::next(bytes),
            Protocol::Nats => nats::next(bytes),
        }
    }

    /// Appends the answer to heartbeat ping `id` (TNLM's request id; NATS: 0) to `out`.
    pub(super) fn pong(self, id: u32, out: &mut Vec<u8>) {
        match self {
            Protocol::Nats => out.extend_from_slice(nats::PONG),
            Protocol::Tnlm | Protocol::Redis => out.extend_from_slice(&tnlm::pong(id)),
        }
    }
}

/// The text of every `message` request: `size` bytes.
pub(super) fn bench_text(size: u32) -> String {
    "tnlm-bench-message-".chars().cycle().take(size as usize).collect()
}

/// One request of the run, encoded: batches are copies of it. `to` is the receiver's
/// client id (TNLM `message`), `sender` the sender's global connection index (the
/// Redis channel, the NATS subjects).
pub(super) fn template(protocol: Protocol, kind: Kind, text: &str, to: u32, sender: usize) -> Vec<u8> {
    match (protocol, kind) {
        (Protocol::Tnlm, Kind::Message) => tnlm::frame(SendRequest { to, text: text.to_string() }),
        (Protocol::Tnlm, Kind::List) => tnlm::frame(ListRequest),
        (Protocol::Tnlm, _) => tnlm::frame(TimeRequest),
        (Protocol::Redis, Kind::Message) => redis::command(&["PUBLISH", &redis::channel(sender), text]),
        (Protocol::Redis, _) => redis::command(&["PING"]),
        (Protocol::Nats, kind) => nats::request(kind, text, sender),
    }
}
