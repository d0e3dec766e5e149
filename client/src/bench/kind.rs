//! What a bench run asks the server, whichever protocol it speaks.

use clap::ValueEnum;
use serde::Serialize;

/// What a bench run asks the server.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `T` requests.
    Time,
    /// `M` requests from A to B, acknowledged by B, answered by the receipt
    /// (Redis: `PUBLISH` to B's channel; NATS: a request B answers).
    Message,
    /// NATS only: A publishes to B's subject, nothing comes back; a message
    /// counts when B has it.
    Publish,
    /// `L` requests.
    List,
    /// No requests: connect and hold.
    Idle,
}
