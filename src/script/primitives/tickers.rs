//! Ticker universes: reading and checking lists of symbols.

use std::collections::HashSet;
use std::path::Path;

use crate::input::{InputKind, read_text};
use crate::ticker::validate_ticker;

/// Reads a universe file: a CSV with a `ticker` column (header matched without regard
/// to case) or one symbol per line. Blank lines, `#` comments and duplicates are
/// dropped (first occurrence kept); every invalid symbol is reported with its line.
pub(crate) fn read_universe(path: &Path) -> Result<Vec<String>, String> {
    let text = read_text(path, InputKind::Tickers).map_err(|e| format!("read_tickers: {e}"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    let is_header = |cell: &str| cell.trim().trim_matches('"').eq_ignore_ascii_case("ticker");
    let raw: Vec<(usize, String)> = if first.contains(',') || is_header(first) {
        from_csv(text, path)?
    } else {
        text.lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim().to_string()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .collect()
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (line, symbol) in raw {
        let symbol = symbol.trim();
        if symbol.is_empty() {
            continue;
        }
        match validate_ticker(symbol) {
            Err(e) => bad.push(format!("  line {line}: {e}")),
            Ok(()) if seen.insert(symbol.to_string()) => out.push(symbol.to_string()),
            Ok(()) => {}
        }
    }
    if !bad.is_empty() {
        let n = bad.len();
        bad.truncate(10);
        let more = if n > 10 {
            format!("\n  ... and {} more", n - 10)
        } else {
            String::new()
        };
        return Err(format!(
            "read_tickers: {n} invalid symbol{} in {}:\n{}{more}",
            if n > 1 { "s" } else { "" },
            path.display(),
            bad.join("\n")
        ));
    }
    Ok(out)
}

fn from_csv(text: &str, path: &Path) -> Result<Vec<(usize, String)>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("read_tickers: {}: {e}", path.display()))?
        .clone();
    let col = headers
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case("ticker"))
        .ok_or_else(|| {
            format!(
                "read_tickers: {} has no 'ticker' column (columns: {}); add a 'ticker' header or list one symbol per line",
                path.display(),
                headers.iter().collect::<Vec<_>>().join(", ")
            )
        })?;
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("read_tickers: {}: {e}", path.display()))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        out.push((line, record.get(col).unwrap_or("").to_string()));
    }
    Ok(out)
}

/// Ticker lists as a plugin module.
#[rhai::plugin::export_module]
pub mod tickers_fns {
    use rhai::{Array, Dynamic};

    use crate::script::value::{Fallible, error};

    /// Reads a ticker universe: a CSV file with a `ticker` column (any case) or a
    /// plain file with one symbol per line.
    ///
    /// Blank lines, `#` comments and duplicates are dropped, keeping the first
    /// occurrence's order. Invalid symbols (e.g. `A/B`) are an error listing each one
    /// with its line number. Relative paths are relative to the current folder.
    /// Returns an array of strings.
    ///
    /// Errors when the file cannot be read, a CSV has no `ticker` column (the error
    /// names the columns it has), or a symbol is invalid.
    ///
    /// Example: `let universe = read_tickers("universe.csv");`
    #[rhai_fn(return_raw)]
    pub fn read_tickers(path: &str) -> Fallible<Array> {
        super::read_universe(std::path::Path::new(path))
            .map(|t| t.into_iter().map(Dynamic::from).collect())
            .map_err(error)
    }

    /// True when `symbol` is an acceptable ticker (letters, digits and `. - _ :`).
    /// Never fails.
    ///
    /// Example: `if !is_valid_ticker(t) { warn(`skipping ${t}`); }`
    pub fn is_valid_ticker(symbol: &str) -> bool {
        crate::ticker::validate_ticker(symbol).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(content: &str) -> Result<Vec<String>, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u.csv");
        std::fs::write(&p, content).unwrap();
        read_universe(&p)
    }

    #[test]
    fn csv_with_ticker_column_in_any_case() {
        let t =
            read("\u{feff}Name,TICKER\nApple,AAPL\nMicrosoft,MSFT\n,\nApple again,AAPL\n").unwrap();
        assert_eq!(t, ["AAPL", "MSFT"]);
    }

    #[test]
    fn one_per_line_drops_blanks_comments_and_duplicates() {
        let t = read("# universe\nMSFT\n\n  AAPL  \nMSFT\nBRK.A\n").unwrap();
        assert_eq!(t, ["MSFT", "AAPL", "BRK.A"]);
    }

    #[test]
    fn single_ticker_header_is_a_csv_header() {
        assert_eq!(read("ticker\nA\nB\n").unwrap(), ["A", "B"]);
    }

    #[test]
    fn invalid_symbols_are_reported_with_line_numbers() {
        let e = read("AAPL\nA/B\nMSFT\n../x\n").unwrap_err();
        assert!(e.contains("2 invalid symbols"), "{e}");
        assert!(e.contains("line 2: invalid ticker 'A/B'"), "{e}");
        assert!(e.contains("line 4: invalid ticker '../x'"), "{e}");
        let e = read("name,ticker\nx,AAPL\ny,A B\n").unwrap_err();
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn csv_without_ticker_column_names_the_columns() {
        let e = read("symbol,name\nAAPL,Apple\n").unwrap_err();
        assert!(
            e.contains("no 'ticker' column (columns: symbol, name)"),
            "{e}"
        );
    }

    #[test]
    fn empty_file_is_an_empty_universe() {
        assert!(read("").unwrap().is_empty());
    }
}
