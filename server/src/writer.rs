//! The per-client writer: the only code that writes to a client's socket.
//!
//! Every frame for a client — its own responses, messages forwarded from
//! other clients, heartbeat pings, the shutdown notice — goes through its
//! [`Outbox`], a bounded queue drained by one writer thread. Frames therefore
//! never interleave on the wire, and a sender never writes to someone else's
//! socket: if the target stops reading, its queue fills and the sender is
//! told, instead of blocking. A write that stays blocked for the write timeout
//! marks the client a slow consumer and disconnects it.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{bounded, select, Receiver, Sender, TryRecvError, TrySendError};
use tnlm_core::Frame;

/// Frames larger than this are written on their own; smaller ones queued
/// together are coalesced into one `write` call.
const COALESCE_LIMIT: usize = 64 * 1024;

/// What the writer thread can be asked to do.
enum Outbound {
    /// Write these bytes (one or more encoded frames).
    Frame(Vec<u8>),
    /// Write what is queued, then close our sending side (FIN).
    Close,
}

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue is full: the client is not reading fast enough.
    Full,
    /// The writer has stopped: the client is gone.
    Gone,
}

/// A handle to queue frames for one client. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    data: Sender<Outbound>,
    control: Sender<Vec<u8>>,
    /// Bytes queued and not yet written.
    queued: Arc<AtomicUsize>,
    /// The most bytes [`try_push`](Self::try_push) lets wait in the queue.
    max_bytes: usize,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Outbox({} bytes queued)", self.queued.load(Ordering::Relaxed))
    }
}

impl Outbox {
    /// Queues a frame, waiting while the queue is full. Only the client's own
    /// reader uses this, for its own responses: waiting here stops it reading
    /// more requests, which is TCP backpressure working as intended.
    pub fn push(&self, bytes: Vec<u8>) -> Result<(), PushError> {
        self.queued.fetch_add(bytes.len(), Ordering::Relaxed);
        self.data.send(Outbound::Frame(bytes)).map_err(|_| PushError::Gone)
    }

    /// Queues a frame from another client's thread without waiting; refused
    /// when the queue holds `max_bytes` or its frame limit already.
    pub fn try_push(&self, bytes: Vec<u8>) -> Result<(), PushError> {
        if self.queued.load(Ordering::Relaxed) + bytes.len() > self.max_bytes {
            return Err(PushError::Full);
        }
        self.offer(bytes)
    }

    /// Queues a frame without waiting and without the byte limit (a response
    /// completed on another thread, e.g. a delivery receipt); refused only
    /// when the queue's frame limit is reached.
    pub fn offer(&self, bytes: Vec<u8>) -> Result<(), PushError> {
        let len = bytes.len();
        self.queued.fetch_add(len, Ordering::Relaxed);
        self.data.try_send(Outbound::Frame(bytes)).map_err(|err| {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            match err {
                TrySendError::Full(_) => PushError::Full,
                TrySendError::Disconnected(_) => PushError::Gone,
            }
        })
    }

    /// Asks the writer to flush what is queued and then send FIN.
    pub fn close(&self) {
        let _ = self.data.send(Outbound::Close);
    }

    /// Server shutdown: the writer flushes what is queued, writes `notice`
    /// and sends FIN, even if the data queue is full.
    pub fn shutdown_with(&self, notice: Vec<u8>) {
        let _ = self.control.try_send(notice);
    }
}

/// The receiving end of an [`Outbox`], waiting for [`spawn`] to give it a thread.
pub struct Queue {
    data: Receiver<Outbound>,
    control: Receiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

/// A new outbox holding at most `max_frames` frames, of which frames from
/// other clients may fill `max_bytes`. Frames can be queued before the
/// writer thread starts.
pub fn outbox(max_frames: usize, max_bytes: usize) -> (Outbox, Queue) {
    let (data_tx, data) = bounded(max_frames.max(1));
    let (control_tx, control) = bounded(1);
    let queued = Arc::new(AtomicUsize::new(0));
    let outbox = Outbox { data: data_tx, control: control_tx, queued: Arc::clone(&queued), max_bytes };
    (outbox, Queue { data, control, queued })
}

/// Starts the writer thread for client `id`, draining `queue` into `stream`.
pub fn spawn(id: u32, stream: Arc<TcpStream>, queue: Queue) -> io::Result<JoinHandle<()>> {
    let writer = Writer { id, stream, queue, buf: Vec::new() };
    thread::Builder::new().name(format!("client-{id}-tx")).spawn(move || writer.run())
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

struct Writer {
    id: u32,
    stream: Arc<TcpStream>,
    queue: Queue,
    buf: Vec<u8>,
}

impl Writer {
    fn run(mut self) {
        if let Err(err) = self.write_until_closed() {
            if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) {
                tracing::warn!(client = self.id, "disconnecting a slow consumer: a write stayed blocked ({err})");
            } else {
                tracing::debug!(client = self.id, "writer stopped: {err}");
            }
            // The peer cannot be written to: make its reader stop too.
            let _ = self.stream.shutdown(Shutdown::Both);
            return;
        }
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Writes queued frames until asked to close; `Ok` means close gracefully.
    fn write_until_closed(&mut self) -> io::Result<()> {
        loop {
            select! {
                recv(self.queue.control) -> notice => {
                    while !self.drain_queued() && !self.queue.data.is_empty() {
                        self.flush()?;
                    }
                    if let Ok(notice) = notice {
                        self.buf.extend_from_slice(&notice);
                    }
                    return self.flush();
                }
                recv(self.queue.data) -> item => match item {
                    Ok(Outbound::Frame(bytes)) => {
                        self.take(&bytes);
                        if self.drain_queued() {
                            return self.flush();
                        }
                        self.flush()?;
                    }
                    Ok(Outbound::Close) | Err(_) => return self.flush(),
                },
            }
        }
    }

    /// Moves already-queued frames into the buffer (up to the coalescing
    /// limit); returns true if a `Close` was among them.
    fn drain_queued(&mut self) -> bool {
        while self.buf.len() < COALESCE_LIMIT {
            match self.queue.data.try_recv() {
                Ok(Outbound::Frame(bytes)) => self.take(&bytes),
                Ok(Outbound::Close) => return true,
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => return true,
            }
        }
        false
    }

    fn take(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.queue.queued.fetch_sub(bytes.len(), Ordering::Relaxed);
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = (&*self.stream).write_all(&self.buf);
        self.buf.clear();
        result
    }
}
