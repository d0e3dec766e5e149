//! The application heartbeat, one for both ends.
//!
//! A peer that falls silent for one interval is pinged (once per interval
//! while the silence lasts), and one silent for [`MISSES`] intervals is given
//! up on: that is how a pulled cable, which sends neither FIN nor RST, is
//! noticed. Anything received counts as a sign of life, not only a pong. The
//! server pings its clients (`tnlm-server --heartbeat`, default 30 s); a
//! client pings a silent server only with `tnlm-client --heartbeat`.

use std::time::{Duration, Instant};

/// A peer silent for this many intervals is given up on.
pub const MISSES: u32 = 3;

/// What the heartbeat wants done now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing until [`Heartbeat::next_deadline`].
    Nothing,
    /// Send a ping now (the heartbeat counts it as sent).
    Ping,
    /// The peer has been silent for `silent`, at least [`MISSES`] intervals:
    /// give up on it.
    GiveUp {
        /// How long nothing has been heard.
        silent: Duration,
    },
}

/// One connection's heartbeat: when the peer was last heard and last pinged.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    interval: Duration,
    last_heard: Instant,
    last_ping: Instant,
}

impl Heartbeat {
    /// A heartbeat of `interval` on a connection that starts `now` (which
    /// counts as the first sign of life).
    pub fn new(interval: Duration, now: Instant) -> Heartbeat {
        Heartbeat { interval, last_heard: now, last_ping: now }
    }

    /// The interval it was made with.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Something arrived from the peer at `now`.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
    }

    /// What is due at `now`. A [`Due::Ping`] is counted as sent at `now`.
    pub fn poll(&mut self, now: Instant) -> Due {
        let silent = now.saturating_duration_since(self.last_heard);
        if silent >= self.interval * MISSES {
            return Due::GiveUp { silent };
        }
        if silent >= self.interval && now.saturating_duration_since(self.last_ping) >= self.interval {
            self.last_ping = now;
            return Due::Ping;
        }
        Due::Nothing
    }

    /// When [`poll`](Self::poll) next has something to do, if nothing is
    /// heard meanwhile: the next ping or the giving up, whichever is first.
    pub fn next_deadline(&self) -> Instant {
        let give_up = self.last_heard + self.interval * MISSES;
        let ping = (self.last_heard + self.interval).max(self.last_ping + self.interval);
        give_up.min(ping)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_silent_peer_is_pinged_each_interval_then_given_up_after_three() {
        let start = Instant::now();
        let mut heartbeat = Heartbeat::new(SEC, start);
        assert_eq!(heartbeat.next_deadline(), start + SEC);
        assert_eq!(heartbeat.poll(start + SEC / 2), Due::Nothing);
        assert_eq!(heartbeat.poll(start + SEC), Due::Ping);
        assert_eq!(heartbeat.poll(start + SEC), Due::Nothing, "one ping per interval");
        assert_eq!(heartbeat.next_deadline(), start + 2 * SEC);
        assert_eq!(heartbeat.poll(start + 2 * SEC), Due::Ping);
        assert_eq!(heartbeat.next_deadline(), start + 3 * SEC, "giving up comes before a third ping");
        assert_eq!(heartbeat.poll(start + 3 * SEC - Duration::from_millis(1)), Due::Nothing);
        assert_eq!(heartbeat.poll(start + 3 * SEC), Due::GiveUp { silent: 3 * SEC });
    }

    #[test]
    fn anything_heard_starts_the_silence_anew() {
        let start = Instant::now();
        let mut heartbeat = Heartbeat::new(SEC, start);
        assert_eq!(heartbeat.poll(start + SEC), Due::Ping);
        heartbeat.heard(start + 2 * SEC + SEC / 2);
        assert_eq!(heartbeat.poll(start + 3 * SEC), Due::Nothing, "heard half an interval ago");
        assert_eq!(heartbeat.next_deadline(), start + 3 * SEC + SEC / 2);
        assert_eq!(heartbeat.poll(start + 3 * SEC + SEC / 2), Due::Ping);
        assert_eq!(heartbeat.poll(start + 5 * SEC + SEC / 2), Due::GiveUp { silent: 3 * SEC });
    }

    #[test]
    fn a_peer_that_keeps_talking_is_never_pinged() {
        let start = Instant::now();
        let mut heartbeat = Heartbeat::new(SEC, start);
        for tenth in 1..=100u32 {
            let now = start + SEC * tenth / 10;
            heartbeat.heard(now);
            assert_eq!(heartbeat.poll(now), Due::Nothing);
        }
    }

    #[test]
    fn time_going_backwards_is_not_silence() {
        let start = Instant::now() + 10 * SEC;
        let mut heartbeat = Heartbeat::new(SEC, start);
        heartbeat.heard(start - SEC);
        assert_eq!(heartbeat.poll(start - SEC), Due::Nothing);
        assert_eq!(heartbeat.next_deadline(), start + SEC);
    }
}
