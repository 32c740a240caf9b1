//! Files a script reads or writes: JSON state, CSV reports.
//!
//! Writes are atomic (a temporary file renamed over the target), so a report or a
//! state file is never seen half-written, even after Ctrl-C.

use std::io::Write;
use std::path::Path;

use rhai::{Array, Dynamic, Map};

use crate::input::{InputKind, read_text};
use crate::script::value::{Fallible, error};

/// Writes `bytes` to `path` atomically, creating missing parent folders.
pub(crate) fn write_atomically(function: &str, path: &Path, bytes: &[u8]) -> Fallible<()> {
    let fail =
        |e: std::io::Error| error(format!("{function}: cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

/// The text of one CSV cell: strings as they are, `()` empty, the rest printed.
fn cell(v: &Dynamic) -> String {
    if v.is_unit() {
        String::new()
    } else {
        v.to_string()
    }
}

/// Keys that lead the header when present, in this order: the ticker and date range
/// first (`failures()` rows), then the fields of a bar as `Bars.to_csv` writes them.
fn leading_columns() -> impl Iterator<Item = &'static str> + Clone {
    ["ticker", "from", "to"]
        .into_iter()
        .chain(crate::script::types::bars::ops::CSV_COLUMNS)
}

/// The header of map rows without explicit columns: the [`leading_columns`] present
/// in some row, then every other key in first-seen order. Rhai maps keep their keys
/// sorted, so "first-seen" is alphabetical within a row, then keys that only later
/// rows have.
fn default_header(maps: &[Map]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for k in maps.iter().flat_map(|m| m.keys()) {
        if !seen.iter().any(|c| c == k.as_str()) {
            seen.push(k.to_string());
        }
    }
    let leading = leading_columns()
        .filter(|c| seen.iter().any(|s| s == c))
        .map(str::to_string);
    let rest: Vec<String> = seen
        .iter()
        .filter(|s| !leading_columns().any(|c| c == s.as_str()))
        .cloned()
        .collect();
    leading.chain(rest).collect()
}

/// Renders rows (maps or arrays) as CSV; `columns` fixes the header and its order.
pub(crate) fn csv_text(rows: &Array, columns: Option<Vec<String>>) -> Fallible<String> {
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    let maps: Option<Vec<Map>> = rows
        .iter()
        .map(|r| r.read_lock::<Map>().map(|m| m.clone()))
        .collect();
    let csv_err = |e: csv::Error| error(format!("write_csv: {e}"));
    match maps {
        Some(maps) if !maps.is_empty() || columns.is_some() => {
            let header = columns.unwrap_or_else(|| default_header(&maps));
            w.write_record(&header).map_err(csv_err)?;
            for (i, m) in maps.iter().enumerate() {
                if let Some(k) = m.keys().find(|k| !header.iter().any(|c| c == k.as_str())) {
                    return Err(error(format!(
                        "write_csv: row {i} has key '{k}', which is not one of the columns: {}",
                        header.join(", ")
                    )));
                }
                let record: Vec<String> = header
                    .iter()
                    .map(|c| m.get(c.as_str()).map(cell).unwrap_or_default())
                    .collect();
                w.write_record(&record).map_err(csv_err)?;
            }
        }
        _ => {
            if let Some(cols) = columns {
                w.write_record(&cols).map_err(csv_err)?;
            }
            for (i, r) in rows.iter().enumerate() {
                let items = r.read_lock::<Array>().ok_or_else(|| {
                    error(format!(
                        "write_csv: rows must all be maps or all be arrays; row {i} is {}",
                        r.type_name()
                    ))
                })?;
                w.write_record(items.iter().map(cell)).map_err(csv_err)?;
            }
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| error(format!("write_csv: {e}")))?;
    String::from_utf8(bytes).map_err(|e| error(format!("write_csv: {e}")))
}

/// Reads a CSV file with a header row into one map per row (header → cell text).
/// A leading BOM is dropped; a short row gives empty strings for its missing cells.
pub(crate) fn read_csv_rows(path: &Path) -> Result<Vec<Map>, String> {
    let text = read_text(path, InputKind::Csv).map_err(|e| format!("read_csv: {e}"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let bad = |e: csv::Error| format!("read_csv: {}: {e}", path.display());
    let header: Vec<String> = reader
        .headers()
        .map_err(bad)?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(bad)?;
        let row: Map = header
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str().into(), record.get(i).unwrap_or("").into()))
            .collect();
        rows.push(row);
    }
    Ok(rows)
}

/// Files as a plugin module.
#[rhai::plugin::export_module]
pub mod io_fns {
    use rhai::{Array, Dynamic};

    use crate::script::value::{Fallible, error, from_json, strings, to_json};

    /// Writes `rows` to a CSV file (atomically). Rows are maps or arrays (written as
    /// they are). For maps the header is `ticker`, `from`, `to` and the bar fields
    /// (`timestamp`, `time`, `open`, `high`, `low`, `close`, `volume`, `vwap`,
    /// `transactions`, `otc`) when present, in that order, then the other keys in
    /// first-seen order: a Rhai map keeps its keys sorted (not in the order written),
    /// so that is alphabetical within a row, then keys only later rows have. Pass
    /// `columns` to choose the order. `()` is an empty cell. Missing parent folders
    /// are created.
    ///
    /// Errors when rows mix maps and arrays, or the file cannot be written.
    ///
    /// Example: `write_csv("failed.csv", [#{ticker: "AAPL", kind: "timeout"}]);`
    #[rhai_fn(return_raw)]
    pub fn write_csv(path: &str, rows: Array) -> Fallible<()> {
        let text = super::csv_text(&rows, None)?;
        super::write_atomically("write_csv", std::path::Path::new(path), text.as_bytes())
    }

    /// Writes `rows` (maps) to a CSV file with exactly `columns`, in that order; a key
    /// missing from a row is an empty cell, a key not in `columns` is an error.
    /// Errors also when an element of `columns` is not a string or the file cannot be
    /// written.
    ///
    /// Example: `write_csv("failed.csv", rows, ["ticker", "class", "kind", "message"]);`
    #[rhai_fn(name = "write_csv", return_raw)]
    pub fn write_csv_columns(path: &str, rows: Array, columns: Array) -> Fallible<()> {
        let columns = strings("write_csv", "columns", &columns)?;
        let text = super::csv_text(&rows, Some(columns))?;
        super::write_atomically("write_csv", std::path::Path::new(path), text.as_bytes())
    }

    /// Writes `value` (map, array, string, number, bool or `()`) as pretty JSON,
    /// atomically, creating missing parent folders.
    ///
    /// Errors when `value` holds something JSON cannot represent (e.g. a `BatchHandle`)
    /// or the file cannot be written.
    ///
    /// Example: `write_json("state.json", #{done: done, failed: failed});`
    #[rhai_fn(return_raw)]
    pub fn write_json(path: &str, value: Dynamic) -> Fallible<()> {
        let json = to_json(&value)?;
        let mut text =
            serde_json::to_string_pretty(&json).map_err(|e| error(format!("write_json: {e}")))?;
        text.push('\n');
        super::write_atomically("write_json", std::path::Path::new(path), text.as_bytes())
    }

    /// Reads a CSV file with a header row. Returns an array with one map per row,
    /// keyed by the header names, every cell a string (convert with `parse_int` /
    /// `parse_float`); a short row has `""` for its missing cells. A header-only file
    /// gives `[]`.
    ///
    /// Errors when the file cannot be read or is not valid CSV (e.g. not UTF-8).
    ///
    /// Example: `let retry = read_csv("runs/20250101-120000/failed_tickers.csv").filter(|r| r.class == "retryable").map(|r| r.ticker);`
    #[rhai_fn(return_raw)]
    pub fn read_csv(path: &str) -> Fallible<Array> {
        super::read_csv_rows(std::path::Path::new(path))
            .map(|rows| rows.into_iter().map(Dynamic::from_map).collect())
            .map_err(error)
    }

    /// Reads a JSON file into script values: objects become maps, arrays arrays,
    /// `null` becomes `()`.
    ///
    /// Errors when the file cannot be read or is not valid JSON.
    ///
    /// Example: `let state = read_json("state.json");`
    #[rhai_fn(return_raw)]
    pub fn read_json(path: &str) -> Fallible<Dynamic> {
        let json = crate::input::InputKind::Json;
        let text = crate::input::read_text(std::path::Path::new(path), json)
            .map_err(|e| error(format!("read_json: {e}")))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| error(format!("read_json: {path} is not valid JSON: {e}")))?;
        Ok(from_json(value))
    }

    /// True when a file or folder exists at `path`. Never fails.
    ///
    /// Example: `let state = if file_exists("state.json") { read_json("state.json") } else { #{} };`
    #[rhai_fn(volatile)]
    pub fn file_exists(path: &str) -> bool {
        std::path::Path::new(path).exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, Dynamic)]) -> Dynamic {
        Dynamic::from_map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn csv_of_maps_uses_given_columns_and_blanks_for_unit() {
        let rows = vec![
            row(&[("ticker", "A".into()), ("kind", Dynamic::UNIT)]),
            row(&[("ticker", "B,C".into()), ("kind", "timeout".into())]),
        ];
        let text = csv_text(&rows, Some(vec!["ticker".into(), "kind".into()])).unwrap();
        assert_eq!(text, "ticker,kind\nA,\n\"B,C\",timeout\n");
        let e = csv_text(&rows, Some(vec!["ticker".into()]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("key 'kind', which is not one of the columns"),
            "{e}"
        );
    }

    #[test]
    fn csv_header_puts_ticker_range_and_bar_fields_first_then_first_seen_keys() {
        let rows = vec![
            row(&[
                ("zeta", 1.into()),
                ("ticker", "A".into()),
                ("kind", "x".into()),
            ]),
            row(&[("to", "2024-01-05".into()), ("from", "2024-01-02".into())]),
            row(&[
                ("close", 2.0.into()),
                ("alpha", 3.into()),
                ("open", 1.0.into()),
            ]),
        ];
        let text = csv_text(&rows, None).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            "ticker,from,to,open,close,kind,zeta,alpha"
        );
        assert!(text.contains("\nA,,,,,x,1,\n"), "{text}");
    }

    #[test]
    fn csv_of_arrays_is_written_as_is() {
        let rows = vec![Dynamic::from_array(vec![1.into(), "x".into()])];
        assert_eq!(csv_text(&rows, None).unwrap(), "1,x\n");
    }

    #[test]
    fn csv_rows_are_maps_of_strings_keyed_by_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.csv");
        std::fs::write(
            &p,
            "\u{feff}ticker,class, kind\nAAPL,retryable,timeout\nMSFT\n",
        )
        .unwrap();
        let rows = read_csv_rows(&p).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["ticker"].to_string(), "AAPL");
        assert_eq!(rows[0]["kind"].to_string(), "timeout");
        assert_eq!(rows[1]["class"].to_string(), "");
        assert!(read_csv_rows(&dir.path().join("nope.csv")).is_err());
    }

    #[test]
    fn atomic_write_creates_folders_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/out.json");
        write_atomically("t", &p, b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{}");
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }
}
