//! When a swarm has stalled and the missing pieces should come over HTTP instead: a state
//! machine over (time, bytes held), with no clock of its own. The fetch loop asks it twice a
//! second; the hardening issue will make the decision finer (per file, per peer set).

use std::time::{Duration, Instant};

/// What the fetch loop should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Every byte is here.
    Done,
    /// The swarm is making progress (or has not been quiet for long enough): look again later.
    Wait,
    /// Nothing arrived for the stall timeout: fetch the missing pieces over HTTP, then call
    /// [`StallWatch::refilled`].
    FetchOverHttp,
}

/// Watches the bytes held for a stall.
#[derive(Debug, Clone)]
pub struct StallWatch {
    timeout: Duration,
    /// The bytes held when they last changed (`None` before the first look).
    last_have: Option<u64>,
    last_change: Instant,
}

impl StallWatch {
    pub fn new(now: Instant, timeout: Duration) -> Self {
        StallWatch { timeout, last_have: None, last_change: now }
    }

    /// `have` of `total` bytes are held at `now`.
    pub fn observe(&mut self, now: Instant, have: u64, total: u64) -> Next {
        if have == total {
            return Next::Done;
        }
        if self.last_have != Some(have) {
            self.last_have = Some(have);
            self.last_change = now;
            return Next::Wait;
        }
        if now.saturating_duration_since(self.last_change) >= self.timeout {
            Next::FetchOverHttp
        } else {
            Next::Wait
        }
    }

    /// The HTTP top-up ended at `now`: the swarm gets the whole timeout again.
    pub fn refilled(&mut self, now: Instant) {
        self.last_change = now;
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
        let mut w = StallWatch::new(t0, T);
        assert_eq!(w.observe(at(0), 0, 100), Next::Wait, "the first look starts the clock");
        assert_eq!(w.observe(at(9), 0, 100), Next::Wait);
        assert_eq!(w.observe(at(9), 10, 100), Next::Wait, "a byte arrived: the clock starts again");
        assert_eq!(w.observe(at(18), 10, 100), Next::Wait, "9 s quiet");
        assert_eq!(w.observe(at(19), 10, 100), Next::FetchOverHttp, "10 s quiet");
        assert_eq!(w.observe(at(20), 10, 100), Next::FetchOverHttp, "still, until it is refilled");
        w.refilled(at(25));
        assert_eq!(w.observe(at(34), 10, 100), Next::Wait, "the swarm gets the whole timeout again after a top-up");
        assert_eq!(w.observe(at(35), 10, 100), Next::FetchOverHttp);
        assert_eq!(w.observe(at(35), 100, 100), Next::Done);
    }

    #[test]
    fn done_wins_and_a_clock_that_goes_back_is_no_stall() {
        let t0 = Instant::now() + Duration::from_secs(100);
        let mut w = StallWatch::new(t0, T);
        assert_eq!(w.observe(t0, 100, 100), Next::Done, "nothing to fetch");
        assert_eq!(w.observe(t0, 5, 100), Next::Wait);
        assert_eq!(w.observe(t0 - Duration::from_secs(50), 5, 100), Next::Wait, "time before the last change counts as none");
        let mut zero = StallWatch::new(t0, Duration::ZERO);
        assert_eq!(zero.observe(t0, 5, 100), Next::Wait, "a first look is progress");
        assert_eq!(zero.observe(t0, 5, 100), Next::FetchOverHttp, "a zero timeout goes to HTTP at the first quiet look");
    }
}
