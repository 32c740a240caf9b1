//! [`Dataset`]: the one interface the ingest worker writes through, over a local folder
//! ([`Store`]) or a dataset on S3 ([`S3Dataset`]), so the worker names neither.
//!
//! Where a dataset lives is parsed once from the `--outdir` text into a
//! [`DatasetLocation`]: `s3://bucket/prefix` is S3, anything else a local folder.
//!
//! Writing a ticker goes through a [`TickerSession`] from [`Dataset::begin`]. Locally a
//! session is free (each write takes the per-ticker file lock itself, as before). On S3
//! it holds the ticker's write lease ([`S3Dataset::lease`]) from `begin` until
//! [`TickerSession::finish`]: the worker waits for another writer's lease only as long
//! as a dead writer's lease takes to go stale ([`worker_leases`]), so a live writer
//! holding the ticker makes the ticker fail with a retryable error instead of stalling
//! the run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use jiff::civil::Date;

use crate::bars::Bars;
use crate::calendar::DateRange;
use crate::s3::{Bucket, S3Config};
use crate::store::error::StoreError;
use crate::store::identity::{DatasetIdentity, Provenance};
use crate::store::remote::{LeaseConfig, S3Dataset, S3Location, TickerWriter};
use crate::store::{Finding, Store};

/// The environment variable setting the ttl of the S3 write leases a worker takes, in
/// seconds (default 60). A worker killed while holding a lease blocks its tickers this
/// long; shorter means more renewal requests.
pub const LEASE_TTL_ENV: &str = "BARSMITH_S3_LEASE_TTL";

/// Where a dataset lives, as `--outdir` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetLocation {
    /// A local folder (the data root).
    Local(PathBuf),
    /// A bucket and prefix on an S3-compatible store.
    S3(S3Location),
}

impl DatasetLocation {
    /// `s3://…` is a dataset on S3 (checked by [`S3Location::parse`]); any other text
    /// is a local folder.
    pub fn parse(outdir: &Path) -> Result<DatasetLocation, StoreError> {
        let text = outdir.to_string_lossy();
        if text.trim_start().to_ascii_lowercase().starts_with("s3://") {
            return Ok(DatasetLocation::S3(S3Location::parse(&text)?));
        }
        Ok(DatasetLocation::Local(outdir.to_path_buf()))
    }
}

/// An open dataset the worker writes to.
#[derive(Debug, Clone)]
pub enum Dataset {
    /// A local folder.
    Local(Store),
    /// A dataset on S3 (boxed: it is three times a local store's size).
    S3(Box<S3Dataset>),
}

impl From<Store> for Dataset {
    fn from(store: Store) -> Dataset {
        Dataset::Local(store)
    }
}

impl Dataset {
    /// Opens the dataset on S3 at `location` for writing bars of `identity`: the bucket
    /// as the standard AWS variables describe it ([`connect`]), leases timed by
    /// [`worker_leases`].
    pub async fn open_s3(
        location: S3Location,
        identity: &DatasetIdentity,
    ) -> Result<Dataset, StoreError> {
        Ok(Dataset::S3(Box::new(
            open_s3_for_writing(location, identity).await?,
        )))
    }

    /// The ranges of `ticker` known complete, with what was found damaged: the files
    /// (objects) are checked against their records and damaged years quarantined, so
    /// they are fetched again ([`Store::reconcile`]; on S3 from one listing of the
    /// ticker's objects, [`S3Dataset::checked_coverage`], under the ticker's lease).
    pub async fn reconcile(
        &self,
        ticker: &str,
    ) -> Result<(Vec<DateRange>, Vec<Finding>), StoreError> {
        let ds = match self {
            Dataset::Local(store) => return store.reconcile(ticker),
            Dataset::S3(ds) => ds,
        };
        let (complete, mut findings, listing) = ds.checked_coverage(ticker).await?;
        if findings.is_empty() {
            return Ok((complete, findings));
        }
        let writer = ds.lease(ticker).await?;
        let mut moved = Ok(());
        for f in &mut findings {
            let etag = ds
                .object_of(&listing, ticker, f.year)
                .map(|o| o.etag.clone().unwrap_or_default());
            moved = writer.quarantine(f, etag.as_deref()).await;
            if moved.is_err() {
                break;
            }
        }
        writer.release().await?;
        moved.map(|()| (complete, findings))
    }

    /// The parts of `range` not known complete for `ticker`, oldest first.
    pub async fn missing(
        &self,
        ticker: &str,
        range: DateRange,
    ) -> Result<Vec<DateRange>, StoreError> {
        match self {
            Dataset::Local(store) => store.missing(ticker, range),
            Dataset::S3(ds) => ds.missing(ticker, range).await,
        }
    }

    /// Forgets that the days of `ranges` (sorted, disjoint) are complete for `ticker`;
    /// on S3 under the ticker's write lease.
    pub async fn withdraw(&self, ticker: &str, ranges: &[DateRange]) -> Result<(), StoreError> {
        match self {
            Dataset::Local(store) => store.withdraw(ticker, ranges),
            Dataset::S3(ds) => {
                let writer = ds.lease(ticker).await?;
                let done = writer.withdraw(ranges).await;
                writer.release().await?;
                done
            }
        }
    }

    /// Starts writing `ticker`: on S3, takes its write lease (see the module comment).
    pub async fn begin(&self, ticker: &str) -> Result<TickerSession, StoreError> {
        match self {
            Dataset::Local(store) => Ok(TickerSession::Local {
                store: store.clone(),
                ticker: ticker.to_string(),
            }),
            Dataset::S3(ds) => Ok(TickerSession::S3(Box::new(ds.lease(ticker).await?))),
        }
    }

    /// True when `ticker` has a data file (object) for some year in `years`.
    pub async fn has_data(
        &self,
        ticker: &str,
        years: std::ops::RangeInclusive<i16>,
    ) -> Result<bool, StoreError> {
        match self {
            Dataset::Local(store) => Ok(years
                .into_iter()
                .any(|y| store.file_path(ticker, y).exists())),
            Dataset::S3(ds) => {
                let record = ds.coverage(ticker).await?;
                Ok(years.into_iter().any(|y| record.files.contains_key(&y)))
            }
        }
    }
}

/// The writes of one ticker; on S3, holds the ticker's lease until
/// [`TickerSession::finish`].
#[derive(Debug)]
pub enum TickerSession {
    /// A local folder: each write takes the ticker's file lock.
    Local {
        /// The store written.
        store: Store,
        /// The ticker written.
        ticker: String,
    },
    /// A dataset on S3: the lease holder (boxed: it is large).
    S3(Box<TickerWriter>),
}

impl TickerSession {
    /// The ranges known complete now. On S3 it is read again after taking the lease,
    /// so a writer that waited for it sees what the previous holder completed;
    /// `None` locally, where the worker's first read stands.
    pub async fn complete_after_lease(&self) -> Result<Option<Vec<DateRange>>, StoreError> {
        match self {
            TickerSession::Local { .. } => Ok(None),
            TickerSession::S3(w) => {
                let record = w.dataset().coverage(w.ticker()).await?;
                Ok(Some(record.complete))
            }
        }
    }

    /// Writes the days of `complete` of one piece (inside one year) and then records
    /// them complete: the coverage always follows the data. Local writes run on the
    /// blocking pool, so Parquet encoding and fsyncs never hold up the requests of the
    /// other tickers in flight. True when a file (object) now holds the year.
    pub async fn write(
        &self,
        piece: DateRange,
        complete: Vec<DateRange>,
        bars: Bars,
        provenance: Provenance,
        today: Date,
    ) -> Result<bool, StoreError> {
        match self {
            TickerSession::Local { store, ticker } => {
                let (store, ticker) = (store.clone(), ticker.clone());
                let job = move || -> Result<bool, StoreError> {
                    let written = store.write_and_mark(
                        &ticker,
                        piece,
                        &complete,
                        bars,
                        &provenance,
                        today,
                    )?;
                    Ok(written.path.is_some())
                };
                tokio::task::spawn_blocking(job)
                    .await
                    .map_err(|e| StoreError::Invalid(format!("the writer task failed: {e}")))?
            }
            TickerSession::S3(w) => {
                let written = w.write_days(piece, &complete, &bars, &provenance).await?;
                w.mark_written(&complete, today, &written).await?;
                Ok(written.key.is_some())
            }
        }
    }

    /// Ends the writes: on S3, releases the lease so the next writer need not wait.
    pub async fn finish(self) -> Result<(), StoreError> {
        match self {
            TickerSession::Local { .. } => Ok(()),
            TickerSession::S3(w) => w.release().await,
        }
    }
}

/// [`Dataset::open_s3`] as the dataset itself.
pub async fn open_s3_for_writing(
    location: S3Location,
    identity: &DatasetIdentity,
) -> Result<S3Dataset, StoreError> {
    let leases = worker_leases()?;
    let bucket = connect(&location).await?;
    S3Dataset::open(bucket, location, identity, leases).await
}

/// Opens the dataset on S3 at `location` for reads only, the bucket as for
/// [`Dataset::open_s3`].
pub async fn open_s3_read_only(location: S3Location) -> Result<S3Dataset, StoreError> {
    let bucket = connect(&location).await?;
    S3Dataset::open_read_only(bucket, location).await
}

/// The bucket of `location` as the standard AWS variables describe it
/// ([`S3Config::dataset_from_env`]: never from arguments; plain http only to
/// loopback), once one quick request ([`Bucket::probe`]) has shown its endpoint
/// answers: a wrong endpoint then fails in seconds, naming it, rather than after every
/// retry of the first real request. Each endpoint and bucket is probed once per process.
pub async fn connect(location: &S3Location) -> Result<Bucket, StoreError> {
    static PROBED: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());
    let cfg = S3Config::dataset_from_env(location.bucket())?;
    let key = (cfg.endpoint.clone(), cfg.bucket.clone());
    let probed = |set: &BTreeSet<_>| set.contains(&key);
    if !probed(&PROBED.lock().unwrap_or_else(|e| e.into_inner())) {
        Bucket::probe(&cfg, &location.state_prefix()).await?;
        PROBED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone());
    }
    Ok(Bucket::new(cfg)?)
}

/// For callers without a runtime (the batch runner, before any worker): when `outdir`
/// names a dataset on S3, [`connect`]s to it, so a wrong endpoint or key stops the run
/// once, with one line. A local folder passes.
pub fn check_reachable(outdir: &Path) -> Result<(), StoreError> {
    let DatasetLocation::S3(location) = DatasetLocation::parse(outdir)? else {
        return Ok(());
    };
    block_on(move || async move { connect(&location).await.map(drop) })?
}

/// The runtime a writer of the dataset at `location` runs on: one thread for a local
/// folder; for a dataset on S3 a second one, which keeps renewing the write leases
/// while the first encodes a ticker-year (a lease not renewed within its ttl is lost,
/// and the ticker with it).
pub fn writer_runtime(location: &DatasetLocation) -> std::io::Result<tokio::runtime::Runtime> {
    match location {
        DatasetLocation::S3(_) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build(),
        DatasetLocation::Local(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
}

/// Runs `fut` on a runtime of its own, on a thread of its own: synchronous callers
/// (script primitives) may then reach a dataset on S3 whether or not they already run
/// inside a runtime (where a nested `block_on` would panic).
/// `make` builds the future on that thread, so the future itself need not be `Send`.
pub fn block_on<T, F, Fut>(make: F) -> Result<T, StoreError>
where
    T: Send,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = T>,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| StoreError::Invalid(format!("cannot start a runtime: {e}")))?;
                Ok(runtime.block_on(make()))
            })
            .join()
            .map_err(|_| StoreError::Invalid("the S3 reader thread failed".into()))?
    })
}

/// The lease timing of a worker: the ttl from [`LEASE_TTL_ENV`] (default 60 s), and a
/// wait just longer than the ttl, so a lease left by a killed writer (unchanged for a
/// ttl) is taken over while a live writer's lease fails the ticker.
pub fn worker_leases() -> Result<LeaseConfig, StoreError> {
    let mut cfg = LeaseConfig::default();
    if let Ok(text) = std::env::var(LEASE_TTL_ENV) {
        let secs = text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "{LEASE_TTL_ENV}={text:?} is not a number of seconds, e.g. 60"
                ))
            })?;
        cfg.ttl = Duration::from_secs_f64(secs.min(86_400.0));
    }
    cfg.poll = (cfg.ttl / 4).min(Duration::from_secs(2));
    cfg.wait = cfg.ttl + 2 * cfg.poll;
    cfg.check()?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_are_s3_and_the_rest_local() {
        let s3 = DatasetLocation::parse(Path::new("s3://research/bars/minute")).unwrap();
        assert_eq!(
            s3,
            DatasetLocation::S3(S3Location::parse("s3://research/bars/minute").unwrap())
        );
        let local = DatasetLocation::parse(Path::new("data/minute")).unwrap();
        assert_eq!(local, DatasetLocation::Local(PathBuf::from("data/minute")));
        let e = DatasetLocation::parse(Path::new("s3://research")).unwrap_err();
        assert!(e.to_string().contains("give s3://bucket/prefix"), "{e}");
    }
}
