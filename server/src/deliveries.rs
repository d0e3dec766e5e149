//! Delivery receipts: a sender hears `delivered` only once the target's
//! client has acknowledged the message, and otherwise why not.
//!
//! Forwarding an `M` request registers a pending delivery under a fresh id,
//! which travels as the request id of the `M` indication. The target's
//! receiver thread answers with an `A` (ack) frame echoing it. Whichever comes
//! first settles the delivery and answers the sender:
//! - the ack → `delivered`, but only once the server has completely written
//!   the indication to the target: an ack for a frame still in the server's
//!   queue (or not even sent yet) is a lie and is ignored. Ids are drawn
//!   from a per-run keyed hash of a counter, so a client cannot predict them
//!   either;
//! - the target disconnecting (or being dropped by the heartbeat) → `target_gone`;
//! - the ack timeout → `not_acknowledged` (handled by the reaper thread);
//! - the target's queue being full or gone → answered at once by the handler;
//! - server shutdown → `target_gone`.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
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
    /// The sender's client id.
    sender_id: u32,
    /// The end offset of the indication in the target's outbox
    /// ([`Outbox::try_push`]); `None` until it is queued.
    queued_to: Option<u64>,
    /// The sender's `M` request id, echoed by the answer.
    request_id: u32,
    /// The target client's id.
    target: u32,
}

/// Hashes a delivery id with one multiplication (Fibonacci hashing). The ids
/// are the server's own (already keyed-hashed) numbers, so SipHash's
/// protection against chosen keys buys nothing in the map, and it was a
/// measurable part of each message's cost (docs/BENCHMARKS.md).
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
    /// Notified when deliveries settle, if anyone [waits](Self::wait_settled_from).
    settled: Condvar,
    /// How many threads wait on `settled` (notifying nobody would still cost
    /// a system call per message).
    waiting: AtomicUsize,
    /// Deliveries taken off the book whose receipt is not queued yet: a
    /// waiter must not take "none pending" for "all answered" meanwhile.
    answering: AtomicUsize,
    next_id: AtomicU32,
    /// The per-run key that turns the counter into unpredictable ids.
    id_key: RandomState,
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
            settled: Condvar::new(),
            waiting: AtomicUsize::new(0),
            answering: AtomicUsize::new(0),
            next_id: AtomicU32::new(1),
            id_key: RandomState::new(),
            ack_timeout,
            log_outcomes,
        }
    }

    /// Registers a delivery of request `request_id` from client `sender_id`
    /// (whose outbox is `sender`) to `target`; returns its id (never 0, not
    /// in use, unpredictable) for the `M` indication.
    pub(crate) fn begin(&self, sender: Outbox, sender_id: u32, request_id: u32, target: u32) -> u32 {
        let deadline = Instant::now() + self.ack_timeout;
        let mut book = self.lock();
        let id = self.fresh_id(&book);
        book.pending.insert(id, Pending { sender, sender_id, queued_to: None, request_id, target });
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

    /// Delivery `id`'s indication is queued to its target, ending at offset
    /// `end` of the target's outbox.
    pub(crate) fn queued(&self, id: u32, end: u64) {
        if let Some(pending) = self.lock().pending.get_mut(&id) {
            pending.queued_to = Some(end);
        }
    }

    /// `target`, whose outbox has written `written` queued bytes so far,
    /// acknowledged delivery `id`. Acks for deliveries addressed to another
    /// client, already settled, or whose indication the server has not yet
    /// completely written to `target`, are ignored (returns false).
    pub(crate) fn acknowledge(&self, target: u32, id: u32, written: u64) -> bool {
        let mut book = self.lock();
        let received = |p: &Pending| p.target == target && p.queued_to.is_some_and(|end| written >= end);
        if !book.pending.get(&id).is_some_and(received) {
            return false;
        }
        let pending = book.pending.remove(&id);
        self.answering.fetch_add(1, Ordering::SeqCst);
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
        drop(book);
        self.notify_settled();
        removed
    }

    /// Waits until no delivery sent by client `sender` is pending (each
    /// settles within the ack timeout), at most until `deadline`; true if
    /// none is. Used when a client has closed its sending side: it is still
    /// owed those receipts.
    pub(crate) fn wait_settled_from(&self, sender: u32, deadline: Instant) -> bool {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut book = self.lock();
        let settled = loop {
            let answered = self.answering.load(Ordering::SeqCst) == 0;
            if answered && !book.pending.values().any(|p| p.sender_id == sender) {
                break true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            book = self.settled.wait_timeout(book, left).map_or_else(|e| e.into_inner().0, |r| r.0);
        };
        drop(book);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        settled
    }

    /// Answers the sender of a delivery taken off the book, then wakes
    /// whoever waits for its receipts (they must be queued first).
    fn settle(&self, pending: Pending, status: DeliveryStatus, reason: String) {
        if self.log_outcomes {
            tracing::info!(
                "client {}'s message to client {}: {} ({reason})",
                pending.sender_id,
                pending.target,
                status.name()
            );
        }
        answer_sender(pending, status, reason);
        self.answering.fetch_sub(1, Ordering::SeqCst);
        self.notify_settled();
    }

    /// Wakes [`wait_settled_from`](Self::wait_settled_from), if anyone waits.
    /// Under the book's lock, so a waiter between its check and its wait
    /// cannot miss it.
    fn notify_settled(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            let _book = self.lock();
            self.settled.notify_all();
        }
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
                if let Some(pending) = book.pending.remove(&id) {
                    self.answering.fetch_add(1, Ordering::SeqCst);
                    expired.push(pending);
                }
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
        let taken: Vec<Pending> = ids.into_iter().filter_map(|id| book.pending.remove(&id)).collect();
        self.answering.fetch_add(taken.len(), Ordering::SeqCst);
        book.trim();
        taken
    }

    /// A new delivery id: the next count, hashed with this run's random key
    /// (so ids follow no pattern a client could use), never 0 and never one
    /// still pending.
    fn fresh_id(&self, book: &Book) -> u32 {
        loop {
            let count = self.next_id.fetch_add(1, Ordering::Relaxed);
            let id = self.id_key.hash_one(count) as u32;
            if id != 0 && !book.pending.contains_key(&id) {
                return id;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Answers the sender. Never blocks: a sender whose queue is full is not
/// reading and will be disconnected as a slow consumer anyway.
fn answer_sender(pending: Pending, status: DeliveryStatus, reason: String) {
    let answer = Frame::new(pending.request_id, Delivery { to: pending.target, status, reason });
    if pending.sender.offer(encode(&answer)).is_err() {
        tracing::debug!("the sender of request #{} is gone or stuck; receipt dropped", pending.request_id);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;

    use super::*;

    /// An outbox over a real loopback connection (its peer is dropped).
    fn outbox() -> Outbox {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        Outbox::new(1, Arc::new(stream), 1 << 20, crate::writer::QueueBudget::new(usize::MAX))
    }

    #[test]
    fn an_ack_counts_only_once_the_indication_is_completely_written() {
        let book = Deliveries::new(Duration::from_secs(60), false);
        let id = book.begin(outbox(), 1, 7, 2);
        assert!(!book.acknowledge(2, id, 0), "not even queued yet");
        book.queued(id, 100);
        assert!(!book.acknowledge(2, id, 99), "one byte still unwritten");
        assert!(!book.acknowledge(3, id, 100), "another client cannot acknowledge it");
        assert!(book.acknowledge(2, id, 100));
        assert!(!book.acknowledge(2, id, 100), "settled once");
    }

    #[test]
    fn ids_are_unique_nonzero_and_follow_no_sequence() {
        let book = Deliveries::new(Duration::from_secs(60), false);
        let sender = outbox();
        let ids: Vec<u32> = (0..1000).map(|n| book.begin(sender.clone(), 1, n, 2)).collect();
        let unique: std::collections::HashSet<u32> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len());
        assert!(!ids.contains(&0));
        let steps = ids.windows(2).filter(|pair| pair[1].wrapping_sub(pair[0]) == 1).count();
        assert!(steps < 5, "{steps} of 999 ids follow their predecessor");
    }

    #[test]
    fn waiting_for_a_senders_receipts_ends_when_they_settle() {
        let book = Deliveries::new(Duration::from_secs(60), false);
        let id = book.begin(outbox(), 5, 1, 2);
        assert!(!book.wait_settled_from(5, Instant::now()), "one is pending");
        assert!(book.wait_settled_from(6, Instant::now()), "client 6 sent nothing");
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| book.wait_settled_from(5, Instant::now() + Duration::from_secs(10)));
            book.target_gone(2);
            assert!(waiter.join().unwrap());
        });
        assert!(!book.cancel(id));
    }
}
