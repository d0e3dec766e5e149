//! One client of the event engine, driven by its worker: non-blocking reads
//! into the protocol [`Session`], answers and queued frames into one
//! ordered output, and the same departure as the thread engine's (unlisted
//! first, receipts owed to a half-closed client, the last error frame, FIN,
//! a short drain).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_utils::sync::WaitGroup;
use mio::net::TcpStream;
use mio::Token;
use tnlm_core::proto::session::{Ending, Event, Session};

use crate::bad_input_log::BadInputLog;
use crate::events::context::{Context, READ_SHARE};
use crate::events::handle::{Arrival, WorkerHandle};
use crate::events::mailbox::Mailbox;
use crate::handler::{self, Peer};
use crate::membership::{
    apply_socket_options, hello_frame, refusal_frame, unlist, DRAIN_BUDGET, LINGER_DRAIN, RECEIPT_SLACK,
};
use crate::outbox::Outbox;
use crate::shared::Shared;

/// While this much output is owed, the connection's input is not read: a
/// client that pipelines requests without reading the answers is held back
/// by TCP, as in the thread engine, instead of growing the server's memory.
const OUTPUT_HIGH_WATER: usize = 256 * 1024;
/// How often a half-closed client's owed receipts are looked for.
const RECEIPT_CHECK: Duration = Duration::from_millis(10);

/// How far [`Conn::answer_received`] got.
enum Answered {
    /// Every whole frame received so far.
    All,
    /// Up to the output's high-water mark; the rest waits.
    Paused,
    /// The session ended.
    Ended(Ending),
}

/// Where a connection is in its life.
#[derive(Debug)]
enum Phase {
    /// Reading and answering.
    Open,
    /// Ended cleanly; waiting (until `until`) for the receipts it is owed.
    AwaitingReceipts { ending: Ending, until: Instant, next_check: Instant },
    /// Everything owed is in the output; FIN once it is written.
    Flushing { reason: String, drain: bool },
    /// FIN sent; discarding input until EOF, `until`, or `budget` bytes.
    Draining { reason: String, until: Instant, budget: usize },
    /// Over: the worker removes it.
    Done { reason: String },
}

/// One connection on a worker.
pub(crate) struct Conn {
    peer: Peer,
    stream: TcpStream,
    session: Session,
    mailbox: Mailbox,
    /// The mailbox as others reach it (kept by deliveries for receipts).
    outbox: Outbox,
    out: Outgoing,
    bad_input: BadInputLog,
    phase: Phase,
    /// Listed in the registry (a refused newcomer is not).
    listed: bool,
    /// Reading is paused while too much output is owed.
    input_paused: bool,
    /// The shutdown notice is queued: FIN once the output is written.
    fin_after: bool,
    fin_sent: bool,
    /// The instant the worker's timer heap holds for it, if any.
    pub(crate) scheduled: Option<Instant>,
    _running: WaitGroup,
}

impl Conn {
    /// Sets up an accepted socket: options, listing, hello (or the refusal).
    /// Registers it with `registry` as `token`; its clocks (heartbeat, frame
    /// timeout) start once its hello is written.
    pub(crate) fn open(
        shared: &Shared,
        worker: &Arc<WorkerHandle>,
        registry: &mio::Registry,
        token: Token,
        arrival: Arrival,
    ) -> io::Result<Conn> {
        let Arrival { stream, id, addr, since, running } = arrival;
        let peer = Peer { id, addr: tnlm_core::net::canonical(addr) };
        apply_socket_options(shared, peer, &stream);
        stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(stream);
        registry.register(&mut stream, token, mio::Interest::READABLE | mio::Interest::WRITABLE)?;
        let config = &shared.config;
        let mailbox = Mailbox::new(id, token, Arc::clone(worker), config.queue_bytes, Arc::clone(&shared.queue_budget));
        let outbox = Outbox::Event(mailbox.clone());
        // The hello goes into the output before anything from the mailbox
        // can: this worker is the socket's only writer, so nothing else
        // reaches the client before it.
        let mut out = Outgoing::new(config.write_timeout);
        let (listed, phase) = match shared.registry.insert(id, peer.addr, since, outbox.clone()) {
            Ok(()) => {
                out.push(hello_frame(shared, peer), None);
                (true, Phase::Open)
            }
            Err(refusal) => {
                mailbox.close();
                out.push(refusal_frame(peer, refusal), None);
                (false, Phase::Flushing { reason: "refused".into(), drain: false })
            }
        };
        // It leaves now, and the session's clocks (heartbeat, frame timeout)
        // start once it has, as in the thread engine: a silent client is
        // given up on three intervals after its hello, not before. A failed
        // write is met again, and ends the connection, at the next write.
        if let Err(err) = out.write_to(&mut stream, &mailbox) {
            tracing::debug!(client = id, "cannot write the hello yet: {err}");
        }
        let now = Instant::now();
        let conn = Conn {
            peer,
            stream,
            session: Session::new(&config.session(), now),
            mailbox,
            outbox,
            out,
            bad_input: BadInputLog::new(id, now),
            phase,
            listed,
            input_paused: false,
            fin_after: false,
            fin_sent: false,
            scheduled: None,
            _running: running,
        };
        Ok(conn)
    }

    /// The socket, to (de)register it.
    pub(crate) fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// True once the worker should remove it.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done { .. })
    }

    /// Last steps once removed from the worker: forgotten, logged.
    pub(crate) fn finish(self, shared: &Shared) {
        shared.registry.forget(self.peer.id);
        self.bad_input.finish();
        if let Phase::Done { reason } = &self.phase {
            tracing::info!(client = self.peer.id, addr = %self.peer.addr, "disconnected: {reason}");
        }
    }

    /// The socket is readable (or closed, or in error). With `edge`, this
    /// comes from a readiness event that reported new data only (see
    /// [`short_read_drains`]); otherwise the socket is read until it would block.
    pub(crate) fn on_readable(&mut self, cx: &mut Context<'_>, edge: bool) {
        match self.phase {
            Phase::Open if !self.input_paused => self.read_requests(cx, edge && short_read_drains()),
            Phase::Draining { .. } => self.drain_input(cx),
            _ => {}
        }
    }

    /// The socket can take more output.
    pub(crate) fn on_writable(&mut self, cx: &mut Context<'_>) {
        self.write_out(cx);
    }

    /// Other threads queued frames for it, or want it cut (also while it
    /// drains a misbehaving client's input: shutdown does not wait for that).
    pub(crate) fn on_mailbox(&mut self, cx: &mut Context<'_>) {
        if matches!(self.phase, Phase::Done { .. }) {
            return;
        }
        let signals = self.mailbox.signals();
        if signals.cut {
            self.cut(cx.shared, "cut off at shutdown");
            return;
        }
        if matches!(self.phase, Phase::Draining { .. }) {
            return;
        }
        self.fin_after |= signals.fin_after;
        self.check_receipts(cx, Instant::now());
        self.write_out(cx);
    }

    /// A timer may be due.
    pub(crate) fn on_timer(&mut self, cx: &mut Context<'_>) {
        let now = Instant::now();
        if self.out.overdue(now) {
            let reason = "slow consumer: output owed for longer than the write timeout";
            tracing::warn!(client = self.peer.id, "disconnecting a {reason}");
            self.cut(cx.shared, reason);
            return;
        }
        match &self.phase {
            Phase::Open => {
                if let Some(ending) = self.session.handle_timeout(now) {
                    self.end(cx, ending);
                } else {
                    self.take_transmit();
                    self.write_out(cx);
                }
            }
            Phase::AwaitingReceipts { .. } => self.check_receipts(cx, now),
            Phase::Draining { until, .. } if *until <= now => self.done_with_phase_reason(),
            _ => {}
        }
    }

    /// When [`on_timer`](Self::on_timer) is next needed.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Open => self.session.next_deadline(),
            Phase::AwaitingReceipts { until, next_check, .. } => Some((*until).min(*next_check)),
            Phase::Draining { until, .. } => Some(*until),
            Phase::Flushing { .. } | Phase::Done { .. } => None,
        };
        match (phase, self.out.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Reads and answers until the socket has no more, the connection's
    /// share of this turn is used, or too much output is owed.
    fn read_requests(&mut self, cx: &mut Context<'_>, stop_at_short_read: bool) {
        let mut read_total = 0;
        let mut drained = false;
        loop {
            // What has arrived is answered first, up to the high-water mark.
            match self.answer_received(cx) {
                Answered::All => {}
                Answered::Paused => {
                    self.input_paused = true;
                    break;
                }
                Answered::Ended(ending) => {
                    self.end(cx, ending);
                    return;
                }
            }
            if drained {
                break;
            }
            if read_total >= READ_SHARE {
                cx.read_again();
                break;
            }
            match self.stream.read(cx.buffer) {
                Ok(0) => {
                    let ending = self.session.end_of_stream();
                    self.end(cx, ending);
                    return;
                }
                Ok(n) => {
                    read_total += n;
                    self.session.receive(&cx.buffer[..n], Instant::now());
                    drained = stop_at_short_read && n < cx.buffer.len();
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.end(cx, Ending::quiet(format!("read error: {err}")));
                    return;
                }
            }
        }
        self.write_out(cx);
    }

    /// Acts on the events of what was received, frame by frame, until none
    /// is left, the session ends, or the output owed reaches the high-water
    /// mark: then the rest waits in the session until the client has read
    /// some, as a thread engine's connection waits in its blocking write. (A
    /// 64 KiB read of `list` requests would otherwise be answered with
    /// megabytes at once, and the write deadline would only start after.)
    fn answer_received(&mut self, cx: &Context<'_>) -> Answered {
        let now = Instant::now();
        loop {
            if self.out.pending() + self.session.transmit().len() >= OUTPUT_HIGH_WATER {
                self.take_transmit();
                return Answered::Paused;
            }
            let Some(event) = self.session.poll_event() else {
                self.take_transmit();
                return Answered::All;
            };
            match event {
                Event::Frame(frame) => {
                    tracing::debug!(client = self.peer.id, "{}", frame.summary());
                    let request_id = frame.request_id;
                    if let Some(reply) = handler::answer(cx.shared, self.peer, &self.outbox, frame) {
                        self.session.reply(request_id, reply);
                    }
                }
                Event::Rejected(err) => self.bad_input.note(&err, now),
                Event::End(ending) => {
                    self.bad_input.note(&ending.reason, now);
                    self.take_transmit();
                    return Answered::Ended(ending);
                }
            }
        }
    }

    /// Moves the session's owed bytes into the output.
    fn take_transmit(&mut self) {
        let transmit = self.session.transmit();
        if !transmit.is_empty() {
            self.out.push(std::mem::take(transmit), None);
        }
    }

    /// The session has ended: unlisted at once, then (after owed receipts)
    /// the last frame and FIN.
    fn end(&mut self, cx: &mut Context<'_>, ending: Ending) {
        if self.listed {
            unlist(cx.shared, self.peer, &self.outbox);
            self.listed = false;
        }
        if ending.owed_receipts {
            let now = Instant::now();
            let until = now + cx.shared.config.ack_timeout + RECEIPT_SLACK;
            self.phase = Phase::AwaitingReceipts { ending, until, next_check: now };
            self.check_receipts(cx, now);
        } else {
            self.last_word(cx, ending);
        }
    }

    /// While awaiting receipts: moves on once none is pending, or at the deadline.
    fn check_receipts(&mut self, cx: &mut Context<'_>, now: Instant) {
        let Phase::AwaitingReceipts { until, next_check, .. } = &mut self.phase else { return };
        let settled = cx.shared.deliveries.wait_settled_from(self.peer.id, now);
        if !settled && now < *until {
            *next_check = now + RECEIPT_CHECK;
            return;
        }
        let Phase::AwaitingReceipts { ending, .. } = std::mem::replace(&mut self.phase, Phase::Open) else { return };
        self.last_word(cx, ending);
    }

    /// Refuses more frames, queues the farewell behind what others queued,
    /// then writes it all and sends FIN.
    fn last_word(&mut self, cx: &mut Context<'_>, ending: Ending) {
        self.mailbox.close();
        if let Some(farewell) = ending.farewell {
            self.mailbox.push_last(farewell);
        }
        self.phase = Phase::Flushing { reason: ending.reason, drain: ending.drain };
        self.write_out(cx);
    }

    /// Writes owed output, then the mailbox's frames batch by batch, until
    /// the socket is full or all is written; then whatever the phase does
    /// next (FIN, drain, resume reading).
    fn write_out(&mut self, cx: &mut Context<'_>) {
        if matches!(self.phase, Phase::Done { .. } | Phase::Draining { .. }) {
            return;
        }
        loop {
            if let Err(err) = self.out.write_to(&mut self.stream, &self.mailbox) {
                self.cut(cx.shared, &format!("write error: {err}"));
                return;
            }
            if self.out.pending() > 0 {
                break;
            }
            match self.mailbox.take_batch() {
                Some((batch, end)) => self.out.push(batch, Some(end)),
                None => break,
            }
        }
        if self.input_paused && self.out.pending() < OUTPUT_HIGH_WATER / 2 {
            self.input_paused = false;
            cx.read_again();
        }
        if self.out.pending() > 0 {
            return;
        }
        if self.fin_after && !self.fin_sent {
            self.fin_sent = true;
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        if let Phase::Flushing { reason, drain } = &mut self.phase {
            let _ = self.stream.shutdown(Shutdown::Write);
            let reason = std::mem::take(reason);
            if *drain {
                let until = Instant::now() + LINGER_DRAIN;
                self.phase = Phase::Draining { reason, until, budget: DRAIN_BUDGET };
                self.drain_input(cx);
            } else {
                self.done(reason);
            }
        }
    }

    /// Discards input after a fatal error until EOF, the deadline or the budget.
    fn drain_input(&mut self, cx: &mut Context<'_>) {
        loop {
            let Phase::Draining { budget, .. } = &mut self.phase else { return };
            match self.stream.read(cx.buffer) {
                Ok(0) => break,
                Ok(n) => {
                    *budget = budget.saturating_sub(n);
                    if *budget == 0 {
                        break;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.done_with_phase_reason();
    }

    /// Cuts the connection in both directions and ends it.
    fn cut(&mut self, shared: &Shared, reason: &str) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if self.listed {
            unlist(shared, self.peer, &self.outbox);
            self.listed = false;
        }
        self.mailbox.close();
        let reason = match &self.phase {
            Phase::Flushing { reason: first, .. } | Phase::Draining { reason: first, .. } => {
                format!("{first} ({reason})")
            }
            Phase::AwaitingReceipts { ending, .. } => format!("{} ({reason})", ending.reason),
            _ => reason.to_string(),
        };
        self.done(reason);
    }

    fn done_with_phase_reason(&mut self) {
        let reason = match &mut self.phase {
            Phase::Draining { reason, .. } | Phase::Flushing { reason, .. } => std::mem::take(reason),
            _ => return,
        };
        self.done(reason);
    }

    fn done(&mut self, reason: String) {
        self.phase = Phase::Done { reason };
    }
}

/// Whether a read that returned less than asked for has drained the socket,
/// so the `read` that would only say `WouldBlock` can be skipped (one system
/// call of about four per request). True with Linux's edge-triggered epoll,
/// which reports every later arrival of data as a new event; a FIN that came
/// with the data is reported as read-closed, and then the socket is read to
/// the end anyway. Windows' poller is re-armed only by a `WouldBlock`.
fn short_read_drains() -> bool {
    cfg!(any(target_os = "linux", target_os = "android"))
}

/// Everything owed to the client, in order: answers, pings, errors, frames
/// from its mailbox. Remembers where each mailbox batch ends, to tell the
/// mailbox how far the socket has taken its frames (what acks are checked
/// against).
#[derive(Debug)]
struct Outgoing {
    buf: Vec<u8>,
    /// `buf[pos..]` is still owed.
    pos: usize,
    /// Bytes the socket has taken, ever.
    sent: u64,
    /// Bytes put in the output, ever.
    pushed: u64,
    /// Mailbox batches still (partly) owed: (output offset where the batch
    /// starts, where it ends, mailbox offset where it starts).
    marks: VecDeque<(u64, u64, u64)>,
    write_timeout: Duration,
    /// Since when output has been owed without a break.
    owed_since: Option<Instant>,
}

impl Outgoing {
    fn new(write_timeout: Duration) -> Outgoing {
        Outgoing {
            buf: Vec::new(),
            pos: 0,
            sent: 0,
            pushed: 0,
            marks: VecDeque::new(),
            write_timeout,
            owed_since: None,
        }
    }

    /// Bytes owed.
    fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Appends whole frames; `mailbox_end` is the mailbox offset they end
    /// at, if they came from it.
    fn push(&mut self, bytes: Vec<u8>, mailbox_end: Option<u64>) {
        if bytes.is_empty() {
            return;
        }
        let start = self.pushed;
        self.pushed += bytes.len() as u64;
        if let Some(end) = mailbox_end {
            self.marks.push_back((start, self.pushed, end - bytes.len() as u64));
        }
        if self.pending() == 0 {
            self.buf = bytes;
            self.pos = 0;
        } else {
            self.buf.extend_from_slice(&bytes);
        }
    }

    /// Writes until everything is taken or the socket is full.
    fn write_to(&mut self, stream: &mut TcpStream, mailbox: &Mailbox) -> io::Result<()> {
        while self.pos < self.buf.len() {
            match stream.write(&self.buf[self.pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.pos += n;
                    self.sent += n as u64;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        // Exactly the mailbox bytes the socket has taken: an ack counts for
        // a frame once all of it is written, even if the rest of its batch
        // is still owed (the client may ack it before the rest leaves).
        while let Some(&(start, end, from)) = self.marks.front() {
            if self.sent <= start {
                break;
            }
            mailbox.set_written(from + (self.sent.min(end) - start));
            if self.sent < end {
                break;
            }
            self.marks.pop_front();
        }
        if self.pending() == 0 {
            self.buf = Vec::new();
            self.pos = 0;
            self.owed_since = None;
        } else {
            self.owed_since.get_or_insert_with(Instant::now);
            if self.pos > 64 * 1024 && self.pos * 2 > self.buf.len() {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
        }
        Ok(())
    }

    /// When the owed output's write deadline passes, if output is owed.
    fn deadline(&self) -> Option<Instant> {
        self.owed_since.map(|since| since + self.write_timeout)
    }

    /// True once output has been owed for longer than the write timeout.
    fn overdue(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|at| at <= now)
    }
}
