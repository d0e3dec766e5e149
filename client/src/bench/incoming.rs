//! What a frame from the server means to the generator, whatever the protocol:
//! the codecs ([`tnlm`](super::tnlm), [`redis`](super::redis),
//! [`nats`](super::nats)) turn bytes into an [`Incoming`], and the worker acts on it.

use std::ops::Range;

/// What a frame from the server means to the generator.
pub(super) enum Incoming {
    /// The greeting (TNLM hello with the client id, Redis PONG / subscribe, NATS PONG).
    Hello(u32),
    /// An answer to request `id` (`None`: in order, as Redis and NATS answer).
    Answer {
        /// The request answered; `None` where answers come in request order.
        id: Option<u32>,
        /// Whether the answer is a success (a TNLM `delivered` receipt, a reached subscriber).
        ok: bool,
    },
    /// A relayed message arrived; the receiver answers it as `ack` says.
    Relayed {
        /// What the receiver sends back.
        ack: SendBack,
    },
    /// A heartbeat ping to answer (TNLM: its request id; NATS: 0).
    Ping(u32),
    /// The server refuses or is shutting down: the run fails.
    Refused(String),
    /// Anything else.
    Other,
}

/// What the receiver of a relayed message sends back.
pub(super) enum SendBack {
    /// Nothing (Redis and NATS subscribers).
    Nothing,
    /// A TNLM acknowledgement of forwarded message `id`.
    TnlmAck(u32),
    /// A NATS request: publish the answer to the reply subject. Both are byte
    /// ranges of the frame the codec read, so nothing is copied before the answer.
    NatsReply {
        /// Where the reply subject is.
        subject: Range<usize>,
        /// Where the request's payload is (the answer echoes it).
        payload: Range<usize>,
    },
}
