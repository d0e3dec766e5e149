//! The command line: global flags, socket options and the subcommands.
//!
//! Every flag's help text is written for students: what it does and an example.

use std::fmt;
use std::net::Ipv6Addr;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use tnlm_core::sockopt::SocketOptions;
use tnlm_core::DEFAULT_PORT;

/// How long the client waits for a connection and each response when `--timeout` is left out.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

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
  tnlm-client --connect 127.0.0.1:4579 time --repeat 10000    10000 requests in one send()
  tnlm-client --connect 127.0.0.1:4579 time --repeat 100 --sends  100 requests, 100 send()s
  tnlm-client --connect 127.0.0.1:4579 --json list one JSON object per line
  tnlm-client --connect 127.0.0.1:4579 send 2 'Hello world!'
  tnlm-client --connect 127.0.0.1:4579 listen --count 1
  tnlm-client --connect 127.0.0.1:4579 bench --clients 50 --pipeline 16 --requests 1000000
  tnlm-client --connect 127.0.0.1:4579 conform     check the server against docs/PROTOCOL.md

Logging goes to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more detail.";

/// The parsed command line of `tnlm-client`.
#[derive(Parser, Debug, Clone)]
#[command(name = "tnlm-client", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    /// The server to talk to, as HOST:PORT (the port defaults to 4579 when left out).
    /// Required by every COMMAND; for the menu it connects right away and becomes the
    /// default the "Connect" item offers. An IPv6 address with a port goes in square
    /// brackets. Example: --connect 127.0.0.1:4579, --connect myhost, --connect ::1,
    /// --connect [::1]:4579
    // This comment is also the --help text, where "[::1]" must stay as typed.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, short = 'c', value_name = "HOST:PORT", global = true, value_parser = Target::parse)]
    pub connect: Option<Target>,

    /// Print one JSON object per line (each with a "type" field) instead of text meant for
    /// people. Example: tnlm-client --connect 127.0.0.1:4579 --json time
    #[arg(long, global = true)]
    pub json: bool,

    /// How long to wait, in seconds, for the connection to open and for each response
    /// (for `time --repeat`: for all responses together); 10 when left out. For `listen`
    /// it is how long to listen (without it: until the server goes away), and the
    /// connection gets the usual 10 s. Fractions are allowed. Example: --timeout 2.5
    #[arg(long, value_name = "SECS", global = true, value_parser = parse_secs)]
    pub timeout: Option<Duration>,

    /// Log debugging details on stderr: the socket options in effect, connects and
    /// closes. Same as RUST_LOG=debug (RUST_LOG=trace also shows every frame);
    /// RUST_LOG wins when both are given.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,

    /// Ping the server after SECS seconds of silence and give up on the connection
    /// after 3×SECS without a sign of life. Off by default, and 0 means off, as on the
    /// server (the client always answers the server's own heartbeat pings).
    /// Example: --heartbeat 5
    #[arg(long, value_name = "SECS", global = true, value_parser = parse_secs_or_zero)]
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
    /// With --repeat N it writes N requests back to back in a single write (one send()
    /// call, no pauses) and then counts the responses, matching each one to its request
    /// by request id. Add --sends to make one send() call per request instead (N calls,
    /// still no pauses), as the lab's "100 send() calls" experiment asks; --nodelay
    /// turns Nagle's algorithm off for either. This is the lab's burst test: a protocol
    /// whose frames break when TCP coalesces them shows it here.
    ///
    /// Example: tnlm-client --connect 127.0.0.1:4579 time --repeat 100 --sends
    Time {
        /// How many requests to send in one burst (1 to 1000000). Prints every response,
        /// then a summary "received N/N responses (N matched) in X ms; N requests written in
        /// W send() calls"; the exit code is 1 unless every request got its response before
        /// --timeout.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        repeat: Option<u32>,

        /// With --repeat N: write each request with a send() call of its own (N calls back
        /// to back) instead of all N in one. How many TCP segments they become is up to the
        /// TCP stack (Nagle's algorithm, --nodelay, the network): count them in Wireshark.
        /// Example: tnlm-client --connect 127.0.0.1:4579 time --repeat 100 --sends
        #[arg(long, requires = "repeat")]
        sends: bool,
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
    /// dropped) or you press Ctrl-C. --timeout SECS stops listening after SECS seconds:
    /// exit 0 if no --count was given, 1 if fewer than --count messages arrived.
    ///
    /// Example: tnlm-client --connect 127.0.0.1:4579 --json listen --count 1 --timeout 30
    Listen {
        /// Exit (with code 0) after N messages. Not receiving N before --timeout, or before
        /// the server closes, is a failure (exit code 1).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        count: Option<u32>,
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
    Bench(crate::bench::args::BenchArgs),

    /// Conformance checker: run the cases of docs/PROTOCOL.md against the server and
    /// report which it passes.
    ///
    /// It opens connections of its own and sends exactly the bytes each case needs,
    /// good and bad: hello, every request, a list seen by several of its own clients,
    /// messages with every delivery status it can provoke, every error code it can
    /// provoke and what becomes of the connection after it, split and coalesced
    /// frames, answers to pings, and the limits announced in the hello. One line per
    /// case names the PROTOCOL.md section it checks, then "N passed, M failed"; with
    /// --json one {"type":"conform",...} object per case and a
    /// {"type":"conform_summary",...}, always printed. Exit code 1 if any case
    /// failed, 3 if it could not test (the first connection refused, silent or not
    /// TNLM). Each expected answer may take --timeout (the server's pings do not
    /// extend it), each case at most 6 × --timeout. Takes about the server's ack
    /// timeout (5 s by default), which must be below --timeout.
    ///
    /// Example: tnlm-client --connect 127.0.0.1:4579 conform
    Conform {
        /// Also run the cases that wait for the server's timers: its heartbeat ping
        /// (answered with a pong) and the frame timeout (a half-sent frame gets a
        /// `timeout` error). Start the server with --heartbeat and --frame-timeout
        /// below --timeout, and its --ack-timeout below 3 heartbeats (a silent target is
        /// dropped after 3), e.g. tnlm-server --heartbeat 2 --frame-timeout 1 --ack-timeout 1.
        #[arg(long)]
        timers: bool,
    },
}

impl Cli {
    /// `--timeout`, or [`DEFAULT_TIMEOUT`] when it was left out.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    /// How to open connections, from the flags. `listen` takes `--timeout` as its
    /// listening time, so its connection gets [`DEFAULT_TIMEOUT`]; `--heartbeat 0` is
    /// no heartbeat.
    pub fn settings(&self) -> crate::connection::Settings {
        let timeout = match self.command {
            Some(Command::Listen { .. }) => DEFAULT_TIMEOUT,
            _ => self.timeout(),
        };
        let heartbeat = self.heartbeat.filter(|interval| !interval.is_zero());
        crate::connection::Settings { socket: self.socket.clone(), timeout, heartbeat }
    }

    /// Checks what clap cannot express: a COMMAND needs `--connect`, and a `bench`
    /// batch must fit in [`crate::bench::args::MAX_BATCH_BYTES`].
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
            (Some(Command::Bench(args)), Some(_)) => {
                args.check().map_err(|why| Cli::command().error(clap::error::ErrorKind::ValueValidation, why))
            }
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
            Command::Conform { .. } => "conform",
        }
    }
}

/// A server address as the user gave it: a host name or IP literal and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP address (IPv6 without brackets, with its `%zone` if any).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// What [`Target::parse`] says when it cannot make sense of its text.
const TARGET_FORMS: &str =
    "expected HOST, HOST:PORT, IPv6 or [IPv6]:PORT, e.g. 127.0.0.1:4579, myhost, ::1, [::1]:4579";

impl Target {
    /// Parses `HOST:PORT` or a bare `HOST` (which gets the default port 4579), where
    /// HOST is a name or an IPv4 address; or an IPv6 address, bare or in square brackets,
    /// with a port only in brackets: `::1`, `[::1]`, `[::1]:4579`, `fe80::1%eth0`.
    pub fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let Some((inside, after)) = rest.split_once(']') else {
                return Err(format!("{text:?} has no closing ']'; {TARGET_FORMS}"));
            };
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(format!("{text:?}: only :PORT may follow ']'; {TARGET_FORMS}")),
            };
            let host = ipv6_host(inside)
                .ok_or_else(|| format!("{inside:?} in square brackets is not an IPv6 address; {TARGET_FORMS}"))?;
            (host, port)
        } else if let Some(host) = ipv6_host(text) {
            (host, None)
        } else {
            let (host, port) = match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            };
            let name_like = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
            if host.is_empty() || !host.chars().all(name_like) || port.is_some_and(|p| p.contains(':')) {
                return Err(format!("{text:?} is not a server address; {TARGET_FORMS}"));
            }
            (host.to_string(), port)
        };
        let port = match port {
            None => DEFAULT_PORT,
            Some(port) => parse_port(port)?,
        };
        Ok(Target { host, port })
    }
}

/// `text` as an IPv6 host: the address in its usual short form, plus the `%zone`
/// (interface name or number) that a link-local address needs, if given.
fn ipv6_host(text: &str) -> Option<String> {
    let (addr, zone) = match text.split_once('%') {
        Some((addr, zone)) => (addr, Some(zone)),
        None => (text, None),
    };
    let addr: Ipv6Addr = addr.parse().ok()?;
    match zone {
        None => Some(addr.to_string()),
        Some(zone) if !zone.is_empty() && zone.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) => {
            Some(format!("{addr}%{zone}"))
        }
        Some(_) => None,
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

/// Durations in seconds are parsed as the server parses them.
pub use tnlm_core::cli::{parse_secs, parse_secs_or_zero};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn targets_parse_in_every_usual_form() {
        let t = |s: &str| Target::parse(s).unwrap().to_string();
        assert_eq!(t("127.0.0.1:4000"), "127.0.0.1:4000");
        assert_eq!(t("127.0.0.1"), "127.0.0.1:4579");
        assert_eq!(t("localhost"), "localhost:4579");
        assert_eq!(t("my-host.example:80"), "my-host.example:80");
        assert_eq!(t("[::1]:9"), "[::1]:9");
        assert_eq!(t("::1"), "[::1]:4579");
        assert_eq!(t(" 2001:DB8:0:0::1 "), "[2001:db8::1]:4579");
        assert!(Target::parse("host:0").is_err());
        assert!(Target::parse("host:x").is_err());
        assert!(Target::parse(":80").is_err());
    }

    #[test]
    fn ipv6_targets_take_brackets_and_zones() {
        let t = |s: &str| Target::parse(s).unwrap();
        let target = |host: &str, port| Target { host: host.into(), port };
        assert_eq!(t("[::1]"), target("::1", DEFAULT_PORT));
        assert_eq!(t("[::1]:4000"), target("::1", 4000));
        assert_eq!(t("fe80::1%lo"), target("fe80::1%lo", DEFAULT_PORT));
        assert_eq!(t("[fe80::1%eth0]:9"), target("fe80::1%eth0", 9));
        assert_eq!(t("fe80::1%2"), target("fe80::1%2", DEFAULT_PORT));
        assert_eq!(t("[fe80::1%lo]").to_string(), "[fe80::1%lo]:4579");
        // Bare IPv6 has no port: the last group belongs to the address.
        assert_eq!(t("::1:4000"), target("::1:4000", DEFAULT_PORT));
    }

    #[test]
    fn malformed_targets_say_what_was_expected() {
        for bad in [
            "",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[::1]:0",
            "[::1]:99999",
            "[]",
            "[127.0.0.1]:80",
            "[myhost]:80",
            "fe80::1%",
            "[fe80::1%]:80",
            "fe80::1%a/b",
            "1:2:3",
            "host:1:2",
            "host name",
            "host/x:80",
            "[::1]]:80",
        ] {
            let err = Target::parse(bad).expect_err(bad);
            assert!(err.contains("e.g.") || err.contains("port number"), "{bad:?}: {err}");
        }
        assert!(Target::parse("[::1").unwrap_err().contains("']'"));
        assert!(Target::parse("[::1]:").unwrap_err().contains("not a port number"));
    }

    fn parse(argv: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("tnlm-client").chain(argv.iter().copied())).unwrap()
    }

    #[test]
    fn socket_options_and_timeout_may_follow_the_command() {
        let flags = ["--nodelay", "--linger", "0", "--recv-buffer", "4096", "--keepalive", "10", "--timeout", "2.5"];
        let after: Vec<&str> = ["-c", "h", "time"].into_iter().chain(flags).collect();
        let before: Vec<&str> = flags.into_iter().chain(["-c", "h", "time"]).collect();
        for cli in [parse(&after), parse(&before)] {
            let settings = cli.settings();
            assert!(settings.socket.nodelay && settings.socket.keepalive.is_some(), "{cli:?}");
            assert_eq!((settings.socket.linger, settings.socket.recv_buffer), (Some(0), Some(4096)));
            assert_eq!(settings.timeout, Duration::from_millis(2500));
        }
        let cli = parse(&["-c", "h", "bench", "--requests", "5", "--user-timeout", "900", "--timeout", "3"]);
        assert_eq!((cli.socket.user_timeout, cli.timeout()), (Some(900), Duration::from_secs(3)));
        assert_eq!(parse(&["-c", "h", "name"]).settings().timeout, DEFAULT_TIMEOUT);
        for command in ["time", "name", "list", "send", "listen", "bench"] {
            let help = Cli::try_parse_from(["tnlm-client", command, "--help"]).unwrap_err().to_string();
            for flag in ["--timeout", "--nodelay", "--send-buffer", "--heartbeat", "--connect"] {
                assert!(help.contains(flag), "`{command} --help` lacks {flag}:\n{help}");
            }
        }
    }

    #[test]
    fn listen_takes_the_timeout_as_its_listening_time() {
        for argv in [["-c", "h", "listen", "--timeout", "30"], ["--timeout", "30", "-c", "h", "listen"]] {
            let cli = parse(&argv);
            assert_eq!(cli.timeout, Some(Duration::from_secs(30)));
            assert_eq!(cli.settings().timeout, DEFAULT_TIMEOUT, "the connection gets the usual timeout");
        }
        assert_eq!(parse(&["-c", "h", "listen", "--count", "1"]).timeout, None);
    }

    #[test]
    fn heartbeat_zero_means_off_as_on_the_server() {
        assert_eq!(parse(&[]).settings().heartbeat, None);
        assert_eq!(parse(&["--heartbeat", "0"]).settings().heartbeat, None);
        assert_eq!(parse(&["-c", "h", "time", "--heartbeat", "0.0"]).settings().heartbeat, None);
        assert_eq!(parse(&["--heartbeat", "5"]).settings().heartbeat, Some(Duration::from_secs(5)));
        for bad in ["-1", "x"] {
            assert!(Cli::try_parse_from(["tnlm-client", "--heartbeat", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_oversized_bench_batch_is_a_usage_error() {
        let argv = ["-c", "h", "bench", "--kind", "message", "--clients", "2", "--requests", "1"];
        let cli = parse(&[&argv[..], &["--pipeline", "100000", "--size", "60000"]].concat());
        let err = cli.check().unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("64 MiB"), "{err}");
        assert!(parse(&[&argv[..], &["--pipeline", "1000", "--size", "60000"]].concat()).check().is_ok());
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
