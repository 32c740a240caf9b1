//! Ticker symbols as user input.
//!
//! A symbol becomes a folder name (`ticker=BRK.A`), so anything that could leave the
//! output folder or confuse a Hive reader is refused before any request is made.

/// The longest symbol accepted; real ones (including `X:BTCUSD`-style) are far shorter.
pub const MAX_TICKER_LEN: usize = 32;

/// Checks one symbol; the error names the symbol and says what is allowed.
pub fn validate_ticker(symbol: &str) -> Result<(), TickerError> {
    let bad = |why: &str| {
        Err(TickerError(format!(
            "invalid ticker '{}': {why}; use letters, digits and . - _ : (e.g. AAPL, BRK.A)",
            symbol.escape_debug()
        )))
    };
    if symbol.is_empty() {
        return bad("it is empty");
    }
    if symbol.len() > MAX_TICKER_LEN {
        return bad("it is longer than 32 characters");
    }
    if symbol.starts_with('.') {
        return bad("it starts with a dot");
    }
    if let Some(c) = symbol
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
    {
        return bad(&format!("'{}' is not allowed", c.escape_debug()));
    }
    Ok(())
}

/// An invalid ticker symbol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TickerError(pub String);

/// Trims, drops blanks and duplicates (keeping first-seen order), and validates.
pub fn clean_tickers<I, S>(raw: I) -> Result<Vec<String>, TickerError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for s in raw {
        let t = s.as_ref().trim();
        if t.is_empty() {
            continue;
        }
        validate_ticker(t)?;
        if seen.insert(t.to_string()) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

/// Reads a universe file: a CSV with a `ticker` column (any case; other columns are
/// ignored), or one symbol per line. Blank lines, `#` comments, duplicates and repeats
/// of the header line (concatenated files) are dropped;
/// an invalid symbol is an error naming the file and line.
pub fn read_ticker_file(path: &std::path::Path) -> Result<Vec<String>, TickerError> {
    let text = crate::input::read_text(path, crate::input::InputKind::Tickers)
        .map_err(|e| TickerError(format!("tickers: {e}")))?;
    parse_ticker_list(&text).map_err(|e| TickerError(format!("{}:{}", path.display(), e.0)))
}

/// Parses the text of a universe file (see [`read_ticker_file`]); errors start with
/// the 1-based line number.
pub fn parse_ticker_list(text: &str) -> Result<Vec<String>, TickerError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let Some((header_line, header)) = lines.next() else {
        return Ok(Vec::new());
    };
    let header_cells: Vec<String> = split_csv_line(header);
    let column = header_cells
        .iter()
        .position(|c| c.eq_ignore_ascii_case("ticker"));
    let mut symbols: Vec<(usize, String)> = Vec::new();
    match column {
        Some(col) => {
            for (n, line) in lines {
                let cells = split_csv_line(line);
                // The header again (files concatenated with `cat`): not a symbol.
                let repeated = cells.len() == header_cells.len()
                    && cells
                        .iter()
                        .zip(&header_cells)
                        .all(|(a, b)| a.eq_ignore_ascii_case(b));
                if !repeated {
                    symbols.push((n, cells.get(col).cloned().unwrap_or_default()));
                }
            }
        }
        None if header_cells.len() > 1 => {
            return Err(TickerError(format!(
                "{header_line}: a CSV universe needs a `ticker` column; found {}",
                header_cells.join(", ")
            )));
        }
        None => {
            symbols.push((header_line, header.to_string()));
            symbols.extend(lines.map(|(n, l)| (n, l.to_string())));
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (n, s) in symbols {
        let s = s.trim().to_string();
        if s.is_empty() {
            continue;
        }
        validate_ticker(&s).map_err(|e| TickerError(format!("{n}: {}", e.0)))?;
        if seen.insert(s.clone()) {
            out.push(s);
        }
    }
    Ok(out)
}

fn split_csv_line(line: &str) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.as_bytes());
    match reader.records().next() {
        Some(Ok(rec)) => rec.iter().map(|c| c.trim().to_string()).collect(),
        _ => vec![line.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_symbols_are_valid() {
        for s in ["AAPL", "BRK.A", "BF-B", "X:BTCUSD", "A"] {
            validate_ticker(s).unwrap();
        }
    }

    #[test]
    fn symbols_that_could_escape_the_folder_are_refused() {
        for s in [
            "../x", "A/B", "..", ".hidden", "", "A B", "T=1", "a\\b", "A\0",
        ] {
            let e = validate_ticker(s).unwrap_err();
            assert!(e.0.starts_with("invalid ticker"), "{s}: {e}");
        }
    }

    #[test]
    fn universe_files_are_csv_with_a_ticker_column_or_plain_lines() {
        let csv = "name,Ticker,cap\nApple,AAPL,3\nBerkshire,\"BRK.A\",1\nApple again,AAPL,3\n";
        assert_eq!(parse_ticker_list(csv).unwrap(), vec!["AAPL", "BRK.A"]);
        // Two files concatenated: the second header is not the symbol "ticker".
        let cat = "ticker\nAAPL\nticker\nMSFT\n";
        assert_eq!(parse_ticker_list(cat).unwrap(), vec!["AAPL", "MSFT"]);
        let cat = "name,ticker\nApple,AAPL\nName,Ticker\nMicrosoft,MSFT\n";
        assert_eq!(parse_ticker_list(cat).unwrap(), vec!["AAPL", "MSFT"]);
        let plain = "# universe\nMSFT\n\nAAPL\n";
        assert_eq!(parse_ticker_list(plain).unwrap(), vec!["MSFT", "AAPL"]);
        let err = parse_ticker_list("ticker\nAAPL\n../etc\n").unwrap_err();
        assert!(err.0.starts_with("3: invalid ticker '../etc'"), "{err}");
        assert!(
            parse_ticker_list("a,b\n1,2\n")
                .unwrap_err()
                .0
                .contains("`ticker` column")
        );
    }

    #[test]
    fn clean_drops_blanks_and_duplicates_in_order() {
        let t = clean_tickers(["MSFT", " AAPL ", "", "MSFT"]).unwrap();
        assert_eq!(t, vec!["MSFT", "AAPL"]);
    }
}
