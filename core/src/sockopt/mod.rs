//! Socket options shared by the server and the client, applied through socket2.
//!
//! [`SocketOptions`] is a clap `Args` struct: both binaries flatten it into
//! their command line, so every flag is parsed and explained in one place.
//! Platform differences live in the small `unix` and `windows` modules; an
//! option the platform lacks produces a warning, never an error.

use std::fmt;
use std::io;
use std::time::Duration;

use socket2::SockRef;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as platform;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as platform;

/// The socket options a user can set from the command line.
///
/// Every flag is `global`: in a command line with subcommands (the client's) it may
/// come before or after the subcommand.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
#[command(next_help_heading = "Socket options")]
pub struct SocketOptions {
    /// Disable Nagle's algorithm (TCP_NODELAY): send small frames at once instead of
    /// holding them back to coalesce with later data.
    #[arg(long, global = true)]
    pub nodelay: bool,

    /// Enable TCP keepalive (SO_KEEPALIVE): probe an idle peer after TIME seconds, then
    /// every INTERVAL seconds, and give up after RETRIES unanswered probes.
    /// Omitted parts keep the OS default (on Windows INTERVAL defaults to 1 s).
    #[arg(long, global = true, value_name = "TIME[,INTERVAL[,RETRIES]]", value_parser = Keepalive::parse)]
    pub keepalive: Option<Keepalive>,

    /// Set SO_LINGER: on close, wait up to SECS seconds for unsent data to be
    /// acknowledged. 0 means an abortive close: the connection is reset (RST) instead
    /// of closed with a FIN, so no TIME_WAIT is left behind. Exception: on Windows the
    /// client sends a FIN before the RST (see docs/PLATFORMS.md).
    #[arg(long, global = true, value_name = "SECS", value_parser = clap::value_parser!(u32).range(0..=65535))]
    pub linger: Option<u32>,

    /// Set TCP_USER_TIMEOUT (Linux only): drop the connection when sent data stays
    /// unacknowledged for MS milliseconds.
    #[arg(long, global = true, value_name = "MS", value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64))]
    pub user_timeout: Option<u32>,

    /// Set SO_RCVBUF, the kernel receive buffer size, 1 to 2147483647 bytes (Linux
    /// reports back twice the value).
    #[arg(long, global = true, value_name = "BYTES", value_parser = buffer_size())]
    pub recv_buffer: Option<usize>,

    /// Set SO_SNDBUF, the kernel send buffer size, 1 to 2147483647 bytes (Linux
    /// reports back twice the value).
    #[arg(long, global = true, value_name = "BYTES", value_parser = buffer_size())]
    pub send_buffer: Option<usize>,
}

/// The values `--recv-buffer` and `--send-buffer` take: the OS stores a buffer size
/// in a C `int`, so anything above `i32::MAX` would be cut to a different size.
fn buffer_size() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..=i32::MAX as u64)
}

/// The parts of `--keepalive TIME[,INTERVAL[,RETRIES]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub time: Duration,
    /// Time between probes, if given.
    pub interval: Option<Duration>,
    /// Unanswered probes before the connection is dropped, if given.
    pub retries: Option<u32>,
}

impl Keepalive {
    /// Largest TIME and INTERVAL, in seconds (Linux's limit for TCP_KEEPIDLE/TCP_KEEPINTVL).
    pub const MAX_SECS: u32 = 32_767;
    /// Largest RETRIES (Linux's limit for TCP_KEEPCNT).
    pub const MAX_RETRIES: u32 = 127;

    /// Parses `TIME[,INTERVAL[,RETRIES]]` (whole seconds, retries a count; all ≥ 1).
    pub fn parse(text: &str) -> Result<Keepalive, String> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        if parts.len() > 3 {
            return Err("expected TIME[,INTERVAL[,RETRIES]], e.g. 10,2,3".into());
        }
        let number = |what: &str, part: &str, max: u32| -> Result<u32, String> {
            match part.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(format!("{what} must be a whole number from 1 to {max}, got {part:?}")),
            }
        };
        let secs = |n: u32| Duration::from_secs(u64::from(n));
        Ok(Keepalive {
            time: secs(number("TIME (seconds)", parts[0], Self::MAX_SECS)?),
            interval: parts.get(1).map(|p| number("INTERVAL (seconds)", p, Self::MAX_SECS)).transpose()?.map(secs),
            retries: parts.get(2).map(|p| number("RETRIES", p, Self::MAX_RETRIES)).transpose()?,
        })
    }
}

/// Something the platform could not do; the connection goes on without it.
///
/// Match on [`option`](Warning::option) and [`kind`](Warning::kind), never on
/// the text: it carries the OS's error message, which differs between Linux,
/// Windows versions and Wine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The flag it concerns (`--keepalive`, `--user-timeout`, …), or `"listen"`
    /// for the listening socket's own setup (dual-stack, IPv6).
    pub option: &'static str,
    /// [`io::ErrorKind::Unsupported`] when this platform lacks the option or a
    /// part of it (whatever it can do is applied); otherwise the OS error's kind.
    pub kind: io::ErrorKind,
    /// What happened, for people.
    pub text: String,
}

impl Warning {
    /// A warning about `option`.
    pub fn new(option: &'static str, kind: io::ErrorKind, text: impl Into<String>) -> Warning {
        Warning { option, kind, text: text.into() }
    }

    /// `option` could not be applied at all: `err` says why.
    pub fn not_applied(option: &'static str, err: &io::Error) -> Warning {
        Warning::new(option, err.kind(), format!("{option} not applied: {err}"))
    }

    /// True when the platform lacks the option (or a part of it), as opposed
    /// to the OS refusing a value.
    pub fn is_unsupported(&self) -> bool {
        self.kind == io::ErrorKind::Unsupported
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl SocketOptions {
    /// Applies every option that was given to a connected (or listening) socket.
    /// Returns a warning for each option this platform could not apply, or
    /// applied only in part.
    pub fn apply(&self, socket: SockRef<'_>) -> Vec<Warning> {
        let mut warnings = Vec::new();
        let mut note = |result: Result<(), Warning>| warnings.extend(result.err());
        let refused = |what: &'static str| move |err: io::Error| Warning::not_applied(what, &err);
        if self.nodelay {
            note(socket.set_tcp_nodelay(true).map_err(refused("--nodelay")));
        }
        if let Some(keepalive) = &self.keepalive {
            note(socket.set_keepalive(true).map_err(refused("--keepalive")));
            note(platform::set_keepalive(&socket, keepalive));
        }
        if let Some(secs) = self.linger {
            note(socket.set_linger(Some(Duration::from_secs(u64::from(secs)))).map_err(refused("--linger")));
        }
        if let Some(ms) = self.user_timeout {
            note(platform::set_user_timeout(&socket, ms).map_err(refused("--user-timeout")));
        }
        self.apply_buffers(socket, &mut |what, result| note(result.map_err(refused(what))));
        warnings
    }

    /// Applies only the buffer sizes: on a listener they must be set before
    /// `listen` so that accepted connections negotiate a matching window scale.
    pub fn apply_buffers(&self, socket: SockRef<'_>, check: &mut impl FnMut(&'static str, io::Result<()>)) {
        if let Some(bytes) = self.recv_buffer {
            check("--recv-buffer", socket.set_recv_buffer_size(bytes));
        }
        if let Some(bytes) = self.send_buffer {
            check("--send-buffer", socket.set_send_buffer_size(bytes));
        }
    }
}

/// The options as the OS reports them back after [`SocketOptions::apply`].
/// `None` means this platform cannot read that option back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    /// TCP_NODELAY.
    pub nodelay: Option<bool>,
    /// SO_KEEPALIVE.
    pub keepalive: Option<bool>,
    /// TCP_KEEPIDLE (or equivalent).
    pub keepalive_time: Option<Duration>,
    /// TCP_KEEPINTVL.
    pub keepalive_interval: Option<Duration>,
    /// TCP_KEEPCNT.
    pub keepalive_retries: Option<u32>,
    /// SO_LINGER (`Some(None)` = off).
    pub linger: Option<Option<Duration>>,
    /// TCP_USER_TIMEOUT (`Some(None)` = off).
    pub user_timeout: Option<Option<Duration>>,
    /// SO_RCVBUF.
    pub recv_buffer: Option<usize>,
    /// SO_SNDBUF.
    pub send_buffer: Option<usize>,
}

impl Effective {
    /// Reads every option back from the socket.
    pub fn read(socket: SockRef<'_>) -> Effective {
        let keepalive = platform::read_keepalive(&socket);
        Effective {
            nodelay: socket.tcp_nodelay().ok(),
            keepalive: socket.keepalive().ok(),
            keepalive_time: keepalive.time,
            keepalive_interval: keepalive.interval,
            keepalive_retries: keepalive.retries,
            linger: socket.linger().ok(),
            user_timeout: platform::read_user_timeout(&socket),
            recv_buffer: socket.recv_buffer_size().ok(),
            send_buffer: socket.send_buffer_size().ok(),
        }
    }
}

impl fmt::Display for Effective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn show<T>(value: &Option<T>, f: impl Fn(&T) -> String) -> String {
            value.as_ref().map_or_else(|| "n/a".to_string(), f)
        }
        let on_off = |b: &bool| if *b { "on" } else { "off" }.to_string();
        let secs = |d: &Duration| format!("{}s", d.as_secs());
        let optional = |d: &Option<Duration>, unit: fn(&Duration) -> String| d.as_ref().map_or("off".into(), unit);
        write!(
            f,
            "nodelay={} keepalive={} (time={} interval={} retries={}) linger={} user_timeout={} recv_buffer={} send_buffer={}",
            show(&self.nodelay, on_off),
            show(&self.keepalive, on_off),
            show(&self.keepalive_time, secs),
            show(&self.keepalive_interval, secs),
            show(&self.keepalive_retries, u32::to_string),
            show(&self.linger, |d| optional(d, |d| format!("{}s", d.as_secs()))),
            show(&self.user_timeout, |d| optional(d, |d| format!("{}ms", d.as_millis()))),
            show(&self.recv_buffer, usize::to_string),
            show(&self.send_buffer, usize::to_string),
        )
    }
}

/// Keepalive parameters as read back from the socket (platform-dependent).
#[derive(Debug, Default)]
struct KeepaliveReadback {
    time: Option<Duration>,
    interval: Option<Duration>,
    retries: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_parses_one_two_or_three_parts() {
        let k = Keepalive::parse("10").unwrap();
        assert_eq!((k.time.as_secs(), k.interval, k.retries), (10, None, None));
        let k = Keepalive::parse("10,2,3").unwrap();
        assert_eq!((k.interval.map(|d| d.as_secs()), k.retries), (Some(2), Some(3)));
    }

    #[test]
    fn keepalive_rejects_nonsense_with_a_useful_message() {
        for bad in ["", "0", "x", "1,2,3,4", "5,-1", "5,2,0", "40000", "5,2,200"] {
            let err = Keepalive::parse(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
    }
}
