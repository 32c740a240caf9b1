//! Where batches run. The runner's logic (timeouts, TERM→KILL, events, logs, records)
//! is written against these two traits only, so a later backend — a Slurm job array, a
//! Kubernetes Indexed Job — can replace local processes by implementing them.
//! [`super::LocalProcessExecutor`] is the default; [`super::SlurmExecutor`] submits
//! each attempt as a Slurm job.

use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::BatchError;

/// Everything needed to start one batch attempt.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// Executable.
    pub program: PathBuf,
    /// Arguments (never a secret: the runner refuses those).
    pub args: Vec<String>,
    /// Extra environment on top of the inherited one (secrets go here).
    pub env: Vec<(String, String)>,
    /// `batch-0007.attempt-1`, for names an engine may show.
    pub name: String,
    /// The run folder: an engine may keep its own files under it (on a cluster, it is
    /// on the filesystem the nodes share).
    pub run_dir: PathBuf,
    /// The longest the attempt may run before the runner stops it (its timeout plus
    /// the grace period), so an engine can size its own limit; `None` = no limit.
    pub limit: Option<Duration>,
    /// Cores the worker can use (a flat-file job's parallel days), for engines that
    /// allocate them.
    pub cpus: u32,
}

/// How a batch attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit status, when it exited normally.
    pub code: Option<i32>,
    /// Terminating signal, when killed.
    pub signal: Option<i32>,
    /// The engine ended the attempt itself (a cluster's time limit, an outside
    /// `scancel`, a node failure); `None` for an exit of the worker's own.
    pub ended_by: Option<EngineStop>,
}

impl ExitInfo {
    /// A worker that exited by itself with `code`.
    pub fn exited(code: i32) -> ExitInfo {
        ExitInfo {
            code: Some(code),
            signal: None,
            ended_by: None,
        }
    }
}

/// Why an engine ended an attempt that barsmith did not stop. Every one leaves the
/// batch's unfinished tickers retryable: none says anything about the tickers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineStop {
    /// The engine's wall-time limit (Slurm `TIMEOUT`, `DEADLINE`).
    TimeLimit,
    /// Cancelled from outside barsmith (`scancel` by a user or an admin).
    #[serde(rename = "cancelled_outside")]
    Cancelled,
    /// The engine killed the job for its memory (Slurm `OUT_OF_MEMORY`).
    OutOfMemory,
    /// The node running it failed or did not boot (`NODE_FAIL`, `BOOT_FAIL`).
    NodeFailure,
    /// Preempted by a job of higher priority (`PREEMPTED`).
    Preempted,
    /// The engine forgot the job before its end was seen (purged, controller reset).
    Vanished,
}

impl EngineStop {
    /// The snake_case name, as in `status_text` and the records.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineStop::TimeLimit => "time_limit",
            EngineStop::Cancelled => "cancelled_outside",
            EngineStop::OutOfMemory => "out_of_memory",
            EngineStop::NodeFailure => "node_failure",
            EngineStop::Preempted => "preempted",
            EngineStop::Vanished => "vanished",
        }
    }

    /// What happened, and what to change when something can: one line for the
    /// batch log.
    pub fn describe(self) -> &'static str {
        match self {
            EngineStop::TimeLimit => {
                "the cluster's time limit ended the batch (raise --slurm-time or lower the batch size)"
            }
            EngineStop::Cancelled => "the batch's job was cancelled outside barsmith (scancel)",
            EngineStop::OutOfMemory => {
                "the cluster killed the batch for its memory (raise --slurm-mem)"
            }
            EngineStop::NodeFailure => "the node running the batch failed",
            EngineStop::Preempted => "the batch's job was preempted",
            EngineStop::Vanished => {
                "the cluster forgot the batch's job before its end was seen (controller restart?)"
            }
        }
    }

    /// Why a ticker the attempt did not finish is not run.
    pub fn not_run_message(self) -> String {
        format!("not run: {}", self.describe())
    }
}

/// Starts batch attempts.
pub trait Executor: Send + Sync {
    /// Short name recorded in `run.json` (`local`, `slurm`).
    fn name(&self) -> &str;
    /// Starts one attempt and returns at once.
    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Execution>, BatchError>;
}

/// One running batch attempt. All methods return promptly.
pub trait Execution: Send {
    /// Process id when there is one.
    fn pid(&self) -> Option<u32>;
    /// Waiting in an engine's queue, not yet running: the batch timeout starts when
    /// this turns false (local processes run at once).
    fn is_queued(&self) -> bool {
        false
    }
    /// The engine's own name for the attempt (`slurm job 1234`), for the log.
    fn engine_id(&self) -> Option<String> {
        None
    }
    /// The event stream (worker stdout); `None` after the first call.
    fn take_stdout(&mut self) -> Option<Box<dyn Read + Send>>;
    /// The human log stream (worker stderr); `None` after the first call.
    fn take_stderr(&mut self) -> Option<Box<dyn Read + Send>>;
    /// `Some` once the attempt has ended and every resource it held is released
    /// (for local processes: the worker and everything left in its group are dead and
    /// reaped).
    fn try_wait(&mut self) -> io::Result<Option<ExitInfo>>;
    /// Polite stop (SIGTERM to the whole process group).
    fn terminate(&mut self) -> io::Result<()>;
    /// Forced stop (SIGKILL to the whole process group).
    fn kill(&mut self) -> io::Result<()>;
}

/// Which executor a run uses: chosen per run (`barsmith run --executor`, or a script's
/// `use_executor` before its first batch), never by editing the strategy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ExecutorChoice {
    /// Local child processes ([`super::LocalProcessExecutor`]).
    #[default]
    Local,
    /// Slurm jobs ([`super::SlurmExecutor`]).
    Slurm(super::SlurmOptions),
}

impl ExecutorChoice {
    /// Starts the executor; a Slurm cluster that cannot be reached is a setup error.
    pub fn build(&self) -> Result<std::sync::Arc<dyn Executor>, BatchError> {
        Ok(match self {
            ExecutorChoice::Local => {
                let local =
                    super::LocalProcessExecutor::new().map_err(|source| BatchError::Spawn {
                        program: "barsmith-spawner thread".into(),
                        source,
                    })?;
                std::sync::Arc::new(local)
            }
            ExecutorChoice::Slurm(options) => {
                std::sync::Arc::new(super::SlurmExecutor::new(options.clone())?)
            }
        })
    }
}
