//! Joining and leaving, the same for both engines: the hello a newcomer
//! gets, what a client that cannot be listed is told, and the first step of
//! every departure.

use std::net::TcpStream;
use std::time::Duration;

use socket2::SockRef;

use tnlm_core::message::Hello;
use tnlm_core::proto::session::error_frame;
use tnlm_core::sockopt::Effective;
use tnlm_core::{ErrorCode, Frame, VERSION};

use crate::handler::{shutdown_notice, Peer};
use crate::outbox::{encode, Outbox};
use crate::registry::Refusal;
use crate::shared::Shared;

/// How long after the ack timeout a half-closed client's receipts may come
/// (the reaper's tick, and scheduling).
pub(crate) const RECEIPT_SLACK: Duration = Duration::from_millis(250);

/// After a fatal error, how long to keep reading (and discarding) so the
/// error frame is not destroyed by an RST caused by unread data.
pub(crate) const LINGER_DRAIN: Duration = Duration::from_secs(2);

/// The most input discarded while draining after a fatal error.
pub(crate) const DRAIN_BUDGET: usize = 1 << 20;

/// Applies the socket options of the command line (`--nodelay`,
/// `--keepalive`, …) to an accepted connection; logs what the OS refused,
/// and at debug level what is in effect.
pub(crate) fn apply_socket_options(shared: &Shared, id: u32, stream: &TcpStream) {
    for warning in shared.config.socket.apply(SockRef::from(stream)) {
        tracing::warn!(client = id, "{warning}");
    }
    tracing::debug!(client = id, "socket options: {}", Effective::read(SockRef::from(stream)));
}

/// The hello a newly listed client gets first: its id, the server's name,
/// the protocol version and the payload limit.
pub(crate) fn hello_frame(shared: &Shared, peer: Peer) -> Vec<u8> {
    let hello = Hello {
        client_id: peer.id,
        server: shared.config.name.clone(),
        version: VERSION,
        max_payload: shared.config.max_payload,
    };
    encode(&Frame::indication(hello))
}

/// What a client that cannot be listed is told.
pub(crate) fn refusal_frame(peer: Peer, refusal: Refusal) -> Vec<u8> {
    match refusal {
        Refusal::Closed => encode(&Frame::indication(shutdown_notice())),
        Refusal::Full(max) => {
            tracing::warn!(client = peer.id, addr = %peer.addr, "refused: already serving {max} clients (--max-clients)");
            let text = format!("the server already serves its maximum of {max} clients; try again later");
            error_frame(0, ErrorCode::TooManyClients, &text)
        }
        Refusal::Exhausted => {
            let text = "the server cannot take more clients now (it could not start a thread); try again later";
            error_frame(0, ErrorCode::TooManyClients, text)
        }
        Refusal::OutOfDescriptors => {
            let text = "the server has no file descriptor left for another client (its open-file limit, \
                        ulimit -n); try again later";
            error_frame(0, ErrorCode::TooManyClients, text)
        }
    }
}

/// The first step of every ending: unlisted first, so that from here on
/// nobody can address the client; its outbox refuses messages before the
/// deliveries to it fail, so a sender racing with this either hears
/// `target_gone` from the book or finds the outbox closed, never neither.
/// Answers it is owed are still taken.
pub(crate) fn unlist(shared: &Shared, peer: Peer, outbox: &Outbox) {
    shared.registry.remove(peer.id);
    outbox.refuse_messages();
    shared.deliveries.target_gone(peer.id);
}
