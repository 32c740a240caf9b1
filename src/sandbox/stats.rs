//! Request counters, readable in-process and as `GET /_sandbox/stats`.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A snapshot of what the sandbox has served (control endpoints `/_sandbox/*` are not
/// counted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxStats {
    /// Every request answered or not (hangs and drops included).
    pub requests: u64,
    /// Requests to the aggregates endpoint.
    pub data_requests: u64,
    /// 429 responses sent, from the rate limit or from faults.
    pub rate_limited: u64,
    /// Requests that got an injected fault.
    pub faults_injected: u64,
    /// Aggregates requests per ticker.
    pub by_ticker: BTreeMap<String, u64>,
    /// Responses per HTTP status (a `drop` counts as the 200 it started).
    pub by_status: BTreeMap<u16, u64>,
    /// The most aggregates requests that arrived within any one-second window.
    pub max_rps_observed: u64,
    /// The most aggregates requests being answered at once (arrived, reply not ready).
    #[serde(default)]
    pub max_in_flight: u64,
    /// Requests to the flat-file (S3) endpoint, of any kind and outcome.
    #[serde(default)]
    pub flat_requests: u64,
    /// Authenticated ListObjectsV2 requests of the flat-file bucket.
    #[serde(default)]
    pub flat_lists: u64,
    /// Authenticated GETs of object keys in the bucket (faulted and unknown ones included).
    #[serde(default)]
    pub flat_gets: u64,
    /// Authenticated HEADs of object keys in the bucket.
    #[serde(default)]
    pub flat_heads: u64,
    /// 403 answers of the flat-file endpoint (bad credentials or `forbidden` faults).
    #[serde(default)]
    pub flat_forbidden: u64,
}

/// The live counters behind [`SandboxStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) stats: SandboxStats,
    window: VecDeque<Instant>,
    in_flight: u64,
}

impl Counters {
    /// A request arrived (any path but the control endpoints).
    pub(crate) fn request(&mut self) {
        self.stats.requests += 1;
    }

    /// An aggregates request for `ticker` arrived at `now`.
    pub(crate) fn data_request(&mut self, ticker: &str, now: Instant) {
        self.stats.data_requests += 1;
        if !ticker.is_empty() {
            *self.stats.by_ticker.entry(ticker.to_string()).or_insert(0) += 1;
        }
        while self
            .window
            .front()
            .is_some_and(|&t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.window.pop_front();
        }
        self.window.push_back(now);
        self.stats.max_rps_observed = self.stats.max_rps_observed.max(self.window.len() as u64);
    }

    /// An aggregates request began being answered.
    pub(crate) fn answering(&mut self) {
        self.in_flight += 1;
        self.stats.max_in_flight = self.stats.max_in_flight.max(self.in_flight);
    }

    /// An aggregates request's reply is ready.
    pub(crate) fn answered(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// A response with `status` was (at least partly) sent.
    pub(crate) fn status(&mut self, status: u16) {
        *self.stats.by_status.entry(status).or_insert(0) += 1;
        if status == 429 {
            self.stats.rate_limited += 1;
        }
    }

    /// A request for the flat-file endpoint arrived.
    pub(crate) fn flat_request(&mut self) {
        self.stats.flat_requests += 1;
    }

    /// An authenticated listing of the flat-file bucket.
    pub(crate) fn flat_list(&mut self) {
        self.stats.flat_lists += 1;
    }

    /// An authenticated GET of a day file.
    pub(crate) fn flat_get(&mut self) {
        self.stats.flat_gets += 1;
    }

    /// An authenticated HEAD of a day file.
    pub(crate) fn flat_head(&mut self) {
        self.stats.flat_heads += 1;
    }

    /// The flat-file endpoint answered 403.
    pub(crate) fn flat_forbidden(&mut self) {
        self.stats.flat_forbidden += 1;
    }

    /// A fault was injected.
    pub(crate) fn fault(&mut self) {
        self.stats.faults_injected += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_rps_is_the_busiest_one_second_window() {
        let mut c = Counters::default();
        let t0 = Instant::now();
        // 3 requests in the first 0.5 s, then 5 within 0.9 s starting at 2 s.
        for ms in [0, 200, 500, 2000, 2100, 2500, 2800, 2900, 4000] {
            c.data_request("A", t0 + Duration::from_millis(ms));
        }
        assert_eq!(c.stats.max_rps_observed, 5);
        assert_eq!(c.stats.by_ticker["A"], 9);
        c.status(429);
        c.status(200);
        assert_eq!(c.stats.rate_limited, 1);
        assert_eq!(c.stats.by_status[&200], 1);
    }
}
