//! Warnings about one client's bad input, rate-limited.
//!
//! Every bad frame is answered with an error frame, but logging each one
//! would let a client turn its garbage into the operator's disk space: one
//! 16-byte frame made a 120-byte log line, so 3.2 MB of bad frames wrote
//! 24.8 MB of log. Per connection, at most [`BURST`] warnings are written per
//! [`WINDOW`]; the rest are counted and reported in one line when the window
//! closes, and the total in one line when the connection ends. A client can
//! therefore cause at most `BURST + 1` lines a second plus one summary.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// Warnings written in full per window.
pub const BURST: u32 = 5;
/// The rate limit's window.
pub const WINDOW: Duration = Duration::from_secs(1);

/// One connection's bad-input warnings: written, counted, summarised.
#[derive(Debug)]
pub struct BadInputLog {
    client: u32,
    window_start: Instant,
    written: u32,
    suppressed: u64,
    total: u64,
}

impl BadInputLog {
    /// The log for client `client`, with its first window starting `now`.
    pub fn new(client: u32, now: Instant) -> BadInputLog {
        BadInputLog { client, window_start: now, written: 0, suppressed: 0, total: 0 }
    }

    /// Notes one bad frame received at `now`: a warning if the window has
    /// room, otherwise a count reported when the window closes.
    pub fn note(&mut self, err: &impl Display, now: Instant) {
        self.total += 1;
        if now.duration_since(self.window_start) >= WINDOW {
            self.report_suppressed();
            self.window_start = now;
            self.written = 0;
        }
        if self.written < BURST {
            self.written += 1;
            tracing::warn!(client = self.client, "bad input: {err}");
        } else {
            self.suppressed += 1;
        }
    }

    /// Writes what is still counted and, if any warnings were held back,
    /// the connection's total (call when the connection ends).
    pub fn finish(mut self) {
        let held_back = self.total > u64::from(self.written);
        self.report_suppressed();
        if held_back {
            tracing::warn!(client = self.client, "sent {} bad frames in all", self.total);
        }
    }

    fn report_suppressed(&mut self) {
        if self.suppressed > 0 {
            tracing::warn!(
                client = self.client,
                "bad input: {} more bad frames not logged (at most {BURST} a second are)",
                self.suppressed
            );
            self.suppressed = 0;
        }
    }
}
