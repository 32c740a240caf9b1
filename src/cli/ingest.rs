//! `barsmith ingest`: the worker. Batches run it as a disposable process; users can
//! run it by hand for a few tickers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Args;

use crate::budget::{Budget, Rate, default_state_dir};
use crate::calendar::{DateRange, today_ny};
use crate::ingest::events::{Event, EventSink, JsonLines};
use crate::ingest::{DEFAULT_IN_FLIGHT, EXIT_USAGE, Ingest, SetupError, SetupKind};
use crate::polygon::{Client, ClientConfig, DEFAULT_BASE_URL, ErrorKind, RetryPolicy};
use crate::secret::ApiKey;
use crate::store::{DatasetIdentity, Store};
use crate::ticker::clean_tickers;

/// Flags of `barsmith ingest`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Events: one JSON object per line on stdout (ticker_started, page, retry, ticker_done,
ticker_failed, finished); a human log on stderr.

Exit status: 0 every ticker complete; 3 some tickers failed (the rest are complete);
4 fatal for the whole run (key missing or rejected, output unwritable or holding other
data, budget file unusable); 2 bad input (arguments, dates, tickers). A setup failure
(2 or 4 before any request) is also reported as one `setup_failed` event.

The API key is read from POLYGON_API_KEY or MASSIVE_API_KEY, never from a flag.

Example:
  POLYGON_API_KEY=... barsmith ingest --tickers AAPL,BRK.A --outdir data/minute \\
      --from 2004-01-01 --to 2010-12-31 --max-rps 5/min")]
pub struct IngestArgs {
    /// Comma-separated tickers, e.g. `AAPL,MSFT,BRK.A`.
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "tickers_file",
        conflicts_with = "tickers_file"
    )]
    pub tickers: Vec<String>,
    /// File of tickers: a CSV with a `ticker` column, or one ticker per line.
    #[arg(long, value_name = "FILE")]
    pub tickers_file: Option<PathBuf>,
    /// Output folder (the Parquet data root), e.g. `data/minute`.
    #[arg(long, value_name = "DIR")]
    pub outdir: PathBuf,
    /// First day, New York date, e.g. 2004-01-01.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: String,
    /// Last day (inclusive), New York date, e.g. 2010-12-31.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: String,
    /// Fetch bars not adjusted for splits (the default is adjusted).
    #[arg(long)]
    pub unadjusted: bool,
    /// Request budget shared by every barsmith process using the same key:
    /// `50` or `50/s` per second, `5/min` per minute (Polygon's free plan).
    #[arg(long, value_name = "RATE", default_value = "50/s")]
    pub max_rps: Rate,
    /// API base URL.
    #[arg(long, value_name = "URL", default_value = DEFAULT_BASE_URL)]
    pub base_url: String,
    /// Allow an http:// base URL on a host other than loopback. The API key then
    /// crosses the network in clear text: only for a trusted proxy; prints a warning.
    #[arg(long)]
    pub allow_insecure_http: bool,
    /// Timeout of one HTTP request, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 40.0)]
    pub timeout: f64,
    /// Attempts per request before a ticker fails (retryable errors only).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub retries: u32,
    /// First backoff delay in milliseconds; it doubles per attempt, with jitter.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub backoff_ms: u64,
    /// Most tickers fetched at once. The worker starts with 2 and doubles while the
    /// shared budget has room and it is not CPU-bound, halving on a 429, so a slow API
    /// still gets enough requests in flight; each ticker costs at most one ticker-year
    /// of memory.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_IN_FLIGHT)]
    pub in_flight: usize,
    /// Longest backoff delay in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub max_backoff_ms: u64,
    /// The circuit breaker: give up on a ticker's request after N attempts in a row
    /// with the very same error (a persistent 500, say) instead of all --retries;
    /// the ticker fails retryable with `circuit_open`. 0 turns it off.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub breaker: u32,
}

/// Everything the worker needs, checked before any request.
struct Prepared {
    tickers: Vec<String>,
    range: DateRange,
    store: Store,
    client: Client,
}

/// Runs the worker.
///
/// A setup failure (bad input, no key, unusable output folder or budget) is reported
/// as one `setup_failed` event on stdout and one `error:` line on stderr, and exits 2
/// (bad input) or 4 (fatal for the run), as `--help` documents.
pub fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let mut sink = JsonLines(std::io::stdout());
    let prepared = match prepare(&args) {
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ingest = Ingest {
        client: &prepared.client,
        store: &prepared.store,
        range: prepared.range,
        today: today_ny(),
        cancel: &|| false,
        in_flight: args.in_flight,
    };
    let report = runtime.block_on(ingest.run(&prepared.tickers, &mut sink));
    if let Some(fatal) = &report.fatal {
        tracing::error!("stopping: {}", fatal.message);
    }
    Ok(ExitCode::from(report.exit_code() as u8))
}

/// Checks the input, then the key, the output folder, the budget and the client, in
/// that order: the cheapest mistakes are named first.
fn prepare(args: &IngestArgs) -> Result<Prepared, SetupError> {
    let bad_input = |e: anyhow::Error| SetupError::new(SetupKind::BadInput, format!("{e:#}"));
    let tickers = read_tickers(args).map_err(bad_input)?;
    let range = DateRange::parse(&args.from, &args.to)
        .map_err(|e| SetupError::new(SetupKind::BadInput, e.to_string()))?;
    let api_key = ApiKey::from_env().ok_or_else(|| {
        SetupError::new(
            SetupKind::MissingKey,
            "no API key: set POLYGON_API_KEY (or MASSIVE_API_KEY) in the environment; \
             for a keyless try, run `barsmith demo`",
        )
    })?;
    let identity = DatasetIdentity::minute(!args.unadjusted);
    let store = Store::open(&args.outdir, &identity)
        .map_err(|e| SetupError::new(SetupKind::Store, e.to_string()))?;
    let burst = args.max_rps.default_burst();
    let budget = Budget::open_with_burst(&default_state_dir(), &api_key, args.max_rps, burst)
        .map_err(|e| {
            SetupError::new(
                SetupKind::Budget,
                format!(
                    "cannot open the shared request budget in {}: {e} \
                 (set BARSMITH_STATE_DIR to a writable folder)",
                    default_state_dir().display()
                ),
            )
        })?;
    let client = Client::new(ClientConfig {
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
    })
    .map_err(|e| {
        let kind = match e.kind {
            ErrorKind::Tls => SetupKind::Client,
            _ => SetupKind::BadInput,
        };
        SetupError::new(kind, e.message)
    })?;
    Ok(Prepared {
        tickers,
        range,
        store,
        client,
    })
}

fn read_tickers(args: &IngestArgs) -> anyhow::Result<Vec<String>> {
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
