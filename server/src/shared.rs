//! The state every thread of a running server shares: the accept loop, each
//! client's connection thread, the deliveries reaper.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::config::Config;
use crate::deliveries::Deliveries;
use crate::memory::Trimmer;
use crate::queue::QueueBudget;
use crate::registry::Registry;

/// State shared by the accept loop and every connection thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// Who is connected, and how to reach each client.
    pub(crate) registry: Registry,
    /// Messages waiting for their target's acknowledgement.
    pub(crate) deliveries: Deliveries,
    /// What all clients' queues together may hold (`--queue-total`).
    pub(crate) queue_budget: Arc<QueueBudget>,
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
            config,
            trimmer: Trimmer::default(),
            stopping: AtomicBool::new(false),
            wake_addr,
        }
    }
}
