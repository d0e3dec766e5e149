//! The state every thread of a running server shares: the accept loop, the
//! engines' threads, the deliveries reaper.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tnlm_core::message::ClientInfo;

use crate::config::Config;
use crate::hub_lock::HubLock;
use crate::memory::Trimmer;

/// State shared by the accept loop and every connection thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// The protocol's hub: who is connected, the messages in flight, every
    /// client's queue.
    pub(crate) hub: HubLock,
    /// Gives departed clients' freed memory back to the system.
    pub(crate) trimmer: Trimmer,
    /// Set once shutdown has begun.
    pub(crate) stopping: AtomicBool,
    /// An address that reaches the listener, to wake a blocking `accept`.
    pub(crate) wake_addr: SocketAddr,
}

impl Shared {
    /// The state of a server configured by `config`, whose listener
    /// `wake_addr` reaches.
    pub(crate) fn new(config: Config, wake_addr: SocketAddr) -> Shared {
        Shared {
            hub: HubLock::new(config.hub()),
            config,
            trimmer: Trimmer::default(),
            stopping: AtomicBool::new(false),
            wake_addr,
        }
    }

    /// Takes the next client id (never reused); `None` once all are used.
    pub(crate) fn next_id(&self) -> Option<u32> {
        self.hub.with(|hub| hub.next_id())
    }

    /// Every connected client, in id order, as an `L` response lists them.
    pub(crate) fn clients(&self) -> Vec<ClientInfo> {
        self.hub.with(|hub| hub.clients())
    }

    /// How many clients are listed.
    pub(crate) fn client_count(&self) -> usize {
        self.hub.with(|hub| hub.len())
    }

    /// Waits until client `id` is no longer listed, at most `timeout`; true if it left.
    pub(crate) fn wait_gone(&self, id: u32, timeout: Duration) -> bool {
        self.hub.wait_until(timeout, |hub| !hub.is_listed(id))
    }
}
