//! The deliveries book, without I/O: every forwarded message waiting for its
//! target's acknowledgement, and how each one ends.
//!
//! Forwarding an `M` request [begins](Book::begin) a delivery under a fresh
//! id, which travels as the request id of the `M` indication; the target's
//! client answers with an `A` (ack) frame echoing it. Whichever comes first
//! settles the delivery, and its sender is answered with a [`Settled`]:
//! - the ack → `delivered`, but only once the indication has been completely
//!   written to the target (its driver says how far: [`Book::queued`] and
//!   the `written` count given to [`Book::acknowledge`]). An ack for a frame
//!   still waiting to be written, or not even sent, is a lie and is ignored;
//! - the target leaving → `target_gone` ([`Book::target_gone`]; also every
//!   delivery at [shutdown](Book::stop));
//! - the ack timeout → `not_acknowledged` ([`Book::expire`] at `now`).
//!
//! Ids are a counter hashed with a key chosen at random when the book is
//! made, so a client cannot predict them. The book never reads a clock: the
//! driver passes `now`, and asks [`Book::next_deadline`] when to come back.
//! `S` is whatever the driver needs to answer a sender (the server: its
//! outbox).

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use crate::message::DeliveryStatus;

/// One delivery waiting for its ack.
#[derive(Debug)]
pub struct Pending<S> {
    /// How to reach the sender.
    pub sender: S,
    /// The sender's client id.
    pub sender_id: u32,
    /// The sender's `M` request id, echoed by its answer.
    pub request_id: u32,
    /// The target's client id.
    pub target: u32,
    /// Where the indication ends in the target's output ([`Book::queued`]);
    /// `None` until it is queued.
    queued_to: Option<u64>,
}

/// A delivery that has ended: the answer its sender is owed.
#[derive(Debug)]
pub struct Settled<S> {
    /// The delivery.
    pub pending: Pending<S>,
    /// How it ended.
    pub status: DeliveryStatus,
    /// Why, for people.
    pub reason: String,
}

/// Hashes a delivery id with one multiplication (Fibonacci hashing). The ids
/// are already keyed hashes, so SipHash's protection against chosen keys buys
/// nothing in the map, and it was a measurable part of each message's cost
/// (docs/BENCHMARKS.md).
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

/// Every delivery in flight.
#[derive(Debug)]
pub struct Book<S> {
    pending: HashMap<u32, Pending<S>, BuildHasherDefault<IdHasher>>,
    /// Every delivery's deadline, in the order they began. All share one ack
    /// timeout, so this is also deadline order: a FIFO does what a heap
    /// would, in O(1). Entries of settled deliveries are dropped from the
    /// front as they reach it ([`trim`](Self::trim)), so under load it holds
    /// about what is in flight (a heap kept every deadline for the whole ack
    /// timeout: ~800k entries at 160k messages/s, see docs/BENCHMARKS.md).
    deadlines: VecDeque<(Instant, u32)>,
    ack_timeout: Duration,
    counter: u32,
    /// This book's key, which turns the counter into unpredictable ids.
    id_key: u64,
}

impl<S> Book<S> {
    /// An empty book whose deliveries expire `ack_timeout` after they begin.
    pub fn new(ack_timeout: Duration) -> Book<S> {
        Book::with_key(ack_timeout, RandomState::new().hash_one(0u8))
    }

    /// An empty book whose ids are made with `key`: the same key gives the
    /// same ids (a deterministic simulation replays a run from its seed).
    pub fn with_key(ack_timeout: Duration, key: u64) -> Book<S> {
        Book { pending: HashMap::default(), deadlines: VecDeque::new(), ack_timeout, counter: 0, id_key: key }
    }

    /// The ack timeout.
    pub fn ack_timeout(&self) -> Duration {
        self.ack_timeout
    }

    /// Begins a delivery at `now` of request `request_id` from client
    /// `sender_id` (reached through `sender`) to `target`; returns its id for
    /// the `M` indication: never 0, never one still pending, unpredictable.
    pub fn begin(&mut self, sender: S, sender_id: u32, request_id: u32, target: u32, now: Instant) -> u32 {
        let id = self.fresh_id();
        self.pending.insert(id, Pending { sender, sender_id, request_id, target, queued_to: None });
        self.deadlines.push_back((now + self.ack_timeout, id));
        id
    }

    /// Delivery `id`'s indication is queued to its target, ending at offset
    /// `end` of the target's output.
    pub fn queued(&mut self, id: u32, end: u64) {
        if let Some(pending) = self.pending.get_mut(&id) {
            pending.queued_to = Some(end);
        }
    }

    /// `target`, to which `written` bytes of queued output have been
    /// completely written, acknowledges delivery `id`. `None` (ignored) when
    /// the delivery is addressed to another client, already settled, or its
    /// indication is not completely written yet.
    pub fn acknowledge(&mut self, target: u32, id: u32, written: u64) -> Option<Settled<S>> {
        let received = |p: &Pending<S>| p.target == target && p.queued_to.is_some_and(|end| written >= end);
        if !self.pending.get(&id).is_some_and(received) {
            return None;
        }
        let pending = self.pending.remove(&id)?;
        self.trim();
        Some(Settled { pending, status: DeliveryStatus::Delivered, reason: format!("client {target} acknowledged it") })
    }

    /// Forgets delivery `id` without an answer (its sender is answered
    /// otherwise, e.g. when the indication could not even be queued). False
    /// if it had settled already: its sender has had an answer and must not
    /// get two.
    pub fn cancel(&mut self, id: u32) -> bool {
        let removed = self.pending.remove(&id).is_some();
        self.trim();
        removed
    }

    /// Client `target` has gone: every delivery to it ends `target_gone`.
    pub fn target_gone(&mut self, target: u32) -> Vec<Settled<S>> {
        let reason = format!("client {target} disconnected before acknowledging it");
        self.take_where(|p| p.target == target, DeliveryStatus::TargetGone, &reason)
    }

    /// Client `sender_id` has gone for good: its deliveries still in flight
    /// are forgotten (there is nobody left to answer).
    pub fn forget_sender(&mut self, sender_id: u32) {
        self.pending.retain(|_, p| p.sender_id != sender_id);
        self.trim();
    }

    /// Shutdown: every delivery in flight ends `target_gone`.
    pub fn stop(&mut self) -> Vec<Settled<S>> {
        self.take_where(|_| true, DeliveryStatus::TargetGone, "the server is shutting down")
    }

    /// The deliveries whose ack timeout has passed at `now` end
    /// `not_acknowledged`: the message may or may not have arrived.
    pub fn expire(&mut self, now: Instant) -> Vec<Settled<S>> {
        let mut expired = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if let Some(pending) = self.pending.remove(&id) {
                let reason = format!("client {} did not acknowledge it within {:?}", pending.target, self.ack_timeout);
                expired.push(Settled { pending, status: DeliveryStatus::NotAcknowledged, reason });
            }
        }
        self.trim();
        expired
    }

    /// When [`expire`](Self::expire) next has something to do; `None` while
    /// nothing is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.front().map(|&(deadline, _)| deadline)
    }

    /// True while a delivery sent by client `sender_id` is pending.
    pub fn any_from(&self, sender_id: u32) -> bool {
        self.pending.values().any(|p| p.sender_id == sender_id)
    }

    /// True while a delivery to client `target` is pending.
    pub fn any_to(&self, target: u32) -> bool {
        self.pending.values().any(|p| p.target == target)
    }

    /// How many deliveries are pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when no delivery is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn take_where(
        &mut self,
        mut take: impl FnMut(&Pending<S>) -> bool,
        status: DeliveryStatus,
        reason: &str,
    ) -> Vec<Settled<S>> {
        let ids: Vec<u32> = self.pending.iter().filter(|(_, p)| take(p)).map(|(id, _)| *id).collect();
        let taken = ids
            .into_iter()
            .filter_map(|id| self.pending.remove(&id))
            .map(|pending| Settled { pending, status, reason: reason.to_string() })
            .collect();
        self.trim();
        taken
    }

    /// Drops deadlines of deliveries already settled from the front.
    fn trim(&mut self) {
        while let Some(&(_, id)) = self.deadlines.front() {
            if self.pending.contains_key(&id) {
                break;
            }
            self.deadlines.pop_front();
        }
    }

    fn fresh_id(&mut self) -> u32 {
        loop {
            self.counter = self.counter.wrapping_add(1);
            let mut hasher = DefaultHasher::new();
            hasher.write_u64(self.id_key);
            hasher.write_u32(self.counter);
            let id = hasher.finish() as u32;
            if id != 0 && !self.pending.contains_key(&id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// A book whose senders are just names, and a fake clock's start.
    fn book() -> (Book<&'static str>, Instant) {
        (Book::new(TIMEOUT), Instant::now())
    }

    #[test]
    fn an_ack_delivers_only_once_the_indication_is_completely_written() {
        let (mut book, now) = book();
        let id = book.begin("alice", 1, 7, 2, now);
        assert!(book.acknowledge(2, id, 0).is_none(), "not even queued yet");
        book.queued(id, 100);
        assert!(book.acknowledge(2, id, 99).is_none(), "one byte still unwritten");
        assert!(book.acknowledge(3, id, 100).is_none(), "another client cannot acknowledge it");
        let settled = book.acknowledge(2, id, 100).unwrap();
        assert_eq!((settled.pending.sender, settled.pending.request_id), ("alice", 7));
        assert_eq!(settled.status, DeliveryStatus::Delivered);
        assert!(book.acknowledge(2, id, 100).is_none(), "settled once");
        assert!(book.is_empty());
    }

    #[test]
    fn unacknowledged_deliveries_expire_at_their_deadline_in_order() {
        let (mut book, start) = book();
        assert_eq!(book.next_deadline(), None);
        let first = book.begin("a", 1, 1, 2, start);
        let second = book.begin("a", 1, 2, 2, start + Duration::from_secs(1));
        assert_eq!(book.next_deadline(), Some(start + TIMEOUT));
        assert!(book.expire(start + TIMEOUT - Duration::from_millis(1)).is_empty());
        let expired = book.expire(start + TIMEOUT);
        assert_eq!(expired.len(), 1);
        assert_eq!((expired[0].pending.request_id, expired[0].status), (1, DeliveryStatus::NotAcknowledged));
        assert!(expired[0].reason.contains("within 5s"), "{}", expired[0].reason);
        assert_eq!(book.next_deadline(), Some(start + TIMEOUT + Duration::from_secs(1)));
        assert!(!book.cancel(first), "already settled");
        assert!(book.cancel(second));
        assert_eq!(book.next_deadline(), None, "a cancelled delivery's deadline goes too");
    }

    #[test]
    fn a_departing_target_fails_its_deliveries_and_no_one_elses() {
        let (mut book, now) = book();
        book.begin("a", 1, 1, 2, now);
        book.begin("a", 1, 2, 3, now);
        book.begin("b", 4, 3, 2, now);
        let gone = book.target_gone(2);
        let mut ids: Vec<u32> = gone.iter().map(|s| s.pending.request_id).collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 3]);
        assert!(gone.iter().all(|s| s.status == DeliveryStatus::TargetGone));
        assert_eq!(book.len(), 1);
        assert!(book.any_from(1) && !book.any_from(4));
        let stopped = book.stop();
        assert_eq!(stopped.len(), 1);
        assert_eq!(stopped[0].reason, "the server is shutting down");
        assert!(book.is_empty() && book.next_deadline().is_none());
    }

    #[test]
    fn ids_are_unique_nonzero_and_follow_no_sequence() {
        let (mut book, now) = book();
        let ids: Vec<u32> = (0..1000).map(|n| book.begin("a", 1, n, 2, now)).collect();
        let unique: std::collections::HashSet<u32> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len());
        assert!(!ids.contains(&0));
        let steps = ids.windows(2).filter(|pair| pair[1].wrapping_sub(pair[0]) == 1).count();
        assert!(steps < 5, "{steps} of 999 ids follow their predecessor");
        let other: Vec<u32> = {
            let mut book = Book::<()>::new(TIMEOUT);
            (0..10).map(|n| book.begin((), 1, n, 2, now)).collect()
        };
        assert_ne!(other, ids[..10], "each book has its own key");
    }
}
