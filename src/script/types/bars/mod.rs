//! `Bars`: bars held in memory by a script (from `fetch_minute_bars`, `load_bars` or
//! `resample`).
//!
//! The columns stay behind an `Arc`, so passing bars around a script copies a pointer,
//! not the data. Printing shows an aligned table of the first and last rows; indexing
//! gives a map per bar. [`ops`] holds the methods that derive or write bars.

pub mod ops;
mod table;

use std::sync::Arc;

use rhai::plugin::*;
use rhai::{Dynamic, Map};

use crate::bars::{Bar, Bars};
use crate::calendar::exchange_tz;
use crate::store::DatasetIdentity;

/// Bars of one ticker, as scripts hold them.
#[derive(Debug, Clone)]
pub struct ScriptBars {
    /// The symbol.
    pub ticker: String,
    /// The bars (shared, never copied by the script).
    pub bars: Arc<Bars>,
    /// What the bars are (provider, timespan such as `minute` or `5m`, adjusted);
    /// recorded in the footer by `to_parquet`.
    pub identity: DatasetIdentity,
}

/// `2024-01-02 09:30` in New York time.
pub(crate) fn ny_minute(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned_datetime(exchange_tz())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| ms.to_string())
}

/// One bar as a script map.
pub(crate) fn bar_map(b: &Bar) -> Map {
    let mut m = Map::new();
    m.insert("timestamp".into(), Dynamic::from_int(b.timestamp));
    m.insert("time".into(), ny_minute(b.timestamp).into());
    m.insert("open".into(), Dynamic::from_float(b.open));
    m.insert("high".into(), Dynamic::from_float(b.high));
    m.insert("low".into(), Dynamic::from_float(b.low));
    m.insert("close".into(), Dynamic::from_float(b.close));
    m.insert("volume".into(), Dynamic::from_float(b.volume));
    m.insert(
        "vwap".into(),
        b.vwap.map_or(Dynamic::UNIT, Dynamic::from_float),
    );
    m.insert(
        "transactions".into(),
        b.transactions.map_or(Dynamic::UNIT, Dynamic::from_int),
    );
    m.insert("otc".into(), b.otc.into());
    m
}

impl ScriptBars {
    /// `bars` of `ticker` with the given identity.
    pub fn new(ticker: &str, bars: Bars, identity: DatasetIdentity) -> ScriptBars {
        ScriptBars {
            ticker: ticker.to_string(),
            bars: Arc::new(bars),
            identity,
        }
    }

    /// Other bars of the same ticker and identity.
    pub fn with_bars(&self, bars: Bars) -> ScriptBars {
        ScriptBars::new(&self.ticker, bars, self.identity.clone())
    }

    /// The bar at `index` (negative counts from the end), if any.
    pub fn at(&self, index: i64) -> Option<Bar> {
        let len = self.bars.len() as i64;
        let i = if index < 0 { len + index } else { index };
        usize::try_from(i).ok().and_then(|i| self.bars.get(i))
    }
}

impl std::fmt::Display for ScriptBars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.table(table::SHOWN))
    }
}

impl IntoIterator for ScriptBars {
    type Item = Dynamic;
    type IntoIter = Box<dyn Iterator<Item = Dynamic> + Send + Sync>;

    fn into_iter(self) -> Self::IntoIter {
        let bars = self.bars;
        Box::new(
            (0..bars.len())
                .filter_map(move |i| bars.get(i).map(|b| Dynamic::from_map(bar_map(&b)))),
        )
    }
}

/// Methods of `Bars` as a plugin module.
#[export_module]
pub mod bars_fns {
    use rhai::{Dynamic, Map};

    use super::{ScriptBars, bar_map};
    use crate::script::value::{Fallible, error};

    /// A table: ticker, count, time range (New York), then the first and last 5 rows
    /// aligned in columns (`bars.table(n)` shows more).
    ///
    /// Example: `print(fetch_minute_bars("AAPL", "2024-01-02", "2024-01-02"));`
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(bars: &mut ScriptBars) -> String {
        bars.to_string()
    }

    /// The number of bars.
    ///
    /// Example: `log(`${bars.len()} bars`);`
    #[rhai_fn(global, name = "len", get = "len", pure)]
    pub fn len(bars: &mut ScriptBars) -> i64 {
        bars.bars.len() as i64
    }

    /// True when there are no bars.
    ///
    /// Example: `if bars.is_empty() { warn("no data"); }`
    #[rhai_fn(global, name = "is_empty", get = "is_empty", pure)]
    pub fn is_empty(bars: &mut ScriptBars) -> bool {
        bars.bars.is_empty()
    }

    /// The ticker the bars belong to.
    ///
    /// Example: `print(bars.ticker);`
    #[rhai_fn(global, get = "ticker", pure)]
    pub fn ticker(bars: &mut ScriptBars) -> String {
        bars.ticker.clone()
    }

    /// The first bar as a map (`timestamp` ms, `time` New York, `open`, `high`, `low`,
    /// `close`, `volume`, `vwap`, `transactions`, `otc`), or `()` when empty.
    ///
    /// Example: `print(bars.first().open);`
    #[rhai_fn(global, name = "first", get = "first", pure)]
    pub fn first(bars: &mut ScriptBars) -> Dynamic {
        bars.at(0)
            .map_or(Dynamic::UNIT, |b| Dynamic::from_map(bar_map(&b)))
    }

    /// The last bar as a map, or `()` when empty.
    ///
    /// Example: `print(bars.last().close);`
    #[rhai_fn(global, name = "last", get = "last", pure)]
    pub fn last(bars: &mut ScriptBars) -> Dynamic {
        bars.at(-1)
            .map_or(Dynamic::UNIT, |b| Dynamic::from_map(bar_map(&b)))
    }

    /// The bar at `index` as a map (negative counts from the end); out of range is
    /// an error.
    ///
    /// Example: `let c = bars[0].close;`
    #[rhai_fn(global, index_get, return_raw, pure)]
    pub fn get(bars: &mut ScriptBars, index: i64) -> Fallible<Map> {
        bars.at(index).map(|b| bar_map(&b)).ok_or_else(|| {
            error(format!(
                "bar index {index} is out of range: there are {} bars",
                bars.bars.len()
            ))
        })
    }
}
