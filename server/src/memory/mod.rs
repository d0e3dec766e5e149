//! Giving departed clients' memory back to the system.
//!
//! With the thread engine every client's buffers are allocated on its own
//! thread. glibc's malloc spreads threads over up to 8 × cores arenas and
//! returns an arena's free pages only when a large block is freed there, so
//! after 3,000 clients had come and gone their small buffers kept about
//! 290 KiB resident in each of 15 arenas, and 2.3 MB in the main heap:
//! 8.4 MB above the idle server, for good (docs/RELIABILITY.md).
//!
//! Two calls fix that, and they are all this module does:
//! - [`use_one_arena`]: the binary asks for a single arena before it starts
//!   the thread engine, so that all freed memory is where a trim reaches it
//!   (glibc trims other arenas' tops only on a large free). Per-thread caches
//!   still serve most allocations without the arena's lock: the thread
//!   engine's request and message rates did not move beyond run-to-run noise
//!   (docs/BENCHMARKS.md).
//! - `Trimmer`: once the number of client threads alive has halved, a
//!   thread of its own asks for the free pages back (`malloc_trim`) when no
//!   client has left for 100 ms (at most 0.5 s later). Halving keeps it
//!   rare: a wave of 3,000 departures plans 6 trims, which the wait merges
//!   into one, and a steady coming and going of clients plans none.
//!
//! Elsewhere (Windows, macOS, musl) both are no-ops: those allocators return
//! memory on their own, or have no such call.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
use glibc as platform;

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod other;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
use other as platform;

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Below this many clients a wave of departures is not worth a trim: what
/// they leave behind is a few hundred KiB at most.
const SMALLEST_WAVE: usize = 64;

/// How long after the latest departure a due trim waits. A thread's last
/// cached blocks go back to the allocator when the thread exits, after its
/// client is counted gone; a trim at once missed most of them (7.0–8.4 MB
/// kept after 3,000 departures in a release build, against 2.3–4.1 MB with
/// this wait).
const SETTLE: Duration = Duration::from_millis(100);

/// The longest a due trim waits while departures keep coming.
const MOST_DELAY: Duration = Duration::from_millis(500);

/// Makes the allocator keep one arena for every thread, so that memory the
/// departed clients' threads freed can be given back (see the module docs).
/// Call it before the threads start; it affects the whole process.
pub fn use_one_arena() {
    platform::use_one_arena();
}

/// Decides when departures have freed enough memory to give it back, and
/// gives it back on a thread of its own ([`run_until_stopped`](Self::run_until_stopped)).
#[derive(Debug, Default)]
pub(crate) struct Trimmer {
    state: Mutex<State>,
    changed: Condvar,
}

/// What [`Trimmer`] counts and plans.
#[derive(Debug, Default)]
struct State {
    /// Client threads started and not yet ended.
    alive: usize,
    /// The most alive at once since the last trim was planned.
    high: usize,
    /// When the planned trim runs, and the latest it may run.
    due: Option<(Instant, Instant)>,
    /// Trims run so far.
    trims: u64,
    /// Set at shutdown.
    stopped: bool,
}

impl Trimmer {
    /// A client's thread has started.
    pub(crate) fn client_arrived(&self) {
        let mut state = self.state();
        state.alive += 1;
        state.high = state.high.max(state.alive);
    }

    /// A client's thread is ending. Plans a trim once the threads alive are
    /// down to half of the most since the last one, and pushes a planned
    /// trim back while departures go on. Returns whether it planned one.
    pub(crate) fn client_left(&self) -> bool {
        let mut state = self.state();
        state.alive = state.alive.saturating_sub(1);
        let now = Instant::now();
        if let Some((_, latest)) = state.due {
            state.due = Some(((now + SETTLE).min(latest), latest));
        }
        if state.high < SMALLEST_WAVE || state.alive > state.high / 2 {
            return false;
        }
        state.high = state.alive;
        if state.due.is_none() {
            state.due = Some((now + SETTLE, now + MOST_DELAY));
            self.changed.notify_all();
        }
        true
    }

    /// The trimming thread: runs each planned trim when it is due, until
    /// [`stop`](Self::stop).
    pub(crate) fn run_until_stopped(&self) {
        let mut state = self.state();
        while !state.stopped {
            state = match state.due {
                Some((at, _)) if at <= Instant::now() => {
                    state.due = None;
                    drop(state);
                    platform::give_back_free_memory();
                    let mut state = self.state();
                    state.trims += 1;
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

    /// Ends [`run_until_stopped`](Self::run_until_stopped).
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

    #[test]
    fn a_wave_of_departures_plans_a_trim_at_each_halving_and_churn_never() {
        let wave = Trimmer::default();
        (0..3000).for_each(|_| wave.client_arrived());
        let trims: Vec<usize> = (0..3000).rev().filter(|_| wave.client_left()).map(|_| wave.state().alive).collect();
        assert_eq!(trims, [1500, 750, 375, 187, 93, 46]);

        // 100 clients, one leaving and another arriving, again and again.
        let churn = Trimmer::default();
        (0..100).for_each(|_| churn.client_arrived());
        assert!((0..10_000).all(|_| {
            let trimmed = churn.client_left();
            churn.client_arrived();
            !trimmed
        }));
    }

    #[test]
    fn planned_trims_run_once_departures_settle_and_stop_ends_the_thread() {
        let trimmer = std::sync::Arc::new(Trimmer::default());
        let runner = std::sync::Arc::clone(&trimmer);
        let thread = std::thread::spawn(move || runner.run_until_stopped());
        (0..300).for_each(|_| trimmer.client_arrived());
        let planned = Instant::now();
        let plans = (0..300).filter(|_| trimmer.client_left()).count();
        assert_eq!(plans, 3, "halvings at 150, 75 and 37");

        let state = trimmer.state();
        let (state, timeout) = trimmer
            .changed
            .wait_timeout_while(state, Duration::from_secs(5), |s| s.trims == 0)
            .unwrap_or_else(|e| e.into_inner());
        assert!(!timeout.timed_out(), "no trim within 5 s");
        assert_eq!(state.trims, 1, "the plans of one wave make one trim");
        assert!(planned.elapsed() >= SETTLE, "trimmed {:?} after the wave", planned.elapsed());
        drop(state);

        trimmer.stop();
        thread.join().unwrap_or_else(|_| panic!("the trimming thread panicked"));
    }
}
