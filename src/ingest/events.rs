//! The worker's machine-readable events: one JSON object per line on stdout.
//!
//! A parent process (the batch runner) reads these to build per-ticker results and
//! progress; they are the worker's whole interface besides the exit status. Keep the
//! field names stable: scripts and older run records depend on them. The read side is
//! lenient — missing numbers are zero and unknown events are [`Event::Other`] — so a
//! runner survives a worker of another version.

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::ingest::error::FetchError;

use super::setup::SetupKind;

/// One thing that happened in a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Work on a ticker began; `missing` lists the ranges that will be fetched.
    TickerStarted {
        /// Symbol.
        ticker: String,
        /// Requested first day.
        #[serde(default)]
        from: String,
        /// Requested last day.
        #[serde(default)]
        to: String,
        /// Ranges not yet covered, as `[from, to]` pairs.
        #[serde(default)]
        missing: Vec<[String; 2]>,
    },
    /// Nothing to do: coverage already spans the range.
    TickerSkipped {
        /// Symbol.
        ticker: String,
        /// Why it was skipped (`complete`).
        #[serde(default)]
        reason: String,
    },
    /// One page of bars arrived.
    Page {
        /// Symbol.
        ticker: String,
        /// Bars on the page.
        #[serde(default)]
        bars: usize,
    },
    /// A request failed and will be retried after `delay_ms`.
    Retry {
        /// Symbol.
        ticker: String,
        /// The attempt that failed (1-based).
        #[serde(default)]
        attempt: u32,
        /// Error kind, snake_case (`rate_limited`, `server`, `timeout`, ...).
        #[serde(default)]
        kind: String,
        /// Human-readable cause.
        #[serde(default)]
        reason: String,
        /// Wait before the next attempt.
        #[serde(default)]
        delay_ms: u64,
    },
    /// The ticker's range is now complete on disk.
    TickerDone {
        /// Symbol.
        ticker: String,
        /// Bars fetched and written in this run.
        #[serde(default)]
        bars: u64,
        /// Parquet files written.
        #[serde(default)]
        files: u32,
        /// HTTP requests made, retries included.
        #[serde(default)]
        requests: u32,
        /// Exact repeats of a bar already received, removed.
        #[serde(default)]
        duplicates_dropped: u64,
        /// Bars that arrived after a later minute and were sorted into place.
        #[serde(default)]
        reordered: u64,
        /// Wall time for the ticker.
        #[serde(default)]
        elapsed_ms: u64,
        /// Set when the range reaches today or later (New York): the first such day.
        /// Bars so far are written, but those days are not complete until they are
        /// over, so the ticker is reported "not yet available", not complete.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pending_from: Option<String>,
    },
    /// The ticker holds no bars in its whole range, and why (from the ticker overview):
    /// `listed on D, after the range`, `delisted on D, before the range`, `no trades in
    /// the range`, or why the reason is not known. Sent before its `ticker_done`.
    NoBars {
        /// Symbol.
        ticker: String,
        /// Why it has no bars.
        #[serde(default)]
        reason: String,
    },
    /// The ticker could not be completed; `error` says why and how bad it is.
    TickerFailed {
        /// Symbol.
        ticker: String,
        /// The classified error (class, kind, status, message, attempts).
        #[serde(flatten)]
        error: FetchError,
    },
    /// A flat-file day of the range was handled before any ticker: `outcome` is
    /// `staged` (downloaded and decoded), `reused` (staged by an earlier attempt with
    /// the same ETag) or `forbidden` (403: outside the plan; left for REST).
    DayFile {
        /// The trading day, `YYYY-MM-DD`.
        day: String,
        /// `staged`, `reused` or `forbidden`.
        outcome: String,
        /// Rows in the day's file (every ticker).
        #[serde(default)]
        rows: u64,
    },
    /// The worker could not start work (bad input, no key, unusable output folder);
    /// it exits with `exit_code` right after, having reported no ticker.
    SetupFailed {
        /// What failed.
        kind: SetupKind,
        /// What is wrong and what to do.
        #[serde(default)]
        message: String,
        /// The process exit status that follows (2 or 4).
        #[serde(default)]
        exit_code: i32,
    },
    /// The worker is about to exit.
    Finished {
        /// Tickers completed in this run.
        #[serde(default)]
        ok: u32,
        /// Tickers already complete.
        #[serde(default)]
        skipped: u32,
        /// Tickers that failed.
        #[serde(default)]
        failed: u32,
        /// Bars written in total.
        #[serde(default)]
        bars: u64,
        /// The process exit status that follows.
        #[serde(default)]
        exit_code: i32,
        /// The worker's peak resident memory in KiB (`VmHWM`), where the OS tells it.
        /// Its own: `getrusage` of a child also counts the parent's pages it was
        /// forked with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peak_rss_kb: Option<u64>,
    },
    /// An event this version does not know (read side only): ignored, not an error.
    #[serde(other)]
    Other,
}

impl Event {
    /// The ticker the event is about, if any.
    pub fn ticker(&self) -> Option<&str> {
        match self {
            Event::TickerStarted { ticker, .. }
            | Event::TickerSkipped { ticker, .. }
            | Event::Page { ticker, .. }
            | Event::Retry { ticker, .. }
            | Event::TickerDone { ticker, .. }
            | Event::NoBars { ticker, .. }
            | Event::TickerFailed { ticker, .. } => Some(ticker),
            Event::DayFile { .. }
            | Event::SetupFailed { .. }
            | Event::Finished { .. }
            | Event::Other => None,
        }
    }
}

/// This process's peak resident memory in KiB, from `/proc/self/status` (`VmHWM`);
/// `None` where there is no such file.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Where events go: a JSON-lines writer, a callback (in-process ingest), or nowhere.
pub trait EventSink: Send {
    /// Records one event.
    fn emit(&mut self, event: Event);
}

/// Writes each event as one JSON line, stamped with `ts`, flushed at once so a parent
/// sees progress live and a killed worker loses nothing it reported.
pub struct JsonLines<W: Write + Send>(pub W);

impl<W: Write + Send> EventSink for JsonLines<W> {
    fn emit(&mut self, event: Event) {
        let mut value = match serde_json::to_value(&event) {
            Ok(v) => v,
            Err(_) => return,
        };
        if let Some(obj) = value.as_object_mut() {
            obj.insert("ts".into(), jiff::Timestamp::now().to_string().into());
        }
        // A closed stdout (parent gone) must not kill the worker mid-write of a file.
        let _ = writeln!(self.0, "{value}").and_then(|_| self.0.flush());
    }
}

impl<F: FnMut(Event) + Send> EventSink for F {
    fn emit(&mut self, event: Event) {
        self(event)
    }
}

/// Parses one line a worker printed; `None` for lines that are not events.
pub fn parse_line(line: &str) -> Option<Event> {
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    serde_json::from_str(line).ok()
}
