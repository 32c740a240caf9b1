//! Rewrites bar files of the first layout, which carried a `ticker` column beside the
//! `ticker=` folder: pandas and `pq.read_table` cannot merge the two, so such a dataset
//! fails the calls analysts type first. `barsmith upgrade DIR` runs this once; every
//! write since writes the current layout anyway.

use std::borrow::Cow;
use std::path::Path;

use jiff::Timestamp;

use crate::calendar::DateRange;
use crate::store::coverage::{self, FileFacts};
use crate::store::error::StoreError;
use crate::store::status::scan::scan_tree;
use crate::store::{
    Provenance, Store, atomic, check_ticker, encode, file_identity, footer, read_file,
    recorded_request, schema,
};

/// What [`Store::upgrade`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Upgraded {
    /// Bar files looked at.
    pub files: u64,
    /// Files rewritten in the current layout.
    pub rewritten: u64,
}

impl Store {
    /// Rewrites every bar file of the first layout in the current one (same bars, same
    /// provenance), atomically and under each ticker's lock, and records the new file's
    /// size in its coverage record. Safe to run again or to interrupt: a file is either
    /// the old one or the new one. `on_file` is called after each rewritten file.
    pub fn upgrade(&self, mut on_file: impl FnMut(&Path)) -> Result<Upgraded, StoreError> {
        self.check_writable()?;
        let tree = scan_tree(self.data_root())?;
        let mut done = Upgraded::default();
        for (ticker, years) in &tree.files {
            for &year in years.keys() {
                done.files += 1;
                if self.upgrade_file(ticker, year)? {
                    done.rewritten += 1;
                    on_file(&self.file_path(ticker, year));
                }
            }
        }
        Ok(done)
    }

    /// Rewrites the file of (`ticker`, `year`) if it is of the first layout. True when
    /// it was rewritten.
    pub fn upgrade_file(&self, ticker: &str, year: i16) -> Result<bool, StoreError> {
        self.check_writable()?;
        check_ticker(ticker)?;
        let _lock = self.lock(ticker)?;
        let path = self.file_path(ticker, year);
        if !footer::read_path(&path)?.legacy_ticker {
            return Ok(false);
        }
        let stored = read_file(&path)?;
        let identity = file_identity(&stored.metadata, &path)?;
        self.check_identity(&identity, &path)?;
        let requested = match recorded_request(&stored.metadata) {
            Some(r) => r,
            None => DateRange::year(year).map_err(|e| StoreError::Invalid(e.0))?,
        };
        let fetched_at = stored
            .metadata
            .get(schema::meta::FETCHED_AT)
            .and_then(|v| v.parse::<Timestamp>().ok())
            .unwrap_or_else(Timestamp::now);
        let provenance = Provenance::for_identity(&identity, requested, fetched_at);
        let label = format!("{ticker}_{year}.parquet");
        let encoded = atomic::write_with(&self.layout.staging_dir(), &path, &label, |out| {
            encode::encode_to(ticker, Cow::Borrowed(&stored.bars), &provenance, out, &path)
        })?;
        let facts = FileFacts::of(&stored.bars.timestamp, encoded.bytes as u64);
        let cov = self.layout.coverage_file(ticker);
        let mut record = coverage::read_record(&cov)?;
        if record != coverage::Record::default() {
            record.files.insert(year, facts);
            coverage::write(&self.layout.staging_dir(), &cov, ticker, &record)?;
        }
        Ok(true)
    }
}
