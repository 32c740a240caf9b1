//! `Bars` as an aligned text table: a header line with the count and time range, then
//! the first and last rows (New York time), the middle elided.

use super::{ScriptBars, ny_minute};
use crate::bars::Bar;

/// Rows shown at each end when bars are printed.
pub(crate) const SHOWN: usize = 5;

/// Column headings, left to right.
const HEADINGS: [&str; 8] = [
    "time", "open", "high", "low", "close", "volume", "vwap", "trades",
];

/// The cells of one row.
fn cells(b: &Bar) -> [String; 8] {
    let opt_f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
    [
        ny_minute(b.timestamp),
        format!("{:.4}", b.open),
        format!("{:.4}", b.high),
        format!("{:.4}", b.low),
        format!("{:.4}", b.close),
        b.volume.to_string(),
        opt_f(b.vwap),
        b.transactions
            .map_or_else(|| "-".to_string(), |v| v.to_string()),
    ]
}

/// One line: the time left-aligned, numbers right-aligned to `widths`.
fn line(row: &[String; 8], widths: &[usize; 8]) -> String {
    let mut out = format!("  {:<w$}", row[0], w = widths[0]);
    for (cell, w) in row.iter().zip(widths).skip(1) {
        out.push_str(&format!("  {cell:>w$}"));
    }
    out
}

impl ScriptBars {
    /// The table with the first and last `n` rows (all rows when there are at most
    /// `2n`).
    pub fn table(&self, n: usize) -> String {
        let len = self.bars.len();
        let (Some(first), Some(last)) = (self.bars.get(0), self.bars.last()) else {
            return format!("Bars {}: no bars", self.ticker);
        };
        let mut out = format!(
            "Bars {}: {len} bar{} from {} to {} (New York time)",
            self.ticker,
            if len == 1 { "" } else { "s" },
            ny_minute(first.timestamp),
            ny_minute(last.timestamp)
        );
        let head: Vec<usize> = (0..len.min(n)).collect();
        let tail: Vec<usize> = (head.len().max(len.saturating_sub(n))..len).collect();
        let rows: Vec<[String; 8]> = head
            .iter()
            .chain(&tail)
            .filter_map(|&i| self.bars.get(i))
            .map(|b| cells(&b))
            .collect();
        let mut widths = HEADINGS.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        out.push('\n');
        out.push_str(&line(&HEADINGS.map(str::to_string), &widths));
        for (k, row) in rows.iter().enumerate() {
            if k == head.len() && head.len() + tail.len() < len {
                let more = len - head.len() - tail.len();
                out.push_str(&format!("\n  ... {more} more ..."));
            }
            out.push('\n');
            out.push_str(line(row, &widths).trim_end());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bars::flat_bars;
    use crate::store::DatasetIdentity;

    #[test]
    fn shows_head_and_tail_aligned_with_a_count() {
        let ts = (0..20).map(|i| 1_709_562_600_000 + i * 60_000);
        let b = ScriptBars::new("AAPL", flat_bars(ts), DatasetIdentity::minute(true));
        let text = b.table(2);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "Bars AAPL: 20 bars from 2024-03-04 09:30 to 2024-03-04 09:49 (New York time)"
        );
        assert_eq!(lines.len(), 7, "{text}");
        assert_eq!(lines[4], "  ... 16 more ...");
        assert!(
            lines[1].starts_with("  time ") && lines[1].ends_with("trades"),
            "{text}"
        );
        assert_eq!(lines[2].len(), lines[6].len(), "{text}");
        assert!(lines[6].starts_with("  2024-03-04 09:49  1.0000"), "{text}");
        assert_eq!(b.table(10).lines().count(), 22, "all rows, nothing elided");
        let empty = ScriptBars::new("X", Default::default(), DatasetIdentity::minute(true));
        assert_eq!(empty.table(5), "Bars X: no bars");
    }
}
