//! How a piece of bars lands in its (ticker, year) file: which bars of the existing
//! file it keeps, which it replaces, and what the merged file's provenance says. Pure
//! functions over bars and metadata, shared by every backend (the local folder and S3)
//! so both write exactly the same files from the same pieces.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use crate::bars::Bars;
use crate::calendar::{DateRange, ny_day_start_ms, parse_date};
use crate::store::decode::StoredFile;
use crate::store::error::StoreError;
use crate::store::identity::{Provenance, kept_origin};
use crate::store::{schema, within};

/// The calendar year of a piece, refusing a piece that spans two.
pub(crate) fn year_of(ticker: &str, range: DateRange) -> Result<i16, StoreError> {
    let year = range.from.year();
    if range.to.year() != year {
        return Err(StoreError::Invalid(format!(
            "write_piece({ticker}, {range}): a piece must lie within one calendar year; \
             split it with DateRange::split_by_year"
        )));
    }
    Ok(year)
}

/// What a write must read of the year's existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    /// Only its metadata (to check its identity): every stored bar is replaced.
    Metadata,
    /// Its bars and metadata: some stored bars are kept.
    Bars,
}

/// What a write of `range` (replacing the days of `complete`) needs of an existing file.
pub(crate) fn needs(range: DateRange, complete: &[DateRange]) -> Needs {
    let whole_year = range.from.day_of_year() == 1 && range.to == range.to.last_of_year();
    if complete == [range] && whole_year {
        Needs::Metadata
    } else {
        Needs::Bars
    }
}

/// The bars of a piece of `range`: `bars` inside it, sorted (see [`sorted_within`]).
pub(crate) fn incoming<'a>(ticker: &str, bars: Cow<'a, Bars>, range: DateRange) -> Cow<'a, Bars> {
    sorted_within(ticker, bars, ms_bounds(range))
}

/// The year's bars once `incoming` (from [`incoming`]) replaces the days of `complete`
/// (sorted, disjoint, inside `range`) of `stored`, the year's existing file (`None`
/// when there is none; with [`Needs::Metadata`] its bars are not looked at).
/// `provenance` is widened to what the kept bars' file recorded.
pub(crate) fn merge<'a>(
    stored: Option<&StoredFile>,
    incoming: Cow<'a, Bars>,
    range: DateRange,
    complete: &[DateRange],
    provenance: &mut Provenance,
) -> Cow<'a, Bars> {
    let keep = |provenance: &mut Provenance, meta: &HashMap<String, String>| {
        provenance.requested = widen(provenance.requested, meta);
        provenance.origin = kept_origin(provenance.origin.take(), meta);
    };
    if complete != [range] {
        let replace: Vec<Range<i64>> = complete.iter().map(|r| ms_bounds(*r)).collect();
        let Some(stored) = stored else {
            return Cow::Owned(within::replace_within(&Bars::default(), &incoming, &replace).0);
        };
        let (merged, kept) = within::replace_within(&stored.bars, &incoming, &replace);
        if kept > 0 {
            keep(provenance, &stored.metadata);
        }
        return Cow::Owned(merged);
    }
    let stored = match stored {
        Some(s) if needs(range, complete) == Needs::Bars => s,
        // No file, or every stored bar is replaced.
        _ => return incoming,
    };
    let (before, after) = outside_slices(&stored.bars, ms_bounds(range));
    if !before.is_empty() || !after.is_empty() {
        keep(provenance, &stored.metadata);
    }
    let mut merged = Bars::with_capacity(before.len() + incoming.len() + after.len());
    merged.extend(&slice(&stored.bars, before));
    merged.extend(incoming.as_ref());
    merged.extend(&slice(&stored.bars, after));
    Cow::Owned(merged)
}

/// The bars of sorted `bars` whose New York date lies in `range`.
pub(crate) fn bars_in(bars: &Bars, range: DateRange) -> Bars {
    let ts = &bars.timestamp;
    let b = ms_bounds(range);
    slice(
        bars,
        ts.partition_point(|&t| t < b.start)..ts.partition_point(|&t| t < b.end),
    )
}

/// The Unix-millisecond interval `[start of from, start of the day after to)`.
pub(crate) fn ms_bounds(range: DateRange) -> Range<i64> {
    let end = range.to.tomorrow().map(ny_day_start_ms).unwrap_or(i64::MAX);
    ny_day_start_ms(range.from)..end
}

/// The index ranges of sorted `bars` before and after `bounds`.
fn outside_slices(bars: &Bars, bounds: Range<i64>) -> (Range<usize>, Range<usize>) {
    let ts = &bars.timestamp;
    let a = ts.partition_point(|&t| t < bounds.start);
    let b = ts.partition_point(|&t| t < bounds.end);
    (0..a, b..ts.len())
}

/// Rows `r` of `bars`.
pub(crate) fn slice(bars: &Bars, r: Range<usize>) -> Bars {
    Bars {
        timestamp: bars.timestamp[r.clone()].to_vec(),
        open: bars.open[r.clone()].to_vec(),
        high: bars.high[r.clone()].to_vec(),
        low: bars.low[r.clone()].to_vec(),
        close: bars.close[r.clone()].to_vec(),
        volume: bars.volume[r.clone()].to_vec(),
        vwap: bars.vwap.slice(r.clone()),
        transactions: bars.transactions.slice(r.clone()),
        otc: bars.otc[r].to_vec(),
    }
}

/// `bars` restricted to `bounds`, sorted by strictly increasing timestamp (on a repeated
/// timestamp the later bar wins). Already-sorted input (the normal case) is only sliced.
fn sorted_within<'a>(ticker: &str, bars: Cow<'a, Bars>, bounds: Range<i64>) -> Cow<'a, Bars> {
    let ts = &bars.timestamp;
    let sorted = ts.windows(2).all(|w| w[0] < w[1]);
    let out = if sorted {
        let a = ts.partition_point(|&t| t < bounds.start);
        let b = ts.partition_point(|&t| t < bounds.end);
        if a == 0 && b == ts.len() {
            // The usual case: the bars as given, no copy of a ticker-year (which bounds
            // a worker's memory).
            return bars;
        }
        slice(&bars, a..b)
    } else {
        let mut idx: Vec<usize> = (0..ts.len()).filter(|&i| bounds.contains(&ts[i])).collect();
        idx.sort_by_key(|&i| ts[i]); // stable: equal timestamps keep arrival order
        let mut out = Bars::with_capacity(idx.len());
        for (k, &i) in idx.iter().enumerate() {
            if idx.get(k + 1).is_some_and(|&j| ts[j] == ts[i]) {
                continue; // a later bar with the same minute follows
            }
            if let Some(bar) = bars.get(i) {
                out.push(bar);
            }
        }
        out
    };
    if out.len() != bars.len() {
        tracing::warn!(
            ticker,
            given = bars.len(),
            kept = out.len(),
            "bars outside the written range or repeated were dropped"
        );
    }
    Cow::Owned(out)
}

/// `requested` widened to the requested range recorded in an existing file's metadata,
/// since the merged file holds bars of both requests.
fn widen(requested: DateRange, meta: &HashMap<String, String>) -> DateRange {
    match recorded_request(meta) {
        Some(r) => DateRange {
            from: requested.from.min(r.from),
            to: requested.to.max(r.to),
        },
        None => requested,
    }
}

/// The requested range a file's metadata records, if it records a valid one.
pub(crate) fn recorded_request(meta: &HashMap<String, String>) -> Option<DateRange> {
    let date = |k: &str| meta.get(k).and_then(|v| parse_date(v).ok());
    let (from, to) = (
        date(schema::meta::REQUESTED_FROM)?,
        date(schema::meta::REQUESTED_TO)?,
    );
    DateRange::new(from, to).ok()
}
