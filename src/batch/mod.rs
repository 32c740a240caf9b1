//! Batches of tickers as disposable worker processes — the seed's "wrapper micro-batches"
//! with what it lacked: a per-batch timeout with TERM→KILL, workers that die with the
//! parent, per-ticker results read from the worker's events, a joblog like GNU
//! parallel's, and records that make a re-run easy.
//!
//! ```text
//! BatchRunner::spawn ──> Executor::launch ──> worker (`barsmith ingest --tickers-file F ...`)
//!        │                                      │ stdout: JSON events   stderr: human log
//!        └── one supervisor thread per attempt <┘ ──> log file, EventTally, Progress
//!                      │ timeout / kill / cancel: SIGTERM to the group, SIGKILL after grace
//!                      └──> BatchResult ──> joblog.jsonl, wait / wait_any / poll
//! ```
//!
//! The API key reaches workers only through [`RunConfig::env`]; it never appears in argv,
//! logs or records. Every blocking call returns [`BatchError::Cancelled`] within ~50 ms
//! of the [`CancelFlag`] being set (Ctrl-C), and running workers are stopped on their own.

mod cancel;
mod events;
mod executor;
mod options;
mod process;
mod progress;
mod records;
mod result;
mod runner;
mod secrets;
mod slurm;
mod supervise;

use std::io;
use std::path::PathBuf;

pub use cancel::{CHECK_INTERVAL, CancelFlag, install_signal_handlers, last_signal};
pub use events::EventTally;
pub use executor::{EngineStop, Execution, Executor, ExecutorChoice, ExitInfo, LaunchSpec};
pub use options::{BatchOptions, LineSink, ProgressMode, RunConfig, WorkerCommand};
pub use process::LocalProcessExecutor;
pub use progress::{PassPlan, Progress, Slowest, Snapshot, batch_line};
pub use records::read::{
    RunInfo, attempt_log_name, for_each_logged_event, read_attempt_tickers, read_joblog,
    read_run_json,
};
pub use records::{
    FAILED_COLUMNS, FailedTicker, JoblogEntry, RunRecords, Summary, create_default_run_dir,
    human_duration, names, read_failed_tickers, thousands,
};
pub use result::{BatchResult, TickerFailure, TickerOutcome, TickerStatus};
pub use runner::{BatchHandle, BatchRunner};
pub use secrets::Secrets;
pub use slurm::{SlurmExecutor, SlurmOptions};

/// What can go wrong when starting or waiting for batches.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The cancel flag is set (Ctrl-C / SIGTERM); running batches are being stopped.
    #[error("cancelled (Ctrl-C or SIGTERM); running batches are being stopped")]
    Cancelled,
    /// `shutdown()` was called; no new batch can start.
    #[error("the batch runner is shut down; no new batch can start")]
    ShutDown,
    /// Bad tickers or options; the message says which and how to fix it.
    #[error("invalid batch: {0}")]
    InvalidOptions(String),
    /// A run setting no batch can get past (a rate that does not parse, no API key, a
    /// run folder already used): the run must stop, not retry. Says what to fix.
    #[error("{0}")]
    Setup(String),
    /// The handle is not from this runner.
    #[error("unknown batch handle ({0}): it was not started by this runner")]
    UnknownHandle(String),
    /// The worker (or a thread) could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// What could not be started.
        program: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A run-folder file could not be written.
    #[error("run folder {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}
