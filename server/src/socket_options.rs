//! The command line's socket options (`--nodelay`, `--keepalive`, …) on an
//! accepted connection, the same for both engines.

use std::net::TcpStream;

use socket2::SockRef;
use tnlm_core::sockopt::Effective;

use crate::shared::Shared;

/// Applies the socket options of the command line to client `id`'s
/// connection; logs what the OS refused, and at debug level what is in effect.
pub(crate) fn apply_socket_options(shared: &Shared, id: u32, stream: &TcpStream) {
    for warning in shared.config.socket.apply(SockRef::from(stream)) {
        tracing::warn!(client = id, "{warning}");
    }
    tracing::debug!(client = id, "socket options: {}", Effective::read(SockRef::from(stream)));
}
