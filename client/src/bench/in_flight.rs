//! In-flight tracking for batches whose answers come in any order.

/// The request ids of one batch still waiting for their answer, for `message`, whose
/// answers come in any order: the server answers `queue_full` or `no_such_client` at
/// once, ahead of deliveries still waiting for the receiver's ack. One bit per request;
/// the words are reused from batch to batch, so a batch allocates nothing.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    /// The batch's first request id; the others follow it (skipping 0 when they wrap).
    first: u32,
    /// Requests in the batch.
    len: u32,
    /// Bit `i` set: request `first + i` is still waiting.
    waiting: Vec<u64>,
}

impl InFlight {
    /// A new batch of `len` requests numbered from `first`, all waiting.
    #[inline]
    pub(super) fn start(&mut self, first: u32, len: u32) {
        self.first = first;
        self.len = len;
        self.waiting.clear();
        self.waiting.resize(len.div_ceil(64) as usize, u64::MAX);
        let tail = len % 64;
        if let Some(last) = self.waiting.last_mut().filter(|_| tail != 0) {
            *last = (1 << tail) - 1;
        }
    }

    /// Ticks off the answer to `id`; `false` if `id` is no request of the batch still waiting.
    #[inline]
    pub(super) fn answer(&mut self, id: u32) -> bool {
        if id == 0 {
            return false;
        }
        // Ids skip 0 when they wrap: …, u32::MAX, 1, 2, …
        let offset = if id >= self.first { id - self.first } else { (u32::MAX - self.first) + id };
        if offset >= self.len {
            return false;
        }
        let (word, bit) = ((offset / 64) as usize, 1u64 << (offset % 64));
        match self.waiting.get_mut(word) {
            Some(waiting) if *waiting & bit != 0 => {
                *waiting &= !bit;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_answers_are_ticked_off_in_any_order() {
        let mut batch = InFlight::default();
        batch.start(5, 70);
        // queue_full answers first, deliveries later: any order is fine.
        for id in (5..75).rev() {
            assert!(batch.answer(id), "#{id}");
        }
        assert!(batch.waiting.iter().all(|&w| w == 0));
        // Twice, before the batch, after it, or 0: not a request still waiting.
        batch.start(75, 3);
        assert!(batch.answer(76));
        for stray in [76, 74, 78, 0, u32::MAX] {
            assert!(!batch.answer(stray), "#{stray}");
        }
        // Ids skip 0 when they wrap.
        batch.start(u32::MAX - 1, 4);
        for id in [2, u32::MAX, 1, u32::MAX - 1] {
            assert!(batch.answer(id), "#{id}");
        }
        assert!(!batch.answer(3));
    }
}
