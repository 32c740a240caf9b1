//! Diagnosing a run: which tickers failed and why, the batch logs, one raw request,
//! and re-ingesting a few tickers in this process with live output. Made for the
//! REPL (`barsmith repl --run RUN_DIR`), usable from any script.
//!
//! Run folders (`failed_tickers.csv`, `joblog.jsonl`, `batch-NNNN.attempt-N.{log,
//! tickers.csv}`) are read through the readers of `crate::batch`, whose records module
//! writes them.

mod run_folder;

use std::collections::BTreeMap;
use std::path::Path;

use rhai::{Array, Dynamic, Map};

pub(crate) use run_folder::{LOG_OPTIONS, batch_log, failures, runs};

use crate::budget::{Budget, Rate, default_state_dir};
use crate::calendar::today_ny;
use crate::ingest::Ingest;
use crate::ingest::events::Event;
use crate::polygon::Client;
use crate::script::host::Host;
use crate::script::primitives::net::{
    block_on_cancellable, block_on_cancellable_in, client_config, fetch_error_map,
};
use crate::script::primitives::util::cancelled;
use crate::script::value::{Fallible, Options, date_range, error, strings};
use crate::store::dataset::writer_runtime;
use crate::store::{Dataset, DatasetIdentity, DatasetLocation, Store};

/// Most body characters `request` returns.
const BODY_EXCERPT: usize = 2000;
/// The keys `request` accepts.
pub(crate) const REQUEST_OPTIONS: &[&str] = &["base_url", "timeout"];
/// The keys `ingest` accepts.
pub(crate) const INGEST_OPTIONS: &[&str] = &[
    "outdir", "from", "to", "adjusted", "base_url", "timeout", "retries", "max_rps", "quiet",
];

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
        Event::NoBars { ticker, reason } => format!("{ticker}: no bars ({reason})"),
        Event::DayFile { day, outcome, rows } => {
            format!("{day}: flat file {outcome} ({rows} rows)")
        }
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
    let location =
        DatasetLocation::parse(Path::new(&outdir)).map_err(|e| error(format!("ingest: {e}")))?;
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
    let runtime = writer_runtime(&location)
        .map_err(|e| error(format!("ingest: cannot start the HTTP runtime: {e}")))?;
    let identity = DatasetIdentity::minute(adjusted);
    let dataset = match location {
        DatasetLocation::Local(dir) => Store::open(&dir, &identity).map(Dataset::Local),
        DatasetLocation::S3(at) => {
            block_on_cancellable_in(&runtime, host, Dataset::open_s3(at, &identity))?
        }
    }
    .map_err(|e| error(format!("ingest: {e}")))?;
    let client = Client::new(cfg).map_err(|e| error(format!("ingest: {}", e.message)))?;

    let mut results: BTreeMap<String, Map> = BTreeMap::new();
    let cancel = || host.is_cancelled();
    let job = Ingest {
        source: &client,
        dataset: &dataset,
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
    let finished = block_on_cancellable_in(&runtime, host, job.run(&tickers, &mut sink));
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
    /// maps `#{ticker, from, to, class, kind, status, message, batch, attempt, log}`:
    /// the date range the ticker was asked for (`()` when an older run did not record
    /// it), the error class (`retryable`, `ticker`, `run`) and kind, the HTTP status
    /// when there was one, the batch and attempt that last ran the ticker and that
    /// attempt's log. Read from `failed_tickers.csv`, `joblog.jsonl` and the batch
    /// logs. `write_csv` of these rows puts `ticker,from,to` first, so the file feeds
    /// straight back into a run as `--tickers-csv`.
    ///
    /// Example: `for f in failures(run_dir) { print(`${f.ticker}: ${f.kind} ${f.status} (batch ${f.batch})`); }`
    #[rhai_fn(return_raw)]
    pub fn failures(run_dir: &str) -> Fallible<Array> {
        super::failures(Path::new(run_dir)).map_err(|e| error(format!("failures: {e}")))
    }

    /// The recent run folders under the runs root (`runs/`), newest first by the
    /// start time in `run.json` (at most 20), as maps `#{dir, script, start, end, exit, tickers_ok, tickers_failed,
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
    /// honoured, Parquet and coverage written; `outdir` may be `s3://bucket/prefix`, as
    /// the AWS variables reach it), printing one line per event (page, retry, done,
    /// failed). Options: `outdir`, `from`, `to` (required), `adjusted`
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
