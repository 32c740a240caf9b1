//! The resume estimate of a status report: per ticker, its missing ranges split by
//! year into pieces, and the requests each piece is expected to cost.

use jiff::civil::Date;

use crate::calendar::DateRange;
use crate::store::coverage;

use super::{EstimateRule, TickerStatus, YearStats};

/// The status of one ticker whose coverage is `covered` and files `years`.
pub(super) fn ticker_status(
    ticker: String,
    covered: &[DateRange],
    years: Vec<YearStats>,
    range: Option<DateRange>,
    rule: EstimateRule,
) -> TickerStatus {
    let Some(range) = range else {
        return TickerStatus {
            ticker,
            complete: true,
            complete_ranges: Vec::new(),
            missing: Vec::new(),
            missing_pieces: 0,
            requests: 0,
            years,
        };
    };
    let complete_ranges = covered.iter().filter_map(|c| clip(*c, range)).collect();
    let missing = coverage::subtract(range, covered);
    let pieces: Vec<DateRange> = missing.iter().flat_map(|m| m.split_by_year()).collect();
    let requests = pieces
        .iter()
        .map(|p| estimate_piece(*p, covered, &years, rule))
        .sum();
    TickerStatus {
        ticker,
        complete: missing.is_empty(),
        complete_ranges,
        missing_pieces: pieces.len() as u64,
        missing,
        requests,
        years,
    }
}

/// Requests to fetch `piece` (inside one year) of a ticker: one per page of
/// `rule.page_rows` bars, at least one.
///
/// The bars expected are the piece's days times a bars-per-day rate taken from the
/// neighbouring years (the year before and after): each known one's rows divided by its
/// days known complete (its whole year when it has a file but no coverage), the larger
/// rate winning. With no neighbour known, `rule.rows_per_year` spread over 365 days.
pub fn estimate_piece(
    piece: DateRange,
    covered: &[DateRange],
    years: &[YearStats],
    rule: EstimateRule,
) -> u64 {
    let year = piece.from.year();
    let per_day = [year - 1, year + 1]
        .iter()
        .filter_map(|&y| neighbour_rate(y, covered, years))
        .fold(None, |best: Option<f64>, r| {
            Some(best.map_or(r, |b| b.max(r)))
        })
        .unwrap_or(rule.rows_per_year as f64 / 365.0);
    let rows = per_day * days(piece) as f64;
    let pages = (rows / rule.page_rows.max(1) as f64).ceil() as u64;
    pages.max(1)
}

/// Bars per day of year `y`, if it is known: it has a file or days known complete.
fn neighbour_rate(y: i16, covered: &[DateRange], years: &[YearStats]) -> Option<f64> {
    let whole = DateRange {
        from: Date::new(y, 1, 1).ok()?,
        to: Date::new(y, 12, 31).ok()?,
    };
    let known_days: i64 = covered
        .iter()
        .filter_map(|c| clip(*c, whole))
        .map(days)
        .sum();
    let rows = years.iter().find(|s| s.year == y).map(|s| s.rows);
    match (rows, known_days) {
        (None, 0) => None,
        (None, _) => Some(0.0), // complete with no file: no bars that year
        (Some(r), 0) => Some(r as f64 / days(whole) as f64),
        (Some(r), d) => Some(r as f64 / d as f64),
    }
}

/// Days in `r`, inclusive.
fn days(r: DateRange) -> i64 {
    (r.to - r.from).get_days() as i64 + 1
}

/// `r` intersected with `within`, if they overlap.
fn clip(r: DateRange, within: DateRange) -> Option<DateRange> {
    let from = r.from.max(within.from);
    let to = r.to.min(within.to);
    (from <= to).then_some(DateRange { from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: EstimateRule = EstimateRule {
        page_rows: 50_000,
        rows_per_year: 250_000,
        requests_per_second: 50.0,
    };

    fn r(a: &str, b: &str) -> DateRange {
        DateRange::parse(a, b).unwrap()
    }

    fn year(year: i16, rows: u64) -> YearStats {
        YearStats {
            year,
            rows,
            bytes: 1,
        }
    }

    #[test]
    fn a_piece_without_neighbours_uses_the_default_rows_per_year() {
        // 250k bars a year: a whole year is 5 pages, a month one.
        assert_eq!(
            estimate_piece(r("2010-01-01", "2010-12-31"), &[], &[], RULE),
            5
        );
        assert_eq!(
            estimate_piece(r("2010-02-01", "2010-02-28"), &[], &[], RULE),
            1
        );
    }

    #[test]
    fn a_piece_uses_the_busier_neighbouring_year_per_known_day() {
        // 2009 complete with 400k bars, 2011 complete with no file (not listed yet).
        let cov = [r("2009-01-01", "2009-12-31"), r("2011-01-01", "2011-12-31")];
        let years = [year(2009, 400_000)];
        assert_eq!(
            estimate_piece(r("2010-01-01", "2010-12-31"), &cov, &years, RULE),
            8
        );
        // Half of 2011 known, holding 300k bars: just over 600k a year, 13 pages.
        let cov = [r("2011-01-01", "2011-07-01")];
        let years = [year(2009, 100_000), year(2011, 300_000)];
        assert_eq!(
            estimate_piece(r("2010-01-01", "2010-12-31"), &cov, &years, RULE),
            13
        );
        // A neighbour known complete without bars (before an IPO) costs one request.
        let cov = [r("2009-01-01", "2009-12-31")];
        assert_eq!(
            estimate_piece(r("2010-01-01", "2010-12-31"), &cov, &[], RULE),
            1
        );
    }
}
