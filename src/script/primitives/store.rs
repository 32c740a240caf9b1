//! What is already stored: coverage queries against an output folder, for resume.
//!
//! Read-only: nothing here creates or changes the output folder, and a folder that
//! does not exist yet simply has nothing complete. Every primitive here also takes an
//! `s3://bucket/prefix` dataset, read from S3 (the bucket as the AWS variables describe
//! it, as for the worker), its claims checked against the objects' sizes from one
//! listing per ticker, as a folder's against its files' sizes.

use std::path::Path;

use crate::calendar::DateRange;
use crate::script::types::bars::ScriptBars;
use crate::store::dataset::{block_on, open_s3_read_only};
use crate::store::remote::{S3Dataset, S3Location};
use crate::store::{DatasetIdentity, DatasetLocation, Layout, Store, StoreError};

/// Where `outdir` lives: a local folder or `s3://bucket/prefix`.
fn parse(outdir: &Path) -> Result<DatasetLocation, String> {
    DatasetLocation::parse(outdir).map_err(|e| e.to_string())
}

/// `read` of the dataset on S3 at `location`, opened read-only, from a thread and
/// runtime of its own (primitives are synchronous).
fn on_s3<T, F, Fut>(location: S3Location, read: F) -> Result<T, String>
where
    T: Send,
    F: FnOnce(S3Dataset) -> Fut + Send,
    Fut: Future<Output = Result<T, StoreError>>,
{
    block_on(move || async move { read(open_s3_read_only(location).await?).await })
        .and_then(|r| r)
        .map_err(|e| e.to_string())
}

/// The tickers that have coverage records in `outdir`, sorted.
pub(crate) fn stored_tickers(outdir: &Path) -> Result<Vec<String>, String> {
    if let DatasetLocation::S3(location) = parse(outdir)? {
        return on_s3(location, |ds| async move { ds.stored_tickers().await });
    }
    let dir = Layout::resolve(outdir)
        .map_err(|e| e.to_string())?
        .coverage_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    let mut out: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json").map(str::to_string)
        })
        .filter(|t| crate::ticker::validate_ticker(t).is_ok())
        .collect();
    out.sort();
    Ok(out)
}

/// The tickers among `tickers` (all stored ones when `None`) complete over `range`.
pub(crate) fn completed(
    outdir: &Path,
    tickers: Option<Vec<String>>,
    range: DateRange,
) -> Result<Vec<String>, String> {
    if let DatasetLocation::S3(location) = parse(outdir)? {
        return on_s3(location, |ds| async move {
            let tickers = match tickers {
                Some(t) => t,
                None => ds.stored_tickers().await?,
            };
            ds.completed_tickers(&tickers, range).await
        });
    }
    let store = Store::open_read_only(outdir).map_err(|e| e.to_string())?;
    let tickers = match tickers {
        Some(t) => t,
        None => stored_tickers(outdir)?,
    };
    store
        .completed_tickers(&tickers, range)
        .map_err(|e| e.to_string())
}

/// The parts of `range` not known complete for `ticker` in `outdir`.
pub(crate) fn missing(
    outdir: &Path,
    ticker: &str,
    range: DateRange,
) -> Result<Vec<DateRange>, String> {
    if let DatasetLocation::S3(location) = parse(outdir)? {
        return on_s3(
            location,
            |ds| async move { ds.missing(ticker, range).await },
        );
    }
    let store = Store::open_read_only(outdir).map_err(|e| e.to_string())?;
    store.missing(ticker, range).map_err(|e| e.to_string())
}

/// The ranges known complete for `ticker` in `outdir`.
pub(crate) fn coverage(outdir: &Path, ticker: &str) -> Result<Vec<DateRange>, String> {
    if let DatasetLocation::S3(location) = parse(outdir)? {
        return on_s3(location, |ds| async move {
            Ok(ds.checked_coverage(ticker).await?.0)
        });
    }
    let store = Store::open_read_only(outdir).map_err(|e| e.to_string())?;
    store.coverage(ticker).map_err(|e| e.to_string())
}

/// The stored bars of `ticker` over `range` in the dataset at `outdir`.
pub(crate) fn load(outdir: &Path, ticker: &str, range: DateRange) -> Result<ScriptBars, String> {
    if let DatasetLocation::S3(location) = parse(outdir)? {
        let url = location.to_string();
        let (identity, bars) = on_s3(location, |ds| async move {
            Ok((ds.identity().cloned(), ds.read_bars(ticker, range).await?))
        })?;
        let identity =
            identity.ok_or_else(|| format!("{url} is not a barsmith dataset (no dataset.json)"))?;
        return Ok(ScriptBars::new(ticker, bars, identity));
    }
    if !outdir.is_dir() {
        return Err(format!(
            "no dataset at {} (no such folder)",
            outdir.display()
        ));
    }
    let store = Store::open_read_only(outdir).map_err(|e| e.to_string())?;
    let identity = match store.identity() {
        Some(id) => id.clone(),
        None if has_ticker_folders(store.data_root()) => DatasetIdentity::minute(true),
        None => {
            return Err(format!(
                "{} is not a barsmith dataset (no dataset.json, no ticker= folders)",
                outdir.display()
            ));
        }
    };
    let bars = store.read_bars(ticker, range).map_err(|e| e.to_string())?;
    Ok(ScriptBars::new(ticker, bars, identity))
}

/// True when `root` holds a `ticker=...` folder (a dataset written before
/// `dataset.json` existed).
fn has_ticker_folders(root: &Path) -> bool {
    std::fs::read_dir(root).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("ticker="))
    })
}

/// The store as a plugin module.
#[rhai::plugin::export_module]
pub mod store_fns {
    use rhai::{Array, Dynamic};

    use crate::script::types::bars::ScriptBars;
    use crate::script::value::{DateArg, Fallible, date_args, error, range_map, strings};

    /// Reads the bars of `ticker` from `from` to `to` (inclusive `YYYY-MM-DD` New York
    /// dates) from the dataset at `outdir` (a folder `barsmith ingest` or a run
    /// wrote, or `s3://bucket/prefix`). Returns `Bars`, like `fetch_minute_bars`, without touching the network;
    /// days not on disk are simply absent (see `missing_ranges`). Nothing is written.
    ///
    /// Errors when `outdir` does not exist or is not a dataset, a date is invalid,
    /// the ticker is not a valid symbol, or a file cannot be read.
    ///
    /// Example: `let bars = load_bars("data/minute", "AAPL", "2024-01-02", "2024-01-31");`
    #[rhai_fn(return_raw)]
    pub fn load_bars(
        outdir: &str,
        ticker: &str,
        from: DateArg,
        to: DateArg,
    ) -> Fallible<ScriptBars> {
        let range = date_args("load_bars", &from, &to)?;
        super::load(std::path::Path::new(outdir), ticker, range)
            .map_err(|e| error(format!("load_bars: {e}")))
    }

    /// The tickers whose recorded coverage in `outdir` spans all of `from`..`to`
    /// (inclusive `YYYY-MM-DD` New York dates), sorted. A missing `outdir` has none.
    /// This is what resume skips. A year whose file was deleted or changed size since
    /// it was written does not count (see `barsmith status --verify`). `outdir` may be
    /// `s3://bucket/prefix`.
    ///
    /// Errors when a date is not a valid `YYYY-MM-DD` or `from` is after `to`, or when
    /// the coverage records cannot be read.
    ///
    /// Example: `let todo = difference(universe, completed_tickers("data/minute", "2004-01-01", "2010-12-31"));`
    #[rhai_fn(return_raw)]
    pub fn completed_tickers(outdir: &str, from: DateArg, to: DateArg) -> Fallible<Array> {
        let range = date_args("completed_tickers", &from, &to)?;
        super::completed(std::path::Path::new(outdir), None, range)
            .map(|t| t.into_iter().map(Dynamic::from).collect())
            .map_err(|e| error(format!("completed_tickers: {e}")))
    }

    /// Every ticker with coverage records in `outdir` (a folder or
    /// `s3://bucket/prefix`), sorted (`[]` for a folder that does not exist yet): the universe an all-tickers flat-file pass wrote, for
    /// what to top up from REST afterwards.
    ///
    /// Errors when the dataset's folder cannot be listed.
    ///
    /// Example: `for t in stored_tickers("data/minute") { log(`${t}: ${missing_ranges("data/minute", t, from, to)}`); }`
    #[rhai_fn(return_raw)]
    pub fn stored_tickers(outdir: &str) -> Fallible<Array> {
        super::stored_tickers(std::path::Path::new(outdir))
            .map(|t| t.into_iter().map(Dynamic::from).collect())
            .map_err(|e| error(format!("stored_tickers: {e}")))
    }

    /// The tickers of `tickers` (in their order) complete over `from`..`to` in `outdir`.
    /// This is what the wrapper's resume step skips.
    ///
    /// Errors as `completed_tickers(outdir, from, to)`, and when an element of
    /// `tickers` is not a string.
    ///
    /// Example: `let done = completed_tickers(outdir, universe, from, to);`
    #[rhai_fn(name = "completed_tickers", return_raw)]
    pub fn completed_among(
        outdir: &str,
        tickers: Array,
        from: DateArg,
        to: DateArg,
    ) -> Fallible<Array> {
        let range = date_args("completed_tickers", &from, &to)?;
        let tickers = strings("completed_tickers", "tickers", &tickers)?;
        super::completed(std::path::Path::new(outdir), Some(tickers), range)
            .map(|t| t.into_iter().map(Dynamic::from).collect())
            .map_err(|e| error(format!("completed_tickers: {e}")))
    }

    /// The parts of `from`..`to` not yet complete for `ticker` in `outdir` (a folder
    /// or `s3://bucket/prefix`), oldest first, as `#{from, to}` maps; `[]` when complete. A range reaching today is
    /// never recorded complete (the day is not over), so today always shows as missing.
    ///
    /// Errors when a date is invalid or the coverage record cannot be read.
    ///
    /// Example: `for r in missing_ranges(outdir, "AAPL", from, to) { log(`${r.from}..${r.to}`); }`
    #[rhai_fn(return_raw)]
    pub fn missing_ranges(
        outdir: &str,
        ticker: &str,
        from: DateArg,
        to: DateArg,
    ) -> Fallible<Array> {
        let range = date_args("missing_ranges", &from, &to)?;
        super::missing(std::path::Path::new(outdir), ticker, range)
            .map(|m| m.into_iter().map(range_map).collect())
            .map_err(|e| error(format!("missing_ranges: {e}")))
    }

    /// The ranges recorded complete for `ticker` in `outdir` (a folder or
    /// `s3://bucket/prefix`), oldest first, as
    /// `#{from, to}` maps (`YYYY-MM-DD` strings, inclusive); `[]` for a ticker never
    /// stored. Ranges without bars (before a listing, after a delisting) count too;
    /// the claims of a year whose file was deleted or changed size since it was written
    /// do not.
    ///
    /// Errors when the coverage record cannot be read.
    ///
    /// Example: `print(coverage("data/minute", "AAPL"));`
    #[rhai_fn(return_raw)]
    pub fn coverage(outdir: &str, ticker: &str) -> Fallible<Array> {
        super::coverage(std::path::Path::new(outdir), ticker)
            .map(|m| m.into_iter().map(range_map).collect())
            .map_err(|e| error(format!("coverage: {e}")))
    }
}
