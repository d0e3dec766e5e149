//! Server settings (filled from the command line by the binary).

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use tnlm_core::proto::conn::ConnConfig;
use tnlm_core::proto::hub::HubConfig;
use tnlm_core::proto::session::SessionConfig;
use tnlm_core::sockopt::SocketOptions;

/// How the server does its I/O. Both engines speak the same protocol through
/// the same core (`tnlm_core::proto`); only who reads and writes the sockets differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Engine {
    /// One thread per client, blocking reads (the lab's design, the default).
    #[default]
    Threads,
    /// A few worker threads with event loops (epoll, or the Windows
    /// backend) serve every client (`--workers`).
    Events,
}

impl Engine {
    /// The engine test suites run against: `TNLM_TEST_ENGINE` (`threads` or
    /// `events`), `threads` when unset. `ci/test.sh` runs the server's and
    /// the client's suites once per engine. An unknown name panics: a test
    /// run must not silently fall back to the other engine.
    pub fn under_test() -> Engine {
        match std::env::var("TNLM_TEST_ENGINE") {
            Err(_) => Engine::Threads,
            Ok(name) => <Engine as clap::ValueEnum>::from_str(&name, true)
                .unwrap_or_else(|_| panic!("TNLM_TEST_ENGINE={name}: expected threads or events")),
        }
    }

    /// The engine's name on the command line (`--engine NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Engine::Threads => "threads",
            Engine::Events => "events",
        }
    }
}

/// Everything a [`Server`](crate::Server) needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind; `None` listens dual-stack on `[::]` (or `0.0.0.0`).
    pub bind: Option<IpAddr>,
    /// TCP port; 0 picks a free one.
    pub port: u16,
    /// The name answered to `N` requests and sent in the hello.
    pub name: String,
    /// Socket options applied to every accepted connection.
    pub socket: SocketOptions,
    /// Largest payload accepted from a client.
    pub max_payload: u32,
    /// Most clients served at once; more are refused with `too_many_clients`.
    pub max_clients: usize,
    /// Bytes of messages from other clients that may wait in one client's
    /// queue; past that, senders get `queue_full`.
    pub queue_bytes: usize,
    /// Bytes that may wait in all clients' queues together; past that,
    /// senders get `queue_full` however empty their target's own queue is.
    pub queue_total: usize,
    /// How long output may stay owed to a client (not taken by its socket)
    /// before it is disconnected as a slow consumer.
    pub write_timeout: Duration,
    /// Ping each client after this much silence, and drop it after three
    /// times this much (`None`: never; a dead peer then stays until TCP notices).
    pub heartbeat: Option<Duration>,
    /// How long a client may take to send the rest of a frame it started.
    pub frame_timeout: Duration,
    /// How long a forwarded message may wait for the target's acknowledgement.
    pub ack_timeout: Duration,
    /// Wait this long after `listen` before the first `accept` (the lab's
    /// breakpoint between the two): clients that connect meanwhile complete
    /// the handshake and wait in the kernel's listen queue. `None`: accept at once.
    pub accept_delay: Option<Duration>,
    /// Who does the I/O: a thread per client, or event-loop workers.
    pub engine: Engine,
    /// How many event-loop workers the event engine runs (at least 1).
    pub workers: usize,
    /// Log every request the server answers at info level (`client 2 asked
    /// for the time`), so the console shows what the lab report's server
    /// screenshots show; off by default, as it is one line per request.
    pub log_requests: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: None,
            port: tnlm_core::DEFAULT_PORT,
            name: default_name(),
            socket: SocketOptions::default(),
            max_payload: tnlm_core::DEFAULT_MAX_PAYLOAD,
            max_clients: 10_000,
            queue_bytes: 1024 * 1024,
            queue_total: DEFAULT_QUEUE_TOTAL,
            write_timeout: Duration::from_secs(10),
            heartbeat: Some(Duration::from_secs(30)),
            frame_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(5),
            accept_delay: None,
            engine: Engine::Threads,
            workers: default_workers(),
            log_requests: false,
        }
    }
}

impl Config {
    /// Refuses settings under which the server could send a frame larger than
    /// the payload limit its hello announces: a limit below
    /// [`MIN_MAX_PAYLOAD`](tnlm_core::MIN_MAX_PAYLOAD), or a name longer than
    /// [`MAX_NAME_LEN`](tnlm_core::MAX_NAME_LEN) bytes.
    pub fn check(&self) -> io::Result<()> {
        let invalid = |text: String| Err(io::Error::new(io::ErrorKind::InvalidInput, text));
        if self.max_payload < tnlm_core::MIN_MAX_PAYLOAD {
            return invalid(format!("the payload limit must be at least {} bytes", tnlm_core::MIN_MAX_PAYLOAD));
        }
        if self.name.len() > tnlm_core::MAX_NAME_LEN {
            return invalid(format!("the server name must be at most {} bytes", tnlm_core::MAX_NAME_LEN));
        }
        Ok(())
    }

    /// The limits and timers of each client's protocol session.
    pub(crate) fn session(&self) -> SessionConfig {
        SessionConfig { max_payload: self.max_payload, frame_timeout: self.frame_timeout, heartbeat: self.heartbeat }
    }

    /// What core's hub needs: the name, limits and timers that span connections.
    pub(crate) fn hub(&self) -> HubConfig {
        HubConfig {
            name: self.name.clone(),
            max_payload: self.max_payload,
            max_clients: self.max_clients,
            queue_bytes: self.queue_bytes,
            queue_total: self.queue_total,
            ack_timeout: self.ack_timeout,
            log_requests: self.log_requests,
            ..HubConfig::default()
        }
    }

    /// What core's connection machine needs.
    pub(crate) fn conn(&self) -> ConnConfig {
        ConnConfig { session: self.session(), write_timeout: self.write_timeout }
    }
}

/// Stack size of each connection thread (and of an outbox's flusher). They
/// touch little: an 8 KiB read buffer and shallow calls. The default 2 MiB
/// would reserve 20 GB of address space for 10,000 clients (5 GB with
/// this). Smaller would not save memory, only address space, and would make
/// glibc keep more exited threads' stacks: it caches up to 40 MiB of them,
/// 12–20 KiB touched in each (157 stacks of 256 KiB kept 1.5 MB more than
/// 79 of 512 KiB after 3,000 departures, debug build).
pub(crate) const CONNECTION_STACK: usize = 512 * 1024;

/// The default of [`Config::queue_total`]: 256 MiB.
pub const DEFAULT_QUEUE_TOTAL: usize = 256 * 1024 * 1024;

/// The event engine's default worker count: one per core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// This machine's host name, or `tnlm-server` if the OS will not say (or
/// names it with more than [`MAX_NAME_LEN`](tnlm_core::MAX_NAME_LEN) bytes).
pub fn default_name() -> String {
    match hostname::get() {
        Ok(name) if name.len() <= tnlm_core::MAX_NAME_LEN => name.to_string_lossy().into_owned(),
        _ => "tnlm-server".to_string(),
    }
}
