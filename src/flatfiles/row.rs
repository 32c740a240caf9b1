//! One CSV row of a day file: the header's column positions, and a row's fields as a
//! [`Bar`] (in one pass for files in Massive's column order).

use crate::bars::Bar;

use super::csv::DecodeError;
use super::number;

pub(super) const COLUMNS: [&str; 7] = [
    "ticker",
    "volume",
    "open",
    "close",
    "high",
    "low",
    "window_start",
];

/// Most columns a file may have (it has 8).
pub(super) const MAX_FIELDS: usize = 16;

/// Column positions, by the header's names.
pub(super) struct Header {
    pub(super) at: [usize; 7],
    pub(super) transactions: Option<usize>,
    pub(super) width: usize,
    /// The columns are Massive's, in their order: rows take [`standard_row`].
    pub(super) standard: bool,
}

impl Header {
    pub(super) fn parse(line: &str) -> Result<Header, DecodeError> {
        let names: Vec<&str> = line.trim_end().split(',').map(str::trim).collect();
        if names.len() > MAX_FIELDS {
            return Err(DecodeError::Wide(names.len()));
        }
        let find = |n: &str| names.iter().position(|c| *c == n);
        let mut at = [0; 7];
        for (slot, name) in at.iter_mut().zip(COLUMNS) {
            *slot = find(name).ok_or(DecodeError::Header(name))?;
        }
        let standard = names.len() == 8 && names[..7] == COLUMNS && names[7] == "transactions";
        Ok(Header {
            at,
            transactions: find("transactions"),
            width: names.len(),
            standard,
        })
    }
}

/// A row of a file in Massive's column order whose numbers all take the fast paths
/// of [`number`], scanned and parsed in one pass: `(ticker, bar)`. `None` sends the
/// row to the general path, which gives the same bar or names what is wrong.
pub(super) fn standard_row(text: &[u8]) -> Option<(&[u8], Bar)> {
    let comma = memchr::memchr(b',', text)?;
    let (ticker, mut s) = (&text[..comma], &text[comma + 1..]);
    let volume = number::f64_field(&mut s)?;
    let open = number::f64_field(&mut s)?;
    let close = number::f64_field(&mut s)?;
    let high = number::f64_field(&mut s)?;
    let low = number::f64_field(&mut s)?;
    let ns = number::i64_field(&mut s, false)?;
    let transactions = match s {
        b"" => None,
        _ => Some(number::i64_field(&mut s, true)?),
    };
    let bar = Bar {
        timestamp: ns.div_euclid(1_000_000),
        open,
        high,
        low,
        close,
        volume,
        vwap: None,
        transactions,
        otc: false,
    };
    Some((ticker, bar))
}

pub(super) fn parse_bar(f: &[&[u8]], h: &Header) -> Result<Bar, String> {
    let text = |i: usize| String::from_utf8_lossy(f[i]).into_owned();
    let num = |i: usize, name: &str| -> Result<f64, String> {
        number::parse_f64(f[h.at[i]])
            .ok_or_else(|| format!("{name} `{}` is not a number", text(h.at[i])))
    };
    let ns = number::parse_i64(f[h.at[6]])
        .ok_or_else(|| format!("window_start `{}` is not an integer", text(h.at[6])))?;
    let transactions = match h.transactions.map(|i| f[i]) {
        None | Some(b"") => None,
        Some(t) => Some(number::parse_i64(t).ok_or_else(|| {
            format!(
                "transactions `{}` is not an integer",
                String::from_utf8_lossy(t)
            )
        })?),
    };
    Ok(Bar {
        timestamp: ns.div_euclid(1_000_000),
        volume: num(1, "volume")?,
        open: num(2, "open")?,
        close: num(3, "close")?,
        high: num(4, "high")?,
        low: num(5, "low")?,
        vwap: None,
        transactions,
        otc: false,
    })
}
