//! Decoding one day's flat file: gzip, then CSV rows of every ticker, grouped into one
//! [`Bars`] per ticker — handed out run by run as each ticker's rows end
//! ([`decode_runs_gz`], what staging uses: a day is never held), or collected for the
//! whole day ([`decode_day`], for the REPL and for files not sorted by ticker).
//!
//! The columns are `ticker,volume,open,close,high,low,window_start,transactions`
//! (found by name in the header, so a reordered file still reads), `window_start` in
//! Unix nanoseconds, no vwap. Rows come sorted by ticker in Massive's files; any order
//! is accepted, and each ticker's bars are sorted with exact repeats dropped.

use std::collections::HashMap;
use std::io::Read;

use flate2::read::MultiGzDecoder;

use crate::bars::Bars;

use super::row::{Header, MAX_FIELDS, parse_bar, standard_row};

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

/// Decodes a gzip day file, keeping the tickers `keep` accepts.
pub fn decode_day(gz: &[u8], keep: &dyn Fn(&str) -> bool) -> Result<DayBars, DecodeError> {
    decode_reader(MultiGzDecoder::new(gz), keep)
}

/// Decodes an uncompressed (or already inflating) CSV stream, the whole day in memory.
pub fn decode_reader(
    input: impl Read,
    keep: &dyn Fn(&str) -> bool,
) -> Result<DayBars, DecodeError> {
    let mut tickers: Vec<(String, Bars)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let rows = decode_runs(input, keep, &mut |ticker: &str, bars: &Bars| {
        match index.get(ticker) {
            // A ticker back after others (an unsorted file): settled again below.
            Some(&i) => tickers[i].1.extend(bars),
            None => {
                index.insert(ticker.to_string(), tickers.len());
                tickers.push((ticker.to_string(), bars.clone()));
            }
        }
        Ok::<(), DecodeError>(())
    })?;
    tickers.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, bars) in &mut tickers {
        settle(bars);
    }
    Ok(DayBars { tickers, rows })
}

/// Decodes a gzip day file run by run: `sink` gets each kept ticker's bars (sorted,
/// repeats dropped) as soon as its rows end, so a sorted day is never held whole. In
/// a file not sorted by ticker a ticker comes back: `sink` then gets it again with
/// its next run. Returns the rows read (kept or not).
pub fn decode_runs_gz<E: From<DecodeError>>(
    gz: &[u8],
    keep: &dyn Fn(&str) -> bool,
    sink: &mut dyn FnMut(&str, &Bars) -> Result<(), E>,
) -> Result<u64, E> {
    decode_runs(MultiGzDecoder::new(gz), keep, sink)
}

/// Bytes inflated at a time: lines are scanned in place in this buffer, so a day's
/// text is never held whole (a 5,000-ticker day is 130 MB of CSV).
const CHUNK: usize = 4 << 20;

/// [`decode_runs_gz`] of an uncompressed (or already inflating) CSV stream.
fn decode_runs<E: From<DecodeError>>(
    mut input: impl Read,
    keep: &dyn Fn(&str) -> bool,
    sink: &mut dyn FnMut(&str, &Bars) -> Result<(), E>,
) -> Result<u64, E> {
    let mut buf = vec![0u8; CHUNK];
    let (mut start, mut filled) = (0usize, 0usize);
    let mut rows = Rows::default();
    loop {
        // Keep the unfinished line, make room, read more.
        buf.copy_within(start..filled, 0);
        filled -= start;
        start = 0;
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0); // a line longer than the buffer
        }
        let n = read_some(&mut input, &mut buf[filled..])?;
        if n == 0 {
            if start < filled {
                rows.line(&buf[start..filled], keep, sink)?;
            }
            break;
        }
        filled += n;
        while let Some(end) = memchr::memchr(b'\n', &buf[start..filled]) {
            rows.line(&buf[start..start + end], keep, sink)?;
            start += end + 1;
        }
    }
    rows.run.end(sink)?;
    Ok(rows.run.rows)
}

fn read_some(input: &mut impl Read, into: &mut [u8]) -> Result<usize, DecodeError> {
    loop {
        match input.read(into) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DecodeError::Gzip(e.to_string())),
        }
    }
}

/// The decoder's state between lines.
#[derive(Default)]
struct Rows {
    header: Option<Header>,
    run: Run,
    line_no: u64,
}

impl Rows {
    /// Takes one line, without its `\n`.
    fn line<E: From<DecodeError>>(
        &mut self,
        line: &[u8],
        keep: &dyn Fn(&str) -> bool,
        sink: &mut dyn FnMut(&str, &Bars) -> Result<(), E>,
    ) -> Result<(), E> {
        self.line_no += 1;
        let Some(header) = &self.header else {
            self.header = Some(Header::parse(&String::from_utf8_lossy(line))?);
            return Ok(());
        };
        let line_no = self.line_no;
        let row = |reason: String| DecodeError::Row {
            line: line_no,
            reason,
        };
        // Non-ASCII is rare: only then is the whole line checked.
        if !line.is_ascii() && std::str::from_utf8(line).is_err() {
            return Err(row("not UTF-8".into()).into());
        }
        let end = line
            .iter()
            .rposition(|&b| b != b'\n' && b != b'\r')
            .map_or(0, |i| i + 1);
        let text = &line[..end];
        if text.is_empty() {
            return Ok(());
        }
        // The common case in one pass, unless the row is of a ticker not kept (whose
        // numbers are not read at all).
        let refused = self.run.started && !self.run.kept && self.run.is(text);
        if header.standard
            && !refused
            && let Some((ticker, bar)) = standard_row(text)
        {
            self.run.rows += 1;
            if self.run.select(ticker, keep, sink)? {
                self.run.bars.push(bar);
            }
            return Ok(());
        }
        // Split into a stack array: no allocation per row.
        let mut slots: [&[u8]; MAX_FIELDS] = [&[]; MAX_FIELDS];
        let mut width = 0;
        for field in text.split(|&b| b == b',') {
            if let Some(slot) = slots.get_mut(width) {
                *slot = field;
            }
            width += 1;
        }
        if width != header.width {
            let why = format!("{width} fields where the header has {}", header.width);
            return Err(row(why).into());
        }
        let fields = &slots[..width];
        self.run.rows += 1;
        if !self.run.select(fields[header.at[0]], keep, sink)? {
            return Ok(());
        }
        let bar = parse_bar(fields, header).map_err(row)?;
        self.run.bars.push(bar);
        Ok(())
    }
}

/// The run of consecutive rows of one ticker being read (the whole of its day in a
/// file sorted by ticker); the ticker's name is compared as bytes, not decoded, row
/// by row.
#[derive(Default)]
struct Run {
    name: String,
    /// False when `keep` refused the ticker: its rows are counted, not parsed.
    kept: bool,
    /// False until the first row: `name` means nothing before it.
    started: bool,
    /// The run's bars; one buffer reused from run to run, so a day allocates nothing
    /// per ticker.
    bars: Bars,
    /// Rows read (kept or not).
    rows: u64,
}

impl Run {
    /// True when `line` is a row of the current ticker.
    fn is(&self, line: &[u8]) -> bool {
        let name = self.name.as_bytes();
        line.starts_with(name) && line.get(name.len()) == Some(&b',')
    }

    /// Makes `ticker` current, handing the previous run to `sink` if it changes; false
    /// when `keep` refuses it.
    fn select<E: From<DecodeError>>(
        &mut self,
        ticker: &[u8],
        keep: &dyn Fn(&str) -> bool,
        sink: &mut dyn FnMut(&str, &Bars) -> Result<(), E>,
    ) -> Result<bool, E> {
        if self.started && ticker == self.name.as_bytes() {
            return Ok(self.kept);
        }
        self.end(sink)?;
        // The line is ASCII or was checked, and a field never splits a character.
        let ticker = std::str::from_utf8(ticker).unwrap_or_default();
        self.started = true;
        self.name.clear();
        self.name.push_str(ticker);
        self.kept = keep(ticker);
        Ok(self.kept)
    }

    /// Hands the run's bars, settled, to `sink` and empties it.
    fn end<E>(&mut self, sink: &mut dyn FnMut(&str, &Bars) -> Result<(), E>) -> Result<(), E> {
        if self.kept && !self.bars.is_empty() {
            settle(&mut self.bars);
            sink(&self.name, &self.bars)?;
        }
        self.bars.clear();
        Ok(())
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
    fn the_one_pass_rows_read_as_the_general_path_does() {
        let rows = [
            "A,1.029145e+06,1.5,1.6,1.7,1.4,1735826400000000000,3",
            "A,100,-0,1,1.,.5,1735826460000000000,",
            "B,7,10,11,12,9,-60000000000,+4",
            "B,7,0.1,0.3,9007199254740993,1,1735826400000000000,9223372036854775807",
        ];
        let standard = format!(
            "ticker,volume,open,close,high,low,window_start,transactions\n{}\n",
            rows.join("\n")
        );
        let moved: Vec<String> = rows
            .iter()
            .map(|r| {
                let (head, trades) = r.rsplit_once(',').unwrap();
                format!("{trades},{head}")
            })
            .collect();
        let general = format!(
            "transactions,ticker,volume,open,close,high,low,window_start\n{}\n",
            moved.join("\n")
        );
        let want = decode_reader(general.as_bytes(), &|_| true).unwrap();
        assert_eq!(want.tickers.len(), 2);
        assert_eq!(decode_reader(standard.as_bytes(), &|_| true).unwrap(), want);
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

    #[test]
    fn crlf_and_a_missing_last_newline_read_the_same() {
        let want = decode_day(&gz(FILE), &|_| true).unwrap();
        let crlf = FILE.replace('\n', "\r\n");
        assert_eq!(decode_day(&gz(&crlf), &|_| true).unwrap(), want);
        let cut = FILE.trim_end_matches('\n');
        assert_eq!(decode_day(&gz(cut), &|_| true).unwrap(), want);
        let blank = FILE.replace("\nB,", "\n\r\n\nB,");
        assert_eq!(decode_day(&gz(&blank), &|_| true).unwrap(), want);
    }

    #[test]
    fn an_empty_file_or_a_header_alone_is_an_empty_day() {
        for text in [
            "",
            "ticker,volume,open,close,high,low,window_start,transactions",
            FILE.lines().next().unwrap(),
        ] {
            assert_eq!(
                decode_day(&gz(text), &|_| true).unwrap(),
                DayBars::default()
            );
        }
    }

    /// Gives one byte per read: every line crosses a read boundary.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = *first;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn lines_split_across_reads_are_whole_and_numbered() {
        let want = decode_day(&gz(FILE), &|_| true).unwrap();
        let got = decode_reader(Trickle(FILE.as_bytes()), &|_| true).unwrap();
        assert_eq!(got, want);
        let bad = FILE.replace("B,7,", "B,7,1,");
        let err = decode_reader(Trickle(bad.as_bytes()), &|_| true).unwrap_err();
        assert_eq!(err.to_string(), "line 4: 9 fields where the header has 8");
        let latin1 = [FILE.as_bytes(), b"C\xe9,1,1,1,1,1,0,1\n"].concat();
        let err = decode_reader(latin1.as_slice(), &|_| true).unwrap_err();
        assert_eq!(err.to_string(), "line 5: not UTF-8");
    }
}
