//! Minute bars in columnar form: what the decoder fills, the store writes and the
//! script engine shows. Columns, not a `Vec<Bar>`, because they go straight into Arrow.

pub mod optional;
pub mod resample;

pub use optional::Optional;

use crate::calendar::{DateRange, ny_date_of_ms};

/// One bar, as seen when indexing or iterating [`Bars`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Start of the minute, Unix milliseconds (UTC).
    pub timestamp: i64,
    /// Open price.
    pub open: f64,
    /// High price.
    pub high: f64,
    /// Low price.
    pub low: f64,
    /// Close price.
    pub close: f64,
    /// Traded volume (fractional for some instruments).
    pub volume: f64,
    /// Volume-weighted average price, when the API sent one.
    pub vwap: Option<f64>,
    /// Number of trades, when the API sent one.
    pub transactions: Option<i64>,
    /// True for OTC-traded bars.
    pub otc: bool,
}

/// A column-oriented run of bars, normally sorted by strictly increasing timestamp.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bars {
    /// Start of each minute, Unix milliseconds (UTC).
    pub timestamp: Vec<i64>,
    /// Open prices.
    pub open: Vec<f64>,
    /// High prices.
    pub high: Vec<f64>,
    /// Low prices.
    pub low: Vec<f64>,
    /// Close prices.
    pub close: Vec<f64>,
    /// Volumes.
    pub volume: Vec<f64>,
    /// VWAP, absent where the API sent none.
    pub vwap: Optional<f64>,
    /// Trade counts, absent where the API sent none.
    pub transactions: Optional<i64>,
    /// OTC flags.
    pub otc: Vec<bool>,
}

impl Bars {
    /// Empty bars with room for `n`.
    pub fn with_capacity(n: usize) -> Bars {
        let mut bars = Bars::default();
        bars.reserve(n);
        bars
    }

    /// Makes room for `n` more bars in every column.
    pub fn reserve(&mut self, n: usize) {
        self.timestamp.reserve(n);
        self.open.reserve(n);
        self.high.reserve(n);
        self.low.reserve(n);
        self.close.reserve(n);
        self.volume.reserve(n);
        self.vwap.reserve(n);
        self.transactions.reserve(n);
        self.otc.reserve(n);
    }

    /// Gives back the room beyond the bars held in every column (in place, mostly:
    /// a shrinking realloc does not copy).
    pub fn shrink_to_fit(&mut self) {
        self.timestamp.shrink_to_fit();
        self.open.shrink_to_fit();
        self.high.shrink_to_fit();
        self.low.shrink_to_fit();
        self.close.shrink_to_fit();
        self.volume.shrink_to_fit();
        self.vwap.shrink_to_fit();
        self.transactions.shrink_to_fit();
        self.otc.shrink_to_fit();
    }

    /// Removes every bar, keeping the room (a buffer reused from run to run).
    pub fn clear(&mut self) {
        self.timestamp.clear();
        self.open.clear();
        self.high.clear();
        self.low.clear();
        self.close.clear();
        self.volume.clear();
        self.vwap.clear();
        self.transactions.clear();
        self.otc.clear();
    }

    /// Keeps the first `n` bars (all of them when there are fewer).
    pub fn truncate(&mut self, n: usize) {
        self.timestamp.truncate(n);
        self.open.truncate(n);
        self.high.truncate(n);
        self.low.truncate(n);
        self.close.truncate(n);
        self.volume.truncate(n);
        self.vwap.truncate(n);
        self.transactions.truncate(n);
        self.otc.truncate(n);
    }

    /// Splits off the bars from `at` on (returned), keeping the first `at`.
    pub fn split_off(&mut self, at: usize) -> Bars {
        Bars {
            timestamp: self.timestamp.split_off(at),
            open: self.open.split_off(at),
            high: self.high.split_off(at),
            low: self.low.split_off(at),
            close: self.close.split_off(at),
            volume: self.volume.split_off(at),
            vwap: self.vwap.split_off(at),
            transactions: self.transactions.split_off(at),
            otc: self.otc.split_off(at),
        }
    }

    /// Number of bars.
    pub fn len(&self) -> usize {
        self.timestamp.len()
    }

    /// True when there are no bars.
    pub fn is_empty(&self) -> bool {
        self.timestamp.is_empty()
    }

    /// Appends one bar.
    pub fn push(&mut self, b: Bar) {
        self.timestamp.push(b.timestamp);
        self.open.push(b.open);
        self.high.push(b.high);
        self.low.push(b.low);
        self.close.push(b.close);
        self.volume.push(b.volume);
        self.vwap.push(b.vwap);
        self.transactions.push(b.transactions);
        self.otc.push(b.otc);
    }

    /// The bar at `i`, if any.
    pub fn get(&self, i: usize) -> Option<Bar> {
        (i < self.len()).then(|| Bar {
            timestamp: self.timestamp[i],
            open: self.open[i],
            high: self.high[i],
            low: self.low[i],
            close: self.close[i],
            volume: self.volume[i],
            vwap: self.vwap.get(i),
            transactions: self.transactions.get(i),
            otc: self.otc[i],
        })
    }

    /// The last bar, if any.
    pub fn last(&self) -> Option<Bar> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// Iterates the bars in order.
    pub fn iter(&self) -> impl Iterator<Item = Bar> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Appends all of `other`.
    pub fn extend(&mut self, other: &Bars) {
        self.timestamp.extend_from_slice(&other.timestamp);
        self.open.extend_from_slice(&other.open);
        self.high.extend_from_slice(&other.high);
        self.low.extend_from_slice(&other.low);
        self.close.extend_from_slice(&other.close);
        self.volume.extend_from_slice(&other.volume);
        self.vwap.extend_from(&other.vwap);
        self.transactions.extend_from(&other.transactions);
        self.otc.extend_from_slice(&other.otc);
    }

    /// The bars whose New York trading date lies inside `range`.
    pub fn within(&self, range: DateRange) -> Bars {
        self.filter(|ts| range.contains(ny_date_of_ms(ts)))
    }

    /// The bars whose New York trading date lies outside `range`.
    pub fn outside(&self, range: DateRange) -> Bars {
        self.filter(|ts| !range.contains(ny_date_of_ms(ts)))
    }

    fn filter(&self, keep: impl Fn(i64) -> bool) -> Bars {
        let mut out = Bars::default();
        for b in self.iter().filter(|b| keep(b.timestamp)) {
            out.push(b);
        }
        out
    }

    /// Merges two sorted runs into one sorted run; on equal timestamps `newer` wins.
    pub fn merge_sorted(older: &Bars, newer: &Bars) -> Bars {
        let mut out = Bars::with_capacity(older.len() + newer.len());
        let (mut i, mut j) = (0, 0);
        while i < older.len() || j < newer.len() {
            let take_newer = match (older.timestamp.get(i), newer.timestamp.get(j)) {
                (Some(a), Some(b)) if a == b => {
                    i += 1;
                    true
                }
                (Some(a), Some(b)) => b < a,
                (None, _) => true,
                (_, None) => false,
            };
            if take_newer {
                out.push(newer.get(j).expect("index checked"));
                j += 1;
            } else {
                out.push(older.get(i).expect("index checked"));
                i += 1;
            }
        }
        out
    }
}

/// Bars at these timestamps with every price and the volume 1, for unit tests.
#[cfg(test)]
pub(crate) fn flat_bars(timestamps: impl IntoIterator<Item = i64>) -> Bars {
    let mut b = Bars::default();
    for timestamp in timestamps {
        b.push(Bar {
            timestamp,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 1.0,
            vwap: None,
            transactions: None,
            otc: false,
        });
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(ts: i64, close: f64) -> Bar {
        Bar {
            timestamp: ts,
            open: close,
            high: close,
            low: close,
            close,
            volume: 1.0,
            vwap: None,
            transactions: Some(1),
            otc: false,
        }
    }

    fn bars(items: &[(i64, f64)]) -> Bars {
        let mut b = Bars::default();
        for &(t, c) in items {
            b.push(bar(t, c));
        }
        b
    }

    #[test]
    fn merge_keeps_order_and_prefers_newer_on_ties() {
        let old = bars(&[(1, 1.0), (3, 1.0), (5, 1.0)]);
        let new = bars(&[(2, 2.0), (3, 2.0), (6, 2.0)]);
        let m = Bars::merge_sorted(&old, &new);
        assert_eq!(m.timestamp, vec![1, 2, 3, 5, 6]);
        assert_eq!(m.close, vec![1.0, 2.0, 2.0, 1.0, 2.0]);
    }

    #[test]
    fn within_and_outside_partition_by_new_york_date() {
        // 2021-03-02 01:00 UTC is March 1st in New York; 15:00 UTC is March 2nd.
        let b = bars(&[(1_614_646_800_000, 1.0), (1_614_697_200_000, 2.0)]);
        let r = crate::calendar::DateRange::parse("2021-03-02", "2021-03-02").unwrap();
        assert_eq!(b.within(r).close, vec![2.0]);
        assert_eq!(b.outside(r).close, vec![1.0]);
    }
}
