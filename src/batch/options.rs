//! Configuration of a run ([`RunConfig`]) and of one batch ([`BatchOptions`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::BatchError;
use super::cancel::CancelFlag;
use crate::ingest::{ALL_TICKERS, WorkerJob};

/// The worker program and the arguments that come before the batch's own flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCommand {
    /// Executable to start, e.g. the running `barsmith` binary.
    pub program: PathBuf,
    /// Arguments before the batch flags, normally `["ingest"]`.
    pub args_prefix: Vec<String>,
}

impl WorkerCommand {
    /// `<current executable> ingest`: the normal worker.
    pub fn current_exe() -> std::io::Result<WorkerCommand> {
        Ok(WorkerCommand {
            program: std::env::current_exe()?,
            args_prefix: vec!["ingest".into()],
        })
    }
}

/// A callback that receives each plain progress line (for the REPL or tests).
pub type LineSink = Arc<dyn Fn(&str) + Send + Sync>;

/// How progress is shown.
#[derive(Clone, Default)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// indicatif bars (batches and tickers) on stderr.
    Bars,
    /// Plain lines on stderr: one per finished batch, one every `progress_interval`.
    Plain,
    /// Plain lines handed to a callback instead of stderr.
    Lines(LineSink),
    /// Nothing (tests).
    Quiet,
}

impl fmt::Debug for ProgressMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProgressMode::Auto => "Auto",
            ProgressMode::Bars => "Bars",
            ProgressMode::Plain => "Plain",
            ProgressMode::Lines(_) => "Lines(..)",
            ProgressMode::Quiet => "Quiet",
        })
    }
}

/// Everything a [`super::BatchRunner`] needs for a run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Run folder; `None` = a new `<runs_root>/<YYYYmmdd-HHMMSS>/` (suffixed if it exists).
    pub run_dir: Option<PathBuf>,
    /// Parent of default run folders (`runs`).
    pub runs_root: PathBuf,
    /// The worker to start for each batch.
    pub worker: WorkerCommand,
    /// Extra environment for workers, e.g. `POLYGON_API_KEY`. This is the ONLY way the
    /// key reaches a worker (never argv). Values of variables whose name contains `KEY`,
    /// `TOKEN`, `SECRET` or `PASSWORD` are treated as secrets: redacted from logs and
    /// records, and refused in any argument.
    pub env: Vec<(String, String)>,
    /// How progress is shown.
    pub progress: ProgressMode,
    /// Interval between plain progress lines (default 10 s).
    pub progress_interval: Duration,
    /// Time between SIGTERM and SIGKILL when a batch is stopped (default 10 s).
    pub grace: Duration,
    /// The flag that cancels every blocking call (default: the process-wide flag).
    pub cancel: CancelFlag,
}

impl RunConfig {
    /// Defaults (see each field) with the given worker.
    pub fn new(worker: WorkerCommand) -> RunConfig {
        RunConfig {
            run_dir: None,
            runs_root: PathBuf::from("runs"),
            worker,
            env: Vec::new(),
            progress: ProgressMode::Auto,
            progress_interval: Duration::from_secs(10),
            grace: Duration::from_secs(10),
            cancel: CancelFlag::global(),
        }
    }
}

impl Default for RunConfig {
    /// Defaults with `<current exe> ingest` as the worker.
    fn default() -> RunConfig {
        let worker = WorkerCommand::current_exe().unwrap_or_else(|_| WorkerCommand {
            program: PathBuf::from("barsmith"),
            args_prefix: vec!["ingest".into()],
        });
        RunConfig::new(worker)
    }
}

/// Options of one batch: the worker's job plus how the runner treats the batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchOptions {
    /// What the worker is asked to do (written as its flags).
    pub job: WorkerJob,
    /// Wall-time limit of the whole batch: SIGTERM then SIGKILL after the grace period.
    pub timeout: Option<Duration>,
    /// Attempt number; `None` = one more than the last attempt of this batch id.
    pub attempt: Option<u32>,
    /// Batch id (names the log, `batch-0007`); `None` = the next unused id.
    pub id: Option<u32>,
    /// Free text shown in the log header and the joblog.
    pub label: Option<String>,
    /// Extra worker arguments, appended last.
    pub extra_args: Vec<String>,
}

impl BatchOptions {
    /// Checks the worker settings the worker would otherwise refuse on start (see
    /// [`WorkerJob::check`]), and that a dataset on S3 answers (one quick request, once
    /// per run: [`crate::store::dataset::check_reachable`]), so a wrong endpoint or key
    /// stops the run before any worker.
    pub fn check(&self) -> Result<(), String> {
        self.job.check()?;
        crate::store::dataset::check_reachable(&self.job.outdir)
            .map_err(|e| format!("cannot open the dataset {}: {e}", self.job.outdir.display()))
    }

    /// The worker flags for these options (after `--tickers-file F`): the job's, then
    /// the extra arguments.
    pub fn worker_args(&self) -> Vec<String> {
        let mut args = self.job.to_args();
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// The tickers and options a batch runs with. With `all_tickers`, no list (or one
/// holding [`ALL_TICKERS`], as the retry of a batch that stopped before any ticker
/// has) runs every ticker of the files: no tickers, the worker finds them. A list of
/// other tickers (the retry of the few that failed) runs just those, as a ticker
/// batch. Otherwise blanks and duplicates are dropped and an invalid symbol refused.
pub(crate) fn batch_universe(
    tickers: Vec<String>,
    mut opts: BatchOptions,
) -> Result<(Vec<String>, BatchOptions), BatchError> {
    if opts.job.all_tickers {
        let names: Vec<&str> = tickers
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .collect();
        if names.is_empty() || names.contains(&ALL_TICKERS) {
            return Ok((Vec::new(), opts));
        }
        opts.job.all_tickers = false;
    }
    let tickers =
        crate::ticker::clean_tickers(tickers).map_err(|e| BatchError::InvalidOptions(e.0))?;
    if tickers.is_empty() {
        return Err(BatchError::InvalidOptions(
            "a batch needs at least one ticker (or all_tickers with flat files)".into(),
        ));
    }
    Ok((tickers, opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_all_tickers_batch_runs_the_universe_or_the_tickers_left() {
        let mut opts = BatchOptions::default();
        opts.job.all_tickers = true;
        let (t, o) = batch_universe(Vec::new(), opts.clone()).unwrap();
        assert!(t.is_empty() && o.job.all_tickers);
        let (t, o) = batch_universe(vec!["*".into(), "AAPL".into()], opts.clone()).unwrap();
        assert!(t.is_empty() && o.job.all_tickers);
        let (t, o) = batch_universe(vec!["AAPL".into()], opts).unwrap();
        assert_eq!((t, o.job.all_tickers), (vec!["AAPL".to_string()], false));
        assert!(batch_universe(Vec::new(), BatchOptions::default()).is_err());
    }
}
