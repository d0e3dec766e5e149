//! Giving departed clients' memory back to the system.
//!
//! With the thread engine every client's buffers are allocated on its own
//! thread. glibc's malloc spreads threads over up to 8 × cores arenas and
//! returns an arena's free pages only when a large block is freed there, so
//! after 3,000 clients had come and gone their small buffers kept about
//! 290 KiB resident in each of 15 arenas, and 2.3 MB in the main heap:
//! 8.4 MB above the idle server, for good (docs/RELIABILITY.md).
//!
//! Two calls fix that:
//! - [`use_one_arena`]: the binary asks for a single arena before it starts
//!   the thread engine, so that all freed memory is where a trim reaches it
//!   (glibc trims other arenas' tops only on a large free). Per-thread caches
//!   still serve most allocations without the arena's lock: the thread
//!   engine's request and message rates did not move beyond run-to-run noise
//!   (docs/BENCHMARKS.md).
//! - `Trimmer`: the client threads are joined by a thread of its own as
//!   they end, so that by the time a departure is counted, the thread has
//!   exited and handed its last cached blocks back to the allocator. Once the
//!   threads alive have halved, that thread asks for the free pages back
//!   (`malloc_trim`) when no client has left for 100 ms (at most 0.5 s
//!   later). Halving keeps it rare: a wave of 3,000 departures plans 6 trims,
//!   which the wait merges into one, and a steady coming and going of clients
//!   plans none. (Counted as each thread finished its work instead, before
//!   it exited, the trim sometimes ran before the stragglers had freed their
//!   blocks: up to 3.3 MB more stayed, in 2 runs of 7 with 3,000 clients,
//!   release build.)
//!
//! Elsewhere (Windows, macOS, musl) the two calls are no-ops: those
//! allocators return memory on their own, or have no such call. The threads
//! are joined there too.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
use glibc as platform;

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod other;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
use other as platform;

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Below this many clients a wave of departures is not worth a trim: what
/// they leave behind is a few hundred KiB at most.
const SMALLEST_WAVE: usize = 64;

/// How long after the latest departure a due trim waits, so that the plans
/// of one wave of departures make one trim.
const SETTLE: Duration = Duration::from_millis(100);

/// The longest a due trim waits while departures keep coming.
const MOST_DELAY: Duration = Duration::from_millis(500);

/// Makes the allocator keep one arena for every thread, so that memory the
/// departed clients' threads freed can be given back (see the module docs).
/// Call it before the threads start; it affects the whole process.
pub fn use_one_arena() {
    platform::use_one_arena();
}

/// Joins the client threads as they end and gives their memory back, on a
/// thread of its own ([`run_until_stopped`](Self::run_until_stopped)).
#[derive(Debug, Default)]
pub(crate) struct Trimmer {
    state: Mutex<State>,
    changed: Condvar,
}

/// What [`Trimmer`] holds, counts and plans.
#[derive(Debug, Default)]
struct State {
    /// The threads of the clients not yet joined, by client id.
    threads: HashMap<u32, JoinHandle<()>>,
    /// Clients whose thread has done its work, to be joined.
    ending: Vec<u32>,
    /// The plan: how many are alive, and when to trim.
    plan: Plan,
    /// Set at shutdown.
    stopped: bool,
}

/// When to trim: the arithmetic of [`Trimmer`], apart from its threads.
#[derive(Debug, Default)]
struct Plan {
    /// Client threads started and not yet joined.
    alive: usize,
    /// The most alive at once since the last trim was planned.
    high: usize,
    /// When the planned trim runs, and the latest it may run.
    due: Option<(Instant, Instant)>,
    /// Trims run so far.
    trims: u64,
}

impl Plan {
    /// A client's thread has started.
    fn arrived(&mut self) {
        self.alive += 1;
        self.high = self.high.max(self.alive);
    }

    /// A client's thread has been joined at `now`. Plans a trim once the
    /// threads alive are down to half of the most since the last one, and
    /// pushes a planned trim back while departures go on. Returns whether it
    /// planned one.
    fn departed(&mut self, now: Instant) -> bool {
        self.alive = self.alive.saturating_sub(1);
        if let Some((_, latest)) = self.due {
            self.due = Some(((now + SETTLE).min(latest), latest));
        }
        if self.high < SMALLEST_WAVE || self.alive > self.high / 2 {
            return false;
        }
        self.high = self.alive;
        if self.due.is_none() {
            self.due = Some((now + SETTLE, now + MOST_DELAY));
        }
        true
    }
}

impl State {
    /// Takes the threads of the ending clients whose handle is here; an id
    /// whose handle [`Trimmer::started`] has not stored yet stays listed.
    fn take_ended(&mut self) -> Vec<JoinHandle<()>> {
        let State { threads, ending, .. } = self;
        let mut ended = Vec::new();
        ending.retain(|id| match threads.remove(id) {
            Some(thread) => {
                ended.push(thread);
                false
            }
            None => true,
        });
        ended
    }
}

impl Trimmer {
    /// Client `id`'s thread has been started; it is joined once it calls
    /// [`ending`](Self::ending).
    pub(crate) fn started(&self, id: u32, thread: JoinHandle<()>) {
        let mut state = self.state();
        state.threads.insert(id, thread);
        state.plan.arrived();
        if !state.ending.is_empty() {
            self.changed.notify_all();
        }
    }

    /// Client `id`'s thread has done its work and is about to exit.
    pub(crate) fn ending(&self, id: u32) {
        self.state().ending.push(id);
        self.changed.notify_all();
    }

    /// The trimming thread: joins the ending threads, and runs each planned
    /// trim when it is due, until [`stop`](Self::stop).
    pub(crate) fn run_until_stopped(&self) {
        let mut state = self.state();
        loop {
            let ended = state.take_ended();
            if !ended.is_empty() {
                drop(state);
                let count = ended.len();
                // A thread that panicked has ended all the same.
                ended.into_iter().for_each(|thread| drop(thread.join()));
                state = self.state();
                let now = Instant::now();
                for _ in 0..count {
                    state.plan.departed(now);
                }
                continue;
            }
            if state.stopped {
                return;
            }
            state = match state.plan.due {
                Some((at, _)) if at <= Instant::now() => {
                    state.plan.due = None;
                    drop(state);
                    platform::give_back_free_memory();
                    let mut state = self.state();
                    state.plan.trims += 1;
                    self.changed.notify_all();
                    state
                }
                Some((at, _)) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    self.changed.wait_timeout(state, wait).map_or_else(|e| e.into_inner().0, |r| r.0)
                }
                None => self.changed.wait(state).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// Ends [`run_until_stopped`](Self::run_until_stopped) once the threads
    /// that have called [`ending`](Self::ending) are joined.
    pub(crate) fn stop(&self) {
        self.state().stopped = true;
        self.changed.notify_all();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_wave_of_departures_plans_a_trim_at_each_halving_and_churn_never() {
        let now = Instant::now();
        let mut wave = Plan::default();
        (0..3000).for_each(|_| wave.arrived());
        let trims: Vec<usize> = (0..3000).filter_map(|_| wave.departed(now).then_some(wave.alive)).collect();
        assert_eq!(trims, [1500, 750, 375, 187, 93, 46]);

        // 100 clients, one leaving and another arriving, again and again.
        let mut churn = Plan::default();
        (0..100).for_each(|_| churn.arrived());
        assert!((0..10_000).all(|_| {
            let trimmed = churn.departed(now);
            churn.arrived();
            !trimmed
        }));
    }

    #[test]
    fn a_departure_pushes_a_due_trim_back_but_never_past_its_latest() {
        let start = Instant::now();
        let mut plan = Plan::default();
        (0..100).for_each(|_| plan.arrived());
        (0..50).for_each(|_| {
            plan.departed(start);
        });
        assert_eq!(plan.due, Some((start + SETTLE, start + MOST_DELAY)));
        plan.departed(start + Duration::from_millis(50));
        assert_eq!(plan.due, Some((start + Duration::from_millis(50) + SETTLE, start + MOST_DELAY)));
        plan.departed(start + Duration::from_millis(450));
        assert_eq!(plan.due, Some((start + MOST_DELAY, start + MOST_DELAY)));
    }

    #[test]
    fn ended_threads_are_joined_then_trimmed_for_once_and_stop_ends_the_thread() {
        let trimmer = Arc::new(Trimmer::default());
        let runner = Arc::clone(&trimmer);
        let thread = std::thread::spawn(move || runner.run_until_stopped());
        // A client that ends before its handle is stored waits for it.
        let early = Arc::clone(&trimmer);
        std::thread::spawn(move || early.ending(1000)).join().unwrap_or_else(|_| panic!("ending panicked"));
        assert!(trimmer.state().take_ended().is_empty());
        let late = std::thread::spawn(|| ());
        trimmer.started(1000, late);

        let started = Instant::now();
        let gate = Arc::new(std::sync::Barrier::new(301));
        for id in 0..300 {
            let (ending, gate) = (Arc::clone(&trimmer), Arc::clone(&gate));
            let client = std::thread::spawn(move || {
                gate.wait();
                ending.ending(id);
            });
            trimmer.started(id, client);
        }
        gate.wait();

        let state = trimmer.state();
        let (state, timeout) = trimmer
            .changed
            .wait_timeout_while(state, Duration::from_secs(5), |s| s.plan.trims == 0)
            .unwrap_or_else(|e| e.into_inner());
        assert!(!timeout.timed_out(), "no trim within 5 s");
        assert_eq!(state.plan.trims, 1, "the plans of one wave make one trim");
        assert_eq!((state.plan.alive, state.threads.len(), state.ending.len()), (0, 0, 0), "all joined");
        assert!(started.elapsed() >= SETTLE, "trimmed {:?} after the wave", started.elapsed());
        drop(state);

        trimmer.stop();
        thread.join().unwrap_or_else(|_| panic!("the trimming thread panicked"));
    }
}
