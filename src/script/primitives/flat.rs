//! Flat files in-process: which days are published, and one day's bars of a few
//! tickers, for the REPL and for strategies that plan day-range batches.
//!
//! Credentials come from the environment (MASSIVE_S3_ACCESS_KEY_ID and
//! MASSIVE_S3_SECRET_ACCESS_KEY, or the POLYGON_S3_* pair), as for the worker, or from
//! the host's configuration (the demo's sandbox keys); never from a script.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::civil::Date;
use rhai::{Array, Dynamic, Map};

use crate::calendar::DateRange;
use crate::flatfiles::MINUTE_AGGS_PREFIX;
use crate::flatfiles::csv::decode_day;
use crate::flatfiles::layout::{day_key, day_of_key, year_prefix};
use crate::s3::{Bucket, FLATFILES_BUCKET, FLATFILES_ENDPOINT, S3Config, S3Error, S3ErrorKind};
use crate::script::host::Host;
use crate::script::primitives::net::block_on_cancellable;
use crate::script::types::bars::ScriptBars;
use crate::script::types::date::ScriptDate;
use crate::script::value::{Fallible, Options, error, strings};
use crate::store::DatasetIdentity;

/// The keys the `flat_*` primitives accept (the same names as `spawn_batch`'s, so one
/// map serves both).
pub(crate) const FLAT_OPTIONS: &[&str] =
    &["flat_endpoint", "flat_bucket", "flat_prefix", "timeout"];

/// The first year with minute-aggregate files: `flat_last_day` looks no further back.
const FIRST_YEAR: i16 = 2003;

/// Where the files are, from the options, the host (`--flat-endpoint`) and defaults.
struct Place {
    bucket: Bucket,
    prefix: String,
}

fn place(host: &Host, function: &'static str, opts: Map) -> Fallible<Place> {
    let o = Options::parse(function, opts, FLAT_OPTIONS)?;
    let credentials = host
        .flat_credentials()
        .map_err(|e| error(format!("{function}: {}", e.message)))?;
    let endpoint = o
        .string("flat_endpoint")?
        .or_else(|| host.config().flat_endpoint.clone())
        .unwrap_or_else(|| FLATFILES_ENDPOINT.to_string());
    let bucket = o
        .string("flat_bucket")?
        .unwrap_or_else(|| FLATFILES_BUCKET.to_string());
    let mut cfg = S3Config::new(&endpoint, &bucket, credentials);
    cfg.allow_insecure_http = host.config().allow_insecure_http;
    cfg.retries = 3;
    if let Some(t) = o.seconds("timeout")? {
        cfg.timeout = Duration::from_secs_f64(t.max(0.001));
    }
    let bucket = Bucket::new(cfg).map_err(|e| error(format!("{function}: {}", e.message)))?;
    let prefix = o
        .string("flat_prefix")?
        .unwrap_or_else(|| MINUTE_AGGS_PREFIX.to_string());
    Ok(Place { bucket, prefix })
}

/// One line for an S3 failure, saying what to do about a refusal.
fn s3_error(function: &str, doing: &str, e: &S3Error) -> Box<rhai::EvalAltResult> {
    let why = match e.kind {
        // The store's message repeats the request; the fix is all that matters here.
        S3ErrorKind::Forbidden => {
            format!("{doing} is not in your plan's flat files (403 AccessDenied)")
        }
        _ => format!("{doing}: {}", e.message),
    };
    error(format!("{function}: {why}"))
}

/// The published days of `years` (every file under each year's prefix).
async fn listed_days(
    place: &Place,
    years: impl Iterator<Item = i16>,
) -> Result<BTreeSet<Date>, S3Error> {
    let mut days = BTreeSet::new();
    for year in years {
        for info in place.bucket.list(&year_prefix(&place.prefix, year)).await? {
            if let Some(day) = day_of_key(&place.prefix, &info.key) {
                days.insert(day);
            }
        }
    }
    Ok(days)
}

/// The published days of `range`, oldest first.
pub(crate) fn days(host: &Host, range: DateRange, opts: Map) -> Fallible<Array> {
    let place = place(host, "flat_days", opts)?;
    let years = range.from.year()..=range.to.year();
    let listed = block_on_cancellable(host, "flat_days", listed_days(&place, years))?
        .map_err(|e| s3_error("flat_days", "listing the flat files", &e))?;
    Ok(listed
        .into_iter()
        .filter(|d| range.contains(*d))
        .map(|d| Dynamic::from(ScriptDate(d)))
        .collect())
}

/// The newest published day, `()` when the bucket has none.
pub(crate) fn last_day(host: &Host, opts: Map) -> Fallible<Dynamic> {
    let place = place(host, "flat_last_day", opts)?;
    let this_year = crate::calendar::today_ny().year();
    let work = async {
        // Newest year first: usually one listing answers.
        for year in (FIRST_YEAR..=this_year).rev() {
            if let Some(last) = listed_days(&place, std::iter::once(year)).await?.last() {
                return Ok(Some(*last));
            }
        }
        Ok(None)
    };
    let last = block_on_cancellable(host, "flat_last_day", work)?
        .map_err(|e| s3_error("flat_last_day", "listing the flat files", &e))?;
    Ok(last.map_or(Dynamic::UNIT, |d| Dynamic::from(ScriptDate(d))))
}

/// `day`'s bars of `tickers`: one `Bars` for a string, a map ticker → `Bars` for an
/// array (empty `Bars` for a ticker not in the file).
pub(crate) fn bars(host: &Host, day: Date, tickers: &Dynamic, opts: Map) -> Fallible<Dynamic> {
    let (names, single) = match tickers.read_lock::<Array>() {
        Some(list) => (strings("flat_bars", "tickers", &list)?, false),
        None => match tickers.clone().into_string() {
            Ok(t) => (vec![t], true),
            Err(_) => {
                return Err(error(format!(
                    "flat_bars: tickers must be a ticker or an array of tickers, got {}",
                    tickers.type_name()
                )));
            }
        },
    };
    for t in &names {
        crate::ticker::validate_ticker(t).map_err(|e| error(format!("flat_bars: {e}")))?;
    }
    let place = place(host, "flat_bars", opts)?;
    let key = day_key(&place.prefix, day);
    let object = block_on_cancellable(host, "flat_bars", place.bucket.get(&key))?.map_err(|e| {
        match e.kind {
            S3ErrorKind::NotFound => error(format!(
                "flat_bars: no flat file for {day}: a weekend or holiday, or not published yet \
                 (see flat_days and flat_last_day)"
            )),
            _ => s3_error("flat_bars", &format!("the file of {day}"), &e),
        }
    })?;
    let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let decoded = decode_day(&object.body, &|t| wanted.contains(t)).map_err(|e| {
        error(format!(
            "flat_bars: the file of {day} ({key}) is damaged: {e}"
        ))
    })?;
    let mut found: BTreeMap<String, crate::bars::Bars> = decoded.tickers.into_iter().collect();
    let identity = DatasetIdentity::minute(false);
    let mut one =
        |t: &str| ScriptBars::new(t, found.remove(t).unwrap_or_default(), identity.clone());
    if single {
        return Ok(Dynamic::from(one(&names[0])));
    }
    let mut out = Map::new();
    for t in &names {
        out.insert(t.as_str().into(), Dynamic::from(one(t)));
    }
    Ok(Dynamic::from_map(out))
}

/// Flat files as a plugin module.
#[rhai::plugin::export_module]
pub mod flat_fns {
    use rhai::{Array, Dynamic, Map, NativeCallContext};

    use crate::script::engine::host;
    use crate::script::primitives::dates::date_arg;
    use crate::script::value::{DateArg, Fallible, date_args};

    /// The days from `from` to `to` (Dates or `YYYY-MM-DD`, inclusive) that have a
    /// published flat file, oldest first, as Dates: trading days up to the last
    /// published one (weekends, holidays and days not published yet are absent; a
    /// day outside your plan is listed, its download is refused). Lists the bucket
    /// with the credentials in MASSIVE_S3_ACCESS_KEY_ID / MASSIVE_S3_SECRET_ACCESS_KEY
    /// at `barsmith run --flat-endpoint` (else Massive's endpoint).
    ///
    /// Errors when the credentials are missing (naming the variables) or refused, or
    /// when a date is invalid or `from` is after `to`.
    ///
    /// Example: `let days = flat_days("2025-01-01", "2025-03-31"); log(`${days.len()} files`);`
    #[rhai_fn(return_raw)]
    pub fn flat_days(ctx: NativeCallContext, from: DateArg, to: DateArg) -> Fallible<Array> {
        flat_days_with(ctx, from, to, Map::new())
    }

    /// Like `flat_days(from, to)` with options (unknown keys are an error):
    /// `flat_endpoint`, `flat_bucket`, `flat_prefix` (the dataset, default
    /// `us_stocks_sip/minute_aggs_v1`), `timeout` (seconds per request).
    ///
    /// Example: `let days = flat_days(from, to, #{flat_endpoint: "http://127.0.0.1:8089"});`
    #[rhai_fn(name = "flat_days", return_raw)]
    pub fn flat_days_with(
        ctx: NativeCallContext,
        from: DateArg,
        to: DateArg,
        opts: Map,
    ) -> Fallible<Array> {
        let range = date_args("flat_days", &from, &to)?;
        super::days(&*host(&ctx)?, range, opts)
    }

    /// The newest day with a published flat file, as a Date (`()` when there is
    /// none): the days after it are for REST to fill (a day's file appears the
    /// morning after). Errors as `flat_days`.
    ///
    /// Example: `let last = flat_last_day(); log(`files through ${last}`);`
    #[rhai_fn(return_raw)]
    pub fn flat_last_day(ctx: NativeCallContext) -> Fallible<Dynamic> {
        super::last_day(&*host(&ctx)?, Map::new())
    }

    /// Like `flat_last_day()` with the options of `flat_days`.
    ///
    /// Example: `let last = flat_last_day(#{flat_bucket: "flatfiles"});`
    #[rhai_fn(name = "flat_last_day", return_raw)]
    pub fn flat_last_day_with(ctx: NativeCallContext, opts: Map) -> Fallible<Dynamic> {
        super::last_day(&*host(&ctx)?, opts)
    }

    /// One day's minute bars from its flat file, in this process (nothing is written):
    /// for a ticker (a string) its `Bars`, for an array of tickers a map ticker →
    /// `Bars` (empty for a ticker not in the file). Flat-file bars are as traded
    /// (unadjusted) and have no vwap. Downloads the whole day's file: meant for a few
    /// looks in the REPL, not for backfills (use `spawn_batch` with
    /// `source: "flat-files"`).
    ///
    /// Errors in one line: no credentials (naming the variables), a day without a
    /// file (weekend, holiday, not yet published), a day refused (403: not in your
    /// plan), a damaged file or an invalid ticker.
    ///
    /// Example: `let b = flat_bars("2025-01-02", ["AAPL", "MSFT"]); print(b.AAPL.table(3));`
    #[rhai_fn(return_raw)]
    pub fn flat_bars(ctx: NativeCallContext, day: DateArg, tickers: Dynamic) -> Fallible<Dynamic> {
        flat_bars_with(ctx, day, tickers, Map::new())
    }

    /// Like `flat_bars(day, tickers)` with the options of `flat_days`.
    ///
    /// Example: `let b = flat_bars("2025-01-02", "AAPL", #{timeout: 300});`
    #[rhai_fn(name = "flat_bars", return_raw)]
    pub fn flat_bars_with(
        ctx: NativeCallContext,
        day: DateArg,
        tickers: Dynamic,
        opts: Map,
    ) -> Fallible<Dynamic> {
        let day = date_arg("flat_bars", "day", &day)?.0;
        super::bars(&*host(&ctx)?, day, &tickers, opts)
    }
}
