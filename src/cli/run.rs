//! `barsmith run SCRIPT [script flags]`: runs a backfill script.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::batch::{
    CancelFlag, ExecutorChoice, ProgressMode, RunRecords, SlurmOptions, install_signal_handlers,
};
use crate::script::{Host, HostConfig, ScriptError, run_file};

/// How batch progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressArg {
    /// Bars on a terminal, plain lines otherwise.
    Auto,
    /// Progress bars.
    Bars,
    /// One plain line per finished batch and at intervals.
    Plain,
    /// No progress output.
    None,
}

/// Where a run's batches run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorArg {
    /// Child processes on this machine.
    Local,
    /// One Slurm job per batch attempt (sbatch); the run folder, the output folder
    /// and the barsmith binary must be on a filesystem the nodes share.
    Slurm,
}

/// `--executor` and the Slurm settings.
#[derive(Debug, Clone, Args)]
pub struct ExecutorArgs {
    /// Where batches run: local processes, or Slurm jobs (see "Scaling out" in the
    /// README for what the nodes must share).
    #[arg(long, value_enum, default_value_t = ExecutorArg::Local)]
    pub executor: ExecutorArg,
    /// Slurm partition for the batch jobs (default: the cluster's default partition).
    #[arg(long, value_name = "NAME")]
    pub slurm_partition: Option<String>,
    /// Slurm account charged for the batch jobs (default: your default account).
    #[arg(long, value_name = "NAME")]
    pub slurm_account: Option<String>,
    /// Time limit of each batch job: minutes (30), H:MM:SS or D-HH:MM:SS. Default:
    /// the batch timeout plus the grace period, rounded up to minutes, plus one.
    #[arg(long, value_name = "TIME")]
    pub slurm_time: Option<String>,
    /// Memory of each batch job (Slurm size, e.g. 2G).
    #[arg(long, value_name = "SIZE", default_value = "2G")]
    pub slurm_mem: String,
    /// Seconds between reads of each job's state (scontrol show job).
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub slurm_poll: f64,
}

impl ExecutorArgs {
    /// The executor these flags choose, checked; an error names the flag to fix.
    pub fn choice(&self) -> Result<ExecutorChoice, String> {
        let slurm_flags = self.slurm_partition.is_some()
            || self.slurm_account.is_some()
            || self.slurm_time.is_some()
            || self.slurm_mem != "2G"
            || self.slurm_poll != 1.0;
        match self.executor {
            ExecutorArg::Local if slurm_flags => {
                Err("the --slurm-* flags need --executor slurm".into())
            }
            ExecutorArg::Local => Ok(ExecutorChoice::Local),
            ExecutorArg::Slurm => {
                if !(self.slurm_poll.is_finite() && self.slurm_poll > 0.0) {
                    return Err("--slurm-poll must be more than 0 seconds".into());
                }
                let options = SlurmOptions {
                    partition: self.slurm_partition.clone(),
                    account: self.slurm_account.clone(),
                    time: self.slurm_time.clone(),
                    mem: self.slurm_mem.clone(),
                    poll: Duration::from_secs_f64(self.slurm_poll),
                };
                options.check()?;
                Ok(ExecutorChoice::Slurm(options))
            }
        }
    }
}

/// Flags of `barsmith run`. Runner flags go BEFORE the script path; everything after
/// it belongs to the script (`barsmith run wrapper.rhai --help` shows the script's flags).
#[derive(Debug, Args)]
#[command(after_long_help = "\
Before starting, the script gets the checks of `barsmith check` (syntax, unknown
functions, methods and option keys): a problem stops it before anything runs.

Exit status: the script's exit(code), else 0; 1 for an error while the script runs
(shown as file:line:col with the source line); 2 for what `barsmith check` finds, a
bad script flag or a --run-dir that already holds a run; 4 for a setting no batch can
get past (no API key, a --max-rps that is not a rate), before any worker starts; 130
on Ctrl-C (143 on SIGTERM) after running batches are stopped and the records written.

At the end, whatever the exit status, the run folder gets report.html: a timeline of
the batches, rates against the budget, failures by class and kind and a coverage
heatmap (`barsmith report --help`; a report that cannot be written is a warning).

With --executor slurm, each batch attempt is one Slurm job (sbatch), its state read
with scontrol and stopped with scancel; Slurm's own ends (time limit, an outside
scancel, memory, node failure) leave the batch's tickers retryable. The run folder, the
output and state folders and the barsmith binary must be on a filesystem the nodes
share; with more than one node, share the request budget too (BARSMITH_BUDGET_REDIS).

Examples:
  barsmith run --run-dir runs/first scripts/wrapper.rhai \\
      --tickers-csv universe.csv --from 2004-01-01 --to 2010-12-31 --outdir data/minute
  barsmith run --executor slurm --slurm-partition short --slurm-mem 2G \\
      scripts/wrapper.rhai --tickers-csv universe.csv --from 2004-01-01 --to 2010-12-31 \\
      --outdir /shared/data/minute")]
pub struct RunArgs {
    /// Folder for batch logs and run records (default: runs/<timestamp>/).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// API base URL for batches and in-process fetches (e.g. a sandbox's
    /// http://127.0.0.1:PORT); the default is Massive's.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Allow an http:// base URL on a host other than loopback. The API key then
    /// crosses the network in clear text: only for a trusted proxy; prints a warning.
    #[arg(long)]
    pub allow_insecure_http: bool,
    /// Flat-file S3 endpoint for flat-file batches and the `flat_*` primitives (e.g. a
    /// sandbox's http://127.0.0.1:PORT); the default is Massive's.
    #[arg(long, value_name = "URL")]
    pub flat_endpoint: Option<String>,
    /// Hide log lines and progress; warnings, errors and the summary still show.
    #[arg(long, short)]
    pub quiet: bool,
    /// How batch progress is shown.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
    /// Where batches run (a script's `use_executor` may choose instead).
    #[command(flatten)]
    pub executor: ExecutorArgs,
    /// The Rhai script to run (e.g. scripts/wrapper.rhai), then the script's own
    /// flags (e.g. `--batch-size 10 --no-resume`; `--help` shows them).
    #[arg(
        value_name = "SCRIPT [SCRIPT FLAGS]",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

impl RunArgs {
    /// The script path (the first word after the runner flags).
    pub fn script(&self) -> PathBuf {
        PathBuf::from(self.command.first().cloned().unwrap_or_default())
    }

    /// The script's own arguments (everything after the script path).
    pub fn script_args(&self) -> Vec<String> {
        self.command.iter().skip(1).cloned().collect()
    }
}

/// Runs the script; its exit status becomes the process's.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (script, script_args) = (args.script(), args.script_args());
    if let Err(e) = install_signal_handlers() {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
    let progress = match (args.quiet, args.progress) {
        (true, _) | (_, ProgressArg::None) => ProgressMode::Quiet,
        (_, ProgressArg::Auto) => ProgressMode::Auto,
        (_, ProgressArg::Bars) => ProgressMode::Bars,
        (_, ProgressArg::Plain) => ProgressMode::Plain,
    };
    if let Some(dir) = &args.run_dir
        && let Err(e) = RunRecords::check_unused(dir)
    {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(2));
    }
    let executor = match args.executor.choice() {
        Ok(choice) => choice,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let config = HostConfig {
        executor,
        run_dir: args.run_dir,
        base_url: args.base_url,
        allow_insecure_http: args.allow_insecure_http,
        flat_endpoint: args.flat_endpoint,
        quiet: args.quiet,
        progress,
        cancel: CancelFlag::global(),
        ..HostConfig::default()
    };
    if script.as_os_str().to_string_lossy().starts_with('-') {
        anyhow::bail!(
            "unknown runner flag {}: runner flags are --run-dir, --base-url, --flat-endpoint, --allow-insecure-http, --quiet, --progress, --executor and --slurm-*; put them before the script path",
            script.display()
        );
    }
    let code = match run_file(&script, script_args, Host::new(config)) {
        Ok(code) => code,
        Err(e @ ScriptError::Cancelled) => {
            eprintln!("cancelled");
            e.exit_code()
        }
        Err(e) => {
            eprintln!("{}", e.render());
            e.exit_code()
        }
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn flags_after_the_script_belong_to_the_script() {
        let cli = Cli::try_parse_from([
            "run",
            "--quiet",
            "--run-dir",
            "r",
            "w.rhai",
            "--help",
            "--quiet",
            "-x",
            "--batch-size",
            "3",
        ])
        .unwrap();
        assert!(cli.run.quiet);
        assert_eq!(cli.run.run_dir, Some(PathBuf::from("r")));
        assert_eq!(cli.run.script(), PathBuf::from("w.rhai"));
        assert_eq!(
            cli.run.script_args(),
            ["--help", "--quiet", "-x", "--batch-size", "3"]
        );
        assert!(
            Cli::try_parse_from(["run"]).is_err(),
            "the script is required"
        );
    }
}
