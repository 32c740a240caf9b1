//! The ticker × year coverage heatmap, from [`DatasetStatus`] (coverage records and
//! file footers: no bars are read). Incomplete tickers come first, the most missing
//! days first; at most a given number of rows are drawn and the rest counted.

use std::path::Path;

use crate::batch::RunInfo;
use crate::calendar::{DateRange, parse_date};
use crate::polygon::request::PAGE_LIMIT;
use crate::store::dataset::{block_on, open_s3_read_only};
use crate::store::remote::S3Dataset;
use crate::store::status::{DatasetStatus, EstimateRule, StatusQuery, TickerStatus};
use crate::store::{DatasetLocation, Store, StoreError};

/// How much of one ticker-year is known complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellState {
    /// Every day of the year (within the range) is complete.
    Complete,
    /// Some days are complete, some missing.
    Partial,
    /// No day is complete.
    Missing,
}

impl CellState {
    /// The snake_case name (a CSS class).
    pub fn as_str(self) -> &'static str {
        match self {
            CellState::Complete => "complete",
            CellState::Partial => "partial",
            CellState::Missing => "missing",
        }
    }
}

/// One ticker-year.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Calendar year.
    pub year: i16,
    /// How much of it is complete.
    pub state: CellState,
    /// Bars in its file (0 without a file).
    pub rows: u64,
    /// Days of the year (within the range) not known complete.
    pub missing_days: i64,
}

/// One ticker's row.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatmapRow {
    /// Symbol.
    pub ticker: String,
    /// One cell per year of the range.
    pub cells: Vec<Cell>,
}

impl HeatmapRow {
    /// Days of the range not known complete.
    pub fn missing_days(&self) -> i64 {
        self.cells.iter().map(|c| c.missing_days).sum()
    }
}

/// The heatmap: the rows drawn and how many were left out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Heatmap {
    /// The dataset's data root.
    pub data_root: String,
    /// The range shown; `None` when the dataset knows no day.
    pub range: Option<DateRange>,
    /// The column years, oldest first.
    pub years: Vec<i16>,
    /// The rows drawn: incomplete tickers first (most missing days first).
    pub rows: Vec<HeatmapRow>,
    /// Complete tickers not drawn.
    pub more_complete: usize,
    /// Incomplete tickers not drawn.
    pub more_incomplete: usize,
    /// Tickers in all.
    pub tickers: usize,
    /// Of those, complete over the range.
    pub complete: usize,
}

/// The heatmap of the dataset `outdir` over the run's `--from`..`--to`, for every
/// ticker of the dataset plus the run's `tickers` (which may have no data at all).
pub(super) fn build(
    outdir: &Path,
    info: Option<&RunInfo>,
    tickers: &[String],
    max_rows: usize,
) -> Result<Heatmap, String> {
    let fail =
        |e: &dyn std::fmt::Display| format!("cannot read the dataset {}: {e}", outdir.display());
    let dataset = open(outdir)?;
    let date = |name| super::flag(info, name).and_then(|d| parse_date(&d).ok());
    let rule = EstimateRule {
        page_rows: u64::from(PAGE_LIMIT),
        rows_per_year: 250_000,
        requests_per_second: 50.0,
    };
    let mut query = StatusQuery {
        tickers: None,
        from: date("from"),
        to: date("to"),
        ..StatusQuery::default()
    };
    let mut status = dataset.status(&query, rule).map_err(|e| fail(&e))?;
    let known: std::collections::HashSet<String> =
        status.tickers.iter().map(|t| t.ticker.clone()).collect();
    let absent: Vec<String> = tickers
        .iter()
        .filter(|t| !known.contains(*t))
        .cloned()
        .collect();
    if let (false, Some(range)) = (absent.is_empty(), status.range) {
        query = StatusQuery {
            tickers: Some(absent),
            from: Some(range.from),
            to: Some(range.to),
            ..StatusQuery::default()
        };
        let extra = dataset.status(&query, rule).map_err(|e| fail(&e))?;
        status.tickers.extend(extra.tickers);
    }
    Ok(from_status(&status, max_rows))
}

/// The dataset a heatmap is drawn from.
enum Source {
    Local(Store),
    S3(Box<S3Dataset>),
}

/// Opens `outdir` (a folder, or `s3://bucket/prefix` as the AWS variables reach it)
/// for reading.
fn open(outdir: &Path) -> Result<Source, String> {
    let fail = |e: StoreError| format!("cannot read the dataset {}: {e}", outdir.display());
    if let Ok(DatasetLocation::S3(location)) = DatasetLocation::parse(outdir) {
        let ds = block_on(move || open_s3_read_only(location))
            .and_then(|r| r)
            .map_err(fail)?;
        return Ok(Source::S3(Box::new(ds)));
    }
    if !outdir.is_dir() {
        return Err(format!(
            "no dataset at {} (the run's --outdir, relative to the folder the run started \
             in): pass --outdir to `barsmith report`",
            outdir.display()
        ));
    }
    Store::open_read_only(outdir)
        .map(Source::Local)
        .map_err(fail)
}

impl Source {
    fn status(&self, query: &StatusQuery, rule: EstimateRule) -> Result<DatasetStatus, StoreError> {
        match self {
            Source::Local(store) => DatasetStatus::build(store, query, rule),
            Source::S3(ds) => block_on(|| DatasetStatus::build_s3(ds, query, rule)).and_then(|r| r),
        }
    }
}

/// The heatmap of `status`, drawing at most `max_rows` tickers.
pub fn from_status(status: &DatasetStatus, max_rows: usize) -> Heatmap {
    let Some(range) = status.range else {
        return Heatmap {
            data_root: status.data_root.display().to_string(),
            ..Heatmap::default()
        };
    };
    let years: Vec<i16> = range
        .split_by_year()
        .iter()
        .map(|r| r.from.year())
        .collect();
    let mut rows: Vec<HeatmapRow> = status.tickers.iter().map(|t| row(t, range)).collect();
    rows.sort_by(|a, b| {
        b.missing_days()
            .cmp(&a.missing_days())
            .then_with(|| a.ticker.cmp(&b.ticker))
    });
    let tickers = rows.len();
    let complete = rows.iter().filter(|r| r.missing_days() == 0).count();
    let hidden = rows.split_off(max_rows.min(rows.len()));
    let more_complete = hidden.iter().filter(|r| r.missing_days() == 0).count();
    Heatmap {
        data_root: status.data_root.display().to_string(),
        range: Some(range),
        years,
        rows,
        more_complete,
        more_incomplete: hidden.len() - more_complete,
        tickers,
        complete,
    }
}

/// The cells of one ticker over `range`.
fn row(t: &TickerStatus, range: DateRange) -> HeatmapRow {
    let cells = range
        .split_by_year()
        .into_iter()
        .map(|piece| {
            let covered: i64 = t
                .complete_ranges
                .iter()
                .filter_map(|c| overlap(*c, piece))
                .sum();
            let missing_days = days(piece) - covered;
            let year = piece.from.year();
            Cell {
                year,
                state: match (covered, missing_days) {
                    (_, 0) => CellState::Complete,
                    (0, _) => CellState::Missing,
                    _ => CellState::Partial,
                },
                rows: t
                    .years
                    .iter()
                    .find(|y| y.year == year)
                    .map_or(0, |y| y.rows),
                missing_days,
            }
        })
        .collect();
    HeatmapRow {
        ticker: t.ticker.clone(),
        cells,
    }
}

/// Days in `r`, inclusive.
fn days(r: DateRange) -> i64 {
    (r.to - r.from).get_days() as i64 + 1
}

/// Days `a` and `b` share.
fn overlap(a: DateRange, b: DateRange) -> Option<i64> {
    let from = a.from.max(b.from);
    let to = a.to.min(b.to);
    (from <= to).then(|| days(DateRange { from, to }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(n: usize, incomplete: &[usize]) -> DatasetStatus {
        let range = DateRange::parse("2023-06-01", "2025-03-31").unwrap();
        let part = DateRange::parse("2023-06-01", "2024-06-30").unwrap();
        let tickers = (0..n)
            .map(|i| {
                let covered = if incomplete.contains(&i) { part } else { range };
                TickerStatus {
                    ticker: format!("T{i:04}"),
                    complete: !incomplete.contains(&i),
                    complete_ranges: vec![covered],
                    missing: Vec::new(),
                    missing_pieces: 0,
                    requests: 0,
                    years: Vec::new(),
                }
            })
            .collect();
        DatasetStatus {
            data_root: "data".into(),
            range: Some(range),
            totals: Default::default(),
            tickers,
            stray_files: Vec::new(),
            damaged_files: Vec::new(),
            legacy_layout_files: Vec::new(),
            verified: false,
            damaged_claims: Vec::new(),
        }
    }

    #[test]
    fn a_3000_ticker_dataset_shows_the_incomplete_first_and_counts_the_rest() {
        let h = from_status(&status(3000, &[17, 2500]), 60);
        assert_eq!(h.years, [2023, 2024, 2025]);
        assert_eq!(h.rows.len(), 60);
        assert_eq!(
            (h.rows[0].ticker.as_str(), h.rows[1].ticker.as_str()),
            ("T0017", "T2500")
        );
        let states: Vec<CellState> = h.rows[0].cells.iter().map(|c| c.state).collect();
        assert_eq!(
            states,
            [CellState::Complete, CellState::Partial, CellState::Missing]
        );
        assert_eq!(h.rows[2].ticker, "T0000");
        assert_eq!((h.more_complete, h.more_incomplete), (2940, 0));
        assert_eq!((h.tickers, h.complete), (3000, 2998));
        let h = from_status(&status(10, &[1, 2, 3]), 2);
        assert_eq!((h.more_complete, h.more_incomplete), (7, 1));
    }
}
