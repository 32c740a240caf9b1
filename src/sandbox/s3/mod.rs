//! Polygon/Massive flat files over an S3-compatible endpoint, on the sandbox's port.
//!
//! Bucket [`FLAT_BUCKET`], path-style requests: `GET /flatfiles?list-type=2&prefix=..`
//! (ListObjectsV2), `GET|HEAD /flatfiles/<key>`. Every request must carry a valid AWS
//! SigV4 `Authorization` header (region [`S3_REGION`], service `s3`) made with the
//! configured access and secret keys (`sigv4`).
//!
//! Keys are `us_stocks_sip/minute_aggs_v1/YYYY/MM/YYYY-MM-DD.csv.gz`, one per NYSE
//! trading day from [`FLAT_FILES_START`] through the last published day (the day
//! before `cfg.today`, or `cfg.flat_published_through`). A file is the gzip of a CSV
//! ([`FLAT_CSV_HEADER`]) of the REST bars of every ticker of the flat universe on that
//! day, minus vwap (`dayfile`).
//!
//! Republishing a day (control endpoint or [`crate::sandbox::Sandbox::republish_flat_day`])
//! bumps its generation `g`: every row's volume becomes the REST volume + `g`, the ETag
//! changes and Last-Modified moves `g` hours later.

mod dayfile;
mod faults;
mod listing;
mod routes;
mod sigv4;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::civil::Date;

pub use dayfile::{FLAT_CACHE_BYTES, FLAT_CSV_HEADER};
pub use faults::{
    FlatFault, FlatFaultPlan, FlatFaultRule, FlatFaultSpecError, SLOW_TOTAL, VALID_FLAT_FAULTS,
};
pub use listing::DEFAULT_MAX_KEYS;
pub(crate) use routes::{answer, control, is_s3_request};

use crate::calendar::{DateRange, nyse};
use crate::sandbox::SandboxConfig;
use crate::sandbox::server::lock;
use crate::sandbox::synth::market_ticker;
use dayfile::{DayCache, DayFile};
use faults::FlatFaultState;

/// The bucket of the flat files.
pub const FLAT_BUCKET: &str = "flatfiles";
/// The folder of the minute aggregates inside the bucket.
pub const FLAT_PREFIX: &str = "us_stocks_sip/minute_aggs_v1/";
/// The region clients sign for.
pub const S3_REGION: &str = "us-east-1";
/// The S3 access key id the sandbox accepts unless configured otherwise.
pub const SANDBOX_S3_ACCESS_KEY: &str = "sandbox";
/// The S3 secret key the sandbox accepts unless configured otherwise (a fake one).
pub const SANDBOX_S3_SECRET_KEY: &str = "sandbox-secret";
/// The first day with a minute-aggregates file (as on the real service).
pub const FLAT_FILES_START: Date = Date::constant(2003, 9, 10);

/// The key of `day`'s file: `us_stocks_sip/minute_aggs_v1/YYYY/MM/YYYY-MM-DD.csv.gz`.
pub fn flat_key(day: Date) -> String {
    format!(
        "{FLAT_PREFIX}{:04}/{:02}/{day}.csv.gz",
        day.year(),
        day.month()
    )
}

/// The day of a well-formed key (published or not), else `None`.
pub fn parse_flat_key(key: &str) -> Option<Date> {
    let name = key.strip_prefix(FLAT_PREFIX)?.rsplit('/').next()?;
    let day = crate::calendar::parse_date(name.strip_suffix(".csv.gz")?).ok()?;
    (flat_key(day) == key).then_some(day)
}

/// The last day whose file is published under `cfg`.
pub fn last_published(cfg: &SandboxConfig) -> Date {
    cfg.flat_published_through
        .unwrap_or_else(|| cfg.today.yesterday().unwrap_or(cfg.today))
}

/// True when `day` has a file: a trading day from [`FLAT_FILES_START`] to
/// [`last_published`].
pub fn is_published(day: Date, cfg: &SandboxConfig) -> bool {
    FLAT_FILES_START <= day && day <= last_published(cfg) && nyse::is_trading_day(day)
}

/// The published days, ascending.
fn published_days(cfg: &SandboxConfig) -> impl Iterator<Item = Date> + '_ {
    let last = last_published(cfg);
    FLAT_FILES_START
        .series(jiff::ToSpan::days(1))
        .take_while(move |d| *d <= last)
        .filter(|d| nyse::is_trading_day(*d))
}

/// The tickers of every day file, sorted and without duplicates: `cfg.flat_tickers`
/// plus `cfg.flat_market` synthetic ones. Symbols the project would refuse (and that
/// could break the CSV) are left out.
pub fn flat_universe(cfg: &SandboxConfig) -> Vec<String> {
    let mut u: Vec<String> = cfg
        .flat_tickers
        .iter()
        .cloned()
        .chain((0..cfg.flat_market).map(market_ticker))
        .filter(|t| crate::ticker::validate_ticker(t).is_ok())
        .collect();
    u.sort_unstable();
    u.dedup();
    u
}

/// The flat-file part of a running sandbox.
pub(crate) struct FlatState {
    universe: Vec<String>,
    content_seed: u64,
    faults: Mutex<FlatFaultState>,
    generations: Mutex<HashMap<Date, u32>>,
    cache: DayCache,
}

impl FlatState {
    pub(crate) fn new(cfg: &SandboxConfig) -> FlatState {
        let universe = flat_universe(cfg);
        FlatState {
            content_seed: dayfile::content_seed(&universe, cfg),
            universe,
            faults: Mutex::new(FlatFaultState::new(cfg.flat_faults.clone())),
            generations: Mutex::new(HashMap::new()),
            cache: DayCache::default(),
        }
    }

    /// Keeps up to `bytes` of generated files (see [`DayCache::set_limit`]).
    pub(crate) fn set_cache_limit(&self, bytes: usize) {
        self.cache.set_limit(bytes);
    }

    /// The current generation of `day` (0 until republished).
    pub(crate) fn generation(&self, day: Date) -> u32 {
        lock(&self.generations).get(&day).copied().unwrap_or(0)
    }

    /// Bumps `day`'s generation; returns the new one.
    pub(crate) fn republish(&self, day: Date) -> u32 {
        let mut g = lock(&self.generations);
        let n = g.entry(day).or_insert(0);
        *n += 1;
        *n
    }

    pub(crate) fn set_faults(&self, plan: FlatFaultPlan) {
        *lock(&self.faults) = FlatFaultState::new(plan);
    }

    pub(crate) fn fault_specs(&self) -> Vec<String> {
        lock(&self.faults).plan().specs()
    }

    fn pick_fault(&self, day: Date) -> Option<FlatFault> {
        lock(&self.faults).pick(day)
    }

    /// The ETag `day`'s file has now.
    pub(crate) fn etag(&self, day: Date) -> String {
        dayfile::etag(self.content_seed, day, self.generation(day))
    }

    /// `day`'s file at its current generation (blocking: may generate it).
    pub(crate) fn file(&self, cfg: &SandboxConfig, day: Date) -> Arc<DayFile> {
        let g = self.generation(day);
        self.cache.get_or_generate(day, g, || DayFile {
            body: dayfile::generate(day, g, &self.universe, cfg).into(),
            etag: dayfile::etag(self.content_seed, day, g),
            last_modified: dayfile::last_modified(day, g),
        })
    }

    /// The listing entry of `day`: exact size if the file was ever generated at this
    /// generation, else an estimate (generating thousands of files to list them would
    /// take minutes); GET and HEAD always give the exact size.
    fn object(&self, day: Date) -> listing::Object {
        let g = self.generation(day);
        let size = self.cache.known_size(day, g).unwrap_or_else(|| {
            // About 520 rows a ticker, about 20 gzip bytes a row.
            64 + self.universe.len() as u64 * 520 * 20
        });
        listing::Object {
            key: flat_key(day),
            last_modified: dayfile::last_modified(day, g),
            etag: dayfile::etag(self.content_seed, day, g),
            size,
        }
    }

    /// Generates (and caches) the files of the published days in `range`; returns how
    /// many days that was. Blocking.
    pub(crate) fn warm(&self, cfg: &SandboxConfig, range: DateRange) -> usize {
        let days: Vec<Date> = range
            .from
            .series(jiff::ToSpan::days(1))
            .take_while(|d| *d <= range.to)
            .filter(|d| is_published(*d, cfg))
            .collect();
        for d in &days {
            self.file(cfg, *d);
        }
        days.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn keys_round_trip_and_only_trading_days_before_today_are_published() {
        let k = flat_key(date(2025, 1, 3));
        assert_eq!(k, "us_stocks_sip/minute_aggs_v1/2025/01/2025-01-03.csv.gz");
        assert_eq!(parse_flat_key(&k), Some(date(2025, 1, 3)));
        assert_eq!(
            parse_flat_key("us_stocks_sip/minute_aggs_v1/2025/02/2025-01-03.csv.gz"),
            None
        );
        assert_eq!(parse_flat_key("x"), None);
        let cfg = SandboxConfig {
            today: date(2025, 1, 6),
            ..SandboxConfig::default()
        };
        assert!(is_published(date(2025, 1, 3), &cfg));
        assert!(!is_published(date(2025, 1, 4), &cfg)); // Saturday
        assert!(!is_published(date(2025, 1, 6), &cfg)); // today: not over yet
        assert!(!is_published(date(2025, 1, 1), &cfg)); // New Year
        assert!(!is_published(date(2025, 1, 9), &cfg)); // closure, and the future
        let later = SandboxConfig {
            flat_published_through: Some(date(2025, 1, 10)),
            ..cfg.clone()
        };
        assert!(is_published(date(2025, 1, 10), &later));
        assert!(!is_published(date(2025, 1, 9), &later));
        let n = published_days(&cfg).filter(|d| d.year() == 2024).count();
        assert_eq!(n, 252);
    }

    #[test]
    fn the_universe_is_sorted_unique_and_valid() {
        let cfg = SandboxConfig {
            flat_tickers: vec!["MSFT".into(), "AAPL".into(), "MSFT".into(), "BAD,".into()],
            flat_market: 3,
            ..SandboxConfig::default()
        };
        let u = flat_universe(&cfg);
        assert_eq!(u.len(), 5);
        assert!(u.windows(2).all(|w| w[0] < w[1]));
        assert!(!u.contains(&"BAD,".to_string()));
    }
}
