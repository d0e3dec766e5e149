//! Windows specifics (see docs/PLATFORMS.md for what was observed where):
//!
//! - keepalive time and interval travel together in one `SIO_KEEPALIVE_VALS`
//!   ioctl, and an unset one would be sent as 0, so both are always set;
//! - `TCP_KEEPCNT` exists only from Windows 10 version 1703 (and not under
//!   Wine 8.0); socket2 sets it after the ioctl, so a failure there leaves time
//!   and interval applied and is reported as "retries unsupported";
//! - socket2 has no keepalive getters on Windows, so they read back as n/a;
//! - `TCP_USER_TIMEOUT` does not exist.
//!
//! `SO_REUSEADDR` is never set on Windows (see `net::listen`).

use std::io;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

use super::{Keepalive, KeepaliveReadback, Warning};

/// The interval sent when `--keepalive` gives none: Windows' own default
/// (1 s), since `SIO_KEEPALIVE_VALS` cannot leave it unset.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// "An unknown, invalid, or unsupported option or level": what `TCP_KEEPCNT`
/// gets before Windows 10 1703 and under Wine 8.0.
const WSAENOPROTOOPT: i32 = 10042;

/// Sets time and interval together, then retries in a second call, so that a
/// system without `TCP_KEEPCNT` keeps time and interval and warns only that
/// retries are unsupported.
pub(super) fn set_keepalive(socket: &SockRef<'_>, keepalive: &Keepalive) -> Result<(), Warning> {
    let interval = keepalive.interval.unwrap_or(DEFAULT_INTERVAL);
    let params = TcpKeepalive::new().with_time(keepalive.time).with_interval(interval);
    socket.set_tcp_keepalive(&params).map_err(|err| Warning::not_applied("--keepalive", &err))?;
    let Some(retries) = keepalive.retries else {
        return Ok(());
    };
    // socket2 repeats the ioctl that just succeeded, then sets TCP_KEEPCNT:
    // an error here is TCP_KEEPCNT's (WSAENOPROTOOPT before 1703 and on Wine).
    socket.set_tcp_keepalive(&params.with_retries(retries)).map_err(|err| {
        // Wine has no text for Winsock errors ("FormatMessageW() returned error 317"): name the usual one.
        let why = match err.raw_os_error() {
            Some(WSAENOPROTOOPT) => "WSAENOPROTOOPT".to_string(),
            _ => err.to_string(),
        };
        Warning::new(
            "--keepalive",
            io::ErrorKind::Unsupported,
            format!(
                "--keepalive: retries unsupported on this system (TCP_KEEPCNT needs Windows 10 1703 or later; \
                 {why}); time {}s and interval {}s are applied, retries stay at the system default",
                keepalive.time.as_secs(),
                interval.as_secs()
            ),
        )
    })
}

pub(super) fn set_user_timeout(_socket: &SockRef<'_>, _ms: u32) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "TCP_USER_TIMEOUT exists on Linux only"))
}

pub(super) fn read_user_timeout(_socket: &SockRef<'_>) -> Option<Option<Duration>> {
    None
}

/// socket2 offers no keepalive getters on Windows: `SIO_KEEPALIVE_VALS` is
/// set-only, and the `TCP_KEEPIDLE`/`TCP_KEEPINTVL` getters of Windows 10 1709+
/// are not wrapped (and this workspace forbids `unsafe`).
pub(super) fn read_keepalive(_socket: &SockRef<'_>) -> KeepaliveReadback {
    KeepaliveReadback::default()
}
