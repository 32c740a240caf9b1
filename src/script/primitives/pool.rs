//! Jobs and a pool: a job is a map that carries its own tickers, range and any data of
//! the script's; `pool` runs many with at most N batches alive, retries what can be
//! retried and returns one result per job — the queue loop every strategy otherwise
//! writes by hand (spawn up to N, `wait_any`, retry).

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, EvalAltResult, Map};

use crate::script::host::{Ending, Host};
use crate::script::primitives::batches::{WORK_OPTIONS, batch_error, concat, result_with, spawn};
use crate::script::types::batch_handle::ScriptBatchHandle;
use crate::script::value::{Fallible, Options, error, strings};

/// Keys of a job map that set its batch; every other key is the script's own data.
const JOB_KEYS: &[&str] = &["from", "to", "label", "timeout"];

/// Keys of `pool`'s options that are the pool's, not the batches'.
const POOL_KEYS: &[&str] = &["max_concurrent", "tries", "retry_delay"];

/// Every key `pool`'s options accept: its own and the batches' work keys (the pool
/// sets `id`, `attempt`, `label` and `data` per job).
pub(crate) const POOL_OPTIONS: &[&str] = &concat::<23>(POOL_KEYS, WORK_OPTIONS);

/// The tickers of a job map: its `ticker` or its `tickers`.
fn job_tickers(function: &str, job: &Map) -> Fallible<Array> {
    match (job.get("ticker"), job.get("tickers")) {
        (Some(t), None) if t.is_string() => Ok(vec![t.clone()]),
        (None, Some(list)) => match list.read_lock::<Array>() {
            Some(items) => {
                strings(function, "job.tickers", &items)?;
                Ok(items.clone())
            }
            None => Err(error(format!(
                "{function}: job.tickers must be an array of tickers, got {}",
                list.type_name()
            ))),
        },
        _ => Err(error(format!(
            "{function}: a job needs `ticker` (a string) or `tickers` (an array), not both: {job:?}"
        ))),
    }
}

/// The batch options of `job`: `opts` with the job's own `from`, `to`, `label` and
/// `timeout`, and the job itself as `job` in the result.
fn job_options(job: &Map, opts: &Map) -> Map {
    let mut o = opts.clone();
    for key in JOB_KEYS {
        if let Some(v) = job.get(*key) {
            o.insert((*key).into(), v.clone());
        }
    }
    o
}

/// Starts `job` as one batch (see `spawn_job`), attempt `attempt` of batch `id` when
/// retrying, for `tickers` (the job's, or the ones left to retry).
pub(crate) fn spawn_job(
    host: &Host,
    job: &Map,
    tickers: &Array,
    opts: &Map,
    retry: Option<(i64, i64)>,
) -> Fallible<ScriptBatchHandle> {
    let mut o = job_options(job, opts);
    if let Some((id, attempt)) = retry {
        o.insert("id".into(), Dynamic::from_int(id));
        o.insert("attempt".into(), Dynamic::from_int(attempt));
    }
    let mut handle = spawn(host, tickers, o)?;
    handle
        .1
        .insert("job".into(), Dynamic::from_map(job.clone()));
    Ok(handle)
}

/// A job waiting to start: its index, tickers, retry (id, attempt) and start time.
struct Queued {
    index: usize,
    tickers: Array,
    retry: Option<(i64, i64)>,
    not_before: Instant,
    attempts: i64,
}

/// The settings of one `pool` call.
struct Plan {
    max_concurrent: usize,
    tries: i64,
    retry_delay: Duration,
    batch_opts: Map,
}

fn plan(opts: Map) -> Fallible<Plan> {
    // Unknown keys, and the per-job ones, are refused here as `barsmith check` does.
    Options::parse("pool", opts.clone(), POOL_OPTIONS)?;
    let (mut mine, mut batch_opts) = (Map::new(), Map::new());
    for (k, v) in opts {
        if POOL_KEYS.contains(&k.as_str()) {
            mine.insert(k, v);
        } else {
            batch_opts.insert(k, v);
        }
    }
    let o = Options::parse("pool", mine, POOL_KEYS)?;
    let positive = |key: &str, default: i64| -> Fallible<i64> {
        match o.int(key)? {
            None => Ok(default),
            Some(n) if n >= 1 => Ok(n),
            Some(n) => Err(error(format!("pool: '{key}' must be at least 1, got {n}"))),
        }
    };
    Ok(Plan {
        max_concurrent: positive("max_concurrent", 6)? as usize,
        tries: positive("tries", 3)?,
        retry_delay: Duration::from_secs_f64(o.seconds("retry_delay")?.unwrap_or(0.0)),
        batch_opts,
    })
}

/// Runs `jobs` as described by `pool`'s doc; returns one map per job, in job order.
pub(crate) fn run_pool(host: &Host, jobs: Array, opts: Map) -> Fallible<Array> {
    let plan = plan(opts)?;
    let mut maps = Vec::with_capacity(jobs.len());
    let mut queue = VecDeque::new();
    let mut distinct = BTreeSet::new();
    for (index, j) in jobs.into_iter().enumerate() {
        let job = j.try_cast::<Map>().ok_or_else(|| {
            error(format!(
                "pool: jobs[{index}] must be a map like #{{ticker, from, to}}"
            ))
        })?;
        let tickers = job_tickers("pool", &job)?;
        distinct.extend(tickers.iter().map(|t| t.to_string()));
        queue.push_back(Queued {
            index,
            tickers,
            retry: None,
            not_before: Instant::now(),
            attempts: 0,
        });
        maps.push(job);
    }
    if let Ok(runner) = host.runner() {
        runner.set_total(maps.len() as u64, distinct.len() as u64);
    }
    let mut results: Vec<Dynamic> = vec![Dynamic::UNIT; maps.len()];
    let mut running: Vec<(ScriptBatchHandle, Queued)> = Vec::new();
    while !queue.is_empty() || !running.is_empty() {
        start_ready(host, &plan, &maps, &mut queue, &mut running)?;
        let Some((i, result)) = wait_one(host, &running, &queue)? else {
            continue;
        };
        let (handle, q) = running.remove(i);
        if result.fatal {
            return Err(halt(host, &running, &result));
        }
        let r = result_with(&result, &handle.1);
        let retryable = result.retryable_tickers();
        if !result.success() && !retryable.is_empty() && q.attempts < plan.tries {
            queue.push_back(Queued {
                index: q.index,
                tickers: retryable.into_iter().map(Dynamic::from).collect(),
                retry: Some((i64::from(result.id), i64::from(result.attempt) + 1)),
                not_before: Instant::now() + plan.retry_delay,
                attempts: q.attempts,
            });
            continue;
        }
        let mut out = Map::new();
        out.insert("job".into(), Dynamic::from_map(maps[q.index].clone()));
        out.insert("ok".into(), result.success().into());
        out.insert("attempts".into(), Dynamic::from_int(q.attempts));
        out.insert("result".into(), Dynamic::from_map(r));
        results[q.index] = Dynamic::from_map(out);
    }
    Ok(results)
}

/// Starts queued jobs whose time has come while fewer than `max_concurrent` run.
fn start_ready(
    host: &Host,
    plan: &Plan,
    maps: &[Map],
    queue: &mut VecDeque<Queued>,
    running: &mut Vec<(ScriptBatchHandle, Queued)>,
) -> Fallible<()> {
    let now = Instant::now();
    while running.len() < plan.max_concurrent {
        let Some(pos) = queue.iter().position(|q| q.not_before <= now) else {
            break;
        };
        let Some(mut q) = queue.remove(pos) else {
            break;
        };
        let h = spawn_job(host, &maps[q.index], &q.tickers, &plan.batch_opts, q.retry)?;
        q.attempts += 1;
        running.push((h, q));
    }
    Ok(())
}

/// Waits for a running batch to finish, or (nothing running) until the next queued
/// retry may start. `None` when a retry became ready first.
fn wait_one(
    host: &Host,
    running: &[(ScriptBatchHandle, Queued)],
    queue: &VecDeque<Queued>,
) -> Fallible<Option<(usize, crate::batch::BatchResult)>> {
    let next_retry = queue.iter().map(|q| q.not_before).min();
    let timeout = next_retry.map(|t| t.saturating_duration_since(Instant::now()));
    if running.is_empty() {
        let secs = timeout.unwrap_or_default().as_secs_f64();
        crate::script::primitives::util::sleep_interruptibly(host, secs)?;
        return Ok(None);
    }
    let runner = host.runner().map_err(|e| batch_error(host, "pool", e))?;
    let handles: Vec<_> = running.iter().map(|(h, _)| h.0.clone()).collect();
    runner
        .wait_any(&handles, timeout)
        .map_err(|e| batch_error(host, "pool", e))
}

/// Stops the others and ends the script with exit status 4, as the wrapper halts,
/// with the first ticker error (the API's own words) or the batch status as reason.
fn halt(
    host: &Host,
    running: &[(ScriptBatchHandle, Queued)],
    r: &crate::batch::BatchResult,
) -> Box<EvalAltResult> {
    if let Ok(runner) = host.runner() {
        for (h, _) in running {
            runner.kill(&h.0);
        }
        for (h, _) in running {
            let _ = runner.wait(&h.0);
        }
    }
    let why = r
        .tickers
        .iter()
        .find_map(|t| t.error.as_ref().map(|e| e.message.clone()))
        .unwrap_or_else(|| r.status_text());
    host.warn(&format!(
        "halting: batch {} hit an error fatal for the whole run: {why} (log: {})",
        r.id,
        r.log_path.display()
    ));
    host.set_ending(Ending::Exit(4));
    Box::new(EvalAltResult::Exit(Dynamic::UNIT, rhai::Position::NONE))
}

/// Jobs and the pool as a plugin module.
#[rhai::plugin::export_module]
pub mod pool_fns {
    use rhai::{Array, Map, NativeCallContext};

    use crate::script::engine::host;
    use crate::script::types::batch_handle::ScriptBatchHandle;
    use crate::script::value::Fallible;

    /// Starts one batch for a job: a map with `ticker` (one) or `tickers` (an array),
    /// and optionally its own `from`, `to` (Dates or `YYYY-MM-DD`), `label` and
    /// `timeout`, which override `opts` (the options of `spawn_batch`). Any other key
    /// is yours: the whole job comes back as `job` in the result of `wait`/`wait_any`.
    ///
    /// Errors as `spawn_batch`, and when the job has neither `ticker` nor `tickers`.
    ///
    /// Example: `let h = spawn_job(#{ticker: "AAPL", from: q.from, to: q.to, priority: 1}, #{outdir: o});`
    #[rhai_fn(return_raw)]
    pub fn spawn_job(ctx: NativeCallContext, job: Map, opts: Map) -> Fallible<ScriptBatchHandle> {
        let host = host(&ctx)?;
        let tickers = super::job_tickers("spawn_job", &job)?;
        super::spawn_job(&host, &job, &tickers, &opts, None)
    }

    /// Runs `jobs` (maps as for `spawn_job`) as batches with at most `max_concurrent`
    /// alive (default 6). A batch that fails with retryable tickers is tried again with
    /// just those (same batch id, next attempt) up to `tries` attempts in all (default
    /// 3), `retry_delay` seconds later (default 0). Other keys of `opts` are
    /// `spawn_batch` options for every batch. Returns, in job order, `#{job, ok,
    /// attempts, result}` where `result` is the last attempt's result map. A fatal
    /// error (key rejected, disk unwritable) stops the other batches and ends the script
    /// with exit status 4 and a warning naming the batch log.
    ///
    /// Errors on a job that is not a map with `ticker` or `tickers`, and as
    /// `spawn_batch`.
    ///
    /// Example: `let results = pool(jobs, #{outdir: "data/minute", max_concurrent: 6, tries: 3});`
    #[rhai_fn(return_raw)]
    pub fn pool(ctx: NativeCallContext, jobs: Array, opts: Map) -> Fallible<Array> {
        super::run_pool(&*host(&ctx)?, jobs, opts)
    }
}
