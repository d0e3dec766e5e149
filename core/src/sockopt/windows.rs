//! Windows specifics: keepalive time and interval travel together in one
//! `SIO_KEEPALIVE_VALS` ioctl (an unset one would be sent as 0), TCP_KEEPCNT
//! exists only from Windows 10 1703, TCP_USER_TIMEOUT not at all, and socket2
//! cannot read keepalive parameters back.

use std::io;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

use super::{Keepalive, KeepaliveReadback};

/// Windows' own default keepalive interval, used when `--keepalive` gives none.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Sets time and interval together, then retries in a second call so that a
/// system without TCP_KEEPCNT keeps the time and interval and reports only
/// "retries unsupported".
pub(super) fn set_keepalive(socket: &SockRef<'_>, keepalive: &Keepalive) -> Vec<io::Error> {
    let params =
        TcpKeepalive::new().with_time(keepalive.time).with_interval(keepalive.interval.unwrap_or(DEFAULT_INTERVAL));
    if let Err(err) = socket.set_tcp_keepalive(&params) {
        return vec![err];
    }
    match keepalive.retries {
        Some(retries) => match socket.set_tcp_keepalive(&params.with_retries(retries)) {
            Ok(()) => Vec::new(),
            Err(err) => vec![io::Error::new(
                err.kind(),
                format!("keepalive retries unsupported on this Windows ({err}); time and interval are applied"),
            )],
        },
        None => Vec::new(),
    }
}

pub(super) fn set_user_timeout(_socket: &SockRef<'_>, _ms: u32) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "TCP_USER_TIMEOUT exists on Linux only"))
}

pub(super) fn read_user_timeout(_socket: &SockRef<'_>) -> Option<Option<Duration>> {
    None
}

pub(super) fn read_keepalive(_socket: &SockRef<'_>) -> KeepaliveReadback {
    KeepaliveReadback::default()
}
