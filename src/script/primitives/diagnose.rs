//! Diagnosing a run: which tickers failed and why, the batch logs, one raw request,
//! and re-ingesting a few tickers in this process with live output. Made for the
//! REPL (`barsmith repl --run RUN_DIR`), usable from any script.
//!
//! Run folders are read as the batch runner writes them (`crate::batch::records`):
//! `failed_tickers.csv`, `joblog.jsonl`, `batch-NNNN.attempt-N.{log,tickers.csv}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rhai::{Array, Dynamic, Map};

use crate::batch::JoblogEntry;
use crate::batch::names;
use crate::budget::{Budget, Rate, default_state_dir};
use crate::calendar::today_ny;
use crate::ingest::Ingest;
use crate::ingest::events::{Event, parse_line};
use crate::polygon::Client;
use crate::script::host::Host;
use crate::script::primitives::net::{block_on_cancellable, client_config, fetch_error_map};
use crate::script::primitives::util::cancelled;
use crate::script::value::{Fallible, Options, date_range, error, strings};
use crate::store::{DatasetIdentity, Store};

/// Most body characters `request` returns.
const BODY_EXCERPT: usize = 2000;
/// Most run folders `runs` lists.
const RUNS_LISTED: usize = 20;
/// The keys `batch_log` accepts.
pub(crate) const LOG_OPTIONS: &[&str] = &["tail", "grep", "attempt"];
/// The keys `request` accepts.
pub(crate) const REQUEST_OPTIONS: &[&str] = &["base_url", "timeout"];
/// The keys `ingest` accepts.
pub(crate) const INGEST_OPTIONS: &[&str] = &[
    "outdir", "from", "to", "adjusted", "base_url", "timeout", "retries", "max_rps", "quiet",
];

/// One attempt of a batch, as the run folder records it.
#[derive(Debug, Clone)]
struct Attempt {
    id: u32,
    attempt: u32,
    log: PathBuf,
}

/// The joblog lines of `run_dir`, in the order attempts finished.
fn joblog(run_dir: &Path) -> Result<Vec<JoblogEntry>, String> {
    let path = run_dir.join(names::JOBLOG);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound && !run_dir.is_dir() {
            format!("no run folder at {}", run_dir.display())
        } else {
            format!("cannot read {}: {e}", path.display())
        }
    })?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// The tickers of one attempt (its `--tickers-file`).
fn attempt_tickers(run_dir: &Path, id: u32, attempt: u32) -> Vec<String> {
    let path = run_dir.join(names::tickers(id, attempt));
    std::fs::read_to_string(path)
        .map(|t| {
            t.lines()
                .skip(1)
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The latest attempt that ran each ticker.
fn latest_attempts(run_dir: &Path, entries: &[JoblogEntry]) -> BTreeMap<String, Attempt> {
    let mut out = BTreeMap::new();
    for e in entries {
        let log = if e.log.is_empty() {
            names::log(e.id, e.attempt)
        } else {
            e.log.clone()
        };
        for t in attempt_tickers(run_dir, e.id, e.attempt) {
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

/// One row of `failed_tickers.csv`.
struct FailedRow {
    ticker: String,
    class: String,
    kind: String,
    message: String,
}

fn failed_rows(run_dir: &Path) -> Result<Option<Vec<FailedRow>>, String> {
    let path = run_dir.join(names::FAILED_TICKERS);
    let mut reader = match csv::Reader::from_path(&path) {
        Ok(r) => r,
        Err(e) if matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut rows = Vec::new();
    for record in reader.records() {
        let r = record.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let field = |i: usize| r.get(i).unwrap_or("").to_string();
        rows.push(FailedRow {
            ticker: field(0),
            class: field(1),
            kind: field(2),
            message: field(3),
        });
    }
    Ok(Some(rows))
}

/// The failed tickers of a run with their classified error, batch and log.
pub(crate) fn failures(run_dir: &Path) -> Result<Array, String> {
    let entries = joblog(run_dir)?;
    let attempts = latest_attempts(run_dir, &entries);
    let rows = match failed_rows(run_dir)? {
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
            .map(|(t, _)| FailedRow {
                ticker: t.clone(),
                class: "retryable".into(),
                kind: "not_run".into(),
                message: "the batch ended before this ticker finished".into(),
            })
            .collect(),
    };
    let mut out = Array::new();
    for row in rows {
        let attempt = attempts.get(&row.ticker);
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
        m.insert("ticker".into(), row.ticker.into());
        m.insert("class".into(), class.into());
        m.insert("kind".into(), kind.into());
        m.insert("status".into(), status);
        m.insert("message".into(), message.into());
        m.insert(
            "batch".into(),
            attempt.map_or(Dynamic::UNIT, |a| Dynamic::from_int(i64::from(a.id))),
        );
        m.insert(
            "attempt".into(),
            attempt.map_or(Dynamic::UNIT, |a| Dynamic::from_int(i64::from(a.attempt))),
        );
        m.insert(
            "log".into(),
            attempt.map_or(Dynamic::UNIT, |a| a.log.display().to_string().into()),
        );
        out.push(Dynamic::from_map(m));
    }
    Ok(out)
}

/// Run folders under `root`, newest first, with what `run.json` says about them.
pub(crate) fn runs(root: &Path) -> Result<Array, String> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Array::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", root.display())),
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join(names::JOBLOG).is_file() || p.join(names::RUN_JSON).is_file())
        .collect();
    dirs.sort();
    dirs.reverse();
    Ok(dirs
        .into_iter()
        .take(RUNS_LISTED)
        .map(|dir| {
            let mut m = Map::new();
            let json: serde_json::Value = std::fs::read_to_string(dir.join(names::RUN_JSON))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
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

/// One raw GET through the client: status, latency, headers, a body excerpt.
pub(crate) fn request(host: &Host, path_or_url: &str, opts: Map) -> Fallible<Map> {
    let o = Options::parse("request", opts, REQUEST_OPTIONS)?;
    let cfg = client_config(host, &o, "request")?;
    let client = Client::new(cfg).map_err(|e| error(format!("request: {}", e.message)))?;
    let resp = block_on_cancellable(host, "request", client.raw_get(path_or_url))?
        .map_err(|e| crate::script::value::error_value(fetch_error_map(&e)))?;
    let mut headers = Map::new();
    for (k, v) in resp.headers {
        match headers.get_mut(k.as_str()) {
            Some(prev) => *prev = format!("{prev}, {v}").into(),
            None => {
                headers.insert(k.into(), v.into());
            }
        }
    }
    let mut body: String = resp.body.chars().take(BODY_EXCERPT).collect();
    if body.len() < resp.body_len {
        body.push_str(&format!(" ... ({} bytes in all)", resp.body_len));
    }
    let mut m = Map::new();
    m.insert("url".into(), resp.url.into());
    m.insert("status".into(), Dynamic::from_int(i64::from(resp.status)));
    m.insert(
        "latency_ms".into(),
        Dynamic::from_int(i64::try_from(resp.latency.as_millis()).unwrap_or(i64::MAX)),
    );
    m.insert("headers".into(), Dynamic::from_map(headers));
    m.insert("body".into(), body.into());
    m.insert(
        "body_len".into(),
        Dynamic::from_int(i64::try_from(resp.body_len).unwrap_or(i64::MAX)),
    );
    Ok(m)
}

/// One line of live output for a worker event.
fn event_line(e: &Event) -> Option<String> {
    Some(match e {
        Event::TickerStarted { missing, .. } if missing.is_empty() => return None,
        Event::TickerStarted {
            ticker, missing, ..
        } => {
            let ranges: Vec<String> = missing.iter().map(|[f, t]| format!("{f}..{t}")).collect();
            format!("{ticker}: fetching {}", ranges.join(", "))
        }
        Event::TickerSkipped { ticker, reason } => format!("{ticker}: skipped ({reason})"),
        Event::Page { ticker, bars } => format!("{ticker}: page of {bars} bars"),
        Event::Retry {
            ticker,
            attempt,
            kind,
            reason,
            delay_ms,
        } => format!("{ticker}: retry after attempt {attempt} ({kind}: {reason}) in {delay_ms} ms"),
        Event::TickerDone {
            ticker,
            bars,
            requests,
            elapsed_ms,
            ..
        } => format!(
            "{ticker}: done, {bars} bars in {requests} requests ({:.1} s)",
            *elapsed_ms as f64 / 1000.0
        ),
        Event::TickerFailed { ticker, error } => format!(
            "{ticker}: failed [{}/{}] {}",
            error.class.as_str(),
            error.kind.as_str(),
            error.message
        ),
        Event::SetupFailed { message, .. } => format!("cannot start: {message}"),
        Event::Finished { .. } | Event::Other => return None,
    })
}

/// Re-ingests `tickers` in this process, one live line per event; a map per ticker.
pub(crate) fn ingest(host: &Host, tickers: Array, opts: Map) -> Fallible<Map> {
    let o = Options::parse("ingest", opts, INGEST_OPTIONS)?;
    let required = |key: &str| {
        o.string(key)?.ok_or_else(|| {
            error(format!(
                "ingest: option '{key}' is required, e.g. #{{outdir: \"data/minute\", from: \"2024-01-01\", to: \"2024-12-31\"}}"
            ))
        })
    };
    let (outdir, from, to) = (required("outdir")?, required("from")?, required("to")?);
    let range = date_range("ingest", &from, &to)?;
    let tickers = crate::ticker::clean_tickers(strings("ingest", "tickers", &tickers)?)
        .map_err(|e| error(format!("ingest: {e}")))?;
    let adjusted = o.bool("adjusted")?.unwrap_or(true);
    let quiet = o.bool("quiet")?.unwrap_or(false);
    let mut cfg = client_config(host, &o, "ingest")?;
    if cfg.budget.is_none() && !cfg.api_key.expose().is_empty() {
        // Re-ingesting shares the machine-wide budget like any worker does.
        cfg.budget = Some(
            Budget::open(&default_state_dir(), &cfg.api_key, Rate::default())
                .map_err(|e| error(format!("ingest: cannot open the request budget: {e}")))?,
        );
    }
    let store = Store::open(Path::new(&outdir), &DatasetIdentity::minute(adjusted))
        .map_err(|e| error(format!("ingest: {e}")))?;
    let client = Client::new(cfg).map_err(|e| error(format!("ingest: {}", e.message)))?;

    let mut results: BTreeMap<String, Map> = BTreeMap::new();
    let cancel = || host.is_cancelled();
    let job = Ingest {
        client: &client,
        store: &store,
        range,
        today: today_ny(),
        cancel: &cancel,
        in_flight: crate::ingest::DEFAULT_IN_FLIGHT,
    };
    let mut sink = |e: Event| {
        if !quiet && let Some(line) = event_line(&e) {
            host.log(&line);
        }
        let outcome = match &e {
            Event::TickerDone { ticker, bars, .. } => Some((ticker, "ok", *bars, None)),
            Event::TickerSkipped { ticker, .. } => Some((ticker, "skipped", 0, None)),
            Event::TickerFailed { ticker, error } => {
                Some((ticker, "failed", 0, Some(fetch_error_map(error))))
            }
            _ => None,
        };
        if let Some((ticker, status, bars, err)) = outcome {
            results.insert(ticker.clone(), ticker_result(status, bars, err));
        }
    };
    let finished = block_on_cancellable(host, "ingest", job.run(&tickers, &mut sink));
    if host.is_cancelled() || finished.is_err() {
        return Err(cancelled());
    }
    Ok(tickers
        .into_iter()
        .map(|t| {
            let r = results
                .remove(&t)
                .unwrap_or_else(|| ticker_result("not_run", 0, None));
            (t.into(), Dynamic::from_map(r))
        })
        .collect())
}

fn ticker_result(status: &str, bars: u64, err: Option<Map>) -> Map {
    let mut m = Map::new();
    m.insert("status".into(), status.into());
    m.insert(
        "bars".into(),
        Dynamic::from_int(i64::try_from(bars).unwrap_or(i64::MAX)),
    );
    m.insert("error".into(), err.map_or(Dynamic::UNIT, Dynamic::from_map));
    m
}

/// Diagnosis as a plugin module.
#[rhai::plugin::export_module]
pub mod diagnose_fns {
    use std::path::Path;

    use rhai::{Array, Map, NativeCallContext};

    use crate::script::engine::host;
    use crate::script::value::{Fallible, error};

    /// The failed tickers of the run in `run_dir` (a folder `barsmith run` wrote), as
    /// maps `#{ticker, class, kind, status, message, batch, attempt, log}`: the error
    /// class (`retryable`, `ticker`, `run`) and kind, the HTTP status when there was
    /// one, the batch and attempt that last ran the ticker and that attempt's log.
    /// Read from `failed_tickers.csv`, `joblog.jsonl` and the batch logs.
    ///
    /// Example: `for f in failures(run_dir) { print(`${f.ticker}: ${f.kind} ${f.status} (batch ${f.batch})`); }`
    #[rhai_fn(return_raw)]
    pub fn failures(run_dir: &str) -> Fallible<Array> {
        super::failures(Path::new(run_dir)).map_err(|e| error(format!("failures: {e}")))
    }

    /// The recent run folders under the runs root (`runs/`), newest first (at most
    /// 20), as maps `#{dir, script, start, end, exit, tickers_ok, tickers_failed,
    /// attempts}` read from each `run.json` (`()` where unknown).
    ///
    /// Example: `let run_dir = runs()[0].dir;`
    #[rhai_fn(return_raw)]
    pub fn runs(ctx: NativeCallContext) -> Fallible<Array> {
        let h = host(&ctx)?;
        super::runs(&h.config().runs_root).map_err(|e| error(format!("runs: {e}")))
    }

    /// The recent run folders under `root`, newest first, like `runs()`.
    ///
    /// Example: `runs("backfills/2024")`
    #[rhai_fn(name = "runs", return_raw)]
    pub fn runs_in(root: &str) -> Fallible<Array> {
        super::runs(Path::new(root)).map_err(|e| error(format!("runs: {e}")))
    }

    /// The log of batch `batch_id` in `run_dir` (its latest attempt): the worker's
    /// events and log lines, secrets redacted.
    ///
    /// Example: `print(batch_log(run_dir, 3));`
    #[rhai_fn(return_raw)]
    pub fn batch_log(run_dir: &str, batch_id: i64) -> Fallible<String> {
        super::batch_log(Path::new(run_dir), batch_id, Map::new())
    }

    /// Like `batch_log(run_dir, batch_id)` with options (unknown keys are an error):
    /// `attempt` (which attempt, default the latest), `grep` (keep lines containing
    /// this text), `tail` (keep the last N lines, after `grep`).
    ///
    /// Example: `batch_log(run_dir, 3, #{grep: "AAPL", tail: 20})`
    #[rhai_fn(name = "batch_log", return_raw)]
    pub fn batch_log_with(run_dir: &str, batch_id: i64, opts: Map) -> Fallible<String> {
        super::batch_log(Path::new(run_dir), batch_id, opts)
    }

    /// Sends ONE GET to the API (a path like `/v2/aggs/ticker/AAPL/range/1/minute/2024-01-02/2024-01-02`
    /// or a full URL on the configured base) with the API key, no retries, and returns
    /// `#{url, status, latency_ms, headers, body, body_len}`: headers as a map, the
    /// body cut to 2000 characters, the key redacted everywhere. A transport failure
    /// (timeout, refused connection) is thrown as `#{class, kind, status, message}`.
    /// Ctrl-C interrupts it.
    ///
    /// Example: `let r = request("/v2/aggs/ticker/AAPL/range/1/minute/2024-01-02/2024-01-02"); print(r.status);`
    #[rhai_fn(return_raw)]
    pub fn request(ctx: NativeCallContext, path_or_url: &str) -> Fallible<Map> {
        let h = host(&ctx)?;
        super::request(&h, path_or_url, Map::new())
    }

    /// Like `request(path_or_url)` with options: `base_url`, `timeout` (seconds).
    ///
    /// Example: `request("/v1/marketstatus/now", #{timeout: 5})`
    #[rhai_fn(name = "request", return_raw)]
    pub fn request_with(ctx: NativeCallContext, path_or_url: &str, opts: Map) -> Fallible<Map> {
        let h = host(&ctx)?;
        super::request(&h, path_or_url, opts)
    }

    /// Re-ingests a few `tickers` in this process, exactly as a worker would (coverage
    /// honoured, Parquet and coverage written), printing one line per event (page,
    /// retry, done, failed). Options: `outdir`, `from`, `to` (required), `adjusted`
    /// (default true), `base_url`, `timeout` (seconds per request), `retries`
    /// (attempts per request), `max_rps` (shared request budget, default `50/s`),
    /// `quiet` (no live lines). Returns a map per ticker: `#{status, bars, error}` with
    /// status `ok`, `skipped` (already complete), `failed` or `not_run`. Ctrl-C stops it.
    ///
    /// Example: `let r = ingest(["AAPL"], #{outdir: "data/minute", from: "2024-01-01", to: "2024-12-31"}); print(r.AAPL.status);`
    #[rhai_fn(return_raw)]
    pub fn ingest(ctx: NativeCallContext, tickers: Array, opts: Map) -> Fallible<Map> {
        let h = host(&ctx)?;
        super::ingest(&h, tickers, opts)
    }
}
