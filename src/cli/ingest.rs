//! `barsmith ingest`: the worker. Batches run it as a disposable process; users can
//! run it by hand for a few tickers. The flat-file route's run is in [`flat`].

mod flat;
mod heap;
mod ledger;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use crate::budget::shared::SHARED_BUDGET_ENV;
use crate::budget::{Budget, default_state_dir};
use crate::calendar::{DateRange, today_ny};
use crate::flatfiles::FlatConfig;
use crate::ingest::ErrorKind;
use crate::ingest::events::{Event, EventSink, JsonLines};
use crate::ingest::job::SourceKind;
use crate::ingest::{EXIT_USAGE, Ingest, SetupError, SetupKind, WorkerJob};
use crate::polygon::{Client, ClientConfig, RetryPolicy};
use crate::secret::ApiKey;
use crate::store::dataset::writer_runtime;
use crate::store::{Dataset, DatasetIdentity, DatasetLocation, Store};
use crate::ticker::clean_tickers;

pub use crate::ingest::job::IngestArgs;

/// Everything the worker needs, checked before any request.
struct Prepared {
    /// The tickers asked for; empty with `--all-tickers`.
    tickers: Vec<String>,
    range: DateRange,
    source: Source,
}

/// Where the bars come from and go to, ready to use.
enum Source {
    /// The REST API, into a local folder or a dataset on S3.
    Rest(Client, Dataset),
    /// Flat files, into a local folder or a dataset on S3 (staged on local disk:
    /// [`flat::staging_dir`]).
    Flat(FlatConfig, Dataset),
}

/// Runs the worker.
///
/// A setup failure (bad input, no key, unusable output folder or budget) is reported
/// as one `setup_failed` event on stdout and one `error:` line on stderr, and exits 2
/// (bad input) or 4 (fatal for the run), as `--help` documents.
pub fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let mut sink = JsonLines(std::io::stdout());
    if args.source == SourceKind::Rest {
        heap::keep_freed_memory();
    }
    let runtime = runtime(&args)?;
    let prepared = match prepare(&args, &runtime) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {}", e.message);
            let exit_code = e.kind.exit_code();
            sink.emit(Event::SetupFailed {
                kind: e.kind,
                message: e.message,
                exit_code,
            });
            return Ok(ExitCode::from(exit_code as u8));
        }
    };
    let today = today_ny();
    let report = match &prepared.source {
        Source::Rest(client, dataset) => {
            let ingest = Ingest {
                source: client,
                dataset,
                range: prepared.range,
                today,
                cancel: &|| false,
                in_flight: args.in_flight,
            };
            runtime.block_on(ingest.run(&prepared.tickers, &mut sink))
        }
        Source::Flat(cfg, dataset) => {
            let job = flat::FlatJob {
                cfg: cfg.clone(),
                dataset,
                range: prepared.range,
                tickers: &prepared.tickers,
                refresh: args.refresh,
                in_flight: args.in_flight,
                today,
            };
            runtime.block_on(job.run(&mut sink))
        }
    };
    if let Some(fatal) = &report.fatal {
        tracing::error!("stopping: {}", fatal.message);
    }
    Ok(ExitCode::from(report.exit_code() as u8))
}

/// The runtime the dataset needs ([`writer_runtime`]); a malformed `--outdir` gets a
/// local folder's, and is refused when the job is checked.
fn runtime(args: &IngestArgs) -> std::io::Result<tokio::runtime::Runtime> {
    let location = DatasetLocation::parse(&args.outdir)
        .unwrap_or_else(|_| DatasetLocation::Local(args.outdir.clone()));
    writer_runtime(&location)
}

/// Checks the input, then the key, the output folder, the budget and the client, in
/// that order: the cheapest mistakes are named first.
fn prepare(args: &IngestArgs, runtime: &tokio::runtime::Runtime) -> Result<Prepared, SetupError> {
    let bad_input = |e: anyhow::Error| SetupError::new(SetupKind::BadInput, format!("{e:#}"));
    let tickers = read_tickers(args).map_err(bad_input)?;
    // The same checks the batch runner made before spawning this worker.
    let job = WorkerJob::from_args(args);
    job.check()
        .map_err(|e| SetupError::new(SetupKind::BadInput, e))?;
    let range = DateRange::parse(&job.from, &job.to)
        .map_err(|e| SetupError::new(SetupKind::BadInput, e.to_string()))?;
    let identity = DatasetIdentity::minute(job.adjusted);
    let location = DatasetLocation::parse(&job.outdir)
        .map_err(|e| SetupError::new(SetupKind::BadInput, e.to_string()))?;
    let dataset = open_dataset(location, &identity, job.source, runtime)?;
    let source = match job.source {
        SourceKind::Rest => Source::Rest(rest_client(args)?, dataset),
        SourceKind::FlatFiles => Source::Flat(flat::config(args, &dataset)?, dataset),
    };
    Ok(Prepared {
        tickers,
        range,
        source,
    })
}

/// Opens (creating if needed) the dataset at `location` for bars of `identity`.
fn open_dataset(
    location: DatasetLocation,
    identity: &DatasetIdentity,
    kind: SourceKind,
    runtime: &tokio::runtime::Runtime,
) -> Result<Dataset, SetupError> {
    let why = match kind {
        SourceKind::FlatFiles => " (flat files hold as-traded, unadjusted bars only)",
        SourceKind::Rest => "",
    };
    match location {
        DatasetLocation::Local(outdir) => Store::open(&outdir, identity)
            .map(Dataset::Local)
            .map_err(|e| SetupError::new(SetupKind::Store, format!("{e}{why}"))),
        DatasetLocation::S3(location) => {
            let url = location.to_string();
            runtime
                .block_on(Dataset::open_s3(location, identity))
                .map_err(|e| {
                    SetupError::new(
                        SetupKind::Store,
                        format!("cannot open the dataset {url}: {e}{why}"),
                    )
                })
        }
    }
}

/// The REST client with its key and the machine's shared budget.
fn rest_client(args: &IngestArgs) -> Result<Client, SetupError> {
    let api_key = ApiKey::from_env().ok_or_else(|| {
        SetupError::new(
            SetupKind::MissingKey,
            "no API key: set POLYGON_API_KEY (or MASSIVE_API_KEY) in the environment; \
             for a keyless try, run `barsmith demo`",
        )
    })?;
    let burst = args.max_rps.default_burst();
    let budget = match std::env::var(SHARED_BUDGET_ENV) {
        // Several machines: one schedule in Redis. Unreachable stops the run here.
        Ok(url) if !url.is_empty() => Budget::open_shared(&url, &api_key, args.max_rps, burst)
            .map_err(|e| SetupError::new(SetupKind::Budget, e.to_string()))?,
        _ => Budget::open_with_burst(&default_state_dir(), &api_key, args.max_rps, burst).map_err(
            |e| {
                SetupError::new(
                    SetupKind::Budget,
                    format!(
                        "cannot open the shared request budget in {}: {e} \
                 (set BARSMITH_STATE_DIR to a writable folder)",
                        default_state_dir().display()
                    ),
                )
            },
        )?,
    };
    Client::new(ClientConfig {
        base_url: args.base_url.clone(),
        api_key,
        adjusted: !args.unadjusted,
        timeout: Duration::from_secs_f64(args.timeout.max(0.001)),
        retry: RetryPolicy {
            max_attempts: args.retries.max(1),
            base: Duration::from_millis(args.backoff_ms),
            max_backoff: Duration::from_millis(args.max_backoff_ms),
            same_error_limit: args.breaker,
            ..RetryPolicy::default()
        },
        budget: Some(budget),
        allow_insecure_http: args.allow_insecure_http,
        spread: true,
    })
    .map_err(|e| {
        let kind = match e.kind {
            ErrorKind::Tls => SetupKind::Client,
            _ => SetupKind::BadInput,
        };
        SetupError::new(kind, e.message)
    })
}

fn read_tickers(args: &IngestArgs) -> anyhow::Result<Vec<String>> {
    if args.all_tickers {
        if args.source != SourceKind::FlatFiles {
            bail!(
                "--all-tickers needs --source flat-files: the REST API is asked ticker by ticker"
            );
        }
        return Ok(Vec::new());
    }
    let raw = match &args.tickers_file {
        Some(path) => crate::ticker::read_ticker_file(path)?,
        None => args.tickers.clone(),
    };
    let tickers = clean_tickers(raw)?;
    if tickers.is_empty() {
        bail!("no tickers given: pass --tickers A,B or a --tickers-file with at least one symbol");
    }
    Ok(tickers)
}

/// Exit status for input refused before any request.
pub const USAGE: u8 = EXIT_USAGE as u8;
