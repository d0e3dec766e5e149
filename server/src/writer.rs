//! Writing to a client: the only code that writes to a client's socket.
//!
//! Each client has an [`Outbox`]. Its own connection thread writes its own
//! frames (hello, responses, pings, errors) directly with
//! [`Outbox::write_now`]: if the client does not read, that thread blocks —
//! TCP backpressure on the one client causing it — until the write timeout
//! disconnects it as a slow consumer. Frames from *other* threads (messages
//! forwarded to this client, delivery receipts, the shutdown notice) are
//! queued instead, and a short-lived flusher thread (`client-<id>-tx`) writes
//! them out and exits when the queue is empty. A sender therefore never
//! blocks on someone else's socket: if the target stops reading, its queue
//! fills up (a byte limit) and the sender is told. A write lock keeps every
//! frame whole, whichever thread writes it.
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
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use tnlm_core::Frame;

/// Queued frames are written in batches of about this many bytes.
const COALESCE_LIMIT: usize = 64 * 1024;
/// How long [`Outbox::close`] waits for queued frames when the socket has
/// no write timeout.
const DEFAULT_PATIENCE: Duration = Duration::from_secs(10);

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue is full: the client is not reading fast enough.
    Full,
    /// The client is gone (or its connection is closing).
    Gone,
}

/// A handle to write to one client. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
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
    /// The most bytes [`Outbox::try_push`] lets wait in the queue.
    max_bytes: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Vec<u8>>,
    bytes: usize,
    /// A flusher thread is running.
    flushing: bool,
    /// No more frames are accepted.
    closed: bool,
    /// The flusher sends FIN after the last queued frame (server shutdown).
    fin_after: bool,
    /// Frames are queued but not written until [`Outbox::resume`].
    paused: bool,
    /// The unsent tail of a frame a non-blocking send wrote only in part:
    /// the next write to the socket must start with it.
    torn: Option<Vec<u8>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Outbox(client {}, {} bytes queued)", self.inner.id, self.inner.lock().bytes)
    }
}

impl Outbox {
    /// The outbox of client `id`, writing to `stream`; at most `max_bytes`
    /// of frames from other clients may wait in it. It starts paused: frames
    /// from other threads wait until [`resume`](Self::resume), so the
    /// connection thread can write its hello first.
    pub fn new(id: u32, stream: Arc<TcpStream>, max_bytes: usize) -> Outbox {
        let inner = Inner {
            id,
            stream,
            write_lock: Mutex::new(()),
            state: Mutex::new(State { paused: true, ..State::default() }),
            idle: Condvar::new(),
            max_bytes,
        };
        Outbox { inner: Arc::new(inner) }
    }

    /// The id of the client this outbox writes to.
    pub(crate) fn client_id(&self) -> u32 {
        self.inner.id
    }

    /// Writes `bytes` now, from the client's own connection thread, followed
    /// by whatever other threads queued meanwhile. Blocks while the client is
    /// not reading, up to the socket's write timeout.
    pub fn write_now(&self, bytes: &[u8]) -> io::Result<()> {
        let guard = self.inner.write_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let torn = self.inner.lock().torn.take();
        if let Some(torn) = torn {
            (&*self.inner.stream).write_all(&torn)?;
        }
        (&*self.inner.stream).write_all(bytes)?;
        // Frames others queued while we held the lock: a pusher that found the
        // lock taken left them to us. Let go of the write lock only while
        // holding the state lock with the queue seen empty, so none is missed.
        // A running flusher keeps the queue to itself: it may hold a batch
        // taken off the front already, and a later one must not overtake it.
        loop {
            let mut state = self.inner.lock();
            if state.queue.is_empty() || state.paused || state.flushing {
                drop(guard);
                drop(state);
                return Ok(());
            }
            let batch = take_batch(&mut state);
            drop(state);
            (&*self.inner.stream).write_all(&batch)?;
        }
    }

    /// Queues a frame from another client's thread without waiting; refused
    /// when the client already has `max_bytes` waiting.
    pub fn try_push(&self, bytes: Vec<u8>) -> Result<(), PushError> {
        self.enqueue(bytes, self.inner.max_bytes)
    }

    /// Queues a frame without waiting and with a looser limit (a response
    /// completed on another thread, e.g. a delivery receipt).
    pub fn offer(&self, bytes: Vec<u8>) -> Result<(), PushError> {
        self.enqueue(bytes, self.inner.max_bytes.saturating_mul(16))
    }

    /// Server shutdown: queue `notice` after whatever is waiting, then FIN.
    pub fn shutdown_with(&self, notice: Vec<u8>) {
        let mut state = self.inner.lock();
        if state.closed {
            return;
        }
        state.fin_after = true;
        state.bytes += notice.len();
        state.queue.push_back(notice);
        self.ensure_flusher(state);
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
        self.inner.lock().closed = true;
    }

    /// The client's last frame (an error), from its own thread once it
    /// refuses more: queued behind what others queued and written by a
    /// flusher, so that [`close`](Self::close) bounds the wait for all of it.
    pub fn push_last(&self, bytes: Vec<u8>) {
        let mut state = self.inner.lock();
        state.bytes += bytes.len();
        state.queue.push_back(bytes);
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
        state.closed = true;
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

    fn enqueue(&self, bytes: Vec<u8>, limit: usize) -> Result<(), PushError> {
        let mut state = self.inner.lock();
        if state.closed {
            return Err(PushError::Gone);
        }
        if state.bytes + bytes.len() > limit {
            return Err(PushError::Full);
        }
        state.bytes += bytes.len();
        state.queue.push_back(bytes);
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
        if state.queue.is_empty() || state.flushing || state.paused || state.closed {
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
                let batch = take_batch(&mut state);
                match send_without_blocking(&self.inner.stream, &batch) {
                    Some(sent) if sent == batch.len() => continue,
                    Some(sent) if sent > 0 => {
                        state.torn = Some(batch[sent..].to_vec());
                        break;
                    }
                    // Nothing sent (full, an error, or no non-blocking send
                    // here): put it back for the flusher.
                    _ => {
                        state.bytes += batch.len();
                        state.queue.push_front(batch);
                        break;
                    }
                }
            }
        }
        drop(write_guard);
        if state.queue.is_empty() && state.torn.is_none() {
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
            .stack_size(crate::server::CONNECTION_STACK)
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
    /// blocking up to the socket's write timeout.
    fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let _guard = self.write_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let torn = self.lock().torn.take();
        if let Some(torn) = torn {
            (&*self.stream).write_all(&torn)?;
        }
        (&*self.stream).write_all(bytes)
    }

    /// The flusher thread: writes queued frames in batches until none are left.
    fn flush_queue(&self) {
        loop {
            let (batch, fin) = {
                let mut state = self.lock();
                if state.queue.is_empty() && state.torn.is_none() {
                    let fin = state.fin_after;
                    state.flushing = false;
                    self.idle.notify_all();
                    drop(state);
                    if fin {
                        let _ = self.stream.shutdown(Shutdown::Write);
                    }
                    return;
                }
                (take_batch(&mut state), state.fin_after)
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
        state.closed = true;
        state.queue.clear();
        state.torn = None;
        state.bytes = 0;
        state.flushing = false;
        self.idle.notify_all();
    }
}

/// Takes queued frames off the front, up to about [`COALESCE_LIMIT`] bytes,
/// as one buffer (a lone frame is moved, not copied).
fn take_batch(state: &mut State) -> Vec<u8> {
    let mut batch = state.queue.pop_front().unwrap_or_default();
    while let Some(frame) = state.queue.front() {
        if batch.len() + frame.len() > COALESCE_LIMIT {
            break;
        }
        batch.extend_from_slice(frame);
        state.queue.pop_front();
    }
    state.bytes -= batch.len().min(state.bytes);
    batch
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
    static CORKED: RefCell<Option<Vec<Outbox>>> = const { RefCell::new(None) };
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

fn kick_all(outboxes: Vec<Outbox>) {
    for outbox in outboxes {
        let state = outbox.inner.lock();
        outbox.kick(state);
    }
}

/// True for the errors a blocked write with a timeout returns.
pub fn is_timeout(err: &io::Error) -> bool {
    tnlm_core::net::is_socket_timeout(err)
}

/// Encodes a frame the server built itself. Only a payload over 4 GiB could
/// fail (client text is size-checked when forwarded); then nothing is sent.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    if let Err(err) = frame.encode_into(&mut bytes, u32::MAX) {
        tracing::error!("cannot encode {}: {err}", frame.summary());
    }
    bytes
}
