//! What a frame from the server means to the generator, whatever the protocol:
//! the codecs ([`tnlm`](super::tnlm), [`redis`](super::redis)) turn bytes into an
//! [`Incoming`], and the worker acts on it.

/// What a frame from the server means to the generator.
pub(super) enum Incoming {
    /// The greeting (TNLM hello with the client id, Redis PONG / subscribe).
    Hello(u32),
    /// An answer to request `id` (`None`: in order, as Redis answers).
    Answer {
        /// The request answered; `None` where answers come in request order.
        id: Option<u32>,
        /// Whether the answer is a success (a TNLM `delivered` receipt, a reached subscriber).
        ok: bool,
    },
    /// A relayed message arrived; acknowledge it with `ack` when `Some`.
    Relayed {
        /// The request id to acknowledge (TNLM); `None` for Redis.
        ack: Option<u32>,
    },
    /// A heartbeat ping to answer.
    Ping(u32),
    /// The server refuses or is shutting down: the run fails.
    Refused(String),
    /// Anything else.
    Other,
}
