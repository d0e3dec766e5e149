//! The command line: global flags, socket options and the subcommands.
//!
//! Every flag's help text is written for students: what it does and an example.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use tnlm_core::sockopt::SocketOptions;
use tnlm_core::DEFAULT_PORT;

const ABOUT: &str = "TNLM client: ask a TNLM server for its time, name and client list, \
and send messages to other clients";

const LONG_ABOUT: &str = "TNLM client: ask a TNLM server for its time, name and client list, \
and send messages to other clients.

Without a COMMAND it shows the lab's interactive menu (connect, disconnect, time, name, \
list, send, exit). With a COMMAND it does one thing and exits, which is handy for scripts \
and tests: exit code 0 means success, 1 means the operation failed (a one-line reason is \
printed on stderr), 2 means the command line was wrong.";

const EXAMPLES: &str = "Examples:
  tnlm-client                                      interactive menu
  tnlm-client --connect 127.0.0.1:4579             menu, connected right away
  tnlm-client --connect 127.0.0.1:4579 time        print the server's time
  tnlm-client --connect 127.0.0.1:4579 time --repeat 10000
  tnlm-client --connect 127.0.0.1:4579 --json list one JSON object per line
  tnlm-client --connect 127.0.0.1:4579 send 2 'Hello world!'
  tnlm-client --connect 127.0.0.1:4579 listen --count 1
  tnlm-client --connect 127.0.0.1:4579 bench --clients 50 --pipeline 16 --requests 1000000

Logging goes to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more detail.";

/// The parsed command line of `tnlm-client`.
#[derive(Parser, Debug, Clone)]
#[command(name = "tnlm-client", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    /// The server to talk to, as HOST:PORT (the port defaults to 4579 when left out).
    /// Required by every COMMAND; for the menu it connects right away and becomes the
    /// default the "Connect" item offers. An IPv6 address with a port goes in square
    /// brackets. Example: --connect 127.0.0.1:4579, --connect myhost, --connect ::1
    #[arg(long, short = 'c', value_name = "HOST:PORT", global = true, value_parser = Target::parse)]
    pub connect: Option<Target>,

    /// Print one JSON object per line (each with a "type" field) instead of text meant for
    /// people. Example: tnlm-client --connect 127.0.0.1:4579 --json time
    #[arg(long, global = true)]
    pub json: bool,

    /// How long to wait, in seconds, for the connection to open and for each response
    /// (for `time --repeat`: for all responses together). Fractions are allowed.
    /// Example: --timeout 2.5
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub timeout: Duration,

    /// Log debugging details on stderr: the socket options in effect, connects and
    /// closes. Same as RUST_LOG=debug (RUST_LOG=trace also shows every frame);
    /// RUST_LOG wins when both are given.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,

    /// Ping the server after SECS seconds of silence and give up on the connection
    /// after 3×SECS without a sign of life (off by default; the client always answers
    /// the server's own heartbeat pings). Example: --heartbeat 5
    #[arg(long, value_name = "SECS", global = true, value_parser = parse_secs)]
    pub heartbeat: Option<Duration>,

    /// Socket options applied to the connection before it is opened.
    #[command(flatten)]
    pub socket: SocketOptions,

    /// What to do; without a COMMAND the interactive menu starts.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The scriptable subcommands. Each connects, does one thing, and exits.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Ask for the server's local time (RFC 3339 with its UTC offset).
    ///
    /// With --repeat N it writes N requests back to back in a single write (no pauses)
    /// and then counts the responses, matching each one to its request by request id.
    /// This is the lab's burst test: a protocol whose frames break when TCP coalesces
    /// them shows it here.
    ///
    /// Example: tnlm-client --connect 127.0.0.1:4579 time --repeat 10000
    Time {
        /// How many requests to send in one burst (1 to 1000000). Prints every response,
        /// then a summary "received N/N responses (N matched) in X ms"; the exit code is
        /// 1 unless every request got its response before --timeout.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        repeat: Option<u32>,
    },

    /// Ask for the server's name (its host name, or the name it was started with).
    ///
    /// Example: tnlm-client --connect 127.0.0.1:4579 name
    Name,

    /// List the clients connected to the server: id, IP address, port, and since when.
    ///
    /// Your own connection is marked "(you)". Use an id from this list with `send`.
    ///
    /// Example: tnlm-client --connect 127.0.0.1:4579 list
    List,

    /// Send a text message to another client, by its id (see `list`).
    ///
    /// The server forwards it with your id and address; the exit code is 0 only if it
    /// was delivered, 1 otherwise (with the reason, e.g. no such client). Quote the text
    /// for the shell; it may contain anything, including newlines and non-ASCII.
    ///
    /// Example: tnlm-client --connect 127.0.0.1:4579 send 2 'Hello world!'
    Send {
        /// The id of the client to send to, as shown by `list` (or by its `listen` hello).
        #[arg(value_name = "ID")]
        id: u32,
        /// The message text (one argument: quote it).
        #[arg(value_name = "TEXT", allow_hyphen_values = true)]
        text: String,
    },

    /// Stay connected and print what the server pushes: messages from other clients and
    /// the shutdown notice.
    ///
    /// It prints the server's hello first (it holds your client id, which other clients
    /// need to reach you). Without --count and --timeout it runs until the server goes
    /// away (exit 0 if the server said it was shutting down, 1 if the connection just
    /// dropped) or you press Ctrl-C.
    ///
    /// Example: tnlm-client --connect 127.0.0.1:4579 --json listen --count 1 --timeout 30
    Listen {
        /// Exit (with code 0) after N messages. Not receiving N before --timeout, or before
        /// the server closes, is a failure (exit code 1).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        count: Option<u32>,
        /// Stop listening after SECS seconds: exit 0 if no --count was given, 1 if fewer
        /// than --count messages arrived. (This is the listening time; the global
        /// --timeout before the command is the connect timeout.)
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Duration>,
    },

    /// Load generator: drive the server from C connections with P requests in flight on
    /// each, and report requests/s and latency percentiles (p50, p99, p99.9).
    ///
    /// Each connection writes a batch of P requests at once and writes the next batch when
    /// all P are answered (like redis-benchmark -P); a few event-loop threads serve every
    /// connection, so the generator stays light. A progress line goes to stderr every
    /// second (not with --json); the summary goes to stdout, with --json as one
    /// {"type":"bench",...} object. Exit code 1 if nothing was answered.
    ///
    /// Example: tnlm-client --connect 127.0.0.1:4579 bench --clients 50 --pipeline 16 --duration 10
    Bench(crate::bench::BenchArgs),
}

impl Cli {
    /// How to open connections, from the flags.
    pub fn settings(&self) -> crate::connection::Settings {
        crate::connection::Settings { socket: self.socket.clone(), timeout: self.timeout, heartbeat: self.heartbeat }
    }

    /// Checks what clap cannot express: a COMMAND needs `--connect`.
    /// The error prints like any clap usage error and exits with code 2.
    pub fn check(&self) -> Result<(), clap::Error> {
        match (&self.command, &self.connect) {
            (Some(command), None) => Err(Cli::command().error(
                clap::error::ErrorKind::MissingRequiredArgument,
                format!(
                    "the `{}` command needs a server: add --connect HOST:PORT, e.g. \
                     tnlm-client --connect 127.0.0.1:{DEFAULT_PORT} {}",
                    command.name(),
                    command.name()
                ),
            )),
            _ => Ok(()),
        }
    }
}

impl Command {
    /// The subcommand's name as typed on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Time { .. } => "time",
            Command::Name => "name",
            Command::List => "list",
            Command::Send { .. } => "send",
            Command::Listen { .. } => "listen",
            Command::Bench(_) => "bench",
        }
    }
}

/// A server address as the user gave it: a host name or IP literal and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Target {
    /// Parses `HOST:PORT`, `[IPv6]:PORT`, a bare IPv6 address, or a bare host
    /// (which gets the default port 4579).
    pub fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("expected HOST:PORT, e.g. 127.0.0.1:4579".into());
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Target { host: ip.to_string(), port: DEFAULT_PORT });
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return Err(format!("{text:?} has no host; expected HOST:PORT, e.g. 127.0.0.1:4579"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(port) => parse_port(port)?,
        };
        Ok(Target { host: host.to_string(), port })
    }
}

/// Parses a TCP port number (1 to 65535).
pub fn parse_port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("{:?} is not a port number (1 to 65535)", text.trim())),
    }
}

impl fmt::Display for Target {
    /// `host:port`, with brackets around an IPv6 address: `[::1]:4579`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses a positive number of seconds, fractions allowed (`10`, `0.5`).
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 1e9 => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!("{text:?} is not a number of seconds greater than 0, e.g. 10 or 0.5")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn targets_parse_in_every_usual_form() {
        let t = |s: &str| Target::parse(s).unwrap().to_string();
        assert_eq!(t("127.0.0.1:4000"), "127.0.0.1:4000");
        assert_eq!(t("localhost"), "localhost:4579");
        assert_eq!(t("[::1]:9"), "[::1]:9");
        assert_eq!(t("::1"), "[::1]:4579");
        assert!(Target::parse("host:0").is_err());
        assert!(Target::parse("host:x").is_err());
        assert!(Target::parse(":80").is_err());
    }

    #[test]
    fn seconds_accept_fractions_and_refuse_nonsense() {
        assert_eq!(parse_secs("0.5").unwrap(), Duration::from_millis(500));
        for bad in ["0", "-1", "x", "inf", "NaN"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_command_without_connect_is_a_usage_error() {
        let cli = Cli::try_parse_from(["tnlm-client", "time"]).unwrap();
        assert_eq!(cli.check().unwrap_err().exit_code(), 2);
        let cli = Cli::try_parse_from(["tnlm-client", "time", "--connect", "h:1", "--json"]).unwrap();
        assert!(cli.check().is_ok() && cli.json);
    }
}
