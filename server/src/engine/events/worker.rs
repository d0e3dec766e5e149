//! One worker of the event engine: a thread with its own `mio::Poll` that
//! owns a share of the connections and is the only thread that touches
//! their sockets.
//!
//! Each turn it waits for readiness, a wake-up or its next timer, then
//! registers newly accepted sockets, serves readable and writable sockets,
//! tells its connections the hub has news for them (the ready list, filled
//! by [`WorkerHandle::wake`]), and runs the timers that are due: its
//! connections' and the hub's (ack timeouts; every worker watches it, and
//! whichever comes first runs it).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use slab::Slab;

use crate::engine::events::conn::Conn;
use crate::engine::events::context::Context;
use crate::engine::events::handle::{WorkerHandle, WAKER};
use crate::shared::Shared;

/// Size of the worker's one read buffer.
const READ_BUFFER: usize = 64 * 1024;

/// A worker's own state, on its thread.
pub(crate) struct Worker {
    shared: Arc<Shared>,
    handle: Arc<WorkerHandle>,
    poll: Poll,
    conns: Slab<Conn>,
    /// (deadline, token): lazily kept; an entry is acted on only if the
    /// connection is still scheduled for that instant.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Connections with input left over from a turn (they read their share).
    again: Vec<Token>,
    buffer: Vec<u8>,
}

impl Worker {
    /// A worker and the handle others reach it with.
    pub(crate) fn new(shared: Arc<Shared>) -> io::Result<(Worker, Arc<WorkerHandle>)> {
        let poll = Poll::new()?;
        let handle = Arc::new(WorkerHandle::new(&poll)?);
        let worker = Worker {
            shared,
            handle: Arc::clone(&handle),
            poll,
            conns: Slab::new(),
            timers: BinaryHeap::new(),
            again: Vec::new(),
            buffer: vec![0; READ_BUFFER],
        };
        Ok((worker, handle))
    }

    /// Serves connections until stopped and none is left.
    pub(crate) fn run(mut self) {
        self.handle.enter();
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(err) = self.poll.poll(&mut events, timeout) {
                if err.kind() != io::ErrorKind::Interrupted {
                    tracing::error!("event worker cannot poll: {err}");
                    return;
                }
            }
            let again = std::mem::take(&mut self.again);
            for token in again {
                self.with_conn(token, |conn, cx| conn.on_readable(cx, false));
            }
            for event in &events {
                let token = event.token();
                if token == WAKER {
                    continue;
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    // Only new data: a short read may end the reading (Linux).
                    let edge = !event.is_read_closed() && !event.is_error();
                    self.with_conn(token, |conn, cx| conn.on_readable(cx, edge));
                }
                if event.is_writable() || event.is_write_closed() {
                    self.with_conn(token, |conn, cx| conn.on_writable(cx));
                }
            }
            self.take_arrivals();
            self.serve_ready();
            self.run_timers();
            if self.conns.is_empty() && self.handle.may_exit() {
                return;
            }
        }
    }

    /// How long the next poll may wait: until the earliest timer; not at
    /// all if a connection has input left over, or news this worker listed
    /// for itself (see [`WorkerHandle::wake`]).
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.again.is_empty() || self.handle.has_ready() {
            return Some(Duration::ZERO);
        }
        let conns = self.timers.peek().map(|Reverse((at, _))| *at);
        let next = match (conns, self.shared.hub.with(|hub| hub.next_deadline())) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        next.map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Registers the sockets the accept loop handed over.
    fn take_arrivals(&mut self) {
        let arrivals = self.handle.take_arrivals();
        for arrival in arrivals {
            let entry = self.conns.vacant_entry();
            let token = Token(entry.key());
            match Conn::open(&self.shared, &self.handle, self.poll.registry(), token, arrival) {
                Ok(conn) => {
                    entry.insert(conn);
                    self.with_conn(token, |conn, cx| conn.on_writable(cx));
                }
                Err(err) => tracing::warn!("connection setup failed: {err}"),
            }
        }
    }

    /// Tells this worker's connections that the hub has news for them.
    fn serve_ready(&mut self) {
        let ready = self.handle.take_ready();
        for token in ready {
            self.with_conn(token, |conn, cx| conn.on_wake(cx));
        }
    }

    /// Runs every timer that is due: the hub's, then the connections'.
    fn run_timers(&mut self) {
        let now = Instant::now();
        self.shared.hub.with(|hub| {
            if hub.next_deadline().is_some_and(|at| at <= now) {
                hub.handle_timeout(now);
            }
        });
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(conn) = self.conns.get_mut(key) else { continue };
            if conn.scheduled != Some(at) {
                continue; // a stale entry: rescheduled since
            }
            conn.scheduled = None;
            self.with_conn(Token(key), |conn, cx| conn.on_timer(cx));
        }
    }

    /// Runs `f` on connection `token` (if it still exists), then removes it
    /// if it has ended, or schedules its next timer.
    fn with_conn(&mut self, token: Token, f: impl FnOnce(&mut Conn, &mut Context<'_>)) {
        let Some(conn) = self.conns.get_mut(token.0) else { return };
        let mut cx = Context::new(&self.shared, &mut self.buffer, &mut self.again, token);
        f(conn, &mut cx);
        if conn.is_done() {
            let mut conn = self.conns.remove(token.0);
            let _ = self.poll.registry().deregister(conn.stream_mut());
            conn.finish(&self.shared);
            return;
        }
        if let Some(at) = conn.deadline() {
            if conn.scheduled.is_none_or(|scheduled| at < scheduled) {
                conn.scheduled = Some(at);
                self.timers.push(Reverse((at, token.0)));
            }
        }
    }
}
