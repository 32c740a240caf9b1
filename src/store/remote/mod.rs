//! A dataset on S3: the local store's layout and guarantees on an S3-compatible object
//! store, for `barsmith ingest --outdir s3://bucket/prefix` (the worker writes through
//! [`crate::store::Dataset`]) and `barsmith status s3://...` (read through
//! `inspect`: one listing, footers and timestamp chunks by ranged GETs).
//!
//! Same files, same merge: data objects `prefix/ticker=T/year=Y/T_Y.parquet` hold the
//! bytes the local store would write for the same pieces (the same encoder, footer
//! metadata included, and the same merge of a piece into its year, `store::piece`);
//! state lives under the sibling `prefix.barsmith/` ([`S3Location`]).
//!
//! S3 has no rename and no lock, so the local mechanisms are replaced:
//!
//! - **Complete objects only.** Each data object is written by one PUT of the whole
//!   file (a ticker-year is a few MB); S3 shows a PUT all or nothing.
//! - **Identity** (`dataset.json`) is created with a create-only PUT (`If-None-Match:
//!   *`); every later open reads it and refuses another identity, as locally.
//! - **One writer per ticker.** Writing needs a [`TickerWriter`], which exists only
//!   while holding the ticker's lease (`prefix.barsmith/locks/T.json`, see [`lease`]):
//!   created by a create-only PUT, renewed and taken over only with `If-Match` on the
//!   ETag seen, released by a conditional PUT. Two writers never both hold it.
//! - **Conditional data writes too.** A data object is replaced only with `If-Match`
//!   on the ETag read for the merge (create-only when there was none). A lease can run
//!   out while a PUT is in flight; the condition still makes sure no other writer's
//!   bars are lost: the loser reads again and merges again, or stops (lease lost).
//! - **Coverage after data**, as locally: `coverage/T.json` is read, changed and
//!   written back with `If-Match` on the ETag read (create-only when absent); a lost
//!   race is read again, merged and retried a bounded number of times, never
//!   overwritten blindly. A file's facts are recorded only if the data object still
//!   has the ETag this writer gave it (else a later writer replaced it and records its
//!   own).
//!
//! What a crash leaves: a data object either old or new, never partial; coverage that
//! claims only what its data holds (a crash between the data PUT and the coverage PUT
//! leaves the new days unclaimed, so a re-run fetches and writes them again, exactly);
//! and a lease that expires after its ttl.
//!
//! Two writes are not fenced by an ETag, as object_store has no conditional DELETE: a
//! piece that empties its year deletes the year's object, and `status --repair`
//! deletes a damaged object once copied into `quarantine/` (after checking its ETag is
//! still the one verified); both under the ticker's lease, checked just before.
//!
//! Encoding and decoding run on the calling task (a ticker-year takes well under a
//! second); leases renew on their own task, with margins far above that.

mod inspect;
pub mod lease;
mod location;
mod writer;

use std::path::Path;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

use crate::bars::Bars;
use crate::calendar::DateRange;
use crate::s3::{Bucket, S3ErrorKind};
use crate::store::coverage::{self, Record};
use crate::store::decode::{StoredFile, read_bytes};
use crate::store::error::StoreError;
use crate::store::identity::{self, DatasetIdentity};
use crate::store::{check_ticker, file_identity, piece};

pub(crate) use inspect::Listing;
pub use lease::LeaseConfig;
pub use location::S3Location;
pub(crate) use writer::backoff;
pub use writer::{TickerWriter, WrittenObject};

/// Requests in flight at once when reading many small objects (coverage records,
/// footers): S3 answers each in tens of ms, so one at a time would be latency-bound.
const CONCURRENT_READS: usize = 16;

/// A dataset on S3 (see the module comment). Cheap to clone; safe to share between
/// tasks; any number of processes may open the same dataset.
#[derive(Debug, Clone)]
pub struct S3Dataset {
    bucket: Bucket,
    location: S3Location,
    /// `None` for a read-only dataset never written.
    identity: Option<DatasetIdentity>,
    writable: bool,
    /// `host/pid/random`: names this handle's leases.
    owner: String,
    leases: LeaseConfig,
}

impl S3Dataset {
    /// Opens the dataset at `location` for writing bars of `identity`: records the
    /// identity on first open (create-only, so of concurrent first opens one records
    /// and the others compare) and refuses a different one later, or data objects of
    /// another identity left without state. `bucket` must be `location`'s bucket;
    /// `leases` must pass [`LeaseConfig::check`].
    pub async fn open(
        bucket: Bucket,
        location: S3Location,
        identity: &DatasetIdentity,
        leases: LeaseConfig,
    ) -> Result<S3Dataset, StoreError> {
        check_bucket(&bucket, &location)?;
        leases.check()?;
        let mut ds = S3Dataset {
            bucket,
            location,
            identity: Some(identity.clone()),
            writable: true,
            owner: owner_id(),
            leases,
        };
        let recorded = match ds.read_identity().await? {
            Some(recorded) => recorded,
            None => {
                ds.check_existing_objects(identity).await?;
                ds.record_identity(identity).await?
            }
        };
        let path = ds.location.path(&ds.location.dataset_key());
        crate::store::identity::require(&recorded, identity, &path)?;
        ds.identity = Some(recorded);
        Ok(ds)
    }

    /// Opens the dataset for coverage queries and reads; writes nothing. A dataset
    /// never written reads as empty.
    pub async fn open_read_only(
        bucket: Bucket,
        location: S3Location,
    ) -> Result<S3Dataset, StoreError> {
        check_bucket(&bucket, &location)?;
        let mut ds = S3Dataset {
            bucket,
            location,
            identity: None,
            writable: false,
            owner: owner_id(),
            leases: LeaseConfig::default(),
        };
        ds.identity = ds.read_identity().await?;
        Ok(ds)
    }

    /// Where the dataset lives.
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// The dataset identity, if recorded.
    pub fn identity(&self) -> Option<&DatasetIdentity> {
        self.identity.as_ref()
    }

    /// Takes the write lease of `ticker`, waiting (up to [`LeaseConfig::wait`]) while
    /// another writer holds it: the only way to get a [`TickerWriter`]. Call it within
    /// a Tokio runtime: the lease is renewed by a task spawned on it.
    pub async fn lease(&self, ticker: &str) -> Result<TickerWriter, StoreError> {
        if !self.writable {
            return Err(StoreError::ReadOnly {
                path: self.location.path(self.location.prefix()),
            });
        }
        check_ticker(ticker)?;
        let key = self.location.lease_key(ticker);
        let lease = lease::acquire(&self.bucket, key, ticker, &self.owner, &self.leases).await?;
        Ok(TickerWriter::new(self.clone(), ticker, lease))
    }

    /// The parts of `range` not known complete for `ticker` (by
    /// [`S3Dataset::checked_coverage`]), oldest first.
    pub async fn missing(
        &self,
        ticker: &str,
        range: DateRange,
    ) -> Result<Vec<DateRange>, StoreError> {
        let (complete, _, _) = self.checked_coverage(ticker).await?;
        Ok(coverage::subtract(range, &complete))
    }

    /// The tickers (in the given order) whose coverage (by
    /// [`S3Dataset::checked_coverage`]) spans all of `range`.
    pub async fn completed_tickers(
        &self,
        tickers: &[String],
        range: DateRange,
    ) -> Result<Vec<String>, StoreError> {
        let checked: Vec<_> = futures_util::stream::iter(tickers)
            .map(|t| self.checked_coverage(t))
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await?;
        Ok(tickers
            .iter()
            .zip(checked)
            .filter(|(_, (complete, _, _))| coverage::spans(complete, range))
            .map(|(t, _)| t.clone())
            .collect())
    }

    /// The stored bars of `ticker` whose New York date lies in `range`, sorted.
    pub async fn read_bars(&self, ticker: &str, range: DateRange) -> Result<Bars, StoreError> {
        check_ticker(ticker)?;
        let mut out = Bars::default();
        for piece in range.split_by_year() {
            let key = self.location.data_key(ticker, piece.from.year());
            if let Some((stored, _)) = self.read_data(&key).await? {
                out.extend(&piece::bars_in(&stored.bars, piece));
            }
        }
        Ok(out)
    }

    /// The tickers with a coverage record, sorted (one listing of the coverage prefix).
    pub async fn stored_tickers(&self) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{}coverage/", self.location.state_prefix());
        let listed = self.bucket.list(&prefix).await?;
        let mut out: Vec<String> = listed
            .iter()
            .filter_map(|o| o.key.strip_prefix(&prefix)?.strip_suffix(".json"))
            .filter(|t| check_ticker(t).is_ok())
            .map(str::to_string)
            .collect();
        out.sort();
        Ok(out)
    }

    /// The state object `name` (`prefix.barsmith/<name>`, see
    /// [`S3Location::state_key`]) and its ETag; `None` when there is none.
    pub async fn read_state(
        &self,
        name: &str,
    ) -> Result<Option<(Bytes, Option<String>)>, StoreError> {
        self.get_optional(&self.location.state_key(name)).await
    }

    /// Writes the state object `name` only if it is still as read: `expected` is the
    /// ETag read, `None` when there was none. `Ok(false)` when another writer changed
    /// it first (read it again, merge, retry).
    pub async fn write_state(
        &self,
        name: &str,
        body: Bytes,
        expected: Option<&str>,
    ) -> Result<bool, StoreError> {
        if !self.writable {
            return Err(StoreError::ReadOnly {
                path: self.location.path(&self.location.state_prefix()),
            });
        }
        let key = self.location.state_key(name);
        match self.bucket.put_expecting(&key, body, expected).await {
            Ok(_) => Ok(true),
            Err(e) if writer::lost_race(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The coverage record of `ticker` (empty when there is none).
    pub async fn coverage(&self, ticker: &str) -> Result<Record, StoreError> {
        check_ticker(ticker)?;
        Ok(self.coverage_with_etag(ticker).await?.0)
    }

    /// The coverage record of `ticker` and its ETag (`None`: no record yet).
    async fn coverage_with_etag(
        &self,
        ticker: &str,
    ) -> Result<(Record, Option<String>), StoreError> {
        let key = self.location.coverage_key(ticker);
        match self.get_optional(&key).await? {
            Some((body, etag)) => {
                let record = coverage::parse_record(&body, &self.location.path(&key))?;
                Ok((record, etag))
            }
            None => Ok((Record::default(), None)),
        }
    }

    /// The data object at `key`, decoded, and its ETag; `None` when absent.
    async fn read_data(
        &self,
        key: &str,
    ) -> Result<Option<(StoredFile, Option<String>)>, StoreError> {
        let Some((body, etag)) = self.get_optional(key).await? else {
            return Ok(None);
        };
        let stored = read_bytes(body, &self.location.path(key))?;
        Ok(Some((stored, etag)))
    }

    /// The body and ETag of `key`, `None` when there is no such object.
    async fn get_optional(&self, key: &str) -> Result<Option<(Bytes, Option<String>)>, StoreError> {
        match self.bucket.get(key).await {
            Ok(obj) => Ok(Some((obj.body, obj.info.etag))),
            Err(e) if e.kind == S3ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn read_identity(&self) -> Result<Option<DatasetIdentity>, StoreError> {
        let key = self.location.dataset_key();
        match self.get_optional(&key).await? {
            Some((body, _)) => Ok(Some(identity::parse(&body, &self.location.path(&key))?)),
            None => Ok(None),
        }
    }

    /// Creates `dataset.json` unless a concurrent opener did first; either way returns
    /// what the dataset now holds.
    async fn record_identity(
        &self,
        identity: &DatasetIdentity,
    ) -> Result<DatasetIdentity, StoreError> {
        let key = self.location.dataset_key();
        let json = Bytes::from(identity::encode_new(identity)?);
        match self.bucket.put_if_absent(&key, json).await {
            Ok(_) => Ok(identity.clone()),
            Err(e) if e.kind == S3ErrorKind::AlreadyExists => self
                .read_identity()
                .await?
                .ok_or_else(|| StoreError::Corrupt {
                    path: self.location.path(&key),
                    reason: "it vanished while being read".into(),
                }),
            Err(e) => Err(e.into()),
        }
    }

    /// On first open of a dataset without `dataset.json`, refuses `identity` if a data
    /// object left there (say, after the state was deleted) says otherwise.
    async fn check_existing_objects(&self, identity: &DatasetIdentity) -> Result<(), StoreError> {
        let listed = self.bucket.list(&self.location.data_prefix()).await?;
        let Some(first) = listed.iter().find(|o| o.key.ends_with(".parquet")) else {
            return Ok(());
        };
        let Some((stored, _)) = self.read_data(&first.key).await? else {
            return Ok(());
        };
        let path = self.location.path(&first.key);
        let found = file_identity(&stored.metadata, &path)?;
        crate::store::identity::require(&found, identity, &path)
    }

    /// Refuses data of another identity than the dataset's, naming `path`.
    fn check_identity(&self, other: &DatasetIdentity, path: &Path) -> Result<(), StoreError> {
        match &self.identity {
            Some(mine) => crate::store::identity::require(mine, other, path),
            None => Ok(()),
        }
    }
}

fn check_bucket(bucket: &Bucket, location: &S3Location) -> Result<(), StoreError> {
    if bucket.name() == location.bucket() {
        return Ok(());
    }
    Err(StoreError::Invalid(format!(
        "the S3 client is for bucket {} but the dataset {location} is in bucket {}",
        bucket.name(),
        location.bucket()
    )))
}

/// `host/pid/random`: unique per dataset handle, readable in a lease.
fn owner_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "unknown-host".into()
    } else {
        host
    };
    format!("{host}/{}/{:08x}", std::process::id(), fastrand::u32(..))
}
