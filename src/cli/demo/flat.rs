//! `barsmith demo --flat`: the flat-file strategy end to end against the sandbox. Two
//! months come from flat files in monthly batches (one day's download is cut short
//! three times, so its batch fails and is retried; one day is refused with 403); REST
//! then tops up what the files cannot give: the refused day, the day after the last
//! published file and the two tickers the files do not carry.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use jiff::civil::{Date, date};

use super::{DemoArgs, rerun_command};
use crate::batch::ProgressMode;
use crate::s3::S3Credentials;
use crate::sandbox::synth::DEMO_TICKERS;
use crate::sandbox::{
    FlatFaultPlan, SANDBOX_API_KEY, SANDBOX_S3_ACCESS_KEY, SANDBOX_S3_SECRET_KEY, Sandbox,
    SandboxConfig,
};
use crate::script::{Host, HostConfig, run_file};
use crate::secret::ApiKey;
use crate::store::Layout;

/// The bundled strategy, used when `scripts/flatfiles.rhai` is not in the working
/// folder (an installed barsmith).
const STRATEGY: &str = include_str!("../../../scripts/flatfiles.rhai");

/// The sandbox's "today": its files are published through two days before.
const TODAY: Date = date(2025, 3, 5);
/// The last published file: 2025-03-04 is over but has no file yet.
const LAST_FILE: Date = date(2025, 3, 3);
const FROM: &str = "2025-01-02";
const TO: &str = "2025-03-04";
/// The tickers of the universe that no file carries (REST has them).
const NOT_IN_FILES: [&str; 2] = ["IBM", "CSCO"];
/// A day outside the "plan", and a day whose first three downloads are cut short
/// (a worker tries a damaged day three times, so its batch fails once).
const FLAT_FAULTS: [&str; 2] = ["2025-02-12=forbidden", "2025-01-15=truncated:3"];

/// Runs the flat-file demo.
pub(super) fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let outdir = args
        .outdir
        .clone()
        .unwrap_or_else(|| "demo-data-flat".into());
    let sandbox = Sandbox::start_background(SandboxConfig {
        today: TODAY,
        flat_published_through: Some(LAST_FILE),
        flat_tickers: DEMO_TICKERS
            .iter()
            .filter(|t| !NOT_IN_FILES.contains(t))
            .map(|t| t.to_string())
            .collect(),
        flat_faults: FlatFaultPlan::parse(&FLAT_FAULTS)?,
        latency: Duration::from_millis(5),
        ..SandboxConfig::default()
    })
    .context("cannot start the embedded sandbox on 127.0.0.1")?;
    eprintln!(
        "sandbox: {} (synthetic bars; flat files through {LAST_FILE}; flat faults: {}; \
         not in any file: {})",
        sandbox.base_url(),
        FLAT_FAULTS.join(", "),
        NOT_IN_FILES.join(", ")
    );
    let state = Layout::resolve(&outdir)?.state().to_path_buf();
    std::fs::create_dir_all(&state)
        .with_context(|| format!("cannot create {}", state.display()))?;
    let universe = state.join("demo-universe.csv");
    std::fs::write(&universe, format!("ticker\n{}\n", DEMO_TICKERS.join("\n")))
        .with_context(|| format!("cannot write {}", universe.display()))?;
    let script = super::script_path(&state, "flatfiles.rhai", STRATEGY)?;
    let host = Host::new(HostConfig {
        run_dir: args.run_dir.clone(),
        base_url: Some(sandbox.base_url()),
        flat_endpoint: Some(sandbox.base_url()),
        api_key: Some(ApiKey::new(SANDBOX_API_KEY)),
        flat_credentials: Some(S3Credentials::new(
            SANDBOX_S3_ACCESS_KEY.into(),
            SANDBOX_S3_SECRET_KEY.into(),
        )),
        progress: if args.plain {
            ProgressMode::Plain
        } else {
            ProgressMode::Auto
        },
        ..HostConfig::default()
    });
    let flags: Vec<String> = [
        "--tickers-csv",
        &universe.display().to_string(),
        "--from",
        FROM,
        "--to",
        TO,
        "--outdir",
        &outdir.display().to_string(),
        "--period",
        "month",
    ]
    .into_iter()
    .chain(super::RETRY_FLAGS)
    .map(String::from)
    .collect();
    let stats = |s: crate::sandbox::SandboxStats| {
        format!(
            "{} requests, {} of them flat-file downloads and listings",
            s.requests, s.flat_requests
        )
    };
    let ran = run_file(&script, flags, host);
    super::finish(ran, &sandbox, &outdir, stats, print_how_to_read)
}

fn print_how_to_read(outdir: &Path) {
    let root = outdir.display();
    eprintln!(
        "\nHow to read it: the bars are as traded (unadjusted). Flat-file bars have no \
         vwap; REST filled the day refused (2025-02-12), the day after the last file \
         ({TO}) and {} (in no file), with vwap. Per day and source:\n\
         \x20 python3 -c \"import duckdb; print(duckdb.sql(\\\"SELECT CAST(timestamp AS DATE) AS day, \
         count(*) AS bars, count(vwap) AS rest_bars FROM '{root}/**/*.parquet' \
         GROUP BY day ORDER BY day\\\").fetchall()[-8:])\"\n\
         \x20 barsmith status {root}\n\
         \nRe-run `{} --flat`: everything is complete, so no file is downloaded and no bar fetched.",
        NOT_IN_FILES.join(" and "),
        rerun_command()
    );
}
