//! Server settings (filled from the command line by the binary).

use std::net::IpAddr;
use std::time::Duration;

use tnlm_core::sockopt::SocketOptions;

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
    /// Frames that may wait in one client's outbound queue.
    pub queue_len: usize,
    /// How long one write to a client may block before the client is dropped.
    pub write_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: None,
            port: tnlm_core::DEFAULT_PORT,
            name: default_name(),
            socket: SocketOptions::default(),
            max_payload: tnlm_core::DEFAULT_MAX_PAYLOAD,
            queue_len: 1024,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// This machine's host name, or `tnlm-server` if the OS will not say.
pub fn default_name() -> String {
    hostname::get().map_or_else(|_| "tnlm-server".to_string(), |name| name.to_string_lossy().into_owned())
}
