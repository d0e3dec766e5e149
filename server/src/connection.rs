//! One client's connection: set up, read and answer frames, watch the
//! client's liveness, tear down.
//!
//! Runs on the client's own thread (`client-<id>`). Reading and decoding
//! happen here; every write goes through the client's [`Outbox`].

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Local};
use tnlm_core::proto::bad_input::BadInputLog;
use tnlm_core::proto::session::{Ending, Event, Session};

use crate::handler::{self, Peer};
use crate::membership::{
    apply_socket_options, hello_frame, refusal_frame, unlist, DRAIN_BUDGET, LINGER_DRAIN, RECEIPT_SLACK,
};
use crate::outbox::Outbox;
use crate::registry::Refusal;
use crate::shared::Shared;
use crate::writer::{is_timeout, Writer};

/// Size of one `read` from the socket once a client sends more than
/// [`FIRST_READ`] at a time (pipelining).
const READ_CHUNK: usize = 8 * 1024;
/// Size of the reads until then, from a buffer on the thread's stack. An idle
/// client's thread then touches only a few pages of its stack: at 10,000
/// clients the stack pages are most of the server's memory (an 8 KiB zeroed
/// buffer for every client cost 80 MB; see docs/BENCHMARKS.md).
const FIRST_READ: usize = 512;
/// Replies are written once this many bytes have been collected.
const REPLY_BATCH: usize = 64 * 1024;
/// The shortest read timeout: timers are checked at most this often.
const MIN_WAIT: Duration = Duration::from_millis(50);
/// The read timeout when no timer runs (no heartbeat, no partial frame).
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// Serves client `id` until it disconnects or the server shuts down.
/// `since` is when it was accepted (listed as its connection time).
pub(crate) fn serve(shared: Arc<Shared>, id: u32, stream: TcpStream, addr: SocketAddr, since: DateTime<Local>) {
    let peer = Peer { id, addr: tnlm_core::net::canonical(addr) };
    if let Err(err) = serve_inner(&shared, peer, Arc::new(stream), since) {
        tracing::warn!(client = id, "connection setup failed: {err}");
    }
}

fn serve_inner(shared: &Shared, peer: Peer, stream: Arc<TcpStream>, since: DateTime<Local>) -> io::Result<()> {
    configure(shared, peer, &stream)?;
    let writer = Writer::new(peer.id, Arc::clone(&stream), shared.config.queue_bytes, Arc::clone(&shared.queue_budget));
    let outbox = Outbox::Thread(writer.clone());
    // Listed first, with its outbox paused, then the hello, then frames from
    // others may flow: once the client has its hello it is in every `L` list
    // and reachable by `M`, and nothing reaches it before the hello.
    if let Err(refusal) = shared.registry.insert(peer.id, peer.addr, since, outbox.clone()) {
        return turn_away(peer, &writer, &stream, refusal);
    }
    if let Err(err) = writer.write_now(&hello_frame(shared, peer)) {
        unlist(shared, peer, &outbox);
        writer.refuse_more();
        return Err(err);
    }
    writer.resume();
    // "connected" is logged by the accept loop: formatting a log line here
    // touched another 4 KiB stack page on every connection thread.
    let ending = ReadLoop::new(shared, peer, &stream, &writer, &outbox).run();

    unlist(shared, peer, &outbox);
    if ending.owed_receipts {
        // It closed only its sending side: it still gets the receipts for
        // the messages it sent, each within the ack timeout.
        let deadline = Instant::now() + shared.config.ack_timeout + RECEIPT_SLACK;
        shared.deliveries.wait_settled_from(peer.id, deadline);
    }
    writer.refuse_more();
    // The last word (an error frame) only now, queued behind what others
    // queued: a client that does not read must not stay listed while it
    // waits, and `close` bounds the wait for all of it by the write timeout.
    if let Some(farewell) = ending.farewell {
        writer.push_last(farewell);
    }
    writer.close();
    let _ = stream.shutdown(Shutdown::Write);
    if ending.drain {
        drain_input(&stream);
    }
    let reason = ending.reason;
    tracing::info!(client = peer.id, addr = %peer.addr, "disconnected: {reason}");
    Ok(())
}

/// Tells a client that cannot be listed why, then closes.
fn turn_away(peer: Peer, writer: &Writer, stream: &TcpStream, refusal: Refusal) -> io::Result<()> {
    writer.write_now(&refusal_frame(peer, refusal))?;
    stream.shutdown(Shutdown::Write)
}

fn configure(shared: &Shared, peer: Peer, stream: &TcpStream) -> io::Result<()> {
    apply_socket_options(shared, peer.id, stream);
    stream.set_write_timeout(Some(shared.config.write_timeout))?;
    stream.set_read_timeout(Some(shared.config.tick()))
}

/// The reading side of one connection: a [`Session`] (framing, error
/// replies, heartbeat, frame timeout) driven by blocking reads, its timers
/// by the socket's read timeout.
struct ReadLoop<'a> {
    shared: &'a Shared,
    peer: Peer,
    stream: &'a TcpStream,
    writer: &'a Writer,
    /// The same writer, as others reach it (a delivery keeps it to queue its receipt).
    outbox: &'a Outbox,
    session: Session,
    /// A write of replies failed in the middle of a read's frames: the
    /// stream may hold part of a frame, so the session must end.
    failed_write: Option<io::Error>,
    /// The socket's read timeout now: the longest a `read` may wait.
    read_timeout: Duration,
    /// Warnings about bad frames, rate-limited.
    bad_input: BadInputLog,
}

impl<'a> ReadLoop<'a> {
    fn new(
        shared: &'a Shared,
        peer: Peer,
        stream: &'a TcpStream,
        writer: &'a Writer,
        outbox: &'a Outbox,
    ) -> ReadLoop<'a> {
        let now = Instant::now();
        ReadLoop {
            shared,
            peer,
            stream,
            writer,
            outbox,
            session: Session::new(&shared.config.session(), now),
            failed_write: None,
            read_timeout: shared.config.tick(), // as `configure` set it
            bad_input: BadInputLog::new(peer.id, now),
        }
    }

    /// Reads and answers frames until the connection ends; returns why it ended.
    fn run(mut self) -> Ending {
        let ending = self.read_loop();
        self.bad_input.finish();
        ending
    }

    /// The body of [`run`](Self::run).
    fn read_loop(&mut self) -> Ending {
        let mut small = [0u8; FIRST_READ];
        let mut large: Vec<u8> = Vec::new();
        loop {
            self.rearm(Instant::now());
            let chunk: &mut [u8] = if large.is_empty() { &mut small } else { &mut large };
            match self.stream.read(chunk) {
                Ok(0) => return self.session.end_of_stream(),
                Ok(n) => {
                    let fatal = if large.is_empty() { self.received(&small[..n]) } else { self.received(&large[..n]) };
                    if n == FIRST_READ && large.is_empty() {
                        large = vec![0; READ_CHUNK]; // a busy client: read more at once from now on
                    }
                    if let Some(err) = self.failed_write.take() {
                        return Ending::quiet(write_failure(&err));
                    }
                    if let Err(err) = self.flush_replies() {
                        return Ending::quiet(write_failure(&err));
                    }
                    if let Some(fatal) = fatal {
                        return fatal;
                    }
                }
                Err(err) if is_timeout(&err) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Ending::quiet(format!("read error: {err}")),
            }
            if let Some(ending) = self.check_timers() {
                return ending;
            }
        }
    }

    /// Hands received bytes to the session and acts on every event,
    /// collecting the replies in the session's output (see
    /// [`flush_replies`](Self::flush_replies)). Returns the ending when the
    /// stream's framing is lost.
    fn received(&mut self, bytes: &[u8]) -> Option<Ending> {
        // Frames for other clients (forwarded messages, receipts) leave in one
        // write per client when this read's frames are all handled.
        let _cork = crate::writer::cork();
        let now = Instant::now();
        self.session.receive(bytes, now);
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Frame(frame) => {
                    tracing::debug!(client = self.peer.id, "{}", frame.summary());
                    let request_id = frame.request_id;
                    if let Some(reply) = handler::answer(self.shared, self.peer, self.outbox, frame) {
                        self.session.reply(request_id, reply);
                    }
                }
                Event::Rejected(err) => self.bad_input.note(&err, now),
                Event::End(ending) => {
                    self.bad_input.note(&ending.reason, now);
                    return Some(ending);
                }
            }
            if self.session.transmit().len() >= REPLY_BATCH {
                // This write may block on our own client: frames for others
                // must not wait behind it.
                crate::writer::release_corked();
                if let Err(err) = self.flush_replies() {
                    self.failed_write = Some(err);
                    break;
                }
            }
        }
        None
    }

    /// Writes the collected replies in one go: a pipelined burst of requests
    /// is answered with about as few `write` calls as it arrived in.
    fn flush_replies(&mut self) -> io::Result<()> {
        let replies = self.session.transmit();
        if replies.is_empty() {
            return Ok(());
        }
        let result = self.writer.write_now(replies);
        replies.clear();
        if replies.capacity() > 4 * REPLY_BATCH {
            replies.shrink_to(REPLY_BATCH);
        }
        result
    }

    /// Sets the socket's read timeout so that the thread wakes when the
    /// session's next timer is due (a ping to send, a silent client or a
    /// stalled frame to drop), and not before: an idle client's thread then
    /// sleeps through the whole heartbeat interval. (Waking every quarter of
    /// the shortest timer cost 4,000 wake-ups a second at 10,000 idle
    /// clients, and the p99 of everyone else's requests with it; see
    /// docs/BENCHMARKS.md.) The timeout is only changed when it must shrink
    /// by more than 1/8 (at most 1 s; a timer may fire that much late) or
    /// can grow more than twofold, so a busy client costs no extra system call.
    fn rearm(&mut self, now: Instant) {
        let next = self.session.next_deadline();
        let wanted = next.map_or(IDLE_WAIT, |at| at.saturating_duration_since(now)).clamp(MIN_WAIT, IDLE_WAIT);
        let slack = (self.read_timeout / 8).min(Duration::from_secs(1));
        if wanted + slack < self.read_timeout || wanted > self.read_timeout * 2 {
            match self.stream.set_read_timeout(Some(wanted)) {
                Ok(()) => self.read_timeout = wanted,
                Err(err) => tracing::debug!(client = self.peer.id, "cannot set the read timeout: {err}"),
            }
        }
    }

    /// Runs the session's timers: writes a ping when one is due, and ends
    /// the connection (`Some`) when the client is silent or stalled too
    /// long, or does not take the ping.
    fn check_timers(&mut self) -> Option<Ending> {
        if let Some(ending) = self.session.handle_timeout(Instant::now()) {
            return Some(ending);
        }
        // A ping that cannot be written (whole) leaves the stream torn: the
        // client is a slow consumer, and nothing more may follow.
        self.flush_replies().err().map(|err| Ending::quiet(write_failure(&err)))
    }
}

/// Discards input for up to [`LINGER_DRAIN`] (or until EOF): closing a socket
/// with unread data makes the kernel send an RST, which could destroy the
/// error frame we just sent before the peer reads it.
fn drain_input(mut stream: &TcpStream) {
    // On the heap: an 8 KiB array here, inlined into `serve`, made every
    // connection thread probe (touch) two more stack pages on entry.
    let mut sink = vec![0u8; READ_CHUNK];
    let mut budget = DRAIN_BUDGET;
    // One deadline for the whole drain: a peer trickling a byte now and then
    // must not keep this (already unlisted) thread alive.
    let deadline = Instant::now() + LINGER_DRAIN;
    while budget > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => budget = budget.saturating_sub(n),
        }
    }
}

/// Why the session ends when one of its own writes fails.
fn write_failure(err: &io::Error) -> String {
    if is_timeout(err) {
        format!("slow consumer: a write stayed blocked ({err})")
    } else {
        format!("write error: {err}")
    }
}
