//! The crash-safe Parquet store: one file per (ticker, year) under a Hive-style data
//! root, plus per-ticker coverage, dataset identity and staging in a sibling state
//! folder (see [`layout`]).
//!
//! Every file — Parquet or state — appears under its final name only when complete
//! ([`atomic`]), so a writer killed at any instant leaves readers working and a resume
//! reading [`Store::missing`] fetches exactly what is not known complete.

pub mod atomic;
pub mod coverage;
pub mod dataset;
pub mod decode;
mod dirsync;
pub mod encode;
pub mod error;
mod footer;
pub mod identity;
pub mod layout;
mod marks;
mod piece;
pub mod remote;
pub mod schema;
pub mod status;
pub mod upgrade;
pub mod verify;
mod within;

use std::borrow::Cow;
use std::ffi::CString;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::bars::Bars;
use crate::calendar::DateRange;
use crate::ticker::validate_ticker;

pub use dataset::{Dataset, DatasetLocation, TickerSession};
pub use decode::{StoredFile, read_file, read_metadata};
pub use encode::{Encoded, bars_to_batch, encode_parquet};
pub use error::StoreError;
pub use identity::{DatasetIdentity, Origin, Provenance};

pub use layout::{Layout, state_dir_for};
pub use marks::Written;
pub(crate) use piece::recorded_request;
pub use verify::{Damage, DamageKind, Finding};

use coverage::FileFacts;

/// An output folder: finished Parquet under the data root, state next to it.
///
/// Cheap to clone; safe to share between threads and with other processes writing
/// other tickers (or even the same ticker: writes to one ticker are serialized by a
/// per-ticker lock).
#[derive(Debug, Clone)]
pub struct Store {
    layout: Layout,
    /// The identity of the data; `None` for a read-only store of a folder never written.
    identity: Option<DatasetIdentity>,
    writable: bool,
}

impl Store {
    /// Opens (creating if needed) the output folder `outdir` for writing bars of
    /// `identity`: creates the data root and state folder, checks both are writable and
    /// on one filesystem, records the identity on first open and refuses a different
    /// one later, and removes staging leftovers of writers that died.
    pub fn open(outdir: &Path, identity: &DatasetIdentity) -> Result<Store, StoreError> {
        let unwritable = |path: &Path, source| StoreError::Unwritable {
            path: path.into(),
            source,
        };
        fs::create_dir_all(outdir).map_err(|e| unwritable(outdir, e))?;
        let layout = Layout::resolve(outdir)?;
        check_writable(layout.root())?;
        // Before creating anything: the state folder (or the folder it will be created
        // in) must be on the data root's filesystem, or renames would not be atomic.
        let dev = |p: &Path| {
            fs::metadata(p)
                .map(|m| m.dev())
                .map_err(|e| StoreError::io("stat", p, e))
        };
        let state_dev = match layout.state().parent() {
            _ if layout.state().exists() => dev(layout.state())?,
            Some(parent) => dev(parent)?,
            None => dev(layout.state())?,
        };
        if dev(layout.root())? != state_dev {
            return Err(StoreError::DifferentFilesystems {
                data: layout.root().to_path_buf(),
                state: layout.state().to_path_buf(),
            });
        }
        for dir in [
            layout.coverage_dir(),
            layout.staging_dir(),
            layout.locks_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(|e| unwritable(layout.state(), e))?;
        }
        check_writable(layout.state())?;
        let removed = atomic::clean_staging(&layout.staging_dir())?;
        if removed > 0 {
            tracing::info!(removed, "removed staging leftovers of interrupted writers");
        }
        let dataset = layout.dataset_file();
        if identity::read(&dataset)?.is_none() {
            check_existing_files(&layout, identity)?;
        }
        let recorded = identity::record_or_read(&dataset, &layout.staging_dir(), identity)?;
        identity::require(&recorded, identity, &dataset)?;
        Ok(Store {
            layout,
            identity: Some(identity.clone()),
            writable: true,
        })
    }

    /// Opens `outdir` for coverage queries and reads only; creates nothing. A folder
    /// that does not exist yet reads as empty.
    pub fn open_read_only(outdir: &Path) -> Result<Store, StoreError> {
        let layout = Layout::resolve(outdir)?;
        let identity = identity::read(&layout.dataset_file())?;
        Ok(Store {
            layout,
            identity,
            writable: false,
        })
    }

    /// The data root (finished Parquet only).
    pub fn data_root(&self) -> &Path {
        self.layout.root()
    }

    /// The state folder (`<outdir>.barsmith`).
    pub fn state_dir(&self) -> &Path {
        self.layout.state()
    }

    /// The dataset identity, if recorded.
    pub fn identity(&self) -> Option<&DatasetIdentity> {
        self.identity.as_ref()
    }

    /// The flat-file route's state folder (staged days, the ledger of ingested files).
    pub fn flatfiles_dir(&self) -> PathBuf {
        self.layout.flatfiles_dir()
    }

    /// The Parquet file of (`ticker`, `year`), whether or not it exists.
    pub fn file_path(&self, ticker: &str, year: i16) -> PathBuf {
        self.layout.file_path(ticker, year)
    }

    /// The parts of `range` not known complete for `ticker`, oldest first.
    pub fn missing(&self, ticker: &str, range: DateRange) -> Result<Vec<DateRange>, StoreError> {
        Ok(coverage::subtract(range, &self.coverage(ticker)?))
    }

    /// The tickers (in the given order) whose coverage spans all of `range`.
    pub fn completed_tickers(
        &self,
        tickers: &[String],
        range: DateRange,
    ) -> Result<Vec<String>, StoreError> {
        let mut done = Vec::new();
        for t in tickers {
            if coverage::spans(&self.coverage(t)?, range) {
                done.push(t.clone());
            }
        }
        Ok(done)
    }

    /// Replaces the bars of `range` (inside one calendar year) in the (ticker, year)
    /// file with `bars`, keeping the file's bars outside `range`, atomically. Bars
    /// outside `range` in the input are dropped. When the result is empty no file
    /// exists afterwards. Returns what the year's file now is.
    pub fn write_piece(
        &self,
        ticker: &str,
        range: DateRange,
        bars: &Bars,
        provenance: &Provenance,
    ) -> Result<Written, StoreError> {
        self.write_days(ticker, range, &[range], bars, provenance)
    }

    /// As [`Store::write_piece`], but only the days of `complete` (sorted, disjoint,
    /// inside `range`) are replaced: the file keeps its bars of the other days of
    /// `range`, and bars of `bars` on those days are dropped.
    pub fn write_days(
        &self,
        ticker: &str,
        range: DateRange,
        complete: &[DateRange],
        bars: &Bars,
        provenance: &Provenance,
    ) -> Result<Written, StoreError> {
        self.check_writable()?;
        check_ticker(ticker)?;
        let _lock = self.lock(ticker)?;
        let bars = Cow::Borrowed(bars);
        self.write_days_locked(ticker, range, complete, bars, provenance)
    }

    /// [`Store::write_days`], then [`Store::mark_written`] of the same days, under one
    /// taking of the ticker's lock: the coverage still follows the data. It takes the
    /// bars (a worker's fetched piece, written and then dropped), so their columns go
    /// to the encoder without a copy: memory and time of a ticker-year.
    pub fn write_and_mark(
        &self,
        ticker: &str,
        range: DateRange,
        complete: &[DateRange],
        bars: Bars,
        provenance: &Provenance,
        today: jiff::civil::Date,
    ) -> Result<Written, StoreError> {
        self.check_writable()?;
        check_ticker(ticker)?;
        let _lock = self.lock(ticker)?;
        let bars = Cow::Owned(bars);
        let written = self.write_days_locked(ticker, range, complete, bars, provenance)?;
        self.update_record_locked(ticker, complete, today, Some(&written))?;
        Ok(written)
    }

    /// [`Store::write_days`] with the ticker's lock held and its name checked.
    fn write_days_locked(
        &self,
        ticker: &str,
        range: DateRange,
        complete: &[DateRange],
        bars: Cow<'_, Bars>,
        provenance: &Provenance,
    ) -> Result<Written, StoreError> {
        let year = piece::year_of(ticker, range)?;
        self.check_identity(&provenance.identity(), &self.layout.dataset_file())?;

        let incoming = piece::incoming(ticker, bars, range);
        let path = self.layout.file_path(ticker, year);
        let stored = if path.exists() {
            let stored = match piece::needs(range, complete) {
                // Every stored bar is replaced: only the identity needs checking.
                piece::Needs::Metadata => StoredFile {
                    bars: Bars::default(),
                    metadata: read_metadata(&path)?,
                },
                piece::Needs::Bars => read_file(&path)?,
            };
            self.check_identity(&file_identity(&stored.metadata, &path)?, &path)?;
            Some(stored)
        } else {
            None
        };
        let mut provenance = provenance.clone();
        let merged = piece::merge(stored.as_ref(), incoming, range, complete, &mut provenance);

        if merged.is_empty() {
            if atomic::remove_durable(&path)? {
                remove_empty_dirs(&path, self.layout.root());
            }
            return Ok(Written {
                year,
                path: None,
                facts: FileFacts::default(),
            });
        }
        let year_dir = self.layout.year_dir(ticker, year);
        atomic::create_dir_durable(&year_dir)?;
        let label = format!("{ticker}_{year}.parquet");
        let mut facts = FileFacts::of(&merged.timestamp, 0);
        let encoded = atomic::write_with(&self.layout.staging_dir(), &path, &label, |out| {
            encode::encode_to(ticker, merged, &provenance, out, &path)
        })?;
        facts.bytes = encoded.bytes as u64;
        Ok(Written {
            year,
            path: Some(path),
            facts,
        })
    }

    /// The stored bars of `ticker` whose New York date lies in `range`, sorted.
    pub fn read_bars(&self, ticker: &str, range: DateRange) -> Result<Bars, StoreError> {
        check_ticker(ticker)?;
        let mut out = Bars::default();
        for piece in range.split_by_year() {
            let path = self.layout.file_path(ticker, piece.from.year());
            if !path.exists() {
                continue;
            }
            let stored = read_file(&path)?;
            out.extend(&piece::bars_in(&stored.bars, piece));
        }
        Ok(out)
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        if self.writable {
            Ok(())
        } else {
            Err(StoreError::ReadOnly {
                path: self.layout.root().to_path_buf(),
            })
        }
    }

    /// Refuses data of another identity than the store's, naming `path` as the source.
    fn check_identity(&self, other: &DatasetIdentity, path: &Path) -> Result<(), StoreError> {
        match &self.identity {
            Some(mine) => identity::require(mine, other, path),
            None => Ok(()),
        }
    }

    /// Takes the per-ticker writer lock (released on drop).
    fn lock(&self, ticker: &str) -> Result<File, StoreError> {
        let path = self.layout.lock_file(ticker);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io("open lock file", &path, e))?;
        file.lock().map_err(|e| StoreError::io("lock", &path, e))?;
        Ok(file)
    }
}

fn check_ticker(ticker: &str) -> Result<(), StoreError> {
    validate_ticker(ticker).map_err(|e| StoreError::Invalid(e.0))
}

/// Refuses a folder that is not writable (a read-only mount, missing permissions).
fn check_writable(dir: &Path) -> Result<(), StoreError> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| StoreError::Invalid(format!("{} contains a NUL byte", dir.display())))?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        return Err(StoreError::Unwritable {
            path: dir.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// The identity written in a file's metadata.
pub(crate) fn file_identity(
    meta: &std::collections::HashMap<String, String>,
    path: &Path,
) -> Result<DatasetIdentity, StoreError> {
    let get = |k: &str| {
        meta.get(k).cloned().ok_or_else(|| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("metadata key '{k}' is missing (not written by barsmith?)"),
        })
    };
    Ok(DatasetIdentity {
        provider: get(schema::meta::PROVIDER)?,
        timespan: get(schema::meta::TIMESPAN)?,
        adjusted: get(schema::meta::ADJUSTED)? == "true",
    })
}

/// On first open of a folder without `dataset.json`, refuses `identity` if an existing
/// bar file (e.g. left after the state folder was deleted) says otherwise.
fn check_existing_files(layout: &Layout, identity: &DatasetIdentity) -> Result<(), StoreError> {
    let Some(path) = first_parquet(layout.root()) else {
        return Ok(());
    };
    let found = file_identity(&read_metadata(&path)?, &path)?;
    identity::require(&found, identity, &path)
}

/// The first `ticker=*/year=*/*.parquet` under `root`, if any.
fn first_parquet(root: &Path) -> Option<PathBuf> {
    let dirs = |p: &Path| -> Vec<PathBuf> {
        fs::read_dir(p)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    for t in dirs(root) {
        for y in dirs(&t) {
            if let Some(f) = dirs(&y)
                .into_iter()
                .find(|f| f.extension() == Some("parquet".as_ref()))
            {
                return Some(f);
            }
        }
    }
    None
}

/// Removes the now-empty `year=` and `ticker=` folders of a removed file (best effort).
fn remove_empty_dirs(file: &Path, root: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root || fs::remove_dir(d).is_err() {
            break;
        }
        let _ = atomic::sync_parent(d);
        dir = d.parent();
    }
}
