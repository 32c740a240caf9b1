//! The three formats of a [`DatasetStatus`]: a table for people, CSV and JSON for
//! pipelines. The CSV columns and JSON fields are a stable interface (documented in
//! `barsmith status --help`): add, never rename.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::calendar::DateRange;
use crate::store::status::{DamagedClaim, DatasetStatus, TickerStatus, YearStats};

/// The CSV header: one row of totals (ticker `*`) then one row per ticker.
pub const CSV_HEADER: [&str; 14] = [
    "ticker",
    "tickers",
    "complete",
    "files",
    "rows",
    "bytes",
    "missing_ranges",
    "missing_pieces",
    "requests",
    "seconds",
    "complete_ranges",
    "missing",
    "rows_per_year",
    "bytes_per_year",
];

/// The report as pretty JSON (the [`DatasetStatus`] fields), newline-terminated.
pub fn json(status: &DatasetStatus) -> String {
    let mut s = serde_json::to_string_pretty(status).unwrap_or_else(|e| {
        // Only plain strings and numbers are serialized: this cannot fail.
        format!("{{\"error\":\"{e}\"}}")
    });
    s.push('\n');
    s
}

/// The report as CSV: [`CSV_HEADER`], a totals row whose ticker is `*` (not a valid
/// symbol), then one row per ticker. Lists are `;`-separated: ranges `FROM..TO`, years
/// `YEAR:N`.
pub fn csv(status: &DatasetStatus) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut rows = vec![CSV_HEADER.map(String::from).to_vec()];
    let t = &status.totals;
    let mut all_years: BTreeMap<i16, YearStats> = BTreeMap::new();
    for y in status.tickers.iter().flat_map(|t| &t.years) {
        let e = all_years.entry(y.year).or_insert(YearStats {
            year: y.year,
            rows: 0,
            bytes: 0,
        });
        e.rows += y.rows;
        e.bytes += y.bytes;
    }
    let years: Vec<YearStats> = all_years.into_values().collect();
    rows.push(vec![
        "*".into(),
        t.tickers.to_string(),
        t.complete.to_string(),
        t.files.to_string(),
        t.rows.to_string(),
        t.bytes.to_string(),
        t.missing_ranges.to_string(),
        t.missing_pieces.to_string(),
        t.requests.to_string(),
        format!("{:.3}", t.seconds),
        status.range.map(|r| r.to_string()).unwrap_or_default(),
        String::new(),
        per_year(&years, |y| y.rows),
        per_year(&years, |y| y.bytes),
    ]);
    for s in &status.tickers {
        rows.push(ticker_row(s, t.requests_per_second));
    }
    for r in rows {
        // Writing to a Vec cannot fail.
        let _ = w.write_record(&r);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn ticker_row(s: &TickerStatus, rate: f64) -> Vec<String> {
    vec![
        s.ticker.clone(),
        "1".into(),
        u8::from(s.complete).to_string(),
        s.years.len().to_string(),
        s.years.iter().map(|y| y.rows).sum::<u64>().to_string(),
        s.years.iter().map(|y| y.bytes).sum::<u64>().to_string(),
        s.missing.len().to_string(),
        s.missing_pieces.to_string(),
        s.requests.to_string(),
        format!("{:.3}", s.requests as f64 / rate),
        range_list(&s.complete_ranges),
        range_list(&s.missing),
        per_year(&s.years, |y| y.rows),
        per_year(&s.years, |y| y.bytes),
    ]
}

fn range_list(r: &[DateRange]) -> String {
    let v: Vec<String> = r.iter().map(|r| r.to_string()).collect();
    v.join(";")
}

fn per_year(years: &[YearStats], f: impl Fn(&YearStats) -> u64) -> String {
    let v: Vec<String> = years
        .iter()
        .map(|y| format!("{}:{}", y.year, f(y)))
        .collect();
    v.join(";")
}

/// The report as a table for a terminal: totals, the resume estimate, then each ticker.
pub fn table(status: &DatasetStatus, rate_label: &str) -> String {
    let t = &status.totals;
    let mut o = String::new();
    let range = status
        .range
        .map_or("(no days known)".to_string(), |r| r.to_string());
    let _ = writeln!(o, "dataset   {}", status.data_root.display());
    let _ = writeln!(o, "range     {range}");
    let _ = writeln!(
        o,
        "tickers   {} (complete {}, incomplete {})",
        t.tickers, t.complete, t.incomplete
    );
    let _ = writeln!(o, "files     {}", t.files);
    let _ = writeln!(o, "rows      {}", t.rows);
    let _ = writeln!(o, "bytes     {} ({})", t.bytes, human_bytes(t.bytes));
    let _ = writeln!(
        o,
        "missing   {} range(s) in {} ticker-year piece(s)",
        t.missing_ranges, t.missing_pieces
    );
    let _ = writeln!(
        o,
        "resume    ~{} request(s), ~{} at {rate_label}",
        t.requests,
        human_seconds(t.seconds)
    );
    claims_table(&mut o, status);
    for s in &status.tickers {
        let state = if s.complete { "complete" } else { "incomplete" };
        let _ = writeln!(o, "\n{}  {state}", s.ticker);
        for r in &s.complete_ranges {
            let _ = writeln!(o, "  complete  {r}");
        }
        for r in &s.missing {
            let _ = writeln!(o, "  missing   {r}");
        }
        if s.requests > 0 {
            let _ = writeln!(o, "  resume    ~{} request(s)", s.requests);
        }
        if !s.years.is_empty() {
            let _ = writeln!(o, "  {:<6}{:>12}{:>14}", "year", "rows", "bytes");
        }
        for y in &s.years {
            let _ = writeln!(o, "  {:<6}{:>12}{:>14}", y.year, y.rows, y.bytes);
        }
    }
    o
}

/// The damaged claims section of the table (nothing when there are none and the files
/// were not verified).
fn claims_table(o: &mut String, status: &DatasetStatus) {
    let n = status.damaged_claims.len();
    let repaired = status.damaged_claims.iter().any(|d| d.moved_to.is_some());
    let what = match (status.verified, repaired) {
        (_, true) => "repaired",
        (true, false) => "verified",
        (false, false) if n == 0 => return,
        (false, false) => "checked (existence and size)",
    };
    let _ = writeln!(o, "damaged   {n} ticker-year file(s) ({what})");
    for d in &status.damaged_claims {
        let _ = writeln!(o, "  {}", claim_line(d));
    }
}

/// One damaged claim on one line: ticker, year, cause, detail, file, and where
/// `--repair` moved it.
pub fn claim_line(d: &DamagedClaim) -> String {
    let moved = d
        .moved_to
        .as_ref()
        .map_or(String::new(), |p| format!("; moved to {}", p.display()));
    format!(
        "{} {} {}: {} ({}){moved}",
        d.ticker,
        d.year,
        d.cause.as_str(),
        d.detail,
        d.path.display()
    )
}

/// `1.5 MiB`-style size.
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// `2h 05m`-style duration.
pub fn human_seconds(s: f64) -> String {
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else {
        format!("{m}m {sec:02}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_naturally() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_seconds(2.04), "2.0 s");
        assert_eq!(human_seconds(125.0), "2m 05s");
        assert_eq!(human_seconds(7500.0), "2h 05m");
    }
}
