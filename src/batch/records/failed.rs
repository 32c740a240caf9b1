//! `failed_tickers.csv`: the tickers a run left incomplete, why, and the range each was
//! asked for. Readable as a universe (only its `ticker` column counts there) and by
//! `failures()`. Files of older runs lack the `from,to` columns; the reader takes
//! columns by name, so both read the same.

use std::io;
use std::path::Path;

use super::names;
use crate::batch::result::{TickerFailure, TickerOutcome};
use crate::batch::secrets::Secrets;

/// The header of `failed_tickers.csv`; older runs wrote the first four only.
pub const FAILED_COLUMNS: [&str; 6] = ["ticker", "class", "kind", "message", "from", "to"];

/// One row of `failed_tickers.csv`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedTicker {
    /// Symbol.
    pub ticker: String,
    /// Error class (`retryable`, `ticker`, `run`, `pending`).
    pub class: String,
    /// Error kind (`server`, `not_run`, ...).
    pub kind: String,
    /// Human-readable cause, secrets redacted, on one line.
    pub message: String,
    /// First day asked for (empty in older runs).
    pub from: String,
    /// Last day asked for, inclusive (empty in older runs).
    pub to: String,
}

/// The CSV text of `failed` (latest outcomes that are not complete).
pub(crate) fn csv_bytes(failed: Vec<TickerOutcome>, secrets: &Secrets) -> io::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(FAILED_COLUMNS).map_err(io::Error::other)?;
    for t in failed {
        let e = t.error.unwrap_or_else(|| TickerFailure {
            class: "retryable".into(),
            kind: t.status.as_str().into(),
            message: String::new(),
            ..Default::default()
        });
        let message = secrets.redact(&e.message).replace(['\n', '\r'], " ");
        w.write_record([
            t.ticker.as_str(),
            &e.class,
            &e.kind,
            &message,
            &t.from,
            &t.to,
        ])
        .map_err(io::Error::other)?;
    }
    w.into_inner().map_err(|e| io::Error::other(e.to_string()))
}

/// Reads `failed_tickers.csv` of `run_dir`; `Ok(None)` when the run has not written
/// it (still running, or killed before its records).
pub fn read_failed_tickers(run_dir: &Path) -> io::Result<Option<Vec<FailedTicker>>> {
    let path = run_dir.join(names::FAILED_TICKERS);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = |e: csv::Error| io::Error::other(format!("{}: {e}", path.display()));
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(bad)?
        .iter()
        .map(str::to_string)
        .collect();
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let cols = FAILED_COLUMNS.map(col);
    let mut rows = Vec::new();
    for record in reader.records() {
        let r = record.map_err(bad)?;
        let field = |i: usize| cols[i].and_then(|c| r.get(c)).unwrap_or("").to_string();
        rows.push(FailedTicker {
            ticker: field(0),
            class: field(1),
            kind: field(2),
            message: field(3),
            from: field(4),
            to: field(5),
        });
    }
    Ok(Some(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_new_and_older_files_by_column_name() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_failed_tickers(dir.path()).unwrap(), None);
        let outcome = TickerOutcome {
            ticker: "AAPL".into(),
            status: crate::batch::TickerStatus::NotRun,
            bars: 0,
            requests: 0,
            error: None,
            from: "2024-03-04".into(),
            to: "2024-03-08".into(),
            no_bars: None,
        };
        let bytes = csv_bytes(vec![outcome], &Secrets::default()).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            "ticker,class,kind,message,from,to\nAAPL,retryable,not_run,,2024-03-04,2024-03-08\n"
        );
        std::fs::write(dir.path().join(names::FAILED_TICKERS), &bytes).unwrap();
        let rows = read_failed_tickers(dir.path()).unwrap().unwrap();
        assert_eq!(
            (rows[0].from.as_str(), rows[0].to.as_str()),
            ("2024-03-04", "2024-03-08")
        );
        std::fs::write(
            dir.path().join(names::FAILED_TICKERS),
            "ticker,class,kind,message\nMSFT,ticker,not_found,\"no, such\"\n",
        )
        .unwrap();
        let rows = read_failed_tickers(dir.path()).unwrap().unwrap();
        assert_eq!(rows[0].ticker, "MSFT");
        assert_eq!(rows[0].message, "no, such");
        assert_eq!(rows[0].from, "");
    }
}
