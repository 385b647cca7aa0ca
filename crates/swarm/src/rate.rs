//! Transfer rates from byte counts and the caller's clock.

use std::time::{Duration, Instant};

/// Bytes per second over roughly the last couple of seconds: counts are collected in windows
/// of [`Rate::WINDOW`] and smoothed, so one burst does not decide who gets an upload slot.
#[derive(Debug, Clone)]
pub struct Rate {
    window_start: Instant,
    in_window: u64,
    per_sec: f64,
}

impl Rate {
    pub const WINDOW: Duration = Duration::from_millis(500);

    pub fn new(now: Instant) -> Self {
        Rate { window_start: now, in_window: 0, per_sec: 0.0 }
    }

    fn roll(&mut self, now: Instant) {
        while now.duration_since(self.window_start) >= Self::WINDOW {
            let sample = self.in_window as f64 / Self::WINDOW.as_secs_f64();
            self.per_sec = 0.5 * self.per_sec + 0.5 * sample;
            self.in_window = 0;
            self.window_start += Self::WINDOW;
            if self.per_sec < 1.0 && now.duration_since(self.window_start) > Self::WINDOW * 8 {
                // Long idle: skip ahead instead of looping window by window.
                self.per_sec = 0.0;
                self.window_start = now;
            }
        }
    }

    pub fn add(&mut self, now: Instant, bytes: u64) {
        self.roll(now);
        self.in_window += bytes;
    }

    pub fn per_sec(&mut self, now: Instant) -> f64 {
        self.roll(now);
        self.per_sec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_on_a_steady_rate_and_decays_when_idle() {
        let t0 = Instant::now();
        let mut r = Rate::new(t0);
        for ms in 0..5000u64 {
            r.add(t0 + Duration::from_millis(ms), 1000); // 1 MB/s
        }
        let at = t0 + Duration::from_millis(5000);
        assert!((r.per_sec(at) - 1_000_000.0).abs() < 20_000.0, "{}", r.per_sec(at));
        assert!(r.per_sec(at + Duration::from_secs(60)) < 1.0);
    }
}
