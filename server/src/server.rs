//! The listening server: accept loop, one thread per client, clean shutdown.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_utils::sync::WaitGroup;
use tnlm_core::message::ClientInfo;
use tnlm_core::proto::hub::Refusal;

use crate::config::{Config, Engine, CONNECTION_STACK};
use crate::engine::events::Workers;
use crate::engine::threads;
use crate::shared::Shared;
use crate::spare_descriptor::{out_of_descriptors, SpareDescriptor, Taken};

/// How long clients get to close after the shutdown notice before their
/// connections are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// A bound server, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

/// Stops a running server from any thread (Ctrl-C handler, stdin, tests).
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// The clients connected right now (as an `L` request would list them).
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.shared.clients()
    }

    /// Asks the server to stop: it notifies every client, joins every thread
    /// and returns from [`Server::run`]. Calling it again does nothing.
    pub fn shutdown(&self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // A thread blocked in accept() cannot see the flag: connect to it.
        if let Err(err) = TcpStream::connect_timeout(&self.shared.wake_addr, Duration::from_secs(1)) {
            tracing::warn!("could not wake the accept loop: {err}");
        }
    }
}

impl Server {
    /// Binds the listening socket as `config` says (dual-stack `[::]` unless
    /// `bind` is given). Warnings about options the OS refused are logged.
    pub fn bind(config: Config) -> io::Result<Server> {
        config.check()?;
        let (listener, warnings) = match config.bind {
            Some(ip) => tnlm_core::net::listen(SocketAddr::new(ip, config.port), &config.socket)?,
            None => tnlm_core::net::listen_any(config.port, &config.socket)?,
        };
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config, tnlm_core::net::reachable(local_addr)));
        Ok(Server { listener, local_addr, shared })
    }

    /// The address actually bound (with the real port when `port` was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops this server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { shared: Arc::clone(&self.shared) }
    }

    /// Accepts clients on the calling thread until shut down, then sends
    /// every client the shutdown notice and waits for every thread.
    ///
    /// Connection threads are joined by the `memory` thread as they end
    /// ([`Trimmer`](crate::memory)): a client's thread, stack and buffers are
    /// released the moment it leaves. (Joined at the next accept instead,
    /// 3,000 departed clients kept 80 MB and 6,000 memory mappings until
    /// someone new connected.) `connections` counts them, so shutdown waits
    /// for each to finish with either engine.
    pub fn run(self) -> io::Result<()> {
        let (workers, trimmer, timer) = match self.shared.config.engine {
            Engine::Threads => {
                let shared = Arc::clone(&self.shared);
                let trimmer =
                    thread::Builder::new().name("memory".into()).spawn(move || shared.trimmer.run_until_stopped())?;
                // The hub's deadlines (ack timeouts); event workers watch them themselves.
                let shared = Arc::clone(&self.shared);
                let timer = thread::Builder::new().name("hub-timer".into()).spawn(move || shared.hub.run_timer())?;
                (None, Some(trimmer), Some(timer))
            }
            Engine::Events => (Some(Workers::start(&self.shared, self.shared.config.workers)?), None, None),
        };
        let connections = WaitGroup::new();
        if let Some(delay) = self.shared.config.accept_delay {
            self.delay_accepting(delay);
        }
        let mut backoff = Duration::ZERO;
        let mut spare = SpareDescriptor::new();
        let mut refusing = false;
        loop {
            let accepted = self.listener.accept();
            if self.shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            let accepted = match accepted {
                Err(err) if out_of_descriptors(&err) => match spare.accept_with_it(&self.listener) {
                    Some(Taken::Serve(stream, addr)) => Ok((stream, addr)),
                    Some(Taken::Refuse(stream, addr)) => {
                        if self.shared.stopping.load(Ordering::SeqCst) {
                            break;
                        }
                        refuse_out_of_descriptors(stream, addr, &mut refusing);
                        spare.retake();
                        continue;
                    }
                    None => Err(err),
                },
                other => other,
            };
            if self.shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            match accepted {
                Ok((stream, addr)) => {
                    backoff = Duration::ZERO;
                    refusing = false;
                    if let Err(err) = self.serve_client(stream, addr, connections.clone(), workers.as_ref()) {
                        tracing::error!("cannot serve {addr}: {err}");
                    }
                }
                Err(err) if concerns_one_connection(&err) => {
                    tracing::debug!("a connection was lost before it was accepted: {err}");
                }
                Err(err) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                    tracing::warn!("accept failed: {err}; retrying in {backoff:?}");
                    thread::sleep(backoff);
                }
            }
        }
        self.stop_clients(connections);
        if let Some(workers) = workers {
            workers.stop();
        }
        if let Some(trimmer) = trimmer {
            self.shared.trimmer.stop();
            let _ = trimmer.join();
        }
        if let Some(timer) = timer {
            self.shared.hub.stop_timer();
            let _ = timer.join();
        }
        Ok(())
    }

    /// `--accept-delay`: listening but not accepting yet, so connecting clients
    /// wait in the kernel's listen queue. Pauses on purpose; checks every
    /// 20 ms whether the server is being shut down meanwhile.
    fn delay_accepting(&self, delay: Duration) {
        tracing::info!("not accepting for {delay:?} (--accept-delay): new connections wait in the listen queue");
        let until = std::time::Instant::now() + delay;
        while !self.shared.stopping.load(Ordering::SeqCst) {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                tracing::info!("accepting from now on");
                return;
            }
            thread::sleep(left.min(Duration::from_millis(20)));
        }
    }

    /// Runs the server on a background thread (for tests and examples).
    pub fn spawn(self) -> RunningServer {
        let local_addr = self.local_addr;
        let handle = self.shutdown_handle();
        let thread = thread::Builder::new().name("tnlm-accept".into()).spawn(move || self.run());
        RunningServer { local_addr, handle, thread: Mutex::new(thread.ok()) }
    }

    /// Gives client `addr` an id and hands it to its engine: an event
    /// worker, or (without `workers`) a thread of its own. The connection
    /// holds a clone of `running` until it ends.
    fn serve_client(
        &self,
        stream: TcpStream,
        addr: SocketAddr,
        running: WaitGroup,
        workers: Option<&Workers>,
    ) -> io::Result<()> {
        let Some(id) = self.shared.next_id() else {
            return Err(io::Error::other("every client id has been used once; restart the server"));
        };
        match workers {
            Some(workers) => workers.serve(stream, id, addr, running),
            // Read the clock here: chrono keeps its time-zone data per thread,
            // and loading it on each connection thread cost ~8 KiB of stack
            // pages per client (docs/BENCHMARKS.md).
            None => self.spawn_client(stream, id, addr, running)?,
        }
        tracing::info!(client = id, addr = %tnlm_core::net::canonical(addr), "connected");
        Ok(())
    }

    /// Starts client `id`'s connection thread, which the `memory` thread
    /// joins when it ends.
    fn spawn_client(&self, stream: TcpStream, id: u32, addr: SocketAddr, running: WaitGroup) -> io::Result<()> {
        let addr = tnlm_core::net::canonical(addr);
        let slot = threads::open(&self.shared, id, stream, addr);
        let departure = Departure { shared: Arc::clone(&self.shared), slot: Arc::clone(&slot) };
        let spawned =
            thread::Builder::new().name(format!("client-{id}")).stack_size(CONNECTION_STACK).spawn(move || {
                // Dropped in reverse order: the departure, then the count
                // that shutdown waits on.
                let _running = running;
                let departure = departure;
                threads::serve(&departure.shared, &departure.slot, addr);
            });
        match spawned {
            Ok(thread) => self.shared.trimmer.started(id, thread),
            Err(err) => {
                // The hello was never written: the client is told why instead.
                slot.forget(&self.shared);
                slot.turn_away(&Refusal::Exhausted.frame());
                return Err(err);
            }
        }
        Ok(())
    }

    /// Tells every client the server stops, gives them the grace to close,
    /// cuts off the rest, and waits until every connection thread has ended.
    /// Tells every client the server stops, gives them the grace to close,
    /// cuts off the rest, and waits until every connection has ended. The
    /// hub answers the messages in flight first, queues the notices, and
    /// has each connection send FIN after its notice.
    fn stop_clients(&self, connections: WaitGroup) {
        let hub = &self.shared.hub;
        hub.with(|hub| {
            tracing::info!("shutting down: notifying {} client(s)", hub.len());
            hub.shutdown();
        });
        if !hub.wait_until(SHUTDOWN_GRACE, |hub| hub.known() == 0) {
            hub.with(|hub| {
                tracing::warn!("{} client(s) did not close in time; cutting them off", hub.known());
                hub.cut_all();
            });
        }
        connections.wait();
        tracing::info!("all client threads joined");
    }
}

/// What is left of a client when its connection thread ends, normally or by
/// a panic: the hub forgets it (a thread that died must not leave a ghost in
/// every `L` list), and the `memory` thread joins the thread.
struct Departure {
    shared: Arc<Shared>,
    slot: Arc<threads::Slot>,
}

impl Drop for Departure {
    fn drop(&mut self) {
        self.slot.forget(&self.shared);
        self.shared.trimmer.ending(self.slot.id());
    }
}

/// A server running on a background thread; shut down on [`shutdown`](Self::shutdown) or drop.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    handle: ShutdownHandle,
    thread: Mutex<Option<JoinHandle<io::Result<()>>>>,
}

impl RunningServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// An address a local client can connect to (loopback for `[::]`/`0.0.0.0`).
    pub fn connect_addr(&self) -> SocketAddr {
        tnlm_core::net::reachable(self.local_addr)
    }

    /// How many clients are connected right now.
    pub fn client_count(&self) -> usize {
        self.handle.shared.client_count()
    }

    /// The clients connected right now.
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.handle.clients()
    }

    /// Waits (at most `timeout`) until client `id` has left the list;
    /// true if it did. Tests use it as the readiness signal for a departure.
    pub fn wait_client_gone(&self, id: u32, timeout: Duration) -> bool {
        self.handle.shared.wait_gone(id, timeout)
    }

    /// Stops the server and waits for all its threads.
    pub fn shutdown(&self) {
        self.handle.shutdown();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Tells a client accepted with the spare descriptor that the server is at
/// its open-file limit, and closes it. Warns once per stretch of refusals.
fn refuse_out_of_descriptors(mut stream: TcpStream, addr: SocketAddr, refusing: &mut bool) {
    if !*refusing {
        tracing::warn!(
            "out of file descriptors (the open-file limit, ulimit -n): refusing waiting clients with \
             too_many_clients until some leave"
        );
        *refusing = true;
    }
    tracing::debug!(addr = %tnlm_core::net::canonical(addr), "refused: out of file descriptors");
    let _ = stream.write_all(&Refusal::OutOfDescriptors.frame());
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// Whether an `accept` error concerns only the connection being accepted
/// (reset or aborted by the peer while it waited in the listen queue; Wine
/// reports `NotConnected` there), so the next `accept` can follow at once.
/// Other errors (out of file descriptors or memory) affect every connection
/// and are retried with a growing pause.
fn concerns_one_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::NotConnected
            | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_are_skipped_and_resource_errors_back_off() {
        for kind in [io::ErrorKind::ConnectionAborted, io::ErrorKind::ConnectionReset, io::ErrorKind::NotConnected] {
            assert!(concerns_one_connection(&io::Error::from(kind)), "{kind:?}");
        }
        for kind in [io::ErrorKind::OutOfMemory, io::ErrorKind::Other, io::ErrorKind::PermissionDenied] {
            assert!(!concerns_one_connection(&io::Error::from(kind)), "{kind:?}");
        }
        #[cfg(unix)]
        assert!(!concerns_one_connection(&io::Error::from_raw_os_error(24)), "EMFILE must back off");
    }

    #[test]
    fn a_connection_thread_that_panics_leaves_no_ghost_in_the_list() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).unwrap();
        let (stream, peer_addr) = listener.accept().unwrap();
        let shared = Arc::new(Shared::new(Config::default(), addr));
        let id = shared.next_id().unwrap();
        let slot = threads::open(&shared, id, stream, peer_addr);
        assert_eq!(shared.client_count(), 1);

        let departure = Departure { shared: Arc::clone(&shared), slot };
        let died = thread::spawn(move || {
            let _departure = departure;
            panic!("a bug in a connection thread");
        })
        .join();
        assert!(died.is_err());
        assert_eq!(shared.client_count(), 0, "listed after its thread died");
        assert!(shared.clients().is_empty());
    }
}
