//! [`TickerWriter`]: the writes of one ticker of a dataset on S3, possible only while
//! holding the ticker's lease. Every write is a conditional PUT on the ETag read (see
//! the module comment of [`super`]).

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use jiff::civil::Date;

use crate::bars::Bars;
use crate::calendar::DateRange;
use crate::s3::{S3Error, S3ErrorKind};
use crate::store::coverage::{self, FileFacts, Record};
use crate::store::encode;
use crate::store::error::StoreError;
use crate::store::identity::Provenance;
use crate::store::{Finding, file_identity, piece};

use super::S3Dataset;
use super::lease::Lease;

/// Attempts of one read-modify-write before giving up with [`StoreError::Contended`].
/// Each failed attempt means another write succeeded in between, so this bounds how
/// many concurrent writes one write waits behind.
const MAX_ATTEMPTS: u32 = 16;

/// What [`TickerWriter::write_days`] left in S3 for its piece's year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenObject {
    /// The calendar year of the piece.
    pub year: i16,
    /// The year's data object, or `None` when the year holds no bars (no object).
    pub key: Option<String>,
    /// The ETag of the object as written.
    pub etag: Option<String>,
    /// The object's size, rows and span, for the coverage record.
    pub facts: FileFacts,
}

/// The writer of one ticker: holds the ticker's write lease (renewed in the background)
/// from [`S3Dataset::lease`] until [`TickerWriter::release`]. Dropping it without
/// releasing stops the renewals; the lease then ends after its ttl, as after a crash.
#[derive(Debug)]
pub struct TickerWriter {
    ds: S3Dataset,
    ticker: String,
    lease: Lease,
}

impl TickerWriter {
    pub(super) fn new(ds: S3Dataset, ticker: &str, lease: Lease) -> TickerWriter {
        TickerWriter {
            ds,
            ticker: ticker.to_string(),
            lease,
        }
    }

    /// The ticker written.
    pub fn ticker(&self) -> &str {
        &self.ticker
    }

    /// The dataset written.
    pub fn dataset(&self) -> &S3Dataset {
        &self.ds
    }

    /// The owner id recorded in the lease (`host/pid/random`).
    pub fn owner(&self) -> &str {
        self.lease.owner()
    }

    /// Ok while the lease is held: [`StoreError::LeaseLost`] once it ended.
    pub fn check_lease(&self) -> Result<(), StoreError> {
        self.lease.check()
    }

    /// Replaces the bars of `range` (inside one calendar year) in the (ticker, year)
    /// object with `bars`, keeping the object's bars outside `range`: as
    /// [`crate::store::Store::write_piece`].
    pub async fn write_piece(
        &self,
        range: DateRange,
        bars: &Bars,
        provenance: &Provenance,
    ) -> Result<WrittenObject, StoreError> {
        self.write_days(range, &[range], bars, provenance).await
    }

    /// As [`crate::store::Store::write_days`]: only the days of `complete` are
    /// replaced. The object is read, merged and written back with `If-Match` on the
    /// ETag read (create-only when absent); if another write came between, it is read
    /// and merged again.
    pub async fn write_days(
        &self,
        range: DateRange,
        complete: &[DateRange],
        bars: &Bars,
        provenance: &Provenance,
    ) -> Result<WrittenObject, StoreError> {
        let ds = &self.ds;
        let year = piece::year_of(&self.ticker, range)?;
        let dataset = ds.location.path(&ds.location.dataset_key());
        ds.check_identity(&provenance.identity(), &dataset)?;
        let incoming = piece::incoming(&self.ticker, Cow::Borrowed(bars), range);
        let key = ds.location.data_key(&self.ticker, year);
        let path = ds.location.path(&key);
        for attempt in 1..=MAX_ATTEMPTS {
            self.lease.check()?;
            let (stored, etag) = match ds.read_data(&key).await? {
                Some((stored, etag)) => {
                    ds.check_identity(&file_identity(&stored.metadata, &path)?, &path)?;
                    (Some(stored), etag)
                }
                None => (None, None),
            };
            let mut provenance = provenance.clone();
            let mine = Cow::Borrowed(incoming.as_ref());
            let merged = piece::merge(stored.as_ref(), mine, range, complete, &mut provenance);
            if merged.is_empty() {
                if stored.is_some() {
                    self.lease.check()?;
                    ds.bucket.delete(&key).await?;
                }
                return Ok(WrittenObject {
                    year,
                    key: None,
                    etag: None,
                    facts: FileFacts::default(),
                });
            }
            let mut body = Vec::new();
            let encoded = encode::encode_to(
                &self.ticker,
                Cow::Borrowed(&merged),
                &provenance,
                &mut body,
                &path,
            )?;
            let facts = FileFacts::of(&merged.timestamp, encoded.bytes as u64);
            self.lease.check()?;
            match ds
                .bucket
                .put_expecting(&key, Bytes::from(body), etag.as_deref())
                .await
            {
                Ok(info) => {
                    return Ok(WrittenObject {
                        year,
                        key: Some(key),
                        etag: info.etag,
                        facts,
                    });
                }
                Err(e) if lost_race(&e) => {
                    tracing::warn!(ticker = %self.ticker, year, "data object changed since read; merging again");
                    backoff(attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Contended {
            key: ds.location.url(&key),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Records `range` complete, clipped to the days before `today`: as
    /// [`crate::store::Store::mark_complete`].
    pub async fn mark_complete(&self, range: DateRange, today: Date) -> Result<(), StoreError> {
        if range.before(today).is_none() {
            return Ok(());
        }
        self.update_coverage(None, |record, _| record.claim(&[range], today, None))
            .await
    }

    /// Records the ranges of `complete` (before `today`) complete and the facts of the
    /// object `written` left: as [`crate::store::Store::mark_written`]. The facts are
    /// recorded only while the object is still the one written: a later writer's
    /// object gets its facts from that writer.
    pub async fn mark_written(
        &self,
        complete: &[DateRange],
        today: Date,
        written: &WrittenObject,
    ) -> Result<(), StoreError> {
        self.update_coverage(Some(written), |record, file| {
            record.claim(complete, today, file)
        })
        .await
    }

    /// Forgets that the days of `ranges` (sorted, disjoint) are complete: as
    /// [`crate::store::Store::withdraw`].
    pub async fn withdraw(&self, ranges: &[DateRange]) -> Result<(), StoreError> {
        self.update_coverage(None, |record, _| {
            let old = record.complete.clone();
            record.withdraw(ranges);
            record.complete != old
        })
        .await
    }

    /// As [`crate::store::Store::quarantine`]: copies the year's object into the state
    /// prefix's `quarantine/` (nothing is deleted unread), removes it from the data,
    /// then withdraws every claim about the year, so the next run fetches it again.
    /// `listed_etag` is the ETag the object was checked at: an object replaced since
    /// (by a later write, which records its own facts) is left alone, as is its record.
    /// A crash before the withdrawal leaves a claim without an object, which the quick
    /// check (every `status`) names again.
    pub async fn quarantine(
        &self,
        finding: &mut Finding,
        listed_etag: Option<&str>,
    ) -> Result<(), StoreError> {
        let ds = &self.ds;
        let year = finding.year;
        let key = ds.location.data_key(&self.ticker, year);
        if let Some(etag) = listed_etag {
            let current = match ds.bucket.head(&key).await {
                Ok(info) => info.etag,
                Err(e) if e.kind == S3ErrorKind::NotFound => None,
                Err(e) => return Err(e.into()),
            };
            if current.as_deref() != Some(etag) {
                tracing::warn!(ticker = %self.ticker, year, "the object changed since it was checked; left as it is");
                return Ok(());
            }
            let stamp = jiff::Timestamp::now()
                .strftime("%Y%m%dT%H%M%S%.fZ")
                .to_string();
            let dest = ds.location.quarantine_key(&self.ticker, year, &stamp);
            self.lease.check()?;
            ds.bucket.copy(&key, &dest).await?;
            self.lease.check()?;
            ds.bucket.delete(&key).await?;
            finding.moved_to = Some(ds.location.path(&dest));
        }
        self.update_coverage(None, |record, _| {
            let old = record.clone();
            record.withdraw_year(year);
            *record != old
        })
        .await
    }

    /// Marks the lease released so the next writer of the ticker need not wait.
    pub async fn release(self) -> Result<(), StoreError> {
        self.lease.release().await
    }

    /// Read-modify-write of the coverage record: `change` edits the record read (with
    /// the facts of `written` when its object is still current) and says whether it
    /// changed; the record is written back with `If-Match` on the ETag read
    /// (create-only when absent) and the whole is retried on a lost race.
    async fn update_coverage<F>(
        &self,
        written: Option<&WrittenObject>,
        mut change: F,
    ) -> Result<(), StoreError>
    where
        F: FnMut(&mut Record, Option<(i16, FileFacts)>) -> bool,
    {
        let ds = &self.ds;
        let key = ds.location.coverage_key(&self.ticker);
        for attempt in 1..=MAX_ATTEMPTS {
            self.lease.check()?;
            let (mut record, etag) = ds.coverage_with_etag(&self.ticker).await?;
            let file = match written {
                Some(w) if self.still_current(w).await? => Some((w.year, w.facts)),
                _ => None,
            };
            if !change(&mut record, file) {
                return Ok(());
            }
            let json = Bytes::from(coverage::encode_record(&self.ticker, &record)?);
            self.lease.check()?;
            match ds.bucket.put_expecting(&key, json, etag.as_deref()).await {
                Ok(_) => return Ok(()),
                Err(e) if lost_race(&e) => {
                    tracing::debug!(ticker = %self.ticker, attempt, "coverage changed since read; merging again");
                    backoff(attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Contended {
            key: ds.location.url(&key),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// True when the year's data object is still the one `w` wrote (or still absent,
    /// when `w` emptied the year).
    async fn still_current(&self, w: &WrittenObject) -> Result<bool, StoreError> {
        let key = self.ds.location.data_key(&self.ticker, w.year);
        match self.ds.bucket.head(&key).await {
            Ok(info) => Ok(w.key.is_some() && info.etag == w.etag),
            Err(e) if e.kind == S3ErrorKind::NotFound => Ok(w.key.is_none()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A conditional PUT refused because another write came first.
pub(super) fn lost_race(e: &S3Error) -> bool {
    matches!(
        e.kind,
        S3ErrorKind::AlreadyExists | S3ErrorKind::PreconditionFailed
    )
}

/// A short random pause after a lost race, growing with the attempts, so racing
/// writers do not retry in lockstep.
pub(crate) async fn backoff(attempt: u32) {
    let ms = fastrand::u64(5..=20 * u64::from(attempt.min(10)));
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
