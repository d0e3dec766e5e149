//! One client of the event engine: a non-blocking socket and core's
//! connection machine ([`tnlm_core::proto::conn::Conn`]). This file only
//! moves bytes: what a read returns goes to the machine, what the machine
//! owes goes to the socket, and the machine decides everything else (what
//! to answer, when to stop reading, the write deadline, the departure).

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_utils::sync::WaitGroup;
use mio::net::TcpStream;
use mio::Token;
use tnlm_core::proto::conn::{Conn as Machine, Io};

use crate::engine::events::context::{Context, READ_SHARE};
use crate::engine::events::handle::{Arrival, WorkerHandle};
use crate::shared::Shared;
use crate::socket_options::apply_socket_options;

/// One connection on a worker.
pub(crate) struct Conn {
    machine: Machine,
    stream: TcpStream,
    addr: std::net::SocketAddr,
    /// The instant the worker's timer heap holds for it, if any.
    pub(crate) scheduled: Option<Instant>,
    _running: WaitGroup,
}

impl Conn {
    /// Sets up an accepted socket: options, registration with `registry` as
    /// `token`, and the machine (listed in the hub with its hello, or refused).
    pub(crate) fn open(
        shared: &Shared,
        worker: &Arc<WorkerHandle>,
        registry: &mio::Registry,
        token: Token,
        arrival: Arrival,
    ) -> io::Result<Conn> {
        let Arrival { stream, id, addr, running } = arrival;
        let addr = tnlm_core::net::canonical(addr);
        apply_socket_options(shared, id, &stream);
        stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(stream);
        registry.register(&mut stream, token, mio::Interest::READABLE | mio::Interest::WRITABLE)?;
        let handle = Arc::clone(worker);
        shared.hub.route(id, Arc::new(move || handle.wake(token)));
        let machine = shared.hub.with(|hub| Machine::accept(id, addr, shared.config.conn(), hub, Instant::now()));
        Ok(Conn { machine, stream, addr, scheduled: None, _running: running })
    }

    /// The socket, to (de)register it.
    pub(crate) fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// True once the worker should remove it.
    pub(crate) fn is_done(&self) -> bool {
        self.machine.is_done()
    }

    /// Last steps once removed from the worker: the hub forgets it; logged.
    pub(crate) fn finish(self, shared: &Shared) {
        let id = self.machine.id();
        let reason = shared.hub.forget(self.machine);
        tracing::info!(client = id, addr = %self.addr, "disconnected: {reason}");
    }

    /// The socket is readable (or closed, or in error). With `edge`, this
    /// comes from a readiness event that reported new data only (see
    /// [`short_read_drains`]); otherwise the socket is read until it would block.
    pub(crate) fn on_readable(&mut self, cx: &mut Context<'_>, edge: bool) {
        let stop_at_short_read = edge && short_read_drains();
        let mut read_total = 0;
        while self.machine.wants_input() {
            if read_total >= READ_SHARE {
                cx.read_again();
                break;
            }
            let read = self.stream.read(cx.buffer);
            let now = Instant::now();
            let drained = match read {
                Ok(0) => {
                    self.with_hub(cx, |machine, hub, now| machine.end_of_stream(hub, now));
                    true
                }
                Ok(n) => {
                    read_total += n;
                    // Requests that need nothing shared are answered without the hub's lock.
                    self.machine.receive(&cx.buffer[..n], now);
                    if self.machine.needs_hub() {
                        self.with_hub(cx, |machine, hub, now| machine.poll_hub(hub, now));
                    }
                    stop_at_short_read && n < cx.buffer.len()
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => true,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => false,
                Err(err) => {
                    self.with_hub(cx, |machine, hub, _| machine.read_failed(&err.to_string(), hub));
                    true
                }
            };
            if drained {
                break;
            }
        }
        self.write_out(cx);
    }

    /// The socket can take more output.
    pub(crate) fn on_writable(&mut self, cx: &mut Context<'_>) {
        self.write_out(cx);
    }

    /// The hub has news for it (frames queued, a signal).
    pub(crate) fn on_wake(&mut self, cx: &mut Context<'_>) {
        self.with_hub(cx, |machine, hub, now| machine.woken(hub, now));
        self.write_out(cx);
    }

    /// A timer may be due.
    pub(crate) fn on_timer(&mut self, cx: &mut Context<'_>) {
        self.with_hub(cx, |machine, hub, now| machine.handle_timeout(hub, now));
        self.write_out(cx);
    }

    /// When [`on_timer`](Self::on_timer) is next needed.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.machine.next_deadline()
    }

    /// Runs `f` on the machine with the hub locked, then wakes whom the hub asks to.
    fn with_hub(&mut self, cx: &Context<'_>, f: impl FnOnce(&mut Machine, &mut tnlm_core::proto::hub::Hub, Instant)) {
        let machine = &mut self.machine;
        cx.shared.hub.with(|hub| f(machine, hub, Instant::now()));
    }

    /// Writes what the machine owes until the socket is full or all is
    /// written, then does what the machine asks of the socket.
    fn write_out(&mut self, cx: &mut Context<'_>) {
        let paused = !self.machine.wants_input();
        while !self.machine.transmit().is_empty() {
            match self.stream.write(self.machine.transmit()) {
                Ok(0) => {
                    self.with_hub(cx, |machine, hub, _| machine.write_failed("the socket took nothing", hub));
                }
                Ok(n) => {
                    self.machine.written(n, Instant::now());
                    if self.machine.needs_hub() {
                        self.with_hub(cx, |machine, hub, now| machine.poll_hub(hub, now));
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => self.with_hub(cx, |machine, hub, _| machine.write_failed(&err.to_string(), hub)),
            }
        }
        while let Some(io) = self.machine.poll_io() {
            let how = match io {
                Io::ShutdownWrite => Shutdown::Write,
                Io::ShutdownBoth => Shutdown::Both,
            };
            let _ = self.stream.shutdown(how);
        }
        if paused && self.machine.wants_input() {
            // Answering resumed (or a drain began): read what waits.
            cx.read_again();
        }
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
