//! The flat-file route of `barsmith ingest`: stage the days some ticker still misses,
//! run the worker over the staged days, then record the files in the ledger and drop
//! the staging.
//!
//! The dataset is a local folder or one on S3 ([`Dataset`]): the worker writes either
//! through the same leases and conditional coverage as for REST, and the ledger lives
//! with the dataset ([`super::ledger`]). Staging is local scratch either way
//! ([`staging_dir`]).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use futures_util::{StreamExt, TryStreamExt};
use jiff::civil::Date;

use crate::budget::default_state_dir;
use crate::calendar::DateRange;
use crate::flatfiles::ledger::{self, Entry};
use crate::flatfiles::{DayOutcome, FlatConfig, FlatFiles, Universe};
use crate::ingest::events::{Event, EventSink};
use crate::ingest::{
    ALL_TICKERS, ErrorClass, FetchError, Ingest, IngestArgs, IngestReport, SetupError, SetupKind,
};
use crate::s3::{Bucket, FLATFILES_CREDENTIAL_VARS, S3Config, S3Credentials};
use crate::store::Dataset;
use crate::store::layout::STATE_SUFFIX;

/// Tickers whose coverage is read at once when working out the days to stage.
const CONCURRENT_READS: usize = 16;

/// Where the days for `dataset` are staged: local disk in any case (a staged day is
/// read back ticker by ticker, at random offsets). For a local folder its state
/// folder's `flatfiles/staging`; for a dataset on S3 the machine's state folder
/// (`BARSMITH_STATE_DIR`), keyed by the dataset's URL:
/// `<state>/s3/<bucket>/<prefix>.barsmith/flatfiles/staging`. Only this machine's
/// re-runs reuse it; the ledger of what is in the dataset lives with the dataset.
pub(super) fn staging_dir(dataset: &Dataset) -> PathBuf {
    match dataset {
        Dataset::Local(store) => store.flatfiles_dir().join("staging"),
        Dataset::S3(ds) => {
            let at = ds.location();
            default_state_dir()
                .join("s3")
                .join(at.bucket())
                .join(format!("{}{STATE_SUFFIX}", at.prefix()))
                .join("flatfiles")
                .join("staging")
        }
    }
}

/// The flat-file source's settings from the worker's flags; credentials only from the
/// environment.
pub(super) fn config(args: &IngestArgs, dataset: &Dataset) -> Result<FlatConfig, SetupError> {
    let credentials = S3Credentials::from_env(&FLATFILES_CREDENTIAL_VARS)
        .map_err(|e| SetupError::new(SetupKind::MissingKey, e.message))?;
    let mut s3 = S3Config::new(&args.flat_endpoint, &args.flat_bucket, credentials);
    s3.timeout = std::time::Duration::from_secs_f64(args.timeout.max(0.001));
    s3.retries = args.retries;
    s3.allow_insecure_http = args.allow_insecure_http;
    let bucket = Bucket::new(s3).map_err(|e| SetupError::new(SetupKind::BadInput, e.message))?;
    let universe = if args.all_tickers {
        Universe::All
    } else {
        Universe::Tickers(HashSet::new()) // filled by the job from its tickers
    };
    Ok(FlatConfig {
        bucket,
        prefix: args.flat_prefix.clone(),
        staging: staging_dir(dataset),
        universe,
        parallel_days: args.parallel_days.max(1) as usize,
    })
}

/// One flat-file worker run.
pub(super) struct FlatJob<'a> {
    pub cfg: FlatConfig,
    pub dataset: &'a Dataset,
    pub range: DateRange,
    /// The tickers asked for; empty for every ticker in the files.
    pub tickers: &'a [String],
    pub refresh: bool,
    pub in_flight: usize,
    pub today: Date,
}

impl FlatJob<'_> {
    pub async fn run(mut self, sink: &mut dyn EventSink) -> IngestReport {
        let recorded = match super::ledger::read(self.dataset).await {
            Ok(r) => r,
            Err(e) => return self.failed(store_failure(e), sink),
        };
        if !self.tickers.is_empty() {
            self.cfg.universe = Universe::Tickers(self.tickers.iter().cloned().collect());
        }
        let need = match self.needed_days(&recorded).await {
            Ok(n) => n,
            Err(e) => return self.failed(e, sink),
        };
        let (refresh, recorded2) = (self.refresh, &recorded);
        let wanted = |d: Date, etag: &str| {
            need(d) || (refresh && recorded2.get(&d).is_some_and(|e| e.etag != etag))
        };
        let mut on_day = |day: Date, outcome: DayOutcome| sink.emit(day_event(day, outcome));
        let prepared = FlatFiles::prepare(self.cfg.clone(), self.range, &wanted, &mut on_day).await;
        let flat = match prepared {
            Ok(f) => f,
            Err(e) => return self.failed(e, sink),
        };
        let staged = entries(&flat, self.tickers.is_empty());
        let tickers = if self.tickers.is_empty() {
            flat.tickers()
        } else {
            self.tickers.to_vec()
        };
        if let Err(e) = self.withdraw_changed(&recorded, &staged, &tickers).await {
            return self.failed(e, sink);
        }
        let ingest = Ingest {
            source: &flat,
            dataset: self.dataset,
            range: self.range,
            today: self.today,
            cancel: &|| false,
            in_flight: self.in_flight,
        };
        let report = ingest.run(&tickers, sink).await;
        if report.fatal.is_none() && report.failed.is_empty() {
            self.finish(&flat, staged).await;
        }
        report
    }

    /// Which days some ticker still misses: for a ticker list, the union of their
    /// missing ranges; for every ticker in the files, the days not in the ledger.
    async fn needed_days(
        &self,
        recorded: &BTreeMap<Date, Entry>,
    ) -> Result<Box<dyn Fn(Date) -> bool + Sync + '_>, FetchError> {
        if self.tickers.is_empty() {
            // Only days ingested for every ticker: a list's days miss the others.
            let done: HashSet<Date> = recorded
                .iter()
                .filter(|(_, e)| e.all_tickers)
                .map(|(d, _)| *d)
                .collect();
            return Ok(Box::new(move |d| !done.contains(&d)));
        }
        let per_ticker: Vec<Vec<DateRange>> = futures_util::stream::iter(self.tickers)
            .map(|t| self.dataset.missing(t, self.range))
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await
            .map_err(store_failure)?;
        let missing = crate::store::coverage::merge_ranges(per_ticker.concat());
        Ok(Box::new(move |d| missing.iter().any(|r| r.contains(d))))
    }

    /// With `--refresh`, forgets that the republished days are complete, so the worker
    /// fetches them again from the new files.
    async fn withdraw_changed(
        &self,
        recorded: &BTreeMap<Date, Entry>,
        staged: &BTreeMap<Date, Entry>,
        tickers: &[String],
    ) -> Result<(), FetchError> {
        let changed = ledger::changed(recorded, staged);
        if !self.refresh || changed.is_empty() {
            return Ok(());
        }
        tracing::info!(
            days = changed.len(),
            "republished flat files: ingesting them again"
        );
        let days: Vec<DateRange> = changed
            .iter()
            .map(|&d| DateRange { from: d, to: d })
            .collect();
        for t in tickers {
            self.dataset
                .withdraw(t, &days)
                .await
                .map_err(store_failure)?;
        }
        Ok(())
    }

    /// Records the ingested files and drops their staging (a failed run keeps it for
    /// the retry, which reuses what has the same ETag).
    async fn finish(&self, flat: &FlatFiles, staged: BTreeMap<Date, Entry>) {
        let days: Vec<Date> = staged.keys().copied().collect();
        if let Err(e) = super::ledger::record(self.dataset, staged).await {
            tracing::warn!("cannot record the ingested flat files: {e}");
            return;
        }
        for day in days {
            let _ =
                std::fs::remove_file(crate::flatfiles::stage::stage_path(&self.cfg.staging, day));
        }
        tracing::debug!(last_published = ?flat.last_published(), "flat files recorded");
    }

    /// A failure before any ticker: fatal for the run (credentials, listing refused),
    /// or every ticker failed with it (retryable: the batch is tried again).
    fn failed(&self, error: FetchError, sink: &mut dyn EventSink) -> IngestReport {
        tracing::error!("{}", error.message);
        let mut report = IngestReport::default();
        if error.class == ErrorClass::Run {
            let kind = SetupKind::Source;
            sink.emit(Event::SetupFailed {
                kind,
                message: error.message.clone(),
                exit_code: kind.exit_code(),
            });
            report.fatal = Some(error);
            return report;
        }
        for t in self.tickers {
            sink.emit(Event::TickerFailed {
                ticker: t.clone(),
                error: error.clone(),
            });
            report.failed.push((t.clone(), error.clone()));
        }
        // Every ticker of the files, none known yet: one failure stands for them all,
        // so the batch runner sees a retryable batch and not an empty one.
        if self.tickers.is_empty() {
            sink.emit(Event::TickerFailed {
                ticker: ALL_TICKERS.into(),
                error: error.clone(),
            });
            report.failed.push((ALL_TICKERS.into(), error));
        }
        report
    }
}

fn entries(flat: &FlatFiles, all_tickers: bool) -> BTreeMap<Date, Entry> {
    flat.etags()
        .into_iter()
        .map(|(d, (key, etag))| {
            let entry = Entry {
                key,
                etag,
                all_tickers,
            };
            (d, entry)
        })
        .collect()
}

fn day_event(day: Date, outcome: DayOutcome) -> Event {
    let (outcome, rows) = match outcome {
        DayOutcome::Staged { rows } => ("staged", rows),
        DayOutcome::Reused { rows } => ("reused", rows),
        DayOutcome::Forbidden => ("forbidden", 0),
    };
    Event::DayFile {
        day: day.to_string(),
        outcome: outcome.into(),
        rows,
    }
}

fn store_failure(e: impl std::fmt::Display) -> FetchError {
    FetchError::new(crate::ingest::ErrorKind::Store, None, e.to_string())
}
