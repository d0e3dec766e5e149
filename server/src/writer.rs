//! Writing to a client: the only code that writes to a client's socket.
//!
//! Each client has an [`Writer`]. Its own connection thread writes its own
//! frames (hello, responses, pings, errors) directly with
//! [`Writer::write_now`]: if the client does not read, that thread blocks —
//! TCP backpressure on the one client causing it — until the write timeout
//! disconnects it as a slow consumer. Frames from *other* threads (messages
//! forwarded to this client, delivery receipts, the shutdown notice) are
//! queued instead, and a short-lived flusher thread (`client-<id>-tx`) writes
//! them out and exits when the queue is empty. A sender therefore never
//! blocks on someone else's socket: if the target stops reading, its queue
//! fills up (a byte limit) and the sender is told. A write lock keeps every
//! frame whole, whichever thread writes it.
//!
//! **Invariant: one writer at a time.** Every byte of a client's socket is
//! written while holding its write lock, so at any moment at most one thread
//! writes, and a frame is never interleaved with another. The writing thread
//! is not always the same one (the connection thread, a pushing thread's
//! kick, or the flusher): the connection thread spends its time blocked in
//! `read`, and nothing portable wakes a blocking read to hand it queued
//! frames. Making it the sole owner would mean waiting in `poll` on the
//! socket and a wake-up descriptor instead, a system call more per request
//! and two more descriptors per client; the event engine
//! ([`crate::events`]) is that design, with one owner per socket for life.
//!
//! Why not a writer thread per client: with two threads per client, 10,000
//! clients need 20,000 threads, beyond Linux's default limit of 65,530 memory
//! mappings per process (each thread takes about four). Idle clients now cost
//! one thread.
//!
//! Fast paths, measured in docs/BENCHMARKS.md (without them every message to
//! an idle client started a thread: 4.4k relayed messages/s at 50 clients):
//! - *Kick* (Linux): after queueing, the pushing thread writes what is queued
//!   itself with one non-blocking `send` (`MSG_DONTWAIT`) when nobody else
//!   is writing to that socket; only what the socket cannot take goes to the
//!   flusher. The sender still never waits on someone else's socket: the
//!   write lock is only *tried*, and the send never blocks. When the socket
//!   took part of a frame, the rest (the *torn* tail) is written before
//!   anything else by whoever writes next, so frames stay whole.
//! - *Owner drains*: if the client's own thread holds the write lock, the
//!   pusher leaves the frame queued: that thread writes what others queued
//!   before it lets go of the lock (checked under the state lock, so nothing
//!   is left behind). Blocking there is its own client's backpressure.
//! - *Cork*: while a connection thread handles one read's worth of frames
//!   ([`cork`]), what it pushes to other clients only queues; each outbox it
//!   touched is kicked once at the end, so a pipelined burst of 16 messages
//!   to one client leaves in one `send`, not 16.

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::queue::{Origin, PushError, Queue, QueueBudget};

/// How long [`Writer::close`] waits for queued frames when the socket has
/// no write timeout.
const DEFAULT_PATIENCE: Duration = Duration::from_secs(10);

/// A handle to write to one client. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    inner: Arc<Inner>,
}

struct Inner {
    id: u32,
    stream: Arc<TcpStream>,
    /// Held while writing, so frames from different threads never interleave.
    write_lock: Mutex<()>,
    state: Mutex<State>,
    /// Notified when the flusher stops.
    idle: Condvar,
    /// The most bytes [`Writer::try_push`] lets wait in the queue.
    max_bytes: usize,
    /// `--write-timeout`: how long output may stay owed before the client is
    /// cut off as a slow consumer.
    write_timeout: Duration,
    /// The socket's send timeout now, in nanoseconds (writes are serialised
    /// by `write_lock`, so this only saves system calls).
    send_wait_nanos: AtomicU64,
    /// How many queued bytes the socket has taken, ever: a queued frame has
    /// been completely written once this reaches the end offset its push
    /// returned (what a delivery's ack is checked against).
    queue_written: AtomicU64,
}

struct State {
    queue: Queue,
    /// A flusher thread is running.
    flushing: bool,
    /// The flusher sends FIN after the last queued frame (server shutdown).
    fin_after: bool,
    /// Frames are queued but not written until [`Writer::resume`].
    paused: bool,
    /// The unsent tail of a frame a non-blocking send wrote only in part:
    /// the next write to the socket must start with it.
    torn: Option<Vec<u8>>,
    /// Since when output has been owed without a break: the write timeout
    /// runs from here, however the writes in between progress.
    owed_since: Option<Instant>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Writer(client {}, {} bytes queued)", self.inner.id, self.inner.lock().queue.bytes())
    }
}

impl Writer {
    /// The outbox of client `id`, writing to `stream`; at most `max_bytes`
    /// of frames from other clients may wait in it, and no more than
    /// `budget` allows in all queues together. It starts paused: frames
    /// from other threads wait until [`resume`](Self::resume), so the
    /// connection thread can write its hello first.
    pub fn new(id: u32, stream: Arc<TcpStream>, max_bytes: usize, budget: Arc<QueueBudget>) -> Writer {
        let write_timeout = stream.write_timeout().ok().flatten().unwrap_or(DEFAULT_PATIENCE);
        let inner = Inner {
            id,
            stream,
            write_lock: Mutex::new(()),
            state: Mutex::new(State::new(Queue::new(budget))),
            idle: Condvar::new(),
            max_bytes,
            write_timeout,
            send_wait_nanos: AtomicU64::new(nanos(write_timeout)),
            queue_written: AtomicU64::new(0),
        };
        Writer { inner: Arc::new(inner) }
    }

    /// Writes `bytes` now, from the client's own connection thread, followed
    /// by whatever other threads queued meanwhile. Blocks while the client is
    /// not reading, up to the socket's write timeout.
    pub fn write_now(&self, bytes: &[u8]) -> io::Result<()> {
        let guard = self.inner.write_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (torn, deadline) = self.inner.owe();
        if let Some(torn) = torn {
            self.inner.write_queued_by(&torn, deadline)?;
        }
        self.inner.write_all_by(bytes, deadline)?;
        // Frames others queued while we held the lock: a pusher that found the
        // lock taken left them to us. Let go of the write lock only while
        // holding the state lock with the queue seen empty, so none is missed.
        // A running flusher keeps the queue to itself: it may hold a batch
        // taken off the front already, and a later one must not overtake it.
        loop {
            let mut state = self.inner.lock();
            if state.queue.is_empty() || state.paused || state.flushing {
                if !state.flushing {
                    state.owed_since = None; // everything owed is in the socket
                }
                drop(guard);
                drop(state);
                return Ok(());
            }
            let batch = state.queue.take_batch();
            drop(state);
            self.inner.write_queued_by(&batch, deadline)?;
        }
    }

    /// Queues a frame from another client's thread without waiting; refused
    /// when the client already has `max_bytes` waiting, or is leaving.
    /// `queued` is called with the frame's end offset before any of it can
    /// be written (it has been completely written once
    /// [`written`](Self::written) reaches that offset).
    pub fn try_push(&self, bytes: Vec<u8>, queued: impl FnOnce(u64)) -> Result<(), PushError> {
        self.enqueue(bytes, Origin::Others, queued)
    }

    /// Queues a frame without waiting and with a looser limit (a response
    /// completed on another thread, e.g. a delivery receipt); taken until
    /// the client is gone, also while it is leaving.
    pub fn offer(&self, bytes: Vec<u8>) -> Result<(), PushError> {
        self.enqueue(bytes, Origin::Owed, |_| {})
    }

    /// How many queued bytes the socket has taken so far (see [`try_push`](Self::try_push)).
    pub fn written(&self) -> u64 {
        self.inner.queue_written.load(Ordering::Acquire)
    }

    /// Waits until no write to the socket is in progress. Bytes are counted
    /// in [`written`](Self::written) before the writer lets go, so a frame
    /// that a write in progress was handing to the socket is counted after this.
    pub fn wait_for_writer(&self) {
        drop(self.inner.write_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    }

    /// The client is leaving: frames from other clients are refused from now
    /// on ([`PushError::Gone`]); answers it is owed are still taken.
    pub fn refuse_messages(&self) {
        self.inner.lock().queue.refuse_messages();
    }

    /// Server shutdown: queue `notice` after whatever is waiting, then FIN.
    pub fn shutdown_with(&self, notice: Vec<u8>) {
        let mut state = self.inner.lock();
        if state.queue.is_closed() {
            return;
        }
        state.fin_after = true;
        state.queue.force_append(notice);
        self.ensure_flusher(state);
    }

    /// Cuts the connection in both directions (shutdown's grace is over):
    /// blocked reads and writes on it fail at once.
    pub fn cut(&self) {
        let _ = self.inner.stream.shutdown(Shutdown::Both);
    }

    /// Lets queued frames be written (after the hello).
    pub fn resume(&self) {
        let mut state = self.inner.lock();
        state.paused = false;
        self.kick(state);
    }

    /// Accepts no more frames from other threads: they get
    /// [`PushError::Gone`]. What is queued is still written.
    pub fn refuse_more(&self) {
        self.inner.lock().queue.close();
    }

    /// The client's last frame (an error), from its own thread once it
    /// refuses more: queued behind what others queued and written by a
    /// flusher, so that [`close`](Self::close) bounds the wait for all of it.
    pub fn push_last(&self, bytes: Vec<u8>) {
        let mut state = self.inner.lock();
        state.queue.force_append(bytes);
        self.ensure_flusher(state);
    }

    /// Accepts no more frames and waits until the flusher (if any) is done,
    /// for at most the socket's write timeout in all: a client that reads
    /// just often enough that no single write times out would otherwise
    /// hold the flusher, and this thread, indefinitely. Past that the socket
    /// is shut down, which fails the flusher's write at once.
    pub fn close(&self) {
        let patience = self.inner.stream.write_timeout().ok().flatten().unwrap_or(DEFAULT_PATIENCE);
        let mut state = self.inner.lock();
        state.queue.close();
        let (mut state, waited) = self
            .inner
            .idle
            .wait_timeout_while(state, patience, |state| state.flushing)
            .unwrap_or_else(|e| e.into_inner());
        if waited.timed_out() {
            tracing::warn!(client = self.inner.id, "queued frames still not written after {patience:?}: cutting off");
            let _ = self.inner.stream.shutdown(Shutdown::Both);
            while state.flushing {
                state = self.inner.idle.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    fn enqueue(&self, bytes: Vec<u8>, origin: Origin, queued: impl FnOnce(u64)) -> Result<(), PushError> {
        let mut state = self.inner.lock();
        let end = state.queue.admit(bytes, origin, self.inner.max_bytes)?;
        queued(end);
        let corked = CORKED.with_borrow_mut(|corked| match corked {
            Some(outboxes) => {
                if !outboxes.iter().any(|o| Arc::ptr_eq(&o.inner, &self.inner)) {
                    outboxes.push(self.clone());
                }
                true
            }
            None => false,
        });
        if !corked {
            self.kick(state);
        }
        Ok(())
    }

    /// Gets what is queued written: by this thread at once if the socket is
    /// free and takes it (Linux), else by the client's own thread (if it is
    /// writing) or a flusher.
    fn kick(&self, mut state: MutexGuard<'_, State>) {
        if state.queue.is_empty() || state.flushing || state.paused || state.queue.is_closed() {
            return; // nothing to do, or someone will do it
        }
        let Ok(write_guard) = self.inner.write_lock.try_lock() else {
            // The client's own thread is writing (flushers set `flushing`, and
            // other kickers hold the state lock): it drains the queue before
            // it lets go of the lock.
            return;
        };
        if state.torn.is_none() {
            while !state.queue.is_empty() {
                let batch = state.queue.take_batch();
                let sent = send_without_blocking(&self.inner.stream, &batch);
                if let Some(sent) = sent {
                    self.inner.queue_written.fetch_add(sent as u64, Ordering::Release);
                }
                match sent {
                    Some(sent) if sent == batch.len() => continue,
                    Some(sent) if sent > 0 => {
                        state.torn = Some(batch[sent..].to_vec());
                        break;
                    }
                    // Nothing sent (full, an error, or no non-blocking send
                    // here): put it back for the flusher.
                    _ => {
                        state.queue.put_back(batch);
                        break;
                    }
                }
            }
        }
        drop(write_guard);
        if state.queue.is_empty() && state.torn.is_none() {
            state.owed_since = None;
            if state.fin_after {
                // The shutdown notice was queued while the outbox was paused
                // (no flusher then) and has just left: the FIN follows it.
                let _ = self.inner.stream.shutdown(Shutdown::Write);
            }
            return;
        }
        self.ensure_flusher(state);
    }

    /// Starts a flusher unless one runs. If no thread can be started, the
    /// frames stay queued: the client's own thread writes them with its next
    /// frame (a reply or a heartbeat ping), and a message nobody acknowledges
    /// in time is answered `not_acknowledged` as usual.
    fn ensure_flusher(&self, mut state: MutexGuard<'_, State>) {
        if state.flushing || state.paused {
            return;
        }
        state.flushing = true;
        drop(state);
        let inner = Arc::clone(&self.inner);
        let started = thread::Builder::new()
            .name(format!("client-{}-tx", self.inner.id))
            .stack_size(crate::config::CONNECTION_STACK)
            .spawn(move || inner.flush_queue());
        if let Err(err) = started {
            tracing::error!(client = self.inner.id, "cannot start a thread to write queued frames, they wait: {err}");
            self.inner.lock().flushing = false;
            self.inner.idle.notify_all();
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The flusher's write: `bytes` (after a torn tail, if one is waiting),
    /// blocking until the owed output's deadline at most.
    fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let _guard = self.write_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (torn, deadline) = self.owe();
        if let Some(torn) = torn {
            self.write_queued_by(&torn, deadline)?;
        }
        self.write_queued_by(bytes, deadline)
    }

    /// [`write_all_by`](Self::write_all_by) for bytes taken off the queue:
    /// counts them as written once the socket has taken them all.
    fn write_queued_by(&self, bytes: &[u8], deadline: Instant) -> io::Result<()> {
        self.write_all_by(bytes, deadline)?;
        self.queue_written.fetch_add(bytes.len() as u64, Ordering::Release);
        Ok(())
    }

    /// A writer (holding `write_lock`) starts: takes the torn tail, if any,
    /// and returns the deadline of the output owed, which starts now unless
    /// output was owed already.
    fn owe(&self) -> (Option<Vec<u8>>, Instant) {
        let mut state = self.lock();
        let since = *state.owed_since.get_or_insert_with(Instant::now);
        (state.torn.take(), since + self.write_timeout)
    }

    /// Writes all of `bytes` by `deadline`, with the socket's send timeout
    /// shrunk to what is left before each `send`: a reader that takes a
    /// trickle cannot stretch `--write-timeout` by letting every `send` make a
    /// little progress (each used to get the whole timeout anew).
    fn write_all_by(&self, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
        while !bytes.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::WouldBlock, "output owed for longer than the write timeout"));
            }
            self.limit_send_wait(left)?;
            match (&*self.stream).write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(sent) => bytes = &bytes[sent..],
                // The loop checks the deadline again. (On Windows a timed-out
                // send leaves the socket in an undefined state: it is final.)
                Err(err) if is_timeout(&err) && cfg!(unix) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Makes a blocked `send` return after about `left` (within 1 ms). The
    /// socket's timeout is changed only when it differs from that by more,
    /// so a client that reads, whose writes each start a fresh deadline,
    /// costs no extra system call.
    fn limit_send_wait(&self, left: Duration) -> io::Result<()> {
        let now = self.send_wait_nanos.load(Ordering::Relaxed);
        let wanted = nanos(left);
        if wanted.abs_diff(now) > 1_000_000 {
            self.stream.set_write_timeout(Some(left))?;
            self.send_wait_nanos.store(wanted, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The flusher thread: writes queued frames in batches until none are left.
    fn flush_queue(&self) {
        loop {
            let (batch, fin) = {
                let mut state = self.lock();
                if state.queue.is_empty() && state.torn.is_none() {
                    let fin = state.fin_after;
                    state.flushing = false;
                    state.owed_since = None;
                    self.idle.notify_all();
                    drop(state);
                    if fin {
                        let _ = self.stream.shutdown(Shutdown::Write);
                    }
                    return;
                }
                (state.queue.take_batch(), state.fin_after)
            };
            if let Err(err) = self.write(&batch) {
                self.fail(&err, fin);
                return;
            }
        }
    }

    /// A write failed or stayed blocked past the write timeout: drop what is
    /// queued and cut the connection, which also ends the client's reader.
    fn fail(&self, err: &io::Error, shutting_down: bool) {
        if is_timeout(err) && !shutting_down {
            tracing::warn!(client = self.id, "disconnecting a slow consumer: a write stayed blocked ({err})");
        } else {
            tracing::debug!(client = self.id, "write failed: {err}");
        }
        let _ = self.stream.shutdown(Shutdown::Both);
        let mut state = self.lock();
        state.queue.close();
        state.queue.clear();
        state.torn = None;
        state.flushing = false;
        self.idle.notify_all();
    }
}

impl State {
    /// A paused state (see [`Writer::new`]) around an empty queue.
    fn new(queue: Queue) -> State {
        State { queue, flushing: false, fin_after: false, paused: true, torn: None, owed_since: None }
    }
}

/// `duration` in nanoseconds, saturating (for [`Inner::send_wait_nanos`]).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Sends as much of `bytes` as the socket takes without blocking; `None` if
/// nothing could be sent (or this platform has no non-blocking send on a
/// blocking socket).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_without_blocking(stream: &TcpStream, bytes: &[u8]) -> Option<usize> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    socket2::SockRef::from(stream).send_with_flags(bytes, flags).ok().filter(|&sent| sent > 0)
}

/// Without `MSG_DONTWAIT`, queued frames are written by a flusher thread.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_without_blocking(_stream: &TcpStream, _bytes: &[u8]) -> Option<usize> {
    None
}

thread_local! {
    /// The outboxes this thread pushed to while corked (`None`: not corked).
    static CORKED: RefCell<Option<Vec<Writer>>> = const { RefCell::new(None) };
}

/// Holds back what this thread pushes to other clients until the returned
/// [`Cork`] is dropped; then each outbox it pushed to is written once.
pub(crate) fn cork() -> Cork {
    CORKED.with_borrow_mut(|corked| {
        corked.get_or_insert_with(Vec::new);
    });
    Cork(())
}

/// See [`cork`].
pub(crate) struct Cork(());

impl Drop for Cork {
    fn drop(&mut self) {
        let outboxes = CORKED.with_borrow_mut(Option::take).unwrap_or_default();
        kick_all(outboxes);
    }
}

/// Writes, while staying corked, what this thread has pushed to other
/// clients so far: before it blocks in a long write of its own replies,
/// frames for others must not wait behind it.
pub(crate) fn release_corked() {
    let outboxes = CORKED.with_borrow_mut(|corked| corked.as_mut().map(std::mem::take).unwrap_or_default());
    kick_all(outboxes);
}

fn kick_all(outboxes: Vec<Writer>) {
    for outbox in outboxes {
        let state = outbox.inner.lock();
        outbox.kick(state);
    }
}

/// True for the errors a blocked write with a timeout returns.
pub fn is_timeout(err: &io::Error) -> bool {
    tnlm_core::net::is_socket_timeout(err)
}
