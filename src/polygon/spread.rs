//! A range's pages fetched side by side: after the first page, the rest of the range
//! is split into sub-ranges that are fetched at once, each following its own
//! `next_url`.
//!
//! The API pages a range one cursor after another, so a ticker-year of five pages at
//! 250 ms of latency is 1.25 s of round trips with one request in flight. A worker
//! holds only two ticker-years at once (its memory cap), so by Little's law six
//! workers of such pieces reach 6 × 2 / 0.25 s = 48 req/s at most: half a 100 req/s
//! budget, and an eighth of it at 1 s. Split after the first page, a piece has its
//! other pages in flight together and takes two round trips whatever its size, with
//! no more bars held than before.
//!
//! The first page says how dense the range is: its bars span some part of the range
//! (and for a later year of the same ticker, the year before says it, so its
//! sub-ranges go out at once: [`parts_at`]).
//! The rest is split into as many sub-ranges of equal time as its bars, at that
//! density, need full pages, so each fits one page and the requests are as many as
//! paging would have sent (a sub-range a little denser than the estimate simply pages
//! on: one request more). Only a full first page is spread: a server paging by other
//! rules gives no density to trust.

/// A first page's round trip from which spreading pays: below it the API is not what
/// keeps a budget idle (the CPU is), and spread pieces would only hold more page
/// bodies in memory at once.
pub const SLOW_PAGE: std::time::Duration = std::time::Duration::from_millis(100);
/// Most sub-ranges the rest of a range is split into.
pub const MAX_PARTS: usize = 8;
/// One minute, in ms: the step between bar timestamps.
const MINUTE_MS: i64 = 60_000;

/// The sub-ranges `[from, to]` (inclusive Unix ms) that the rest of `[lo, hi)` after
/// a first page of `timestamps` (sorted, `limit` asked for) is split into; empty
/// when the rest should be paged as usual (a short page, a single sub-range, a
/// degenerate span).
pub fn parts(timestamps: &[i64], limit: usize, lo: i64, hi: i64) -> Vec<(i64, i64)> {
    let (Some(&first), Some(&last)) = (timestamps.first(), timestamps.last()) else {
        return Vec::new();
    };
    if timestamps.len() < limit || last < first || last >= hi {
        return Vec::new();
    }
    let start = last + 1;
    // The span the first page covered: from the range's start (or its first bar, if
    // later) to one minute past its last bar.
    let covered = (last + MINUTE_MS - lo.max(first).min(last)).max(MINUTE_MS) as f64;
    let rest = (hi - start) as f64;
    split(start, hi, timestamps.len() as f64 * rest / covered, limit)
}

/// The sub-ranges a whole range `[lo, hi)` is split into from the start, when the
/// ticker's previous piece said how dense its bars are (`density`, bars per ms of the
/// calendar): a piece of a later year then needs no first page to learn it. Empty
/// when the range is expected to fit one page. The estimate may be off either way: a
/// denser part pages on, a sparser one costs a request more than paging would.
pub fn parts_at(density: f64, limit: usize, lo: i64, hi: i64) -> Vec<(i64, i64)> {
    if !(density.is_finite() && density > 0.0) || hi <= lo {
        return Vec::new();
    }
    split(lo, hi, density * (hi - lo) as f64, limit)
}

/// `[start, hi)` in equal-time sub-ranges of about a page each of `expected` bars
/// (at most [`MAX_PARTS`]); empty for less than two pages.
fn split(start: i64, hi: i64, expected: f64, limit: usize) -> Vec<(i64, i64)> {
    let pages = (expected / limit as f64).ceil();
    if pages.is_nan() || pages < 2.0 {
        return Vec::new();
    }
    let n = (pages as usize).min(MAX_PARTS);
    let width = (hi - start) / n as i64;
    (0..n)
        .map(|i| {
            let from = start + width * i as i64;
            let to = if i + 1 == n {
                hi - 1
            } else {
                start + width * (i as i64 + 1) - 1
            };
            (from, to)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    /// A page of `n` bars one minute apart from `lo`.
    fn page(lo: i64, n: usize) -> Vec<i64> {
        (0..n as i64).map(|i| lo + i * MINUTE_MS).collect()
    }

    #[test]
    fn the_rest_is_split_into_pages_of_the_first_pages_density() {
        let lo = 1_700_000_000_000;
        // 10 bars span 10 minutes; 95 more minutes at that density = 95 bars, in
        // pages of 10: 10 parts.
        let first = page(lo, 10);
        let hi = lo + 105 * MINUTE_MS;
        let p = parts(&first, 10, lo, hi);
        assert_eq!(p.len(), MAX_PARTS, "capped");
        assert_eq!(p[0].0, first[9] + 1, "starts after the last bar");
        assert_eq!(p.last().unwrap().1, hi - 1, "ends at the range's end");
        for w in p.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0, "contiguous, no gap and no overlap");
        }
        // About 2.5 pages' worth left: 3 parts.
        let hi = lo + 10 * MINUTE_MS + 24 * MINUTE_MS;
        assert_eq!(parts(&first, 10, lo, hi).len(), 3);
    }

    #[test]
    fn a_rest_that_fits_one_page_a_short_page_or_no_bars_are_paged_as_usual() {
        let lo = 0;
        let first = page(lo, 10);
        assert!(
            parts(&first, 10, lo, 19 * MINUTE_MS).is_empty(),
            "one page left"
        );
        assert!(
            parts(&first, 50_000, lo, 365 * DAY).is_empty(),
            "not a full page"
        );
        assert!(parts(&[], 10, lo, 365 * DAY).is_empty());
    }

    #[test]
    fn a_known_density_splits_a_whole_range_from_its_start() {
        let lo = 1_704_067_200_000;
        let hi = lo + 366 * DAY;
        // 241,920 bars a year: 5 pages of 50,000.
        let density = 241_920.0 / (366 * DAY) as f64;
        let p = parts_at(density, 50_000, lo, hi);
        assert_eq!(p.len(), 5);
        assert_eq!((p[0].0, p[4].1), (lo, hi - 1));
        assert!(
            parts_at(density / 10.0, 50_000, lo, hi).is_empty(),
            "one page"
        );
        assert!(parts_at(0.0, 50_000, lo, hi).is_empty());
        assert!(parts_at(f64::NAN, 50_000, lo, hi).is_empty());
    }

    #[test]
    fn a_ticker_year_of_five_pages_is_four_parts_after_the_first() {
        // ~241,920 bars a year: 50,000 of them span ~75 days.
        let lo = 1_704_067_200_000;
        let hi = lo + 366 * DAY;
        let per_ms = 241_920.0 / (366 * DAY) as f64;
        let first: Vec<i64> = (0..50_000)
            .map(|i| lo + (i as f64 / per_ms) as i64 / MINUTE_MS * MINUTE_MS)
            .collect();
        let p = parts(&first, 50_000, lo, hi);
        assert_eq!(
            p.len(),
            4,
            "191,920 bars left: 4 pages, as paging would send"
        );
    }
}
