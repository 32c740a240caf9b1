//! Replacing only some days of a year's bars: a flat-file piece is complete for the
//! days whose files were ingested, and a day it could not get (not entitled, not yet
//! published) keeps whatever the file already holds for it (say, bars topped up from
//! REST) instead of being emptied.

use std::ops::Range;

use crate::bars::Bars;

/// The bars of `stored` outside every range of `replace` merged, in timestamp order,
/// with the bars of `incoming` inside one of them, and how many stored bars were kept.
/// Both inputs are sorted by strictly increasing timestamp; so is the result.
/// `replace` is sorted and disjoint.
pub(super) fn replace_within(
    stored: &Bars,
    incoming: &Bars,
    replace: &[Range<i64>],
) -> (Bars, usize) {
    let inside = |t: i64| {
        let i = replace.partition_point(|r| r.end <= t);
        replace.get(i).is_some_and(|r| r.contains(&t))
    };
    let (s, n) = (&stored.timestamp, &incoming.timestamp);
    let mut out = Bars::with_capacity(s.len().max(n.len()));
    let (mut i, mut j, mut kept) = (0, 0, 0);
    loop {
        // Skip what each side may not contribute.
        while i < s.len() && inside(s[i]) {
            i += 1;
        }
        while j < n.len() && !inside(n[j]) {
            j += 1;
        }
        let take_stored = match (s.get(i), n.get(j)) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => a < b,
        };
        let bar = if take_stored {
            i += 1;
            kept += 1;
            stored.get(i - 1)
        } else {
            j += 1;
            incoming.get(j - 1)
        };
        if let Some(bar) = bar {
            out.push(bar);
        }
    }
    (out, kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bars::Bar;

    fn bars(ts: &[i64], close: f64) -> Bars {
        let mut b = Bars::default();
        for &t in ts {
            b.push(Bar {
                timestamp: t,
                open: close,
                high: close,
                low: close,
                close,
                volume: 1.0,
                vwap: Some(close),
                transactions: Some(1),
                otc: false,
            });
        }
        b
    }

    #[test]
    fn days_outside_the_ranges_keep_their_stored_bars() {
        let stored = bars(&[1, 5, 11, 15, 21], 1.0);
        let incoming = bars(&[2, 6, 12, 22, 25], 2.0);
        let (out, kept) = replace_within(&stored, &incoming, &[0..10, 20..30]);
        assert_eq!(kept, 2);
        assert_eq!(out.timestamp, vec![2, 6, 11, 15, 22, 25]);
        assert_eq!(out.close, vec![2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
    }

    #[test]
    fn nothing_incoming_empties_only_the_replaced_days() {
        let stored = bars(&[1, 11], 1.0);
        let (out, _) = replace_within(&stored, &Bars::default(), &[10..20, 30..40]);
        assert_eq!(out.timestamp, vec![1]);
    }
}
