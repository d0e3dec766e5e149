//! One client's queue of frames from elsewhere (messages forwarded to it,
//! receipts it is owed, the shutdown notice), with the limits that keep a
//! client that does not read from costing more than its share: the
//! per-client limit (`--queue-bytes`) and the [`Budget`] of all queues
//! together (`--queue-total`).
//!
//! The [`Hub`](crate::proto::hub::Hub) owns every queue; a client's
//! [`Conn`](crate::proto::conn::Conn) takes batches out of it when its
//! socket can take them, so frames wait here, counted, until then. Offsets
//! count every byte ever queued: an ack is checked against how far the
//! socket has taken the queue.

use std::collections::VecDeque;

/// Queued frames are handed to the connection in batches of about this many bytes.
pub const COALESCE_LIMIT: usize = 64 * 1024;

/// How much more than `--queue-bytes` the answers a client is owed may take
/// in its queue (receipts are small, and each answers a message it sent).
pub const OWED_FACTOR: usize = 16;

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue (or all queues together) is full: the client is not
    /// reading fast enough.
    Full,
    /// The client is gone, or leaving and refusing messages.
    Gone,
}

/// Where a frame for a client comes from, which decides its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A message from another client: within `--queue-bytes` and the budget.
    Others,
    /// An answer the client is owed (a receipt): within [`OWED_FACTOR`] ×
    /// `--queue-bytes` of its own, whatever the budget, also while it leaves.
    Owed,
    /// The shutdown notice: whatever the limits, until the queue is closed.
    Notice,
}

/// The bytes waiting in every queue together, and their limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    used: usize,
    limit: usize,
}

impl Budget {
    /// A budget of `limit` bytes for all queues together.
    pub fn new(limit: usize) -> Budget {
        Budget { used: 0, limit }
    }

    /// Bytes queued in all queues now.
    pub fn used(&self) -> usize {
        self.used
    }

    /// The limit (`--queue-total`).
    pub fn limit(&self) -> usize {
        self.limit
    }

    fn try_take(&mut self, n: usize) -> bool {
        match self.used.checked_add(n) {
            Some(used) if used <= self.limit => {
                self.used = used;
                true
            }
            _ => false,
        }
    }

    fn take(&mut self, n: usize) {
        self.used = self.used.saturating_add(n);
    }

    fn give_back(&mut self, n: usize) {
        self.used = self.used.saturating_sub(n);
    }
}

/// One client's queued frames (encoded), in order, with their byte count and
/// the offsets acks are checked against. Every byte in it is counted in the
/// hub's [`Budget`]; the hub passes the budget to each call that changes it.
#[derive(Debug, Default)]
pub struct Queue {
    /// Frames from other clients are refused (the client is leaving).
    refusing_messages: bool,
    /// Nothing is taken any more.
    closed: bool,
    frames: VecDeque<Vec<u8>>,
    bytes: usize,
    /// How many bytes were ever queued: the end offset of the last frame.
    queued_total: u64,
}

impl Queue {
    /// Takes a frame from `origin` if its limit allows (see [`Origin`]);
    /// `max_bytes` is `--queue-bytes`. Returns the frame's end offset.
    pub fn admit(
        &mut self,
        frame: Vec<u8>,
        origin: Origin,
        max_bytes: usize,
        budget: &mut Budget,
    ) -> Result<u64, PushError> {
        if self.closed || (origin == Origin::Others && self.refusing_messages) {
            return Err(PushError::Gone);
        }
        let fits = |limit: usize| self.bytes.saturating_add(frame.len()) <= limit;
        match origin {
            Origin::Others if !fits(max_bytes) || !budget.try_take(frame.len()) => return Err(PushError::Full),
            Origin::Owed if !fits(max_bytes.saturating_mul(OWED_FACTOR)) => return Err(PushError::Full),
            Origin::Others => {}
            Origin::Owed | Origin::Notice => budget.take(frame.len()),
        }
        self.bytes += frame.len();
        self.queued_total += frame.len() as u64;
        self.frames.push_back(frame);
        Ok(self.queued_total)
    }

    /// The client is leaving: messages from others are refused from now on.
    pub fn refuse_messages(&mut self) {
        self.refusing_messages = true;
    }

    /// Nothing more is admitted; what waits can still be taken.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// True once [`close`](Self::close)d.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Takes frames off the front, up to about [`COALESCE_LIMIT`] bytes, as
    /// one buffer (a lone frame is moved, not copied), gives their bytes back
    /// to `budget`, and returns them with the queue offset they end at.
    pub fn take_batch(&mut self, budget: &mut Budget) -> Option<(Vec<u8>, u64)> {
        let mut batch = self.frames.pop_front()?;
        while let Some(frame) = self.frames.front() {
            if batch.len() + frame.len() > COALESCE_LIMIT {
                break;
            }
            batch.extend_from_slice(frame);
            self.frames.pop_front();
        }
        self.bytes -= batch.len().min(self.bytes);
        budget.give_back(batch.len());
        Some((batch, self.queued_total - self.bytes as u64))
    }

    /// Drops everything waiting and closes (the client is gone), giving the
    /// bytes back to `budget`.
    pub fn clear(&mut self, budget: &mut Budget) {
        self.frames.clear();
        budget.give_back(self.bytes);
        self.bytes = 0;
        self.closed = true;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn all_queues_together_stay_within_the_budget() {
        let mut budget = Budget::new(10_000);
        let (mut a, mut b) = (Queue::default(), Queue::default());
        assert_eq!(a.admit(vec![0; 6_000], Origin::Others, 1 << 20, &mut budget), Ok(6_000));
        assert_eq!(b.admit(vec![0; 6_000], Origin::Others, 1 << 20, &mut budget), Err(PushError::Full));
        assert_eq!(b.admit(vec![0; 4_000], Origin::Others, 1 << 20, &mut budget), Ok(4_000));
        assert_eq!(budget.used(), 10_000);
        a.clear(&mut budget);
        assert_eq!(budget.used(), 4_000, "a departed client's queue is given back");
        assert_eq!(b.admit(vec![0; 6_000], Origin::Others, 1 << 20, &mut budget), Ok(10_000));
    }

    #[test]
    fn receipts_get_a_looser_limit_and_ignore_the_budget() {
        let mut budget = Budget::new(100);
        let mut queue = Queue::default();
        assert_eq!(queue.admit(vec![0; 100], Origin::Others, 100, &mut budget), Ok(100));
        assert_eq!(queue.admit(vec![0; 1], Origin::Others, 100, &mut budget), Err(PushError::Full));
        assert_eq!(queue.admit(vec![0; 1_000], Origin::Owed, 100, &mut budget), Ok(1_100));
        assert_eq!(queue.admit(vec![0; 600], Origin::Owed, 100, &mut budget), Err(PushError::Full), "16 × 100");
        queue.refuse_messages();
        assert_eq!(queue.admit(vec![0; 1], Origin::Others, 100, &mut budget), Err(PushError::Gone));
        assert!(queue.admit(vec![0; 1], Origin::Owed, 100, &mut budget).is_ok(), "still owed while leaving");
        queue.close();
        assert_eq!(queue.admit(vec![0; 1], Origin::Notice, 100, &mut budget), Err(PushError::Gone));
    }

    #[test]
    fn batches_keep_frames_whole_and_in_order_and_give_their_bytes_back() {
        let mut budget = Budget::new(usize::MAX);
        let mut queue = Queue::default();
        for byte in 0..3u8 {
            queue.admit(vec![byte; 40_000], Origin::Others, usize::MAX, &mut budget).unwrap();
        }
        let (first, end) = queue.take_batch(&mut budget).unwrap();
        assert_eq!((first, end), (vec![0; 40_000], 40_000), "a second frame would pass the coalesce limit");
        assert_eq!((queue.bytes(), budget.used()), (80_000, 80_000));
        queue.clear(&mut budget);
        assert_eq!(budget.used(), 0);
        assert!(queue.take_batch(&mut budget).is_none());
    }
}
