//! `barsmith repl [--run RUN_DIR] [SCRIPT...]`: the script engine, interactively.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use clap::Args;

use crate::batch::{CancelFlag, ProgressMode, install_signal_handlers};
use crate::repl::{ReplOptions, default_history};
use crate::script::{Host, HostConfig};

/// Flags of `barsmith repl`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Type Rhai: variables and functions persist between inputs; an unfinished statement
continues on the next line. `:help` lists the commands (:fns, :doc, :load, :vars,
:quit) and the diagnosis primitives; Tab completes primitives, variables and commands.
Ctrl-C cancels the line or the running command (a hanging fetch, a running batch,
whose processes are stopped); Ctrl-D quits. History: repl_history in the state
directory ($BARSMITH_STATE_DIR, else $XDG_STATE_HOME/barsmith, else ~/.local/state/barsmith).

With stdin not a terminal, lines are read without a prompt (still multi-line aware):
exit status 1 if some input failed.

Example: find why a ticker failed in a run, check it, re-ingest it
  barsmith repl --run runs/20250101-120000 --base-url http://127.0.0.1:8089
  barsmith> failures(run_dir)
  barsmith> batch_log(run_dir, 3, #{tail: 20, grep: \"AAPL\"})
  barsmith> request(\"/v2/aggs/ticker/AAPL/range/1/minute/2024-01-02/2024-01-02\")
  barsmith> ingest([\"AAPL\"], #{outdir: \"data/minute\", from: \"2024-01-01\", to: \"2024-12-31\"})
  barsmith> coverage(\"data/minute\", \"AAPL\")")]
pub struct ReplArgs {
    /// A run folder to diagnose (from `barsmith run`); sets the `run_dir` variable.
    #[arg(long = "run", value_name = "RUN_DIR")]
    pub run: Option<PathBuf>,
    /// API base URL for `request`, `fetch_minute_bars`, `ingest` and batches (e.g. a
    /// sandbox's http://127.0.0.1:PORT); the default is Massive's.
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
    /// Script files to load first, like `:load` (their functions and variables stay).
    #[arg(value_name = "SCRIPT")]
    pub scripts: Vec<PathBuf>,
}

/// Runs the REPL until `:quit`, Ctrl-D or the end of piped input.
pub fn run(args: ReplArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.run
        && !dir.is_dir()
    {
        bail!(
            "no run folder at {}: pass a folder that `barsmith run` created (e.g. runs/<timestamp>)",
            dir.display()
        );
    }
    if let Some(missing) = args.scripts.iter().find(|p| !p.is_file()) {
        bail!("no script file at {}", missing.display());
    }
    if let Err(e) = install_signal_handlers() {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
    // Batch lines and logs go to stderr as plain lines; the periodic status line
    // would interleave with typing, so it is left out.
    let lines: crate::batch::LineSink = Arc::new(|line: &str| {
        if !line.starts_with("Progress ") {
            eprintln!("{line}");
        }
    });
    let config = HostConfig {
        base_url: args.base_url,
        allow_insecure_http: args.allow_insecure_http,
        flat_endpoint: args.flat_endpoint,
        progress: ProgressMode::Lines(lines),
        cancel: CancelFlag::global(),
        ..HostConfig::default()
    };
    let options = ReplOptions {
        run_dir: args.run,
        scripts: args.scripts,
        history: Some(default_history()),
    };
    let code = crate::repl::run(Host::new(config), options);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
