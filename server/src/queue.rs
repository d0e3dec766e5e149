//! A client's queue of frames from elsewhere, whichever engine serves it:
//! the encoded frames in order, their byte count and offsets (an ack is
//! checked against how far the queue has been written), the per-client
//! limit (`--queue-bytes`) and the budget of all queues together
//! ([`QueueBudget`], `--queue-total`), and why a frame may be refused
//! ([`PushError`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Queued frames are written in batches of about this many bytes.
pub(crate) const COALESCE_LIMIT: usize = 64 * 1024;

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue is full: the client is not reading fast enough.
    Full,
    /// The client is gone (or its connection is closing).
    Gone,
}

/// How much more than `--queue-bytes` the answers a client is owed may
/// take in its queue (receipts are small, and each answers a message).
pub(crate) const OWED_FACTOR: usize = 16;

/// Where a frame for a client comes from, for [`Queue::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A message from another client.
    Others,
    /// An answer the client is owed (a delivery receipt).
    Owed,
}

/// The bytes waiting in every client's queue together, and their limit
/// (`--queue-total`): one slow reader is bounded by `--queue-bytes`, and this
/// bounds thousands of them at once. Shared by every client's queue.
#[derive(Debug)]
pub struct QueueBudget {
    used: AtomicUsize,
    limit: usize,
}

impl QueueBudget {
    /// A budget of `limit` bytes for all queues together.
    pub fn new(limit: usize) -> Arc<QueueBudget> {
        Arc::new(QueueBudget { used: AtomicUsize::new(0), limit })
    }

    /// Bytes queued in all outboxes now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `n` bytes if they fit under the limit.
    fn try_take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| used.checked_add(n).filter(|&u| u <= self.limit))
            .is_ok()
    }

    /// Takes `n` bytes whatever the limit (a frame put back, or a client's last frame).
    pub(crate) fn take(&self, n: usize) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }

    /// Gives back `n` bytes that left a queue.
    pub(crate) fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// One client's queued frames (encoded), in order, with their byte count and
/// the offsets acks are checked against. Every byte in it is counted in the
/// [`QueueBudget`] it was made with, and given back as it leaves.
#[derive(Debug)]
pub(crate) struct Queue {
    /// Frames from other clients are refused (the client is leaving), but
    /// answers it is owed are still taken.
    refusing_messages: bool,
    /// No frames are taken at all any more.
    closed: bool,
    frames: VecDeque<Vec<u8>>,
    bytes: usize,
    /// How many bytes were ever queued: the end offset of the last frame.
    queued_total: u64,
    budget: Arc<QueueBudget>,
}

impl Queue {
    /// An empty queue drawing on `budget`.
    pub(crate) fn new(budget: Arc<QueueBudget>) -> Queue {
        Queue { refusing_messages: false, closed: false, frames: VecDeque::new(), bytes: 0, queued_total: 0, budget }
    }

    /// Takes a frame from elsewhere if the client still takes it: a message
    /// from another client ([`Origin::Others`]) within `max_bytes` of this
    /// queue and the budget; an answer it is owed ([`Origin::Owed`], e.g. a
    /// receipt) within [`OWED_FACTOR`] × `max_bytes` of its own, whatever
    /// the budget, also while it is leaving. Returns the frame's end offset.
    pub(crate) fn admit(&mut self, frame: Vec<u8>, origin: Origin, max_bytes: usize) -> Result<u64, PushError> {
        if self.closed || (origin == Origin::Others && self.refusing_messages) {
            return Err(PushError::Gone);
        }
        match origin {
            Origin::Others => self.try_append(frame, max_bytes),
            Origin::Owed => self.try_append_owed(frame, max_bytes.saturating_mul(OWED_FACTOR)),
        }
    }

    /// The client is leaving: messages from others are refused from now on.
    pub(crate) fn refuse_messages(&mut self) {
        self.refusing_messages = true;
    }

    /// Nothing more is admitted (what waits can still be taken, and a last
    /// frame forced in).
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }

    /// True once [`close`](Self::close)d.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Bytes waiting.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// True when nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Queues `frame` if this queue stays within `limit` bytes and the
    /// budget has room; returns its end offset.
    fn try_append(&mut self, frame: Vec<u8>, limit: usize) -> Result<u64, PushError> {
        if self.bytes + frame.len() > limit || !self.budget.try_take(frame.len()) {
            return Err(PushError::Full);
        }
        Ok(self.append(frame))
    }

    /// Queues a frame the client is owed (a receipt) if this queue stays
    /// within `limit`, whatever the budget: a receipt answers a message that
    /// was counted when it was queued, and dropping it would leave its
    /// sender without an answer. Returns its end offset.
    fn try_append_owed(&mut self, frame: Vec<u8>, limit: usize) -> Result<u64, PushError> {
        if self.bytes + frame.len() > limit {
            return Err(PushError::Full);
        }
        Ok(self.force_append(frame))
    }

    /// Queues `frame` whatever the limits (a client's last frame, the
    /// shutdown notice); returns its end offset.
    pub(crate) fn force_append(&mut self, frame: Vec<u8>) -> u64 {
        self.budget.take(frame.len());
        self.append(frame)
    }

    fn append(&mut self, frame: Vec<u8>) -> u64 {
        self.bytes += frame.len();
        self.queued_total += frame.len() as u64;
        self.frames.push_back(frame);
        self.queued_total
    }

    /// Puts a batch taken with [`take_batch`](Self::take_batch) back at the
    /// front (nothing of it was written).
    pub(crate) fn put_back(&mut self, batch: Vec<u8>) {
        self.budget.take(batch.len());
        self.bytes += batch.len();
        self.frames.push_front(batch);
    }

    /// Takes queued frames off the front, up to about [`COALESCE_LIMIT`]
    /// bytes, as one buffer (a lone frame is moved, not copied), and gives
    /// their bytes back to the budget.
    pub(crate) fn take_batch(&mut self) -> Vec<u8> {
        let mut batch = self.frames.pop_front().unwrap_or_default();
        while let Some(frame) = self.frames.front() {
            if batch.len() + frame.len() > COALESCE_LIMIT {
                break;
            }
            batch.extend_from_slice(frame);
            self.frames.pop_front();
        }
        self.bytes -= batch.len().min(self.bytes);
        self.budget.give_back(batch.len());
        batch
    }

    /// Drops everything waiting (the connection is cut).
    pub(crate) fn clear(&mut self) {
        self.frames.clear();
        self.budget.give_back(self.bytes);
        self.bytes = 0;
    }
}

impl Drop for Queue {
    /// What is still queued when the client's queue goes is given back.
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn all_queues_together_stay_within_the_budget() {
        let budget = QueueBudget::new(10_000);
        let (mut a, mut b) = (Queue::new(Arc::clone(&budget)), Queue::new(Arc::clone(&budget)));
        assert_eq!(a.try_append(vec![0; 6_000], 1 << 20), Ok(6_000));
        assert_eq!(b.try_append(vec![0; 6_000], 1 << 20), Err(PushError::Full), "b is empty, the budget is not");
        assert_eq!(b.try_append(vec![0; 4_000], 1 << 20), Ok(4_000));
        assert_eq!(budget.used(), 10_000);
        drop(a);
        assert_eq!(budget.used(), 4_000, "a departed client's queue is given back");
        assert_eq!(b.try_append(vec![0; 6_000], 1 << 20), Ok(10_000), "offsets count every byte ever queued");
    }

    #[test]
    fn batches_keep_frames_whole_and_in_order_and_give_their_bytes_back() {
        let budget = QueueBudget::new(usize::MAX);
        let mut queue = Queue::new(Arc::clone(&budget));
        for byte in 0..3u8 {
            queue.try_append(vec![byte; 40_000], usize::MAX).unwrap();
        }
        let first = queue.take_batch();
        assert_eq!(first, vec![0; 40_000], "a second frame would pass the coalesce limit");
        assert_eq!((queue.bytes(), budget.used()), (80_000, 80_000));
        queue.put_back(first);
        assert_eq!(queue.take_batch()[0], 0, "put back at the front");
        queue.clear();
        assert!(queue.is_empty() || queue.bytes() == 0);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn one_queue_stays_within_its_own_limit() {
        let mut queue = Queue::new(QueueBudget::new(usize::MAX));
        assert!(queue.try_append(vec![0; 600], 1_000).is_ok());
        assert_eq!(queue.try_append(vec![0; 600], 1_000), Err(PushError::Full));
        assert_eq!(queue.force_append(vec![0; 600]), 1_200, "a last frame goes in whatever the limit");
    }
}
