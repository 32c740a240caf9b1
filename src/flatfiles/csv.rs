//! Decoding one day's flat file: gzip, then CSV rows of every ticker, grouped into one
//! [`Bars`] per ticker.
//!
//! The columns are `ticker,volume,open,close,high,low,window_start,transactions`
//! (found by name in the header, so a reordered file still reads), `window_start` in
//! Unix nanoseconds, no vwap. Rows come sorted by ticker in Massive's files; any order
//! is accepted, and each ticker's bars are sorted with exact repeats dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use flate2::read::MultiGzDecoder;

use crate::bars::{Bar, Bars};

/// Why a day's file could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The gzip stream is broken or ends early (a truncated download).
    #[error("the gzip stream is broken or cut short: {0}")]
    Gzip(String),
    /// The header lacks a column barsmith needs.
    #[error(
        "the header has no `{0}` column (expected ticker,volume,open,close,high,low,window_start,transactions)"
    )]
    Header(&'static str),
    /// The header has more columns than any minute-aggregates file.
    #[error(
        "the header has {0} columns; a minute-aggregates file has 8 (is this another dataset?)"
    )]
    Wide(usize),
    /// A row could not be read.
    #[error("line {line}: {reason}")]
    Row {
        /// 1-based line number in the decompressed file.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Every ticker's bars of one day, sorted by ticker.
#[derive(Debug, Default, PartialEq)]
pub struct DayBars {
    /// `(ticker, bars)`, tickers ascending, bars strictly increasing by timestamp.
    pub tickers: Vec<(String, Bars)>,
    /// Rows read (kept or not).
    pub rows: u64,
}

const COLUMNS: [&str; 7] = [
    "ticker",
    "volume",
    "open",
    "close",
    "high",
    "low",
    "window_start",
];

/// Most columns a file may have (it has 8).
const MAX_FIELDS: usize = 16;

/// Column positions, by the header's names.
struct Header {
    at: [usize; 7],
    transactions: Option<usize>,
    width: usize,
}

impl Header {
    fn parse(line: &str) -> Result<Header, DecodeError> {
        let names: Vec<&str> = line.trim_end().split(',').map(str::trim).collect();
        if names.len() > MAX_FIELDS {
            return Err(DecodeError::Wide(names.len()));
        }
        let find = |n: &str| names.iter().position(|c| *c == n);
        let mut at = [0; 7];
        for (slot, name) in at.iter_mut().zip(COLUMNS) {
            *slot = find(name).ok_or(DecodeError::Header(name))?;
        }
        Ok(Header {
            at,
            transactions: find("transactions"),
            width: names.len(),
        })
    }
}

/// Decodes a gzip day file, keeping the tickers `keep` accepts.
pub fn decode_day(gz: &[u8], keep: &dyn Fn(&str) -> bool) -> Result<DayBars, DecodeError> {
    decode_reader(MultiGzDecoder::new(gz), keep)
}

/// Decodes an uncompressed (or already inflating) CSV stream.
pub fn decode_reader(
    input: impl Read,
    keep: &dyn Fn(&str) -> bool,
) -> Result<DayBars, DecodeError> {
    let mut input = BufReader::with_capacity(1 << 20, input);
    let mut line = Vec::with_capacity(256);
    let gzip = |e: std::io::Error| DecodeError::Gzip(e.to_string());
    if input.read_until(b'\n', &mut line).map_err(gzip)? == 0 {
        return Ok(DayBars::default());
    }
    let header = Header::parse(&String::from_utf8_lossy(&line))?;
    let mut groups = Groups::default();
    let mut line_no = 1u64;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).map_err(gzip)? == 0 {
            break;
        }
        line_no += 1;
        let text = std::str::from_utf8(&line).map_err(|_| DecodeError::Row {
            line: line_no,
            reason: "not UTF-8".into(),
        })?;
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            continue;
        }
        // Split into a stack array: no allocation per row.
        let mut slots = [""; MAX_FIELDS];
        let mut width = 0;
        for field in text.split(',') {
            if let Some(slot) = slots.get_mut(width) {
                *slot = field;
            }
            width += 1;
        }
        let row = |reason: String| DecodeError::Row {
            line: line_no,
            reason,
        };
        if width != header.width {
            return Err(row(format!(
                "{width} fields where the header has {}",
                header.width
            )));
        }
        let fields = &slots[..width];
        groups.rows += 1;
        let ticker = fields[header.at[0]];
        if !groups.select(ticker, keep) {
            continue;
        }
        let bar = parse_bar(fields, &header).map_err(row)?;
        groups.push(bar);
    }
    Ok(groups.finish())
}

fn parse_bar(f: &[&str], h: &Header) -> Result<Bar, String> {
    let num = |i: usize, name: &str| -> Result<f64, String> {
        f[h.at[i]]
            .parse::<f64>()
            .map_err(|_| format!("{name} `{}` is not a number", f[h.at[i]]))
    };
    let ns: i64 = f[h.at[6]]
        .parse()
        .map_err(|_| format!("window_start `{}` is not an integer", f[h.at[6]]))?;
    let transactions = match h.transactions.map(|i| f[i]) {
        None | Some("") => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| format!("transactions `{t}` is not an integer"))?,
        ),
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

/// Rows grouped by ticker as they arrive; consecutive rows of one ticker (the normal
/// order) cost no lookup.
#[derive(Default)]
struct Groups {
    tickers: Vec<(String, Bars)>,
    index: HashMap<String, usize>,
    /// The group of the previous row's ticker, `None` when it was not kept.
    current: Option<usize>,
    current_name: String,
    /// False until the first row: `current_name` means nothing before it.
    started: bool,
    rows: u64,
}

impl Groups {
    /// Makes `ticker` current; false when `keep` refuses it.
    fn select(&mut self, ticker: &str, keep: &dyn Fn(&str) -> bool) -> bool {
        if ticker != self.current_name || !self.started {
            self.started = true;
            self.current_name.clear();
            self.current_name.push_str(ticker);
            self.current = if !keep(ticker) {
                None
            } else if let Some(&i) = self.index.get(ticker) {
                Some(i)
            } else {
                self.tickers
                    .push((ticker.to_string(), Bars::with_capacity(1024)));
                self.index
                    .insert(ticker.to_string(), self.tickers.len() - 1);
                Some(self.tickers.len() - 1)
            };
        }
        self.current.is_some()
    }

    fn push(&mut self, bar: Bar) {
        if let Some(i) = self.current {
            self.tickers[i].1.push(bar);
        }
    }

    fn finish(self) -> DayBars {
        let mut tickers = self.tickers;
        tickers.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, bars) in &mut tickers {
            settle(bars);
        }
        DayBars {
            tickers,
            rows: self.rows,
        }
    }
}

/// Sorts `bars` by time and drops exact repeats; of two different bars for one minute
/// the later row wins (a file is one snapshot: there is nothing else to prefer).
fn settle(bars: &mut Bars) {
    let ts = &bars.timestamp;
    if ts.windows(2).all(|w| w[0] < w[1]) {
        return;
    }
    let mut idx: Vec<usize> = (0..ts.len()).collect();
    idx.sort_by_key(|&i| ts[i]);
    let mut out = Bars::with_capacity(idx.len());
    for (k, &i) in idx.iter().enumerate() {
        if idx.get(k + 1).is_some_and(|&j| ts[j] == ts[i]) {
            continue;
        }
        if let Some(bar) = bars.get(i) {
            out.push(bar);
        }
    }
    *bars = out;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(text: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    const FILE: &str = "ticker,volume,open,close,high,low,window_start,transactions\n\
        A,100,1.5,1.6,1.7,1.4,1735826400000000000,3\n\
        A,200.5,1.6,1.7,1.8,1.5,1735826460000000000,4\n\
        B,7,10,11,12,9,1735826400000000000,1\n";

    #[test]
    fn rows_are_grouped_by_ticker_with_times_in_milliseconds() {
        let day = decode_day(&gz(FILE), &|_| true).unwrap();
        assert_eq!(day.rows, 3);
        let names: Vec<&str> = day.tickers.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(names, ["A", "B"]);
        let a = &day.tickers[0].1;
        assert_eq!(a.timestamp, vec![1_735_826_400_000, 1_735_826_460_000]);
        assert_eq!(a.volume, vec![100.0, 200.5]);
        assert_eq!(
            (a.open[0], a.close[0], a.high[0], a.low[0]),
            (1.5, 1.6, 1.7, 1.4)
        );
        assert_eq!(a.vwap, vec![None, None]);
        assert_eq!(a.transactions, vec![Some(3), Some(4)]);
    }

    #[test]
    fn the_universe_filter_and_column_order_are_honoured() {
        let reordered = "window_start,ticker,open,high,low,close,volume,transactions\n\
            1735826400000000000,B,10,12,9,11,7,1\n\
            1735826400000000000,A,1.5,1.7,1.4,1.6,100,3\n";
        let day = decode_day(&gz(reordered), &|t| t == "A").unwrap();
        assert_eq!(day.tickers.len(), 1);
        assert_eq!(day.tickers[0].1.close, vec![1.6]);
        assert_eq!(day.rows, 2);
    }

    #[test]
    fn unsorted_rows_are_sorted_and_repeats_dropped() {
        let text = "ticker,volume,open,close,high,low,window_start,transactions\n\
            A,1,1,1,1,1,120000000000,1\nB,1,1,1,1,1,0,1\nA,1,1,1,1,1,60000000000,1\n\
            A,1,1,1,1,1,120000000000,1\n";
        let day = decode_day(&gz(text), &|_| true).unwrap();
        assert_eq!(day.tickers[0].1.timestamp, vec![60_000, 120_000]);
        assert_eq!(day.tickers[1].1.timestamp, vec![0]);
    }

    #[test]
    fn a_truncated_gzip_is_an_error_not_a_short_day() {
        let rows = FILE.split_once('\n').unwrap().1.repeat(2000);
        let full = gz(&format!(
            "ticker,volume,open,close,high,low,window_start,transactions\n{rows}"
        ));
        let err = decode_day(&full[..full.len() / 2], &|_| true).unwrap_err();
        assert!(matches!(err, DecodeError::Gzip(_)), "{err}");
    }

    #[test]
    fn bad_rows_and_headers_name_the_problem() {
        let err = decode_day(&gz("ticker,open\nA,1\n"), &|_| true).unwrap_err();
        assert_eq!(err, DecodeError::Header("volume"));
        let bad = FILE.replace("1.5,1.6", "x,1.6");
        let err = decode_day(&gz(&bad), &|_| true).unwrap_err().to_string();
        assert_eq!(err, "line 2: open `x` is not a number");
    }
}
