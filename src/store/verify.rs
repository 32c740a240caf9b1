//! Whether the files behind a coverage record are still what was written, and what to
//! do when they are not.
//!
//! A claim of completeness is only as good as the file behind it: a deleted or truncated
//! file must not read as "already complete". Two depths of checking:
//! - quick ([`Store::coverage`], so every resume and `completed_tickers`): one `stat`
//!   per recorded ticker-year, its size against the size recorded at write time. Only
//!   when they differ is the footer read: a file that grew consistently (more rows, a
//!   span holding the recorded one) was rewritten by a later write whose record a kill
//!   cut short, and is kept.
//! - thorough ([`Store::verify`], `barsmith status --verify`): the footer must open and
//!   agree with the record, and the timestamps must increase strictly.
//!
//! A damaged year is quarantined ([`Store::quarantine`]): its file moves into the state
//! folder (nothing is deleted) and the year's claims are withdrawn, so the next run
//! fetches exactly those ranges again. The file moves first: a kill between the two
//! steps leaves a claim without a file, which the quick check finds again.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::calendar::DateRange;
use crate::store::coverage::{self, FileFacts, Record};
use crate::store::error::StoreError;
use crate::store::footer::{self, Footer};
use crate::store::{Store, atomic, check_ticker, decode};

/// What is wrong with a ticker-year's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The file the record claims is gone.
    Missing {
        /// Rows recorded at write time.
        recorded_rows: u64,
    },
    /// The file cannot be opened or its footer read (truncated, not Parquet).
    Unreadable(String),
    /// The footer's row count disagrees with the record.
    Rows {
        /// Rows recorded at write time.
        recorded: u64,
        /// Rows in the footer now.
        found: u64,
    },
    /// The bars' first and last timestamps disagree with the record.
    Span {
        /// (first, last) recorded at write time, Unix ms.
        recorded: (i64, i64),
        /// (first, last) in the footer now, if it has them.
        found: Option<(i64, i64)>,
    },
    /// A timestamp is earlier than the one before it.
    Unsorted {
        /// The first row (0-based) out of order.
        row: u64,
    },
    /// The same minute appears more than once.
    Duplicates {
        /// Rows repeating the minute of the row before.
        count: u64,
    },
}

/// The class of a [`Damage`], as named in `status` output (`missing`, `unreadable`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DamageKind {
    /// [`Damage::Missing`].
    Missing,
    /// [`Damage::Unreadable`].
    Unreadable,
    /// [`Damage::Rows`].
    Rows,
    /// [`Damage::Span`].
    Span,
    /// [`Damage::Unsorted`].
    Unsorted,
    /// [`Damage::Duplicates`].
    Duplicates,
}

impl DamageKind {
    /// The name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            DamageKind::Missing => "missing",
            DamageKind::Unreadable => "unreadable",
            DamageKind::Rows => "rows",
            DamageKind::Span => "span",
            DamageKind::Unsorted => "unsorted",
            DamageKind::Duplicates => "duplicates",
        }
    }
}

impl Damage {
    /// Its class.
    pub fn kind(&self) -> DamageKind {
        match self {
            Damage::Missing { .. } => DamageKind::Missing,
            Damage::Unreadable(_) => DamageKind::Unreadable,
            Damage::Rows { .. } => DamageKind::Rows,
            Damage::Span { .. } => DamageKind::Span,
            Damage::Unsorted { .. } => DamageKind::Unsorted,
            Damage::Duplicates { .. } => DamageKind::Duplicates,
        }
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Missing { recorded_rows } => {
                write!(f, "the file is gone ({recorded_rows} rows were written)")
            }
            Damage::Unreadable(why) => write!(f, "the file cannot be read: {why}"),
            Damage::Rows { recorded, found } => {
                write!(f, "{found} rows where {recorded} were written")
            }
            Damage::Span { recorded, found } => {
                let span = |(a, b): (i64, i64)| format!("{a}..{b}");
                let found = found.map_or("none".to_string(), span);
                write!(
                    f,
                    "bars span {found} (Unix ms) where {} was written",
                    span(*recorded)
                )
            }
            Damage::Unsorted { row } => write!(f, "row {row} is earlier than the row before"),
            Damage::Duplicates { count } => write!(f, "{count} rows repeat a minute"),
        }
    }
}

/// One damaged ticker-year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The symbol.
    pub ticker: String,
    /// The calendar year.
    pub year: i16,
    /// What is wrong.
    pub damage: Damage,
    /// Where the file was moved by [`Store::quarantine`], if it was.
    pub moved_to: Option<PathBuf>,
}

/// The quick check of one recorded year: `None` when the file is as recorded (or grew
/// consistently since).
pub(crate) fn quick(facts: &FileFacts, path: &Path) -> Option<Damage> {
    if facts.is_empty() {
        return None; // no file was written; one written later would only add bars
    }
    match fs::metadata(path) {
        Ok(m) if m.len() == facts.bytes => None,
        Ok(_) => match footer::read_path(path) {
            Ok(found) => agrees(facts, &found),
            Err(e) => Some(Damage::Unreadable(e.to_string())),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => Some(Damage::Missing {
            recorded_rows: facts.rows,
        }),
        Err(e) => Some(Damage::Unreadable(e.to_string())),
    }
}

/// The thorough check of one claimed year, with its facts if recorded (older records
/// have none: then only a file that exists can be checked).
fn thorough(facts: Option<&FileFacts>, path: &Path) -> Option<Damage> {
    let found = path
        .exists()
        .then(|| footer::read_path(path).map_err(|e| e.to_string()));
    if let Err(verdict) = thorough_footer(facts, found) {
        return verdict;
    }
    timestamps_verdict(decode::read_timestamps(path))
}

/// The thorough check up to the timestamps, given the year's footer (`None`: no file,
/// else the footer or why it cannot be read): `Err(verdict)` when that decides it,
/// `Ok(())` when the timestamps must be read ([`timestamps_verdict`]).
pub(crate) fn thorough_footer(
    facts: Option<&FileFacts>,
    found: Option<Result<Footer, String>>,
) -> Result<(), Option<Damage>> {
    let expected = facts.filter(|f| !f.is_empty());
    let found = match (expected, found) {
        (Some(f), None) => {
            return Err(Some(Damage::Missing {
                recorded_rows: f.rows,
            }));
        }
        (None, None) => return Err(None),
        (_, Some(Err(e))) => return Err(Some(Damage::Unreadable(e))),
        (_, Some(Ok(found))) => found,
    };
    match expected.and_then(|f| agrees(f, &found)) {
        Some(d) => Err(Some(d)),
        None => Ok(()),
    }
}

/// The end of the thorough check: the timestamps read (or why they could not be).
pub(crate) fn timestamps_verdict(ts: Result<Vec<i64>, StoreError>) -> Option<Damage> {
    match ts {
        Ok(ts) => order(&ts),
        Err(e) => Some(Damage::Unreadable(e.to_string())),
    }
}

/// `None` when the footer matches the record, or shows a file grown consistently since
/// (more rows, a span holding the recorded one).
pub(crate) fn agrees(facts: &FileFacts, found: &Footer) -> Option<Damage> {
    let recorded = (facts.first, facts.last);
    if found.rows < facts.rows {
        return Some(Damage::Rows {
            recorded: facts.rows,
            found: found.rows,
        });
    }
    let holds = found
        .span
        .is_some_and(|(a, b)| a <= recorded.0 && recorded.1 <= b);
    let exact = found.span == Some(recorded);
    match (found.rows == facts.rows, exact, holds) {
        (true, true, _) | (false, _, true) => None,
        _ => Some(Damage::Span {
            recorded,
            found: found.span,
        }),
    }
}

/// Damage in the order of timestamps: the first row going back in time, else the count
/// of repeated minutes.
fn order(ts: &[i64]) -> Option<Damage> {
    if let Some(i) = ts.windows(2).position(|w| w[1] < w[0]) {
        return Some(Damage::Unsorted { row: i as u64 + 1 });
    }
    let repeats = ts.windows(2).filter(|w| w[0] == w[1]).count() as u64;
    (repeats > 0).then_some(Damage::Duplicates { count: repeats })
}

/// The calendar years `ranges` touch.
pub(crate) fn years_of(ranges: &[DateRange]) -> BTreeSet<i16> {
    ranges
        .iter()
        .flat_map(|r| r.from.year()..=r.to.year())
        .collect()
}

impl Store {
    /// The ranges of `ticker` known complete, sorted and merged: the claims of its
    /// coverage record whose files are still as written (see [`Store::checked_claims`]).
    pub fn coverage(&self, ticker: &str) -> Result<Vec<DateRange>, StoreError> {
        Ok(self.checked_claims(ticker)?.0)
    }

    /// The coverage record of `ticker` as written, unchecked.
    pub fn claims(&self, ticker: &str) -> Result<Record, StoreError> {
        check_ticker(ticker)?;
        coverage::read_record(&self.layout.coverage_file(ticker))
    }

    /// The claims of `ticker` that hold, and the recorded years whose files fail the
    /// quick check (their claims left out): one `stat` per recorded year.
    pub fn checked_claims(
        &self,
        ticker: &str,
    ) -> Result<(Vec<DateRange>, Vec<Finding>), StoreError> {
        let mut record = self.claims(ticker)?;
        let findings = self.quick_findings(ticker, &record);
        for f in &findings {
            record.withdraw_year(f.year);
        }
        Ok((record.complete, findings))
    }

    /// Every damaged year of `ticker` by the thorough check: each year its record claims
    /// or describes, whose file must exist if rows were recorded, open, agree with the
    /// record and hold strictly increasing timestamps. Reads the timestamp column.
    pub fn verify(&self, ticker: &str) -> Result<Vec<Finding>, StoreError> {
        let record = self.claims(ticker)?;
        let mut years = years_of(&record.complete);
        years.extend(record.files.keys());
        Ok(years
            .into_iter()
            .filter_map(|year| {
                let path = self.file_path(ticker, year);
                thorough(record.files.get(&year), &path).map(|damage| Finding {
                    ticker: ticker.to_string(),
                    year,
                    damage,
                    moved_to: None,
                })
            })
            .collect())
    }

    /// Moves the file of `finding` (if any) into the state folder's `quarantine/` and
    /// withdraws every claim about its year, so the next run fetches the year again.
    /// Sets `finding.moved_to`. Nothing is deleted.
    pub fn quarantine(&self, finding: &mut Finding) -> Result<(), StoreError> {
        self.check_writable()?;
        let (ticker, year) = (finding.ticker.as_str(), finding.year);
        let _lock = self.lock(ticker)?;
        let path = self.file_path(ticker, year);
        if path.exists() {
            let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S%.fZ");
            let dir = self
                .layout
                .quarantine_dir()
                .join(format!("ticker={ticker}"))
                .join(format!("year={year}"));
            atomic::create_dir_durable(&dir)?;
            let dest = dir.join(format!("{ticker}_{year}.{stamp}.parquet"));
            fs::rename(&path, &dest).map_err(|e| StoreError::io("move", &path, e))?;
            atomic::sync_parent(&dest)?;
            atomic::sync_parent(&path)?;
            finding.moved_to = Some(dest);
        }
        let file = self.layout.coverage_file(ticker);
        let mut record = coverage::read_record(&file)?;
        record.withdraw_year(year);
        coverage::write(&self.layout.staging_dir(), &file, ticker, &record)
    }

    /// Before a resume writes `ticker`: quarantines every recorded year failing the quick
    /// check, so no write reads a damaged file and the year is fetched again. Returns
    /// the ranges still known complete (what [`Store::coverage`] would) and what was
    /// found, from one read of the record.
    pub fn reconcile(&self, ticker: &str) -> Result<(Vec<DateRange>, Vec<Finding>), StoreError> {
        let (complete, mut findings) = self.checked_claims(ticker)?;
        for f in &mut findings {
            self.quarantine(f)?;
        }
        Ok((complete, findings))
    }

    fn quick_findings(&self, ticker: &str, record: &Record) -> Vec<Finding> {
        record
            .files
            .iter()
            .filter_map(|(&year, facts)| {
                let damage = quick(facts, &self.file_path(ticker, year))?;
                Some(Finding {
                    ticker: ticker.to_string(),
                    year,
                    damage,
                    moved_to: None,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(rows: u64, first: i64, last: i64) -> FileFacts {
        FileFacts {
            bytes: 100,
            rows,
            first,
            last,
        }
    }

    fn footer(rows: u64, span: Option<(i64, i64)>) -> Footer {
        Footer {
            bytes: 120,
            rows,
            span,
            legacy_ticker: false,
        }
    }

    #[test]
    fn a_footer_agrees_when_equal_or_grown_around_the_record() {
        let f = facts(10, 100, 200);
        assert_eq!(agrees(&f, &footer(10, Some((100, 200)))), None);
        assert_eq!(agrees(&f, &footer(12, Some((40, 200)))), None);
        assert!(matches!(
            agrees(&f, &footer(5, Some((100, 200)))),
            Some(Damage::Rows {
                recorded: 10,
                found: 5
            })
        ));
        assert!(matches!(
            agrees(&f, &footer(10, Some((100, 150)))),
            Some(Damage::Span { .. })
        ));
        assert!(matches!(
            agrees(&f, &footer(12, Some((120, 300)))),
            Some(Damage::Span { .. })
        ));
        assert!(matches!(
            agrees(&f, &footer(10, None)),
            Some(Damage::Span { found: None, .. })
        ));
    }

    #[test]
    fn order_names_the_first_row_back_in_time_then_repeats() {
        assert_eq!(order(&[1, 2, 3]), None);
        assert_eq!(order(&[1, 3, 2, 4]), Some(Damage::Unsorted { row: 2 }));
        assert_eq!(
            order(&[1, 1, 2, 2, 3]),
            Some(Damage::Duplicates { count: 2 })
        );
    }

    #[test]
    fn a_year_recorded_without_a_file_is_never_damaged_by_the_quick_check() {
        let none = FileFacts::default();
        assert_eq!(quick(&none, Path::new("/nonexistent/x.parquet")), None);
        assert_eq!(
            quick(&facts(3, 1, 2), Path::new("/nonexistent/x.parquet")),
            Some(Damage::Missing { recorded_rows: 3 })
        );
    }
}
