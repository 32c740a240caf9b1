//! Fetching bars in-process, without a worker: for the REPL, small jobs and checks.
//!
//! A failed fetch throws a map-like error `#{class, kind, status, message, attempts,
//! ticker}` so scripts can `try { .. } catch (e) { if e.class == "retryable" { .. } }`.

use rhai::{EvalAltResult, Map};

use crate::bars::Bars;
use crate::calendar::DateRange;
use crate::ingest::FetchError;
use crate::polygon::Client;
use crate::script::host::Host;
use crate::script::primitives::net::{block_on_cancellable, client_config, fetch_error_map};
use crate::script::types::bars::ScriptBars;
use crate::script::value::{Fallible, Options, error, error_value};
use crate::store::DatasetIdentity;

/// The keys `fetch_minute_bars` accepts.
pub(crate) const FETCH_OPTIONS: &[&str] =
    &["adjusted", "base_url", "timeout", "retries", "max_rps"];

/// A fetch error as the map scripts catch (with the ticker).
pub(crate) fn fetch_error(ticker: &str, e: &FetchError) -> Box<EvalAltResult> {
    let mut m = fetch_error_map(e);
    m.insert("ticker".into(), ticker.to_string().into());
    m.insert(
        "message".into(),
        format!("fetch_minute_bars {ticker}: {}", e.message).into(),
    );
    error_value(m)
}

/// Fetches `range` of `ticker` year by year, watching the cancel flag.
pub(crate) fn fetch(
    host: &Host,
    ticker: &str,
    range: DateRange,
    opts: Map,
) -> Fallible<ScriptBars> {
    crate::ticker::validate_ticker(ticker).map_err(|e| error(format!("fetch_minute_bars: {e}")))?;
    let o = Options::parse("fetch_minute_bars", opts, FETCH_OPTIONS)?;
    let cfg = client_config(host, &o, "fetch_minute_bars")?;
    let identity = DatasetIdentity::minute(o.bool("adjusted")?.unwrap_or(true));
    let client = Client::new(cfg).map_err(|e| fetch_error(ticker, &e))?;
    let work = async {
        let mut all = Bars::default();
        for piece in range.split_by_year() {
            let fetched = client.fetch_bars(ticker, piece, &mut |_| {}).await?;
            all.extend(&fetched.bars);
        }
        Ok::<_, FetchError>(all)
    };
    let outcome = block_on_cancellable(host, "fetch_minute_bars", work)?;
    match outcome {
        Err(e) => Err(fetch_error(ticker, &e)),
        Ok(bars) => Ok(ScriptBars::new(ticker, bars, identity)),
    }
}

/// Fetching as a plugin module.
#[rhai::plugin::export_module]
pub mod fetch_fns {
    use rhai::{Map, NativeCallContext};

    use crate::script::engine::host;
    use crate::script::types::bars::ScriptBars;
    use crate::script::value::{DateArg, Fallible, date_args};

    /// Fetches every minute bar of `ticker` from `from` to `to` (inclusive
    /// `YYYY-MM-DD`, New York dates) in this process, following pagination and
    /// retrying single requests. Returns `Bars`: prints as a table, indexes to maps
    /// (`bars[0].close`), has `len`, `first`, `last`, `filter`, `map`, `resample`,
    /// `vwap`, `table`, `to_csv`, `to_parquet`, and iterates with `for`.
    /// Nothing is written to disk. Errors are thrown as `#{class, kind, status,
    /// message, attempts, ticker}` (`class`: `retryable`, `ticker` or `run`).
    ///
    /// Example: `let bars = fetch_minute_bars("AAPL", "2024-01-02", "2024-01-05");`
    #[rhai_fn(return_raw)]
    pub fn fetch_minute_bars(
        ctx: NativeCallContext,
        ticker: &str,
        from: DateArg,
        to: DateArg,
    ) -> Fallible<ScriptBars> {
        fetch_minute_bars_with(ctx, ticker, from, to, Map::new())
    }

    /// Like `fetch_minute_bars(ticker, from, to)` with options (unknown keys are an
    /// error): `adjusted` (bool, default true), `base_url`, `timeout` (seconds per
    /// request), `retries` (attempts per request), `max_rps` (share the machine-wide
    /// request budget with running workers: `50`, `"5/min"`).
    ///
    /// Example: `try { fetch_minute_bars("XYZ", "2024-01-02", "2024-01-02", #{retries: 2}) } catch (e) { print(e.kind) }`
    #[rhai_fn(name = "fetch_minute_bars", return_raw)]
    pub fn fetch_minute_bars_with(
        ctx: NativeCallContext,
        ticker: &str,
        from: DateArg,
        to: DateArg,
        opts: Map,
    ) -> Fallible<ScriptBars> {
        let host = host(&ctx)?;
        let range = date_args("fetch_minute_bars", &from, &to)?;
        super::fetch(&host, ticker, range, opts)
    }
}
