//! The server-side rate limit: GCRA (the generic cell rate algorithm).
//!
//! Each allowed request pushes a "theoretical arrival time" one emission interval
//! (1/rate) further; a request is refused when that time runs more than
//! `(burst - 1)` intervals ahead of now. So `burst` requests may arrive at once, and
//! after that one every 1/rate seconds. Refused requests do not consume anything.

use std::time::{Duration, Instant};

/// A GCRA limiter over wall-clock instants.
#[derive(Debug, Clone)]
pub(crate) struct Gcra {
    interval: Duration,
    tolerance: Duration,
    /// Theoretical arrival time of the next conforming request.
    tat: Option<Instant>,
}

impl Gcra {
    /// A limiter allowing `rate` requests per second with bursts of `burst`.
    pub(crate) fn new(rate: f64, burst: u32) -> Gcra {
        let interval = Duration::from_secs_f64(1.0 / rate.max(1e-9)).max(Duration::from_nanos(1));
        Gcra {
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            tat: None,
        }
    }

    /// True when a request arriving at `now` conforms (and records it).
    pub(crate) fn check(&mut self, now: Instant) -> bool {
        let tat = self.tat.map_or(now, |t| t.max(now));
        if tat.duration_since(now) > self.tolerance {
            return false;
        }
        self.tat = Some(tat + self.interval);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval() {
        let mut g = Gcra::new(10.0, 3);
        let t0 = Instant::now();
        assert!(g.check(t0) && g.check(t0) && g.check(t0));
        assert!(!g.check(t0), "fourth at once exceeds the burst");
        assert!(!g.check(t0 + Duration::from_millis(50)));
        assert!(g.check(t0 + Duration::from_millis(100)));
        assert!(!g.check(t0 + Duration::from_millis(110)));
        // A quiet second refills the burst.
        let later = t0 + Duration::from_secs(2);
        assert!(g.check(later) && g.check(later) && g.check(later) && !g.check(later));
    }

    #[test]
    fn sustained_rate_is_honoured() {
        let mut g = Gcra::new(5.0, 1);
        let t0 = Instant::now();
        let allowed = (0..1000)
            .filter(|i| g.check(t0 + Duration::from_millis(i * 10)))
            .count();
        // 10 s at 5/s, give or take the first one.
        assert!((50..=51).contains(&allowed), "{allowed}");
    }
}
