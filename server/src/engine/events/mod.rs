//! The event engine (`--engine events`): a few worker threads, each with
//! its own event loop (`mio`: epoll on Linux, the AFD/IOCP backend on
//! Windows), serve every client; the course's "C10k" chapter.
//!
//! It only moves bytes: each connection is core's connection machine
//! ([`tnlm_core::proto::conn`]) and the server's clients are core's
//! [`Hub`](tnlm_core::proto::hub::Hub), shared by the workers behind one
//! lock ([`crate::hub_lock`]) that is never held across I/O. The accept loop
//! stays in [`crate::server`] and hands each accepted socket to a worker,
//! round-robin.
//!
//! **One writer per socket.** A connection belongs to one worker for its
//! whole life, and that worker is the only thread that reads or writes its
//! socket. Frames for it from elsewhere (messages forwarded from clients on
//! other workers, receipts, the shutdown notice) wait in its queue in the
//! hub, and the worker is woken to move them into the connection's output,
//! after what it already owes and never in the middle of a frame.

mod conn;
mod context;
mod handle;
mod worker;

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam_utils::sync::WaitGroup;

use handle::{Arrival, WorkerHandle};
use worker::Worker;

use crate::shared::Shared;

/// The running workers.
#[derive(Debug)]
pub(crate) struct Workers {
    workers: Vec<(Arc<WorkerHandle>, JoinHandle<()>)>,
    next: AtomicUsize,
}

impl Workers {
    /// Starts `count` workers (at least one).
    pub(crate) fn start(shared: &Arc<Shared>, count: usize) -> io::Result<Workers> {
        let mut workers = Vec::with_capacity(count.max(1));
        for index in 0..count.max(1) {
            let (worker, handle) = Worker::new(Arc::clone(shared))?;
            let thread = thread::Builder::new().name(format!("events-{index}")).spawn(move || worker.run())?;
            workers.push((handle, thread));
        }
        Ok(Workers { workers, next: AtomicUsize::new(0) })
    }

    /// Hands an accepted socket to the next worker; `running` is held until
    /// the connection has ended.
    pub(crate) fn serve(&self, stream: TcpStream, id: u32, addr: SocketAddr, running: WaitGroup) {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        self.workers[index].0.arrive(Arrival { stream, id, addr, running });
    }

    /// Stops every worker once its connections have ended, and waits for them.
    pub(crate) fn stop(self) {
        for (handle, _) in &self.workers {
            handle.stop();
        }
        for (_, thread) in self.workers {
            let _ = thread.join();
        }
    }
}
