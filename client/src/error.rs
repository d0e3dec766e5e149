//! What can go wrong on the client side, worded for the one-line `error: …`
//! message the binary prints on stderr.

use std::fmt;
use std::io;
use std::time::Duration;

use tnlm_core::{DecodeError, EncodeError};

/// Why the connection ended (the last event the receiver thread reports).
#[derive(Debug)]
pub enum CloseReason {
    /// The server closed the connection (end of stream on a frame boundary).
    Eof,
    /// This client closed the connection itself.
    Local,
    /// Reading the socket failed (reset, timeout, …).
    Io(io::Error),
    /// The server sent bytes that are not a TNLM stream, or stopped mid-frame.
    Decode(DecodeError),
    /// `--heartbeat`: the server gave no sign of life for this long.
    HeartbeatTimeout(std::time::Duration),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Eof => f.write_str("the server closed the connection"),
            CloseReason::Local => f.write_str("this client closed the connection"),
            CloseReason::Io(err) => write!(f, "the connection was lost: {}", describe_io(err)),
            CloseReason::Decode(err) => write!(f, "the server broke the protocol: {err}"),
            CloseReason::HeartbeatTimeout(silent) => {
                write!(
                    f,
                    "the server gave no sign of life for {:.1} s (heartbeat); connection dropped",
                    silent.as_secs_f64()
                )
            }
        }
    }
}

/// A client failure; its `Display` is the message shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be opened.
    #[error("cannot connect to {target}: {}", describe_io(.source))]
    Connect {
        /// `host:port` as given.
        target: String,
        /// What the OS said.
        source: io::Error,
    },
    /// TCP connected, but the server did not greet us with a hello.
    #[error("connected to {target}, but {problem}")]
    Handshake {
        /// `host:port` as given.
        target: String,
        /// What went wrong instead.
        problem: String,
    },
    /// No response arrived in time.
    #[error("no response to the {what} request within {}", secs(*.timeout))]
    Timeout {
        /// Which request (`time`, `name`, …).
        what: &'static str,
        /// How long we waited.
        timeout: Duration,
    },
    /// The connection ended while we were waiting.
    #[error("{0}")]
    Closed(CloseReason),
    /// Writing to the socket failed.
    #[error("cannot send to the server: {}", describe_io(.0))]
    Send(io::Error),
    /// A request could not be encoded (for example, a message over the size limit).
    #[error("cannot send that request: {0}")]
    Encode(#[from] EncodeError),
    /// The operation failed for a reason already spelled out in the message
    /// (not delivered, error frame from the server, …).
    #[error("{0}")]
    Failed(String),
    /// The conformance checker could not test at all: the first connection
    /// was refused, silent, or not TNLM (exit code 3).
    #[error("could not test: {0}")]
    CannotTest(String),
}

impl ClientError {
    /// The process exit code this error ends with: 3 when the conformance
    /// checker could not test, 1 otherwise (2, usage, is clap's).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::CannotTest(_) => 3,
            _ => 1,
        }
    }
}

/// An I/O error in a few lowercase words, without the `(os error N)` suffix:
/// `connection refused`, `connection timed out`, …
pub fn describe_io(err: &io::Error) -> String {
    if err.kind() == io::ErrorKind::ConnectionRefused {
        return "connection refused".into();
    }
    let text = err.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("{:?}", err.kind()),
    }
}

/// A duration as seconds for messages: `10 s`, `0.5 s`.
pub fn secs(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_like_a_sentence() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(describe_io(&refused), "connection refused");
        let os = io::Error::from_raw_os_error(libc_enetunreach());
        assert!(!describe_io(&os).contains("os error"), "{}", describe_io(&os));
        let err = ClientError::Connect { target: "127.0.0.1:4579".into(), source: refused };
        assert_eq!(err.to_string(), "cannot connect to 127.0.0.1:4579: connection refused");
    }

    fn libc_enetunreach() -> i32 {
        if cfg!(windows) {
            10051
        } else {
            101
        }
    }

    #[test]
    fn durations_print_as_seconds() {
        assert_eq!(secs(Duration::from_secs(10)), "10 s");
        assert_eq!(secs(Duration::from_millis(500)), "0.5 s");
    }
}
