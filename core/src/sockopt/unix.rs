//! Unix (Linux, BSD, macOS) specifics: keepalive parts are separate options,
//! and TCP_USER_TIMEOUT exists on Linux only.

use std::io;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

use super::{Keepalive, KeepaliveReadback, Warning};

/// Sets idle time, and interval and retries where given; each part is its own
/// setsockopt, so unset parts keep the OS defaults.
pub(super) fn set_keepalive(socket: &SockRef<'_>, keepalive: &Keepalive) -> Result<(), Warning> {
    let mut params = TcpKeepalive::new().with_time(keepalive.time);
    if let Some(interval) = keepalive.interval {
        params = params.with_interval(interval);
    }
    if let Some(retries) = keepalive.retries {
        params = params.with_retries(retries);
    }
    socket.set_tcp_keepalive(&params).map_err(|err| Warning::not_applied("--keepalive", &err))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn set_user_timeout(socket: &SockRef<'_>, ms: u32) -> io::Result<()> {
    socket.set_tcp_user_timeout(Some(Duration::from_millis(u64::from(ms))))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn set_user_timeout(_socket: &SockRef<'_>, _ms: u32) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "TCP_USER_TIMEOUT exists on Linux only"))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn read_user_timeout(socket: &SockRef<'_>) -> Option<Option<Duration>> {
    socket.tcp_user_timeout().ok()
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn read_user_timeout(_socket: &SockRef<'_>) -> Option<Option<Duration>> {
    None
}

pub(super) fn read_keepalive(socket: &SockRef<'_>) -> KeepaliveReadback {
    KeepaliveReadback {
        time: socket.tcp_keepalive_time().ok(),
        interval: socket.tcp_keepalive_interval().ok(),
        retries: socket.tcp_keepalive_retries().ok(),
    }
}
