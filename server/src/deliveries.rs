//! Delivery receipts: a sender hears `delivered` only once the target's
//! client has acknowledged the message, and otherwise why not.
//!
//! Forwarding an `M` request registers a pending delivery under a fresh id,
//! which travels as the request id of the `M` indication. The target's
//! receiver thread answers with an `A` (ack) frame echoing it. Whichever comes
//! first settles the delivery and answers the sender:
//! - the ack → `delivered`;
//! - the target disconnecting (or being dropped by the heartbeat) → `target_gone`;
//! - the ack timeout → `not_acknowledged` (handled by the reaper thread);
//! - the target's queue being full or gone → answered at once by the handler;
//! - server shutdown → `target_gone`.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tnlm_core::message::{Delivery, DeliveryStatus};
use tnlm_core::Frame;

use crate::writer::{encode, Outbox};

/// The reaper's shortest sleep: `not_acknowledged` may come this much after
/// the ack timeout.
const REAP_TICK: Duration = Duration::from_millis(10);

/// One delivery waiting for its ack.
#[derive(Debug)]
struct Pending {
    /// Where the sender's answer goes.
    sender: Outbox,
    /// The sender's `M` request id, echoed by the answer.
    request_id: u32,
    /// The target client's id.
    target: u32,
}

/// Hashes a delivery id with one multiplication (Fibonacci hashing). The ids
/// are the server's own sequence numbers, so SipHash's protection against
/// chosen keys buys nothing here, and it was a measurable part of each
/// message's cost (docs/BENCHMARKS.md).
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[derive(Debug, Default)]
struct Book {
    pending: HashMap<u32, Pending, BuildHasherDefault<IdHasher>>,
    /// Every delivery's deadline, in the order they began. All share one ack
    /// timeout, so this is also deadline order: a FIFO does what a heap
    /// would, in O(1). Entries of settled deliveries are dropped from the
    /// front as they reach it ([`trim`](Self::trim)), so under load it holds
    /// about what is in flight (a heap kept every deadline for the whole ack
    /// timeout: ~800k entries at 160k messages/s, see docs/BENCHMARKS.md).
    deadlines: VecDeque<(Instant, u32)>,
    stopped: bool,
}

impl Book {
    /// Drops deadlines of deliveries already settled from the front.
    fn trim(&mut self) {
        while let Some(&(_, id)) = self.deadlines.front() {
            if self.pending.contains_key(&id) {
                break;
            }
            self.deadlines.pop_front();
        }
    }
}

/// Every delivery in flight. Shared by all connection threads and the reaper.
#[derive(Debug)]
pub(crate) struct Deliveries {
    book: Mutex<Book>,
    changed: Condvar,
    next_id: AtomicU32,
    ack_timeout: Duration,
    /// Log each settled delivery at info level (`--log-requests`).
    log_outcomes: bool,
}

impl Deliveries {
    /// An empty book whose deliveries expire after `ack_timeout`; with
    /// `log_outcomes`, each settled delivery is logged (`--log-requests`).
    pub(crate) fn new(ack_timeout: Duration, log_outcomes: bool) -> Deliveries {
        Deliveries {
            book: Mutex::default(),
            changed: Condvar::new(),
            next_id: AtomicU32::new(1),
            ack_timeout,
            log_outcomes,
        }
    }

    /// Registers a delivery of `sender`'s request `request_id` to `target`;
    /// returns its id (never 0) for the `M` indication.
    pub(crate) fn begin(&self, sender: Outbox, request_id: u32, target: u32) -> u32 {
        let id = self.fresh_id();
        let deadline = Instant::now() + self.ack_timeout;
        let mut book = self.lock();
        book.pending.insert(id, Pending { sender, request_id, target });
        // Every delivery gets the same timeout, so a new deadline is never
        // earlier than those already waiting: the reaper, asleep until the
        // earliest, needs waking only when there was none. (Waking it for
        // every message cost a futex wake and a context switch each.)
        let reaper_idle = book.deadlines.is_empty();
        book.deadlines.push_back((deadline, id));
        drop(book);
        if reaper_idle {
            self.changed.notify_one();
        }
        id
    }

    /// `target` acknowledged delivery `id`. Acks for deliveries addressed to
    /// another client, or already settled, are ignored (returns false).
    pub(crate) fn acknowledge(&self, target: u32, id: u32) -> bool {
        let mut book = self.lock();
        if !matches!(book.pending.get(&id), Some(p) if p.target == target) {
            return false;
        }
        let pending = book.pending.remove(&id);
        book.trim();
        drop(book);
        if let Some(pending) = pending {
            self.settle(pending, DeliveryStatus::Delivered, format!("client {target} acknowledged it"));
        }
        true
    }

    /// Forgets delivery `id` without answering, so the caller can answer
    /// itself (e.g. when the message could not even be queued). False if it
    /// was settled meanwhile (the target went away, or acknowledged an id
    /// it guessed): the sender has had its answer, and must not get two.
    pub(crate) fn cancel(&self, id: u32) -> bool {
        let mut book = self.lock();
        let removed = book.pending.remove(&id).is_some();
        book.trim();
        removed
    }

    /// Client `target` is gone: every delivery to it fails now.
    pub(crate) fn target_gone(&self, target: u32) {
        let gone = self.take_where(|p| p.target == target);
        for pending in gone {
            let reason = format!("client {target} disconnected before acknowledging it");
            self.settle(pending, DeliveryStatus::TargetGone, reason);
        }
    }

    /// Shutdown: fails everything in flight and stops the reaper.
    pub(crate) fn stop(&self) {
        let all = self.take_where(|_| true);
        self.lock().stopped = true;
        self.changed.notify_all();
        for pending in all {
            self.settle(pending, DeliveryStatus::TargetGone, "the server is shutting down".into());
        }
    }

    /// The reaper thread's body: answers `not_acknowledged` for deliveries
    /// whose ack timeout passed, until [`stop`](Self::stop).
    pub(crate) fn reap_until_stopped(&self) {
        let mut book = self.lock();
        while !book.stopped {
            let now = Instant::now();
            let mut expired = Vec::new();
            while let Some(&(deadline, id)) = book.deadlines.front() {
                if deadline > now {
                    break;
                }
                book.deadlines.pop_front();
                expired.extend(book.pending.remove(&id));
            }
            if !expired.is_empty() {
                drop(book);
                for pending in expired {
                    let reason =
                        format!("client {} did not acknowledge it within {:?}", pending.target, self.ack_timeout);
                    self.settle(pending, DeliveryStatus::NotAcknowledged, reason);
                }
                book = self.lock();
                continue;
            }
            book = match book.deadlines.front() {
                Some((deadline, _)) => {
                    // Under load, deadlines come microseconds apart (and some of
                    // settled deliveries wait behind an unsettled one). Sleeping
                    // at least REAP_TICK lets the reaper take them in batches
                    // instead of waking for each.
                    let wait = deadline.saturating_duration_since(now).max(REAP_TICK);
                    self.changed.wait_timeout(book, wait).map_or_else(|e| e.into_inner().0, |r| r.0)
                }
                None => self.changed.wait(book).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    fn take_where(&self, mut keep_out: impl FnMut(&Pending) -> bool) -> Vec<Pending> {
        let mut book = self.lock();
        let ids: Vec<u32> = book.pending.iter().filter(|(_, p)| keep_out(p)).map(|(id, _)| *id).collect();
        let taken = ids.into_iter().filter_map(|id| book.pending.remove(&id)).collect();
        book.trim();
        taken
    }

    fn fresh_id(&self) -> u32 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answers the sender. Never blocks: a sender whose queue is full is not
    /// reading and will be disconnected as a slow consumer anyway.
    fn settle(&self, pending: Pending, status: DeliveryStatus, reason: String) {
        if self.log_outcomes {
            let (from, to) = (pending.sender.client_id(), pending.target);
            tracing::info!("client {from}'s message to client {to}: {} ({reason})", status.name());
        }
        answer(pending, status, reason);
    }
}

/// Sends the sender its `M` response for `pending`.
fn answer(pending: Pending, status: DeliveryStatus, reason: String) {
    let answer = Frame::new(pending.request_id, Delivery { to: pending.target, status, reason });
    if pending.sender.offer(encode(&answer)).is_err() {
        tracing::debug!("the sender of request #{} is gone or stuck; receipt dropped", pending.request_id);
    }
}
