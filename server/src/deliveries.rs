//! Delivery receipts, driven: the deliveries book of
//! [`tnlm_core::proto::deliveries`] (what is pending and how each delivery
//! ends) behind a lock, shared by every connection thread, with the threads
//! around it: a reaper that expires unacknowledged deliveries at their
//! deadline, and waiters for a half-closed sender's receipts. Settling a
//! delivery means queueing its receipt to the sender's outbox.
//!
//! The handler answers at once, without the book, when a message cannot
//! even be queued (no such client, queue full, too large).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tnlm_core::message::Delivery;
use tnlm_core::proto::deliveries::{Book, Settled};
use tnlm_core::Frame;

use crate::outbox::{encode, Outbox};

/// The reaper's shortest sleep: `not_acknowledged` may come this much after
/// the ack timeout.
const REAP_TICK: Duration = Duration::from_millis(10);

/// The book and whether the server is stopping, under one lock.
#[derive(Debug)]
struct Locked {
    book: Book<Outbox>,
    stopped: bool,
}

/// Every delivery in flight. Shared by all connection threads and the reaper.
#[derive(Debug)]
pub(crate) struct Deliveries {
    locked: Mutex<Locked>,
    /// Wakes the reaper when its next deadline may have changed.
    changed: Condvar,
    /// Notified when deliveries settle, if anyone [waits](Self::wait_settled_from).
    settled: Condvar,
    /// How many threads wait on `settled` (notifying nobody would still cost
    /// a system call per message).
    waiting: AtomicUsize,
    /// Deliveries taken off the book whose receipt is not queued yet: a
    /// waiter must not take "none pending" for "all answered" meanwhile.
    answering: AtomicUsize,
    /// Log each settled delivery at info level (`--log-requests`).
    log_outcomes: bool,
}

impl Deliveries {
    /// An empty book whose deliveries expire after `ack_timeout`; with
    /// `log_outcomes`, each settled delivery is logged (`--log-requests`).
    pub(crate) fn new(ack_timeout: Duration, log_outcomes: bool) -> Deliveries {
        Deliveries {
            locked: Mutex::new(Locked { book: Book::new(ack_timeout), stopped: false }),
            changed: Condvar::new(),
            settled: Condvar::new(),
            waiting: AtomicUsize::new(0),
            answering: AtomicUsize::new(0),
            log_outcomes,
        }
    }

    /// Begins a delivery of request `request_id` from client `sender_id`
    /// (whose outbox is `sender`) to `target`; returns its id for the `M`
    /// indication (see [`Book::begin`]).
    pub(crate) fn begin(&self, sender: Outbox, sender_id: u32, request_id: u32, target: u32) -> u32 {
        let now = Instant::now();
        let mut locked = self.lock();
        // Every delivery gets the same timeout, so a new deadline is never
        // earlier than those already waiting: the reaper, asleep until the
        // earliest, needs waking only when there was none. (Waking it for
        // every message cost a futex wake and a context switch each.)
        let reaper_idle = locked.book.next_deadline().is_none();
        let id = locked.book.begin(sender, sender_id, request_id, target, now);
        drop(locked);
        if reaper_idle {
            self.changed.notify_one();
        }
        id
    }

    /// Delivery `id`'s indication is queued to its target, ending at offset
    /// `end` of the target's outbox.
    pub(crate) fn queued(&self, id: u32, end: u64) {
        self.lock().book.queued(id, end);
    }

    /// `target`, whose outbox has written `written` queued bytes so far,
    /// acknowledged delivery `id`; false if the ack was ignored (see
    /// [`Book::acknowledge`]).
    pub(crate) fn acknowledge(&self, target: u32, id: u32, written: u64) -> bool {
        let settled = self.take(|book| book.acknowledge(target, id, written).into_iter().collect());
        let acknowledged = !settled.is_empty();
        self.answer(settled);
        acknowledged
    }

    /// Forgets delivery `id` without answering, so the caller can answer
    /// itself (e.g. when the message could not even be queued). False if it
    /// was settled meanwhile: the sender has had its answer, and must not
    /// get two.
    pub(crate) fn cancel(&self, id: u32) -> bool {
        let removed = self.lock().book.cancel(id);
        self.notify_settled();
        removed
    }

    /// Client `target` is gone: every delivery to it fails now.
    pub(crate) fn target_gone(&self, target: u32) {
        let gone = self.take(|book| book.target_gone(target));
        self.answer(gone);
    }

    /// Shutdown: fails everything in flight and stops the reaper.
    pub(crate) fn stop(&self) {
        let all = self.take(|book| book.stop());
        self.lock().stopped = true;
        self.changed.notify_all();
        self.answer(all);
    }

    /// Waits until no delivery sent by client `sender` is pending (each
    /// settles within the ack timeout), at most until `deadline`; true if
    /// none is. Used when a client has closed its sending side: it is still
    /// owed those receipts.
    pub(crate) fn wait_settled_from(&self, sender: u32, deadline: Instant) -> bool {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut locked = self.lock();
        let settled = loop {
            let answered = self.answering.load(Ordering::SeqCst) == 0;
            if answered && !locked.book.any_from(sender) {
                break true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            locked = self.settled.wait_timeout(locked, left).map_or_else(|e| e.into_inner().0, |r| r.0);
        };
        drop(locked);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        settled
    }

    /// The reaper thread's body: answers `not_acknowledged` for deliveries
    /// whose ack timeout passed, until [`stop`](Self::stop).
    pub(crate) fn reap_until_stopped(&self) {
        let mut locked = self.lock();
        while !locked.stopped {
            let now = Instant::now();
            let expired = locked.book.expire(now);
            if !expired.is_empty() {
                self.answering.fetch_add(expired.len(), Ordering::SeqCst);
                drop(locked);
                self.answer(expired);
                locked = self.lock();
                continue;
            }
            locked = match locked.book.next_deadline() {
                Some(deadline) => {
                    // Under load, deadlines come microseconds apart (and some of
                    // settled deliveries wait behind an unsettled one). Sleeping
                    // at least REAP_TICK lets the reaper take them in batches
                    // instead of waking for each.
                    let wait = deadline.saturating_duration_since(now).max(REAP_TICK);
                    self.changed.wait_timeout(locked, wait).map_or_else(|e| e.into_inner().0, |r| r.0)
                }
                None => self.changed.wait(locked).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// Takes settled deliveries off the book (under its lock) and counts
    /// them as being answered.
    fn take(&self, settle: impl FnOnce(&mut Book<Outbox>) -> Vec<Settled<Outbox>>) -> Vec<Settled<Outbox>> {
        let settled = settle(&mut self.lock().book);
        self.answering.fetch_add(settled.len(), Ordering::SeqCst);
        settled
    }

    /// Answers the senders of deliveries taken off the book, then wakes
    /// whoever waits for their receipts (they must be queued first).
    fn answer(&self, settled: Vec<Settled<Outbox>>) {
        for Settled { pending, status, reason } in settled {
            if self.log_outcomes {
                let (from, to) = (pending.sender_id, pending.target);
                tracing::info!("client {from}'s message to client {to}: {} ({reason})", status.name());
            }
            // Never blocks: a sender whose queue is full is not reading and
            // will be disconnected as a slow consumer anyway.
            let receipt = Frame::new(pending.request_id, Delivery { to: pending.target, status, reason });
            if pending.sender.offer(encode(&receipt)).is_err() {
                tracing::debug!("the sender of request #{} is gone or stuck; receipt dropped", pending.request_id);
            }
            self.answering.fetch_sub(1, Ordering::SeqCst);
            self.notify_settled();
        }
    }

    /// Wakes [`wait_settled_from`](Self::wait_settled_from), if anyone waits.
    /// Under the lock, so a waiter between its check and its wait cannot
    /// miss it.
    fn notify_settled(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            let _locked = self.lock();
            self.settled.notify_all();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Locked> {
        self.locked.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let budget = crate::queue::QueueBudget::new(usize::MAX);
        Outbox::Thread(crate::writer::Writer::new(1, Arc::new(stream), 1 << 20, budget))
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
