//! Coarser bars from minute bars, and the volume-weighted average price of a run.
//!
//! Buckets are keyed by each bar's start time. Minute and hour buckets are aligned to
//! multiples of their length since the Unix epoch (UTC); only lengths that divide an
//! hour are accepted, so the buckets also start on the New York clock's round minutes
//! (New York is a whole number of hours from UTC). Day buckets are New York calendar
//! days: a bar at 01:00 UTC belongs to the previous New York day, and the day bar is
//! stamped with the New York midnight that starts it.

use std::fmt;

use crate::bars::{Bar, Bars};
use crate::calendar::{ny_date_of_ms, ny_day_start_ms};

/// Milliseconds in a minute.
const MINUTE_MS: i64 = 60_000;

/// How long each resampled bar is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    /// A fixed number of minutes dividing an hour (`1m`..`60m`, `1h`), aligned to UTC
    /// epoch multiples.
    Minutes(i64),
    /// One New York calendar day (`1d`).
    NyDay,
}

impl Every {
    /// Parses `5m`, `15m`, `1h`, `1d` (minutes must divide 60; hours and days only 1).
    pub fn parse(text: &str) -> Result<Every, String> {
        let t = text.trim();
        let bad = || {
            format!(
                "'{text}' is not a bar length: use Nm with N dividing 60 (1m, 5m, 15m, 30m), 1h or 1d"
            )
        };
        let (n, unit) = t.split_at(t.len().saturating_sub(1));
        let n: i64 = n.parse().map_err(|_| bad())?;
        match (n, unit) {
            (n, "m") if n > 0 && 60 % n == 0 => Ok(Every::Minutes(n)),
            (1, "h") => Ok(Every::Minutes(60)),
            (1, "d") => Ok(Every::NyDay),
            _ => Err(bad()),
        }
    }

    /// The start (Unix ms) of the bucket holding a bar that starts at `ts`.
    pub fn bucket_start(self, ts: i64) -> i64 {
        match self {
            Every::Minutes(n) => ts.div_euclid(n * MINUTE_MS) * (n * MINUTE_MS),
            Every::NyDay => ny_day_start_ms(ny_date_of_ms(ts)),
        }
    }
}

impl fmt::Display for Every {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Every::Minutes(60) => f.write_str("1h"),
            Every::Minutes(n) => write!(f, "{n}m"),
            Every::NyDay => f.write_str("1d"),
        }
    }
}

/// Sums for the volume-weighted average of the bars' own VWAPs.
#[derive(Debug, Clone, Copy, Default)]
struct VwapSum {
    weighted: f64,
    volume: f64,
}

impl VwapSum {
    fn add(&mut self, b: &Bar) {
        if let Some(v) = b.vwap.filter(|v| v.is_finite())
            && b.volume > 0.0
        {
            self.weighted += v * b.volume;
            self.volume += b.volume;
        }
    }

    fn value(self) -> Option<f64> {
        (self.volume > 0.0).then(|| self.weighted / self.volume)
    }
}

/// The volume-weighted mean of the bars' VWAPs; bars without a VWAP or with no volume
/// are left out. `None` when no bar counts.
pub fn vwap(bars: &Bars) -> Option<f64> {
    let mut sum = VwapSum::default();
    bars.iter().for_each(|b| sum.add(&b));
    sum.value()
}

/// One bucket being filled.
struct Bucket {
    bar: Bar,
    vwap: VwapSum,
}

impl Bucket {
    fn start(start: i64, b: &Bar) -> Bucket {
        let mut vwap = VwapSum::default();
        vwap.add(b);
        Bucket {
            bar: Bar {
                timestamp: start,
                vwap: None,
                ..*b
            },
            vwap,
        }
    }

    fn add(&mut self, b: &Bar) {
        let a = &mut self.bar;
        a.high = a.high.max(b.high);
        a.low = a.low.min(b.low);
        a.close = b.close;
        a.volume += b.volume;
        a.transactions = match (a.transactions, b.transactions) {
            (Some(x), Some(y)) => Some(x + y),
            (x, y) => x.or(y),
        };
        a.otc |= b.otc;
        self.vwap.add(b);
    }

    fn finish(self) -> Bar {
        Bar {
            vwap: self.vwap.value(),
            ..self.bar
        }
    }
}

/// Bars of length `every` from time-sorted `bars`: open of the first bar, highest
/// high, lowest low, close of the last, summed volume and transactions (missing counts
/// left out; `None` when all are missing), VWAP as in [`vwap`], OTC when any bar is.
/// Each bar is stamped with its bucket's start; empty buckets produce no bar.
pub fn resample(bars: &Bars, every: Every) -> Bars {
    let mut out = Bars::default();
    let mut current: Option<(i64, Bucket)> = None;
    for b in bars.iter() {
        let start = every.bucket_start(b.timestamp);
        match &mut current {
            Some((s, bucket)) if *s == start => bucket.add(&b),
            _ => {
                if let Some((_, done)) = current.take() {
                    out.push(done.finish());
                }
                current = Some((start, Bucket::start(start, &b)));
            }
        }
    }
    if let Some((_, done)) = current {
        out.push(done.finish());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-03-04 14:30 UTC = 09:30 New York (EST).
    const OPEN: i64 = 1_709_562_600_000;

    fn bar(ts: i64, o: f64, h: f64, l: f64, c: f64, v: f64, vwap: Option<f64>) -> Bar {
        Bar {
            timestamp: ts,
            open: o,
            high: h,
            low: l,
            close: c,
            volume: v,
            vwap,
            transactions: Some(1),
            otc: false,
        }
    }

    fn run(items: &[Bar]) -> Bars {
        let mut b = Bars::default();
        items.iter().for_each(|x| b.push(*x));
        b
    }

    #[test]
    fn parses_lengths_and_rejects_the_rest() {
        assert_eq!(Every::parse("5m"), Ok(Every::Minutes(5)));
        assert_eq!(Every::parse("1h"), Ok(Every::Minutes(60)));
        assert_eq!(Every::parse("1d"), Ok(Every::NyDay));
        for bad in ["7m", "2h", "0m", "m", "", "5x", "2d", "-5m"] {
            let e = Every::parse(bad).unwrap_err();
            assert!(e.contains("not a bar length"), "{bad}: {e}");
        }
        assert_eq!(Every::Minutes(60).to_string(), "1h");
    }

    #[test]
    fn five_minute_bars_take_first_open_max_high_min_low_last_close_and_sums() {
        let m = MINUTE_MS;
        let b = run(&[
            bar(OPEN, 10.0, 11.0, 9.0, 10.5, 100.0, Some(10.0)),
            bar(OPEN + m, 10.5, 12.0, 10.0, 11.0, 300.0, Some(11.0)),
            bar(OPEN + 4 * m, 11.0, 11.5, 8.0, 9.0, 100.0, None),
            bar(OPEN + 5 * m, 9.0, 9.5, 8.5, 9.25, 50.0, None),
        ]);
        let r = resample(&b, Every::Minutes(5));
        assert_eq!(r.timestamp, vec![OPEN, OPEN + 5 * m]);
        assert_eq!(r.open, vec![10.0, 9.0]);
        assert_eq!(r.high, vec![12.0, 9.5]);
        assert_eq!(r.low, vec![8.0, 8.5]);
        assert_eq!(r.close, vec![9.0, 9.25]);
        assert_eq!(r.volume, vec![500.0, 50.0]);
        assert_eq!(r.transactions, vec![Some(3), Some(1)]);
        // The bar without a VWAP is left out: (10*100 + 11*300) / 400.
        assert_eq!(r.vwap, vec![Some(10.75), None]);
    }

    #[test]
    fn buckets_start_at_epoch_multiples_which_are_round_new_york_times() {
        let b = run(&[bar(OPEN + 7 * MINUTE_MS, 1.0, 1.0, 1.0, 1.0, 1.0, None)]);
        let r = resample(&b, Every::Minutes(60));
        // 09:37 New York falls in the 09:00 hour.
        assert_eq!(r.timestamp, vec![OPEN - 30 * MINUTE_MS]);
    }

    #[test]
    fn day_bars_follow_the_new_york_calendar_across_utc_midnight() {
        // 2024-03-04 23:30 UTC (18:30 NY) and 2024-03-05 00:30 UTC (19:30 NY, still
        // March 4th in New York), then 2024-03-05 14:30 UTC (March 5th).
        let late = 1_709_595_000_000;
        let b = run(&[
            bar(late, 1.0, 2.0, 0.5, 1.5, 10.0, Some(1.0)),
            bar(late + 60 * MINUTE_MS, 1.5, 3.0, 1.0, 2.0, 30.0, Some(2.0)),
            bar(
                OPEN + 24 * 60 * MINUTE_MS,
                5.0,
                5.0,
                5.0,
                5.0,
                1.0,
                Some(5.0),
            ),
        ]);
        let r = resample(&b, Every::NyDay);
        let mar4 = ny_day_start_ms(jiff::civil::date(2024, 3, 4));
        let mar5 = ny_day_start_ms(jiff::civil::date(2024, 3, 5));
        assert_eq!(r.timestamp, vec![mar4, mar5]);
        assert_eq!(mar4, 1_709_528_400_000, "midnight EST is 05:00 UTC");
        assert_eq!(r.high, vec![3.0, 5.0]);
        assert_eq!(r.close, vec![2.0, 5.0]);
        assert_eq!(r.vwap, vec![Some(1.75), Some(5.0)]);
    }

    #[test]
    fn empty_input_and_missing_values() {
        assert!(resample(&Bars::default(), Every::NyDay).is_empty());
        assert_eq!(vwap(&Bars::default()), None);
        let mut b = run(&[bar(OPEN, 1.0, 1.0, 1.0, 1.0, 0.0, Some(3.0))]);
        assert_eq!(vwap(&b), None, "no volume, no weight");
        b.transactions.set(0, None);
        assert_eq!(resample(&b, Every::Minutes(5)).transactions, vec![None]);
        b.push(bar(OPEN + MINUTE_MS, 1.0, 1.0, 1.0, 1.0, 2.0, Some(4.0)));
        b.push(bar(
            OPEN + 2 * MINUTE_MS,
            1.0,
            1.0,
            1.0,
            1.0,
            6.0,
            Some(2.0),
        ));
        assert_eq!(vwap(&b), Some(2.5));
    }
}
