//! Reading a run folder as the batch runner writes it (`crate::batch::records`):
//! which tickers failed (`failed_tickers.csv`, or the logs while a run is still going),
//! the recent runs (`run.json`) and the batch logs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rhai::{Array, Dynamic, Map};

use crate::batch::names;
use crate::batch::{
    FailedTicker, JoblogEntry, attempt_log_name, read_attempt_tickers, read_failed_tickers,
    read_joblog,
};
use crate::ingest::events::{Event, parse_line};
use crate::script::value::{Fallible, Options, error};

/// Most run folders `runs` lists.
const RUNS_LISTED: usize = 20;
/// The keys `batch_log` accepts.
pub(crate) const LOG_OPTIONS: &[&str] = &["tail", "grep", "attempt"];

/// One attempt of a batch, as the run folder records it.
#[derive(Debug, Clone)]
struct Attempt {
    id: u32,
    attempt: u32,
    log: PathBuf,
}

/// The joblog lines of `run_dir`, in the order attempts finished.
fn joblog(run_dir: &Path) -> Result<Vec<JoblogEntry>, String> {
    read_joblog(run_dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound && !run_dir.is_dir() {
            format!("no run folder at {}", run_dir.display())
        } else {
            format!("cannot read {}: {e}", run_dir.join(names::JOBLOG).display())
        }
    })
}

/// The latest attempt that ran each ticker.
fn latest_attempts(run_dir: &Path, entries: &[JoblogEntry]) -> BTreeMap<String, Attempt> {
    let mut out = BTreeMap::new();
    for e in entries {
        let log = attempt_log_name(e);
        for t in read_attempt_tickers(run_dir, e.id, e.attempt) {
            out.insert(
                t,
                Attempt {
                    id: e.id,
                    attempt: e.attempt,
                    log: run_dir.join(&log),
                },
            );
        }
    }
    out
}

/// What the worker of an attempt reported about `ticker` (its last event about it).
fn ticker_event(log: &Path, ticker: &str) -> Option<Event> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().filter_map(parse_line).find(|e| {
        e.ticker() == Some(ticker)
            && matches!(
                e,
                Event::TickerFailed { .. } | Event::TickerDone { .. } | Event::TickerSkipped { .. }
            )
    })
}

/// The range the worker said it started `ticker` with, in the log of an attempt.
fn started_range(log: &Path, ticker: &str) -> Option<(String, String)> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter_map(parse_line)
        .find_map(|e| match e {
            Event::TickerStarted {
                ticker: t,
                from,
                to,
                ..
            } if t == ticker && !from.is_empty() => Some((from, to)),
            _ => None,
        })
}

/// The failed tickers of a run with their classified error, batch and log.
pub(crate) fn failures(run_dir: &Path) -> Result<Array, String> {
    let entries = joblog(run_dir)?;
    let attempts = latest_attempts(run_dir, &entries);
    let read = read_failed_tickers(run_dir).map_err(|e| {
        format!(
            "cannot read {}: {e}",
            run_dir.join(names::FAILED_TICKERS).display()
        )
    })?;
    let rows = match read {
        Some(rows) => rows,
        // The run is still going or was killed before its records: ask the logs.
        None => attempts
            .iter()
            .filter(|(t, a)| {
                !matches!(
                    ticker_event(&a.log, t),
                    Some(Event::TickerDone { .. } | Event::TickerSkipped { .. })
                )
            })
            .map(|(t, a)| {
                let (from, to) = started_range(&a.log, t).unwrap_or_default();
                FailedTicker {
                    ticker: t.clone(),
                    class: "retryable".into(),
                    kind: "not_run".into(),
                    message: "the batch ended before this ticker finished".into(),
                    from,
                    to,
                }
            })
            .collect(),
    };
    Ok(rows
        .into_iter()
        .map(|row| {
            let attempt = attempts.get(&row.ticker);
            Dynamic::from_map(failure_map(row, attempt))
        })
        .collect())
}

/// One `failures()` row: the CSV row, the error as the attempt's log tells it (with
/// the HTTP status), and the attempt that last ran the ticker.
fn failure_map(row: FailedTicker, attempt: Option<&Attempt>) -> Map {
    let mut m = Map::new();
    let (mut class, mut kind, mut message, mut status) =
        (row.class, row.kind, row.message, Dynamic::UNIT);
    if let Some(Event::TickerFailed { error: e, .. }) =
        attempt.and_then(|a| ticker_event(&a.log, &row.ticker))
    {
        class = e.class.as_str().to_string();
        kind = e.kind.as_str().to_string();
        message = e.message.clone();
        status = e
            .status
            .map_or(Dynamic::UNIT, |s| Dynamic::from_int(i64::from(s)));
    }
    let date = |d: String| {
        if d.is_empty() {
            Dynamic::UNIT
        } else {
            d.into()
        }
    };
    m.insert("ticker".into(), row.ticker.into());
    m.insert("from".into(), date(row.from));
    m.insert("to".into(), date(row.to));
    m.insert("class".into(), class.into());
    m.insert("kind".into(), kind.into());
    m.insert("status".into(), status);
    m.insert("message".into(), message.into());
    let int = |v: Option<u32>| v.map_or(Dynamic::UNIT, |v| Dynamic::from_int(i64::from(v)));
    m.insert("batch".into(), int(attempt.map(|a| a.id)));
    m.insert("attempt".into(), int(attempt.map(|a| a.attempt)));
    m.insert(
        "log".into(),
        attempt.map_or(Dynamic::UNIT, |a| a.log.display().to_string().into()),
    );
    m
}

/// Run folders under `root`, newest first by the start time in `run.json` (the
/// folder's modification time when it has none), with what `run.json` says.
pub(crate) fn runs(root: &Path) -> Result<Array, String> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Array::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", root.display())),
    };
    let mut found: Vec<(jiff::Timestamp, PathBuf, serde_json::Value)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join(names::JOBLOG).is_file() || p.join(names::RUN_JSON).is_file())
        .map(|dir| {
            let json: serde_json::Value = std::fs::read_to_string(dir.join(names::RUN_JSON))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            (run_start(&dir, &json), dir, json)
        })
        .collect();
    found.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    Ok(found
        .into_iter()
        .take(RUNS_LISTED)
        .map(|(_, dir, json)| {
            let mut m = Map::new();
            m.insert("dir".into(), dir.display().to_string().into());
            for key in ["script", "start", "end", "exit"] {
                m.insert(key.into(), from_json(json.get(key)));
            }
            for key in ["tickers_ok", "tickers_failed", "attempts"] {
                m.insert(
                    key.into(),
                    from_json(json.get("summary").and_then(|s| s.get(key))),
                );
            }
            Dynamic::from_map(m)
        })
        .collect())
}

/// When a run started: `run.json`'s `start`, else the folder's modification time.
fn run_start(dir: &Path, json: &serde_json::Value) -> jiff::Timestamp {
    json.get("start")
        .and_then(|s| s.as_str())
        .and_then(|s| s.parse().ok())
        .or_else(|| {
            let modified = std::fs::metadata(dir).and_then(|m| m.modified()).ok()?;
            jiff::Timestamp::try_from(modified).ok()
        })
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn from_json(v: Option<&serde_json::Value>) -> Dynamic {
    v.cloned()
        .map_or(Dynamic::UNIT, crate::script::value::from_json)
}

/// The log of batch `id` (latest attempt unless `opts.attempt`), filtered by
/// `opts.grep` then cut to the last `opts.tail` lines.
pub(crate) fn batch_log(run_dir: &Path, id: i64, opts: Map) -> Fallible<String> {
    let o = Options::parse("batch_log", opts, LOG_OPTIONS)?;
    let id = u32::try_from(id)
        .map_err(|_| error(format!("batch_log: batch id must be positive, got {id}")))?;
    let attempt = match o.int("attempt")? {
        Some(n) => u32::try_from(n)
            .map_err(|_| error(format!("batch_log: attempt must be positive, got {n}")))?,
        None => latest_log_attempt(run_dir, id).ok_or_else(|| {
            let known = logged_batches(run_dir);
            error(if known.is_empty() {
                format!("batch_log: no batch logs in {}", run_dir.display())
            } else {
                format!(
                    "batch_log: no log for batch {id} in {}; batches with logs: {}",
                    run_dir.display(),
                    known
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })?,
    };
    let path = run_dir.join(names::log(id, attempt));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| error(format!("batch_log: cannot read {}: {e}", path.display())))?;
    let grep = o.string("grep")?;
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|l| grep.as_deref().is_none_or(|g| l.contains(g)))
        .collect();
    if let Some(n) = o.int("tail")? {
        let n = usize::try_from(n)
            .map_err(|_| error(format!("batch_log: tail must be positive, got {n}")))?;
        lines.drain(..lines.len().saturating_sub(n));
    }
    Ok(lines.join("\n"))
}

/// `(id, attempt)` of every `batch-NNNN.attempt-N.log` in `run_dir`.
fn logs_in(run_dir: &Path) -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix("batch-")?.strip_suffix(".log")?;
            let (id, attempt) = rest.split_once(".attempt-")?;
            Some((id.parse().ok()?, attempt.parse().ok()?))
        })
        .collect()
}

fn latest_log_attempt(run_dir: &Path, id: u32) -> Option<u32> {
    logs_in(run_dir)
        .into_iter()
        .filter(|(i, _)| *i == id)
        .map(|(_, a)| a)
        .max()
}

fn logged_batches(run_dir: &Path) -> Vec<u32> {
    let mut ids: Vec<u32> = logs_in(run_dir).into_iter().map(|(i, _)| i).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}
