//! The registry of connected clients: who is connected, since when, from
//! where, and the [`Outbox`] to reach each one.
//!
//! Ids start at 1 and are never reused within one server run, so a message
//! addressed to a client that left can never reach a newcomer by mistake.
//!
//! A client that has been [removed](Registry::remove) is no longer listed or
//! addressable, but its thread may still be writing its last frames; its
//! socket stays here (*leaving*) until [`forget`](Registry::forget), so that
//! shutdown can cut it off too instead of waiting out its write timeout.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Local, SecondsFormat};
use tnlm_core::message::ClientInfo;

use crate::outbox::Outbox;

/// One connected client.
#[derive(Debug)]
pub struct Entry {
    /// Its id.
    pub id: u32,
    /// Its address as the server sees it (IPv4 shown as IPv4).
    pub addr: SocketAddr,
    /// When it connected, RFC 3339 with the server's UTC offset (as listed).
    pub since: String,
    /// Where its frames go (and how to cut it off at shutdown).
    pub(crate) outbox: Outbox,
}

/// All connected clients. Shared by every connection thread.
#[derive(Debug)]
pub struct Registry {
    next_id: AtomicU32,
    /// Most clients listed at once.
    capacity: usize,
    clients: Mutex<Clients>,
    /// Notified whenever a client leaves.
    departed: Condvar,
}

/// The map and whether it still takes newcomers, under one lock.
#[derive(Debug, Default)]
struct Clients {
    map: BTreeMap<u32, Entry>,
    /// The outboxes of removed clients whose connections have not ended yet.
    leaving: BTreeMap<u32, Outbox>,
    closed: bool,
    /// [`Registry::disconnect_all`] has run: a client removed from now on is cut at once.
    cut: bool,
}

/// Why a client could not be listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server is shutting down.
    Closed,
    /// `capacity` clients are listed already.
    Full(usize),
    /// The OS would not give the server what one more client needs (a
    /// thread: the thread engine at `vm.max_map_count` or the task limit).
    Exhausted,
    /// The server is at its open-file limit (`ulimit -n`): accepted with the
    /// descriptor it keeps in reserve, only to be told so.
    OutOfDescriptors,
}

impl Registry {
    /// An empty registry that lists at most `capacity` clients.
    pub fn new(capacity: usize) -> Registry {
        Registry {
            next_id: AtomicU32::new(1),
            capacity,
            clients: Mutex::new(Clients::default()),
            departed: Condvar::new(),
        }
    }

    /// Takes the next client id (1, 2, 3, …; never reused); `None` once all
    /// 32-bit ids have been handed out (the server must be restarted).
    pub fn next_id(&self) -> Option<u32> {
        self.next_id.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |id| id.checked_add(1)).ok()
    }

    /// Adds a client under an id from [`next_id`](Self::next_id), connected
    /// `since`, unless the server is shutting down or full.
    pub fn insert(&self, id: u32, addr: SocketAddr, since: DateTime<Local>, outbox: Outbox) -> Result<(), Refusal> {
        // Formatted once, here: formatting 10,000 dates for every `L` request,
        // under the registry lock, was most of its cost (docs/BENCHMARKS.md).
        let since = since.to_rfc3339_opts(SecondsFormat::Secs, false);
        let mut clients = self.lock();
        if clients.closed {
            return Err(Refusal::Closed);
        }
        if clients.map.len() >= self.capacity {
            return Err(Refusal::Full(self.capacity));
        }
        clients.map.insert(id, Entry { id, addr, since, outbox });
        Ok(())
    }

    /// Stops taking newcomers (shutdown has begun) and calls `f` with the
    /// outbox of every client still connected, atomically: no client can slip
    /// in between and miss the shutdown notice.
    pub(crate) fn close(&self, mut f: impl FnMut(&Outbox)) {
        let mut clients = self.lock();
        clients.closed = true;
        for entry in clients.map.values() {
            f(&entry.outbox);
        }
    }

    /// Unlists a client (it is disconnecting): nobody can list or address it
    /// any more. Its socket is kept until [`forget`](Self::forget).
    pub fn remove(&self, id: u32) {
        let mut clients = self.lock();
        if let Some(entry) = clients.map.remove(&id) {
            if clients.cut {
                entry.outbox.cut();
            }
            clients.leaving.insert(id, entry.outbox);
        }
        drop(clients);
        self.departed.notify_all();
    }

    /// Drops what is left of client `id` (its thread is ending).
    pub fn forget(&self, id: u32) {
        let mut clients = self.lock();
        clients.map.remove(&id);
        clients.leaving.remove(&id);
        drop(clients);
        self.departed.notify_all();
    }

    /// The outbox of client `id`, if connected.
    pub(crate) fn outbox(&self, id: u32) -> Option<Outbox> {
        self.lock().map.get(&id).map(|entry| entry.outbox.clone())
    }

    /// Every connected client, in id order, as sent in an `L` response.
    pub fn list(&self) -> Vec<ClientInfo> {
        self.lock()
            .map
            .values()
            .map(|entry| ClientInfo {
                id: entry.id,
                ip: entry.addr.ip(),
                port: entry.addr.port(),
                since: entry.since.clone(),
            })
            .collect()
    }

    /// How many clients are connected.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Waits until every client has gone, including those still leaving,
    /// at most `timeout`; true if they did.
    pub fn wait_empty(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |clients| clients.map.is_empty() && clients.leaving.is_empty())
    }

    /// Waits until client `id` is no longer listed, at most `timeout`; true if it left.
    pub fn wait_gone(&self, id: u32, timeout: Duration) -> bool {
        self.wait_until(timeout, |clients| !clients.map.contains_key(&id))
    }

    fn wait_until(&self, timeout: Duration, done: impl Fn(&Clients) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut clients = self.lock();
        while !done(&clients) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            clients = self.departed.wait_timeout(clients, left).map_or_else(|e| e.into_inner().0, |r| r.0);
        }
        true
    }

    /// Cuts every remaining connection (both directions), listed or leaving,
    /// which wakes their threads from blocking reads and writes; one removed
    /// later is cut as it is removed.
    pub fn disconnect_all(&self) {
        let mut clients = self.lock();
        clients.cut = true;
        for outbox in clients.map.values().map(|entry| &entry.outbox).chain(clients.leaving.values()) {
            outbox.cut();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Clients> {
        // A panic in one connection thread must not take the registry down
        // with it: the map itself is always left consistent.
        self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_count_up_from_one_and_are_never_reused_even_at_the_end() {
        let registry = Registry::new(10);
        assert_eq!((registry.next_id(), registry.next_id()), (Some(1), Some(2)));
        registry.next_id.store(u32::MAX - 1, Ordering::Relaxed);
        assert_eq!(registry.next_id(), Some(u32::MAX - 1));
        assert_eq!(registry.next_id(), None, "ids must not wrap to 0, 1, … (they would reach live clients)");
        assert_eq!(registry.next_id(), None);
    }
}
