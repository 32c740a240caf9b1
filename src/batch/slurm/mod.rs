//! Batches as Slurm jobs: [`SlurmExecutor`].
//!
//! One job per batch attempt (`sbatch`), not an array per wave: the runner starts
//! attempts one at a time as the strategy asks (`spawn_batch`, a pool refilling a
//! slot), and each must be waited for, stopped and retried on its own, so `wait_any`
//! answers as soon as any job ends. The job runs a small script in
//! `<run folder>/slurm/` that `exec`s the worker, so signals reach the worker itself.
//!
//! What must be shared between this machine and the nodes (same path everywhere): the
//! run folder (tickers lists, the scripts, the jobs' output files), the output and
//! state folders, and the `barsmith` binary. Secrets travel in the job's environment
//! (`sbatch` passes the submitting environment on), never in the script or argv.
//!
//! Each job's state is read with `scontrol show job` every [`SlurmOptions::poll`],
//! its output followed in its files ([`tail`]); `scancel` stops it. A job the runner
//! did not stop but Slurm ended (time limit, outside `scancel`, memory, node failure)
//! ends with an [`EngineStop`](super::EngineStop) the supervisor turns into outcomes.

mod options;
mod state;
mod tail;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use options::SlurmOptions;

use super::BatchError;
use super::executor::{Execution, Executor, ExitInfo, LaunchSpec};
use state::{JobState, parse_scontrol, vanished};
use tail::Tail;

/// How long `scontrol` may keep failing (a controller restarting) before the attempt
/// is given up as unwatchable.
const UNREACHABLE: Duration = Duration::from_secs(120);

/// Submits each batch attempt as a Slurm job.
#[derive(Debug)]
pub struct SlurmExecutor {
    options: SlurmOptions,
}

impl SlurmExecutor {
    /// Checks the options, that `sbatch` is there and that the controller answers,
    /// so a run on a machine without Slurm stops before its first batch.
    pub fn new(options: SlurmOptions) -> Result<SlurmExecutor, BatchError> {
        options.check().map_err(BatchError::Setup)?;
        let ping = run_quiet(Command::new("scontrol").arg("ping")).map_err(|e| {
            BatchError::Setup(format!(
                "--executor slurm: cannot run Slurm's `scontrol` ({e}): install Slurm's \
                 client commands (Debian: slurm-client) or use --executor local"
            ))
        })?;
        let text = String::from_utf8_lossy(&ping.stdout);
        if !ping.status.success() || !text.contains("is UP") {
            return Err(BatchError::Setup(format!(
                "--executor slurm: the Slurm controller does not answer (`scontrol ping`: {}): \
                 start slurmctld, or point SLURM_CONF at the cluster's slurm.conf",
                one_line(&ping)
            )));
        }
        Ok(SlurmExecutor { options })
    }

    /// `sbatch` for one attempt (its script written first), without running it.
    fn sbatch(&self, spec: &LaunchSpec, dir: &Path) -> io::Result<(Command, PathBuf, PathBuf)> {
        let script = dir.join(format!("{}.sh", spec.name));
        std::fs::write(&script, job_script(spec))?;
        let (out, err) = (
            dir.join(format!("{}.out", spec.name)),
            dir.join(format!("{}.err", spec.name)),
        );
        let mut cmd = Command::new("sbatch");
        cmd.arg("--parsable")
            .arg(format!("--job-name=barsmith-{}", spec.name))
            .arg(format!("--output={}", out.display()))
            .arg(format!("--error={}", err.display()))
            .arg(format!("--cpus-per-task={}", spec.cpus.max(1)))
            .arg(format!("--mem={}", self.options.mem))
            .arg("--export=ALL");
        if let Some(time) = self.options.time_for(spec.limit) {
            cmd.arg(format!("--time={time}"));
        }
        if let Some(p) = &self.options.partition {
            cmd.arg(format!("--partition={p}"));
        }
        if let Some(a) = &self.options.account {
            cmd.arg(format!("--account={a}"));
        }
        cmd.arg(&script)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir);
        Ok((cmd, out, err))
    }
}

impl Executor for SlurmExecutor {
    fn name(&self) -> &str {
        "slurm"
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Execution>, BatchError> {
        let dir = spec.run_dir.join("slurm");
        let io_err = |source| BatchError::Io {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io_err)?;
        let (mut cmd, out, err) = self.sbatch(spec, &dir).map_err(io_err)?;
        let done = run_quiet(&mut cmd).map_err(|source| BatchError::Spawn {
            program: "sbatch".into(),
            source,
        })?;
        // `--parsable` prints `<id>` or `<id>;<cluster>`.
        let stdout = String::from_utf8_lossy(&done.stdout);
        let id = stdout.trim().split(';').next().unwrap_or("");
        if !done.status.success() || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            // A refused submission (unknown partition or account, a limit) refuses
            // every batch alike: the run stops with Slurm's reason.
            return Err(BatchError::Setup(format!(
                "sbatch refused batch {}: {}; check --slurm-partition, --slurm-account, \
                 --slurm-time and --slurm-mem",
                spec.name,
                one_line(&done)
            )));
        }
        Ok(Box::new(SlurmExecution::new(
            id.to_string(),
            self.options.poll,
            out,
            err,
        )))
    }
}

/// One submitted job.
struct SlurmExecution {
    id: String,
    poll: Duration,
    out: Option<PathBuf>,
    err: Option<PathBuf>,
    /// Set once the job is over: the output followers then read to the end and stop.
    ended: Arc<AtomicBool>,
    state: JobState,
    exit: Option<ExitInfo>,
    polled: Option<Instant>,
    failing_since: Option<Instant>,
}

impl SlurmExecution {
    fn new(id: String, poll: Duration, out: PathBuf, err: PathBuf) -> SlurmExecution {
        SlurmExecution {
            id,
            poll,
            out: Some(out),
            err: Some(err),
            ended: Arc::new(AtomicBool::new(false)),
            state: JobState::Pending,
            exit: None,
            polled: None,
            failing_since: None,
        }
    }

    fn follow(&mut self, path: Option<PathBuf>) -> Option<Box<dyn Read + Send>> {
        path.map(|p| Box::new(Tail::new(p, self.ended.clone())) as Box<dyn Read + Send>)
    }

    /// Reads the job's state from the controller.
    fn refresh(&mut self) -> io::Result<()> {
        let shown = run_quiet(Command::new("scontrol").args(["show", "job", "-o", &self.id]));
        let state = match &shown {
            Ok(o) => match parse_scontrol(&String::from_utf8_lossy(&o.stdout)) {
                Some(state) => Some(state),
                None if String::from_utf8_lossy(&o.stderr).contains("Invalid job id") => {
                    Some(vanished())
                }
                None => None,
            },
            Err(_) => None,
        };
        let Some(state) = state else {
            let since = *self.failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= UNREACHABLE {
                let why = match &shown {
                    Ok(o) => one_line(o),
                    Err(e) => e.to_string(),
                };
                return Err(io::Error::other(format!(
                    "scontrol cannot read job {} for {} s: {why}",
                    self.id,
                    UNREACHABLE.as_secs()
                )));
            }
            return Ok(());
        };
        self.failing_since = None;
        self.state = state;
        if let JobState::Ended(exit) = state {
            self.exit = Some(exit);
            self.ended.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    fn scancel(&self, args: &[&str]) -> io::Result<()> {
        let done = run_quiet(Command::new("scancel").args(args).arg(&self.id))?;
        // Cancelling a job that just ended is not an error worth reporting.
        if done.status.success() || String::from_utf8_lossy(&done.stderr).contains("already") {
            return Ok(());
        }
        Err(io::Error::other(format!("scancel: {}", one_line(&done))))
    }
}

impl Execution for SlurmExecution {
    fn pid(&self) -> Option<u32> {
        None
    }

    fn is_queued(&self) -> bool {
        self.state == JobState::Pending
    }

    fn engine_id(&self) -> Option<String> {
        Some(format!("slurm job: {}", self.id))
    }

    fn take_stdout(&mut self) -> Option<Box<dyn Read + Send>> {
        let path = self.out.take();
        self.follow(path)
    }

    fn take_stderr(&mut self) -> Option<Box<dyn Read + Send>> {
        let path = self.err.take();
        self.follow(path)
    }

    fn try_wait(&mut self) -> io::Result<Option<ExitInfo>> {
        if self.exit.is_none() && self.polled.is_none_or(|t| t.elapsed() >= self.poll) {
            self.polled = Some(Instant::now());
            self.refresh()?;
        }
        Ok(self.exit)
    }

    fn terminate(&mut self) -> io::Result<()> {
        match self.state {
            // A pending job has no process to signal: cancelling it is the stop.
            JobState::Pending => self.scancel(&[]),
            _ => self.scancel(&["--full", "--signal=TERM"]),
        }
    }

    fn kill(&mut self) -> io::Result<()> {
        // SIGKILL now rather than after the site's KillWait (a pending job has nothing
        // to signal: that refusal is moot), then end the job itself.
        let _ = self.scancel(&["--full", "--signal=KILL"]);
        self.scancel(&[])
    }
}

impl Drop for SlurmExecution {
    fn drop(&mut self) {
        if self.exit.is_none() {
            // Dropped unfinished (the runner gave up watching it, or is going away):
            // a disposable worker must not outlive its run.
            let _ = self.scancel(&[]);
        }
        self.ended.store(true, Ordering::SeqCst);
    }
}

/// The job's script: the worker, `exec`ed so that Slurm's signals reach it directly.
/// Arguments are single-quoted; they never hold a secret (the runner refuses that).
fn job_script(spec: &LaunchSpec) -> String {
    let mut line = format!("exec {}", quote(&spec.program.display().to_string()));
    for arg in &spec.args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    format!(
        "#!/bin/sh\n# barsmith {}: submitted by `barsmith run --executor slurm`\n{line}\n",
        spec.name
    )
}

/// `it's` → `'it'\''s'`: POSIX shell single quotes, which nothing inside can end.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Runs a Slurm command to its end with no input.
fn run_quiet(cmd: &mut Command) -> io::Result<Output> {
    cmd.stdin(std::process::Stdio::null()).output()
}

/// A command's error text on one line, for messages.
fn one_line(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    let text = if err.trim().is_empty() {
        String::from_utf8_lossy(&o.stdout)
    } else {
        err
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        format!("no output, {}", o.status)
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_script_execs_the_worker_with_quoted_arguments() {
        let spec = LaunchSpec {
            program: "/opt/bar smith/barsmith".into(),
            args: vec!["ingest".into(), "--label".into(), "it's $HOME".into()],
            env: vec![("POLYGON_API_KEY".into(), "secret".into())],
            name: "batch-0001.attempt-1".into(),
            run_dir: "/runs/x".into(),
            limit: None,
            cpus: 1,
        };
        let script = job_script(&spec);
        assert!(
            script.ends_with(
                "\nexec '/opt/bar smith/barsmith' 'ingest' '--label' 'it'\\''s $HOME'\n"
            ),
            "{script}"
        );
        assert!(
            !script.contains("secret"),
            "the environment stays out of the script"
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s' {}", quote("it's $HOME")))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's $HOME");
    }
}
