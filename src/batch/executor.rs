//! Where batches run. The runner's logic (timeouts, TERM→KILL, events, logs, records)
//! is written against these two traits only, so a later backend — a Slurm job array, a
//! Kubernetes Indexed Job — can replace local processes by implementing them.
//! [`super::LocalProcessExecutor`] is the default.

use std::io::{self, Read};
use std::path::PathBuf;

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
}

/// How a batch attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit status, when it exited normally.
    pub code: Option<i32>,
    /// Terminating signal, when killed.
    pub signal: Option<i32>,
}

/// Starts batch attempts.
pub trait Executor: Send + Sync {
    /// Short name recorded in `run.json` (`local`).
    fn name(&self) -> &str;
    /// Starts one attempt and returns at once.
    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Execution>, BatchError>;
}

/// One running batch attempt. All methods return promptly.
pub trait Execution: Send {
    /// Process id (or engine job id) when there is one.
    fn pid(&self) -> Option<u32>;
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
