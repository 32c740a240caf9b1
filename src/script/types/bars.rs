//! `Bars`: minute bars held in memory by a script (from `fetch_minute_bars`).
//!
//! The columns stay behind an `Arc`, so passing bars around a script copies a pointer,
//! not the data. Printing shows a short table; indexing gives a map per bar.

use std::fmt::Write as _;
use std::sync::Arc;

use rhai::plugin::*;
use rhai::{Dynamic, Map};

use crate::bars::{Bar, Bars};
use crate::calendar::exchange_tz;

/// Rows shown at each end when bars are printed.
const SHOWN: usize = 3;

/// Bars of one ticker, as scripts hold them.
#[derive(Debug, Clone)]
pub struct ScriptBars {
    /// The symbol.
    pub ticker: String,
    /// The bars (shared, never copied by the script).
    pub bars: Arc<Bars>,
}

/// `2024-01-02 09:30` in New York time.
fn ny_minute(ms: i64) -> String {
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
    /// The bar at `index` (negative counts from the end), if any.
    pub fn at(&self, index: i64) -> Option<Bar> {
        let len = self.bars.len() as i64;
        let i = if index < 0 { len + index } else { index };
        usize::try_from(i).ok().and_then(|i| self.bars.get(i))
    }

    fn row(out: &mut String, b: &Bar) {
        let opt_f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
        let opt_i = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        let _ = writeln!(
            out,
            "  {}  {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>12} {:>10} {:>6}",
            ny_minute(b.timestamp),
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
            opt_f(b.vwap),
            opt_i(b.transactions)
        );
    }
}

impl std::fmt::Display for ScriptBars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.bars.len();
        let (Some(first), Some(last)) = (
            self.bars.get(0),
            n.checked_sub(1).and_then(|i| self.bars.get(i)),
        ) else {
            return write!(f, "Bars {}: no bars", self.ticker);
        };
        let mut out = format!(
            "Bars {}: {n} bar{} from {} to {} (New York time)\n",
            self.ticker,
            if n == 1 { "" } else { "s" },
            ny_minute(first.timestamp),
            ny_minute(last.timestamp)
        );
        let _ = writeln!(
            out,
            "  {:<16}  {:>10} {:>10} {:>10} {:>10} {:>12} {:>10} {:>6}",
            "time", "open", "high", "low", "close", "volume", "vwap", "trades"
        );
        let head = n.min(SHOWN);
        for b in (0..head).filter_map(|i| self.bars.get(i)) {
            ScriptBars::row(&mut out, &b);
        }
        if n > 2 * SHOWN {
            let _ = writeln!(out, "  ... {} more ...", n - 2 * SHOWN);
        }
        for b in (head.max(n.saturating_sub(SHOWN))..n).filter_map(|i| self.bars.get(i)) {
            ScriptBars::row(&mut out, &b);
        }
        f.write_str(out.trim_end())
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

    /// A short table: ticker, count, time range, the first and last rows.
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
