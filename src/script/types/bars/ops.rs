//! Methods that derive bars from bars (`filter`, `resample`), summarize them (`map`,
//! `vwap`) or write them (`to_csv`, `to_parquet`).

use rhai::{Array, Dynamic, FnPtr, NativeCallContext};

use super::{ScriptBars, bar_map, ny_minute};
use crate::bars::Bars;
use crate::bars::resample::{Every, resample};
use crate::calendar::{DateRange, ny_date_of_ms, today_ny};
use crate::script::primitives::io::write_atomically;
use crate::script::value::{Fallible, error};
use crate::store::{Provenance, encode_parquet};

/// The CSV header of `to_csv`.
pub(crate) const CSV_COLUMNS: [&str; 10] = [
    "timestamp",
    "time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "transactions",
    "otc",
];

/// The bars for which `keep(bar_map)` returns true.
pub(crate) fn filter(
    ctx: &NativeCallContext,
    bars: &ScriptBars,
    keep: &FnPtr,
) -> Fallible<ScriptBars> {
    let mut out = Bars::default();
    for (i, b) in bars.bars.iter().enumerate() {
        let verdict: Dynamic = keep.call_within_context(ctx, (Dynamic::from_map(bar_map(&b)),))?;
        let keep = verdict.as_bool().map_err(|t| {
            error(format!(
                "filter: the function must return true or false; for bar {i} it returned {t}"
            ))
        })?;
        if keep {
            out.push(b);
        }
    }
    Ok(bars.with_bars(out))
}

/// `f(bar_map)` for every bar, in order.
pub(crate) fn map(ctx: &NativeCallContext, bars: &ScriptBars, f: &FnPtr) -> Fallible<Array> {
    bars.bars
        .iter()
        .map(|b| f.call_within_context(ctx, (Dynamic::from_map(bar_map(&b)),)))
        .collect()
}

/// Bars of length `every` (`5m`, `1h`, `1d`).
pub(crate) fn resampled(bars: &ScriptBars, every: &str) -> Fallible<ScriptBars> {
    let every = Every::parse(every).map_err(|e| error(format!("resample: {e}")))?;
    let mut out = bars.with_bars(resample(&bars.bars, every));
    out.identity.timespan = every.to_string();
    Ok(out)
}

/// The bars as CSV text with [`CSV_COLUMNS`].
pub(crate) fn csv_text(bars: &Bars) -> Fallible<String> {
    let fail = |e: csv::Error| error(format!("to_csv: {e}"));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_COLUMNS).map_err(fail)?;
    let opt = |v: Option<String>| v.unwrap_or_default();
    for b in bars.iter() {
        w.write_record([
            b.timestamp.to_string(),
            ny_minute(b.timestamp),
            b.open.to_string(),
            b.high.to_string(),
            b.low.to_string(),
            b.close.to_string(),
            b.volume.to_string(),
            opt(b.vwap.map(|v| v.to_string())),
            opt(b.transactions.map(|v| v.to_string())),
            b.otc.to_string(),
        ])
        .map_err(fail)?;
    }
    let bytes = w.into_inner().map_err(|e| error(format!("to_csv: {e}")))?;
    String::from_utf8(bytes).map_err(|e| error(format!("to_csv: {e}")))
}

/// Writes the bars as one Parquet file in the store's format, atomically.
pub(crate) fn write_parquet(bars: &ScriptBars, path: &str) -> Fallible<()> {
    let requested = match (bars.bars.get(0), bars.bars.last()) {
        (Some(a), Some(b)) => {
            DateRange::new(ny_date_of_ms(a.timestamp), ny_date_of_ms(b.timestamp))
        }
        _ => DateRange::new(today_ny(), today_ny()),
    }
    .map_err(|e| error(format!("to_parquet: {e}")))?;
    let provenance = Provenance::for_identity(&bars.identity, requested, jiff::Timestamp::now());
    let mut bytes = Vec::new();
    encode_parquet(&bars.ticker, &bars.bars, &provenance, &mut bytes)
        .map_err(|e| error(format!("to_parquet: {e}")))?;
    write_atomically("to_parquet", std::path::Path::new(path), &bytes)
}

/// Deriving and writing bars, as a plugin module.
#[rhai::plugin::export_module]
pub mod bars_ops_fns {
    use rhai::{Array, Dynamic, FnPtr, NativeCallContext};

    use crate::script::types::bars::ScriptBars;
    use crate::script::value::{Fallible, error};

    /// The bars for which `keep` returns true. `keep` receives one bar as a map
    /// `#{timestamp, time, open, high, low, close, volume, vwap, transactions, otc}`
    /// (`timestamp` in Unix ms, `time` New York `YYYY-MM-DD HH:MM`, `vwap` and
    /// `transactions` `()` when missing) and must return a bool.
    ///
    /// Example: `let big = bars.filter(|b| b.volume > 10000);`
    #[rhai_fn(global, name = "filter", return_raw, pure)]
    pub fn filter(
        ctx: NativeCallContext,
        bars: &mut ScriptBars,
        keep: FnPtr,
    ) -> Fallible<ScriptBars> {
        super::filter(&ctx, bars, &keep)
    }

    /// `f(bar)` for every bar, in order, as an array; `f` receives the same map as in
    /// `filter`.
    ///
    /// Example: `let ranges = bars.map(|b| b.high - b.low);`
    #[rhai_fn(global, name = "map", return_raw, pure)]
    pub fn map(ctx: NativeCallContext, bars: &mut ScriptBars, f: FnPtr) -> Fallible<Array> {
        super::map(&ctx, bars, &f)
    }

    /// Coarser bars: `every` is `Nm` with N dividing 60 (`1m`, `5m`, `15m`, `30m`),
    /// `1h` or `1d`. Open is the first bar's, high the highest, low the lowest, close
    /// the last bar's; volume and transactions are summed; vwap is the volume-weighted
    /// mean of the bars' vwap (bars without one are left out, `()` if none has one).
    /// Each bar is stamped with its bucket's start: minute and hour buckets start at
    /// multiples of their length since the Unix epoch (round times in New York too),
    /// `1d` buckets are New York calendar days (a bar after 19:00 New York in winter
    /// is after midnight UTC but still that New York day). Empty buckets give no bar.
    ///
    /// Example: `let daily = load_bars("data/minute", "AAPL", "2024-01-02", "2024-01-31").resample("1d");`
    #[rhai_fn(global, name = "resample", return_raw, pure)]
    pub fn resample(bars: &mut ScriptBars, every: &str) -> Fallible<ScriptBars> {
        super::resampled(bars, every)
    }

    /// The volume-weighted average price over all bars: the mean of each bar's vwap
    /// weighted by its volume (bars without a vwap or volume are left out), or `()`
    /// when no bar counts.
    ///
    /// Example: `print(`VWAP ${bars.vwap()}`);`
    #[rhai_fn(global, name = "vwap", pure)]
    pub fn vwap(bars: &mut ScriptBars) -> Dynamic {
        crate::bars::resample::vwap(&bars.bars).map_or(Dynamic::UNIT, Dynamic::from_float)
    }

    /// The bars as an aligned table: count and time range, then the first and last
    /// `rows` rows (New York time). Printing bars shows `table(5)`.
    ///
    /// Example: `print(bars.table(20));`
    #[rhai_fn(global, name = "table", return_raw, pure)]
    pub fn table(bars: &mut ScriptBars, rows: i64) -> Fallible<String> {
        let n = usize::try_from(rows)
            .map_err(|_| error(format!("table: rows must be 0 or more, got {rows}")))?;
        Ok(bars.table(n))
    }

    /// Writes the bars to a CSV file (atomically, creating missing folders) with the
    /// columns `timestamp,time,open,high,low,close,volume,vwap,transactions,otc`
    /// (`timestamp` Unix ms, `time` New York; a missing vwap or count is empty).
    ///
    /// Example: `bars.resample("5m").to_csv("out/aapl_5m.csv");`
    #[rhai_fn(global, name = "to_csv", return_raw, pure)]
    pub fn to_csv(bars: &mut ScriptBars, path: &str) -> Fallible<()> {
        let text = super::csv_text(&bars.bars)?;
        super::write_atomically("to_csv", std::path::Path::new(path), text.as_bytes())
    }

    /// Writes the bars to ONE Parquet file in the dataset's format (schema, ZSTD,
    /// ticker and provenance in the footer; the timespan is `minute` or the
    /// `resample` length), atomically, creating missing folders. The file is not
    /// part of any dataset: write it outside the data root.
    ///
    /// Example: `bars.resample("1h").to_parquet("out/aapl_1h.parquet");`
    #[rhai_fn(global, name = "to_parquet", return_raw, pure)]
    pub fn to_parquet(bars: &mut ScriptBars, path: &str) -> Fallible<()> {
        super::write_parquet(bars, path)
    }
}
