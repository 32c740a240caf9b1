//! One worker job: what a batch asks `barsmith ingest` to do, as typed settings.
//!
//! The batch runner writes a job as worker flags ([`WorkerJob::to_args`]) and the worker
//! reads them back ([`IngestArgs`], then [`WorkerJob::from_args`]): both sides of the
//! process boundary live here, so the format has one owner (a unit test round-trips it).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::budget::Rate;
use crate::flatfiles::MINUTE_AGGS_PREFIX;
use crate::ingest::DEFAULT_IN_FLIGHT;
use crate::polygon::DEFAULT_BASE_URL;
use crate::s3::{FLATFILES_BUCKET, FLATFILES_ENDPOINT};

/// The name an all-tickers batch (`--all-tickers`) reports for the tickers of the
/// files it did not report one by one: `ok` once the worker went through the whole
/// universe, failed with the reason when it stopped before any ticker (a day that
/// could not be downloaded). Never a valid symbol, so it cannot clash with one.
pub const ALL_TICKERS: &str = "*";

/// Where a worker takes its bars from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// The REST aggregates API, ticker by ticker, through the request budget.
    #[default]
    Rest,
    /// Polygon's daily flat files (S3): every ticker of a day in one file.
    FlatFiles,
}

impl SourceKind {
    /// The flag and script spelling: `rest` or `flat-files`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Rest => "rest",
            SourceKind::FlatFiles => "flat-files",
        }
    }
}

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
        required_unless_present_any = ["tickers_file", "all_tickers"],
        conflicts_with_all = ["tickers_file", "all_tickers"]
    )]
    pub tickers: Vec<String>,
    /// File of tickers: a CSV with a `ticker` column, or one ticker per line.
    #[arg(long, value_name = "FILE", conflicts_with = "all_tickers")]
    pub tickers_file: Option<PathBuf>,
    /// Every ticker in the flat files (with `--source flat-files`) instead of a list.
    #[arg(long)]
    pub all_tickers: bool,
    /// Where the bars come from: `rest` (the API, ticker by ticker) or `flat-files`
    /// (daily files of every ticker; unadjusted bars only; credentials from
    /// MASSIVE_S3_ACCESS_KEY_ID and MASSIVE_S3_SECRET_ACCESS_KEY).
    #[arg(long, value_enum, default_value_t = SourceKind::Rest)]
    pub source: SourceKind,
    /// Flat-file S3 endpoint.
    #[arg(long, value_name = "URL", default_value = FLATFILES_ENDPOINT)]
    pub flat_endpoint: String,
    /// Flat-file bucket.
    #[arg(long, value_name = "NAME", default_value = FLATFILES_BUCKET)]
    pub flat_bucket: String,
    /// Flat-file dataset prefix in the bucket.
    #[arg(long, value_name = "PREFIX", default_value = MINUTE_AGGS_PREFIX)]
    pub flat_prefix: String,
    /// Flat files: ingest again the days whose file changed (a new ETag) since they
    /// were ingested.
    #[arg(long)]
    pub refresh: bool,
    /// Flat files: days downloaded and decoded at once (each holds a day in memory).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub parallel_days: u32,
    /// Output folder (the Parquet data root), e.g. `data/minute`, or a dataset on S3,
    /// `s3://bucket/prefix` (endpoint, region and key pair from AWS_ENDPOINT_URL,
    /// AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; write leases last
    /// BARSMITH_S3_LEASE_TTL seconds, default 60; flat files are staged on local disk
    /// under BARSMITH_STATE_DIR/s3/).
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
    /// shared budget has room and it is not CPU-bound, so a slow API
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

/// The settings of one worker run; `None` leaves the worker's default.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerJob {
    /// Output folder or `s3://bucket/prefix` (`--outdir`), passed through as given.
    /// Required.
    pub outdir: PathBuf,
    /// First day, `YYYY-MM-DD` (`--from`). Required.
    pub from: String,
    /// Last day inclusive, `YYYY-MM-DD` (`--to`). Required.
    pub to: String,
    /// Split-adjusted bars (default true; false adds `--unadjusted`).
    pub adjusted: bool,
    /// Shared request budget, e.g. `50/s`, `5/min` (`--max-rps`).
    pub max_rps: Option<String>,
    /// API base URL (`--base-url`).
    pub base_url: Option<String>,
    /// Allow a plain-http base URL off loopback (`--allow-insecure-http`).
    pub allow_insecure_http: bool,
    /// Timeout of one HTTP request (`--timeout`, seconds).
    pub request_timeout: Option<Duration>,
    /// Attempts per request (`--retries`).
    pub retries: Option<u32>,
    /// First backoff delay (`--backoff-ms`).
    pub backoff: Option<Duration>,
    /// Longest backoff delay (`--max-backoff-ms`).
    pub max_backoff: Option<Duration>,
    /// Tickers the worker fetches at once (`--in-flight`).
    pub in_flight: Option<u32>,
    /// Identical failed attempts in a row that open a request's circuit (`--breaker`;
    /// 0 = off).
    pub breaker: Option<u32>,
    /// Where the bars come from (`--source`).
    pub source: SourceKind,
    /// Every ticker in the flat files instead of a list (`--all-tickers`).
    pub all_tickers: bool,
    /// Flat-file S3 endpoint (`--flat-endpoint`).
    pub flat_endpoint: Option<String>,
    /// Flat-file bucket (`--flat-bucket`).
    pub flat_bucket: Option<String>,
    /// Flat-file dataset prefix (`--flat-prefix`).
    pub flat_prefix: Option<String>,
    /// Re-ingest days whose file changed (`--refresh`).
    pub refresh: bool,
    /// Flat-file days handled at once (`--parallel-days`).
    pub parallel_days: Option<u32>,
}

impl Default for WorkerJob {
    fn default() -> WorkerJob {
        WorkerJob {
            outdir: PathBuf::new(),
            from: String::new(),
            to: String::new(),
            adjusted: true,
            max_rps: None,
            base_url: None,
            allow_insecure_http: false,
            request_timeout: None,
            retries: None,
            backoff: None,
            max_backoff: None,
            in_flight: None,
            breaker: None,
            source: SourceKind::Rest,
            all_tickers: false,
            flat_endpoint: None,
            flat_bucket: None,
            flat_prefix: None,
            refresh: false,
            parallel_days: None,
        }
    }
}

impl WorkerJob {
    /// Cores the worker keeps busy: a flat-file job decodes `parallel_days` days at
    /// once (default 2); a REST worker waits on the network and needs one.
    pub fn cores(&self) -> u32 {
        match self.source {
            SourceKind::Rest => 1,
            SourceKind::FlatFiles => self.parallel_days.unwrap_or(2).max(1),
        }
    }

    /// Checks the worker settings the worker would otherwise refuse on start, so a
    /// typo stops the run once, before any worker, instead of failing every batch.
    pub fn check(&self) -> Result<(), String> {
        // An `s3://` outdir is checked here so a malformed one stops the run once.
        crate::store::DatasetLocation::parse(&self.outdir).map_err(|e| e.to_string())?;
        if let Some(rate) = &self.max_rps {
            rate.parse::<crate::budget::Rate>().map_err(|_| {
                format!(
                    "max_rps \"{rate}\" is not a request rate: use N/s or N/min, e.g. 50/s, \
                     or 5/min on Polygon's free plan"
                )
            })?;
        }
        let positive = |name: &str, d: Option<Duration>| match d {
            Some(d) if d.is_zero() => Err(format!("{name} must be more than 0 seconds")),
            _ => Ok(()),
        };
        // Named as scripts (options) and the worker (flags) both spell them.
        positive("request_timeout (--timeout)", self.request_timeout)?;
        for (name, n) in [
            ("retries (--retries)", self.retries),
            ("in_flight (--in-flight)", self.in_flight),
        ] {
            if n == Some(0) {
                return Err(format!("{name} must be at least 1"));
            }
        }
        self.check_source()
    }

    /// The flat-file settings make sense only with flat files, and flat files hold
    /// only unadjusted bars.
    fn check_source(&self) -> Result<(), String> {
        if self.source == SourceKind::Rest {
            for (set, name) in [
                (self.all_tickers, "all_tickers (--all-tickers)"),
                (self.refresh, "refresh (--refresh)"),
                (
                    self.flat_endpoint.is_some(),
                    "flat_endpoint (--flat-endpoint)",
                ),
                (self.flat_bucket.is_some(), "flat_bucket (--flat-bucket)"),
                (self.flat_prefix.is_some(), "flat_prefix (--flat-prefix)"),
                (
                    self.parallel_days.is_some(),
                    "parallel_days (--parallel-days)",
                ),
            ] {
                if set {
                    return Err(format!(
                        "{name} applies to flat files only: add source: \"flat-files\" \
                         (--source flat-files) or drop it"
                    ));
                }
            }
            return Ok(());
        }
        if self.adjusted {
            return Err(
                "flat files hold as-traded (unadjusted) bars, which must not mix with \
                 split-adjusted ones: add adjusted: false (--unadjusted) and write to an \
                 output folder of unadjusted bars"
                    .into(),
            );
        }
        if self.parallel_days == Some(0) {
            return Err("parallel_days (--parallel-days) must be at least 1".into());
        }
        Ok(())
    }

    /// The worker flags of this job (after `--tickers-file F`), as [`IngestArgs`]
    /// reads them.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--outdir".to_string(),
            self.outdir.display().to_string(),
            "--from".into(),
            self.from.clone(),
            "--to".into(),
            self.to.clone(),
        ];
        if !self.adjusted {
            args.push("--unadjusted".into());
        }
        if self.allow_insecure_http {
            args.push("--allow-insecure-http".into());
        }
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                args.push(name.to_string());
                args.push(v);
            }
        };
        flag("--max-rps", self.max_rps.clone());
        flag("--base-url", self.base_url.clone());
        flag(
            "--timeout",
            self.request_timeout.map(|d| d.as_secs_f64().to_string()),
        );
        flag("--retries", self.retries.map(|n| n.to_string()));
        flag(
            "--backoff-ms",
            self.backoff.map(|d| d.as_millis().to_string()),
        );
        flag(
            "--max-backoff-ms",
            self.max_backoff.map(|d| d.as_millis().to_string()),
        );
        flag("--in-flight", self.in_flight.map(|n| n.to_string()));
        flag("--breaker", self.breaker.map(|n| n.to_string()));
        if self.source != SourceKind::Rest {
            flag("--source", Some(self.source.as_str().to_string()));
        }
        flag("--flat-endpoint", self.flat_endpoint.clone());
        flag("--flat-bucket", self.flat_bucket.clone());
        flag("--flat-prefix", self.flat_prefix.clone());
        flag("--parallel-days", self.parallel_days.map(|n| n.to_string()));
        if self.all_tickers {
            args.push("--all-tickers".into());
        }
        if self.refresh {
            args.push("--refresh".into());
        }
        args
    }

    /// The job the worker was given, every setting explicit.
    pub fn from_args(a: &IngestArgs) -> WorkerJob {
        WorkerJob {
            outdir: a.outdir.clone(),
            from: a.from.clone(),
            to: a.to.clone(),
            adjusted: !a.unadjusted,
            max_rps: Some(a.max_rps.to_string()),
            base_url: Some(a.base_url.clone()),
            allow_insecure_http: a.allow_insecure_http,
            request_timeout: Some(Duration::from_secs_f64(a.timeout.max(0.0))),
            retries: Some(a.retries),
            backoff: Some(Duration::from_millis(a.backoff_ms)),
            max_backoff: Some(Duration::from_millis(a.max_backoff_ms)),
            in_flight: u32::try_from(a.in_flight).ok(),
            breaker: Some(a.breaker),
            source: a.source,
            all_tickers: a.all_tickers,
            flat_endpoint: flat(a, a.flat_endpoint.clone()),
            flat_bucket: flat(a, a.flat_bucket.clone()),
            flat_prefix: flat(a, a.flat_prefix.clone()),
            refresh: a.refresh,
            parallel_days: flat(a, a.parallel_days),
        }
    }
}

/// A flat-file setting as the job holds it: only for a flat-file job (the flags have
/// defaults, which a REST job must not report as set).
fn flat<T>(a: &IngestArgs, value: T) -> Option<T> {
    (a.source == SourceKind::FlatFiles).then_some(value)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Worker {
        #[command(flatten)]
        args: IngestArgs,
    }

    #[test]
    fn a_job_written_as_flags_reads_back_the_same() {
        let job = WorkerJob {
            outdir: PathBuf::from("data/minute"),
            from: "2024-01-02".into(),
            to: "2024-12-31".into(),
            adjusted: false,
            max_rps: Some("5/min".into()),
            base_url: Some("http://127.0.0.1:8787".into()),
            allow_insecure_http: true,
            request_timeout: Some(Duration::from_millis(2500)),
            retries: Some(3),
            backoff: Some(Duration::from_millis(250)),
            max_backoff: Some(Duration::from_secs(9)),
            in_flight: Some(7),
            breaker: Some(2),
            ..WorkerJob::default()
        };
        let flat = WorkerJob {
            adjusted: false,
            source: SourceKind::FlatFiles,
            all_tickers: true,
            flat_endpoint: Some("http://127.0.0.1:9000".into()),
            flat_bucket: Some("files".into()),
            flat_prefix: Some("us_stocks_sip/minute_aggs_v1".into()),
            refresh: true,
            parallel_days: Some(3),
            ..job.clone()
        };
        for (job, list) in [
            (job, &["--tickers-file", "t.csv"][..]),
            // An all-tickers job has no list (`--tickers-file` conflicts with it).
            (flat, &[][..]),
        ] {
            let mut argv = vec!["barsmith-ingest".to_string()];
            argv.extend(list.iter().map(|a| a.to_string()));
            argv.extend(job.to_args());
            let parsed = Worker::try_parse_from(&argv).expect("the worker reads its flags");
            assert_eq!(WorkerJob::from_args(&parsed.args), job);
        }
    }

    #[test]
    fn flat_settings_need_flat_files_and_flat_files_need_unadjusted() {
        let rest = WorkerJob {
            refresh: true,
            ..WorkerJob::default()
        };
        assert!(rest.check().unwrap_err().contains("flat files only"));
        let flat = WorkerJob {
            source: SourceKind::FlatFiles,
            ..WorkerJob::default()
        };
        assert!(flat.check().unwrap_err().contains("unadjusted"));
        let ok = WorkerJob {
            adjusted: false,
            ..flat
        };
        assert_eq!(ok.check(), Ok(()));
    }

    #[test]
    fn an_s3_outdir_must_name_a_bucket_and_a_prefix() {
        let job = |outdir: &str| WorkerJob {
            outdir: PathBuf::from(outdir),
            ..WorkerJob::default()
        };
        assert_eq!(job("s3://research/bars/minute").check(), Ok(()));
        let e = job("s3://research").check().unwrap_err();
        assert!(e.contains("give s3://bucket/prefix"), "{e}");
    }
}
