//! The command line: every subcommand and its flags are defined under this module,
//! one file per subcommand; `main` only parses, sets up logging and dispatches.

pub mod check;
pub mod completions;
pub mod demo;
pub mod fns;
pub mod ingest;
pub mod repl;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod status;
pub mod upgrade;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// barsmith: backfill 1-minute OHLCV bars from the Polygon.io (Massive) API into Parquet.
#[derive(Debug, Parser)]
#[command(
    name = "barsmith",
    version,
    about = "Backfill years of 1-minute OHLCV bars from Polygon.io (Massive) into Parquet",
    long_about = "Backfill years of 1-minute OHLCV bars from the Polygon.io (Massive) aggregates \
API into Hive-partitioned Parquet, robustly and resumably. The strategy (batches, \
concurrency, retries, resume) lives in editable Rhai scripts; start with \
`barsmith demo`, then `barsmith run scripts/wrapper.rhai --help`.",
    after_help = "Examples:\n  barsmith demo\n  barsmith run scripts/wrapper.rhai --tickers-csv universe.csv --from 2004-01-01 --to 2010-12-31 --outdir data/minute\n  barsmith fns spawn"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log detail on stderr (-v debug, -vv trace). `BARSMITH_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a strategy script, e.g. `barsmith run scripts/wrapper.rhai --batch-size 10 ...`.
    Run(run::RunArgs),
    /// Find errors in a script without running it, e.g. `barsmith check scripts/wrapper.rhai`.
    Check(check::CheckArgs),
    /// Explore and fix failing tickers interactively, e.g. `barsmith repl --run runs/<timestamp>`.
    Repl(repl::ReplArgs),
    /// Try barsmith without an API key: sandbox + wrapper.rhai into ./demo-data.
    Demo(demo::DemoArgs),
    /// The worker: fetch tickers for a date range into Parquet (what batches run).
    Ingest(ingest::IngestArgs),
    /// What a dataset holds and what a resume would fetch, e.g. `barsmith status data/minute`.
    Status(status::StatusArgs),
    /// Rewrite a dataset written by barsmith 0.1 so pandas opens it, e.g. `barsmith upgrade data/minute`.
    Upgrade(upgrade::UpgradeArgs),
    /// One HTML page showing a run: timeline, rates, failures, coverage, e.g. `barsmith report runs/<timestamp>`.
    Report(report::ReportArgs),
    /// Serve a Polygon-compatible API on loopback with synthetic bars and faults.
    Sandbox(sandbox::SandboxArgs),
    /// List the script primitives with their signatures and docs.
    Fns(fns::FnsArgs),
    /// Print shell completions, e.g. `barsmith completions bash > /etc/bash_completion.d/barsmith`.
    Completions(completions::CompletionsArgs),
}

/// Entry point of the `barsmith` binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", one_line_usage_error(&e));
            return ExitCode::from(2);
        }
    };
    // The in-process worker of the REPL logs each piece at info level while `ingest`
    // already prints a line per event: there, quiet unless asked.
    let quiet = matches!(cli.command, Command::Repl(_));
    init_logging(cli.verbose, quiet);
    // Input errors of the worker are exit 2 by contract; elsewhere an error is 1.
    let (result, error_code) = match cli.command {
        Command::Run(a) => (run::run(a), 1),
        Command::Check(a) => (check::run(a), 1),
        Command::Repl(a) => (repl::run(a), 1),
        Command::Demo(a) => (demo::run(a), 1),
        Command::Ingest(a) => (ingest::run(a), ingest::USAGE),
        Command::Status(a) => (status::run(a), 1),
        Command::Upgrade(a) => (upgrade::run(a), 1),
        Command::Report(a) => (report::run(a), 1),
        Command::Sandbox(a) => (sandbox::run(a), 1),
        Command::Fns(a) => (fns::run(a), 1),
        Command::Completions(a) => (completions::run(a), 1),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(error_code)
    })
}

/// Clap's first line (what is wrong) plus where to look, instead of a usage dump. The
/// indented lines right after it (the missing arguments) are kept on the same line:
/// `error: the following required arguments were not provided: --outdir <DIR>`.
fn one_line_usage_error(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let mut lines = rendered.lines();
    let mut first = lines
        .next()
        .unwrap_or("error: invalid arguments")
        .trim_end()
        .to_string();
    let details: Vec<&str> = lines
        .take_while(|l| l.starts_with(' ') && !l.trim().is_empty())
        .map(str::trim)
        .collect();
    if !details.is_empty() {
        first = format!("{first} {}", details.join(", "));
    }
    let sub = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    match sub {
        Some(sub) => format!("{first}; see `barsmith {sub} --help`"),
        None => format!("{first}; see `barsmith --help`"),
    }
}

/// The clap command, for completions and generated docs.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match verbose {
        0 if quiet => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BARSMITH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
