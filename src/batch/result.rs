//! What a batch attempt produced: one [`BatchResult`] with a [`TickerOutcome`] per ticker.
//!
//! Everything here is plain data and serializable, so the script host can turn it into a
//! Rhai map and run records can store it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What happened to one ticker in one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TickerStatus {
    /// The worker reported the range complete (`ticker_done`).
    Ok,
    /// Already complete on disk (`ticker_skipped`).
    Skipped,
    /// The worker gave up on it (`ticker_failed`); see the error.
    Failed,
    /// The worker never finished it: crash, timeout, kill, cancel or a run-fatal stop.
    NotRun,
    /// Fetched as far as possible, but the range reaches today or later (New York):
    /// not complete until those days are over. Not a failure, and retrying now will
    /// not help (error class `pending`, kind `not_yet_available`).
    Pending,
}

impl TickerStatus {
    /// The snake_case name (`ok`, `skipped`, `failed`, `not_run`).
    pub fn as_str(self) -> &'static str {
        match self {
            TickerStatus::Ok => "ok",
            TickerStatus::Skipped => "skipped",
            TickerStatus::Failed => "failed",
            TickerStatus::NotRun => "not_run",
            TickerStatus::Pending => "pending",
        }
    }

    /// Ok or skipped: nothing left to do for this ticker.
    pub fn is_complete(self) -> bool {
        matches!(self, TickerStatus::Ok | TickerStatus::Skipped)
    }
}

/// Why a ticker failed, mirrored from the worker's `ticker_failed` event.
///
/// `class` is `retryable` (trying again later may help), `ticker` (this symbol will not
/// work: not found, not entitled) or `run` (the whole run is broken: key rejected, output
/// unwritable). Tickers the worker never finished get `kind = "not_run"` and class
/// `retryable` (or `run` when the batch stopped on a run-fatal error).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickerFailure {
    /// `retryable`, `ticker`, `run`, or `pending` (the range reaches days not over yet).
    pub class: String,
    /// snake_case kind: `rate_limited`, `timeout`, `not_found`, `unauthorized`, `not_run`, ...
    pub kind: String,
    /// HTTP status when one was received.
    #[serde(default)]
    pub status: Option<u16>,
    /// Human-readable cause.
    #[serde(default)]
    pub message: String,
    /// Request attempts made before giving up.
    #[serde(default)]
    pub attempts: u32,
    /// The worker's circuit breaker opened: the same error kept coming back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub circuit_open: bool,
}

impl TickerFailure {
    /// The failure of a ticker whose range reaches `from`, a day not over yet.
    pub fn not_yet_available(from: &str) -> TickerFailure {
        TickerFailure {
            class: "pending".into(),
            kind: "not_yet_available".into(),
            message: format!(
                "not yet available: the days from {from} on are not over in New York; \
                 run again after they close (bars before then are written)"
            ),
            ..Default::default()
        }
    }
}

impl From<&crate::ingest::FetchError> for TickerFailure {
    fn from(e: &crate::ingest::FetchError) -> TickerFailure {
        TickerFailure {
            class: e.class.as_str().to_string(),
            kind: e.kind.as_str().to_string(),
            status: e.status,
            message: e.message.clone(),
            attempts: e.attempts,
            circuit_open: e.circuit_open,
        }
    }
}

/// One ticker's outcome in one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickerOutcome {
    /// Symbol.
    pub ticker: String,
    /// What happened.
    pub status: TickerStatus,
    /// Bars written (ok) or received so far (others).
    pub bars: u64,
    /// HTTP requests made for it, retries included.
    pub requests: u64,
    /// Why it is not complete (failed and not_run only).
    pub error: Option<TickerFailure>,
    /// First day the ticker was asked for, `YYYY-MM-DD` (empty in older records).
    #[serde(default)]
    pub from: String,
    /// Last day the ticker was asked for, inclusive (empty in older records).
    #[serde(default)]
    pub to: String,
    /// Why a complete ticker holds no bars in its range (listed later, delisted
    /// before, no trades), when the worker found none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_bars: Option<String>,
}

/// The result of one batch attempt (one worker process).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    /// Batch id (`batch-0007`).
    pub id: u32,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// The label given at spawn, if any.
    pub label: Option<String>,
    /// One outcome per ticker, in the batch's order.
    pub tickers: Vec<TickerOutcome>,
    /// Exit status of the worker; `None` when killed by a signal (or never started).
    pub exit_code: Option<i32>,
    /// Signal that killed the worker, if any.
    pub signal: Option<i32>,
    /// The batch hit its `timeout` and was stopped (SIGTERM, then SIGKILL).
    pub timed_out: bool,
    /// Stopped on request: `kill(handle)` or `shutdown()`.
    pub killed: bool,
    /// Stopped because the cancel flag was set (Ctrl-C).
    pub cancelled: bool,
    /// Ended by the executor's engine, not by barsmith or the worker: a cluster's time
    /// limit (`timed_out` is set too), an outside `scancel` (`killed` too), memory, a
    /// node failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<super::EngineStop>,
    /// Fatal for the whole run: exit status 4, or a ticker failed with class `run`.
    /// Starting more batches with the same settings is pointless.
    pub fatal: bool,
    /// Wall time of the attempt, seconds.
    pub elapsed_s: f64,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// The attempt's log (stdout events and stderr).
    pub log_path: PathBuf,
    /// Bars reported by the worker (sum over tickers).
    pub bars: u64,
    /// HTTP requests made, retries included.
    pub requests: u64,
    /// Requests that were retried.
    pub retries: u64,
    /// Exact repeats of a bar the API sent, removed (no data lost).
    pub duplicates_dropped: u64,
    /// Bars the API sent out of order, sorted into place (no data lost).
    pub reordered: u64,
}

impl BatchResult {
    /// The worker exited 0 and every ticker is ok, skipped or pending (as complete as
    /// it can be today): nothing in the batch is worth another attempt.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
            && self
                .tickers
                .iter()
                .all(|t| t.status.is_complete() || t.status == TickerStatus::Pending)
    }

    /// Short status like the seed's: `success`, `failed(rc=3)`, `timeout`, `killed(signal 9)`.
    pub fn status_text(&self) -> String {
        if self.success() {
            return "success".into();
        }
        let how = match (self.exit_code, self.signal) {
            (Some(rc), _) => format!("rc={rc}"),
            (None, Some(sig)) => format!("signal {sig}"),
            (None, None) => "no status".into(),
        };
        let what = if self.timed_out {
            "timeout"
        } else if let Some(stop) = self.ended_by {
            stop.as_str()
        } else if self.cancelled {
            "cancelled"
        } else if self.killed {
            "killed"
        } else if self.fatal {
            "fatal"
        } else {
            "failed"
        };
        format!("{what}({how})")
    }

    /// Tickers with the given status, in batch order.
    pub fn tickers_with(&self, status: TickerStatus) -> Vec<String> {
        self.tickers
            .iter()
            .filter(|t| t.status == status)
            .map(|t| t.ticker.clone())
            .collect()
    }

    /// Tickers failed or not run, in batch order (pending ones are not failures).
    pub fn incomplete_tickers(&self) -> Vec<String> {
        self.tickers
            .iter()
            .filter(|t| matches!(t.status, TickerStatus::Failed | TickerStatus::NotRun))
            .map(|t| t.ticker.clone())
            .collect()
    }

    /// Incomplete tickers worth another attempt: error class `retryable` (not-run included).
    pub fn retryable_tickers(&self) -> Vec<String> {
        self.tickers
            .iter()
            .filter(|t| !t.status.is_complete())
            .filter(|t| t.error.as_ref().is_some_and(|e| e.class == "retryable"))
            .map(|t| t.ticker.clone())
            .collect()
    }

    /// Count of tickers with the given status.
    pub fn count(&self, status: TickerStatus) -> usize {
        self.tickers.iter().filter(|t| t.status == status).count()
    }
}
