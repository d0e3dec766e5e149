//! The thread engine (`--engine threads`, the lab's design): each client has
//! a thread of its own (`client-<id>`) that blocks in `read`, and core's
//! connection machine ([`tnlm_core::proto::conn::Conn`]) decides everything
//! else. This file only moves bytes.
//!
//! **One writer at a time.** A client's socket is written by whoever holds
//! its `writing` flag: its own thread, answering what it read (blocking,
//! which holds back a client that does not read its answers, TCP
//! backpressure on the one client causing it); or, when the hub wakes the
//! client for frames from elsewhere (a forwarded message, a receipt, the
//! shutdown notice) and nobody is writing, the waking thread itself with one
//! non-blocking `send` (Linux), and a short-lived flusher thread
//! (`client-<id>-tx`) for what the socket does not take at once. A sender
//! never waits on someone else's socket. (A persistent writer per client
//! would take a second thread per client, or a wake-up descriptor per
//! client; see docs/RELIABILITY.md.)
//!
//! Timers are the machine's deadlines: the read timeout is set to the next
//! one, and a blocked `send` waits at most until the write deadline.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tnlm_core::proto::conn::{Conn as Machine, Io};
use tnlm_core::proto::hub::Hub;

use crate::hub_lock::Wakes;
use crate::shared::Shared;
use crate::socket_options::apply_socket_options;

/// Size of one `read` once a client sends more than [`FIRST_READ`] at a
/// time (pipelining).
const READ_CHUNK: usize = 8 * 1024;
/// Size of the reads until then, from a buffer on the thread's stack. An idle
/// client's thread then touches only a few pages of its stack: at 10,000
/// clients the stack pages are most of the server's memory (an 8 KiB zeroed
/// buffer for every client cost 80 MB; see docs/BENCHMARKS.md).
const FIRST_READ: usize = 512;
/// The most bytes copied out of the machine for one `send`.
const WRITE_CHUNK: usize = 64 * 1024;
/// The shortest read timeout: timers fire at most this late.
const MIN_WAIT: Duration = Duration::from_millis(50);
/// The read timeout when no timer runs (no heartbeat, no partial frame).
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// One client's connection, shared by its thread, the threads that wake it
/// and its flusher.
pub(crate) struct Slot {
    id: u32,
    stream: TcpStream,
    state: Mutex<State>,
    /// Held by a blocking writer from its `send` until the machine has
    /// counted what the socket took; taken by the reader before it hands
    /// the machine what it read. An ack can overtake the count otherwise
    /// (the client reads the frame and acknowledges it while the writer has
    /// not yet counted it), and would be ignored as a lie.
    write_gate: Mutex<()>,
    /// Notified whenever the machine may have changed (its thread may be
    /// waiting for it to want input again, or to be done).
    changed: Condvar,
}

struct State {
    /// `None` once the connection has ended and the hub forgot it.
    machine: Option<Machine>,
    /// Someone is writing to the socket (see the [module docs](self)).
    writing: bool,
    /// The socket's send timeout now.
    send_wait: Duration,
    /// The client's thread waits on `changed` (a notification costs a
    /// system call even with nobody waiting: only then is one sent).
    waiting: bool,
}

/// Lists client `id` (accepted on `stream` from `addr`) in the hub and makes
/// its slot, with the hello owed. Runs on the accept loop's thread: the
/// connection time is read and formatted there (chrono keeps its time-zone
/// data per thread, and loading it on each connection thread cost ~8 KiB of
/// stack pages per client; docs/BENCHMARKS.md).
pub(crate) fn open(shared: &Arc<Shared>, id: u32, stream: TcpStream, addr: SocketAddr) -> Arc<Slot> {
    let state = State { machine: None, writing: false, send_wait: Duration::ZERO, waiting: false };
    let slot =
        Arc::new(Slot { id, stream, state: Mutex::new(state), write_gate: Mutex::new(()), changed: Condvar::new() });
    let (woken, waker) = (Arc::clone(&slot), Arc::clone(shared));
    shared.hub.route(id, Arc::new(move || woken.wake(&waker)));
    // Listed and stored under the slot's lock: a wake-up for it (a message
    // from a client that saw it listed) waits until the machine is here.
    let mut state = slot.lock();
    let (machine, wakes) =
        shared.hub.with_deferred(|hub| Machine::accept(id, addr, shared.config.conn(), hub, Instant::now()));
    state.machine = Some(machine);
    drop(state);
    wakes.wake();
    slot
}

/// Serves the client of `slot` on the calling thread (its own) until it
/// disconnects or the server shuts down.
pub(crate) fn serve(shared: &Shared, slot: &Slot, addr: SocketAddr) {
    let id = slot.id;
    apply_socket_options(shared, id, &slot.stream);
    slot.write_owed(shared);
    slot.read_loop(shared);
    if let Some(reason) = slot.forget(shared) {
        tracing::info!(client = id, %addr, "disconnected: {reason}");
    }
}

impl Slot {
    /// The client's id.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Tells a client that cannot be served why (`bytes`, a refusal), then FIN.
    pub(crate) fn turn_away(&self, bytes: &[u8]) {
        let _ = (&self.stream).write_all(bytes);
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// The connection is over (or its thread is gone): the hub forgets it.
    /// Returns why it ended, unless it was forgotten already.
    pub(crate) fn forget(&self, shared: &Shared) -> Option<String> {
        let machine = self.lock().machine.take()?;
        Some(shared.hub.forget(machine))
    }

    /// Reads until the connection ends, feeding the machine; waits instead
    /// while the machine wants no input (awaiting receipts, flushing, paused).
    fn read_loop(&self, shared: &Shared) {
        let mut small = [0u8; FIRST_READ];
        let mut large: Vec<u8> = Vec::new();
        let mut read_timeout = Duration::ZERO;
        loop {
            let Some((wants_input, deadline)) = self.wait_for_input() else { return };
            if !wants_input {
                self.run_timers(shared, deadline);
                continue;
            }
            self.rearm(&mut read_timeout, deadline);
            let chunk: &mut [u8] = if large.is_empty() { &mut small } else { &mut large };
            let read = (&self.stream).read(chunk);
            match read {
                Ok(0) => self.with_machine(shared, |m, hub, now| m.end_of_stream(hub, now)),
                Ok(n) => {
                    let bytes = if large.is_empty() { &small[..n] } else { &large[..n] };
                    let gate = self.write_gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    self.receive(shared, bytes);
                    drop(gate);
                    if n == FIRST_READ && large.is_empty() {
                        large = vec![0; READ_CHUNK]; // a busy client: read more at once from now on
                    }
                }
                Err(err) if is_timeout(&err) => self.run_timers(shared, None),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => self.with_machine(shared, |m, hub, _| m.read_failed(&err.to_string(), hub)),
            }
            self.write_owed(shared);
        }
    }

    /// Whether the machine wants input, and its next deadline; `None` once
    /// it is done. While it wants none and nobody writes, waits (at most
    /// until its deadline) for that to change.
    fn wait_for_input(&self) -> Option<(bool, Option<Instant>)> {
        let mut state = self.lock();
        loop {
            let machine = state.machine.as_ref()?;
            if machine.is_done() {
                return None;
            }
            let deadline = machine.next_deadline();
            if machine.wants_input() {
                return Some((true, deadline));
            }
            let wait = deadline.map_or(IDLE_WAIT, |at| at.saturating_duration_since(Instant::now()));
            if wait.is_zero() {
                return Some((false, deadline));
            }
            state.waiting = true;
            state = self.changed.wait_timeout(state, wait).map_or_else(|e| e.into_inner().0, |r| r.0);
            state.waiting = false;
        }
    }

    /// Runs the machine's timers if its deadline (or `due`) has passed.
    fn run_timers(&self, shared: &Shared, due: Option<Instant>) {
        self.with_machine(shared, |m, hub, now| {
            if due.or(m.next_deadline()).is_some_and(|at| at <= now) {
                m.handle_timeout(hub, now);
            }
        });
        self.write_owed(shared);
    }

    /// Sets the socket's read timeout so that the thread wakes when the
    /// machine's next timer is due, and not before: an idle client's thread
    /// sleeps through the whole heartbeat interval. (Waking every quarter of
    /// the shortest timer cost 4,000 wake-ups a second at 10,000 idle
    /// clients; see docs/BENCHMARKS.md.) Changed only when it must shrink by
    /// more than 1/8 (at most 1 s: a timer may fire that much late) or can
    /// grow more than twofold, so a busy client costs no extra system call.
    fn rearm(&self, current: &mut Duration, deadline: Option<Instant>) {
        let wanted =
            deadline.map_or(IDLE_WAIT, |at| at.saturating_duration_since(Instant::now())).clamp(MIN_WAIT, IDLE_WAIT);
        let slack = (*current / 8).min(Duration::from_secs(1));
        if current.is_zero() || wanted + slack < *current || wanted > *current * 2 {
            match self.stream.set_read_timeout(Some(wanted)) {
                Ok(()) => *current = wanted,
                Err(err) => tracing::debug!(client = self.id, "cannot set the read timeout: {err}"),
            }
        }
    }

    /// The hub has news for this client (frames queued, a signal). Called
    /// from any thread, with no lock held.
    fn wake(self: &Arc<Self>, shared: &Arc<Shared>) {
        if self.woken_and_sent(shared) {
            return;
        }
        let slot = Arc::clone(self);
        let flusher_shared = Arc::clone(shared);
        let started = thread::Builder::new()
            .name(format!("client-{}-tx", self.id))
            .stack_size(crate::config::CONNECTION_STACK)
            .spawn(move || slot.write_owed_as_writer(&flusher_shared));
        if let Err(err) = started {
            // The frames stay owed: the client's own thread writes them with
            // its next answer or ping.
            tracing::error!(client = self.id, "cannot start a thread to write queued frames, they wait: {err}");
            self.lock().writing = false;
        }
    }

    /// Under one hold of the connection's lock: tells the machine the hub
    /// has news and, if nobody is writing, sends what it owes with one
    /// non-blocking `send` (Linux), counted before the lock is released (so
    /// an ack for it cannot be looked at first). False when output is still
    /// owed and nobody writes it: the caller is then the writer and must
    /// start a flusher.
    fn woken_and_sent(&self, shared: &Shared) -> bool {
        let mut state = self.lock();
        let writing = state.writing;
        let Some(machine) = state.machine.as_mut() else { return true };
        let mut wakes = self.apply(machine, shared, |m, hub, now| m.woken(hub, now));
        if !writing && !machine.transmit().is_empty() {
            let owed = machine.transmit();
            if let Some(sent) = send_without_blocking(&self.stream, &owed[..owed.len().min(WRITE_CHUNK)]) {
                machine.written(sent, Instant::now());
                if machine.needs_hub() {
                    wakes.extend(self.apply(machine, shared, |m, hub, now| m.poll_hub(hub, now)));
                } else {
                    self.run_io(machine);
                }
            }
        }
        let handed_over = writing || machine.transmit().is_empty();
        if !handed_over {
            state.writing = true;
        }
        self.notify(state);
        wakes.wake();
        handed_over
    }

    /// Writes what is owed, blocking, unless someone else is writing (then
    /// it writes this too).
    fn write_owed(&self, shared: &Shared) {
        {
            let mut state = self.lock();
            let owed = state.machine.as_ref().is_some_and(|m| !m.transmit().is_empty());
            if !owed || state.writing {
                return;
            }
            state.writing = true;
        }
        self.write_owed_as_writer(shared);
    }

    /// Holding the writing flag: writes until nothing is owed, each `send`
    /// waiting at most until the machine's next deadline (then its timers
    /// run: past the write deadline, the machine cuts the client off).
    fn write_owed_as_writer(&self, shared: &Shared) {
        loop {
            let Some(chunk) = self.owed_chunk() else {
                let mut state = self.lock();
                if state.machine.as_ref().is_some_and(|m| !m.transmit().is_empty()) {
                    continue; // owed again since the look: keep writing
                }
                state.writing = false;
                self.notify(state);
                return;
            };
            if let Err(err) = self.limit_send_wait() {
                self.with_machine(shared, |m, hub, _| m.write_failed(&err.to_string(), hub));
                continue;
            }
            let gate = self.write_gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let written = (&self.stream).write(&chunk);
            if let Ok(sent @ 1..) = written {
                self.count_written(shared, sent);
            }
            drop(gate);
            match written {
                Ok(0) => self.with_machine(shared, |m, hub, _| m.write_failed("the socket took nothing", hub)),
                Ok(_) => {}
                // The write deadline has passed: the machine cuts the client
                // off as a slow consumer.
                Err(err) if is_timeout(&err) => self.send_timed_out(shared, &err),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => self.with_machine(shared, |m, hub, _| m.write_failed(&err.to_string(), hub)),
            }
        }
    }

    /// Hands the machine what was read; the hub is taken only if a frame
    /// needs it (requests for the time or the name do not).
    fn receive(&self, shared: &Shared, bytes: &[u8]) {
        let mut state = self.lock();
        let Some(machine) = state.machine.as_mut() else { return };
        machine.receive(bytes, Instant::now());
        let wakes = machine.needs_hub().then(|| self.apply(machine, shared, |m, hub, now| m.poll_hub(hub, now)));
        self.notify(state);
        if let Some(wakes) = wakes {
            wakes.wake();
        }
    }

    /// A blocked `send` reached the write deadline: the machine's timers run
    /// and cut the client off. On Windows a timed-out `send` leaves the
    /// socket in an undefined state, so it is final even if it returned a
    /// moment before the deadline.
    fn send_timed_out(&self, shared: &Shared, err: &io::Error) {
        self.with_machine(shared, |m, hub, now| {
            if m.write_deadline().is_some_and(|at| at <= now) {
                m.handle_timeout(hub, now);
            } else if cfg!(not(unix)) {
                let reason = format!("slow consumer: a send stayed blocked ({err})");
                tracing::warn!(client = m.id(), "disconnecting a {reason}");
                m.write_failed(&reason, hub);
            }
        });
    }

    /// The socket took `sent` more bytes; the hub is taken only if what
    /// follows needs it (frames waiting there, answering resumed).
    fn count_written(&self, shared: &Shared, sent: usize) {
        let mut state = self.lock();
        let Some(machine) = state.machine.as_mut() else { return };
        machine.written(sent, Instant::now());
        let wakes = machine.needs_hub().then(|| self.apply(machine, shared, |m, hub, now| m.poll_hub(hub, now)));
        if wakes.is_none() {
            self.run_io(machine);
        }
        self.notify(state);
        if let Some(wakes) = wakes {
            wakes.wake();
        }
    }

    /// A copy of the next bytes owed (at most [`WRITE_CHUNK`]), so the
    /// `send` runs with no lock held; `None` when nothing is owed.
    fn owed_chunk(&self) -> Option<Vec<u8>> {
        let state = self.lock();
        let owed = state.machine.as_ref()?.transmit();
        (!owed.is_empty()).then(|| owed[..owed.len().min(WRITE_CHUNK)].to_vec())
    }

    /// Makes a blocked `send` return by the machine's write deadline
    /// (within 1 ms); the socket's timeout is changed only when it differs
    /// by more. (Windows leaves a socket whose `send` timed out in an
    /// undefined state, so only the write deadline may end one.)
    fn limit_send_wait(&self) -> io::Result<()> {
        let mut state = self.lock();
        let Some(deadline) = state.machine.as_ref().and_then(Machine::write_deadline) else { return Ok(()) };
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        if left.abs_diff(state.send_wait) > Duration::from_millis(1) {
            self.stream.set_write_timeout(Some(left))?;
            state.send_wait = left;
        }
        Ok(())
    }

    /// Runs `f` on the machine with the hub locked, does what the machine
    /// asks of the socket, and tells a waiting thread something changed.
    fn with_machine(&self, shared: &Shared, f: impl FnOnce(&mut Machine, &mut Hub, Instant)) {
        let mut state = self.lock();
        let Some(machine) = state.machine.as_mut() else { return };
        let wakes = self.apply(machine, shared, f);
        self.notify(state);
        wakes.wake();
    }

    /// [`with_machine`](Self::with_machine) under the caller's lock: the
    /// wake-ups are returned, to be done once it is released.
    fn apply(&self, machine: &mut Machine, shared: &Shared, f: impl FnOnce(&mut Machine, &mut Hub, Instant)) -> Wakes {
        let ((), wakes) = shared.hub.with_deferred(|hub| f(machine, hub, Instant::now()));
        self.run_io(machine);
        wakes
    }

    /// Does what the machine asks of the socket.
    fn run_io(&self, machine: &mut Machine) {
        while let Some(io) = machine.poll_io() {
            let how = match io {
                Io::ShutdownWrite => Shutdown::Write,
                Io::ShutdownBoth => Shutdown::Both,
            };
            let _ = self.stream.shutdown(how);
        }
    }

    /// Releases `state` and wakes the client's thread if it waits for a change.
    fn notify(&self, state: MutexGuard<'_, State>) {
        let waiting = state.waiting;
        drop(state);
        if waiting {
            self.changed.notify_all();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic on one thread must not take the connection's state with it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Sends as much of `bytes` as the socket takes without blocking; `None` if
/// nothing could be sent (or this platform has no non-blocking send on a
/// blocking socket).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_without_blocking(stream: &TcpStream, bytes: &[u8]) -> Option<usize> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    socket2::SockRef::from(stream).send_with_flags(bytes, flags).ok().filter(|&sent| sent > 0)
}

/// Without `MSG_DONTWAIT`, owed frames are written by a flusher thread.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_without_blocking(_stream: &TcpStream, _bytes: &[u8]) -> Option<usize> {
    None
}

/// True for the errors a blocked read or write with a timeout returns.
pub fn is_timeout(err: &io::Error) -> bool {
    tnlm_core::net::is_socket_timeout(err)
}
