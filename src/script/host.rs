//! The host: what a running script can reach outside the engine — run settings, the
//! script's own arguments, the cancel flag and the batch runner.
//!
//! One [`Host`] is shared (behind `Arc`) by the engine built for it; primitives reach it
//! through the engine's tag, so every entry point (`run`, the REPL, tests) configures
//! scripts the same way. The [`BatchRunner`] (and with it the run folder) is created
//! only when a script first starts a batch.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::batch::{
    BatchError, BatchRunner, CancelFlag, ExecutorChoice, ProgressMode, RunConfig, WorkerCommand,
};
use crate::secret::ApiKey;

/// Settings of one script run, fixed before the script starts.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Run folder for batch logs and records; `None` = a new `<runs_root>/<timestamp>/`.
    pub run_dir: Option<PathBuf>,
    /// Parent of default run folders (default `runs`).
    pub runs_root: PathBuf,
    /// API base URL for workers and in-process fetches; `None` = the client default.
    pub base_url: Option<String>,
    /// Allow a plain-http base URL off loopback (workers and in-process clients).
    pub allow_insecure_http: bool,
    /// Flat-file S3 endpoint for flat-file batches and the `flat_*` primitives
    /// (e.g. a sandbox's http://127.0.0.1:PORT); `None` = Massive's.
    pub flat_endpoint: Option<String>,
    /// Flat-file credentials for workers and the `flat_*` primitives; `None` = read
    /// MASSIVE_S3_* / POLYGON_S3_* when needed. Never shown to scripts.
    pub flat_credentials: Option<crate::s3::S3Credentials>,
    /// The API key for workers and in-process fetches; `None` = read
    /// `POLYGON_API_KEY` / `MASSIVE_API_KEY` when needed. Never shown to scripts.
    pub api_key: Option<ApiKey>,
    /// Hide `log` lines (warnings and errors still show).
    pub quiet: bool,
    /// How batch progress is shown.
    pub progress: ProgressMode,
    /// The worker started per batch; `None` = `<this executable> ingest`.
    pub worker: Option<WorkerCommand>,
    /// Extra environment for workers (e.g. `BARSMITH_STATE_DIR`), besides the key.
    pub worker_env: Vec<(String, String)>,
    /// Time between SIGTERM and SIGKILL when a batch is stopped; `None` = runner default.
    pub grace: Option<Duration>,
    /// Where batches run (local processes or Slurm jobs); a script may change it
    /// before its first batch ([`Host::set_executor`]).
    pub executor: ExecutorChoice,
    /// The flag that stops scripts and batches (default: the process-wide one that
    /// Ctrl-C and SIGTERM set; tests use a private [`CancelFlag::new`]).
    pub cancel: CancelFlag,
}

impl Default for HostConfig {
    fn default() -> HostConfig {
        HostConfig {
            run_dir: None,
            runs_root: PathBuf::from("runs"),
            base_url: None,
            allow_insecure_http: false,
            flat_endpoint: None,
            flat_credentials: None,
            api_key: None,
            quiet: false,
            progress: ProgressMode::Auto,
            worker: None,
            worker_env: Vec::new(),
            grace: None,
            executor: ExecutorChoice::Local,
            cancel: CancelFlag::global(),
        }
    }
}

/// Where `print`, `log` and `warn` output goes.
#[derive(Debug, Clone, Default)]
pub enum Output {
    /// `print` to standard output; `log`/`warn` to standard error (above progress bars).
    #[default]
    Terminal,
    /// Everything into an in-memory buffer (tests, embedding).
    Capture(Arc<Mutex<String>>),
}

/// The script being run: its path, its command-line arguments and its `//!` doc.
#[derive(Debug, Clone, Default)]
pub struct ScriptInfo {
    /// Path of the script file, as given.
    pub path: Option<PathBuf>,
    /// Arguments after the script path, for `args()`.
    pub args: Vec<String>,
    /// The `//!` doc comment at the top of the script (usage text).
    pub doc: String,
    /// Trailing `// comments` of `key: value,` lines, by key: the flags' help when
    /// `args` gets no `help` map, so a commented defaults map documents itself.
    pub flag_comments: std::collections::HashMap<String, String>,
}

/// How a script asked to stop early, recorded by `exit` and `args` before they end
/// the evaluation (Rhai's own exit value cannot be told apart from a last expression).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// `exit(code)`, or `--help` (code 0).
    Exit(i32),
    /// A command-line mistake found by `args`: the message and the script's usage.
    Usage {
        /// What was wrong, e.g. `unknown flag --bach-size (did you mean --batch-size?)`.
        message: String,
        /// The script's usage text.
        usage: String,
    },
    /// A setting no batch can get past (see [`BatchError::Setup`]): exit 4.
    Setup(String),
}

/// Everything a running script can reach outside the engine.
pub struct Host {
    config: HostConfig,
    has_api_key: bool,
    output: Output,
    started: jiff::Timestamp,
    script: Mutex<ScriptInfo>,
    flags: Mutex<BTreeMap<String, serde_json::Value>>,
    ending: Mutex<Option<Ending>>,
    runner: Mutex<Option<Arc<BatchRunner>>>,
    executor: Mutex<ExecutorChoice>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("config", &self.config)
            .field("has_api_key", &self.has_api_key)
            .field("script", &*lock(&self.script))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Host {
    /// A host with `config`, writing to the terminal.
    pub fn new(config: HostConfig) -> Arc<Host> {
        Host::with_output(config, Output::Terminal)
    }

    /// A host with `config`, writing `print`/`log`/`warn` to `output`.
    pub fn with_output(config: HostConfig, output: Output) -> Arc<Host> {
        Arc::new(Host {
            has_api_key: config.api_key.is_some() || ApiKey::from_env().is_some(),
            executor: Mutex::new(config.executor.clone()),
            config,
            output,
            started: jiff::Timestamp::now(),
            script: Mutex::new(ScriptInfo::default()),
            flags: Mutex::new(BTreeMap::new()),
            ending: Mutex::new(None),
            runner: Mutex::new(None),
        })
    }

    /// The run settings.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// True when an API key was configured or found in the environment when the
    /// host was made.
    pub fn has_api_key(&self) -> bool {
        self.has_api_key
    }

    /// The API key: the configured one, else the environment's.
    pub fn api_key(&self) -> Option<ApiKey> {
        self.config.api_key.clone().or_else(ApiKey::from_env)
    }

    /// The cancel flag watched by the engine and by every blocking primitive.
    pub fn cancel_flag(&self) -> &CancelFlag {
        &self.config.cancel
    }

    /// True once cancellation was requested (Ctrl-C, SIGTERM, the REPL).
    pub fn is_cancelled(&self) -> bool {
        self.config.cancel.is_cancelled()
    }

    /// Records the script about to run (path, arguments, doc).
    pub fn set_script(&self, info: ScriptInfo) {
        *lock(&self.script) = info;
    }

    /// The script being run.
    pub fn script(&self) -> ScriptInfo {
        lock(&self.script).clone()
    }

    /// The folder of the running script, if any (`.` for a bare file name).
    pub fn script_dir(&self) -> Option<PathBuf> {
        let info = lock(&self.script);
        let path = info.path.as_deref()?;
        Some(match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => Path::new(".").to_path_buf(),
        })
    }

    /// Records the flag values `args()` returned, for `run.json`.
    pub fn set_flags(&self, flags: BTreeMap<String, serde_json::Value>) {
        *lock(&self.flags) = flags;
    }

    /// Records how the script asked to stop (the first request wins).
    pub fn set_ending(&self, ending: Ending) {
        lock(&self.ending).get_or_insert(ending);
    }

    /// Takes the recorded ending, leaving none (the REPL calls this after each input).
    pub fn take_ending(&self) -> Option<Ending> {
        lock(&self.ending).take()
    }

    /// The batch runner, created (with its run folder) on first use.
    pub fn runner(&self) -> Result<Arc<BatchRunner>, BatchError> {
        let runner = {
            let mut slot = lock(&self.runner);
            if let Some(r) = slot.as_ref() {
                return Ok(Arc::clone(r));
            }
            let executor = lock(&self.executor).build()?;
            let runner = Arc::new(BatchRunner::with_executor(self.run_config()?, executor)?);
            *slot = Some(Arc::clone(&runner));
            runner
        };
        let flags = lock(&self.flags).clone();
        let written =
            runner
                .records()
                .write_run_json(&self.script_name(), &flags, self.started, None, None);
        if let Err(e) = written {
            self.warn(&format!(
                "cannot write run.json in {}: {e}",
                runner.run_dir().display()
            ));
        }
        self.log(&format!("run folder: {}", runner.run_dir().display()));
        Ok(runner)
    }

    /// Chooses where batches run; only before the first batch, which fixes the run's
    /// executor (its run folder records it).
    pub fn set_executor(&self, choice: ExecutorChoice) -> Result<(), String> {
        if lock(&self.runner).is_some() {
            return Err(
                "use_executor must come before the first batch: the run's executor is fixed once a batch has started"
                    .into(),
            );
        }
        if let ExecutorChoice::Slurm(options) = &choice {
            options.check()?;
        }
        *lock(&self.executor) = choice;
        Ok(())
    }

    fn run_config(&self) -> Result<RunConfig, BatchError> {
        // The real worker cannot start without a key: say so once, before any batch,
        // rather than through every worker's exit status.
        if self.config.worker.is_none() && self.api_key().is_none() && self.flat_env().is_empty() {
            return Err(BatchError::Setup(
                "no API key: set POLYGON_API_KEY (or MASSIVE_API_KEY) in the environment; \
                 for a keyless try, run `barsmith demo`"
                    .into(),
            ));
        }
        let worker = match &self.config.worker {
            Some(w) => w.clone(),
            None => WorkerCommand::current_exe().map_err(|source| BatchError::Spawn {
                program: "barsmith (current executable)".into(),
                source,
            })?,
        };
        let mut rc = RunConfig::new(worker);
        rc.run_dir = self.config.run_dir.clone();
        rc.runs_root = self.config.runs_root.clone();
        rc.progress = self.config.progress.clone();
        rc.cancel = self.config.cancel.clone();
        if let Some(g) = self.config.grace {
            rc.grace = g;
        }
        rc.env.extend(self.config.worker_env.iter().cloned());
        if let Some(key) = self.api_key() {
            rc.env.push((
                crate::secret::KEY_ENV_VARS[0].to_string(),
                key.expose().to_string(),
            ));
        }
        // Flat-file credentials the same way: in the workers' environment (where the
        // runner treats their values as secrets), never on argv.
        rc.env.extend(self.flat_env());
        Ok(rc)
    }

    /// The flat-file credentials: the configured ones, else the environment's.
    pub fn flat_credentials(&self) -> Result<crate::s3::S3Credentials, crate::s3::S3Error> {
        match &self.config.flat_credentials {
            Some(c) => Ok(c.clone()),
            None => crate::s3::S3Credentials::from_env(&crate::s3::FLATFILES_CREDENTIAL_VARS),
        }
    }

    /// The flat-file credential variables workers get: the configured pair under the
    /// first names, else those of this process that are set.
    fn flat_env(&self) -> Vec<(String, String)> {
        let names = crate::s3::FLATFILES_CREDENTIAL_VARS;
        if let Some(c) = &self.config.flat_credentials {
            let (id, secret) = c.pair();
            return vec![
                (names[0].0.to_string(), id.to_string()),
                (names[0].1.to_string(), secret.to_string()),
            ];
        }
        names
            .iter()
            .flat_map(|(id, secret)| [*id, *secret])
            .filter_map(|name| {
                let value = std::env::var(name).ok().filter(|v| !v.trim().is_empty())?;
                Some((name.to_string(), value))
            })
            .collect()
    }

    /// The batch runner if a batch was started.
    pub fn existing_runner(&self) -> Option<Arc<BatchRunner>> {
        lock(&self.runner).clone()
    }

    fn script_name(&self) -> String {
        lock(&self.script)
            .path
            .as_deref()
            .map_or_else(|| "<repl>".to_string(), |p| p.display().to_string())
    }

    /// Called once the script has ended with exit status `code`: stops batches still
    /// running, writes the run records and `report.html` and prints the summary on
    /// standard output (progress, logs and warnings are on standard error). Does
    /// nothing when no batch was started.
    pub fn shut_down(&self, code: i32) {
        let Some(runner) = lock(&self.runner).take() else {
            return;
        };
        let running = runner.running();
        if running > 0 {
            self.warn(&format!(
                "stopping {running} batch{} still running at the end of the script",
                if running == 1 { "" } else { "es" }
            ));
        }
        runner.shutdown();
        let flags = lock(&self.flags).clone();
        match runner.finish(&self.script_name(), &flags, self.started, code) {
            // A summary of no batch at all (the script stopped first) is only noise
            // above the reason; the records are still written.
            Ok(summary) if summary.attempts == 0 => {}
            Ok(summary) => self.print(&summary.to_string()),
            Err(e) => self.warn(&format!("cannot write the run records: {e}")),
        }
        self.write_report(runner.run_dir());
    }

    /// Writes `report.html` into the run folder; best effort: a failure is a warning
    /// and never changes the run's exit status.
    fn write_report(&self, run_dir: &Path) {
        match crate::report::write(run_dir, None, None) {
            Ok(path) => self.log(&format!("report: {}", path.display())),
            Err(e) => self.warn(&format!("cannot write the run report: {e}")),
        }
    }

    /// Writes one line of script output (`print`).
    pub fn print(&self, line: &str) {
        match &self.output {
            // A closed stdout (e.g. `| head`) must not abort the run.
            Output::Terminal => {
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
            Output::Capture(buf) => push_line(buf, line),
        }
    }

    /// A script `log` line: shown unless quiet.
    pub fn log(&self, message: &str) {
        tracing::debug!(target: "barsmith::script", "{message}");
        if !self.config.quiet {
            self.emit_stderr(message);
        }
    }

    /// A script `warn` line: always shown.
    pub fn warn(&self, message: &str) {
        tracing::debug!(target: "barsmith::script", "warning: {message}");
        self.emit_stderr(&format!("warning: {message}"));
    }

    fn emit_stderr(&self, line: &str) {
        match &self.output {
            Output::Capture(buf) => push_line(buf, line),
            Output::Terminal => match self.existing_runner() {
                Some(r) => r.println(line),
                None => {
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
            },
        }
    }
}

fn push_line(buf: &Mutex<String>, line: &str) {
    let mut b = lock(buf);
    b.push_str(line);
    b.push('\n');
}
