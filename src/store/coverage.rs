//! Which date ranges of a ticker are known complete — including ranges with no bars at
//! all (before an IPO, after a delisting) — as sorted, merged, inclusive ranges.
//!
//! One small JSON file per ticker in the state folder, replaced atomically:
//! `{"ticker":"AAPL","complete":[["2004-01-01","2010-12-31"]],
//!   "files":{"2004":{"bytes":2415790,"rows":196543,"first":1073..,"last":1104..}}}`.
//!
//! `files` records what each ticker-year's Parquet file was when the coverage was last
//! written: a claim of completeness is only as good as the file behind it, and these
//! facts let a resume notice a deleted or truncated file with one `stat` (see
//! [`crate::store::verify`]). Records written before `files` existed have none and are
//! trusted as before.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::calendar::{DateRange, parse_date};
use crate::store::atomic;
use crate::store::error::StoreError;

/// Sorts and merges overlapping or adjacent ranges (2004-12-31 and 2005-01-01 merge).
pub fn merge_ranges(mut ranges: Vec<DateRange>) -> Vec<DateRange> {
    ranges.sort();
    let mut out: Vec<DateRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if touches(*last, r) => last.to = last.to.max(r.to),
            _ => out.push(r),
        }
    }
    out
}

/// True when `next` (starting no earlier than `prev`) overlaps or follows `prev` directly.
fn touches(prev: DateRange, next: DateRange) -> bool {
    match prev.to.tomorrow() {
        Ok(day_after) => next.from <= day_after,
        Err(_) => true, // prev reaches the last representable day
    }
}

/// The parts of `range` not covered by `covered` (sorted and merged).
pub fn subtract(range: DateRange, covered: &[DateRange]) -> Vec<DateRange> {
    let mut out = Vec::new();
    let mut from = range.from;
    for c in covered {
        if c.to < from {
            continue;
        }
        if c.from > range.to {
            break;
        }
        if c.from > from {
            // `c.from > from >= Date::MIN`, so yesterday exists.
            let to = c.from.yesterday().unwrap_or(c.from);
            out.push(DateRange {
                from,
                to: to.min(range.to),
            });
        }
        match c.to.tomorrow() {
            Ok(next) => from = next,
            Err(_) => return out,
        }
        if from > range.to {
            return out;
        }
    }
    if from <= range.to {
        out.push(DateRange { from, to: range.to });
    }
    out
}

/// True when `covered` (sorted and merged) spans all of `range`.
pub fn spans(covered: &[DateRange], range: DateRange) -> bool {
    covered
        .iter()
        .any(|c| c.from <= range.from && range.to <= c.to)
}

/// What one ticker-year's Parquet file was when its coverage was last recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFacts {
    /// Size in bytes; 0 when the year has no file (no bars in it).
    pub bytes: u64,
    /// Bars in the file.
    pub rows: u64,
    /// The first bar's timestamp (Unix ms); 0 without bars.
    pub first: i64,
    /// The last bar's timestamp (Unix ms); 0 without bars.
    pub last: i64,
}

impl FileFacts {
    /// The facts of a file of `bytes` holding bars with timestamps `ts` (sorted).
    pub fn of(ts: &[i64], bytes: u64) -> FileFacts {
        FileFacts {
            bytes,
            rows: ts.len() as u64,
            first: ts.first().copied().unwrap_or_default(),
            last: ts.last().copied().unwrap_or_default(),
        }
    }

    /// True when the year has no file.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
}

/// A ticker's coverage record: the ranges claimed complete and the files behind them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// The ranges known complete, sorted and merged.
    pub complete: Vec<DateRange>,
    /// Per calendar year, the file as last written (absent: not recorded).
    pub files: BTreeMap<i16, FileFacts>,
}

impl Record {
    /// Forgets everything claimed about `year`: its ranges and its file.
    pub fn withdraw_year(&mut self, year: i16) {
        self.files.remove(&year);
        if let Ok(whole) = DateRange::year(year) {
            self.withdraw(&[whole]);
        }
    }

    /// Records the days of `complete` before `today` as complete (a day still trading
    /// never is) and, when given, the facts of the `(year, file)` just written. True
    /// when the record changed.
    pub fn claim(
        &mut self,
        complete: &[DateRange],
        today: jiff::civil::Date,
        file: Option<(i16, FileFacts)>,
    ) -> bool {
        let old = self.clone();
        let done: Vec<DateRange> = complete.iter().filter_map(|r| r.before(today)).collect();
        if !done.is_empty() {
            self.complete.extend(done);
            self.complete = merge_ranges(std::mem::take(&mut self.complete));
        }
        if let Some((year, facts)) = file {
            self.files.insert(year, facts);
        }
        *self != old
    }

    /// Forgets that the days of `ranges` (sorted, disjoint) are complete.
    pub fn withdraw(&mut self, ranges: &[DateRange]) {
        let mut kept = Vec::with_capacity(self.complete.len() + 1);
        for r in &self.complete {
            kept.extend(subtract(*r, ranges));
        }
        self.complete = merge_ranges(kept);
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CoverageFile {
    ticker: String,
    complete: Vec<[String; 2]>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    files: BTreeMap<i16, FileFacts>,
}

/// Reads the coverage record at `path`; a missing file means nothing is covered.
pub(crate) fn read_record(path: &Path) -> Result<Record, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Record::default()),
        Err(e) => return Err(StoreError::io("read", path, e)),
    };
    parse_record(&bytes, path)
}

/// Parses a coverage record's JSON; `path` names it in errors.
pub(crate) fn parse_record(bytes: &[u8], path: &Path) -> Result<Record, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let file: CoverageFile = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut ranges = Vec::with_capacity(file.complete.len());
    for [from, to] in &file.complete {
        let r = DateRange::new(
            parse_date(from).map_err(|e| corrupt(e.0))?,
            parse_date(to).map_err(|e| corrupt(e.0))?,
        )
        .map_err(|e| corrupt(e.0))?;
        ranges.push(r);
    }
    Ok(Record {
        complete: merge_ranges(ranges),
        files: file.files,
    })
}

/// The JSON of `ticker`'s coverage record, newline-terminated.
pub(crate) fn encode_record(ticker: &str, record: &Record) -> Result<Vec<u8>, StoreError> {
    let file = CoverageFile {
        ticker: ticker.to_string(),
        complete: record
            .complete
            .iter()
            .map(|r| [r.from.to_string(), r.to.to_string()])
            .collect(),
        files: record.files.clone(),
    };
    let mut json = serde_json::to_vec(&file)
        .map_err(|e| StoreError::Invalid(format!("cannot encode coverage of {ticker}: {e}")))?;
    json.push(b'\n');
    Ok(json)
}

/// Replaces the coverage file at `path` atomically.
pub(crate) fn write(
    staging: &Path,
    path: &Path,
    ticker: &str,
    record: &Record,
) -> Result<(), StoreError> {
    let json = encode_record(ticker, record)?;
    atomic::write_bytes(staging, path, &format!("{ticker}.json"), &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: &str, b: &str) -> DateRange {
        DateRange::parse(a, b).unwrap()
    }

    #[test]
    fn adjacent_and_overlapping_ranges_merge() {
        let m = merge_ranges(vec![
            r("2005-01-01", "2005-12-31"),
            r("2004-01-01", "2004-12-31"),
            r("2007-01-01", "2007-02-01"),
            r("2007-01-15", "2007-01-20"),
        ]);
        assert_eq!(
            m,
            vec![r("2004-01-01", "2005-12-31"), r("2007-01-01", "2007-02-01")]
        );
    }

    #[test]
    fn subtract_returns_the_gaps_inside_the_range() {
        let cov = [r("2004-03-01", "2004-03-31"), r("2004-06-01", "2004-06-30")];
        assert_eq!(
            subtract(r("2004-01-01", "2004-12-31"), &cov),
            vec![
                r("2004-01-01", "2004-02-29"),
                r("2004-04-01", "2004-05-31"),
                r("2004-07-01", "2004-12-31")
            ]
        );
        assert!(subtract(r("2004-03-05", "2004-03-06"), &cov).is_empty());
        assert_eq!(
            subtract(r("2004-03-30", "2004-04-02"), &cov),
            vec![r("2004-04-01", "2004-04-02")]
        );
        assert_eq!(
            subtract(r("2004-01-01", "2004-01-02"), &[]),
            vec![r("2004-01-01", "2004-01-02")]
        );
    }

    #[test]
    fn records_without_file_facts_still_read_and_withdrawing_a_year_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("AAPL.json");
        std::fs::write(
            &path,
            r#"{"ticker":"AAPL","complete":[["2004-06-01","2006-03-31"]]}"#,
        )
        .unwrap();
        let mut rec = read_record(&path).unwrap();
        assert_eq!(rec.complete, vec![r("2004-06-01", "2006-03-31")]);
        assert!(rec.files.is_empty());

        rec.files.insert(
            2005,
            FileFacts {
                bytes: 9,
                rows: 3,
                first: 1,
                last: 2,
            },
        );
        rec.files.insert(2006, FileFacts::default());
        write(dir.path(), &path, "AAPL", &rec).unwrap();
        assert_eq!(read_record(&path).unwrap(), rec);

        rec.withdraw_year(2005);
        assert_eq!(
            rec.complete,
            vec![r("2004-06-01", "2004-12-31"), r("2006-01-01", "2006-03-31")]
        );
        assert_eq!(rec.files.keys().copied().collect::<Vec<_>>(), [2006]);
    }

    #[test]
    fn claims_stop_before_today_and_report_whether_anything_changed() {
        let mut rec = Record::default();
        let today = jiff::civil::date(2004, 3, 10);
        let facts = FileFacts {
            bytes: 9,
            rows: 3,
            first: 1,
            last: 2,
        };
        assert!(rec.claim(&[r("2004-03-01", "2004-03-31")], today, None));
        assert_eq!(rec.complete, vec![r("2004-03-01", "2004-03-09")]);
        assert!(!rec.claim(&[r("2004-03-02", "2004-03-05")], today, None));
        assert!(!rec.claim(&[r("2004-03-10", "2004-03-31")], today, None));
        assert!(rec.claim(&[], today, Some((2004, facts))));
        assert!(!rec.claim(&[], today, Some((2004, facts))));
        assert!(rec.claim(&[r("2004-02-01", "2004-02-29")], today, None));
        assert_eq!(rec.complete, vec![r("2004-02-01", "2004-03-09")]);
    }

    #[test]
    fn spans_needs_one_range_covering_everything() {
        let cov = merge_ranges(vec![
            r("2004-01-01", "2004-12-31"),
            r("2005-01-01", "2005-06-30"),
        ]);
        assert!(spans(&cov, r("2004-06-01", "2005-06-30")));
        assert!(!spans(&cov, r("2004-06-01", "2005-07-01")));
    }
}
