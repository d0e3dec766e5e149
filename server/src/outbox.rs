//! How frames reach a client from elsewhere, whichever engine serves it.
//!
//! Every socket has exactly one writer at a time, and frames for a client
//! that come from other clients (forwarded messages), from the deliveries
//! reaper (receipts) or from shutdown (the notice) are never written by the
//! thread that makes them: they are queued in the client's [`Outbox`], and
//! the socket's writer is woken to write them.
//! - Thread engine ([`crate::writer`]): the client's connection thread, or a
//!   short-lived flusher while the client's output is blocked.
//!
//! The event engine keeps its clients' frames in core's hub instead
//! ([`tnlm_core::proto::hub`]); the thread engine moves there next.

use tnlm_core::Frame;

use crate::queue::PushError;
use crate::writer::Writer;

/// A handle to queue frames for one client, whichever engine serves it.
/// Cheap to clone. The registry keeps one per client; a delivery keeps its
/// sender's, to queue the receipt.
#[derive(Debug, Clone)]
pub(crate) enum Outbox {
    /// A client of the thread-per-client engine.
    Thread(Writer),
}

impl Outbox {
    /// Queues a frame from another client without waiting; refused when the
    /// client already has `--queue-bytes` waiting, or is leaving. `queued`
    /// gets the frame's end offset in the queue (the frame has been
    /// completely written once [`written`](Self::written) reaches it), and
    /// runs before the socket's writer can take the frame: a delivery is
    /// marked queued before its target could possibly acknowledge it.
    pub(crate) fn try_push(&self, bytes: Vec<u8>, queued: impl FnOnce(u64)) -> Result<(), PushError> {
        match self {
            Outbox::Thread(writer) => writer.try_push(bytes, queued),
        }
    }

    /// Queues a frame the client is owed (a delivery receipt) with a looser
    /// limit of its own, and whatever the total budget (see
    /// [`Queue::try_append_owed`](crate::queue::Queue::try_append_owed)); taken until the client is gone, also
    /// while it is leaving.
    pub(crate) fn offer(&self, bytes: Vec<u8>) -> Result<(), PushError> {
        match self {
            Outbox::Thread(writer) => writer.offer(bytes),
        }
    }

    /// How many queued bytes the socket has taken so far.
    pub(crate) fn written(&self) -> u64 {
        match self {
            Outbox::Thread(writer) => writer.written(),
        }
    }

    /// Waits until no write to the socket is in progress, so that
    /// [`written`](Self::written) counts every byte the socket took. (An
    /// event worker processes a client's acks on the thread that writes its
    /// socket: the count is always current there.)
    pub(crate) fn wait_for_writer(&self) {
        let Outbox::Thread(writer) = self;
        {
            writer.wait_for_writer();
        }
    }

    /// The client is leaving: frames from other clients are refused from
    /// now on ([`PushError::Gone`]); answers it is owed are still taken.
    pub(crate) fn refuse_messages(&self) {
        match self {
            Outbox::Thread(writer) => writer.refuse_messages(),
        }
    }

    /// Server shutdown: queue `notice` after whatever is waiting, then FIN.
    pub(crate) fn shutdown_with(&self, notice: Vec<u8>) {
        match self {
            Outbox::Thread(writer) => writer.shutdown_with(notice),
        }
    }

    /// Cuts the connection in both directions now (shutdown's grace is
    /// over): its writer and reader stop at once.
    pub(crate) fn cut(&self) {
        match self {
            Outbox::Thread(writer) => writer.cut(),
        }
    }
}

/// Encodes a frame the server built itself (see
/// [`encode_into`](tnlm_core::proto::session::encode_into)).
pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    tnlm_core::proto::session::encode_into(&mut bytes, frame);
    bytes
}
