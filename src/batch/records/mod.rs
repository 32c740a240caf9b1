//! The run folder: per-attempt logs (written by the runner), `joblog.jsonl`, `run.json`,
//! `failed_tickers.csv` and `summary.txt`.
//!
//! Like GNU parallel's `--joblog`, one line per finished attempt is appended (and flushed)
//! as soon as it ends, so a killed run still leaves an accurate history. The other files
//! are rewritten whole and atomically (temporary file, then rename). [`read`] reads them
//! back, so this module alone knows the folder's formats.

pub mod read;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

mod failed;

pub use failed::{FAILED_COLUMNS, FailedTicker, read_failed_tickers};

use super::result::{BatchResult, TickerOutcome, TickerStatus};
use super::secrets::Secrets;

/// File names inside a run folder.
pub mod names {
    /// One JSON line per finished attempt.
    pub const JOBLOG: &str = "joblog.jsonl";
    /// Script, flags, version, start, end, exit.
    pub const RUN_JSON: &str = "run.json";
    /// Tickers whose latest outcome is not ok/skipped; readable as a universe.
    pub const FAILED_TICKERS: &str = "failed_tickers.csv";
    /// The final report.
    pub const SUMMARY: &str = "summary.txt";

    /// `batch-0007.attempt-1.log`
    pub fn log(id: u32, attempt: u32) -> String {
        format!("batch-{id:04}.attempt-{attempt}.log")
    }

    /// `batch-0007.attempt-1.tickers.csv` (the worker's `--tickers-file`).
    pub fn tickers(id: u32, attempt: u32) -> String {
        format!("batch-{id:04}.attempt-{attempt}.tickers.csv")
    }
}

/// Creates a fresh `<root>/<YYYYmmdd-HHMMSS>/` (local time), adding `-2`, `-3`, ... if
/// that folder already exists.
pub fn create_default_run_dir(root: &Path) -> io::Result<PathBuf> {
    fs::create_dir_all(root)?;
    let stamp = jiff::ZonedDateTime::now()
        .strftime("%Y%m%d-%H%M%S")
        .to_string();
    for n in 1..10_000 {
        let name = if n == 1 {
            stamp.clone()
        } else {
            format!("{stamp}-{n}")
        };
        let dir = root.join(name);
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "too many run folders with the same timestamp",
    ))
}

/// One line of `joblog.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoblogEntry {
    /// Batch id.
    pub id: u32,
    /// Attempt number.
    pub attempt: u32,
    /// Label given at spawn.
    pub label: Option<String>,
    /// Start, RFC 3339 UTC.
    pub start: String,
    /// Wall time, seconds.
    pub duration_s: f64,
    /// Exit status (`null` when killed by a signal).
    pub exit: Option<i32>,
    /// Terminating signal.
    pub signal: Option<i32>,
    /// Stopped by the batch timeout.
    pub timed_out: bool,
    /// Stopped by kill/shutdown/cancel.
    pub killed: bool,
    /// Fatal for the whole run.
    pub fatal: bool,
    /// Ended by the executor's engine (a cluster's time limit, an outside scancel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<crate::batch::EngineStop>,
    /// Tickers ok.
    pub tickers_ok: usize,
    /// Tickers skipped (already complete).
    pub tickers_skipped: usize,
    /// Tickers not complete: failed plus not run.
    pub tickers_failed: usize,
    /// Of those, never finished by the worker.
    pub tickers_not_run: usize,
    /// Tickers fetched so far whose range reaches days not over yet (not failures).
    #[serde(default)]
    pub tickers_pending: usize,
    /// Bars written.
    pub bars: u64,
    /// Requests made.
    pub requests: u64,
    /// Requests retried.
    pub retries: u64,
    /// Exact repeats of a bar the API sent, removed.
    #[serde(default)]
    pub duplicates_dropped: u64,
    /// Bars the API sent out of order, sorted into place.
    #[serde(default)]
    pub reordered: u64,
    /// Log file name (inside the run folder).
    pub log: String,
}

impl JoblogEntry {
    /// The joblog line for a result.
    pub fn from_result(r: &BatchResult) -> JoblogEntry {
        JoblogEntry {
            id: r.id,
            attempt: r.attempt,
            label: r.label.clone(),
            start: r.started_at.clone(),
            duration_s: (r.elapsed_s * 1000.0).round() / 1000.0,
            exit: r.exit_code,
            signal: r.signal,
            timed_out: r.timed_out,
            killed: r.killed || r.cancelled,
            ended_by: r.ended_by,
            fatal: r.fatal,
            tickers_ok: r.count(TickerStatus::Ok),
            tickers_skipped: r.count(TickerStatus::Skipped),
            tickers_failed: r.count(TickerStatus::Failed) + r.count(TickerStatus::NotRun),
            tickers_not_run: r.count(TickerStatus::NotRun),
            tickers_pending: r.count(TickerStatus::Pending),
            bars: r.bars,
            requests: r.requests,
            retries: r.retries,
            duplicates_dropped: r.duplicates_dropped,
            reordered: r.reordered,
            log: r
                .log_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Default)]
struct RecordState {
    /// The latest outcome of each ticker and range (`from`, `to`): day-range batches
    /// (flat files) ask for the same ticker over many ranges, and one range's success
    /// must not hide another's failure.
    latest: BTreeMap<(String, String, String), TickerOutcome>,
    batches: BTreeMap<u32, bool>,
    attempts: u64,
    timed_out: u64,
    bars: u64,
    requests: u64,
    retries: u64,
    planned_batches: Option<u64>,
    cancelled: bool,
    exit: Option<i32>,
}

/// Each ticker's outcome that says the most, over the ranges it was asked for: a
/// failure (or not run), else pending, else ok, else skipped. Summaries count tickers,
/// not ticker-ranges.
fn worst_per_ticker(
    latest: &BTreeMap<(String, String, String), TickerOutcome>,
) -> BTreeMap<&str, &TickerOutcome> {
    let rank = |t: &TickerOutcome| match t.status {
        TickerStatus::Failed | TickerStatus::NotRun => 3,
        TickerStatus::Pending => 2,
        TickerStatus::Ok => 1,
        TickerStatus::Skipped => 0,
    };
    let mut out: BTreeMap<&str, &TickerOutcome> = BTreeMap::new();
    for ((ticker, _, _), t) in latest {
        // `*` (every ticker of an all-tickers batch) counts only when it failed: its
        // tickers are counted one by one when it did not.
        if ticker == crate::ingest::ALL_TICKERS && t.status.is_complete() {
            continue;
        }
        let slot = out.entry(ticker.as_str()).or_insert(t);
        if rank(t) > rank(slot) {
            *slot = t;
        }
    }
    out
}

/// The records of one run, shared by the runner's threads.
#[derive(Debug)]
pub struct RunRecords {
    dir: PathBuf,
    joblog: Mutex<File>,
    state: Mutex<RecordState>,
    started: Instant,
    secrets: Secrets,
    executor: String,
}

impl RunRecords {
    /// Refuses a folder that already holds a run's records: a second run would
    /// overwrite its batch logs and append to its joblog.
    pub fn check_unused(dir: &Path) -> io::Result<()> {
        for name in [names::JOBLOG, names::RUN_JSON] {
            if dir.join(name).exists() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "run folder {} already holds a run ({name}); pass a new --run-dir, \
                         or leave it out for a fresh runs/<timestamp>/",
                        dir.display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Creates the run folder (or takes an empty or unused one) and its joblog.
    /// A folder that already holds a run is refused ([`check_unused`](Self::check_unused)).
    /// `executor` names where the batches run (`local`, `slurm`), for `run.json`.
    pub fn create(dir: &Path, secrets: Secrets, executor: &str) -> io::Result<RunRecords> {
        RunRecords::check_unused(dir)?;
        fs::create_dir_all(dir)?;
        let dir = std::path::absolute(dir)?;
        let joblog = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(dir.join(names::JOBLOG))?;
        Ok(RunRecords {
            dir,
            joblog: Mutex::new(joblog),
            state: Mutex::new(RecordState::default()),
            started: Instant::now(),
            secrets,
            executor: executor.to_string(),
        })
    }

    /// The run folder (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RecordState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes the run's exit status (for the summary's verdict).
    pub fn set_exit(&self, code: i32) {
        self.state().exit = Some(code);
    }

    /// Notes how many batches the script plans (for the summary).
    pub fn set_planned_batches(&self, batches: u64) {
        self.state().planned_batches = Some(batches);
    }

    /// Appends the attempt to `joblog.jsonl` and updates the latest outcome per ticker.
    pub fn record(&self, r: &BatchResult) -> io::Result<()> {
        {
            let mut s = self.state();
            for t in &r.tickers {
                let key = (t.ticker.clone(), t.from.clone(), t.to.clone());
                // A ticker completed by an earlier attempt of this run is reported
                // skipped by the retry; it still counts as fetched in this run.
                let fetched_earlier = t.status == TickerStatus::Skipped
                    && s.latest
                        .get(&key)
                        .is_some_and(|p| p.status == TickerStatus::Ok);
                if !fetched_earlier {
                    s.latest.insert(key, t.clone());
                }
            }
            s.batches.insert(r.id, r.success());
            s.attempts += 1;
            s.timed_out += r.timed_out as u64;
            s.bars += r.bars;
            s.requests += r.requests;
            s.retries += r.retries;
            s.cancelled |= r.cancelled;
        }
        let mut line =
            serde_json::to_value(JoblogEntry::from_result(r)).map_err(io::Error::other)?;
        self.secrets.redact_json(&mut line);
        let mut file = self.joblog.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(format!("{line}\n").as_bytes())?;
        file.flush()
    }

    /// Tickers whose latest outcome is not ok/skipped, with that outcome.
    pub fn failed_tickers(&self) -> Vec<TickerOutcome> {
        self.state()
            .latest
            .values()
            .filter(|t| !t.status.is_complete())
            .cloned()
            .collect()
    }

    /// Totals so far.
    pub fn summary(&self) -> Summary {
        let s = self.state();
        let per_ticker = worst_per_ticker(&s.latest);
        let count = |f: &dyn Fn(&TickerOutcome) -> bool| {
            per_ticker.values().filter(|t| f(t)).count() as u64
        };
        Summary {
            run_dir: self.dir.clone(),
            batches_planned: s.planned_batches,
            batches_ok: s.batches.values().filter(|ok| **ok).count() as u64,
            batches_failed: s.batches.values().filter(|ok| !**ok).count() as u64,
            attempts: s.attempts,
            attempts_timed_out: s.timed_out,
            tickers_ok: count(&|t| t.status == TickerStatus::Ok),
            tickers_skipped: count(&|t| t.status == TickerStatus::Skipped),
            tickers_failed: count(&|t| {
                matches!(t.status, TickerStatus::Failed | TickerStatus::NotRun)
            }),
            tickers_pending: count(&|t| t.status == TickerStatus::Pending),
            bars: s.bars,
            requests: s.requests,
            retries: s.retries,
            elapsed_s: self.started.elapsed().as_secs_f64(),
            cancelled: s.cancelled,
            exit: s.exit,
            no_bars: per_ticker
                .values()
                .filter(|t| t.status == TickerStatus::Ok)
                .filter_map(|t| Some((t.ticker.clone(), t.no_bars.clone()?)))
                .collect(),
        }
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        fs::write(&tmp, bytes)?;
        fs::rename(&tmp, &path)?;
        Ok(path)
    }

    /// Writes `failed_tickers.csv` (`ticker,class,kind,message,from,to`), readable as
    /// a universe (only the `ticker` column counts there). `from,to` is the range the
    /// ticker was last asked for; it is informational: a run with the same
    /// `--from`/`--to` resumes exactly what is missing.
    pub fn write_failed_tickers(&self) -> io::Result<PathBuf> {
        let bytes = failed::csv_bytes(self.failed_tickers(), &self.secrets)?;
        self.write_atomic(names::FAILED_TICKERS, &bytes)
    }

    /// Writes `summary.txt` and returns the summary.
    pub fn write_summary(&self) -> io::Result<Summary> {
        let summary = self.summary();
        self.write_atomic(names::SUMMARY, format!("{summary}\n").as_bytes())?;
        Ok(summary)
    }

    /// Writes `run.json`: script, flags (secrets redacted), barsmith version, start, end,
    /// exit, executor and the current summary. Call it at start (`end`/`exit` `None`) and
    /// again at the end.
    pub fn write_run_json(
        &self,
        script: &str,
        flags: &BTreeMap<String, serde_json::Value>,
        start: jiff::Timestamp,
        end: Option<jiff::Timestamp>,
        exit: Option<i32>,
    ) -> io::Result<PathBuf> {
        let mut value = serde_json::json!({
            "script": script,
            "flags": flags,
            "barsmith_version": crate::VERSION,
            "executor": self.executor,
            "start": start.to_string(),
            "end": end.map(|t| t.to_string()),
            "exit": exit,
            "run_dir": self.dir,
            "summary": self.summary(),
        });
        self.secrets.redact_json(&mut value);
        let text = serde_json::to_string_pretty(&value).map_err(io::Error::other)?;
        self.write_atomic(names::RUN_JSON, format!("{text}\n").as_bytes())
    }
}

/// Totals of a run: what the final report says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The run folder.
    pub run_dir: PathBuf,
    /// Batches the script announced with `set_total`, if it did.
    pub batches_planned: Option<u64>,
    /// Batch ids whose latest attempt succeeded.
    pub batches_ok: u64,
    /// Batch ids whose latest attempt did not.
    pub batches_failed: u64,
    /// Attempts run (retries included).
    pub attempts: u64,
    /// Attempts stopped by their timeout.
    pub attempts_timed_out: u64,
    /// Distinct tickers whose latest outcome is ok.
    pub tickers_ok: u64,
    /// Distinct tickers whose latest outcome is skipped (already complete).
    pub tickers_skipped: u64,
    /// Distinct tickers whose latest outcome is failed or not run.
    pub tickers_failed: u64,
    /// Distinct tickers whose range reaches days not over yet (not failures).
    pub tickers_pending: u64,
    /// Bars written, all attempts.
    pub bars: u64,
    /// Requests made, all attempts.
    pub requests: u64,
    /// Requests retried, all attempts.
    pub retries: u64,
    /// Wall time since the runner started, seconds.
    pub elapsed_s: f64,
    /// The run was cancelled.
    pub cancelled: bool,
    /// The run's exit status, once known.
    pub exit: Option<i32>,
    /// Complete tickers without a single bar in their range, with why (sorted).
    #[serde(default)]
    pub no_bars: Vec<(String, String)>,
}

/// Most tickers named on the summary's "No bars" line.
const NO_BARS_NAMED: usize = 10;

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `45.3 s`, `12.5 min`, `8.45 h`.
pub fn human_duration(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else if secs < 3600.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{:.2} h", secs / 3600.0)
    }
}

impl Summary {
    /// The mark and word of the first line. ✓ only for a run that exits 0: a summary
    /// must never look like success above an error or a non-zero status.
    fn verdict(&self) -> (&'static str, String) {
        let word = if self.cancelled {
            "CANCELLED".to_string()
        } else {
            match self.exit {
                // Batches that failed but whose tickers a later attempt or pass
                // completed are history, not an outcome.
                Some(0) | None if self.tickers_failed == 0 && self.tickers_pending == 0 => {
                    "COMPLETED".into()
                }
                Some(1) => "STOPPED BY A SCRIPT ERROR (exit 1)".into(),
                Some(4) => "HALTED ON A FATAL ERROR (exit 4)".into(),
                Some(5) => "HALTED BY THE FAILURE BUDGET (exit 5)".into(),
                _ if self.tickers_failed > 0 => "COMPLETED WITH FAILURES".into(),
                _ if self.tickers_pending > 0 => "NOT YET AVAILABLE".into(),
                Some(code) => format!("INCOMPLETE (exit {code})"),
                None => "INCOMPLETE".into(),
            }
        };
        (if word == "COMPLETED" { "✓" } else { "✗" }, word)
    }
}

impl Summary {
    /// `No bars in the range: GOOGL (listed on 2025-08-01, after the range), ...`: the
    /// tickers counted ok that hold nothing, so "24 ok" does not read as 24 with data.
    fn fmt_no_bars(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.no_bars.is_empty() {
            return Ok(());
        }
        let named: Vec<String> = self
            .no_bars
            .iter()
            .take(NO_BARS_NAMED)
            .map(|(t, why)| format!("{t} ({why})"))
            .collect();
        write!(f, "No bars in the range: {}", named.join(", "))?;
        let more = self.no_bars.len().saturating_sub(NO_BARS_NAMED);
        if more > 0 {
            write!(f, " and {more} more")?;
        }
        writeln!(f)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = "=".repeat(60);
        let finished = self.batches_ok + self.batches_failed;
        let (mark, word) = self.verdict();
        writeln!(f, "{rule}")?;
        write!(
            f,
            "{mark} {word}: {}/{finished} batches OK | {} failed",
            self.batches_ok, self.batches_failed
        )?;
        if let Some(planned) = self.batches_planned.filter(|p| *p > finished) {
            write!(f, " | {} of {planned} planned not run", planned - finished)?;
        }
        writeln!(
            f,
            " | {} attempts ({} timed out)",
            self.attempts, self.attempts_timed_out
        )?;
        write!(
            f,
            "Tickers: {} ok | {} already complete | {} failed",
            thousands(self.tickers_ok),
            thousands(self.tickers_skipped),
            thousands(self.tickers_failed)
        )?;
        if self.tickers_pending > 0 {
            write!(
                f,
                " | {} not yet available (the range reaches days not over yet in New York; \
                 run again after they close)",
                thousands(self.tickers_pending)
            )?;
        }
        writeln!(f)?;
        self.fmt_no_bars(f)?;
        writeln!(
            f,
            "Bars: {} | requests {} | retries {}",
            thousands(self.bars),
            thousands(self.requests),
            thousands(self.retries)
        )?;
        writeln!(f, "Total time: {}", human_duration(self.elapsed_s))?;
        writeln!(f, "Logs per batch: {}/", self.run_dir.display())?;
        if self.tickers_failed > 0 {
            writeln!(
                f,
                "Failed tickers: {} (re-run with it as the universe)",
                self.run_dir.join(names::FAILED_TICKERS).display()
            )?;
        }
        write!(f, "{rule}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_and_durations() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(human_duration(45.31), "45.3 s");
        assert_eq!(human_duration(30420.0), "8.45 h");
    }

    fn outcome(ticker: &str, from: &str, status: TickerStatus) -> TickerOutcome {
        TickerOutcome {
            ticker: ticker.into(),
            status,
            bars: 0,
            requests: 0,
            error: None,
            from: from.into(),
            to: from.into(),
            no_bars: None,
        }
    }

    #[test]
    fn a_range_that_failed_is_not_hidden_by_another_that_succeeded() {
        let dir = tempfile::tempdir().unwrap();
        let records = RunRecords::create(dir.path(), Secrets::default(), "local").unwrap();
        let batch = |id, tickers| BatchResult {
            id,
            attempt: 1,
            label: None,
            tickers,
            exit_code: Some(3),
            signal: None,
            timed_out: false,
            killed: false,
            cancelled: false,
            ended_by: None,
            fatal: false,
            elapsed_s: 1.0,
            started_at: String::new(),
            log_path: PathBuf::new(),
            bars: 0,
            requests: 0,
            retries: 0,
            duplicates_dropped: 0,
            reordered: 0,
        };
        let failed = TickerStatus::Failed;
        records
            .record(&batch(1, vec![outcome("AAPL", "2025-01-02", failed)]))
            .unwrap();
        records
            .record(&batch(
                2,
                vec![
                    outcome("AAPL", "2025-02-03", TickerStatus::Ok),
                    outcome(crate::ingest::ALL_TICKERS, "2025-02-03", TickerStatus::Ok),
                ],
            ))
            .unwrap();
        let left = records.failed_tickers();
        assert_eq!(left.len(), 1);
        assert_eq!(
            (left[0].ticker.as_str(), left[0].from.as_str()),
            ("AAPL", "2025-01-02")
        );
        // Tickers are counted once, by their worst range; a complete `*` not at all.
        let s = records.summary();
        assert_eq!((s.tickers_ok, s.tickers_failed), (0, 1));
    }
}
