//! What one fetch of a ticker's range returns, and how its bars are settled: kept
//! when in range, then sorted with exact repeats removed (order is not a property of
//! truth), failing only on two different bars for one minute.

use crate::bars::{Bar, Bars};

use crate::ingest::error::{ErrorKind, FetchError};

/// All bars of one fetch, with what it took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fetched {
    /// The bars, strictly increasing by timestamp, all inside the requested range.
    pub bars: Bars,
    /// Pages received.
    pub pages: u32,
    /// HTTP requests sent (retries included).
    pub requests: u32,
    /// Exact repeats of a bar already received (same minute, same values), removed.
    pub duplicates_dropped: u64,
    /// Bars that arrived after a later minute and were sorted into place (none is
    /// dropped for its order).
    pub reordered: u64,
    /// Bars dropped because their New York date is outside the requested range.
    pub out_of_range_dropped: u64,
    /// The longest round trip of a good page (how slow the API is for this range).
    pub slowest_page: std::time::Duration,
    /// How the pages were asked for.
    pub paging: Paging,
}

/// How a fetch asked for its pages ([`super::spread`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Paging {
    /// Each page from the previous one's `next_url`.
    #[default]
    Cursor,
    /// The first page, then the rest as this many sub-ranges at once.
    AfterFirstPage(usize),
    /// This many sub-ranges at once from the start (the ticker's previous piece gave
    /// the density).
    FromStart(usize),
}

impl Fetched {
    /// Appends the bars and counts of the fetch of a later sub-range of the same range
    /// (order is settled afterwards, as for pages).
    pub(super) fn absorb(&mut self, part: Fetched) {
        if self.bars.is_empty() {
            self.bars = part.bars;
        } else {
            self.bars.extend(&part.bars);
        }
        self.pages += part.pages;
        self.requests += part.requests;
        self.duplicates_dropped += part.duplicates_dropped;
        self.reordered += part.reordered;
        self.out_of_range_dropped += part.out_of_range_dropped;
        self.slowest_page = self.slowest_page.max(part.slowest_page);
    }
}

/// Keeps the bars a page appended to `out.bars` after the first `before` that are in
/// range; returns how many. Order is settled once the last page is in ([`settle`]).
pub(super) fn keep_new_bars(out: &mut Fetched, before: usize, lo: i64, hi: i64) -> usize {
    // Fast path (every well-behaved page): all inside the range, kept in place.
    if out.bars.timestamp[before..]
        .iter()
        .all(|t| (lo..hi).contains(t))
    {
        return out.bars.len() - before;
    }
    let page = out.bars.split_off(before);
    for (i, &t) in page.timestamp.iter().enumerate() {
        match page.get(i) {
            Some(bar) if (lo..hi).contains(&t) => out.bars.push(bar),
            _ => out.out_of_range_dropped += 1,
        }
    }
    out.bars.len() - before
}

/// After the first page of a fetch of `[lo, hi)` with more pages to come: room for the
/// rest, estimated from how much of the range the first page covered (plus a tenth),
/// so the columns grow once instead of doubling page after page.
pub(super) fn reserve_rest(out: &mut Fetched, lo: i64, hi: i64) {
    let Some(&last) = out.bars.timestamp.last() else {
        return;
    };
    let (covered, span) = (last.saturating_sub(lo), hi.saturating_sub(lo));
    if covered <= 0 || span <= covered {
        return;
    }
    let per_ms = out.bars.len() as f64 / covered as f64;
    let rest = (per_ms * (span - covered) as f64 * 1.1).min(MAX_RESERVE as f64);
    out.bars.reserve(rest as usize);
}

/// The most bars [`reserve_rest`] makes room for at once (a ticker-year of minute bars
/// round the clock is ~530k), so a wild first page cannot reserve gigabytes.
const MAX_RESERVE: usize = 1 << 20;

/// Makes the bars strictly increasing: a bar that came after a later minute is sorted
/// into place (counted in `reordered`), an exact repeat is removed (counted in
/// `duplicates_dropped`). Order is not a property of truth, so nothing is lost to it;
/// two *different* bars for one minute are a server fault nobody can settle, so the
/// fetch fails, retryable, and nothing is recorded.
pub(super) fn settle(out: &mut Fetched) -> Result<(), FetchError> {
    let ts = &out.bars.timestamp;
    if ts.windows(2).all(|w| w[0] < w[1]) {
        return Ok(());
    }
    let mut latest = i64::MIN;
    for &t in ts {
        if t < latest {
            out.reordered += 1;
        }
        latest = latest.max(t);
    }
    let mut order: Vec<usize> = (0..ts.len()).collect();
    order.sort_by_key(|&i| ts[i]); // stable: repeats keep their arrival order
    let mut sorted = Bars::with_capacity(order.len());
    for i in order {
        let Some(bar) = out.bars.get(i) else { continue };
        match sorted.last() {
            Some(kept) if kept.timestamp == bar.timestamp && kept == bar => {
                out.duplicates_dropped += 1;
            }
            Some(kept) if kept.timestamp == bar.timestamp => return Err(conflict(&kept, &bar)),
            _ => sorted.push(bar),
        }
    }
    out.bars = sorted;
    Ok(())
}

/// The error for two different bars of one minute.
fn conflict(a: &Bar, b: &Bar) -> FetchError {
    let minute = jiff::Timestamp::from_millisecond(a.timestamp)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| a.timestamp.to_string());
    FetchError::new(
        ErrorKind::ConflictingBars,
        Some(200),
        format!(
            "the API sent two different bars for {minute} (close {} and {}); nothing was \
             recorded for this range: retry later",
            a.close, b.close
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::polygon::ErrorClass;

    fn bars(ts: &[i64]) -> Bars {
        crate::bars::flat_bars(ts.iter().copied())
    }

    /// Appends `page` to the fetch's bars as the decoder does, then keeps its bars.
    fn keep(out: &mut Fetched, page: &Bars, lo: i64, hi: i64) -> usize {
        let before = out.bars.len();
        out.bars.extend(page);
        keep_new_bars(out, before, lo, hi)
    }

    #[test]
    fn keep_then_settle_sorts_dedupes_and_drops_out_of_range() {
        let mut f = Fetched::default();
        assert_eq!(keep(&mut f, &bars(&[10, 20, 30]), 0, 100), 3);
        // A repeated tail, one new bar behind (25), one out of range.
        assert_eq!(
            keep(&mut f, &bars(&[20, 30, 40, 25, 40, 50, 100]), 0, 100),
            6
        );
        settle(&mut f).unwrap();
        assert_eq!(f.bars.timestamp, vec![10, 20, 25, 30, 40, 50]);
        assert_eq!(
            (f.duplicates_dropped, f.reordered, f.out_of_range_dropped),
            (3, 2, 1)
        );
    }

    #[test]
    fn the_rest_of_a_fetch_is_reserved_from_the_first_page() {
        let mut f = Fetched::default();
        keep(
            &mut f,
            &bars(&(0..1000).map(|i| i * 10).collect::<Vec<_>>()),
            0,
            40_000,
        );
        reserve_rest(&mut f, 0, 40_000);
        // A quarter of the range held 1,000 bars: room for ~3,300 more.
        let room = f.bars.timestamp.capacity() - f.bars.len();
        assert!((3_000..4_000).contains(&room), "{room}");
        // A first page that reaches the end (or holds nothing) reserves nothing more.
        let mut whole = Fetched::default();
        keep(&mut whole, &bars(&[0, 39_999]), 0, 40_000);
        reserve_rest(&mut whole, 0, 40_000);
        reserve_rest(&mut Fetched::default(), 0, 40_000);
        assert!(whole.bars.timestamp.capacity() < 100);
        // A page of one early minute of a long range is capped.
        let mut wild = Fetched::default();
        keep(&mut wild, &bars(&[1]), 0, i64::MAX);
        reserve_rest(&mut wild, 0, i64::MAX);
        assert!(wild.bars.timestamp.capacity() <= MAX_RESERVE + 1);
    }

    #[test]
    fn settle_refuses_two_different_bars_for_one_minute() {
        let mut f = Fetched::default();
        keep(&mut f, &bars(&[10, 20]), 0, 100);
        let mut other = bars(&[10]);
        other.close[0] += 1.0;
        keep(&mut f, &other, 0, 100);
        let e = settle(&mut f).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ConflictingBars);
        assert_eq!(e.class, ErrorClass::Retryable);
    }
}
