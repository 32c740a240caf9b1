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
    }
}

/// Appends the page's bars that are in range; returns how many. Order is settled
/// once the last page is in ([`settle`]).
pub(super) fn keep_new_bars(out: &mut Fetched, page: Bars, lo: i64, hi: i64) -> usize {
    let ts = &page.timestamp;
    // Fast path (every well-behaved page): inside the range, appended whole.
    if ts.iter().all(|t| (lo..hi).contains(t)) {
        let n = ts.len();
        if out.bars.is_empty() {
            out.bars = page;
        } else {
            out.bars.extend(&page);
        }
        return n;
    }
    let before = out.bars.len();
    for (i, &t) in ts.iter().enumerate() {
        match page.get(i) {
            Some(bar) if (lo..hi).contains(&t) => out.bars.push(bar),
            _ => out.out_of_range_dropped += 1,
        }
    }
    out.bars.len() - before
}

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

    #[test]
    fn keep_then_settle_sorts_dedupes_and_drops_out_of_range() {
        let mut f = Fetched::default();
        assert_eq!(keep_new_bars(&mut f, bars(&[10, 20, 30]), 0, 100), 3);
        // A repeated tail, one new bar behind (25), one out of range.
        assert_eq!(
            keep_new_bars(&mut f, bars(&[20, 30, 40, 25, 40, 50, 100]), 0, 100),
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
    fn settle_refuses_two_different_bars_for_one_minute() {
        let mut f = Fetched::default();
        keep_new_bars(&mut f, bars(&[10, 20]), 0, 100);
        let mut other = bars(&[10]);
        other.close[0] += 1.0;
        keep_new_bars(&mut f, other, 0, 100);
        let e = settle(&mut f).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ConflictingBars);
        assert_eq!(e.class, ErrorClass::Retryable);
    }
}
