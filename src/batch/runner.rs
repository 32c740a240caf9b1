//! [`BatchRunner`]: starts batches, hands out handles, and answers wait / wait_any /
//! poll / kill / shutdown. Every method takes `&self`, so one runner can be shared
//! (`Arc`) by all the script primitives.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::BatchError;
use super::cancel::{CHECK_INTERVAL, CancelFlag};
use super::executor::{Executor, ExecutorChoice, LaunchSpec};
use super::options::{BatchOptions, RunConfig, batch_universe};
use super::progress::{PassPlan, Progress};
use super::records::{RunRecords, Summary, create_default_run_dir, names};
use super::result::BatchResult;
use super::secrets::Secrets;
use super::supervise::{Attempt, LogFile, supervise};
use crate::ingest::ALL_TICKERS;

/// Distinguishes runners, so a handle from another runner is refused.
static RUNNER_IDS: AtomicU64 = AtomicU64::new(1);

/// A started batch attempt. Cheap to clone; pass it back to the runner that made it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchHandle {
    runner: u64,
    key: u64,
    /// Batch id (`batch-0007`).
    pub id: u32,
    /// Attempt number.
    pub attempt: u32,
    /// Label given at spawn.
    pub label: Option<String>,
    /// Tickers in the batch (after dropping blanks and duplicates).
    pub tickers: Vec<String>,
    /// Worker process id (local executor).
    pub pid: Option<u32>,
    /// The attempt's log file.
    pub log_path: PathBuf,
}

enum Slot {
    Running { kill: Arc<AtomicBool> },
    Done { result: BatchResult, seq: u64 },
}

#[derive(Default)]
struct State {
    slots: HashMap<u64, Slot>,
    next_key: u64,
    next_id: u32,
    attempts: HashMap<u32, BTreeSet<u32>>,
    finished: u64,
    shut_down: bool,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs batches as disposable workers and keeps the run's records.
pub struct BatchRunner {
    id: u64,
    config: RunConfig,
    executor: Arc<dyn Executor>,
    records: Arc<RunRecords>,
    progress: Arc<Progress>,
    secrets: Arc<Secrets>,
    shared: Arc<Shared>,
}

impl BatchRunner {
    /// A runner with local worker processes; creates the run folder.
    pub fn new(config: RunConfig) -> Result<BatchRunner, BatchError> {
        BatchRunner::with_executor(config, ExecutorChoice::Local.build()?)
    }

    /// A runner with another executor (Slurm, a test double).
    pub fn with_executor(
        config: RunConfig,
        executor: Arc<dyn Executor>,
    ) -> Result<BatchRunner, BatchError> {
        let dir = match &config.run_dir {
            Some(dir) => dir.clone(),
            None => create_default_run_dir(&config.runs_root).map_err(|source| BatchError::Io {
                path: config.runs_root.clone(),
                source,
            })?,
        };
        let secrets = Arc::new(Secrets::from_env(&config.env));
        let records =
            RunRecords::create(&dir, (*secrets).clone(), executor.name()).map_err(|source| {
                match source.kind() {
                    std::io::ErrorKind::AlreadyExists => BatchError::Setup(source.to_string()),
                    _ => BatchError::Io {
                        path: dir.clone(),
                        source,
                    },
                }
            })?;
        let progress = Progress::new(&config.progress, config.progress_interval);
        Ok(BatchRunner {
            id: RUNNER_IDS.fetch_add(1, Ordering::Relaxed),
            config,
            executor,
            records: Arc::new(records),
            progress: Arc::new(progress),
            secrets,
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    next_id: 1,
                    ..State::default()
                }),
                changed: Condvar::new(),
            }),
        })
    }

    /// The run folder (absolute).
    pub fn run_dir(&self) -> &Path {
        self.records.dir()
    }

    /// The run's records (joblog, failed tickers, summary, run.json).
    pub fn records(&self) -> &RunRecords {
        &self.records
    }

    /// The cancel flag every blocking call watches.
    pub fn cancel_flag(&self) -> &CancelFlag {
        &self.config.cancel
    }

    /// Name of the executor (`local`).
    pub fn executor_name(&self) -> &str {
        self.executor.name()
    }

    /// Announces the planned totals of a pass so progress shows a percentage and an
    /// ETA (a new pass once the current one has started a batch).
    pub fn set_total(&self, batches: u64, tickers: u64) {
        self.progress.set_total(batches, tickers);
        self.records.set_planned_batches(batches);
    }

    /// Announces a pass: its number, batches, tickers and retry settings, so progress
    /// counts per pass and distinct tickers, and the ETA allows for retries.
    pub fn plan_pass(&self, plan: &PassPlan) {
        self.progress.plan(plan);
        self.records.set_planned_batches(plan.batches);
    }

    /// Prints a line through the progress display (above the bars on a terminal).
    pub fn println(&self, line: &str) {
        self.progress.println(line);
    }

    /// Starts one worker for `tickers` and returns at once.
    ///
    /// Blank and duplicate tickers are dropped; an invalid symbol, an empty batch,
    /// missing `outdir`/`from`/`to`, a bad date, an already used (id, attempt) or a secret
    /// in any argument is `InvalidOptions`. Returns `Cancelled` when the cancel flag is
    /// set and `ShutDown` after [`shutdown`](Self::shutdown).
    pub fn spawn(
        &self,
        tickers: Vec<String>,
        opts: BatchOptions,
    ) -> Result<BatchHandle, BatchError> {
        self.config.cancel.check()?;
        let (tickers, opts) = batch_universe(tickers, opts)?;
        self.validate(&opts)?;
        let (id, attempt) = self.reserve(&opts)?;

        let dir = self.records.dir();
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BatchError::Io { path, source }
        };
        let mut args = self.config.worker.args_prefix.clone();
        // An all-tickers batch has no list: the worker takes the files' tickers (and
        // `--tickers-file` conflicts with `--all-tickers`).
        let open = opts.job.all_tickers;
        if !open {
            let tickers_path = dir.join(names::tickers(id, attempt));
            let mut list = String::from("ticker\n");
            for t in &tickers {
                list.push_str(t);
                list.push('\n');
            }
            fs::write(&tickers_path, list).map_err(io_err(&tickers_path))?;
            args.push("--tickers-file".into());
            args.push(tickers_path.display().to_string());
        }
        args.extend(opts.worker_args());
        let tickers = if open {
            vec![ALL_TICKERS.to_string()]
        } else {
            tickers
        };
        let name = format!("batch-{id:04}.attempt-{attempt}");
        let spec = LaunchSpec {
            program: self.config.worker.program.clone(),
            args,
            env: self.config.env.clone(),
            name: name.clone(),
            run_dir: dir.to_path_buf(),
            limit: opts.timeout.map(|t| t + self.config.grace),
            cpus: opts.job.cores(),
        };

        let log_path = dir.join(names::log(id, attempt));
        let file = File::create(&log_path).map_err(io_err(&log_path))?;
        let log = Arc::new(LogFile::new(file, self.secrets.clone()));
        let started_at = jiff::Timestamp::now().to_string();
        let label = opts
            .label
            .clone()
            .map(|l| format!(" [{l}]"))
            .unwrap_or_default();
        log.line(&format!(
            "== BATCH {id:04} attempt {attempt} =={label} started {started_at}"
        ));
        if open {
            log.line("tickers: every ticker of the flat files (--all-tickers)");
        } else {
            log.line(&format!(
                "tickers ({}): {}",
                tickers.len(),
                tickers.join(",")
            ));
        }
        log.line(&format!(
            "command: {} {}",
            spec.program.display(),
            spec.args.join(" ")
        ));
        if let Some(t) = opts.timeout {
            log.line(&format!(
                "timeout: {:.1}s, grace {:.1}s",
                t.as_secs_f64(),
                self.config.grace.as_secs_f64()
            ));
        }

        let started = Instant::now();
        let exec = match self.executor.launch(&spec) {
            Ok(exec) => exec,
            Err(e) => {
                log.line(&format!("== could not start the worker: {e} =="));
                return Err(e);
            }
        };
        let pid = exec.pid();
        match exec.engine_id() {
            Some(job) => log.line(&job),
            None => log.line(&format!(
                "pid: {}",
                pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into())
            )),
        }

        let kill = Arc::new(AtomicBool::new(false));
        let handle = BatchHandle {
            runner: self.id,
            key: 0,
            id,
            attempt,
            label: opts.label.clone(),
            tickers: tickers.clone(),
            pid,
            log_path: log_path.clone(),
        };
        let attempt_info = Attempt {
            id,
            attempt,
            label: opts.label.clone(),
            tickers,
            open,
            range: (opts.job.from.clone(), opts.job.to.clone()),
            log_path,
            started_at,
            started,
            timeout: opts.timeout,
            grace: self.config.grace,
        };
        self.progress.on_spawn(id, attempt, &attempt_info.tickers);

        let mut state = self.shared.lock();
        let key = state.next_key;
        state.next_key += 1;
        if state.shut_down {
            kill.store(true, Ordering::SeqCst);
        }
        state
            .slots
            .insert(key, Slot::Running { kill: kill.clone() });
        state.threads.retain(|t| !t.is_finished());
        let (shared, records, progress, cancel) = (
            self.shared.clone(),
            self.records.clone(),
            self.progress.clone(),
            self.config.cancel.clone(),
        );
        let thread_progress = progress.clone();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let result = supervise(attempt_info, exec, log, cancel, kill, thread_progress);
            if let Err(e) = records.record(&result) {
                tracing::error!("cannot append to the joblog: {e}");
            }
            progress.on_batch_done(&result);
            let mut state = shared.lock();
            state.finished += 1;
            let seq = state.finished;
            state.slots.insert(key, Slot::Done { result, seq });
            shared.changed.notify_all();
        });
        match thread {
            Ok(t) => state.threads.push(t),
            Err(source) => {
                // The execution was moved into the failed closure and dropped: the
                // worker is already killed and reaped.
                state.slots.remove(&key);
                return Err(BatchError::Spawn {
                    program: "supervisor thread".into(),
                    source,
                });
            }
        }
        Ok(BatchHandle { key, ..handle })
    }

    fn validate(&self, opts: &BatchOptions) -> Result<(), BatchError> {
        let invalid = |m: String| Err(BatchError::InvalidOptions(m));
        if opts.job.outdir.as_os_str().is_empty() {
            return invalid(
                "`outdir` is required (the Parquet data root, e.g. data/minute)".into(),
            );
        }
        for (name, value) in [("from", &opts.job.from), ("to", &opts.job.to)] {
            if let Err(e) = crate::calendar::parse_date(value) {
                return invalid(format!("`{name}`: {e}"));
            }
        }
        if opts.timeout == Some(Duration::ZERO) {
            return invalid("`timeout` must be positive".into());
        }
        opts.check().map_err(BatchError::Setup)?;
        let args = opts.worker_args();
        if args.iter().any(|a| self.secrets.found_in(a))
            || self
                .secrets
                .found_in(&opts.label.clone().unwrap_or_default())
        {
            return invalid("an option contains a secret from the worker environment (the API key); keys reach workers only through the environment".into());
        }
        Ok(())
    }

    fn reserve(&self, opts: &BatchOptions) -> Result<(u32, u32), BatchError> {
        let mut state = self.shared.lock();
        if state.shut_down {
            return Err(BatchError::ShutDown);
        }
        let id = opts.id.unwrap_or(state.next_id);
        let used = state.attempts.entry(id).or_default();
        let attempt = opts
            .attempt
            .unwrap_or_else(|| used.last().map_or(1, |a| a + 1));
        if attempt == 0 {
            return Err(BatchError::InvalidOptions("`attempt` starts at 1".into()));
        }
        if !used.insert(attempt) {
            return Err(BatchError::InvalidOptions(format!(
                "batch {id} attempt {attempt} was already started; leave `attempt` unset for the next one"
            )));
        }
        state.next_id = state.next_id.max(id.saturating_add(1));
        Ok((id, attempt))
    }

    fn check_handle(&self, state: &State, h: &BatchHandle) -> Result<(), BatchError> {
        if h.runner != self.id || !state.slots.contains_key(&h.key) {
            return Err(BatchError::UnknownHandle(format!(
                "batch {:04} attempt {}",
                h.id, h.attempt
            )));
        }
        Ok(())
    }

    /// The result if the attempt has finished; never blocks.
    pub fn poll(&self, h: &BatchHandle) -> Option<BatchResult> {
        match self.shared.lock().slots.get(&h.key) {
            Some(Slot::Done { result, .. }) if h.runner == self.id => Some(result.clone()),
            _ => None,
        }
    }

    /// Blocks until the attempt finishes. `Cancelled` as soon as the cancel flag is set.
    pub fn wait(&self, h: &BatchHandle) -> Result<BatchResult, BatchError> {
        match self.wait_any(std::slice::from_ref(h), None)? {
            Some((_, result)) => Ok(result),
            None => Err(BatchError::UnknownHandle(format!("batch {:04}", h.id))),
        }
    }

    /// Blocks until one of `handles` has finished and returns its index and result; with
    /// several finished, the one that finished first. Finished handles stay finished:
    /// remove the returned one from your list before calling again. `Ok(None)` after
    /// `timeout`, or at once for an empty list. `Cancelled` as soon as the flag is set.
    pub fn wait_any(
        &self,
        handles: &[BatchHandle],
        timeout: Option<Duration>,
    ) -> Result<Option<(usize, BatchResult)>, BatchError> {
        if handles.is_empty() {
            return Ok(None);
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.shared.lock();
        for h in handles {
            self.check_handle(&state, h)?;
        }
        loop {
            self.config.cancel.check()?;
            let first = handles
                .iter()
                .enumerate()
                .filter_map(|(i, h)| match state.slots.get(&h.key) {
                    Some(Slot::Done { result, seq }) => Some((*seq, i, result)),
                    _ => None,
                })
                .min_by_key(|(seq, _, _)| *seq);
            if let Some((_, i, result)) = first {
                return Ok(Some((i, result.clone())));
            }
            let mut wait = CHECK_INTERVAL;
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                wait = wait.min(left);
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits for every handle, in order. `Cancelled` as soon as the flag is set.
    pub fn wait_all(&self, handles: &[BatchHandle]) -> Result<Vec<BatchResult>, BatchError> {
        handles.iter().map(|h| self.wait(h)).collect()
    }

    /// Asks a running attempt to stop (SIGTERM, SIGKILL after the grace period); returns
    /// at once. Its result has `killed: true`. False if it had already finished.
    pub fn kill(&self, h: &BatchHandle) -> bool {
        match self.shared.lock().slots.get(&h.key) {
            Some(Slot::Running { kill }) if h.runner == self.id => {
                kill.store(true, Ordering::SeqCst);
                true
            }
            _ => false,
        }
    }

    /// Attempts still running.
    pub fn running(&self) -> usize {
        self.shared
            .lock()
            .slots
            .values()
            .filter(|s| matches!(s, Slot::Running { .. }))
            .count()
    }

    /// Handles-free view of every finished attempt, in finish order.
    pub fn results(&self) -> Vec<BatchResult> {
        let state = self.shared.lock();
        let mut done: Vec<(u64, &BatchResult)> = state
            .slots
            .values()
            .filter_map(|s| match s {
                Slot::Done { result, seq } => Some((*seq, result)),
                Slot::Running { .. } => None,
            })
            .collect();
        done.sort_by_key(|(seq, _)| *seq);
        done.into_iter().map(|(_, r)| r.clone()).collect()
    }

    /// Stops everything: no new batch starts, running ones get SIGTERM then SIGKILL after
    /// the grace period, and this returns once all are reaped and recorded (bounded by
    /// the grace period plus a few seconds). Not interrupted by the cancel flag.
    /// Idempotent.
    pub fn shutdown(&self) {
        let mut state = self.shared.lock();
        state.shut_down = true;
        for slot in state.slots.values() {
            if let Slot::Running { kill } = slot {
                kill.store(true, Ordering::SeqCst);
            }
        }
        let limit = Instant::now() + self.config.grace + Duration::from_secs(5);
        while state
            .slots
            .values()
            .any(|s| matches!(s, Slot::Running { .. }))
            && Instant::now() < limit
        {
            state = self
                .shared
                .changed
                .wait_timeout(state, CHECK_INTERVAL)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let threads = std::mem::take(&mut state.threads);
        drop(state);
        for t in threads {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }

    /// Totals so far.
    pub fn summary(&self) -> Summary {
        self.records.summary()
    }

    /// The current main progress line (`Progress 96% | ETA 1m 40s | ...`).
    pub fn status_line(&self) -> String {
        self.progress.status_line()
    }

    /// Every current progress line (main, batches and rates, slowest attempt).
    pub fn status_lines(&self) -> Vec<String> {
        self.progress.status_lines()
    }

    /// Ends the run: stops the progress display, writes `failed_tickers.csv`,
    /// `summary.txt` and `run.json` (with `end` = now), and returns the summary (print it).
    /// Does not stop running batches: call [`shutdown`](Self::shutdown) first when needed.
    pub fn finish(
        &self,
        script: &str,
        flags: &BTreeMap<String, serde_json::Value>,
        start: jiff::Timestamp,
        exit: i32,
    ) -> Result<Summary, BatchError> {
        self.progress.finish();
        let dir = self.records.dir().to_path_buf();
        let io = |source| BatchError::Io {
            path: dir.clone(),
            source,
        };
        self.records.set_exit(exit);
        self.records.write_failed_tickers().map_err(io)?;
        let summary = self.records.write_summary().map_err(io)?;
        self.records
            .write_run_json(
                script,
                flags,
                start,
                Some(jiff::Timestamp::now()),
                Some(exit),
            )
            .map_err(io)?;
        Ok(summary)
    }
}

impl Drop for BatchRunner {
    fn drop(&mut self) {
        self.shutdown();
        self.progress.finish();
    }
}
