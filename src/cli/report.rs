//! `barsmith report RUN_DIR [-o FILE]`: writes the run's HTML report (what every
//! `barsmith run` writes into its run folder at the end).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::report::{REPORT_FILE, ReportError, write};

/// Exit status for a RUN_DIR that holds no run.
pub const USAGE: u8 = 2;

/// Flags of `barsmith report`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
The page is one self-contained file (inline CSS, SVG and a small script; no network
access) showing:
  - a batch timeline: one row per attempt from joblog.jsonl, coloured by outcome,
    with batch retries, retried requests and timeouts marked;
  - requests/s and bars/s over time (from the timestamped events in the batch logs)
    against the run's --max-rps, or \"unknown\" when the run recorded none;
  - every failure of every attempt grouped by error class and kind, with links to the
    batch logs (relative, so the folder can be moved or archived);
  - a ticker x year coverage heatmap of the run's --outdir, from the coverage records
    and file footers (as `barsmith status`, no bars read).
Large runs stay readable: at most 200 timeline rows (troubled attempts first), 20
tickers per failure group and 60 heatmap rows (incomplete tickers first), each with a
\"+N more\" line.

`barsmith run` writes <run folder>/report.html at its end, whatever the exit status;
this command (re)writes it, e.g. for a run killed before its end.

Exit status: 0 written; 2 RUN_DIR holds no run (no joblog.jsonl); 1 a file could not
be read or written.

Examples:
  barsmith report runs/20250101-120000
  barsmith report runs/20250101-120000 -o /tmp/report.html --outdir data/minute")]
pub struct ReportArgs {
    /// The run folder (`barsmith run` prints it as \"run folder\").
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// Where to write the page (default: RUN_DIR/report.html).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The dataset for the coverage heatmap (default: the run's --outdir, from run.json).
    #[arg(long, value_name = "DIR")]
    pub outdir: Option<PathBuf>,
}

/// Writes the report and prints its path.
pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    match write(
        &args.run_dir,
        args.output.as_deref(),
        args.outdir.as_deref(),
    ) {
        Ok(path) => {
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ ReportError::NotARun(_)) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(USAGE))
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot write the report of {} ({})",
                args.run_dir.display(),
                args.output
                    .as_ref()
                    .map_or_else(|| REPORT_FILE.to_string(), |p| p.display().to_string())
            )
        }),
    }
}
