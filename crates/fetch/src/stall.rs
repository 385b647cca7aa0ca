//! When a swarm has stalled and the missing pieces should come over HTTP instead: a state
//! machine over (time, bytes held), with no clock of its own. The fetch loop asks it twice a
//! second. Two ways a swarm stalls: nothing arrives for the timeout, or something arrives but
//! too little (a peer that trickles a piece every few seconds would otherwise keep a machine
//! waiting for ever): less than the minimum rate over a whole window of the timeout.

use std::time::{Duration, Instant};

/// What the fetch loop should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Every byte is here.
    Done,
    /// The swarm is making progress (or has not been quiet for long enough): look again later.
    Wait,
    /// Fetch the missing pieces over HTTP, then call [`StallWatch::refilled`].
    FetchOverHttp(Stall),
}

/// Why the swarm counts as stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// Nothing arrived for the timeout.
    Quiet,
    /// Less than the minimum rate arrived over the last window of the timeout.
    Slow { bytes_per_sec: u64 },
}

/// Watches the bytes held for a stall.
#[derive(Debug, Clone)]
pub struct StallWatch {
    timeout: Duration,
    /// Bytes per second the swarm must beat, over each window of `timeout`.
    min_rate: u64,
    /// The bytes held when they last changed (`None` before the first look).
    last_have: Option<u64>,
    last_change: Instant,
    /// The current window: when it started and the bytes held then.
    window: (Instant, u64),
}

impl StallWatch {
    pub fn new(now: Instant, timeout: Duration, min_rate: u64) -> Self {
        StallWatch { timeout, min_rate, last_have: None, last_change: now, window: (now, 0) }
    }

    /// `have` of `total` bytes are held at `now`.
    pub fn observe(&mut self, now: Instant, have: u64, total: u64) -> Next {
        if have == total {
            return Next::Done;
        }
        if self.last_have.is_none() {
            self.window = (now, have);
        }
        if self.last_have != Some(have) {
            self.last_have = Some(have);
            self.last_change = now;
        } else if now.saturating_duration_since(self.last_change) >= self.timeout {
            return Next::FetchOverHttp(Stall::Quiet);
        }
        let (start, at_start) = self.window;
        let span = now.saturating_duration_since(start);
        if span >= self.timeout && !self.timeout.is_zero() {
            let rate = (have.saturating_sub(at_start) as f64 / span.as_secs_f64()) as u64;
            self.window = (now, have);
            if rate < self.min_rate {
                return Next::FetchOverHttp(Stall::Slow { bytes_per_sec: rate });
            }
        }
        Next::Wait
    }

    /// The HTTP top-up ended at `now`: the swarm gets the whole timeout again.
    pub fn refilled(&mut self, now: Instant) {
        self.last_change = now;
        self.window = (now, self.last_have.unwrap_or(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn progress_keeps_the_swarm_and_quiet_for_the_timeout_goes_to_http() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = StallWatch::new(t0, T, 0);
        assert_eq!(w.observe(at(0), 0, 100), Next::Wait, "the first look starts the clock");
        assert_eq!(w.observe(at(9), 0, 100), Next::Wait);
        assert_eq!(w.observe(at(9), 10, 100), Next::Wait, "a byte arrived: the clock starts again");
        assert_eq!(w.observe(at(18), 10, 100), Next::Wait, "9 s quiet");
        assert_eq!(w.observe(at(19), 10, 100), Next::FetchOverHttp(Stall::Quiet), "10 s quiet");
        assert_eq!(w.observe(at(20), 10, 100), Next::FetchOverHttp(Stall::Quiet), "still, until it is refilled");
        w.refilled(at(25));
        assert_eq!(w.observe(at(34), 10, 100), Next::Wait, "the swarm gets the whole timeout again after a top-up");
        assert_eq!(w.observe(at(35), 10, 100), Next::FetchOverHttp(Stall::Quiet));
        assert_eq!(w.observe(at(35), 100, 100), Next::Done);
    }

    #[test]
    fn done_wins_and_a_clock_that_goes_back_is_no_stall() {
        let t0 = Instant::now() + Duration::from_secs(100);
        let mut w = StallWatch::new(t0, T, 0);
        assert_eq!(w.observe(t0, 100, 100), Next::Done, "nothing to fetch");
        assert_eq!(w.observe(t0, 5, 100), Next::Wait);
        assert_eq!(w.observe(t0 - Duration::from_secs(50), 5, 100), Next::Wait, "time before the last change counts as none");
        let mut zero = StallWatch::new(t0, Duration::ZERO, 0);
        assert_eq!(zero.observe(t0, 5, 100), Next::Wait, "a first look is progress");
        assert_eq!(zero.observe(t0, 5, 100), Next::FetchOverHttp(Stall::Quiet), "a zero timeout goes to HTTP at the first quiet look");
    }

    /// A peer that sends a little now and then (one piece every 9 s) is no swarm: below the
    /// minimum rate over a whole window, the rest comes over HTTP; above it, the swarm keeps it.
    #[test]
    fn a_trickle_below_the_minimum_rate_goes_to_http() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut w = StallWatch::new(t0, T, 1 << 20);
        let mut next = Next::Wait;
        let mut have = 0;
        for tick in 0..=40 {
            // Half a second per look; 256 KiB every 9 s.
            if tick % 18 == 17 {
                have += 256 << 10;
            }
            next = w.observe(at(tick * 500), have, 64 << 20);
            if next != Next::Wait {
                break;
            }
        }
        assert!(matches!(next, Next::FetchOverHttp(Stall::Slow { bytes_per_sec }) if bytes_per_sec < 30_000), "{next:?}");
        w.refilled(at(20_000));
        assert_eq!(w.observe(at(25_000), have + (8 << 20), 64 << 20), Next::Wait);
        assert_eq!(w.observe(at(30_000), have + (16 << 20), 64 << 20), Next::Wait, "16 MiB in 10 s beats 1 MiB/s");
        assert_eq!(w.observe(at(40_000), have + (17 << 20), 64 << 20), Next::FetchOverHttp(Stall::Slow { bytes_per_sec: 104_857 }));
    }
}
