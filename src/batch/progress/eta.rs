//! The ETA: a pure function of what the run has measured, so it can be tested without
//! a clock.
//!
//! Two things are added up: the rest of the pass in progress, and the passes after it.
//! The rest of the pass is the larger of the measured time per ticker × the tickers it
//! still has (queued, running, or waiting for a retry in this pass), and the longest
//! known retry path (a retry's pending delay plus the time its previous attempt took:
//! tickers that failed once tend to be the slow ones). Tickers a later pass will retry
//! cost at least their count × the time per ticker, and at least the longest attempt
//! they failed in. While any work remains the answer is at least one second: never
//! "ETA 0s" with batches running or retries pending.

/// What the ETA is computed from (seconds and ticker counts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EtaInput {
    /// Seconds since the first batch started.
    pub busy_secs: f64,
    /// Distinct tickers with nothing left to do (complete, or failed for good).
    pub settled: u64,
    /// Tickers still to do in the pass in progress (queued, running, retry pending).
    pub in_pass: u64,
    /// Tickers that failed and that a later pass will try again.
    pub next_pass: u64,
    /// Known retry paths in this pass, in seconds (delay left + expected duration).
    pub retry_paths: Vec<f64>,
    /// The longest attempt (seconds) that the next-pass tickers failed in.
    pub next_pass_secs: f64,
    /// Anything still running or to do (batches, tickers, retries).
    pub work_left: bool,
}

/// Seconds left, or `None` while there is nothing to estimate from yet.
pub fn eta_secs(i: &EtaInput) -> Option<f64> {
    if !i.work_left {
        return Some(0.0);
    }
    let per_ticker = (i.settled > 0).then(|| i.busy_secs / i.settled as f64);
    let longest_retry = i
        .retry_paths
        .iter()
        .copied()
        .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p))));
    if per_ticker.is_none() && longest_retry.is_none() && i.next_pass_secs <= 0.0 {
        return None;
    }
    let per_ticker = per_ticker.unwrap_or(0.0);
    let this_pass = (per_ticker * i.in_pass as f64).max(longest_retry.unwrap_or(0.0));
    let later = if i.next_pass > 0 {
        (per_ticker * i.next_pass as f64).max(i.next_pass_secs)
    } else {
        0.0
    };
    Some((this_pass + later).max(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> EtaInput {
        EtaInput {
            busy_secs: 60.0,
            settled: 60,
            work_left: true,
            ..EtaInput::default()
        }
    }

    #[test]
    fn measured_time_per_ticker_times_what_is_left() {
        let i = EtaInput {
            in_pass: 30,
            ..input()
        };
        assert_eq!(eta_secs(&i), Some(30.0));
    }

    #[test]
    fn a_pending_retry_counts_its_delay_and_its_last_attempt() {
        // Every ticker but two is done and they wait for their retry: the seed's
        // "100% ETA 0s" while ~100 s of retries remained.
        let i = EtaInput {
            in_pass: 2,
            retry_paths: vec![3.0 + 95.0],
            ..input()
        };
        assert_eq!(eta_secs(&i), Some(98.0));
    }

    #[test]
    fn later_passes_add_to_this_one() {
        let i = EtaInput {
            in_pass: 10,
            next_pass: 2,
            next_pass_secs: 40.0,
            ..input()
        };
        assert_eq!(eta_secs(&i), Some(10.0 + 40.0));
    }

    #[test]
    fn never_zero_while_work_remains() {
        let i = EtaInput {
            busy_secs: 0.01,
            settled: 60,
            in_pass: 0,
            work_left: true,
            ..EtaInput::default()
        };
        assert_eq!(eta_secs(&i), Some(1.0));
        let done = EtaInput {
            work_left: false,
            ..i
        };
        assert_eq!(eta_secs(&done), Some(0.0));
    }

    #[test]
    fn unknown_until_something_is_measured() {
        let i = EtaInput {
            busy_secs: 5.0,
            in_pass: 10,
            work_left: true,
            ..EtaInput::default()
        };
        assert_eq!(eta_secs(&i), None);
    }
}
