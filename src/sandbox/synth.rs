//! Synthetic minute bars: every bar is a pure function of (ticker, minute).
//!
//! Nothing here is a sequential random walk, so any page of any range can be generated
//! without generating what comes before it, and [`bars_for`] returns exactly what a full
//! paginated fetch returns. Seeds come from FNV-1a and splitmix64, never from std's
//! `RandomState`, so the data is the same on every machine and every run.
//!
//! The model: NYSE trading days only (no bars on weekends, exchange holidays or
//! closures: [`crate::calendar::nyse`]), minutes 04:00–20:00 New York time, 04:00–17:00
//! on early-close days (the regular session ending at 13:00). A
//! ticker's daily price level is a sum of slow sines of the day number plus a little
//! daily noise; within a day the price moves along smooth value noise; each bar adds
//! hashed noise for open, close, high, low and VWAP. Regular-hours minutes usually have
//! a bar (about 97%), extended-hours minutes rarely (about 25%), like a real tape.

use std::sync::OnceLock;

use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::bars::{Bar, Bars};
use crate::calendar::{DateRange, exchange_tz, ny_date_of_ms, ny_day_start_ms, nyse};

use super::SandboxConfig;

/// No synthetic bar is older than this date (keeps absurd ranges cheap to scan).
pub const DATA_START: Date = Date::constant(1990, 1, 1);

/// Minutes with bars each day: 04:00 to 19:59 New York time.
pub const MINUTES_PER_DAY: u32 = 960;
/// First regular-session minute (09:30), counted from 04:00.
const REGULAR_OPEN: u32 = 330;
/// First minute after the regular session (16:00), counted from 04:00.
const REGULAR_CLOSE: u32 = 720;
/// On an early-close day: the regular session ends at 13:00 and trading at 17:00.
const EARLY_CLOSE: u32 = 540;
/// Minutes with bars on an early-close day: 04:00 to 16:59.
const EARLY_MINUTES: u32 = 780;
const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// The demo universe, and the default tickers of every flat file.
pub const DEMO_TICKERS: [&str; 24] = [
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "BRK.A", "TSLA", "JPM", "V", "UNH", "XOM",
    "JNJ", "WMT", "PG", "MA", "HD", "CVX", "KO", "PEP", "AMD", "INTC", "IBM", "CSCO",
];

/// The `i`-th synthetic market ticker, for flat files of thousands of tickers:
/// upper-case letters only, counting in base 26 from `AAAA` (`AAAB`, ... `ZZZZ`, then
/// 5 letters from `BAAAA`), so names are distinct, sorted like `i` within a length and
/// valid ticker symbols.
pub fn market_ticker(i: u32) -> String {
    let mut n = u64::from(i);
    let mut letters = Vec::with_capacity(7);
    for _ in 0..4 {
        letters.push(b'A' + (n % 26) as u8);
        n /= 26;
    }
    while n > 0 {
        letters.push(b'A' + (n % 26) as u8);
        n /= 26;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

/// One generated bar, in the form the page writer needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Row {
    pub t: i64,
    pub o: f64,
    pub h: f64,
    pub l: f64,
    pub c: f64,
    pub v: f64,
    pub vw: f64,
    pub n: i64,
}

impl Row {
    fn to_bar(self) -> Bar {
        Bar {
            timestamp: self.t,
            open: self.o,
            high: self.h,
            low: self.l,
            close: self.c,
            volume: self.v,
            vwap: Some(self.vw),
            transactions: Some(self.n),
            otc: false,
        }
    }
}

// ---------------------------------------------------------------------------------
// Hashing

/// FNV-1a, 64 bit: a stable hash of a symbol.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The splitmix64 finaliser: a cheap, well-mixed function of one word.
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Mixes two words.
pub(crate) fn mix2(a: u64, b: u64) -> u64 {
    mix(a ^ mix(b))
}

/// A uniform number in [0, 1) from a hash.
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform number in [-1, 1) from a hash.
fn sym(h: u64) -> f64 {
    unit(h) * 2.0 - 1.0
}

/// The seed of one ticker under one data seed.
pub(crate) fn ticker_seed(ticker: &str, data_seed: u64) -> u64 {
    mix2(fnv1a(ticker.as_bytes()), data_seed)
}

// ---------------------------------------------------------------------------------
// Days

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub(crate) fn epoch_day(d: Date) -> i64 {
    let (y, m, day) = (
        i64::from(d.year()),
        i64::from(d.month()),
        i64::from(d.day()),
    );
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (inverse of [`epoch_day`]).
pub(crate) fn date_of_epoch_day(z: i64) -> Date {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let clamp = |v: i64, lo: i64, hi: i64| v.clamp(lo, hi);
    Date::new(clamp(y, -9999, 9999) as i16, m as i8, d as i8).unwrap_or(Date::MAX)
}

/// True for Saturday and Sunday.
fn is_weekend(day: i64) -> bool {
    // 1970-01-01 was a Thursday: Monday-based index 3.
    (day + 3).rem_euclid(7) >= 5
}

fn tz() -> &'static TimeZone {
    static TZ: OnceLock<TimeZone> = OnceLock::new();
    TZ.get_or_init(exchange_tz)
}

/// Unix ms of 04:00 New York time on a day, DST-correct (transitions happen at 02:00,
/// so 04:00–20:00 is always one continuous run of 960 minutes).
fn session_start_ms(day: i64) -> i64 {
    let date = date_of_epoch_day(day);
    match date.at(4, 0, 0, 0).to_zoned_datetime(tz().clone()) {
        Ok(z) => z.timestamp().as_millisecond(),
        // Outside jiff's range: fall back to EST, never reached for real dates.
        Err(_) => day * DAY_MS + 9 * 3_600_000,
    }
}

// ---------------------------------------------------------------------------------
// Listing

/// A listing window: `(listed, delisted)`, inclusive trading dates, `None` = open end.
pub type Listing = (Option<Date>, Option<Date>);

/// The listing window of a ticker: `(listed, delisted)`, both inclusive trading dates;
/// `None` means "before any range" / "still listed".
///
/// An entry in `cfg.listings` wins; otherwise it is derived from the ticker's hash:
/// about 15% of symbols list between 2000 and 2024, about 10% delist by 2024.
pub fn listing(ticker: &str, cfg: &SandboxConfig) -> Listing {
    if let Some(&l) = cfg.listings.get(ticker) {
        return l;
    }
    let seed = ticker_seed(ticker, cfg.seed);
    let first = epoch_day(Date::constant(2000, 1, 1));
    let last = epoch_day(Date::constant(2024, 12, 31));
    let span = (last - first) as f64;
    let listed =
        (unit(mix2(seed, 0x11)) < 0.15).then(|| first + (unit(mix2(seed, 0x12)) * span) as i64);
    let delisted = (unit(mix2(seed, 0x13)) < 0.10).then(|| {
        let from = listed.unwrap_or(first) + 30;
        from + (unit(mix2(seed, 0x14)) * (last - from).max(1) as f64) as i64
    });
    (
        listed.map(date_of_epoch_day),
        delisted.map(date_of_epoch_day),
    )
}

/// Parses a `--listing` value: `TICKER=FROM..TO`, either side optional
/// (`T=2005-03-01..`, `T=..2008-06-30`, `T=..` for "always listed").
pub fn parse_listing(spec: &str) -> Result<(String, Listing), String> {
    let usage = "use TICKER=FROM..TO with YYYY-MM-DD dates, either side optional, \
                 e.g. ABC=2005-03-01..2008-06-30 or ABC=2005-03-01..";
    let (ticker, range) = spec
        .split_once('=')
        .ok_or_else(|| format!("bad listing '{spec}': no '=' ({usage})"))?;
    let ticker = ticker.trim();
    if ticker.is_empty() {
        return Err(format!(
            "bad listing '{spec}': the ticker is empty ({usage})"
        ));
    }
    let (from, to) = range
        .split_once("..")
        .ok_or_else(|| format!("bad listing '{spec}': no '..' between the dates ({usage})"))?;
    let side = |s: &str| -> Result<Option<Date>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        crate::calendar::parse_date(s)
            .map(Some)
            .map_err(|e| format!("bad listing '{spec}': {e}"))
    };
    let (from, to) = (side(from)?, side(to)?);
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(format!(
            "bad listing '{spec}': listed {f} is after delisted {t}"
        ));
    }
    Ok((ticker.to_string(), (from, to)))
}

// ---------------------------------------------------------------------------------
// The price model

/// Everything needed to generate one ticker's bars, derived once per request.
#[derive(Debug, Clone)]
pub(crate) struct TickerModel {
    seed: u64,
    ln_base: f64,
    waves: [(f64, f64, f64); 3], // amplitude, angular frequency per day, phase
    vol_base: f64,
    trade_size: f64,
    p_regular: f64,
    p_extended: f64,
    /// First day with bars (epoch day), inclusive.
    first_day: i64,
    /// Last day with bars (epoch day), inclusive.
    last_day: i64,
}

impl TickerModel {
    /// The model of `ticker` under `cfg` (seed, listing, today).
    pub(crate) fn new(ticker: &str, cfg: &SandboxConfig) -> TickerModel {
        let seed = ticker_seed(ticker, cfg.seed);
        let u = |k: u64| unit(mix2(seed, k));
        let tau = std::f64::consts::TAU;
        let (listed, delisted) = listing(ticker, cfg);
        let first_day = epoch_day(listed.map_or(DATA_START, |d| d.max(DATA_START)));
        let last_day = epoch_day(delisted.map_or(cfg.today, |d| d.min(cfg.today)));
        TickerModel {
            seed,
            ln_base: (2.0f64).ln() + u(1) * ((400.0f64).ln() - (2.0f64).ln()),
            waves: [
                (
                    0.55 + 0.25 * u(2),
                    tau / (1500.0 + 2500.0 * u(3)),
                    tau * u(4),
                ),
                (0.15 + 0.10 * u(5), tau / (150.0 + 250.0 * u(6)), tau * u(7)),
                (0.04 + 0.04 * u(8), tau / (15.0 + 30.0 * u(9)), tau * u(10)),
            ],
            vol_base: 10f64.powf(2.0 + 3.5 * u(11)),
            trade_size: 40.0 + 210.0 * u(12),
            p_regular: 0.93 + 0.065 * u(13),
            p_extended: 0.10 + 0.30 * u(14),
            first_day,
            last_day,
        }
    }

    /// Log price level of a day.
    fn day_level(&self, day: i64) -> f64 {
        let d = day as f64;
        let mut lp = self.ln_base;
        for &(a, w, ph) in &self.waves {
            lp += a * (w * d + ph).sin();
        }
        lp + 0.012 * sym(mix2(self.seed ^ 0xd1, day as u64))
    }

    /// Generates the bars of one day in ascending order, calling `emit` for each bar
    /// whose timestamp lies in `[lo, hi]`; stops early when `emit` returns false.
    /// Returns false when stopped early.
    fn day(&self, day: i64, lo: i64, hi: i64, emit: &mut impl FnMut(Row) -> bool) -> bool {
        if is_weekend(day) || day < self.first_day || day > self.last_day {
            return true;
        }
        let date = date_of_epoch_day(day);
        if !nyse::is_trading_day(date) {
            return true;
        }
        let (minutes, close) = if nyse::is_early_close(date) {
            (EARLY_MINUTES, EARLY_CLOSE)
        } else {
            (MINUTES_PER_DAY, REGULAR_CLOSE)
        };
        let start = session_start_ms(day);
        let end = start + i64::from(minutes) * MINUTE_MS;
        if end <= lo || start > hi {
            return true;
        }
        let first_m = if lo > start {
            ((lo - start + MINUTE_MS - 1) / MINUTE_MS) as u32
        } else {
            0
        };
        let last_m = if hi < end {
            ((hi - start) / MINUTE_MS) as u32
        } else {
            minutes - 1
        };
        let day_ctx = DayCtx::new(self, day, close);
        for m in first_m..=last_m {
            if let Some(row) = day_ctx.bar(self, m, start)
                && !emit(row)
            {
                return false;
            }
        }
        true
    }

    /// Visits days with bars in `[lo, hi]` from the first to the last.
    fn day_span(&self, lo: i64, hi: i64) -> (i64, i64) {
        let first = epoch_day(ny_date_of_ms(lo)).max(self.first_day);
        let last = epoch_day(ny_date_of_ms(hi)).min(self.last_day);
        (first, last)
    }

    /// Pushes bars with `lo <= t <= hi`, ascending, until `out` gained `max` rows.
    pub(crate) fn collect(&self, lo: i64, hi: i64, max: usize, out: &mut Vec<Row>) {
        if lo > hi || max == 0 {
            return;
        }
        let target = out.len().saturating_add(max);
        let (first, last) = self.day_span(lo, hi);
        let mut emit = |r: Row| {
            out.push(r);
            out.len() < target
        };
        for day in first..=last {
            if !self.day(day, lo, hi, &mut emit) {
                return;
            }
        }
    }

    /// Pushes (ascending) the last `k` bars with `floor <= t < pos`.
    pub(crate) fn collect_before(&self, floor: i64, pos: i64, k: usize, out: &mut Vec<Row>) {
        if k == 0 || pos <= floor {
            return;
        }
        let (first, last) = self.day_span(floor, pos - 1);
        let mut found: Vec<Row> = Vec::with_capacity(k);
        let mut day = last;
        while day >= first && found.len() < k {
            let mut rows = Vec::new();
            self.day(day, floor, pos - 1, &mut |r| {
                rows.push(r);
                true
            });
            // Newest first into `found`.
            for r in rows.into_iter().rev() {
                if found.len() == k {
                    break;
                }
                found.push(r);
            }
            day -= 1;
        }
        out.extend(found.into_iter().rev());
    }
}

/// Per-day values shared by every minute of that day.
struct DayCtx {
    seed: u64,
    level: f64,
    slope: f64,
    /// First minute after the regular session, counted from 04:00.
    close: u32,
}

impl DayCtx {
    fn new(model: &TickerModel, day: i64, close: u32) -> DayCtx {
        let level = model.day_level(day);
        let next = model.day_level(day + 1);
        DayCtx {
            seed: mix2(model.seed, day as u64),
            level,
            slope: (next - level) / f64::from(MINUTES_PER_DAY),
            close,
        }
    }

    /// Smooth value noise over minutes: knots every `span` minutes, smoothstep between.
    fn noise(&self, salt: u64, m: u32, span: u32) -> f64 {
        let k = u64::from(m / span);
        let f = f64::from(m % span) / f64::from(span);
        let a = sym(mix2(self.seed ^ salt, k));
        let b = sym(mix2(self.seed ^ salt, k + 1));
        let t = f * f * (3.0 - 2.0 * f);
        a + (b - a) * t
    }

    /// Mid price at minute boundary `m` (0..=960).
    fn mid(&self, m: u32) -> f64 {
        let lp = self.level
            + self.slope * f64::from(m)
            + 0.006 * self.noise(0xa1, m, 64)
            + 0.002 * self.noise(0xa2, m, 8);
        lp.exp()
    }

    /// The bar of minute `m`, if the minute traded.
    fn bar(&self, model: &TickerModel, m: u32, session_start: i64) -> Option<Row> {
        let h = mix2(self.seed ^ 0xb0, u64::from(m));
        let regular = (REGULAR_OPEN..self.close).contains(&m);
        let p = if regular {
            model.p_regular
        } else {
            model.p_extended
        };
        if unit(h) >= p {
            return None;
        }
        let r = |k: u64| unit(mix2(h, k));
        let mid_open = self.mid(m);
        let mid_close = self.mid(m + 1);
        let o = mid_open * (1.0 + 0.0004 * (2.0 * r(1) - 1.0));
        let c = mid_close * (1.0 + 0.0004 * (2.0 * r(2) - 1.0));
        let (u3, u4) = (r(3), r(4));
        let hi = o.max(c) * (1.0 + 0.0015 * u3 * u3);
        let lo = o.min(c) * (1.0 - 0.0015 * u4 * u4);
        // Cents above $1, hundredths of a cent below, like the real tape. Rounding is
        // monotonic, so lo <= open, close <= hi survives it.
        let scale = if mid_open >= 1.0 { 100.0 } else { 10_000.0 };
        let round = |x: f64| (round_pos(x * scale) / scale).max(0.0001);
        let (o, c, hi, lo) = (round(o), round(c), round(hi), round(lo));
        let vw_raw = lo + (hi - lo) * (0.25 + 0.5 * r(5));
        let vw = (round_pos(vw_raw * 10_000.0) / 10_000.0).clamp(lo, hi);

        let shape = if regular {
            let from_open = f64::from(m - REGULAR_OPEN);
            let to_close = f64::from(self.close - 1 - m);
            1.0 + 2.0 * (-from_open / 20.0).exp() + 1.5 * (-to_close / 25.0).exp()
        } else {
            0.05
        };
        let burst = if r(6) < 0.01 { 8.0 } else { 1.0 };
        let heavy = -(1.0 - r(7)).ln() + 0.05;
        let v = round_volume(round_pos(model.vol_base * shape * heavy * burst).max(1.0));
        let n = (round_pos(v / model.trade_size) as i64).max(1);
        Some(Row {
            t: session_start + i64::from(m) * MINUTE_MS,
            o,
            h: hi,
            l: lo,
            c,
            v,
            vw,
            n,
        })
    }
}

/// Rounds a non-negative number to the nearest integer. `f64::round` is a libm call on
/// baseline x86-64 and was the hottest spot of page generation; a truncating cast is
/// one instruction. (Synthetic values are far below 2^62.)
pub(crate) fn round_pos(x: f64) -> f64 {
    (x + 0.5) as i64 as f64
}

/// Volumes of a million or more keep 7 significant digits, so the exponent form the
/// page writer uses for them (`1.029145e+06`) parses back to exactly this value.
fn round_volume(v: f64) -> f64 {
    if v < 1e6 {
        return v;
    }
    let vi = v as u64;
    let mut p = 1u64;
    while vi / p >= 10_000_000 {
        p *= 10;
    }
    ((vi + p / 2) / p * p) as f64
}

// ---------------------------------------------------------------------------------
// Public entry points

/// The millisecond window `[first, last]` that a New York date range covers.
pub(crate) fn range_ms(range: DateRange) -> (i64, i64) {
    let lo = ny_day_start_ms(range.from);
    let hi = match range.to.tomorrow() {
        Ok(next) => ny_day_start_ms(next).saturating_sub(1),
        Err(_) => i64::MAX,
    };
    (lo, hi)
}

/// Exactly the bars that a full paginated fetch of `ticker` over `range` returns from
/// a sandbox running with `cfg` (and no paging faults): ascending, gaps included,
/// nothing outside the listing window or after `cfg.today`.
pub fn bars_for(ticker: &str, range: DateRange, cfg: &SandboxConfig) -> Bars {
    let (lo, hi) = range_ms(range);
    bars_between(ticker, lo, hi, cfg)
}

/// The bars with `from_ms <= t <= to_ms` (Unix milliseconds), as [`bars_for`].
pub fn bars_between(ticker: &str, from_ms: i64, to_ms: i64, cfg: &SandboxConfig) -> Bars {
    let model = TickerModel::new(ticker, cfg);
    let mut rows = Vec::new();
    model.collect(from_ms, to_ms, usize::MAX, &mut rows);
    let mut bars = Bars::with_capacity(rows.len());
    for r in rows {
        bars.push(r.to_bar());
    }
    bars
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn cfg() -> SandboxConfig {
        SandboxConfig {
            today: date(2024, 6, 28),
            ..SandboxConfig::default()
        }
    }

    fn all_listed(tickers: &[&str]) -> SandboxConfig {
        let mut c = cfg();
        for t in tickers {
            c.listings.insert(t.to_string(), (None, None));
        }
        c
    }

    #[test]
    fn market_tickers_are_distinct_valid_letters() {
        assert_eq!(market_ticker(0), "AAAA");
        assert_eq!(market_ticker(1), "AAAB");
        assert_eq!(market_ticker(26), "AABA");
        assert_eq!(market_ticker(26u32.pow(4) - 1), "ZZZZ");
        assert_eq!(market_ticker(26u32.pow(4)), "BAAAA");
        let names: std::collections::HashSet<String> = (0..20_000).map(market_ticker).collect();
        assert_eq!(names.len(), 20_000);
        for t in names.iter().chain([market_ticker(u32::MAX)].iter()) {
            assert!(crate::ticker::validate_ticker(t).is_ok(), "{t}");
            assert!(t.bytes().all(|b| b.is_ascii_uppercase()));
        }
    }

    #[test]
    fn epoch_day_round_trips_and_matches_known_days() {
        assert_eq!(epoch_day(date(1970, 1, 1)), 0);
        assert_eq!(epoch_day(date(2000, 3, 1)), 11_017);
        for d in [-800_000, -1, 0, 59, 365, 11_016, 19_782, 2_000_000] {
            assert_eq!(epoch_day(date_of_epoch_day(d)), d);
        }
        assert!(is_weekend(epoch_day(date(2024, 6, 29))));
        assert!(!is_weekend(epoch_day(date(2024, 6, 28))));
    }

    #[test]
    fn session_starts_at_four_new_york_time_across_dst() {
        // 2024-03-08 (EST): 04:00 = 09:00 UTC; 2024-03-11 (EDT): 04:00 = 08:00 UTC.
        let est = session_start_ms(epoch_day(date(2024, 3, 8)));
        let edt = session_start_ms(epoch_day(date(2024, 3, 11)));
        assert_eq!(est % DAY_MS, 9 * 3_600_000);
        assert_eq!(edt % DAY_MS, 8 * 3_600_000);
    }

    #[test]
    fn bars_are_weekday_extended_hours_only_and_consistent() {
        let c = all_listed(&["AAPL"]);
        let range = DateRange::parse("2024-03-04", "2024-03-17").unwrap();
        let b = bars_for("AAPL", range, &c);
        assert!(b.len() > 3000, "{} bars", b.len());
        for bar in b.iter() {
            let z = jiff::Timestamp::from_millisecond(bar.timestamp)
                .unwrap()
                .to_zoned_datetime(exchange_tz());
            let mins = i32::from(z.hour()) * 60 + i32::from(z.minute());
            assert!((240..1200).contains(&mins), "bar at {z}");
            assert!(z.weekday().to_monday_zero_offset() < 5);
            assert_eq!(bar.timestamp % MINUTE_MS, 0);
            assert!(bar.low <= bar.open.min(bar.close) && bar.open.max(bar.close) <= bar.high);
            let vw = bar.vwap.unwrap();
            assert!(bar.low <= vw && vw <= bar.high);
            assert!(bar.volume >= 1.0 && bar.transactions.unwrap() >= 1 && !bar.otc);
        }
        assert!(b.timestamp.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn gaps_are_rare_in_regular_hours_and_common_outside() {
        let c = all_listed(&["GAPS"]);
        let range = DateRange::parse("2023-01-02", "2023-03-31").unwrap();
        let b = bars_for("GAPS", range, &c);
        let (mut reg, mut ext) = (0usize, 0usize);
        for bar in b.iter() {
            let z = jiff::Timestamp::from_millisecond(bar.timestamp)
                .unwrap()
                .to_zoned_datetime(exchange_tz());
            let mins = i32::from(z.hour()) * 60 + i32::from(z.minute());
            if (570..960).contains(&mins) {
                reg += 1
            } else {
                ext += 1
            }
        }
        // Q1 2023 from Jan 2: 64 weekdays, less Jan 2 (New Year observed), Jan 16 (MLK)
        // and Feb 20 (Washington's Birthday).
        let days = 61.0;
        let reg_share = reg as f64 / (days * 390.0);
        let ext_share = ext as f64 / (days * 570.0);
        assert!((0.9..1.0).contains(&reg_share), "regular share {reg_share}");
        assert!(
            (0.05..0.45).contains(&ext_share),
            "extended share {ext_share}"
        );
    }

    #[test]
    fn bars_follow_the_exchange_calendar() {
        let mut c = all_listed(&["CAL"]);
        c.today = date(2026, 6, 30);
        let ny = |ms: i64| {
            jiff::Timestamp::from_millisecond(ms)
                .unwrap()
                .to_zoned_datetime(exchange_tz())
        };
        let range = DateRange::parse("2025-01-01", "2025-12-31").unwrap();
        let b = bars_for("CAL", range, &c);
        let days: std::collections::BTreeSet<Date> =
            b.timestamp.iter().map(|&t| ny(t).date()).collect();
        for holiday in [
            "2025-01-01",
            "2025-01-09",
            "2025-01-20",
            "2025-04-18",
            "2025-12-25",
        ] {
            assert!(
                !days.contains(&holiday.parse().unwrap()),
                "bars on {holiday}"
            );
        }
        assert_eq!(days.len(), 250, "2025 has 250 sessions");
        // The day after Thanksgiving closes at 13:00: nothing at or after 17:00.
        let friday: Date = "2025-11-28".parse().unwrap();
        let late: Vec<_> = b
            .timestamp
            .iter()
            .map(|&t| ny(t))
            .filter(|z| z.date() == friday)
            .map(|z| z.hour())
            .collect();
        assert!(!late.is_empty() && late.iter().all(|&h| (4..17).contains(&h)));
    }

    #[test]
    fn any_window_equals_the_slice_of_the_whole() {
        let c = all_listed(&["MSFT"]);
        let whole = bars_for(
            "MSFT",
            DateRange::parse("2020-02-03", "2020-02-07").unwrap(),
            &c,
        );
        let lo = whole.timestamp[1000];
        let hi = whole.timestamp[1500];
        let part = bars_between("MSFT", lo, hi, &c);
        assert_eq!(part.timestamp, whole.timestamp[1000..=1500].to_vec());
        assert_eq!(part.close, whole.close[1000..=1500].to_vec());
        let model = TickerModel::new("MSFT", &c);
        let mut before = Vec::new();
        model.collect_before(whole.timestamp[0], lo, 7, &mut before);
        let ts: Vec<i64> = before.iter().map(|r| r.t).collect();
        assert_eq!(ts, whole.timestamp[993..1000].to_vec());
    }

    #[test]
    fn data_is_deterministic_and_differs_between_tickers_and_seeds() {
        let c = all_listed(&["AAA", "BBB"]);
        let r = DateRange::parse("2010-05-03", "2010-05-03").unwrap();
        assert_eq!(bars_for("AAA", r, &c), bars_for("AAA", r, &c));
        assert_ne!(bars_for("AAA", r, &c).close, bars_for("BBB", r, &c).close);
        let c2 = SandboxConfig {
            seed: 7,
            ..c.clone()
        };
        assert_ne!(bars_for("AAA", r, &c).close, bars_for("AAA", r, &c2).close);
    }

    #[test]
    fn no_bars_after_today_or_outside_the_listing() {
        let mut c = cfg();
        c.today = date(2024, 6, 26);
        c.listings
            .insert("NEW".into(), (Some(date(2024, 6, 20)), None));
        c.listings
            .insert("OLD".into(), (None, Some(date(2024, 6, 18))));
        let r = DateRange::parse("2024-06-14", "2024-06-28").unwrap();
        let days = |b: Bars| {
            let mut d: Vec<Date> = b.timestamp.iter().map(|&t| ny_date_of_ms(t)).collect();
            d.dedup();
            d
        };
        let new = days(bars_for("NEW", r, &c));
        assert_eq!(new.first(), Some(&date(2024, 6, 20)));
        assert_eq!(new.last(), Some(&date(2024, 6, 26)));
        let old = days(bars_for("OLD", r, &c));
        assert_eq!(
            old,
            vec![date(2024, 6, 14), date(2024, 6, 17), date(2024, 6, 18)]
        );
    }

    #[test]
    fn hashed_listings_are_deterministic_and_roughly_as_common_as_documented() {
        let c = cfg();
        let (mut listed, mut delisted) = (0, 0);
        for i in 0..2000 {
            let t = format!("T{i}");
            let (l, d) = listing(&t, &c);
            assert_eq!((l, d), listing(&t, &c));
            if let (Some(l), Some(d)) = (l, d) {
                assert!(l < d, "{t}: {l} !< {d}");
            }
            listed += usize::from(l.is_some());
            delisted += usize::from(d.is_some());
        }
        assert!((200..400).contains(&listed), "listed {listed}");
        assert!((120..290).contains(&delisted), "delisted {delisted}");
    }

    #[test]
    fn listing_override_beats_the_hash_and_parses_open_ends() {
        assert_eq!(
            parse_listing("ABC=2005-03-01..2008-06-30").unwrap(),
            (
                "ABC".into(),
                (Some(date(2005, 3, 1)), Some(date(2008, 6, 30)))
            )
        );
        assert_eq!(
            parse_listing("ABC=..2008-06-30").unwrap().1,
            (None, Some(date(2008, 6, 30)))
        );
        assert_eq!(
            parse_listing("ABC=2005-03-01..").unwrap().1,
            (Some(date(2005, 3, 1)), None)
        );
        assert!(parse_listing("ABC").unwrap_err().contains("no '='"));
        assert!(
            parse_listing("ABC=2005-03-01")
                .unwrap_err()
                .contains("'..'")
        );
        assert!(
            parse_listing("ABC=2009-01-01..2008-01-01")
                .unwrap_err()
                .contains("after")
        );
        assert!(
            parse_listing("ABC=2005-13-01..")
                .unwrap_err()
                .contains("2005-13-01")
        );
    }

    #[test]
    fn big_volumes_keep_seven_significant_digits() {
        assert_eq!(round_volume(999_999.0), 999_999.0);
        assert_eq!(round_volume(1_029_145.0), 1_029_145.0);
        assert_eq!(round_volume(12_345_678.0), 12_345_680.0);
        assert_eq!(round_volume(99_999_996.0), 100_000_000.0);
    }
}
