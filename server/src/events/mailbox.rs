//! A client's outbox in the event engine: frames from other threads wait
//! here until the worker that owns the client's socket, woken for it,
//! moves them into the connection's output.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use mio::Token;

use crate::events::handle::WorkerHandle;
use crate::queue::{Origin, PushError, Queue, QueueBudget};

/// The queue to one client of the event engine. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Mailbox {
    inner: Arc<Inner>,
}

struct Inner {
    id: u32,
    /// The connection's token on its worker.
    token: Token,
    worker: Arc<WorkerHandle>,
    /// The most bytes [`Mailbox::try_push`] lets wait.
    max_bytes: usize,
    state: Mutex<State>,
    /// How many queued bytes the socket has taken (set by the worker).
    written: AtomicU64,
}

struct State {
    queue: Queue,
    /// Server shutdown: FIN once everything queued is written.
    fin_after: bool,
    /// Cut the connection now (shutdown's grace is over).
    cut: bool,
    /// The worker has been told to look here and has not yet.
    notified: bool,
}

/// What the worker found in a mailbox, besides the frames it moved out.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Signals {
    /// Send FIN once the output is written (server shutdown).
    pub(crate) fin_after: bool,
    /// Cut the connection now.
    pub(crate) cut: bool,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mailbox(client {}, {} bytes queued)", self.inner.id, self.inner.lock().queue.bytes())
    }
}

impl Mailbox {
    /// The mailbox of client `id`, served as `token` by `worker`; at most
    /// `max_bytes` of frames from other clients wait in it, within `budget`.
    pub(crate) fn new(
        id: u32,
        token: Token,
        worker: Arc<WorkerHandle>,
        max_bytes: usize,
        budget: Arc<QueueBudget>,
    ) -> Mailbox {
        let state = State { queue: Queue::new(budget), fin_after: false, cut: false, notified: false };
        let inner = Inner { id, token, worker, max_bytes, state: Mutex::new(state), written: AtomicU64::new(0) };
        Mailbox { inner: Arc::new(inner) }
    }

    /// See [`Outbox::try_push`](crate::outbox::Outbox::try_push).
    pub(crate) fn try_push(&self, bytes: Vec<u8>, queued: impl FnOnce(u64)) -> Result<(), PushError> {
        self.enqueue(bytes, Origin::Others, queued)
    }

    /// See [`Outbox::offer`](crate::outbox::Outbox::offer).
    pub(crate) fn offer(&self, bytes: Vec<u8>) -> Result<(), PushError> {
        self.enqueue(bytes, Origin::Owed, |_| {})
    }

    /// How many queued bytes the socket has taken.
    pub(crate) fn written(&self) -> u64 {
        self.inner.written.load(Ordering::Acquire)
    }

    /// See [`Outbox::refuse_messages`](crate::outbox::Outbox::refuse_messages).
    pub(crate) fn refuse_messages(&self) {
        self.inner.lock().queue.refuse_messages();
    }

    /// Queues the shutdown notice after whatever waits; FIN follows it.
    pub(crate) fn shutdown_with(&self, notice: Vec<u8>) {
        let mut state = self.inner.lock();
        if state.queue.is_closed() {
            return;
        }
        state.queue.force_append(notice);
        state.fin_after = true;
        self.notify(&mut state);
    }

    /// Has the worker cut the connection at its next turn.
    pub(crate) fn cut(&self) {
        let mut state = self.inner.lock();
        state.cut = true;
        self.notify(&mut state);
    }

    /// The worker: takes no frames from anyone any more (what is queued
    /// can still be moved out).
    pub(crate) fn close(&self) {
        self.inner.lock().queue.close();
    }

    /// The worker, woken: what it was woken for (besides frames to take).
    pub(crate) fn signals(&self) -> Signals {
        let mut state = self.inner.lock();
        state.notified = false;
        Signals { fin_after: state.fin_after, cut: state.cut }
    }

    /// The worker, once the socket has taken everything before: the next
    /// batch of queued frames and the queue offset it ends at. Frames stay
    /// queued (and counted against the limits) until the socket can take
    /// them, as in the thread engine.
    pub(crate) fn take_batch(&self) -> Option<(Vec<u8>, u64)> {
        let mut state = self.inner.lock();
        if state.queue.is_empty() {
            return None;
        }
        let batch = state.queue.take_batch();
        Some((batch, state.queue.taken_total()))
    }

    /// The worker: the client's last frame (an error), queued behind what
    /// others queued, whatever the limits and even once closed.
    pub(crate) fn push_last(&self, bytes: Vec<u8>) {
        self.inner.lock().queue.force_append(bytes);
    }

    /// The worker: the socket has taken the queued bytes up to `offset`.
    pub(crate) fn set_written(&self, offset: u64) {
        self.inner.written.store(offset, Ordering::Release);
    }

    fn enqueue(&self, bytes: Vec<u8>, origin: Origin, queued: impl FnOnce(u64)) -> Result<(), PushError> {
        let mut state = self.inner.lock();
        let end = state.queue.admit(bytes, origin, self.inner.max_bytes)?;
        // Under the lock: the worker cannot take the frame before `queued` has run.
        queued(end);
        self.notify(&mut state);
        Ok(())
    }

    /// Tells the owning worker to look here, once until it has.
    fn notify(&self, state: &mut State) {
        if !state.notified {
            state.notified = true;
            self.inner.worker.wake(self.inner.token);
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
