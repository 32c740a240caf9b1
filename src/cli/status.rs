//! `barsmith status DIR`: what a dataset holds and what a resume would fetch, from the
//! coverage records and the Parquet footers only (no bars are read).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::budget::Rate;
use crate::calendar::parse_date;
use crate::cli::upgrade::UPGRADE_ON_S3;
use crate::polygon::request::PAGE_LIMIT;
use crate::s3::S3ErrorKind;
use crate::store::dataset::{block_on, open_s3_for_writing, open_s3_read_only};
use crate::store::remote::S3Location;
use crate::store::status::{Check, DatasetStatus, EstimateRule, StatusQuery, render};
use crate::store::{DatasetLocation, Store, StoreError};
use crate::ticker::read_ticker_file;

/// Exit status for bad input: a missing folder, not a dataset, bad flags.
pub const USAGE: u8 = 2;

/// Exit status of `--verify` when a file is not what its record says was written.
pub const DAMAGED: u8 = 3;

/// Output formats of `barsmith status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Totals, then each ticker, for people.
    Table,
    /// One totals row (ticker `*`), then one row per ticker.
    Csv,
    /// One JSON document.
    Json,
}

/// Flags of `barsmith status`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Reads only the coverage records (<DIR>.barsmith/coverage/) and each Parquet file's
footer and size: no bars are decoded. Results go to stdout; warnings (stray files in
the data root, which break Polars and pyarrow) and errors to stderr.

The resume estimate: the missing ranges split by calendar year are the pieces a resume
fetches, each at least one request. A piece's bars are its days times the bars per
known day of the neighbouring years (the year before and after: rows in the file over
the days known complete; the busier neighbour wins), else --rows-per-year / 365; one
request per 50,000 bars (a page). The time is requests / --max-rps (latency aside).

CSV columns (a totals row with ticker `*` first, then one row per ticker):
  ticker,tickers,complete,files,rows,bytes,missing_ranges,missing_pieces,requests,
  seconds,complete_ranges,missing,rows_per_year,bytes_per_year
  complete is 1/0 per ticker (the count of complete tickers in the totals row); lists
  are `;`-separated, ranges FROM..TO, per-year values YEAR:N; the totals row puts the
  asked range in complete_ranges.

JSON fields: data_root, range {from,to} (null if no day is known), totals {tickers,
complete, incomplete, files, rows, bytes, missing_ranges, missing_pieces, requests,
seconds, requests_per_second}, tickers [{ticker, complete, complete_ranges [[from,to]],
missing [[from,to]], missing_pieces, requests, years [{year, rows, bytes}]}],
stray_files [path relative to DIR], damaged_files [{path, error}] (bar files whose
footer cannot be read, left out of rows and bytes), legacy_layout_files [path] (files
of barsmith 0.1 with a `ticker` column: run `barsmith upgrade DIR`), verified (true with --verify or
--repair), damaged_claims [{ticker, year, cause, detail, path, moved_to}].

Damaged claims: a ticker-year whose file is not what its coverage record says was
written (cause missing, unreadable, rows, span, unsorted or duplicates). Every status
(and every resume) checks each recorded file's existence and size; --verify also opens
it, compares rows and time span, and reads its timestamps. A resume re-fetches a
damaged year by itself; --repair moves the file aside first. In the table they follow
the totals; with --format csv they go to stderr as `damaged: ...` lines.

A dataset on S3 (s3://bucket/prefix; endpoint and keys from the AWS variables, as for
`barsmith ingest`) gets the same report from its coverage records, one listing of the
prefix (sizes: the quick check costs no request) and a ranged GET of each object's
footer. --verify reads the timestamp column's chunks by range; --repair moves each
damaged object into s3://bucket/prefix.barsmith/quarantine/ under the ticker's write
lease, then withdraws its year's coverage (an interrupted repair leaves a claim
without an object, which the next status names; run --repair again).

Exit status: 0 report printed (even with stray or damaged files, and after --repair);
3 --verify found a damaged file; 2 bad input (DIR missing or not a barsmith dataset,
bad dates or tickers, S3 settings that cannot work); 1 a folder, object or coverage
record could not be read.

Examples:
  barsmith status data/minute
  barsmith status data/minute --tickers-csv universe.csv --from 2004-01-01 --to 2024-12-31
  barsmith status data/minute --format json | jq .totals
  barsmith status data/minute --verify      # exit 3 if a file is damaged
  barsmith status data/minute --repair      # then re-run the backfill
  barsmith status s3://research/bars/minute --format json")]
pub struct StatusArgs {
    /// The dataset: the data root given to `barsmith ingest --outdir`, e.g. `data/minute`
    /// or `s3://research/bars/minute`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Report on these tickers only: a CSV with a `ticker` column, or one per line
    /// (default: every ticker with coverage or files).
    #[arg(long, value_name = "FILE")]
    pub tickers_csv: Option<PathBuf>,
    /// First day, New York date (default: the first day any coverage record knows).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: Option<String>,
    /// Last day, inclusive (default: the last day any coverage record knows).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: Option<String>,
    /// Output format: `table` for people; `csv` and `json` for pipelines (fields in --help).
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// The request rate the resume estimate assumes: `50/s`, `5/min`, ...
    #[arg(long, value_name = "RATE", default_value = "50/s")]
    pub max_rps: Rate,
    /// Bars assumed for a ticker-year with no neighbouring year known (a liquid
    /// ticker-year of minute bars is ~250,000).
    #[arg(long, value_name = "N", default_value_t = 250_000)]
    pub rows_per_year: u64,
    /// Check every file the coverage records claim: it exists, its footer opens, its
    /// rows and time span match what was recorded at write time, and its timestamps
    /// increase strictly (reads the timestamp column). Exit 3 if a file is damaged.
    #[arg(long)]
    pub verify: bool,
    /// Verify, then move each damaged file into <DIR>.barsmith/quarantine/ (nothing is
    /// deleted) and withdraw its year's coverage, so the next run fetches exactly those
    /// ranges again. Run it while no backfill writes to DIR.
    #[arg(long)]
    pub repair: bool,
}

/// Input refused before anything is read: printed as one line, exit 2.
struct BadInput(String);

/// The dataset asked about.
enum Target {
    /// A local folder, opened (for writing with `--repair`).
    Local(Store),
    /// A dataset on S3, opened when the report is built.
    S3(S3Location),
}

/// Prints the status of a dataset.
pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let (target, query) = match prepare(&args) {
        Ok(p) => p,
        Err(BadInput(msg)) => {
            eprintln!("error: {msg}");
            return Ok(ExitCode::from(USAGE));
        }
    };
    let rule = EstimateRule {
        page_rows: u64::from(PAGE_LIMIT),
        rows_per_year: args.rows_per_year,
        requests_per_second: args.max_rps.per_second(),
    };
    let built = match target {
        Target::Local(store) => DatasetStatus::build(&store, &query, rule),
        Target::S3(location) => {
            let query = &query;
            block_on(move || s3_status(location, query, rule)).and_then(|r| r)
        }
    };
    let status = match built {
        Ok(s) => s,
        Err(e) if is_bad_input(&e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(USAGE));
        }
        Err(e) => return Err(e).context(format!("cannot read {}", args.dir.display())),
    };
    for stray in &status.stray_files {
        eprintln!(
            "warning: {} in {} is not ticker=*/year=*/*.parquet: Polars and pyarrow fail \
             on it; move it out of the data root",
            stray.display(),
            args.dir.display()
        );
    }
    if args.format == Format::Csv {
        // The CSV table's shape is fixed: damaged claims are diagnostics there.
        for d in &status.damaged_claims {
            eprintln!("damaged: {}", render::claim_line(d));
        }
    }
    if let Some(first) = status.legacy_layout_files.first() {
        let fix = match DatasetLocation::parse(&args.dir) {
            Ok(DatasetLocation::S3(_)) => UPGRADE_ON_S3.to_string(),
            _ => format!("run `barsmith upgrade {}` once", args.dir.display()),
        };
        eprintln!(
            "warning: {} bar file(s) in {} (e.g. {}) carry a `ticker` column beside the \
             `ticker=` folder (written by barsmith 0.1): pandas.read_parquet and \
             pq.read_table fail on the dataset; {fix}",
            status.legacy_layout_files.len(),
            args.dir.display(),
            first.display(),
        );
    }
    for d in &status.damaged_files {
        eprintln!(
            "warning: {} in {} cannot be read ({}); it is left out of the rows and bytes, \
             and readers of the dataset will fail on it",
            d.path.display(),
            args.dir.display(),
            d.error
        );
    }
    let text = match args.format {
        Format::Table => render::table(&status, &args.max_rps.to_string()),
        Format::Csv => render::csv(&status),
        Format::Json => render::json(&status),
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
    Ok(exit_code(&args, &status))
}

/// 3 when `--verify` found damage; 0 otherwise (a plain status is a report, and
/// `--repair` leaves a consistent dataset).
fn exit_code(args: &StatusArgs, status: &DatasetStatus) -> ExitCode {
    if args.verify && !args.repair && !status.damaged_claims.is_empty() {
        ExitCode::from(DAMAGED)
    } else {
        ExitCode::SUCCESS
    }
}

/// The status of the dataset on S3 at `location` (opened for writing with `--repair`,
/// as a local folder is).
async fn s3_status(
    location: S3Location,
    query: &StatusQuery,
    rule: EstimateRule,
) -> Result<DatasetStatus, StoreError> {
    let ds = open_s3_read_only(location.clone()).await?;
    let Some(identity) = ds.identity().cloned() else {
        let dataset = location.url(&location.dataset_key());
        return Err(StoreError::Invalid(format!(
            "{location} is not a barsmith dataset (no {dataset}): pass the \
             s3://bucket/prefix given to `barsmith ingest --outdir`"
        )));
    };
    let ds = match query.check {
        Check::Repair => open_s3_for_writing(location, &identity).await?,
        Check::Quick | Check::Verify => ds,
    };
    DatasetStatus::build_s3(&ds, query, rule).await
}

/// Errors that are the input's or the settings' (exit 2), not a failed read: a bad
/// range or not a dataset, and on S3 settings that cannot work (no credentials, an
/// endpoint that does not answer).
fn is_bad_input(e: &StoreError) -> bool {
    match e {
        StoreError::Invalid(_) => true,
        StoreError::S3(e) => e.kind == S3ErrorKind::Config,
        _ => false,
    }
}

/// Checks DIR is a barsmith dataset (a local one; one on S3 when it is read) and
/// parses the query.
fn prepare(args: &StatusArgs) -> Result<(Target, StatusQuery), BadInput> {
    let dir = &args.dir;
    let target = match DatasetLocation::parse(dir).map_err(|e| BadInput(e.to_string()))? {
        DatasetLocation::S3(location) => Target::S3(location),
        DatasetLocation::Local(_) => Target::Local(open_local(args)?),
    };
    let date = |s: &Option<String>| {
        s.as_deref()
            .map(parse_date)
            .transpose()
            .map_err(|e| BadInput(e.0))
    };
    let tickers = match &args.tickers_csv {
        Some(path) => Some(read_ticker_file(path).map_err(|e| BadInput(e.0))?),
        None => None,
    };
    let check = match (args.verify, args.repair) {
        (_, true) => Check::Repair,
        (true, false) => Check::Verify,
        _ => Check::Quick,
    };
    let query = StatusQuery {
        tickers,
        from: date(&args.from)?,
        to: date(&args.to)?,
        check,
    };
    if let (Some(f), Some(t)) = (query.from, query.to)
        && f > t
    {
        return Err(BadInput(format!(
            "--from {f} is after --to {t}: swap them or fix the dates"
        )));
    }
    Ok((target, query))
}

/// The local dataset DIR, for writing with `--repair`.
fn open_local(args: &StatusArgs) -> Result<Store, BadInput> {
    let dir = &args.dir;
    let fix = "pass the folder given to `barsmith ingest --outdir`";
    if !dir.is_dir() {
        return Err(BadInput(format!(
            "{} is not a folder: {fix}",
            dir.display()
        )));
    }
    let store = Store::open_read_only(dir).map_err(|e| BadInput(e.to_string()))?;
    let Some(identity) = store.identity().cloned() else {
        return Err(BadInput(format!(
            "{} is not a barsmith dataset (no {}): {fix}",
            dir.display(),
            dataset_file(&store).display()
        )));
    };
    if args.repair {
        return Store::open(dir, &identity).map_err(|e| BadInput(e.to_string()));
    }
    Ok(store)
}

fn dataset_file(store: &Store) -> PathBuf {
    Path::new(store.state_dir()).join("dataset.json")
}
