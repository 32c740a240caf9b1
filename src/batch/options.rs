//! Configuration of a run ([`RunConfig`]) and of one batch ([`BatchOptions`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::cancel::CancelFlag;

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

/// Options of one batch: the worker's flags plus how the runner treats the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOptions {
    /// Output folder (`--outdir`). Required.
    pub outdir: PathBuf,
    /// First day, `YYYY-MM-DD` (`--from`). Required.
    pub from: String,
    /// Last day inclusive, `YYYY-MM-DD` (`--to`). Required.
    pub to: String,
    /// Split-adjusted bars (default true; false adds `--unadjusted`).
    pub adjusted: bool,
    /// Shared request budget, e.g. `50/s`, `5/min` (`--max-rps`).
    pub max_rps: Option<String>,
    /// API base URL (`--base-url`).
    pub base_url: Option<String>,
    /// Allow a plain-http base URL off loopback (`--allow-insecure-http`).
    pub allow_insecure_http: bool,
    /// Timeout of one HTTP request (`--timeout`, seconds).
    pub request_timeout: Option<Duration>,
    /// Attempts per request (`--retries`).
    pub retries: Option<u32>,
    /// First backoff delay (`--backoff-ms`).
    pub backoff: Option<Duration>,
    /// Longest backoff delay (`--max-backoff-ms`).
    pub max_backoff: Option<Duration>,
    /// Tickers the worker fetches at once (`--in-flight`).
    pub in_flight: Option<u32>,
    /// Identical failed attempts in a row that open a request's circuit (`--breaker`;
    /// 0 = off).
    pub breaker: Option<u32>,
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

impl Default for BatchOptions {
    fn default() -> BatchOptions {
        BatchOptions {
            outdir: PathBuf::new(),
            from: String::new(),
            to: String::new(),
            adjusted: true,
            max_rps: None,
            base_url: None,
            allow_insecure_http: false,
            request_timeout: None,
            retries: None,
            backoff: None,
            max_backoff: None,
            in_flight: None,
            breaker: None,
            timeout: None,
            attempt: None,
            id: None,
            label: None,
            extra_args: Vec::new(),
        }
    }
}

impl BatchOptions {
    /// Checks the worker settings the worker would otherwise refuse on start, so a
    /// typo stops the run once, before any worker, instead of failing every batch.
    pub fn check(&self) -> Result<(), String> {
        if let Some(rate) = &self.max_rps {
            rate.parse::<crate::budget::Rate>().map_err(|_| {
                format!(
                    "max_rps \"{rate}\" is not a request rate: use N/s or N/min, e.g. 50/s, \
                     or 5/min on Polygon's free plan"
                )
            })?;
        }
        let positive = |name: &str, d: Option<Duration>| match d {
            Some(d) if d.is_zero() => Err(format!("{name} must be more than 0 seconds")),
            _ => Ok(()),
        };
        positive("request_timeout", self.request_timeout)?;
        for (name, n) in [("retries", self.retries), ("in_flight", self.in_flight)] {
            if n == Some(0) {
                return Err(format!("{name} must be at least 1"));
            }
        }
        Ok(())
    }

    /// The worker flags for these options (after `--tickers-file F`).
    pub fn worker_args(&self) -> Vec<String> {
        let mut args = vec![
            "--outdir".to_string(),
            self.outdir.display().to_string(),
            "--from".into(),
            self.from.clone(),
            "--to".into(),
            self.to.clone(),
        ];
        if !self.adjusted {
            args.push("--unadjusted".into());
        }
        if self.allow_insecure_http {
            args.push("--allow-insecure-http".into());
        }
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                args.push(name.to_string());
                args.push(v);
            }
        };
        flag("--max-rps", self.max_rps.clone());
        flag("--base-url", self.base_url.clone());
        flag(
            "--timeout",
            self.request_timeout.map(|d| d.as_secs_f64().to_string()),
        );
        flag("--retries", self.retries.map(|n| n.to_string()));
        flag(
            "--backoff-ms",
            self.backoff.map(|d| d.as_millis().to_string()),
        );
        flag(
            "--max-backoff-ms",
            self.max_backoff.map(|d| d.as_millis().to_string()),
        );
        flag("--in-flight", self.in_flight.map(|n| n.to_string()));
        flag("--breaker", self.breaker.map(|n| n.to_string()));
        args.extend(self.extra_args.iter().cloned());
        args
    }
}
