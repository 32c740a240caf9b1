//! Batches: start a disposable worker process per batch of tickers, and wait for,
//! poll or stop them. With `wait_any` a script keeps N batches running — the seed's
//! "at most 6 at a time" — and decides itself what to retry.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use rhai::{Array, Dynamic, EvalAltResult, Map};

use crate::batch::{BatchError, BatchOptions, PassPlan};
use crate::ingest::WorkerJob;
use crate::ingest::job::SourceKind;
use crate::script::host::{Ending, Host};
use crate::script::primitives::util::cancelled;
use crate::script::types::batch_handle::ScriptBatchHandle;
use crate::script::value::{Fallible, Options, error, strings};

pub(crate) use super::batch_result::result_with;

/// The `spawn_batch` keys that describe the work of any batch (what `pool` takes for
/// all its batches too).
pub(crate) const WORK_OPTIONS: &[&str] = &[
    "outdir",
    "from",
    "to",
    "adjusted",
    "max_rps",
    "base_url",
    "request_timeout",
    "retries",
    "backoff",
    "max_backoff",
    "in_flight",
    "breaker",
    "timeout",
    "source",
    "all_tickers",
    "flat_endpoint",
    "flat_bucket",
    "flat_prefix",
    "refresh",
    "parallel_days",
];

/// The `spawn_batch` keys of one batch only: its identity and the script's own values.
const PER_BATCH_OPTIONS: &[&str] = &["attempt", "id", "label", "data"];

/// The keys `spawn_batch` accepts.
pub(crate) const SPAWN_OPTIONS: &[&str] = &concat::<24>(WORK_OPTIONS, PER_BATCH_OPTIONS);

/// `a` then `b`, as one array of `N` keys (checked when compiling).
pub(crate) const fn concat<const N: usize>(
    a: &[&'static str],
    b: &[&'static str],
) -> [&'static str; N] {
    assert!(a.len() + b.len() == N, "N must be the sum of the lengths");
    let mut out = [""; N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < b.len() {
        out[i + j] = b[j];
        j += 1;
    }
    out
}

/// A batch error as a script error. Cancellation ends the script; a setup error ends
/// it too, with exit 4 and its own one-line reason (no script can fix it by catching).
pub(crate) fn batch_error(host: &Host, function: &str, e: BatchError) -> Box<EvalAltResult> {
    match e {
        BatchError::Cancelled => cancelled(),
        // The message names the setting; which primitive met it first is noise.
        BatchError::Setup(message) => {
            host.set_ending(Ending::Setup(message));
            Box::new(EvalAltResult::Exit(Dynamic::UNIT, rhai::Position::NONE))
        }
        e => error(format!("{function}: {e}")),
    }
}

/// Reads the option map of `spawn_batch` into [`BatchOptions`], and the script's own
/// values that come back in the result: `label` when it is not a string, and `data`.
pub(crate) fn batch_options(host: &Host, opts: Map) -> Fallible<(BatchOptions, Map)> {
    let mut extras = Map::new();
    for key in ["label", "data"] {
        match opts.get(key) {
            Some(v) if key == "data" || !v.is_string() => {
                extras.insert(key.into(), v.clone());
            }
            _ => {}
        }
    }
    let o = Options::parse("spawn_batch", opts, SPAWN_OPTIONS)?;
    let required = |key: &str| {
        o.string(key)?.ok_or_else(|| {
            error(format!(
                "spawn_batch: option '{key}' is required (outdir, from and to say what to fetch and where)"
            ))
        })
    };
    let secs = |key: &str| -> Fallible<Option<Duration>> {
        Ok(o.seconds(key)?.map(Duration::from_secs_f64))
    };
    let small = |key: &str| -> Fallible<Option<u32>> {
        o.int(key)?
            .map(|n| {
                u32::try_from(n).ok().filter(|&n| n >= 1).ok_or_else(|| {
                    error(format!(
                        "spawn_batch: option '{key}' must be a positive integer, got {n}"
                    ))
                })
            })
            .transpose()
    };
    let max_rps = match o.get_dynamic("max_rps") {
        None => None,
        Some(v) if v.is_int() || v.is_float() || v.is_string() => Some(v.to_string()),
        Some(v) => {
            return Err(error(format!(
                "spawn_batch: option 'max_rps' must be a rate like 50, \"50/s\" or \"5/min\", got {}",
                v.type_name()
            )));
        }
    };
    let job = WorkerJob {
        outdir: PathBuf::from(required("outdir")?),
        from: required("from")?,
        to: required("to")?,
        adjusted: o.bool("adjusted")?.unwrap_or(true),
        max_rps,
        base_url: o
            .string("base_url")?
            .or_else(|| host.config().base_url.clone()),
        allow_insecure_http: host.config().allow_insecure_http,
        request_timeout: secs("request_timeout")?,
        retries: small("retries")?,
        backoff: secs("backoff")?,
        max_backoff: secs("max_backoff")?,
        in_flight: small("in_flight")?,
        breaker: o
            .int("breaker")?
            .map(|n| {
                u32::try_from(n).map_err(|_| {
                    error(format!(
                        "spawn_batch: option 'breaker' must be 0 (off) or more, got {n}"
                    ))
                })
            })
            .transpose()?,
        source: source_kind(&o)?,
        all_tickers: o.bool("all_tickers")?.unwrap_or(false),
        flat_endpoint: o.string("flat_endpoint")?.or_else(|| {
            // The run's endpoint (`barsmith run --flat-endpoint`), for flat batches only.
            (source_kind(&o).ok()? == SourceKind::FlatFiles)
                .then(|| host.config().flat_endpoint.clone())
                .flatten()
        }),
        flat_bucket: o.string("flat_bucket")?,
        flat_prefix: o.string("flat_prefix")?,
        refresh: o.bool("refresh")?.unwrap_or(false),
        parallel_days: small("parallel_days")?,
    };
    let options = BatchOptions {
        job,
        timeout: secs("timeout")?,
        attempt: small("attempt")?,
        id: small("id")?,
        // Logs and the joblog need text: a label of another type is printed.
        label: o.get_dynamic("label").map(|v| v.to_string()),
        extra_args: Vec::new(),
    };
    Ok((options, extras))
}

/// The `source` option: `"rest"` (default) or `"flat-files"` (`"flat_files"` too).
fn source_kind(o: &Options) -> Fallible<SourceKind> {
    match o.string("source")?.as_deref() {
        None | Some("rest") => Ok(SourceKind::Rest),
        Some("flat-files" | "flat_files") => Ok(SourceKind::FlatFiles),
        Some(other) => Err(error(format!(
            "spawn_batch: option 'source' must be \"rest\" or \"flat-files\", got \"{other}\""
        ))),
    }
}

/// Starts one batch of `tickers` with the option map `opts` (see `spawn_batch`).
pub(crate) fn spawn(host: &Host, tickers: &Array, opts: Map) -> Fallible<ScriptBatchHandle> {
    let (options, extras) = batch_options(host, opts)?;
    // An all-tickers batch may have no list: the worker takes the files' tickers.
    let tickers = if options.job.all_tickers {
        strings("spawn_batch", "tickers", tickers)?
    } else {
        batch_tickers(tickers)?
    };
    // Checked before the runner exists, so a typo leaves no empty run folder.
    options
        .check()
        .map_err(|m| batch_error(host, "spawn_batch", BatchError::Setup(m)))?;
    let runner = host
        .runner()
        .map_err(|e| batch_error(host, "spawn_batch", e))?;
    runner
        .spawn(tickers, options)
        .map(|h| ScriptBatchHandle(h, extras))
        .map_err(|e| batch_error(host, "spawn_batch", e))
}

/// Reads an array of handles, naming the offending element on error.
pub(crate) fn handles(function: &str, items: &Array) -> Fallible<Vec<ScriptBatchHandle>> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.read_lock::<ScriptBatchHandle>()
                .map(|h| h.clone())
                .ok_or_else(|| {
                    error(format!(
                        "{function}: handles[{i}] is {}, not a BatchHandle from spawn_batch",
                        v.type_name()
                    ))
                })
        })
        .collect()
}

/// Checks a ticker list for `spawn_batch`.
pub(crate) fn batch_tickers(items: &Array) -> Fallible<Vec<String>> {
    let tickers = strings("spawn_batch", "tickers", items)?;
    let unique: BTreeSet<&str> = tickers.iter().map(String::as_str).collect();
    if unique.is_empty() {
        return Err(error("spawn_batch: the batch has no tickers"));
    }
    Ok(tickers)
}

/// The keys `set_pass` accepts.
pub(crate) const PASS_OPTIONS: &[&str] = &["batches", "tickers", "passes", "tries", "retry_delay"];

/// Reads `set_pass(pass, plan)` into a [`PassPlan`].
pub(crate) fn pass_plan(pass: i64, plan: Map) -> Fallible<PassPlan> {
    let o = Options::parse("set_pass", plan, PASS_OPTIONS)?;
    let count = |key: &str, min: i64| -> Fallible<Option<u64>> {
        o.int(key)?
            .map(|n| {
                u64::try_from(n).ok().filter(|_| n >= min).ok_or_else(|| {
                    error(format!("set_pass: '{key}' must be at least {min}, got {n}"))
                })
            })
            .transpose()
    };
    let pass = u32::try_from(pass)
        .ok()
        .filter(|&p| p >= 1)
        .ok_or_else(|| error(format!("set_pass: the pass starts at 1, got {pass}")))?;
    let tickers = match o.get_dynamic("tickers") {
        None => Vec::new(),
        Some(v) => match v.read_lock::<Array>() {
            Some(items) => strings("set_pass", "tickers", &items)?,
            None => {
                return Err(error(format!(
                    "set_pass: option 'tickers' must be an array of tickers, got {}",
                    v.type_name()
                )));
            }
        },
    };
    let small = |n: Option<u64>| n.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    Ok(PassPlan {
        pass: Some(pass),
        passes: small(count("passes", 1)?),
        batches: count("batches", 0)?.unwrap_or(0),
        ticker_count: tickers.len() as u64,
        tickers,
        tries: small(count("tries", 1)?),
        retry_delay: o.seconds("retry_delay")?.map(Duration::from_secs_f64),
    })
}

/// Batches as a plugin module.
#[rhai::plugin::export_module]
pub mod batches_fns {
    use rhai::{Array, Dynamic, Map, NativeCallContext};

    use super::{batch_error, result_with};
    use crate::script::engine::host;
    use crate::script::types::batch_handle::ScriptBatchHandle;
    use crate::script::value::{Fallible, error};

    /// Starts ONE disposable worker process (`barsmith ingest`) for `tickers` and
    /// returns its handle at once. The first batch creates the run folder
    /// (`runs/<timestamp>/`, or `--run-dir`) with a log per batch attempt.
    ///
    /// `opts` (unknown keys are an error): `outdir`, `from`, `to` (required,
    /// `YYYY-MM-DD`); `adjusted` (bool, default true); `max_rps` (shared request
    /// budget: `50`, `"50/s"`, `"5/min"`); `base_url`; `request_timeout`, `backoff`,
    /// `max_backoff` (seconds); `retries` (attempts per request); `in_flight`
    /// (most tickers the worker fetches at once, default 32); `breaker` (give up on a
    /// request after this many identical failed attempts in a row, 0 = off, the
    /// default; the ticker's error then has `circuit_open: true`); `timeout` (wall time
    /// of the batch in seconds: then SIGTERM, SIGKILL); `id` and `attempt` (to retry a
    /// batch under its id: `attempt: r.attempt + 1`); `label` (any value: returned
    /// as is in the result, printed in logs); `data` (any value, returned in the result
    /// as `data`: keep what the batch is for with it).
    ///
    /// Flat files: `source: "flat-files"` (with `adjusted: false`: the files hold
    /// as-traded bars) takes the batch's days from Massive's daily files, credentials
    /// from MASSIVE_S3_ACCESS_KEY_ID / MASSIVE_S3_SECRET_ACCESS_KEY in the workers'
    /// environment; `all_tickers: true` takes every ticker of the files (`tickers` may
    /// then be `[]`; the result lists the tickers the worker reported, and `*` stands
    /// for the whole universe: failed when the worker stopped before any ticker, so
    /// retrying `r.retryable` retries the batch); `flat_endpoint` (default: `barsmith
    /// run --flat-endpoint`, else Massive's), `flat_bucket`, `flat_prefix`, `refresh`
    /// (ingest again the days whose file changed), `parallel_days` (days downloaded
    /// at once).
    ///
    /// Errors on an unknown or ill-typed option, a missing `outdir`/`from`/`to`, an
    /// empty `tickers` (without `all_tickers`), or a worker process that cannot be
    /// started.
    ///
    /// Example: `let h = spawn_batch(batch, #{outdir: "data/minute", from: "2004-01-01", to: "2010-12-31", timeout: 1800});`
    #[rhai_fn(return_raw)]
    pub fn spawn_batch(
        ctx: NativeCallContext,
        tickers: Array,
        opts: Map,
    ) -> Fallible<ScriptBatchHandle> {
        super::spawn(&*host(&ctx)?, &tickers, opts)
    }

    /// Blocks until the batch finishes and returns its result map: `id`, `attempt`,
    /// `label`, `success` (exit 0 and every ticker complete), `status` (`success`,
    /// `failed(rc=3)`, `timeout(signal 9)`, ...), `exit`, `signal`, `timed_out`,
    /// `killed`, `cancelled`, `fatal` (the whole run is broken: stop), `ended_by`
    /// (`()`, or what ended a Slurm job barsmith did not stop: `time_limit` (with
    /// `timed_out`), `cancelled_outside` (with `killed`), `out_of_memory`,
    /// `node_failure`, `preempted`, `vanished`; its tickers stay retryable), `elapsed`
    /// (seconds), `started_at`, `log`, `bars`, `requests`, `retries`, `tickers` (one
    /// map per ticker: `ticker`, `status` ok/skipped/failed/not_run, `bars`,
    /// `requests`, `error` = `()` or `#{class, kind, status, message, attempts}`), and
    /// the lists `ok`, `failed` and `retryable` (failed with class `retryable`), and
    /// `pending` (fetched so far, but the range reaches days not over yet).
    /// Ctrl-C ends the script. Waiting again on a finished handle returns the same
    /// result.
    ///
    /// Example: `let r = wait(h); if !r.success { queue += r.retryable; }`
    #[rhai_fn(return_raw)]
    pub fn wait(ctx: NativeCallContext, handle: ScriptBatchHandle) -> Fallible<Map> {
        let host = host(&ctx)?;
        let runner = host.runner().map_err(|e| batch_error(&host, "wait", e))?;
        runner
            .wait(&handle.0)
            .map(|r| result_with(&r, &handle.1))
            .map_err(|e| batch_error(&host, "wait", e))
    }

    /// Blocks until one of `handles` finishes; returns `#{index, result}` (remove
    /// `handles[index]` before waiting again), or `()` for an empty array.
    /// `result` is the map `wait` returns. Ctrl-C ends the script.
    ///
    /// Errors when an element of `handles` is not a `BatchHandle` from `spawn_batch`.
    ///
    /// Example: `let done = wait_any(running); running.remove(done.index);`
    #[rhai_fn(return_raw)]
    pub fn wait_any(ctx: NativeCallContext, handles: Array) -> Fallible<Dynamic> {
        wait_any_for(ctx, handles, -1.0)
    }

    /// Like `wait_any(handles)`, but returns `()` when none finished within
    /// `timeout` seconds (a negative timeout waits for ever).
    ///
    /// Errors when the timeout is not finite, or as `wait_any(handles)`.
    ///
    /// Example: `let done = wait_any(running, 60.0); if done == () { log(status()); }`
    #[rhai_fn(name = "wait_any", return_raw)]
    pub fn wait_any_for(ctx: NativeCallContext, handles: Array, timeout: f64) -> Fallible<Dynamic> {
        let scripted = super::handles("wait_any", &handles)?;
        let list: Vec<_> = scripted.iter().map(|h| h.0.clone()).collect();
        if list.is_empty() {
            return Ok(Dynamic::UNIT);
        }
        let timeout = if timeout < 0.0 {
            None
        } else if timeout.is_finite() {
            Some(std::time::Duration::from_secs_f64(timeout))
        } else {
            return Err(error(
                "wait_any: the timeout must be a finite number of seconds",
            ));
        };
        let host = host(&ctx)?;
        let runner = host
            .runner()
            .map_err(|e| batch_error(&host, "wait_any", e))?;
        match runner
            .wait_any(&list, timeout)
            .map_err(|e| batch_error(&host, "wait_any", e))?
        {
            None => Ok(Dynamic::UNIT),
            Some((index, result)) => {
                let mut m = Map::new();
                m.insert("index".into(), Dynamic::from_int(index as i64));
                let extras = &scripted[index].1;
                m.insert(
                    "result".into(),
                    Dynamic::from_map(result_with(&result, extras)),
                );
                Ok(Dynamic::from_map(m))
            }
        }
    }

    /// Like `wait_any(handles, timeout)` with an integer number of seconds.
    ///
    /// Example: `let done = wait_any(running, 60);`
    #[rhai_fn(name = "wait_any", return_raw)]
    pub fn wait_any_for_int(
        ctx: NativeCallContext,
        handles: Array,
        timeout: i64,
    ) -> Fallible<Dynamic> {
        wait_any_for(ctx, handles, timeout as f64)
    }

    /// The batch's result map (see `wait`) if it has finished, else `()`; never blocks.
    ///
    /// Example: `let r = poll(h); if r != () { log(r.status); }`
    #[rhai_fn(return_raw)]
    pub fn poll(ctx: NativeCallContext, handle: ScriptBatchHandle) -> Fallible<Dynamic> {
        let host = host(&ctx)?;
        let runner = host.runner().map_err(|e| batch_error(&host, "poll", e))?;
        Ok(runner.poll(&handle.0).map_or(Dynamic::UNIT, |r| {
            Dynamic::from_map(result_with(&r, &handle.1))
        }))
    }

    /// Asks a running batch to stop (SIGTERM, then SIGKILL after a grace period) and
    /// returns at once: true if it was running. Its result then has `killed: true`.
    ///
    /// Example: `for h in running { kill(h); }`
    #[rhai_fn(return_raw)]
    pub fn kill(ctx: NativeCallContext, handle: ScriptBatchHandle) -> Fallible<bool> {
        let host = host(&ctx)?;
        let runner = host.runner().map_err(|e| batch_error(&host, "kill", e))?;
        Ok(runner.kill(&handle.0))
    }

    /// The number of batches still running (0 before the first `spawn_batch`).
    ///
    /// Example: `while running() > 0 { sleep(1); }`
    #[rhai_fn(return_raw)]
    pub fn running(ctx: NativeCallContext) -> Fallible<i64> {
        Ok(host(&ctx)?
            .existing_runner()
            .map_or(0, |r| r.running() as i64))
    }

    /// Announces the planned totals of a pass, so progress shows a percentage and an
    /// ETA. A call after the current pass has started a batch begins the next pass;
    /// `set_pass` says more (retries, passes). Errors when a total is negative.
    ///
    /// Example: `set_total(batches.len(), todo.len());`
    #[rhai_fn(return_raw)]
    pub fn set_total(ctx: NativeCallContext, batches: i64, tickers: i64) -> Fallible<()> {
        if batches < 0 || tickers < 0 {
            return Err(error("set_total: totals cannot be negative"));
        }
        let host = host(&ctx)?;
        let runner = host
            .runner()
            .map_err(|e| batch_error(&host, "set_total", e))?;
        runner.set_total(batches as u64, tickers as u64);
        Ok(())
    }

    /// Starts pass `pass` (from 1) for progress, before its batches: totals are then
    /// per pass and count distinct tickers (a retry adds nothing), and the ETA allows
    /// for retries and the passes left. `plan` (unknown keys are an error): `batches`
    /// (how many this pass runs), `tickers` (the pass's tickers), and optionally
    /// `passes` (most passes), `tries` (attempts per batch) and `retry_delay` (seconds
    /// before a failed batch's next attempt). Errors on a pass below 1, a negative
    /// count or an ill-typed option.
    ///
    /// Example: `set_pass(pass, #{batches: batches.len(), tickers: todo, passes: 3, tries: 2, retry_delay: 3});`
    #[rhai_fn(return_raw)]
    pub fn set_pass(ctx: NativeCallContext, pass: i64, plan: Map) -> Fallible<()> {
        let plan = super::pass_plan(pass, plan)?;
        let host = host(&ctx)?;
        let runner = host
            .runner()
            .map_err(|e| batch_error(&host, "set_pass", e))?;
        runner.plan_pass(&plan);
        Ok(())
    }

    /// The current progress lines, one per line (`Progress 96% | ETA 1m 40s |
    /// elapsed 2m 05s | pass 2/3 (retries) | tickers 60/62, 1 failed`, then batches
    /// and rates, then the slowest attempt running), or `""` before the first batch.
    ///
    /// Example: `log(status());`
    #[rhai_fn(return_raw)]
    pub fn status(ctx: NativeCallContext) -> Fallible<String> {
        Ok(host(&ctx)?
            .existing_runner()
            .map(|r| r.status_lines().join("\n"))
            .unwrap_or_default())
    }

    /// The run folder (batch logs, `joblog.jsonl`, `failed_tickers.csv`,
    /// `summary.txt`, `run.json`); creates it if no batch has started yet. Errors when
    /// the folder cannot be created.
    ///
    /// Example: `write_csv(`${run_dir()}/todo.csv`, rows);`
    #[rhai_fn(return_raw)]
    pub fn run_dir(ctx: NativeCallContext) -> Fallible<String> {
        let host = host(&ctx)?;
        let runner = host
            .runner()
            .map_err(|e| batch_error(&host, "run_dir", e))?;
        Ok(runner.run_dir().display().to_string())
    }
}
