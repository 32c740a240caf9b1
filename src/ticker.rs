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
        for s in ["../x", "A/B", "..", ".hidden", "", "A B", "T=1", "a\\b", "A\0"] {
            let e = validate_ticker(s).unwrap_err();
            assert!(e.0.starts_with("invalid ticker"), "{s}: {e}");
        }
    }

    #[test]
    fn clean_drops_blanks_and_duplicates_in_order() {
        let t = clean_tickers(["MSFT", " AAPL ", "", "MSFT"]).unwrap();
        assert_eq!(t, vec!["MSFT", "AAPL"]);
    }
}
