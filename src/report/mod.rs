//! The run report: one self-contained HTML file (`report.html` in the run folder) that
//! shows a run at a glance — a timeline of batch attempts, request and bar rates
//! against the budget, failures grouped by class and kind with links to the batch
//! logs, and a ticker × year coverage heatmap of the dataset.
//!
//! The run folder is read through [`crate::batch`] (its records module owns the
//! format) and the dataset through [`crate::store::status`] (footers and coverage
//! records only). The page has no external resource of any kind: inline CSS, inline
//! SVG and one small inline script, so it opens offline and from an archive.
//!
//! It stays readable for runs of thousands of tickers: the timeline shows at most
//! [`TIMELINE_ROWS`] attempts (the troubled ones first), each failure group at most
//! [`GROUP_TICKERS`] tickers and the heatmap at most [`HEATMAP_ROWS`] tickers (the
//! incomplete ones first), each with a line saying how many more there are.

mod failures;
mod heatmap;
mod html;
mod svg;
mod timeline;

use std::path::{Path, PathBuf};

use crate::batch::{RunInfo, names, read_joblog, read_run_json};

pub use failures::{Failure, FailureGroup};
pub use heatmap::{Cell, CellState, Heatmap, HeatmapRow};
pub use html::{escape, render};
pub use timeline::{Attempt, Outcome, Rates};

/// Most attempts drawn on the timeline.
pub const TIMELINE_ROWS: usize = 200;
/// Most tickers listed per failure group.
pub const GROUP_TICKERS: usize = 20;
/// Most tickers drawn in the heatmap.
pub const HEATMAP_ROWS: usize = 60;
/// The report's file name inside a run folder.
pub const REPORT_FILE: &str = "report.html";

/// What can stop a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The folder holds no run (no `joblog.jsonl`).
    #[error(
        "{} is not a run folder (no {}): pass the folder `barsmith run` printed as \"run folder\"",
        .0.display(),
        names::JOBLOG
    )]
    NotARun(PathBuf),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Everything the page shows, gathered from the run folder and the dataset.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The run folder (absolute).
    pub run_dir: PathBuf,
    /// `run.json`, when the run wrote one.
    pub info: Option<RunInfo>,
    /// Every attempt, in start order.
    pub attempts: Vec<Attempt>,
    /// Seconds from the run's start to the end of its last attempt.
    pub span_s: f64,
    /// Requests and bars per second over time, with the budget.
    pub rates: Rates,
    /// Failures of the run grouped by class and kind, the largest group first.
    pub failures: Vec<FailureGroup>,
    /// The coverage heatmap, or why there is none.
    pub heatmap: Result<Heatmap, String>,
}

/// Builds the report of the run in `run_dir`. The dataset is `dataset` when given,
/// else the `outdir` flag recorded in `run.json` (relative to the current folder).
pub fn build(run_dir: &Path, dataset: Option<&Path>) -> Result<RunReport, ReportError> {
    let run_dir = std::path::absolute(run_dir).map_err(|source| ReportError::Io {
        path: run_dir.to_path_buf(),
        source,
    })?;
    let entries = read_joblog(&run_dir).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ReportError::NotARun(run_dir.clone())
        } else {
            ReportError::Io {
                path: run_dir.join(names::JOBLOG),
                source,
            }
        }
    })?;
    // A damaged run.json costs the header and the budget, not the report.
    let info = read_run_json(&run_dir).unwrap_or_else(|e| {
        tracing::warn!(
            "report: cannot read {}: {e}",
            run_dir.join(names::RUN_JSON).display()
        );
        None
    });
    let scan = timeline::scan(&run_dir, &entries, info.as_ref());
    let failures = failures::group(&run_dir, scan.failures);
    let outdir = dataset
        .map(Path::to_path_buf)
        .or_else(|| flag(info.as_ref(), "outdir").map(PathBuf::from));
    let heatmap = match outdir {
        Some(dir) => heatmap::build(&dir, info.as_ref(), &scan.tickers, HEATMAP_ROWS),
        None => Err("the run recorded no --outdir: pass --outdir to `barsmith report`".into()),
    };
    Ok(RunReport {
        run_dir,
        info,
        attempts: scan.attempts,
        span_s: scan.span_s,
        rates: scan.rates,
        failures,
        heatmap,
    })
}

/// Builds the report of `run_dir` and writes it to `out` (default
/// `<run_dir>/report.html`) at once (temporary file, then rename). Returns the path.
pub fn write(
    run_dir: &Path,
    out: Option<&Path>,
    dataset: Option<&Path>,
) -> Result<PathBuf, ReportError> {
    let report = build(run_dir, dataset)?;
    let out = out.map_or_else(|| report.run_dir.join(REPORT_FILE), Path::to_path_buf);
    let io = |source| ReportError::Io {
        path: out.clone(),
        source,
    };
    let out_dir = std::path::absolute(&out)
        .map_err(io)?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let page = render(&report, &out_dir);
    let name = out.file_name().map_or_else(
        || REPORT_FILE.to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let tmp = out.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, page).map_err(io)?;
    std::fs::rename(&tmp, &out).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })?;
    Ok(out)
}

/// A flag of the run as text (`"50/s"`, `"data/minute"`), if recorded.
fn flag(info: Option<&RunInfo>, name: &str) -> Option<String> {
    match info?.flags.get(name)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}
