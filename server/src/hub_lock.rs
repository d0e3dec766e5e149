//! The protocol's [`Hub`] as the engines share it: behind one lock that is
//! never held across I/O, with the way to wake each client's connection.
//!
//! The hub answers in values; two of them need threads: a wake-up for a
//! client (frames wait for it, or a signal), which goes to whoever drives
//! that client's connection through the [`Route`] its engine registered;
//! and a departure, which wakes whoever waits for clients to leave (tests,
//! shutdown).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tnlm_core::proto::conn::Conn;
use tnlm_core::proto::hub::{Hub, HubConfig};

/// How to tell a client's driver to look at its connection.
pub(crate) type Route = Arc<dyn Fn() + Send + Sync>;

/// The shared hub. See the [module docs](self).
pub(crate) struct HubLock {
    locked: Mutex<Locked>,
    /// Notified whenever a client is forgotten.
    departed: Condvar,
    /// Notified when the hub gets a deadline where it had none, for
    /// [`run_timer`](HubLock::run_timer).
    deadline_set: Condvar,
}

/// The hub and the route to each of its clients' connections.
pub(crate) struct Locked {
    pub(crate) hub: Hub,
    routes: HashMap<u32, Route>,
    /// The timer thread is to stop.
    stopped: bool,
    /// The timer thread waits on `deadline_set` (a notification costs a
    /// system call even with nobody waiting: only then is one sent).
    timer_waiting: bool,
}

/// Connections the hub asked to wake, taken under the lock and woken after it.
#[must_use = "wake them once the hub's lock is released"]
pub(crate) struct Wakes(Vec<Route>);

impl Wakes {
    /// Adds `other`'s wake-ups to these.
    pub(crate) fn extend(&mut self, other: Wakes) {
        self.0.extend(other.0);
    }

    /// Tells each connection's driver to look at it.
    pub(crate) fn wake(self) {
        for route in self.0 {
            route();
        }
    }
}

impl std::fmt::Debug for HubLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubLock")
    }
}

impl Locked {
    /// The connections the hub wants woken.
    pub(crate) fn wakes(&mut self) -> Wakes {
        let mut wakes = Vec::new();
        while let Some(id) = self.hub.poll_wake() {
            if let Some(route) = self.routes.get(&id) {
                wakes.push(Arc::clone(route));
            }
        }
        Wakes(wakes)
    }
}

impl HubLock {
    /// An empty hub configured by `config`.
    pub(crate) fn new(config: HubConfig) -> HubLock {
        let locked = Locked { hub: Hub::new(config), routes: HashMap::new(), stopped: false, timer_waiting: false };
        HubLock { locked: Mutex::new(locked), departed: Condvar::new(), deadline_set: Condvar::new() }
    }

    /// Runs `f` on the hub under its lock, then wakes the connections the
    /// hub asked to wake (after the lock is released).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Hub) -> R) -> R {
        let (result, wakes) = self.with_deferred(f);
        wakes.wake();
        result
    }

    /// [`with`](Self::with) for a caller that holds a lock of its own (a
    /// connection's): the wake-ups are returned, to be done once that lock
    /// is released too (a wake-up may be for the caller's own connection).
    /// Wakes the timer thread if the hub now has a deadline where it had none.
    pub(crate) fn with_deferred<R>(&self, f: impl FnOnce(&mut Hub) -> R) -> (R, Wakes) {
        let mut locked = self.lock();
        let idle = locked.hub.next_deadline().is_none();
        let result = f(&mut locked.hub);
        let timer = idle && locked.timer_waiting && locked.hub.next_deadline().is_some();
        let wakes = locked.wakes();
        drop(locked);
        if timer {
            self.deadline_set.notify_one();
        }
        (result, wakes)
    }

    /// The hub's timer thread (thread engine): runs the hub's deadlines (ack
    /// timeouts) as they come, until [`stop_timer`](Self::stop_timer). Every
    /// deadline shares one ack timeout, so a new one is never earlier than
    /// those waiting: the thread needs waking only when there was none.
    pub(crate) fn run_timer(&self) {
        let mut locked = self.lock();
        while !locked.stopped {
            let now = Instant::now();
            locked = match locked.hub.next_deadline() {
                Some(at) if at <= now => {
                    locked.hub.handle_timeout(now);
                    let wakes = locked.wakes();
                    drop(locked);
                    wakes.wake();
                    self.lock()
                }
                Some(at) => self.deadline_set.wait_timeout(locked, at - now).map_or_else(|e| e.into_inner().0, |r| r.0),
                None => {
                    locked.timer_waiting = true;
                    let mut locked = self.deadline_set.wait(locked).unwrap_or_else(|e| e.into_inner());
                    locked.timer_waiting = false;
                    locked
                }
            };
        }
    }

    /// Stops [`run_timer`](Self::run_timer).
    pub(crate) fn stop_timer(&self) {
        self.lock().stopped = true;
        self.deadline_set.notify_all();
    }

    /// The hub, locked. Never hold it across I/O.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Locked> {
        // A panic on one thread must not take the hub down with it.
        self.locked.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Client `id`'s connection has ended: the hub forgets it, and whoever
    /// waits for departures is told. Returns why it ended.
    pub(crate) fn forget(&self, conn: Conn) -> String {
        let id = conn.id();
        let reason = self.with(|hub| conn.finish(hub));
        self.lock().routes.remove(&id);
        self.departed.notify_all();
        reason
    }

    /// Client `id`'s connection is reached through `route`.
    pub(crate) fn route(&self, id: u32, route: Route) {
        self.lock().routes.insert(id, route);
    }

    /// Waits until `done` holds for the hub, at most `timeout`; true if it did.
    pub(crate) fn wait_until(&self, timeout: Duration, done: impl Fn(&Hub) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut locked = self.lock();
        while !done(&locked.hub) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            locked = self.departed.wait_timeout(locked, left).map_or_else(|e| e.into_inner().0, |r| r.0);
        }
        true
    }
}
