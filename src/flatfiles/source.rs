//! The flat-file route as the worker's [`BarSource`].
//!
//! [`FlatFiles::prepare`] lists the bucket, then downloads, decodes and stages every
//! published day of the range (a few at once; a day already staged with the same ETag
//! is reused, so a re-run after a kill downloads only what is missing). The worker then
//! asks for one ticker's piece at a time, which reads that ticker's blocks across the
//! staged days: each ticker-year file is written once per job, not once per day.
//!
//! Which days a piece is complete for follows the files: a day whose file was staged
//! is complete for every ticker of the universe, bars or not; a weekday without a file
//! before the last published file is a holiday, complete with no bars; days after the
//! last published file, and days answered 403 (not in the plan), stay missing for
//! REST to fill. A ticker asked for that is in none of the files of a piece is not
//! made complete by them either: REST settles whether it had bars.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use jiff::civil::Date;

use crate::bars::Bars;
use crate::calendar::DateRange;
use crate::ingest::error::{ErrorClass, ErrorKind, FetchError};
use crate::ingest::source::{BarSource, PieceBars, SourceEvent};
use crate::s3::{Bucket, ObjectInfo, S3Error, S3ErrorKind};
use crate::store::{DatasetIdentity, Provenance};

use super::csv::{DecodeError, decode_day};
use super::layout::{day_of_key, year_prefix};
use super::stage::{StagedDay, StreamError, stage_day, stage_path, write_day};

/// Which tickers to keep from the files.
#[derive(Debug, Clone)]
pub enum Universe {
    /// Only these.
    Tickers(HashSet<String>),
    /// Every ticker in the files (symbols barsmith cannot store are skipped).
    All,
}

impl Universe {
    fn keeps(&self, ticker: &str) -> bool {
        match self {
            Universe::Tickers(set) => set.contains(ticker),
            Universe::All => crate::ticker::validate_ticker(ticker).is_ok(),
        }
    }
}

/// Where to find the files and where to stage them.
#[derive(Debug, Clone)]
pub struct FlatConfig {
    /// The flat-file bucket.
    pub bucket: Bucket,
    /// The dataset's prefix, e.g. [`super::layout::MINUTE_AGGS_PREFIX`].
    pub prefix: String,
    /// The staging folder (the store's `flatfiles/staging`).
    pub staging: PathBuf,
    /// Tickers to keep.
    pub universe: Universe,
    /// Days downloaded and decoded at once (each costs about a day's file in memory).
    pub parallel_days: usize,
}

/// What preparing did with one day of the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayOutcome {
    /// Downloaded, decoded and staged: `rows` in the file.
    Staged {
        /// Rows in the day's file.
        rows: u64,
    },
    /// Already staged with the same ETag.
    Reused {
        /// Rows in the day's file.
        rows: u64,
    },
    /// 403: not in the plan (or not yet permitted); left missing.
    Forbidden,
}

/// Attempts at a day whose body arrives damaged (a truncated gzip) before giving up.
const BODY_ATTEMPTS: u32 = 3;

/// Staged flat-file days of one range, ready to serve pieces.
#[derive(Debug)]
pub struct FlatFiles {
    prefix: String,
    days: Arc<BTreeMap<Date, StagedDay>>,
    forbidden: BTreeSet<Date>,
    last_published: Option<Date>,
}

impl FlatFiles {
    /// Lists the bucket and stages the published days of `range` that `need` asks for
    /// (given the day and its listed ETag: the days some ticker still misses, or
    /// republished); `on_day` hears of each day as it is done.
    /// Fails on bad credentials, on a listing refused, or on a day that cannot be had
    /// after retries (the batch is then retried as a whole).
    pub async fn prepare(
        cfg: FlatConfig,
        range: DateRange,
        need: &(dyn Fn(Date, &str) -> bool + Sync),
        on_day: &mut (dyn FnMut(Date, DayOutcome) + Send),
    ) -> Result<FlatFiles, FetchError> {
        let listed = list_days(&cfg.bucket, &cfg.prefix, range).await?;
        let last_published = listed.keys().next_back().copied();
        let wanted: Vec<(Date, ObjectInfo)> = listed
            .into_iter()
            .filter(|(d, info)| {
                range.contains(*d) && need(*d, info.etag.as_deref().unwrap_or_default())
            })
            .collect();
        super::stage::clean_stale(&cfg.staging);
        let cfg = Arc::new(cfg);
        let mut jobs = futures_util::stream::iter(wanted)
            .map(|(day, info)| stage_one(cfg.clone(), day, info))
            .buffer_unordered(cfg.parallel_days.max(1));
        let (mut days, mut forbidden) = (BTreeMap::new(), BTreeSet::new());
        while let Some(done) = jobs.next().await {
            let (day, outcome, staged) = done?;
            on_day(day, outcome);
            match staged {
                Some(s) => {
                    days.insert(day, s);
                }
                None => {
                    forbidden.insert(day);
                }
            }
        }
        Ok(FlatFiles {
            prefix: cfg.prefix.clone(),
            days: Arc::new(days),
            forbidden,
            last_published,
        })
    }

    /// Every ticker with bars on a staged day, sorted.
    pub fn tickers(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self
            .days
            .values()
            .flat_map(|d| d.index.blocks.keys())
            .collect();
        set.into_iter().cloned().collect()
    }

    /// The newest day with a published file (searched a little past the range).
    pub fn last_published(&self) -> Option<Date> {
        self.last_published
    }

    /// Days of the range answered 403.
    pub fn forbidden(&self) -> &BTreeSet<Date> {
        &self.forbidden
    }

    /// Each staged day's key and ETag.
    pub fn etags(&self) -> BTreeMap<Date, (String, String)> {
        self.days
            .iter()
            .map(|(d, s)| (*d, (s.index.key.clone(), s.index.etag.clone())))
            .collect()
    }

    /// The days of `piece` the files make complete: up to the last published file,
    /// minus the days answered 403.
    pub fn complete(&self, piece: DateRange) -> Vec<DateRange> {
        let Some(last) = self.last_published else {
            return Vec::new();
        };
        let Some(upto) = piece.before(last.tomorrow().unwrap_or(last)) else {
            return Vec::new();
        };
        let holes: Vec<DateRange> = self
            .forbidden
            .range(upto.from..=upto.to)
            .map(|&d| DateRange { from: d, to: d })
            .collect();
        crate::store::coverage::subtract(upto, &holes)
    }

    fn provenance(&self, piece: DateRange) -> Provenance {
        let mut p = Provenance::now(false, piece);
        let files: BTreeMap<Date, String> = self
            .days
            .range(piece.from..=piece.to)
            .map(|(d, s)| (*d, s.index.etag.clone()))
            .collect();
        p.origin = Some(crate::store::identity::Origin::flat_files(
            &self.prefix,
            files,
        ));
        p
    }
}

impl BarSource for FlatFiles {
    fn identity(&self) -> DatasetIdentity {
        DatasetIdentity::minute(false)
    }

    /// Always: pieces are local reads with no request budget. The window then grows
    /// until the worker's thread is busy or the bars held reach their cap, which keeps
    /// the cores fed while other pieces wait on their file's fsync.
    fn has_room(&self) -> bool {
        true
    }

    async fn fetch(
        &self,
        ticker: &str,
        piece: DateRange,
        on_event: &mut (dyn FnMut(SourceEvent) + Send),
    ) -> Result<PieceBars, FetchError> {
        let started = Instant::now();
        let (days, name) = (self.days.clone(), ticker.to_string());
        let read = move || -> std::io::Result<Bars> {
            let staged_days = || days.range(piece.from..=piece.to).map(|(_, s)| s);
            // Sized from the indexes: growing by doubling would copy the bars again.
            let mut out = Bars::with_capacity(staged_days().map(|s| s.bars_of(&name)).sum());
            for staged in staged_days() {
                staged.read_into(&name, &mut out)?;
            }
            Ok(out)
        };
        let bars = tokio::task::spawn_blocking(read)
            .await
            .map_err(|e| failure(ErrorKind::Store, format!("the staging reader failed: {e}")))?
            .map_err(|e| {
                failure(
                    ErrorKind::Body,
                    format!("cannot read staged flat files of {ticker}: {e}"),
                )
            })?;
        on_event(SourceEvent::Page {
            bars: bars.len(),
            elapsed: started.elapsed(),
        });
        // A ticker in no file of the piece: the files cannot tell a ticker without
        // trades from one they do not carry, so its days stay missing for REST (whose
        // listing knows) to settle.
        let absent = bars.is_empty() && self.days.range(piece.from..=piece.to).next().is_some();
        Ok(PieceBars {
            bars,
            complete: if absent {
                Vec::new()
            } else {
                self.complete(piece)
            },
            requests: 0,
            duplicates_dropped: 0,
            reordered: 0,
            provenance: self.provenance(piece),
        })
    }
}

/// Every day file under the years of `range` (and a few days past it, to know whether
/// the range's last days are holidays or not yet published).
async fn list_days(
    bucket: &Bucket,
    prefix: &str,
    range: DateRange,
) -> Result<BTreeMap<Date, ObjectInfo>, FetchError> {
    let horizon = range
        .to
        .checked_add(jiff::Span::new().days(10))
        .unwrap_or(range.to);
    let mut out = BTreeMap::new();
    for year in range.from.year()..=horizon.year() {
        let objects = bucket
            .list(&year_prefix(prefix, year))
            .await
            .map_err(|e| s3_failure(e, "listing the flat files").with_class(ErrorClass::Run))?;
        for info in objects {
            if let Some(day) = day_of_key(prefix, &info.key) {
                out.insert(day, info);
            }
        }
    }
    Ok(out)
}

/// Stages one day (or finds it staged); `None` for a day answered 403.
async fn stage_one(
    cfg: Arc<FlatConfig>,
    day: Date,
    info: ObjectInfo,
) -> Result<(Date, DayOutcome, Option<StagedDay>), FetchError> {
    let path = stage_path(&cfg.staging, day);
    let listed_etag = info.etag.clone().unwrap_or_default();
    let reuse = {
        let path = path.clone();
        blocking(move || StagedDay::open(&path)).await?
    };
    if let Some(staged) = reuse.filter(|s| s.index.etag == listed_etag) {
        let rows = staged.index.rows;
        return Ok((day, DayOutcome::Reused { rows }, Some(staged)));
    }
    for attempt in 1..=BODY_ATTEMPTS {
        let object = match cfg.bucket.get(&info.key).await {
            Ok(o) => o,
            Err(e) if e.kind == S3ErrorKind::Forbidden => {
                tracing::warn!(%day, "flat file refused (403): {}", e.message);
                return Ok((day, DayOutcome::Forbidden, None));
            }
            Err(e) => return Err(s3_failure(e, &format!("downloading the file of {day}"))),
        };
        let etag = object.info.etag.clone().unwrap_or_default();
        let (cfg2, key) = (cfg.clone(), info.key.clone());
        let staged = blocking(move || stage_body(&cfg2, day, (&key, &etag), &object.body)).await?;
        match staged {
            Ok(s) => {
                let rows = s.index.rows;
                return Ok((day, DayOutcome::Staged { rows }, Some(s)));
            }
            Err(e) if attempt < BODY_ATTEMPTS => {
                tracing::warn!(%day, attempt, "flat file damaged, downloading again: {e}");
            }
            Err(e) => {
                return Err(failure(
                    ErrorKind::Body,
                    format!(
                        "the file of {day} ({}) is damaged after {attempt} downloads: {e}",
                        info.key
                    ),
                )
                .with_attempts(attempt));
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// Decodes and stages one downloaded day file, then opens it; `Ok(Err(_))` for a
/// damaged file (downloaded again).
fn stage_body(
    cfg: &FlatConfig,
    day: Date,
    source: (&str, &str),
    gz: &[u8],
) -> std::io::Result<Result<StagedDay, DecodeError>> {
    let keep = |t: &str| cfg.universe.keeps(t);
    let path = match stage_day(&cfg.staging, day, source, gz, &keep) {
        Ok(path) => path,
        Err(StreamError::Io(e)) => return Err(e),
        Err(StreamError::Decode(e)) => return Ok(Err(e)),
        // Not sorted by ticker (Massive's files are): decoded whole, in memory.
        Err(StreamError::Unsorted) => match decode_day(gz, &keep) {
            Ok(decoded) => write_day(&cfg.staging, day, source.0, source.1, &decoded)?,
            Err(e) => return Ok(Err(e)),
        },
    };
    StagedDay::open(&path)?
        .map(Ok)
        .ok_or_else(|| std::io::Error::other("the staged file did not read back"))
}

/// Runs file work on the blocking pool, its I/O errors as store failures.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, FetchError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| failure(ErrorKind::Store, format!("a staging task failed: {e}")))?
        .map_err(|e| failure(ErrorKind::Store, format!("flat-file staging: {e}")))
}

fn failure(kind: ErrorKind, message: String) -> FetchError {
    FetchError::new(kind, None, message)
}

/// An S3 failure in the worker's vocabulary.
fn s3_failure(e: S3Error, doing: &str) -> FetchError {
    let kind = match e.kind {
        S3ErrorKind::BadCredentials => ErrorKind::Unauthorized,
        S3ErrorKind::Forbidden => ErrorKind::NotEntitled,
        S3ErrorKind::NotFound => ErrorKind::NotFound,
        // The last two come only from conditional writes, which reading flat files never does.
        S3ErrorKind::Transient
        | S3ErrorKind::Other
        | S3ErrorKind::AlreadyExists
        | S3ErrorKind::PreconditionFailed => ErrorKind::Server,
        S3ErrorKind::Corrupt => ErrorKind::Body,
        S3ErrorKind::Config => ErrorKind::BadRequest,
    };
    let class = match e.kind {
        S3ErrorKind::Config => ErrorClass::Run,
        _ => kind.class(),
    };
    FetchError::new(kind, None, format!("{doing}: {e}")).with_class(class)
}
