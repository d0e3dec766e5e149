//! The per-client writer: the only code that writes to a client's socket.
//!
//! Every frame for a client — its own responses, messages forwarded from
//! other clients, the shutdown notice — goes through its [`Outbox`], a bounded
//! queue drained by one writer thread. Frames therefore never interleave on
//! the wire, and a sender never writes to someone else's socket: if the target
//! stops reading, its queue fills and the sender is told, instead of blocking.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::thread::{self, JoinHandle};

use crossbeam_channel::{bounded, select, Receiver, Sender, TryRecvError, TrySendError};

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
#[derive(Clone, Debug)]
pub struct Outbox {
    data: Sender<Outbound>,
    control: Sender<Vec<u8>>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outbound::Frame(bytes) => write!(f, "Frame({} bytes)", bytes.len()),
            Outbound::Close => f.write_str("Close"),
        }
    }
}

impl Outbox {
    /// Queues a frame, waiting while the queue is full. Only the client's own
    /// reader uses this: waiting here stops it reading more requests, which
    /// is TCP backpressure working as intended.
    pub fn push(&self, bytes: Vec<u8>) -> Result<(), PushError> {
        self.data.send(Outbound::Frame(bytes)).map_err(|_| PushError::Gone)
    }

    /// Queues a frame without waiting (for frames from other clients' threads).
    pub fn try_push(&self, bytes: Vec<u8>) -> Result<(), PushError> {
        self.data.try_send(Outbound::Frame(bytes)).map_err(|err| match err {
            TrySendError::Full(_) => PushError::Full,
            TrySendError::Disconnected(_) => PushError::Gone,
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
}

/// A new bounded outbox holding at most `queue_len` frames. Frames can be
/// queued before the writer thread starts.
pub fn outbox(queue_len: usize) -> (Outbox, Queue) {
    let (data_tx, data) = bounded(queue_len.max(1));
    let (control_tx, control) = bounded(1);
    (Outbox { data: data_tx, control: control_tx }, Queue { data, control })
}

/// Starts the writer thread for client `id`, draining `queue` into `stream`.
pub fn spawn(id: u32, stream: TcpStream, queue: Queue) -> io::Result<JoinHandle<()>> {
    let writer = Writer { id, stream, data: queue.data, control: queue.control, buf: Vec::new() };
    thread::Builder::new().name(format!("client-{id}-tx")).spawn(move || writer.run())
}

struct Writer {
    id: u32,
    stream: TcpStream,
    data: Receiver<Outbound>,
    control: Receiver<Vec<u8>>,
    buf: Vec<u8>,
}

impl Writer {
    fn run(mut self) {
        if let Err(err) = self.write_until_closed() {
            tracing::debug!(client = self.id, "writer stopped: {err}");
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
                recv(self.control) -> notice => {
                    while !self.drain_queued() && !self.data.is_empty() {
                        self.flush()?;
                    }
                    if let Ok(notice) = notice {
                        self.buf.extend_from_slice(&notice);
                    }
                    return self.flush();
                }
                recv(self.data) -> item => match item {
                    Ok(Outbound::Frame(bytes)) => {
                        self.buf.extend_from_slice(&bytes);
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
            match self.data.try_recv() {
                Ok(Outbound::Frame(bytes)) => self.buf.extend_from_slice(&bytes),
                Ok(Outbound::Close) => return true,
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => return true,
            }
        }
        false
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.stream.write_all(&self.buf);
        self.buf.clear();
        result
    }
}
