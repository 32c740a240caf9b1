//! `barsmith demo`: the whole product in one command, without an API key. Starts the
//! embedded sandbox with a few faults, runs the bundled `wrapper.rhai` over a small
//! universe into `./demo-data`, and shows how to read the result. `--flat` runs the
//! flat-file strategy instead (the `flat` module).

mod flat;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::batch::{ProgressMode, install_signal_handlers};
use crate::sandbox::synth::DEMO_TICKERS;
use crate::sandbox::{FaultPlan, SANDBOX_API_KEY, Sandbox, SandboxConfig};
use crate::script::{Host, HostConfig, run_file};
use crate::secret::ApiKey;
use crate::store::Layout;

/// The bundled wrapper, used when `scripts/wrapper.rhai` is not beside the binary's
/// working folder (an installed barsmith).
const WRAPPER: &str = include_str!("../../scripts/wrapper.rhai");

/// Faults the demo injects, so retries and the automatic second pass show:
/// rate limits, a flaky gateway, a body cut short, and one ticker whose errors
/// outlast both attempts of its first batch.
const DEMO_FAULTS: [&str; 5] = [
    "AMD=429:2",
    "MSFT=502-html:1",
    "NVDA=truncated:1",
    "IBM=429-retry-after=1:1",
    "INTC=500:4",
];

/// Flags of `barsmith demo`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Example:
  barsmith demo                      # ./demo-data, runs/<timestamp>/
  barsmith demo --outdir /tmp/demo --from 2025-01-01 --to 2025-12-31
  barsmith demo --flat               # flat files + REST top-up into ./demo-data-flat")]
pub struct DemoArgs {
    /// Where the Parquet goes (default demo-data; demo-data-flat with --flat, whose
    /// bars are unadjusted and must not mix with the adjusted ones).
    #[arg(long, value_name = "DIR")]
    pub outdir: Option<PathBuf>,
    /// First day (New York date).
    #[arg(long, value_name = "YYYY-MM-DD", default_value = "2025-01-01")]
    pub from: String,
    /// Last day, inclusive.
    #[arg(long, value_name = "YYYY-MM-DD", default_value = "2025-06-30")]
    pub to: String,
    /// Folder for batch logs and run records (default: runs/<timestamp>/).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Plain progress lines instead of bars.
    #[arg(long)]
    pub plain: bool,
    /// Run scripts/flatfiles.rhai instead: two months from the sandbox's flat files
    /// (one day refused with 403, a download cut short three times, files published
    /// up to two days before the sandbox's "today"), then the REST top-up of the
    /// refused day, the day after the last file and two tickers in no file.
    /// --from/--to do not apply: the sandbox's dates are fixed.
    #[arg(long)]
    pub flat: bool,
}

/// How both demos retry: two tries a batch a second apart, two attempts a request,
/// short timeouts (the sandbox answers at once), so a fault shows and clears quickly.
const RETRY_FLAGS: [&str; 10] = [
    "--tries",
    "2",
    "--retry-delay",
    "1",
    "--request-retries",
    "2",
    "--request-timeout",
    "10",
    "--batch-timeout",
    "120",
];

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if let Err(e) = install_signal_handlers() {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
    if args.flat {
        return flat::run(&args);
    }
    let outdir = args.outdir.clone().unwrap_or_else(|| "demo-data".into());
    let sandbox = Sandbox::start_background(SandboxConfig {
        faults: FaultPlan::parse(&DEMO_FAULTS)?,
        latency: Duration::from_millis(20),
        ..SandboxConfig::default()
    })
    .context("cannot start the embedded sandbox on 127.0.0.1")?;
    eprintln!(
        "sandbox: {} (synthetic bars; injected faults: {})",
        sandbox.base_url(),
        DEMO_FAULTS.join(", ")
    );

    let state = Layout::resolve(&outdir)?.state().to_path_buf();
    std::fs::create_dir_all(&state)
        .with_context(|| format!("cannot create {}", state.display()))?;
    let universe = state.join("demo-universe.csv");
    std::fs::write(&universe, format!("ticker\n{}\n", DEMO_TICKERS.join("\n")))
        .with_context(|| format!("cannot write {}", universe.display()))?;
    let script = script_path(&state, "wrapper.rhai", WRAPPER)?;

    let host = Host::new(HostConfig {
        run_dir: args.run_dir.clone(),
        base_url: Some(sandbox.base_url()),
        api_key: Some(ApiKey::new(SANDBOX_API_KEY)),
        progress: if args.plain {
            ProgressMode::Plain
        } else {
            ProgressMode::Auto
        },
        ..HostConfig::default()
    });
    let outdir_text = outdir.display().to_string();
    let flags = [
        "--tickers-csv",
        &universe.display().to_string(),
        "--from",
        &args.from,
        "--to",
        &args.to,
        "--outdir",
        &outdir_text,
        "--batch-size",
        "4",
        "--max-concurrent",
        "3",
    ]
    .into_iter()
    .chain(RETRY_FLAGS)
    .map(String::from)
    .collect();
    let stats = |s: crate::sandbox::SandboxStats| {
        format!(
            "{} requests ({} faults injected, {} rate-limited)",
            s.requests, s.faults_injected, s.rate_limited
        )
    };
    let ran = run_file(&script, flags, host);
    finish(ran, &sandbox, &outdir, stats, print_how_to_read)
}

/// Ends a demo: the script's error or exit status, what the sandbox served (as
/// `stats` words it), and how to read the result (`how_to_read`).
fn finish(
    ran: Result<i32, crate::script::ScriptError>,
    sandbox: &Sandbox,
    outdir: &Path,
    stats: impl Fn(crate::sandbox::SandboxStats) -> String,
    how_to_read: fn(&Path),
) -> anyhow::Result<ExitCode> {
    let code = match ran {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", e.render());
            return Ok(ExitCode::from(e.exit_code() as u8));
        }
    };
    eprintln!("\nsandbox served {}", stats(sandbox.stats()));
    how_to_read(outdir);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// `scripts/<name>` when run from the repository (so an edited strategy is the one
/// shown), else `embedded`, written into the demo's state folder.
fn script_path(state: &Path, name: &str, embedded: &str) -> anyhow::Result<PathBuf> {
    let local = Path::new("scripts").join(name);
    if local.is_file() {
        return Ok(local);
    }
    let copy = state.join(name);
    std::fs::write(&copy, embedded).with_context(|| format!("cannot write {}", copy.display()))?;
    Ok(copy)
}

fn print_how_to_read(outdir: &Path) {
    let root = outdir.display();
    eprintln!(
        "\nRead the result (pip install duckdb pandas pyarrow polars):\n\
         \x20 python3 -c \"import duckdb; print(duckdb.sql(\\\"SELECT ticker, count(*) AS bars \
         FROM '{root}/**/*.parquet' GROUP BY ticker ORDER BY ticker\\\"))\"\n\
         \x20 python3 -c \"import pandas as pd; print(pd.read_parquet('{root}', \
         filters=[('ticker', '=', 'AAPL')]).tail())\"\n\
         \x20 python3 -c \"import polars as pl; \
         print(pl.scan_parquet('{root}').group_by('ticker').len().collect())\"\n\
         \nRe-run `{}`: everything is complete, so it makes no data requests.",
        rerun_command()
    );
}

/// The demo command the way the user started it: `cargo run --release -- demo` from a
/// checkout's `target/`, `barsmith demo` from PATH, else the path typed.
fn rerun_command() -> String {
    let argv0 = std::env::args().next().unwrap_or_default();
    rerun_for(&argv0)
}

fn rerun_for(argv0: &str) -> String {
    let p = argv0.replace('\\', "/");
    if p.contains("target/release/") {
        "cargo run --release -- demo".into()
    } else if p.contains("target/debug/") {
        "cargo run -- demo".into()
    } else if !p.contains('/') {
        format!("{p} demo")
    } else {
        format!("{argv0} demo")
    }
}

#[cfg(test)]
mod tests {
    use super::rerun_for;

    #[test]
    fn the_rerun_command_is_the_one_the_user_typed() {
        assert_eq!(
            rerun_for("/src/barsmith/target/release/barsmith"),
            "cargo run --release -- demo"
        );
        assert_eq!(rerun_for("target/debug/barsmith"), "cargo run -- demo");
        assert_eq!(rerun_for("barsmith"), "barsmith demo");
        assert_eq!(rerun_for("/opt/bin/barsmith"), "/opt/bin/barsmith demo");
    }
}
