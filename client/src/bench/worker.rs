//! The worker: one event-loop thread that opens its share of the connections,
//! writes batches, reads and counts the answers, and answers what the server
//! asks of a client (pongs, acks).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::SockRef;

use super::conn::{Conn, Role};
use super::incoming::{Incoming, SendBack};
use super::plan::{Job, Plan};
use super::report::Tally;
use super::workload::{template, Kind, Protocol};
use super::{nats, redis, tnlm};

/// What the worker threads and the thread that started them share.
pub(super) struct Shared {
    /// Every worker, and the starting thread, wait here once the connections are open.
    pub(super) barrier: Barrier,
    /// Set when a worker fails, so the others stop too.
    pub(super) failed: AtomicBool,
    /// Answers so far, for the progress line.
    pub(super) completed: AtomicU64,
}

impl Shared {
    /// The state shared by `threads` workers and the thread that starts them.
    pub(super) fn new(threads: usize) -> Shared {
        Shared { barrier: Barrier::new(threads + 1), failed: AtomicBool::new(false), completed: AtomicU64::new(0) }
    }
}

/// One event-loop thread and the connections it serves.
pub(super) struct Worker<'a> {
    /// The run, shared read-only by every worker.
    plan: &'a Plan,
    /// The barrier, the failure flag and the progress counter.
    shared: &'a Shared,
    /// Readiness events of every connection (token = index in `conns`).
    poll: Poll,
    /// This worker's connections.
    conns: Vec<Conn>,
    /// Global index of `conns[0]`.
    first: usize,
    /// Requests this worker may still start (`None`: until the deadline).
    budget: Option<u64>,
    /// What it counted.
    tally: Tally,
    /// Open loop: when each connection starts its next batch.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// When batches stop starting (`--duration`).
    deadline: Option<Instant>,
    /// The read buffer, reused by every read.
    scratch: Vec<u8>,
    /// Answers already added to the shared progress counter.
    reported: u64,
    /// Redis `message`: messages published (each should reach a subscriber).
    published: u64,
}

impl<'a> Worker<'a> {
    /// Opens `job`'s connections, waits at the barrier for the other workers,
    /// runs the measured part, and returns what it counted.
    pub(super) fn run(job: Job, plan: &'a Plan, shared: &'a Shared) -> Result<Tally, String> {
        let worker = Poll::new().map(|poll| Worker {
            plan,
            shared,
            poll,
            conns: Vec::with_capacity(job.conns),
            first: job.first,
            budget: job.budget,
            tally: Tally::new(),
            timers: BinaryHeap::new(),
            deadline: None,
            scratch: vec![0; 256 * 1024],
            reported: 0,
            published: 0,
        });
        let mut worker = match worker {
            Ok(worker) => worker,
            Err(err) => {
                shared.failed.store(true, Ordering::SeqCst);
                shared.barrier.wait();
                return Err(format!("cannot create an event loop: {err}"));
            }
        };
        let connected = worker.connect_all(job.conns);
        if connected.is_err() {
            shared.failed.store(true, Ordering::SeqCst);
        }
        shared.barrier.wait();
        connected?;
        if shared.failed.load(Ordering::SeqCst) {
            return Ok(worker.tally);
        }
        worker.measure()?;
        Ok(worker.tally)
    }

    /// Opens `count` connections, at most `window` waiting for their hello at once.
    fn connect_all(&mut self, count: usize) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        let mut opened = 0;
        let mut ready = 0;
        let mut last_progress = Instant::now();
        while ready < count {
            while opened < count && opened - ready < self.plan.window {
                self.open(opened)?;
                opened += 1;
            }
            let wait = self.plan.timeout.saturating_sub(last_progress.elapsed());
            if wait.is_zero() {
                return Err(format!(
                    "{} of {count} connections got no greeting within {:?}",
                    count - ready,
                    self.plan.timeout
                ));
            }
            self.poll.poll(&mut events, Some(wait)).map_err(|e| format!("poll: {e}"))?;
            for event in events.iter() {
                let index = event.token().0;
                let was_ready = self.conns[index].ready;
                self.service(index, event.is_readable(), Instant::now())?;
                if !was_ready && self.conns[index].ready {
                    ready += 1;
                    last_progress = Instant::now();
                }
            }
            if self.shared.failed.load(Ordering::Relaxed) {
                return Err("another generator thread failed".into());
            }
        }
        self.pair_up();
        Ok(())
    }

    /// Opens connection `index` of this worker, without waiting for it.
    fn open(&mut self, index: usize) -> Result<(), String> {
        let global = self.first + index;
        let mut stream = TcpStream::connect(self.plan.addr).map_err(|e| format!("connect {}: {e}", self.plan.addr))?;
        let _ = stream.set_nodelay(true);
        let _ = self.plan.socket.apply(SockRef::from(&stream));
        self.poll
            .registry()
            .register(&mut stream, Token(index), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| format!("register: {e}"))?;
        let role = match self.plan.kind {
            Kind::Idle => Role::Idle,
            Kind::Message | Kind::Publish if global % 2 == 1 => Role::Receiver,
            _ => Role::Requester,
        };
        let out = self.greeting(role, global);
        let in_flight =
            role == Role::Requester && self.plan.kind == Kind::Message && self.plan.protocol == Protocol::Tnlm;
        self.conns.push(Conn::new(stream, role, out, in_flight));
        Ok(())
    }

    /// What connection `global` writes first to be greeted: nothing for TNLM
    /// (the server says hello); for Redis a PING, or the SUBSCRIBE of a receiver;
    /// for NATS a CONNECT, its subscription and a PING.
    fn greeting(&self, role: Role, global: usize) -> Vec<u8> {
        match (self.plan.protocol, role) {
            (Protocol::Tnlm, _) => Vec::new(),
            (Protocol::Redis, Role::Receiver) => redis::command(&["SUBSCRIBE", &redis::channel(global - 1)]),
            (Protocol::Redis, _) => redis::command(&["PING"]),
            (Protocol::Nats, role) => nats::greeting(self.plan.kind, role, global),
        }
    }

    /// Builds each requester's request template (for `message`, addressed to its partner).
    fn pair_up(&mut self) {
        for index in 0..self.conns.len() {
            if self.conns[index].role != Role::Requester {
                continue;
            }
            let to = self.conns.get(index + 1).map_or(0, |b| b.id);
            let template = template(self.plan.protocol, self.plan.kind, &self.plan.text, to, self.first + index);
            self.conns[index].template = template;
        }
    }

    /// The measured run: batches until the budget or the deadline, then the last answers.
    fn measure(&mut self) -> Result<(), String> {
        let start = Instant::now();
        self.deadline = self.plan.duration.map(|d| start + d);
        let clients = f64::from(self.plan.clients.max(1));
        for index in 0..self.conns.len() {
            match self.plan.interval {
                Some(interval) if self.conns[index].role == Role::Requester => {
                    let offset = interval.mul_f64((self.first + index) as f64 / clients);
                    self.timers.push(Reverse((start + offset, index)));
                }
                _ => self.start_batch(index, start),
            }
            self.flush(index)?;
        }
        let mut events = Events::with_capacity(1024);
        let mut drain_deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if self.deadline.is_some_and(|d| now >= d) {
                self.stop_starting();
            }
            if self.all_done() {
                break;
            }
            if self.starting_over() {
                let deadline = *drain_deadline.get_or_insert(now + self.plan.timeout);
                if now >= deadline {
                    let lost: u64 = self.conns.iter().map(|c| u64::from(c.outstanding)).sum();
                    self.tally.errors += lost + self.unrelayed();
                    break;
                }
            }
            self.fire_timers(now)?;
            let mut wake = now + Duration::from_millis(200);
            if let Some(d) = self.deadline.filter(|d| *d > now) {
                wake = wake.min(d);
            }
            if let Some(Reverse((due, _))) = self.timers.peek() {
                wake = wake.min(*due);
            }
            self.poll.poll(&mut events, Some(wake.saturating_duration_since(now))).map_err(|e| format!("poll: {e}"))?;
            let now = Instant::now();
            for event in events.iter() {
                self.service(event.token().0, event.is_readable(), now)?;
            }
            let delta = self.tally.answered - self.reported;
            if delta > 0 {
                self.shared.completed.fetch_add(delta, Ordering::Relaxed);
                self.reported = self.tally.answered;
            }
        }
        Ok(())
    }

    /// The deadline passed (or the budget ran out): no batch starts any more.
    fn stop_starting(&mut self) {
        for conn in &mut self.conns {
            conn.finished = true;
        }
        self.timers.clear();
    }

    /// No connection will start another batch.
    fn starting_over(&self) -> bool {
        self.conns.iter().all(|c| c.finished)
    }

    /// Redis only: messages published but not yet seen by their subscriber.
    fn unrelayed(&self) -> u64 {
        if self.plan.protocol == Protocol::Redis && self.plan.kind == Kind::Message {
            self.published.saturating_sub(self.tally.relayed)
        } else {
            0
        }
    }

    /// The run is over: nothing more starts and every answer is in (idle: the hold is over).
    fn all_done(&self) -> bool {
        match self.plan.kind {
            // Idle: hold until the deadline.
            Kind::Idle => self.deadline.is_some_and(|d| Instant::now() >= d),
            _ => self.starting_over() && self.conns.iter().all(|c| c.outstanding == 0) && self.unrelayed() == 0,
        }
    }

    /// Open loop: starts the batches that are due at `now` and schedules the next ones.
    fn fire_timers(&mut self, now: Instant) -> Result<(), String> {
        while let Some(Reverse((due, index))) = self.timers.peek().copied() {
            if due > now {
                break;
            }
            self.timers.pop();
            let conn = &mut self.conns[index];
            if conn.outstanding == 0 && !conn.finished {
                self.start_batch(index, now);
                self.flush(index)?;
            }
            if let Some(interval) = self.plan.interval {
                if !self.conns[index].finished {
                    // Keep the schedule; if we fell behind, catch up from now.
                    self.timers.push(Reverse(((due + interval).max(now), index)));
                }
            }
        }
        Ok(())
    }

    /// Appends the next batch of `index` to its output.
    fn start_batch(&mut self, index: usize, now: Instant) {
        let conn = &mut self.conns[index];
        if conn.role != Role::Requester || conn.finished || conn.outstanding > 0 {
            return;
        }
        let n = match &mut self.budget {
            Some(left) => {
                let n = u64::from(self.plan.pipeline).min(*left);
                *left -= n;
                n as u32
            }
            None => self.plan.pipeline,
        };
        if n == 0 {
            conn.finished = true;
            return;
        }
        let tnlm = self.plan.protocol == Protocol::Tnlm;
        if let Some(in_flight) = &mut conn.in_flight {
            in_flight.start(conn.next_id, n);
        }
        for _ in 0..n {
            let at = conn.out.len();
            conn.out.extend_from_slice(&conn.template);
            if tnlm {
                tnlm::set_request_id(&mut conn.out, at, conn.next_id);
                conn.next_id = conn.next_id.wrapping_add(1).max(1);
            }
        }
        conn.outstanding = n;
        conn.batch_start = now;
        if self.plan.protocol == Protocol::Redis && self.plan.kind == Kind::Message {
            self.published += u64::from(n);
        }
    }

    /// Reads what arrived on `index`, handles it, and writes what that calls for.
    fn service(&mut self, index: usize, readable: bool, now: Instant) -> Result<(), String> {
        if readable {
            self.read(index, now)?;
        }
        self.flush(index)
    }

    /// Reads `index` until the socket is drained, handling every whole frame.
    fn read(&mut self, index: usize, now: Instant) -> Result<(), String> {
        loop {
            let n = match self.conns[index].stream.read(&mut self.scratch) {
                Ok(0) => return Err(format!("connection {} closed by the server", self.first + index)),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(format!("connection {}: {err}", self.first + index)),
            };
            let scratch = std::mem::take(&mut self.scratch);
            let result = if self.conns[index].partial.is_empty() {
                self.consume(index, &scratch[..n], now)
            } else {
                let mut joined = std::mem::take(&mut self.conns[index].partial);
                joined.extend_from_slice(&scratch[..n]);
                self.consume(index, &joined, now)
            };
            self.scratch = scratch;
            result?;
        }
    }

    /// Handles every whole frame in `bytes`; keeps a partial one for later.
    fn consume(&mut self, index: usize, bytes: &[u8], now: Instant) -> Result<(), String> {
        let mut at = 0;
        while at < bytes.len() {
            let Some((incoming, used)) = self.plan.protocol.next(&bytes[at..])? else { break };
            self.handle(index, incoming, &bytes[at..at + used], now)?;
            at += used;
        }
        if at < bytes.len() {
            self.conns[index].partial = bytes[at..].to_vec();
        }
        Ok(())
    }

    /// Acts on one frame from the server on `index`; `frame` is its bytes.
    fn handle(&mut self, index: usize, incoming: Incoming, frame: &[u8], now: Instant) -> Result<(), String> {
        let conn = &mut self.conns[index];
        match incoming {
            Incoming::Hello(id) if !conn.ready => {
                conn.ready = true;
                conn.id = id;
            }
            Incoming::Refused(why) => return Err(format!("connection {}: {why}", self.first + index)),
            Incoming::Ping(id) => self.plan.protocol.pong(id, &mut conn.out),
            Incoming::Relayed { ack } => {
                self.tally.relayed += 1;
                match ack {
                    SendBack::Nothing => {}
                    SendBack::TnlmAck(id) => conn.out.extend_from_slice(&tnlm::ack(id)),
                    SendBack::NatsReply { subject, payload } => {
                        let part = |range| frame.get(range).unwrap_or_default();
                        nats::publish(&mut conn.out, part(subject), None, part(payload));
                    }
                }
                if self.plan.kind == Kind::Publish {
                    self.delivered(index, now)?;
                }
            }
            // Redis greets with a PONG, which later answers PINGs.
            Incoming::Answer { id, ok } if conn.outstanding > 0 => self.answer(index, id, ok, now)?,
            // Redis greets with a PONG, which later answers PINGs.
            Incoming::Hello(_) if conn.outstanding > 0 => self.answer(index, None, true, now)?,
            Incoming::Hello(_) | Incoming::Answer { .. } | Incoming::Other => {}
        }
        Ok(())
    }

    /// `publish`: a message that reached subscriber `index` answers the oldest
    /// request of its publisher, the connection before it (a pair shares a worker):
    /// a plain publish has no answer of its own.
    fn delivered(&mut self, index: usize, now: Instant) -> Result<(), String> {
        let publisher = index.checked_sub(1).filter(|&a| self.conns[a].outstanding > 0);
        let publisher = publisher
            .ok_or_else(|| format!("connection {}: a message its publisher never sent", self.first + index))?;
        self.answer(publisher, None, true, now)?;
        // The publisher hears nothing itself: its next batch leaves from here.
        self.flush(publisher)
    }

    /// Counts the answer to request `id` (`None`: the next in order) on `index`,
    /// and starts the next batch when it completes one (closed loop).
    #[inline]
    fn answer(&mut self, index: usize, id: Option<u32>, ok: bool, now: Instant) -> Result<(), String> {
        let conn = &mut self.conns[index];
        if let Some(id) = id {
            conn.tick_off(id)?;
        }
        conn.outstanding -= 1;
        self.tally.record(ok, now.saturating_duration_since(conn.batch_start), now);
        if conn.outstanding == 0 && self.plan.interval.is_none() {
            self.start_batch(index, now);
        }
        Ok(())
    }

    /// Writes what `index` has to send, as far as the socket takes it.
    fn flush(&mut self, index: usize) -> Result<(), String> {
        let conn = &mut self.conns[index];
        let mut written = 0;
        while written < conn.out.len() {
            match conn.stream.write(&conn.out[written..]) {
                Ok(0) => return Err(format!("connection {}: the socket takes no more", self.first + index)),
                Ok(n) => written += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                // Not connected yet: the writable event comes when it is.
                Err(err) if err.kind() == io::ErrorKind::NotConnected => break,
                Err(err) => return Err(format!("connection {}: {err}", self.first + index)),
            }
        }
        conn.out.drain(..written);
        Ok(())
    }
}
