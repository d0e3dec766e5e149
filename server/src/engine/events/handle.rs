//! How other threads reach an event worker: its waker, the list of
//! connections the hub has news for, and the sockets handed to it.

use std::cell::Cell;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crossbeam_utils::sync::WaitGroup;
use mio::{Poll, Token, Waker};

/// The waker's token; connections use their slab key.
pub(crate) const WAKER: Token = Token(usize::MAX);

/// A socket the accept loop handed to a worker.
#[derive(Debug)]
pub(crate) struct Arrival {
    pub(crate) stream: TcpStream,
    pub(crate) id: u32,
    pub(crate) addr: SocketAddr,
    /// Held until the connection has ended, so shutdown can wait for it.
    pub(crate) running: WaitGroup,
}

/// What other threads use to reach a worker.
#[derive(Debug)]
pub(crate) struct WorkerHandle {
    waker: Waker,
    /// Connections the hub has news for, for the next turn.
    ready: Mutex<Vec<Token>>,
    /// Sockets accepted for this worker, not registered yet.
    arrivals: Mutex<Vec<Arrival>>,
    /// Set when the server has stopped: exit once no connection is left.
    stopping: AtomicBool,
}

thread_local! {
    /// The worker this thread is (its handle's address), 0 elsewhere: a
    /// worker queueing for its own connections needs no system call to
    /// wake itself.
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

impl WorkerHandle {
    /// The handle of the worker polling with `poll`.
    pub(crate) fn new(poll: &Poll) -> io::Result<WorkerHandle> {
        Ok(WorkerHandle {
            waker: Waker::new(poll.registry(), WAKER)?,
            ready: Mutex::new(Vec::new()),
            arrivals: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        })
    }

    /// The worker's own thread: marks it as this handle's, so queueing for
    /// its own connections needs no wake-up call.
    pub(crate) fn enter(&self) {
        CURRENT.set(std::ptr::from_ref(self) as usize);
    }

    /// The worker: takes the connections the hub has news for.
    pub(crate) fn take_ready(&self) -> Vec<Token> {
        std::mem::take(&mut *lock(&self.ready))
    }

    /// The worker, before it waits: true if connections are listed for it
    /// (it listed them itself, which wakes nobody).
    pub(crate) fn has_ready(&self) -> bool {
        !lock(&self.ready).is_empty()
    }

    /// The worker: takes the sockets handed to it.
    pub(crate) fn take_arrivals(&self) -> Vec<Arrival> {
        std::mem::take(&mut *lock(&self.arrivals))
    }

    /// The worker, with no connection left: true once it has been stopped
    /// and no socket waits to be taken.
    pub(crate) fn may_exit(&self) -> bool {
        self.stopping.load(Ordering::SeqCst) && lock(&self.arrivals).is_empty()
    }

    /// Has the worker look at connection `token` at its next turn.
    ///
    /// Only the first token since the worker last took the list wakes it:
    /// until then a wake-up is already on its way, and the worker takes the
    /// whole list at once. (One `eventfd` write per message was most of the
    /// cost of a relayed message between workers.)
    pub(crate) fn wake(&self, token: Token) {
        let mut ready = lock(&self.ready);
        let first = ready.is_empty();
        ready.push(token);
        drop(ready);
        if first && CURRENT.get() != std::ptr::from_ref(self) as usize {
            self.wake_up();
        }
    }

    /// Hands the worker a newly accepted socket.
    pub(crate) fn arrive(&self, arrival: Arrival) {
        lock(&self.arrivals).push(arrival);
        self.wake_up();
    }

    /// Tells the worker to exit once its connections have ended.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake_up();
    }

    fn wake_up(&self) {
        if let Err(err) = self.waker.wake() {
            tracing::error!("cannot wake an event worker: {err}");
        }
    }
}

/// Locks `mutex`, also after a panic elsewhere (the lists stay consistent).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
