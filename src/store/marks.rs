//! Recording what is complete: the coverage record of a ticker is updated after its
//! file, under the ticker's lock, with the facts of the file just written (see
//! [`crate::store::coverage`]), so a kill at any instant leaves no claim without its file.

use std::path::PathBuf;

use jiff::civil::Date;

use crate::calendar::DateRange;
use crate::store::coverage::{self, FileFacts};
use crate::store::error::StoreError;
use crate::store::{Store, check_ticker};

/// What [`Store::write_piece`] left on disk for its piece's year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The calendar year of the piece.
    pub year: i16,
    /// The year's file, or `None` when the year holds no bars (no file exists).
    pub path: Option<PathBuf>,
    /// The file's size, rows and span, for the coverage record ([`Store::mark_written`]).
    pub facts: FileFacts,
}

impl Store {
    /// Records `range` of `ticker` as complete, clipped to the days strictly before
    /// `today` (a day still trading is never complete). Atomic: survives `kill -9`.
    /// For ranges just written, [`Store::mark_written`] also records the file.
    pub fn mark_complete(
        &self,
        ticker: &str,
        range: DateRange,
        today: Date,
    ) -> Result<(), StoreError> {
        self.update_record(ticker, &[range], today, None)
    }

    /// Records the ranges of `complete` of `ticker` complete as [`Store::mark_complete`]
    /// does, and what [`Store::write_piece`] left in its year (size, rows, span): the
    /// facts a resume checks the file against. The facts are recorded even when no day
    /// can be complete yet, since the file changed.
    pub fn mark_written(
        &self,
        ticker: &str,
        complete: &[DateRange],
        today: Date,
        written: &Written,
    ) -> Result<(), StoreError> {
        self.update_record(ticker, complete, today, Some(written))
    }

    /// Forgets that the days of `ranges` (sorted, disjoint) of `ticker` are complete,
    /// so the next run fetches them again (a republished flat file, say). The bars stay
    /// on disk until they are replaced.
    pub fn withdraw(&self, ticker: &str, ranges: &[DateRange]) -> Result<(), StoreError> {
        self.check_writable()?;
        check_ticker(ticker)?;
        let _lock = self.lock(ticker)?;
        let path = self.layout.coverage_file(ticker);
        let mut record = coverage::read_record(&path)?;
        let old = record.complete.clone();
        record.withdraw(ranges);
        if record.complete == old {
            return Ok(());
        }
        coverage::write(&self.layout.staging_dir(), &path, ticker, &record)
    }

    fn update_record(
        &self,
        ticker: &str,
        complete: &[DateRange],
        today: Date,
        written: Option<&Written>,
    ) -> Result<(), StoreError> {
        self.check_writable()?;
        check_ticker(ticker)?;
        if complete.iter().all(|r| r.before(today).is_none()) && written.is_none() {
            return Ok(());
        }
        let _lock = self.lock(ticker)?;
        self.update_record_locked(ticker, complete, today, written)
    }

    /// [`Store::mark_written`] with the ticker's lock held and its name checked.
    pub(super) fn update_record_locked(
        &self,
        ticker: &str,
        complete: &[DateRange],
        today: Date,
        written: Option<&Written>,
    ) -> Result<(), StoreError> {
        let path = self.layout.coverage_file(ticker);
        let mut record = coverage::read_record(&path)?;
        if !record.claim(complete, today, written.map(|w| (w.year, w.facts))) {
            return Ok(());
        }
        coverage::write(&self.layout.staging_dir(), &path, ticker, &record)
    }
}
