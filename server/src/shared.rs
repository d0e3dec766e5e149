//! The state every thread of a running server shares: the accept loop, the
//! engines' threads, the deliveries reaper.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tnlm_core::message::ClientInfo;

use crate::config::{Config, Engine};
use crate::deliveries::Deliveries;
use crate::hub_lock::HubLock;
use crate::memory::Trimmer;
use crate::queue::QueueBudget;
use crate::registry::Registry;

/// State shared by the accept loop and every connection thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// Who is connected, and how to reach each client (thread engine).
    pub(crate) registry: Registry,
    /// Messages waiting for their target's acknowledgement (thread engine).
    pub(crate) deliveries: Deliveries,
    /// What all clients' queues together may hold (`--queue-total`; thread engine).
    pub(crate) queue_budget: Arc<QueueBudget>,
    /// The protocol's hub (event engine).
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
            deliveries: Deliveries::new(config.ack_timeout, config.log_requests),
            registry: Registry::new(config.max_clients),
            queue_budget: QueueBudget::new(config.queue_total),
            hub: HubLock::new(config.hub()),
            config,
            trimmer: Trimmer::default(),
            stopping: AtomicBool::new(false),
            wake_addr,
        }
    }

    /// True when the clients are the hub's (the event engine), not the registry's.
    fn on_hub(&self) -> bool {
        self.config.engine == Engine::Events
    }

    /// Takes the next client id (never reused); `None` once all are used.
    pub(crate) fn next_id(&self) -> Option<u32> {
        if self.on_hub() {
            self.hub.lock().hub.next_id()
        } else {
            self.registry.next_id()
        }
    }

    /// Every connected client, in id order, as an `L` response lists them.
    pub(crate) fn clients(&self) -> Vec<ClientInfo> {
        if self.on_hub() {
            self.hub.lock().hub.clients()
        } else {
            self.registry.list()
        }
    }

    /// How many clients are listed.
    pub(crate) fn client_count(&self) -> usize {
        if self.on_hub() {
            self.hub.lock().hub.len()
        } else {
            self.registry.len()
        }
    }

    /// Waits until client `id` is no longer listed, at most `timeout`; true if it left.
    pub(crate) fn wait_gone(&self, id: u32, timeout: Duration) -> bool {
        if self.on_hub() {
            self.hub.wait_until(timeout, |hub| !hub.is_listed(id))
        } else {
            self.registry.wait_gone(id, timeout)
        }
    }
}
