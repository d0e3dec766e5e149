//! One client connection as the server drives it, without I/O: its
//! [`Session`], everything owed to the client in order, the write deadline,
//! and the phases of its life from the hello to the last byte.
//!
//! The driver (an engine) owns the socket and a [`Conn`], and only moves
//! bytes and time:
//! - what a read returned goes to [`receive`](Conn::receive) (a read of 0:
//!   [`end_of_stream`](Conn::end_of_stream)), while
//!   [`wants_input`](Conn::wants_input) says so;
//! - [`transmit`](Conn::transmit) is written to the socket, and what the
//!   socket took is reported with [`written`](Conn::written);
//! - [`poll_io`](Conn::poll_io) says when to shut the socket down;
//! - once [`next_deadline`](Conn::next_deadline) passes,
//!   [`handle_timeout`](Conn::handle_timeout); when the [`Hub`] wakes this
//!   client ([`Hub::poll_wake`]), [`woken`](Conn::woken);
//! - once [`is_done`](Conn::is_done), the socket is closed and
//!   [`finish`](Conn::finish) tells the hub.
//!
//! Every call that may act on the protocol takes the hub (`&mut Hub`: the
//! driver holds its lock for the call, never across I/O) and `now`.
//!
//! The phases: **open** (reading and answering); **awaiting receipts**
//! (the client ended its input cleanly and is still owed the outcome of
//! messages it sent); **flushing** (everything owed, then the last frame,
//! then FIN); **draining** (after a fatal error: input is read and discarded
//! for a moment so the close does not become an RST that destroys the error
//! frame); **done**. The departure's order is fixed here: unlisted first (no
//! one can address it any more; messages waiting for its ack fail at once),
//! then its receipts, then its queue closed, what others queued, its last
//! frame, FIN.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::proto::bad_input::BadInputLog;
use crate::proto::hub::{Alone, Answers, Hub, Refusal};
use crate::proto::queue::COALESCE_LIMIT;
use crate::proto::session::{Ending, Event, Session, SessionConfig};

/// While this much output is owed, the connection answers nothing more: a
/// client that pipelines requests without reading the answers is held back
/// by TCP instead of growing the server's memory. Answering resumes once
/// half of it has been written.
pub const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// How long after the ack timeout a half-closed client's receipts may come
/// before the connection closes without them (scheduling slack).
pub const RECEIPT_SLACK: Duration = Duration::from_millis(250);

/// After a fatal error, how long input is read and discarded before closing.
pub const LINGER_DRAIN: Duration = Duration::from_secs(2);

/// The most input discarded while draining.
pub const DRAIN_BUDGET: usize = 1 << 20;

/// What a connection needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnConfig {
    /// The protocol session's limits and timers.
    pub session: SessionConfig,
    /// How long output may stay owed (not taken by the socket) before the
    /// client is cut off as a slow consumer (`--write-timeout`).
    pub write_timeout: Duration,
}

/// What the driver must do to the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// Shut down the sending side (FIN) once [`transmit`](Conn::transmit) is written.
    ShutdownWrite,
    /// Shut down both directions now; the connection is over.
    ShutdownBoth,
}

/// Where a connection is in its life.
#[derive(Debug)]
enum Phase {
    Open,
    AwaitingReceipts { ending: Ending, until: Instant },
    Flushing { reason: String, drain: bool, farewell: Option<Vec<u8>> },
    Draining { reason: String, until: Instant, budget: usize },
    Done { reason: String },
}

/// One connection. See the [module docs](self).
#[derive(Debug)]
pub struct Conn {
    id: u32,
    session: Session,
    out: Outgoing,
    phase: Phase,
    /// Listed in the hub (a refused newcomer never is; a leaving one no more).
    listed: bool,
    /// Where the hello ends in the output: the session's clocks start once
    /// it is written.
    hello_end: Option<u64>,
    /// Answering is paused while too much output is owed.
    paused: bool,
    /// The shutdown notice is queued: FIN once the output is written.
    fin_after: bool,
    fin_sent: bool,
    /// Frames may wait for it in the hub's queue (it was woken since the
    /// queue was last found empty).
    queued_in_hub: bool,
    /// Work that needs the hub is pending ([`Conn::needs_hub`]).
    hub_work: bool,
    /// A received event that needs the hub, held until [`Conn::poll_hub`].
    held: Option<Event>,
    /// What the requests that need nothing shared mean.
    answers: Answers,
    io: VecDeque<Io>,
    bad_input: BadInputLog,
}

impl Conn {
    /// A newly accepted client `id` (from [`Hub::next_id`]) at `addr`: listed
    /// in `hub` and greeted with its hello, or told why not and closed.
    pub fn accept(id: u32, addr: SocketAddr, config: ConnConfig, hub: &mut Hub, now: Instant) -> Conn {
        let mut conn = Conn {
            id,
            session: Session::new(&config.session, now),
            out: Outgoing::new(config.write_timeout),
            phase: Phase::Open,
            listed: false,
            hello_end: None,
            paused: false,
            fin_after: false,
            fin_sent: false,
            queued_in_hub: false,
            hub_work: false,
            held: None,
            answers: hub.answers(),
            io: VecDeque::new(),
            bad_input: BadInputLog::new(id, now),
        };
        match hub.join(id, addr) {
            Ok(hello) => {
                conn.listed = true;
                conn.out.push(hello, None, now);
                conn.hello_end = Some(conn.out.pushed);
            }
            Err(refusal) => {
                if let Refusal::Full(max) = refusal {
                    tracing::warn!(client = id, %addr, "refused: already serving {max} clients (--max-clients)");
                }
                let reason = "refused".to_string();
                conn.phase = Phase::Flushing { reason, drain: false, farewell: Some(refusal.frame()) };
                conn.flush(hub, now);
            }
        }
        conn
    }

    /// The client's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// True while the driver should read from the socket (and hand what it
    /// reads to [`receive`](Self::receive)).
    pub fn wants_input(&self) -> bool {
        match self.phase {
            Phase::Open => !self.paused && !self.hub_work,
            Phase::Draining { .. } => true,
            _ => false,
        }
    }

    /// Bytes owed to the client, in order; write them and report how many
    /// the socket took with [`written`](Self::written).
    pub fn transmit(&self) -> &[u8] {
        self.out.owed()
    }

    /// What the driver must do to the socket next, if anything.
    pub fn poll_io(&mut self) -> Option<Io> {
        self.io.pop_front()
    }

    /// True once the connection is over: the driver closes the socket and
    /// calls [`finish`](Self::finish).
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done { .. })
    }

    /// Why it ended, once [`is_done`](Self::is_done).
    pub fn reason(&self) -> Option<&str> {
        match &self.phase {
            Phase::Done { reason } => Some(reason),
            _ => None,
        }
    }

    /// The connection is gone (done, or its driver gave up on it): the hub
    /// forgets the client. Returns why it ended, for the log.
    pub fn finish(self, hub: &mut Hub) -> String {
        hub.forget(self.id);
        self.bad_input.finish();
        match self.phase {
            Phase::Done { reason } => reason,
            _ => "connection dropped".into(),
        }
    }

    /// Bytes arrived at `now` (any number: one byte, ten frames): frames
    /// are answered, one by one, until [`OUTPUT_HIGH_WATER`] is owed. Needs
    /// no hub while the frames need nothing that spans connections (`T`,
    /// `N`, pings: [`Answers`]); at the first that does, the rest waits for
    /// [`poll_hub`](Self::poll_hub) ([`needs_hub`](Self::needs_hub)), so
    /// answers stay in request order and a client asking for the time takes
    /// no lock shared with anyone.
    pub fn receive(&mut self, bytes: &[u8], now: Instant) {
        match &mut self.phase {
            Phase::Open => {
                self.session.receive(bytes, now);
                if !self.hub_work {
                    self.answer_alone(now);
                }
            }
            Phase::Draining { budget, .. } => {
                *budget = budget.saturating_sub(bytes.len());
                if *budget == 0 {
                    self.done_with_phase_reason();
                }
            }
            _ => {}
        }
    }

    /// [`receive`](Self::receive), then [`poll_hub`](Self::poll_hub) if
    /// needed: for a driver that holds the hub anyway.
    pub fn receive_with_hub(&mut self, bytes: &[u8], hub: &mut Hub, now: Instant) {
        self.receive(bytes, now);
        if self.hub_work {
            self.poll_hub(hub, now);
        }
    }

    /// The client closed its sending side (a read returned 0).
    pub fn end_of_stream(&mut self, hub: &mut Hub, now: Instant) {
        if self.hub_work {
            self.poll_hub(hub, now);
        }
        match self.phase {
            Phase::Open => {
                let ending = self.session.end_of_stream();
                self.end(ending, hub, now);
            }
            Phase::Draining { .. } => self.done_with_phase_reason(),
            _ => {}
        }
    }

    /// A read failed: the connection is over.
    pub fn read_failed(&mut self, error: &str, hub: &mut Hub) {
        self.cut(&format!("read error: {error}"), hub);
    }

    /// A write failed: the connection is over.
    pub fn write_failed(&mut self, error: &str, hub: &mut Hub) {
        self.cut(&format!("write error: {error}"), hub);
    }

    /// The socket took `n` more bytes of [`transmit`](Self::transmit) at
    /// `now`. Needs no hub: when what follows does (answering resumes, or
    /// frames wait in the hub), [`needs_hub`](Self::needs_hub) says so, and
    /// the driver calls [`poll_hub`](Self::poll_hub). (So a thread that
    /// writes its client's answers takes the hub's lock once per read, not
    /// once more per write.)
    pub fn written(&mut self, n: usize, now: Instant) {
        self.out.advance(n, now);
        if self.hello_end.is_some_and(|end| self.out.sent >= end) {
            self.hello_end = None;
            self.session.restart_clocks(now);
        }
        if self.paused && self.out.pending() < OUTPUT_HIGH_WATER / 2 {
            self.paused = false;
            self.hub_work |= matches!(self.phase, Phase::Open);
        }
        if self.queued_in_hub && self.out.pending() < COALESCE_LIMIT {
            self.hub_work = true;
        }
        if !self.hub_work {
            self.finish_flush(now);
        }
    }

    /// [`written`](Self::written), then [`poll_hub`](Self::poll_hub) if
    /// needed: for a driver that holds the hub anyway.
    pub fn written_with_hub(&mut self, n: usize, hub: &mut Hub, now: Instant) {
        self.written(n, now);
        if self.hub_work {
            self.poll_hub(hub, now);
        }
    }

    /// True when the machine has work that needs the hub (see
    /// [`written`](Self::written)).
    pub fn needs_hub(&self) -> bool {
        self.hub_work
    }

    /// Does the work [`needs_hub`](Self::needs_hub) announced: answers what
    /// waits in the session, takes queued frames from the hub.
    pub fn poll_hub(&mut self, hub: &mut Hub, now: Instant) {
        self.hub_work = false;
        if matches!(self.phase, Phase::Open) && !self.paused {
            self.answer(hub, now);
        }
        self.flush(hub, now);
    }

    /// The hub woke this client: frames wait for it, or a signal.
    pub fn woken(&mut self, hub: &mut Hub, now: Instant) {
        if self.is_done() {
            return;
        }
        let signals = hub.signals(self.id);
        if signals.cut {
            self.cut("cut off at shutdown", hub);
            return;
        }
        if matches!(self.phase, Phase::Draining { .. }) {
            return;
        }
        self.fin_after |= signals.fin_after;
        self.queued_in_hub = true;
        self.check_receipts(hub, now);
        self.flush(hub, now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next needed.
    pub fn next_deadline(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Open => self.session.next_deadline(),
            Phase::AwaitingReceipts { until, .. } | Phase::Draining { until, .. } => Some(*until),
            Phase::Flushing { .. } | Phase::Done { .. } => None,
        };
        match (phase, self.out.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the output owed now must have been taken by the socket, if
    /// any is owed: a driver with blocking writes bounds each `send` by it.
    pub fn write_deadline(&self) -> Option<Instant> {
        self.out.deadline()
    }

    /// Runs what is due at `now`: the write deadline (a client that does
    /// not take its output is cut off), the session's timers (a ping, a
    /// silent client, a stalled frame), the end of a wait or a drain.
    pub fn handle_timeout(&mut self, hub: &mut Hub, now: Instant) {
        if self.out.overdue(now) && !self.is_done() {
            let reason = "slow consumer: output owed for longer than the write timeout";
            tracing::warn!(client = self.id, "disconnecting a {reason}");
            self.cut(reason, hub);
            return;
        }
        match &self.phase {
            Phase::Open => match self.session.handle_timeout(now) {
                Some(ending) => self.end(ending, hub, now),
                None => self.take_transmit(now),
            },
            Phase::AwaitingReceipts { .. } => self.check_receipts(hub, now),
            Phase::Draining { until, .. } if *until <= now => self.done_with_phase_reason(),
            _ => {}
        }
    }

    /// Acts on what was received, frame by frame, until nothing whole is
    /// left, the session ends, or the output owed reaches the high-water
    /// mark (the rest waits in the session until the client reads some).
    fn answer(&mut self, hub: &mut Hub, now: Instant) {
        loop {
            if self.out.pending() + self.session.transmit().len() >= OUTPUT_HIGH_WATER {
                self.paused = true;
                break;
            }
            let Some(event) = self.held.take().or_else(|| self.session.poll_event()) else { break };
            match event {
                Event::Frame(frame) => {
                    tracing::debug!(client = self.id, "{}", frame.summary());
                    hub.handle(self.id, frame, self.out.queue_written, now, self.session.transmit());
                }
                Event::Rejected(err) => self.bad_input.note(&err, now),
                Event::End(ending) => {
                    self.bad_input.note(&ending.reason, now);
                    self.take_transmit(now);
                    self.end(ending, hub, now);
                    return;
                }
            }
        }
        self.take_transmit(now);
    }

    /// [`answer`](Self::answer) without the hub, while the frames need
    /// nothing shared; the first that does is held for
    /// [`poll_hub`](Self::poll_hub).
    fn answer_alone(&mut self, now: Instant) {
        loop {
            if self.out.pending() + self.session.transmit().len() >= OUTPUT_HIGH_WATER {
                self.paused = true;
                break;
            }
            let Some(event) = self.session.poll_event() else { break };
            match event {
                Event::Frame(frame) => match self.answers.answer(self.id, &frame, self.session.transmit()) {
                    Alone::Answered => tracing::debug!(client = self.id, "{}", frame.summary()),
                    Alone::NeedsHub => {
                        self.held = Some(Event::Frame(frame));
                        self.hub_work = true;
                        break;
                    }
                },
                Event::Rejected(err) => self.bad_input.note(&err, now),
                Event::End(ending) => {
                    self.held = Some(Event::End(ending));
                    self.hub_work = true;
                    break;
                }
            }
        }
        self.take_transmit(now);
    }

    /// Moves the session's owed bytes (answers, pings, errors) into the output.
    fn take_transmit(&mut self, now: Instant) {
        let transmit = self.session.transmit();
        if !transmit.is_empty() {
            let bytes = std::mem::take(transmit);
            self.out.push(bytes, None, now);
        }
    }

    /// The session has ended: unlisted at once, then (after the receipts
    /// it is owed) the last frame and FIN.
    fn end(&mut self, ending: Ending, hub: &mut Hub, now: Instant) {
        if self.listed {
            hub.leave(self.id);
            self.listed = false;
        }
        self.paused = false;
        if ending.owed_receipts {
            let until = now + hub.config().ack_timeout + RECEIPT_SLACK;
            self.phase = Phase::AwaitingReceipts { ending, until };
            self.check_receipts(hub, now);
        } else {
            self.last_word(ending, hub, now);
        }
    }

    /// While awaiting receipts: moves on once none is owed, or at the deadline.
    fn check_receipts(&mut self, hub: &mut Hub, now: Instant) {
        let Phase::AwaitingReceipts { until, .. } = &self.phase else { return };
        if hub.owes_receipts(self.id) && now < *until {
            return;
        }
        let Phase::AwaitingReceipts { ending, .. } = std::mem::replace(&mut self.phase, Phase::Open) else { return };
        self.last_word(ending, hub, now);
    }

    /// Takes nothing more from others; the last frame goes behind what they
    /// queued, then FIN.
    fn last_word(&mut self, ending: Ending, hub: &mut Hub, now: Instant) {
        hub.close_queue(self.id);
        // Frames queued before the close whose wake-up has not come yet go
        // before the farewell too.
        self.queued_in_hub = true;
        self.phase = Phase::Flushing { reason: ending.reason, drain: ending.drain, farewell: ending.farewell };
        self.flush(hub, now);
    }

    /// Stages queued frames from the hub while little is owed (frames wait,
    /// counted, in the hub's queue until the socket can take them), then the
    /// farewell once the queue is empty; once everything is written, the
    /// FIN and what the phase does next.
    fn flush(&mut self, hub: &mut Hub, now: Instant) {
        if matches!(self.phase, Phase::Done { .. } | Phase::Draining { .. }) {
            return;
        }
        while self.queued_in_hub && self.out.pending() < COALESCE_LIMIT {
            match hub.take_batch(self.id) {
                Some((batch, end)) => self.out.push(batch, Some(end), now),
                None => self.queued_in_hub = false,
            }
        }
        self.finish_flush(now);
    }

    /// Once the hub's queue is known empty, the farewell; once everything
    /// is written, the FIN and what the phase does next.
    fn finish_flush(&mut self, now: Instant) {
        if self.queued_in_hub {
            return;
        }
        if let Phase::Flushing { farewell, .. } = &mut self.phase {
            if let Some(farewell) = farewell.take() {
                self.out.push(farewell, None, now);
            }
        }
        if self.out.pending() > 0 {
            return;
        }
        if self.fin_after && !self.fin_sent {
            self.fin_sent = true;
            self.io.push_back(Io::ShutdownWrite);
        }
        if let Phase::Flushing { reason, drain, farewell: None } = &mut self.phase {
            if !std::mem::replace(&mut self.fin_sent, true) {
                self.io.push_back(Io::ShutdownWrite);
            }
            let reason = std::mem::take(reason);
            self.phase = if *drain {
                Phase::Draining { reason, until: now + LINGER_DRAIN, budget: DRAIN_BUDGET }
            } else {
                Phase::Done { reason }
            };
        }
    }

    /// Cuts the connection in both directions and ends it.
    fn cut(&mut self, why: &str, hub: &mut Hub) {
        if self.is_done() {
            return;
        }
        self.io.push_back(Io::ShutdownBoth);
        if self.listed {
            hub.leave(self.id);
            self.listed = false;
        }
        hub.close_queue(self.id);
        let reason = match &self.phase {
            Phase::Flushing { reason, .. } | Phase::Draining { reason, .. } => format!("{reason} ({why})"),
            Phase::AwaitingReceipts { ending, .. } => format!("{} ({why})", ending.reason),
            _ => why.to_string(),
        };
        self.out.clear();
        self.phase = Phase::Done { reason };
    }

    fn done_with_phase_reason(&mut self) {
        if let Phase::Draining { reason, .. } | Phase::Flushing { reason, .. } = &mut self.phase {
            let reason = std::mem::take(reason);
            self.phase = Phase::Done { reason };
        }
    }
}

/// Everything owed to the client, in order: answers, pings, errors, frames
/// from its hub queue. Remembers where each queue batch lies, to know how
/// far the socket has taken the queue (what acks are checked against), and
/// since when output has been owed (the write deadline).
#[derive(Debug)]
struct Outgoing {
    buf: Vec<u8>,
    /// `buf[pos..]` is still owed.
    pos: usize,
    /// Bytes the socket has taken, ever.
    sent: u64,
    /// Bytes put in the output, ever.
    pushed: u64,
    /// Queue batches still (partly) owed: (output offset where the batch
    /// starts, where it ends, queue offset where it starts).
    marks: VecDeque<(u64, u64, u64)>,
    /// How far the socket has taken the client's hub queue.
    queue_written: u64,
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
            queue_written: 0,
            write_timeout,
            owed_since: None,
        }
    }

    fn owed(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Appends whole frames owed from `now`; `queue_end` is the queue offset
    /// they end at, if they came from the hub's queue.
    fn push(&mut self, bytes: Vec<u8>, queue_end: Option<u64>, now: Instant) {
        if bytes.is_empty() {
            return;
        }
        let start = self.pushed;
        self.pushed += bytes.len() as u64;
        if let Some(end) = queue_end {
            self.marks.push_back((start, self.pushed, end - bytes.len() as u64));
        }
        if self.pending() == 0 {
            self.buf = bytes;
            self.pos = 0;
            self.owed_since = Some(now);
        } else {
            self.buf.extend_from_slice(&bytes);
        }
    }

    /// The socket took `n` more bytes.
    fn advance(&mut self, n: usize, _now: Instant) {
        let n = n.min(self.pending());
        self.pos += n;
        self.sent += n as u64;
        // Exactly the queued bytes the socket has taken: an ack counts for a
        // frame once all of it is written, even if the rest of its batch is
        // still owed (the client may ack it before the rest leaves).
        while let Some(&(start, end, from)) = self.marks.front() {
            if self.sent <= start {
                break;
            }
            self.queue_written = from + (self.sent.min(end) - start);
            if self.sent < end {
                break;
            }
            self.marks.pop_front();
        }
        if self.pending() == 0 {
            self.buf.clear();
            if self.buf.capacity() > 4 * COALESCE_LIMIT {
                self.buf = Vec::new();
            }
            self.pos = 0;
            self.owed_since = None;
        } else if self.pos > COALESCE_LIMIT && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Drops everything owed (the connection is cut).
    fn clear(&mut self) {
        self.buf = Vec::new();
        self.pos = 0;
        self.marks.clear();
        self.owed_since = None;
    }

    /// When the owed output's write deadline passes, if output is owed.
    fn deadline(&self) -> Option<Instant> {
        self.owed_since.map(|since| since + self.write_timeout)
    }

    /// True once output has been owed for the whole write timeout.
    fn overdue(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::message::{Ack, DeliveryStatus, ListRequest, Message, SendRequest, TimeRequest};
    use crate::proto::hub::HubConfig;
    use crate::proto::session::encode_into;
    use crate::{Decoder, ErrorCode, Frame};

    const SEC: Duration = Duration::from_secs(1);

    fn config() -> ConnConfig {
        ConnConfig {
            session: SessionConfig { max_payload: 65_536, frame_timeout: 2 * SEC, heartbeat: Some(10 * SEC) },
            write_timeout: 5 * SEC,
        }
    }

    fn hub() -> Hub {
        Hub::new(HubConfig { delivery_key: Some(1), ack_timeout: 3 * SEC, ..HubConfig::default() })
    }

    fn accept(hub: &mut Hub, now: Instant) -> Conn {
        let id = hub.next_id().unwrap();
        Conn::accept(id, SocketAddr::from(([127, 0, 0, 1], 5000 + id as u16)), config(), hub, now)
    }

    fn bytes(frame: Frame) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(&mut out, &frame);
        out
    }

    /// Writes everything owed (a socket that takes it all) and decodes it.
    fn sent(conn: &mut Conn, hub: &mut Hub, now: Instant) -> Vec<Frame> {
        let mut all = Vec::new();
        while !conn.transmit().is_empty() {
            let owed = conn.transmit().to_vec();
            all.extend_from_slice(&owed);
            conn.written_with_hub(owed.len(), hub, now);
        }
        let mut decoder = Decoder::new(u32::MAX);
        decoder.feed(&all);
        std::iter::from_fn(|| decoder.next_frame().unwrap()).collect()
    }

    /// Delivers the hub's wake-ups to the connections in `conns`.
    fn wake_all(hub: &mut Hub, conns: &mut [&mut Conn], now: Instant) {
        while let Some(id) = hub.poll_wake() {
            if let Some(conn) = conns.iter_mut().find(|c| c.id() == id) {
                conn.woken(hub, now);
            }
        }
    }

    #[test]
    fn a_newcomer_gets_its_hello_and_its_clocks_start_once_it_is_written() {
        let mut hub = hub();
        let start = Instant::now();
        let mut conn = accept(&mut hub, start);
        assert!(conn.wants_input() && hub.is_listed(1));
        let hello_len = conn.transmit().len();
        conn.written_with_hub(hello_len - 1, &mut hub, start + SEC);
        conn.written_with_hub(1, &mut hub, start + 2 * SEC);
        assert_eq!(conn.next_deadline(), Some(start + 12 * SEC), "heartbeat from the hello's last byte");
    }

    #[test]
    fn requests_are_answered_in_order_however_the_bytes_arrive() {
        let mut hub = hub();
        let now = Instant::now();
        let mut conn = accept(&mut hub, now);
        sent(&mut conn, &mut hub, now);
        let mut stream = bytes(Frame::new(1, TimeRequest));
        stream.extend(bytes(Frame::new(2, ListRequest)));
        for byte in stream {
            conn.receive_with_hub(&[byte], &mut hub, now);
        }
        let answers: Vec<u32> = sent(&mut conn, &mut hub, now).iter().map(|f| f.request_id).collect();
        assert_eq!(answers, [1, 2]);
    }

    #[test]
    fn a_client_that_does_not_read_is_paused_at_the_high_water_mark_then_cut_off() {
        let mut hub = hub();
        let start = Instant::now();
        let mut conn = accept(&mut hub, start);
        sent(&mut conn, &mut hub, start);
        let burst: Vec<u8> = (0..20_000).flat_map(|n| bytes(Frame::new(n, TimeRequest))).collect();
        conn.receive_with_hub(&burst, &mut hub, start);
        assert!(!conn.wants_input(), "paused");
        let owed = conn.transmit().len();
        assert!((OUTPUT_HIGH_WATER..OUTPUT_HIGH_WATER + 100).contains(&owed), "{owed}");
        conn.written_with_hub(owed - OUTPUT_HIGH_WATER / 2 + 1, &mut hub, start + SEC);
        assert!(!conn.wants_input(), "not below half yet");
        conn.written_with_hub(2, &mut hub, start + SEC);
        assert!(conn.wants_input() || conn.transmit().len() >= OUTPUT_HIGH_WATER, "answering resumed");
        assert_eq!(conn.next_deadline(), Some(start + 5 * SEC), "one deadline for all that is owed");
        conn.handle_timeout(&mut hub, start + 5 * SEC);
        assert_eq!(conn.poll_io(), Some(Io::ShutdownBoth));
        assert!(conn.is_done() && !hub.is_listed(1));
        assert!(conn.reason().unwrap().contains("slow consumer"));
    }

    #[test]
    fn a_half_closed_sender_gets_its_receipts_then_the_fin() {
        let mut hub = hub();
        let now = Instant::now();
        let (mut a, mut b) = (accept(&mut hub, now), accept(&mut hub, now));
        sent(&mut a, &mut hub, now);
        sent(&mut b, &mut hub, now);
        a.receive_with_hub(&bytes(Frame::new(7, SendRequest { to: 2, text: "hi".into() })), &mut hub, now);
        a.end_of_stream(&mut hub, now);
        assert!(!hub.is_listed(1) && a.poll_io().is_none(), "unlisted, but still owed a receipt");
        wake_all(&mut hub, &mut [&mut a, &mut b], now);
        let delivery = sent(&mut b, &mut hub, now)[0].request_id;
        b.receive_with_hub(&bytes(Frame::new(delivery, Ack)), &mut hub, now);
        wake_all(&mut hub, &mut [&mut a, &mut b], now);
        let receipts = sent(&mut a, &mut hub, now);
        assert!(matches!(&receipts[0].message, Message::Delivery(d) if d.status == DeliveryStatus::Delivered));
        assert_eq!(a.poll_io(), Some(Io::ShutdownWrite));
        assert!(a.is_done());
        assert_eq!(a.finish(&mut hub), "closed by client");
        assert!(!hub.knows(1));
    }

    #[test]
    fn a_half_closed_sender_waits_for_receipts_at_most_the_ack_timeout() {
        let mut hub = hub();
        let now = Instant::now();
        let (mut a, mut b) = (accept(&mut hub, now), accept(&mut hub, now));
        sent(&mut a, &mut hub, now);
        a.receive_with_hub(&bytes(Frame::new(7, SendRequest { to: 2, text: "hi".into() })), &mut hub, now);
        a.end_of_stream(&mut hub, now);
        let until = now + 3 * SEC + RECEIPT_SLACK;
        assert_eq!(a.next_deadline(), Some(until));
        hub.handle_timeout(now + 3 * SEC);
        wake_all(&mut hub, &mut [&mut a, &mut b], now + 3 * SEC);
        let receipts = sent(&mut a, &mut hub, now + 3 * SEC);
        assert!(matches!(&receipts[0].message, Message::Delivery(d) if d.status == DeliveryStatus::NotAcknowledged));
        assert!(a.is_done());
    }

    #[test]
    fn lost_framing_sends_the_error_after_queued_frames_then_drains() {
        let mut hub = hub();
        let now = Instant::now();
        let (mut a, mut b) = (accept(&mut hub, now), accept(&mut hub, now));
        sent(&mut b, &mut hub, now);
        b.receive_with_hub(&bytes(Frame::new(1, SendRequest { to: 1, text: "first".into() })), &mut hub, now);
        a.receive_with_hub(b"GET / HTTP/1.1\r\n\r\n", &mut hub, now);
        wake_all(&mut hub, &mut [&mut a, &mut b], now);
        let frames = sent(&mut a, &mut hub, now);
        let kinds: Vec<&Message> = frames.iter().map(|f| &f.message).collect();
        assert!(
            matches!(kinds[..], [Message::Hello(_), Message::Forwarded(_), Message::Error(e)] if e.code == ErrorCode::BadMagic)
        );
        assert_eq!(a.poll_io(), Some(Io::ShutdownWrite));
        assert!(a.wants_input() && !a.is_done(), "draining");
        assert_eq!(a.next_deadline(), Some(now + LINGER_DRAIN));
        a.receive_with_hub(&[0; 100], &mut hub, now);
        a.end_of_stream(&mut hub, now);
        assert!(a.is_done());
    }

    #[test]
    fn shutdown_sends_the_notice_then_fin_and_the_cut_ends_it() {
        let mut hub = hub();
        let now = Instant::now();
        let mut conn = accept(&mut hub, now);
        sent(&mut conn, &mut hub, now);
        hub.shutdown();
        wake_all(&mut hub, &mut [&mut conn], now);
        assert!(matches!(sent(&mut conn, &mut hub, now)[0].message, Message::Shutdown(_)));
        assert_eq!(conn.poll_io(), Some(Io::ShutdownWrite));
        assert!(!conn.is_done(), "the client closes in its own time");
        hub.cut_all();
        wake_all(&mut hub, &mut [&mut conn], now);
        assert_eq!(conn.poll_io(), Some(Io::ShutdownBoth));
        assert_eq!(conn.reason(), Some("cut off at shutdown"));
    }

    #[test]
    fn a_refused_newcomer_is_told_why_and_closed() {
        let mut hub = Hub::new(HubConfig { max_clients: 0, ..HubConfig::default() });
        let now = Instant::now();
        let mut conn = accept(&mut hub, now);
        assert!(!conn.wants_input());
        let frames = sent(&mut conn, &mut hub, now);
        assert!(matches!(&frames[0].message, Message::Error(e) if e.code == ErrorCode::TooManyClients));
        assert_eq!(conn.poll_io(), Some(Io::ShutdownWrite));
        assert!(conn.is_done() && hub.known() == 0);
    }
}
