//! One pass over the run folder: the attempts from the joblog, and from each attempt's
//! log the timestamped requests and bars (for the rates) and the ticker failures.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use crate::batch::{
    JoblogEntry, RunInfo, TickerFailure, attempt_log_name, for_each_logged_event,
    read_attempt_tickers,
};
use crate::budget::Rate;
use crate::ingest::events::Event;

use super::failures::Failure;

/// Most points of a rate chart: the bucket widens on long runs.
const RATE_POINTS: f64 = 120.0;

/// How an attempt ended, as the timeline colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0, every ticker complete (or pending).
    Ok,
    /// Ended with tickers failed or a non-zero exit.
    Failed,
    /// Stopped by the batch timeout.
    TimedOut,
    /// Stopped by kill, shutdown or Ctrl-C.
    Killed,
    /// Fatal for the whole run.
    Fatal,
}

impl Outcome {
    /// The outcome of a joblog line.
    pub fn of(e: &JoblogEntry) -> Outcome {
        if e.timed_out {
            Outcome::TimedOut
        } else if e.fatal {
            Outcome::Fatal
        } else if e.killed {
            Outcome::Killed
        } else if e.exit == Some(0) && e.tickers_failed == 0 {
            Outcome::Ok
        } else {
            Outcome::Failed
        }
    }

    /// The snake_case name (a CSS class and `data-outcome` value).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timeout",
            Outcome::Killed => "killed",
            Outcome::Fatal => "fatal",
        }
    }
}

/// One batch attempt on the timeline.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The joblog line.
    pub entry: JoblogEntry,
    /// Seconds from the run's start to the attempt's.
    pub start_s: f64,
    /// How it ended.
    pub outcome: Outcome,
}

/// Requests and bars per second over time.
#[derive(Debug, Clone, Default)]
pub struct Rates {
    /// Width of one bucket, seconds.
    pub bucket_s: f64,
    /// Requests per second in each bucket.
    pub requests: Vec<f64>,
    /// Bars per second in each bucket.
    pub bars: Vec<f64>,
    /// The run's `--max-rps` in requests per second, when recorded.
    pub budget: Option<f64>,
    /// The `--max-rps` as given (`50/s`), when recorded.
    pub budget_text: Option<String>,
    /// True when the rates come from the workers' timestamped events; false when each
    /// attempt's totals are spread evenly over its wall time (logs without stamps).
    pub from_events: bool,
}

impl Rates {
    fn new(span_s: f64, info: Option<&RunInfo>) -> Rates {
        let bucket_s = (span_s / RATE_POINTS).ceil().max(1.0);
        let n = (span_s / bucket_s).ceil().max(1.0) as usize;
        let budget_text = super::flag(info, "max_rps");
        Rates {
            bucket_s,
            requests: vec![0.0; n],
            bars: vec![0.0; n],
            budget: budget_text
                .as_deref()
                .and_then(|t| t.parse::<Rate>().ok())
                .map(Rate::per_second),
            budget_text,
            from_events: false,
        }
    }

    /// Adds `requests` and `bars` at `t` seconds from the run's start.
    fn add(&mut self, t: f64, requests: f64, bars: f64) {
        let last = self.requests.len() - 1;
        let i = ((t.max(0.0) / self.bucket_s) as usize).min(last);
        self.requests[i] += requests / self.bucket_s;
        self.bars[i] += bars / self.bucket_s;
    }

    /// Spreads an attempt's totals evenly over its wall time.
    fn spread(&mut self, a: &Attempt) {
        let steps = (a.entry.duration_s / self.bucket_s).ceil().max(1.0);
        for k in 0..steps as usize {
            let t = a.start_s + k as f64 * self.bucket_s;
            self.add(
                t,
                a.entry.requests as f64 / steps,
                a.entry.bars as f64 / steps,
            );
        }
    }
}

/// What one pass over the run folder found.
#[derive(Debug, Default)]
pub(super) struct Scan {
    pub attempts: Vec<Attempt>,
    pub span_s: f64,
    pub rates: Rates,
    pub failures: Vec<Failure>,
    /// Every ticker some attempt ran, sorted.
    pub tickers: Vec<String>,
}

/// Reads the attempts of a run and their logs.
pub(super) fn scan(dir: &Path, entries: &[JoblogEntry], info: Option<&RunInfo>) -> Scan {
    let stamp = |s: &str| s.parse::<jiff::Timestamp>().ok();
    let starts: Vec<Option<jiff::Timestamp>> = entries.iter().map(|e| stamp(&e.start)).collect();
    let run_start = info
        .and_then(|i| i.start.as_deref())
        .and_then(stamp)
        .into_iter()
        .chain(starts.iter().flatten().copied())
        .min();
    let offset = |t: Option<jiff::Timestamp>| match (t, run_start) {
        (Some(t), Some(s)) => (t.as_millisecond() - s.as_millisecond()) as f64 / 1000.0,
        _ => 0.0,
    };
    let mut attempts: Vec<Attempt> = entries
        .iter()
        .zip(&starts)
        .map(|(e, s)| Attempt {
            entry: e.clone(),
            start_s: offset(*s),
            outcome: Outcome::of(e),
        })
        .collect();
    attempts.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let span_s = attempts
        .iter()
        .map(|a| a.start_s + a.entry.duration_s)
        .fold(1.0, f64::max);
    let mut scan = Scan {
        span_s,
        rates: Rates::new(span_s, info),
        ..Scan::default()
    };
    let mut tickers = BTreeSet::new();
    let mut timed = false;
    for a in &attempts {
        let names = read_attempt_tickers(dir, a.entry.id, a.entry.attempt);
        timed |= read_log(dir, a, &names, &mut scan, &offset);
        tickers.extend(names);
    }
    if !timed {
        for a in &attempts {
            scan.rates.spread(a);
        }
    }
    scan.rates.from_events = timed;
    scan.tickers = tickers.into_iter().collect();
    scan.attempts = attempts;
    scan
}

/// Adds one attempt's log to the scan; true if it held timestamped requests.
fn read_log(
    dir: &Path,
    a: &Attempt,
    tickers: &[String],
    scan: &mut Scan,
    offset: &dyn Fn(Option<jiff::Timestamp>) -> f64,
) -> bool {
    let log = attempt_log_name(&a.entry);
    let mut reported: HashSet<String> = HashSet::new();
    let mut timed = false;
    let failure = |ticker: &str, f: TickerFailure| Failure {
        ticker: ticker.to_string(),
        error: f,
        id: a.entry.id,
        attempt: a.entry.attempt,
        log: log.clone(),
    };
    let read = for_each_logged_event(&dir.join(&log), |ts, event| {
        let rate = match &event {
            Event::Page { bars, .. } => Some((1.0, *bars as f64)),
            Event::Retry { .. } => Some((1.0, 0.0)),
            _ => None,
        };
        if let (Some((req, bars)), Some(_)) = (rate, ts) {
            scan.rates.add(offset(ts), req, bars);
            timed = true;
        }
        match event {
            Event::TickerFailed { ticker, error } => {
                scan.failures.push(failure(&ticker, (&error).into()));
                reported.insert(ticker);
            }
            Event::TickerDone { ticker, .. } | Event::TickerSkipped { ticker, .. } => {
                reported.insert(ticker);
            }
            Event::SetupFailed { kind, message, .. } => {
                let f = TickerFailure {
                    class: "run".into(),
                    kind: kind.as_str().into(),
                    message,
                    ..TickerFailure::default()
                };
                scan.failures.push(failure("", f));
            }
            _ => {}
        }
    });
    if let Err(e) = read {
        tracing::debug!("report: cannot read {log}: {e}");
    }
    if a.outcome != Outcome::Ok {
        let why = not_run_reason(&a.entry);
        for t in tickers.iter().filter(|t| !reported.contains(*t)) {
            let f = TickerFailure {
                class: if a.outcome == Outcome::Fatal {
                    "run"
                } else {
                    "retryable"
                }
                .into(),
                kind: "not_run".into(),
                message: why.clone(),
                ..TickerFailure::default()
            };
            scan.failures.push(failure(t, f));
        }
    }
    timed
}

/// Why the tickers an attempt never finished were left: how the attempt ended.
fn not_run_reason(e: &JoblogEntry) -> String {
    let how = if e.timed_out {
        format!("the batch timed out after {:.1} s", e.duration_s)
    } else if e.killed {
        "the batch was stopped (kill, shutdown or Ctrl-C)".to_string()
    } else {
        match (e.exit, e.signal) {
            (Some(code), _) => format!("the worker exited {code} before finishing it"),
            (None, Some(sig)) => format!("the worker was killed by signal {sig}"),
            (None, None) => "the worker ended without a status".to_string(),
        }
    };
    format!("not run: {how}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u32, start: &str, secs: f64, timed_out: bool) -> String {
        format!(
            r#"{{"id":{id},"attempt":1,"label":null,"start":"{start}","duration_s":{secs},
            "exit":{exit},"signal":null,"timed_out":{timed_out},"killed":false,"fatal":false,
            "tickers_ok":1,"tickers_skipped":0,"tickers_failed":{failed},"tickers_not_run":0,
            "bars":30,"requests":4,"retries":1,"log":"batch-{id:04}.attempt-1.log"}}"#,
            exit = if timed_out { "null" } else { "0" },
            failed = u32::from(timed_out),
        )
        .replace('\n', "")
    }

    fn folder(log: &str) -> (tempfile::TempDir, Vec<JoblogEntry>) {
        let dir = tempfile::tempdir().unwrap();
        let lines = [
            entry(1, "2025-01-01T00:00:00Z", 4.0, false),
            entry(2, "2025-01-01T00:00:02Z", 3.0, true),
        ];
        let entries = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        std::fs::write(dir.path().join("batch-0001.attempt-1.log"), log).unwrap();
        std::fs::write(
            dir.path().join("batch-0002.attempt-1.tickers.csv"),
            "ticker\nA\nB\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("batch-0002.attempt-1.log"),
            r#"{"event":"ticker_done","ticker":"A","bars":0,"ts":"2025-01-01T00:00:03Z"}"#,
        )
        .unwrap();
        (dir, entries)
    }

    #[test]
    fn rates_come_from_the_stamped_events_and_unfinished_tickers_are_not_run() {
        let log = "\
{\"event\":\"page\",\"ticker\":\"A\",\"bars\":10,\"ts\":\"2025-01-01T00:00:00.5Z\"}
{\"event\":\"retry\",\"ticker\":\"A\",\"ts\":\"2025-01-01T00:00:03.2Z\"}
{\"event\":\"page\",\"ticker\":\"A\",\"bars\":20,\"ts\":\"2025-01-01T00:00:03.9Z\"}
";
        let (dir, entries) = folder(log);
        let scan = scan(dir.path(), &entries, None);
        assert_eq!(scan.span_s, 5.0);
        assert!(scan.rates.from_events);
        assert_eq!(scan.rates.bucket_s, 1.0);
        assert_eq!(scan.rates.requests, [1.0, 0.0, 0.0, 2.0, 0.0]);
        assert_eq!(scan.rates.bars, [10.0, 0.0, 0.0, 20.0, 0.0]);
        assert_eq!(
            (scan.rates.budget, scan.rates.budget_text.as_deref()),
            (None, None)
        );
        let outcomes: Vec<Outcome> = scan.attempts.iter().map(|a| a.outcome).collect();
        assert_eq!(outcomes, [Outcome::Ok, Outcome::TimedOut]);
        // B never finished in the timed-out attempt; A did.
        assert_eq!(scan.failures.len(), 1);
        let f = &scan.failures[0];
        assert_eq!((f.ticker.as_str(), f.error.kind.as_str()), ("B", "not_run"));
        assert!(
            f.error.message.contains("timed out after 3.0 s"),
            "{}",
            f.error.message
        );
        assert_eq!(scan.tickers, ["A", "B"]);
    }

    #[test]
    fn without_stamped_events_each_attempt_is_spread_over_its_wall_time() {
        let (dir, entries) = folder("no events here\n");
        let info = RunInfo {
            flags: [("max_rps".to_string(), serde_json::json!("5/min"))].into(),
            ..RunInfo::default()
        };
        let scan = scan(dir.path(), &entries, Some(&info));
        assert!(!scan.rates.from_events);
        let total: f64 = scan.rates.requests.iter().sum::<f64>() * scan.rates.bucket_s;
        assert!((total - 8.0).abs() < 1e-9, "{:?}", scan.rates.requests);
        assert_eq!(scan.rates.budget, Some(5.0 / 60.0));
    }
}
