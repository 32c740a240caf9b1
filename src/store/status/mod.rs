//! What a dataset holds and what a resume would fetch, without reading bars.
//!
//! [`DatasetStatus::build`] reads only the coverage records, the directory tree, file
//! sizes and each Parquet file's footer (its row count): no data page is decoded, so a
//! status of thousands of ticker-years stays cheap. The report is plain data; [`render`]
//! owns its three output formats.

mod estimate;
mod remote;
pub mod render;
pub(crate) mod scan;

use std::path::PathBuf;

use jiff::civil::Date;
use serde::{Serialize, Serializer};

use crate::calendar::DateRange;
use crate::store::error::StoreError;
use crate::store::{DamageKind, Finding, Store, check_ticker};
pub use estimate::estimate_piece;
use estimate::ticker_status;
use scan::{FooterStats, Tree, footer_stats, list, par_map, scan_tree};

/// How a resume's requests are estimated (see [`estimate_piece`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EstimateRule {
    /// Most bars one page (request) returns: Polygon's `limit` of 50,000.
    pub page_rows: u64,
    /// Bars assumed for a whole ticker-year when no neighbouring year is known.
    pub rows_per_year: u64,
    /// Requests per second the resume may make.
    pub requests_per_second: f64,
}

/// How closely the files behind the coverage records are checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Check {
    /// Existence and size against the record (what every resume does).
    #[default]
    Quick,
    /// `--verify`: footers, row counts, time spans and timestamp order as well.
    Verify,
    /// `--repair`: verify, then quarantine each damaged file and withdraw its coverage
    /// (needs a writable store).
    Repair,
}

/// What to report on: which tickers, over which days.
#[derive(Debug, Clone, Default)]
pub struct StatusQuery {
    /// The tickers; `None` means every ticker the dataset knows (coverage or files).
    pub tickers: Option<Vec<String>>,
    /// First day; `None` means the first day any coverage record knows.
    pub from: Option<Date>,
    /// Last day; `None` means the last day any coverage record knows.
    pub to: Option<Date>,
    /// How closely files are checked against their records.
    pub check: Check,
}

/// Rows and bytes of one ticker-year, from the file footer and the file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct YearStats {
    /// Calendar year.
    pub year: i16,
    /// Rows (bars) in the year's Parquet file, from its footer.
    pub rows: u64,
    /// Size of the year's Parquet file in bytes.
    pub bytes: u64,
}

/// The state of one ticker over the asked range.
#[derive(Debug, Clone, Serialize)]
pub struct TickerStatus {
    /// The symbol.
    pub ticker: String,
    /// True when the coverage spans the whole asked range.
    pub complete: bool,
    /// The ranges known complete, clipped to the asked range.
    #[serde(serialize_with = "ranges")]
    pub complete_ranges: Vec<DateRange>,
    /// The ranges of the asked range not known complete.
    #[serde(serialize_with = "ranges")]
    pub missing: Vec<DateRange>,
    /// Ticker-year pieces a resume would fetch (the missing ranges split by year).
    pub missing_pieces: u64,
    /// Requests estimated for those pieces.
    pub requests: u64,
    /// Rows and bytes per year with a file, oldest first.
    pub years: Vec<YearStats>,
}

/// Sums over every reported ticker.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Tickers reported.
    pub tickers: u64,
    /// Tickers whose coverage spans the asked range.
    pub complete: u64,
    /// Tickers with at least one missing range.
    pub incomplete: u64,
    /// Parquet files within the asked years.
    pub files: u64,
    /// Rows in those files.
    pub rows: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// Missing ranges over all tickers.
    pub missing_ranges: u64,
    /// Missing ticker-year pieces over all tickers.
    pub missing_pieces: u64,
    /// Requests a resume is estimated to make.
    pub requests: u64,
    /// Seconds those requests take at the given rate (the rate alone, not latency).
    pub seconds: f64,
    /// The rate the estimate assumes, in requests per second.
    pub requests_per_second: f64,
}

/// The status of a dataset: what [`DatasetStatus::build`] returns.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetStatus {
    /// The data root.
    pub data_root: PathBuf,
    /// The asked range; `None` when the dataset knows no days and none were asked.
    #[serde(serialize_with = "opt_range")]
    pub range: Option<DateRange>,
    /// Sums, printed first.
    pub totals: Totals,
    /// One entry per ticker, in the asked order (or sorted when all are reported).
    pub tickers: Vec<TickerStatus>,
    /// Files or folders in the data root that are not `ticker=*/year=*/*.parquet`,
    /// relative to the root: they break Polars and pyarrow readers of the dataset.
    pub stray_files: Vec<PathBuf>,
    /// Parquet files whose footer cannot be read, left out of the rows and bytes.
    pub damaged_files: Vec<DamagedFile>,
    /// Bar files in the first layout (a `ticker` column beside the `ticker=` folder),
    /// relative to the root: `pandas.read_parquet` and `pq.read_table` fail on them until
    /// `barsmith upgrade` rewrites them.
    pub legacy_layout_files: Vec<PathBuf>,
    /// True when the files were verified (`--verify`/`--repair`), not only checked for
    /// existence and size.
    pub verified: bool,
    /// Ticker-years whose file is not what their coverage record says was written.
    pub damaged_claims: Vec<DamagedClaim>,
}

/// A ticker-year whose file is not what its coverage record says was written: a resume
/// fetches it again (its claims are not trusted).
#[derive(Debug, Clone, Serialize)]
pub struct DamagedClaim {
    /// The symbol.
    pub ticker: String,
    /// The calendar year.
    pub year: i16,
    /// The class: `missing`, `unreadable`, `rows`, `span`, `unsorted`, `duplicates`.
    pub cause: DamageKind,
    /// What exactly is wrong.
    pub detail: String,
    /// The file, relative to the data root.
    pub path: PathBuf,
    /// Where `--repair` moved the file (absolute), if it did.
    pub moved_to: Option<PathBuf>,
}

impl DamagedClaim {
    /// The claim of `f`, whose file is `path` relative to the data root.
    fn new(f: Finding, path: PathBuf) -> DamagedClaim {
        DamagedClaim {
            path,
            cause: f.damage.kind(),
            detail: f.damage.to_string(),
            ticker: f.ticker,
            year: f.year,
            moved_to: f.moved_to,
        }
    }
}

/// A bar file whose footer cannot be read (truncated, not Parquet, unreadable).
#[derive(Debug, Clone, Serialize)]
pub struct DamagedFile {
    /// The file, relative to the data root.
    pub path: PathBuf,
    /// Why it cannot be read.
    pub error: String,
}

impl DatasetStatus {
    /// Builds the status of `store` for `query`, estimating a resume with `rule`.
    pub fn build(
        store: &Store,
        query: &StatusQuery,
        rule: EstimateRule,
    ) -> Result<DatasetStatus, StoreError> {
        let tree = scan_tree(store.data_root())?;
        let tickers = match &query.tickers {
            Some(list) => list.clone(),
            None => known_tickers(&tree, coverage_tickers(store)?),
        };
        let mut thorough = Vec::new();
        if query.check != Check::Quick {
            thorough = par_map(&tickers, |t| store.verify(t))?.concat();
        }
        if query.check == Check::Repair {
            for f in &mut thorough {
                store.quarantine(f)?;
            }
        }
        let tree = if query.check == Check::Repair {
            scan_tree(store.data_root())? // repaired files left the data root
        } else {
            tree
        };
        let checked = par_map(&tickers, |t| store.checked_claims(t))?;
        let (coverages, quick): (Vec<_>, Vec<_>) = checked.into_iter().unzip();
        let findings = match query.check {
            Check::Quick => quick.concat(),
            Check::Verify | Check::Repair => thorough,
        };
        let range = asked_range(query, &coverages, year_span(&tree))?;
        let root = store.data_root();
        let footers = footer_stats(&tree, root, &tickers, range)?;
        let damaged_claims = findings
            .into_iter()
            .map(|f| {
                let path = store.file_path(&f.ticker, f.year);
                let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                DamagedClaim::new(f, rel)
            })
            .collect();
        let parts = Parts {
            data_root: root.to_path_buf(),
            range,
            tickers,
            coverages,
            footers,
            strays: tree.strays,
            verified: query.check != Check::Quick,
            damaged_claims,
        };
        Ok(parts.assemble(rule))
    }

    fn add(&mut self, t: TickerStatus) {
        let s = &mut self.totals;
        s.tickers += 1;
        if t.complete {
            s.complete += 1;
        } else {
            s.incomplete += 1;
        }
        s.files += t.years.len() as u64;
        s.rows += t.years.iter().map(|y| y.rows).sum::<u64>();
        s.bytes += t.years.iter().map(|y| y.bytes).sum::<u64>();
        s.missing_ranges += t.missing.len() as u64;
        s.missing_pieces += t.missing_pieces;
        s.requests += t.requests;
        self.tickers.push(t);
    }
}

/// What a status is made of, read from a folder or from S3.
struct Parts {
    data_root: PathBuf,
    range: Option<DateRange>,
    /// The reported tickers, and their ranges known complete (in the same order).
    tickers: Vec<String>,
    coverages: Vec<Vec<DateRange>>,
    footers: FooterStats,
    strays: Vec<PathBuf>,
    verified: bool,
    damaged_claims: Vec<DamagedClaim>,
}

impl Parts {
    /// The report: one entry per ticker, the totals, the resume estimate by `rule`.
    fn assemble(self, rule: EstimateRule) -> DatasetStatus {
        let damaged_files = self
            .footers
            .damaged
            .into_iter()
            .map(|(path, error)| DamagedFile { path, error })
            .collect();
        let mut report = DatasetStatus {
            data_root: self.data_root,
            range: self.range,
            totals: Totals::default(),
            tickers: Vec::with_capacity(self.tickers.len()),
            stray_files: self.strays,
            damaged_files,
            legacy_layout_files: self.footers.legacy,
            verified: self.verified,
            damaged_claims: self.damaged_claims,
        };
        let per_ticker = self.tickers.into_iter().zip(self.coverages);
        for ((ticker, covered), years) in per_ticker.zip(self.footers.years) {
            report.add(ticker_status(ticker, &covered, years, self.range, rule));
        }
        report.totals.requests_per_second = rule.requests_per_second;
        report.totals.seconds = report.totals.requests as f64 / rule.requests_per_second;
        report
    }
}

/// The range to report on: the query's bounds, else the span of the coverage records,
/// else the span of the years with files (`file_years`, first and last).
fn asked_range(
    query: &StatusQuery,
    coverages: &[Vec<DateRange>],
    file_years: Option<(i16, i16)>,
) -> Result<Option<DateRange>, StoreError> {
    let all = coverages.iter().flatten();
    let mut from = all.clone().map(|r| r.from).min();
    let mut to = all.map(|r| r.to).max();
    if from.is_none()
        && let Some((first, last)) = file_years
    {
        from = Date::new(first, 1, 1).ok();
        to = Date::new(last, 12, 31).ok();
    }
    let (from, to) = match (query.from.or(from), query.to.or(to)) {
        (Some(f), Some(t)) => (f, t),
        (None, None) if query.tickers.is_none() => return Ok(None),
        _ => {
            return Err(StoreError::Invalid(
                "the dataset records no complete days for these tickers, so the range to \
                 report on is unknown: pass --from and --to"
                    .into(),
            ));
        }
    };
    DateRange::new(from, to)
        .map(Some)
        .map_err(|e| StoreError::Invalid(e.0))
}

/// The first and last year with a file, if any.
fn year_span<F>(tree: &Tree<F>) -> Option<(i16, i16)> {
    let years = tree.files.values().flat_map(|y| y.keys().copied());
    Some((years.clone().min()?, years.max()?))
}

/// Every ticker with a coverage record (`covered`) or files, sorted.
fn known_tickers<F>(tree: &Tree<F>, covered: Vec<String>) -> Vec<String> {
    let mut out: std::collections::BTreeSet<String> = tree.files.keys().cloned().collect();
    out.extend(covered);
    out.into_iter().collect()
}

/// The tickers with a coverage record in `store`.
fn coverage_tickers(store: &Store) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for (p, _) in list(&store.layout.coverage_dir())? {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if let Some(t) = name.strip_suffix(".json")
            && check_ticker(t).is_ok()
        {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

fn ranges<S: Serializer>(r: &[DateRange], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(r.iter().map(|r| [r.from.to_string(), r.to.to_string()]))
}

fn opt_range<S: Serializer>(r: &Option<DateRange>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Span {
        from: String,
        to: String,
    }
    r.map(|r| Span {
        from: r.from.to_string(),
        to: r.to.to_string(),
    })
    .serialize(s)
}
