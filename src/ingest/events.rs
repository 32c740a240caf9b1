//! The worker's machine-readable events: one JSON object per line on stdout.
//!
//! A parent process (the batch runner) reads these to build per-ticker results and
//! progress; they are the worker's whole interface besides the exit status. Keep the
//! field names stable: scripts and older run records depend on them.

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::polygon::FetchError;

/// One thing that happened in a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Work on a ticker began; `missing` lists the ranges that will be fetched.
    TickerStarted {
        /// Symbol.
        ticker: String,
        /// Requested first day.
        from: String,
        /// Requested last day.
        to: String,
        /// Ranges not yet covered, as `[from, to]` pairs.
        missing: Vec<[String; 2]>,
    },
    /// Nothing to do: coverage already spans the range.
    TickerSkipped {
        /// Symbol.
        ticker: String,
        /// Why it was skipped (`complete`).
        reason: String,
    },
    /// One page of bars arrived.
    Page {
        /// Symbol.
        ticker: String,
        /// Bars on the page.
        bars: usize,
    },
    /// A request failed and will be retried after `delay_ms`.
    Retry {
        /// Symbol.
        ticker: String,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Error kind, snake_case (`rate_limited`, `server`, `timeout`, ...).
        kind: String,
        /// Human-readable cause.
        reason: String,
        /// Wait before the next attempt.
        delay_ms: u64,
    },
    /// The ticker's range is now complete on disk.
    TickerDone {
        /// Symbol.
        ticker: String,
        /// Bars fetched and written in this run.
        bars: u64,
        /// Parquet files written.
        files: u32,
        /// HTTP requests made, retries included.
        requests: u32,
        /// Bars dropped because their timestamp was already seen.
        duplicates_dropped: u64,
        /// Bars dropped because they went back in time.
        out_of_order_dropped: u64,
        /// Wall time for the ticker.
        elapsed_ms: u64,
    },
    /// The ticker could not be completed; `error` says why and how bad it is.
    TickerFailed {
        /// Symbol.
        ticker: String,
        /// The classified error (class, kind, status, message, attempts).
        #[serde(flatten)]
        error: FetchError,
    },
    /// The worker is about to exit.
    Finished {
        /// Tickers completed in this run.
        ok: u32,
        /// Tickers already complete.
        skipped: u32,
        /// Tickers that failed.
        failed: u32,
        /// Bars written in total.
        bars: u64,
        /// The process exit status that follows.
        exit_code: i32,
    },
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
            | Event::TickerFailed { ticker, .. } => Some(ticker),
            Event::Finished { .. } => None,
        }
    }
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
    serde_json::from_str(line.trim()).ok()
}
