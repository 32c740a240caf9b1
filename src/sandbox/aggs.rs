//! The aggregates endpoint: request parsing, cursors, and page JSON written by hand.
//!
//! `GET /v2/aggs/ticker/{T}/range/1/minute/{from}/{to}?adjusted=&sort=asc&limit=`
//! answers in the real API's shape. `from`/`to` are New York dates (inclusive) or Unix
//! milliseconds. When more bars remain, `next_url` points at the same path with an
//! opaque `cursor` that carries position, window, limit and adjusted (and no key).

use crate::calendar::{DateRange, parse_date};

use super::SandboxConfig;
use super::faults::Fault;
use super::synth::{Row, TickerModel, range_ms};

/// The `limit` the real API uses when none is sent.
pub const DEFAULT_LIMIT: u32 = 5000;
/// The largest `limit` the real API honours.
pub const MAX_LIMIT: u32 = 50_000;

/// A parsed aggregates request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AggsRequest {
    /// Decoded ticker.
    pub ticker: String,
    /// `{T}/range/1/minute/{from}/{to}` exactly as received (still encoded).
    pub raw_path: String,
    /// The page to serve.
    pub cursor: Cursor,
    /// The cursor string received, for a `next_url`-following request.
    pub raw_cursor: Option<String>,
}

/// Where a page starts and what the whole fetch covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// First millisecond of this page.
    pub pos: i64,
    /// First millisecond of the whole fetch.
    pub start: i64,
    /// Last millisecond of the whole fetch (inclusive).
    pub end: i64,
    pub limit: u32,
    pub adjusted: bool,
}

impl Cursor {
    /// The opaque text form (base64url of the fields).
    pub(crate) fn encode(&self) -> String {
        let plain = format!(
            "p{}.{}.{}.{}.{}",
            self.pos,
            self.start,
            self.end,
            self.limit,
            u8::from(self.adjusted)
        );
        base64url(plain.as_bytes())
    }

    /// Parses what [`Cursor::encode`] wrote.
    pub(crate) fn decode(s: &str) -> Option<Cursor> {
        let plain = String::from_utf8(unbase64url(s)?).ok()?;
        let mut f = plain.strip_prefix('p')?.split('.');
        let c = Cursor {
            pos: f.next()?.parse().ok()?,
            start: f.next()?.parse().ok()?,
            end: f.next()?.parse().ok()?,
            limit: f.next()?.parse().ok()?,
            adjusted: match f.next()? {
                "1" => true,
                "0" => false,
                _ => return None,
            },
        };
        (f.next().is_none() && (1..=MAX_LIMIT).contains(&c.limit)).then_some(c)
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn unbase64url(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits & 0xff) as u8);
        }
    }
    Some(out)
}

/// A request the endpoint refuses: HTTP status and the `error` text.
pub(crate) type Refusal = (u16, String);

/// A time bound: a `YYYY-MM-DD` New York date or Unix milliseconds.
fn bound(raw: &str, name: &str, end: bool) -> Result<i64, Refusal> {
    let bad = || {
        (
            400,
            format!(
                "Could not parse the time parameter: '{name}'. Use YYYY-MM-DD or Unix MS Timestamps"
            ),
        )
    };
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        return raw.parse().map_err(|_| bad());
    }
    let date = parse_date(raw).map_err(|_| bad())?;
    let (lo, hi) = range_ms(DateRange {
        from: date,
        to: date,
    });
    Ok(if end { hi } else { lo })
}

/// Parses an aggregates path (`segments` after `/v2/aggs/ticker/`) and its query.
pub(crate) fn parse(segments: &[&str], query: &[(String, String)]) -> Result<AggsRequest, Refusal> {
    let [ticker, range, mult, timespan, from, to] = segments else {
        return Err((
            404,
            "Not found: use /v2/aggs/ticker/{ticker}/range/1/minute/{from}/{to}".into(),
        ));
    };
    if *range != "range" {
        return Err((
            404,
            "Not found: use /v2/aggs/ticker/{ticker}/range/1/minute/{from}/{to}".into(),
        ));
    }
    let ticker = super::http::percent_decode(ticker, false);
    if ticker.is_empty() {
        return Err((400, "Missing the ticker parameter".into()));
    }
    if mult.parse::<u32>().is_err() {
        return Err((
            400,
            format!("Could not parse the multiplier '{mult}': use a positive integer"),
        ));
    }
    match *timespan {
        "minute" if *mult == "1" => {}
        "second" | "minute" | "hour" | "day" | "week" | "month" | "quarter" | "year" => {
            return Err((
                400,
                format!(
                    "The sandbox serves only range/1/minute aggregates, not range/{mult}/{timespan}"
                ),
            ));
        }
        _ => {
            return Err((
                400,
                format!(
                    "Could not parse the timespan '{timespan}'. Must be one of: second, minute, \
                     hour, day, week, month, quarter, year"
                ),
            ));
        }
    }
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let raw_path = format!("{}/range/{mult}/{timespan}/{from}/{to}", segments[0]);
    if let Some(raw) = param("cursor") {
        let cursor = Cursor::decode(raw).ok_or((400, format!("Invalid cursor '{raw}'")))?;
        return Ok(AggsRequest {
            ticker,
            raw_path,
            cursor,
            raw_cursor: Some(raw.to_string()),
        });
    }
    let start = bound(from, "from", false)?;
    let end = bound(to, "to", true)?;
    let limit = match param("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<u64>() {
            Ok(n) if n > 0 => n.min(u64::from(MAX_LIMIT)) as u32,
            _ => {
                return Err((
                    400,
                    format!("Could not parse the limit '{l}': use an integer from 1 to 50000"),
                ));
            }
        },
    };
    let adjusted = match param("adjusted") {
        None | Some("true") => true,
        Some("false") => false,
        Some(a) => {
            return Err((
                400,
                format!("Could not parse adjusted '{a}': use true or false"),
            ));
        }
    };
    match param("sort") {
        None | Some("asc") => {}
        Some(s) => {
            return Err((
                400,
                format!("The sandbox supports sort=asc only, not sort={s}"),
            ));
        }
    }
    Ok(AggsRequest {
        ticker,
        raw_path,
        cursor: Cursor {
            pos: start,
            start,
            end,
            limit,
            adjusted,
        },
        raw_cursor: None,
    })
}

/// How many bars a `repeat-page` fault repeats for a given limit (always fewer than
/// the limit, so a page still makes progress).
fn repeat_count(limit: u32) -> usize {
    if limit < 2 {
        0
    } else {
        (limit / 10).clamp(1, 100).min(limit - 1) as usize
    }
}

/// Builds the JSON of one page, applying a page fault when given.
pub(crate) fn page(
    req: &AggsRequest,
    cfg: &SandboxConfig,
    base_url: &str,
    request_id: &str,
    page_fault: Option<Fault>,
) -> Vec<u8> {
    let model = TickerModel::new(&req.ticker, cfg);
    let c = req.cursor;
    let limit = c.limit as usize;
    let mut rows = Vec::with_capacity(limit.min(60_000) + 1);
    let paginated = req.raw_cursor.is_some();
    if paginated && page_fault == Some(Fault::RepeatPage) {
        model.collect_before(c.start, c.pos, repeat_count(c.limit), &mut rows);
    }
    let fresh_max = limit - rows.len();
    let before = rows.len();
    model.collect(c.pos, c.end, fresh_max + 1, &mut rows);
    let next_pos = (rows.len() - before > fresh_max)
        .then(|| rows.pop().map(|r| r.t))
        .flatten();
    let next_cursor = match (&req.raw_cursor, page_fault) {
        (Some(raw), Some(Fault::CursorLoop)) => Some(raw.clone()),
        _ => next_pos.map(|pos| Cursor { pos, ..c }.encode()),
    };
    misshape(&mut rows, page_fault);
    let next_url =
        next_cursor.map(|cur| format!("{base_url}/v2/aggs/ticker/{}?cursor={cur}", req.raw_path));
    let mut out = Vec::with_capacity(rows.len() * 112 + 256);
    write_page(
        &mut out,
        &req.ticker,
        c.adjusted,
        &rows,
        request_id,
        next_url.as_deref(),
    );
    out
}

/// Applies the faults that break a page's shape, not its transport: `disorder`
/// reverses the rows and repeats the (new) first one exactly; `conflict` adds a second,
/// different bar for the first minute.
fn misshape(rows: &mut Vec<Row>, fault: Option<Fault>) {
    let Some(&first) = rows.first() else {
        return;
    };
    match fault {
        Some(Fault::Disorder) => {
            rows.reverse();
            rows.push(rows[rows.len() - 1]);
        }
        Some(Fault::Conflict) => rows.push(Row {
            c: first.c + 0.01,
            ..first
        }),
        _ => {}
    }
}

/// The first page of `ticker` over `range` with `limit`, exactly as the server sends it
/// (request id `bench`, base `http://127.0.0.1`); for benchmarks and decoder tests.
pub fn page_json(ticker: &str, range: DateRange, limit: u32, cfg: &SandboxConfig) -> Vec<u8> {
    let (start, end) = range_ms(range);
    let req = AggsRequest {
        ticker: ticker.to_string(),
        raw_path: format!("{ticker}/range/1/minute/{}/{}", range.from, range.to),
        cursor: Cursor {
            pos: start,
            start,
            end,
            limit: limit.clamp(1, MAX_LIMIT),
            adjusted: true,
        },
        raw_cursor: None,
    };
    page(&req, cfg, "http://127.0.0.1", "bench", None)
}

/// Appends a JSON string literal.
pub(crate) fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Writes a volume as the real API does: plain digits below a million, exponent form
/// with up to 7 significant digits (`1.029145e+06`) from a million up.
fn write_volume(out: &mut Vec<u8>, v: f64, ib: &mut itoa::Buffer, fb: &mut ryu::Buffer) {
    if v.fract() != 0.0 || !(0.0..9.0e15).contains(&v) {
        out.extend_from_slice(fb.format(v).as_bytes());
        return;
    }
    let digits = ib.format(v as u64).as_bytes();
    if v < 1e6 {
        out.extend_from_slice(digits);
        return;
    }
    let exp = digits.len() - 1;
    let mut mant = &digits[1..digits.len().min(7)];
    while let [rest @ .., b'0'] = mant {
        mant = rest;
    }
    out.push(digits[0]);
    if !mant.is_empty() {
        out.push(b'.');
        out.extend_from_slice(mant);
    }
    out.extend_from_slice(b"e+");
    if exp < 10 {
        out.push(b'0');
    }
    let mut eb = itoa::Buffer::new();
    out.extend_from_slice(eb.format(exp).as_bytes());
}

/// Writes a price. Synthetic prices are multiples of 0.0001, so fixed-point digits
/// (`130.21`, `0.5432`) are exact and much cheaper than shortest-float formatting;
/// anything else falls back to `ryu`.
fn write_price(out: &mut Vec<u8>, v: f64, ib: &mut itoa::Buffer, fb: &mut ryu::Buffer) {
    let j = super::synth::round_pos(v * 10_000.0);
    if !(0.0..9.0e15).contains(&v) || j / 10_000.0 != v {
        out.extend_from_slice(fb.format(v).as_bytes());
        return;
    }
    let j = j as u64;
    out.extend_from_slice(ib.format(j / 10_000).as_bytes());
    let mut frac = j % 10_000;
    if frac != 0 {
        let mut digits = 4;
        while frac.is_multiple_of(10) {
            frac /= 10;
            digits -= 1;
        }
        out.push(b'.');
        let text = ib.format(frac).as_bytes();
        out.extend(std::iter::repeat_n(b'0', digits - text.len()));
        out.extend_from_slice(text);
    }
}

/// Writes a page in the real API's shape and key order.
fn write_page(
    out: &mut Vec<u8>,
    ticker: &str,
    adjusted: bool,
    rows: &[Row],
    request_id: &str,
    next_url: Option<&str>,
) {
    let mut ib = itoa::Buffer::new();
    let mut fb = ryu::Buffer::new();
    let n = rows.len();
    out.extend_from_slice(b"{\"ticker\":");
    json_str(out, ticker);
    out.extend_from_slice(b",\"queryCount\":");
    out.extend_from_slice(ib.format(n).as_bytes());
    out.extend_from_slice(b",\"resultsCount\":");
    out.extend_from_slice(ib.format(n).as_bytes());
    out.extend_from_slice(if adjusted {
        b",\"adjusted\":true"
    } else {
        b",\"adjusted\":false"
    });
    if n > 0 {
        out.extend_from_slice(b",\"results\":[");
        for (i, r) in rows.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"v\":");
            write_volume(out, r.v, &mut ib, &mut fb);
            out.extend_from_slice(b",\"vw\":");
            write_price(out, r.vw, &mut ib, &mut fb);
            out.extend_from_slice(b",\"o\":");
            write_price(out, r.o, &mut ib, &mut fb);
            out.extend_from_slice(b",\"c\":");
            write_price(out, r.c, &mut ib, &mut fb);
            out.extend_from_slice(b",\"h\":");
            write_price(out, r.h, &mut ib, &mut fb);
            out.extend_from_slice(b",\"l\":");
            write_price(out, r.l, &mut ib, &mut fb);
            out.extend_from_slice(b",\"t\":");
            out.extend_from_slice(ib.format(r.t).as_bytes());
            out.extend_from_slice(b",\"n\":");
            out.extend_from_slice(ib.format(r.n).as_bytes());
            out.push(b'}');
        }
        out.push(b']');
    }
    out.extend_from_slice(b",\"status\":\"OK\",\"request_id\":");
    json_str(out, request_id);
    if n > 0 {
        out.extend_from_slice(b",\"count\":");
        out.extend_from_slice(ib.format(n).as_bytes());
    }
    if let Some(url) = next_url {
        out.extend_from_slice(b",\"next_url\":");
        json_str(out, url);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::synth::bars_for;
    use jiff::civil::date;

    fn cfg() -> SandboxConfig {
        let mut c = SandboxConfig {
            today: date(2024, 6, 28),
            ..SandboxConfig::default()
        };
        c.listings.insert("AAPL".into(), (None, None));
        c
    }

    fn req(path: &str, query: &str) -> Result<AggsRequest, Refusal> {
        let segs: Vec<&str> = path.split('/').collect();
        parse(&segs, &crate::sandbox::http::parse_query(query))
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            pos: 1_600_000_000_000,
            start: -5,
            end: i64::MAX,
            limit: 777,
            adjusted: false,
        };
        let s = c.encode();
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(Cursor::decode(&s), Some(c));
        assert_eq!(Cursor::decode("!!"), None);
        assert_eq!(
            Cursor::decode(&base64url(b"p1.2.3.0.1")),
            None,
            "limit 0 refused"
        );
    }

    #[test]
    fn parses_dates_ms_limit_and_defaults() {
        let r = req("AAPL/range/1/minute/2024-01-02/1704240000000", "").unwrap();
        assert_eq!(r.cursor.limit, DEFAULT_LIMIT);
        assert!(r.cursor.adjusted);
        assert_eq!(
            r.cursor.start,
            crate::calendar::ny_day_start_ms(date(2024, 1, 2))
        );
        assert_eq!(r.cursor.end, 1_704_240_000_000);
        let r = req(
            "AAPL/range/1/minute/2024-01-02/2024-01-02",
            "limit=90000&adjusted=false",
        )
        .unwrap();
        assert_eq!((r.cursor.limit, r.cursor.adjusted), (MAX_LIMIT, false));
        assert_eq!(
            r.cursor.end,
            crate::calendar::ny_day_start_ms(date(2024, 1, 3)) - 1
        );
    }

    #[test]
    fn refuses_other_timespans_bad_bounds_and_limits() {
        let e = req("AAPL/range/1/hour/2024-01-02/2024-01-03", "").unwrap_err();
        assert_eq!(e.0, 400);
        assert!(e.1.contains("range/1/hour"), "{}", e.1);
        assert_eq!(
            req("AAPL/range/5/minute/2024-01-02/2024-01-03", "")
                .unwrap_err()
                .0,
            400
        );
        assert!(
            req("AAPL/range/1/fortnight/2024-01-02/2024-01-03", "")
                .unwrap_err()
                .1
                .contains("timespan")
        );
        assert!(
            req("AAPL/range/1/minute/yesterday/2024-01-03", "")
                .unwrap_err()
                .1
                .contains("'from'")
        );
        assert!(
            req("AAPL/range/1/minute/2024-01-02/2024-01-03", "limit=0")
                .unwrap_err()
                .1
                .contains("limit")
        );
        assert_eq!(
            req("AAPL/range/1/minute/2024-01-02", "").unwrap_err().0,
            404
        );
    }

    #[test]
    fn volume_formatting_matches_the_real_api() {
        let f = |v: f64| {
            let mut out = Vec::new();
            write_volume(
                &mut out,
                v,
                &mut itoa::Buffer::new(),
                &mut ryu::Buffer::new(),
            );
            String::from_utf8(out).unwrap()
        };
        assert_eq!(f(1234.0), "1234");
        assert_eq!(f(1_029_145.0), "1.029145e+06");
        assert_eq!(f(1_500_000.0), "1.5e+06");
        assert_eq!(f(20_000_000.0), "2e+07");
        assert_eq!(f(12.5), "12.5");
        for v in [1_029_145.0, 1_500_000.0, 98_765_430.0] {
            assert_eq!(f(v).parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn pages_chain_to_exactly_the_synthetic_bars() {
        let c = cfg();
        let range = DateRange::parse("2024-03-08", "2024-03-12").unwrap();
        let want = bars_for("AAPL", range, &c);
        let mut r = req("AAPL/range/1/minute/2024-03-08/2024-03-12", "limit=700").unwrap();
        let mut got = Vec::new();
        for _ in 0..100 {
            let body = page(&r, &c, "http://h", "id", None);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let res = v["results"].as_array().unwrap();
            assert!(res.len() <= 700);
            got.extend(res.iter().map(|b| b["t"].as_i64().unwrap()));
            match v["next_url"].as_str() {
                Some(url) => {
                    assert!(url.starts_with(
                        "http://h/v2/aggs/ticker/AAPL/range/1/minute/2024-03-08/2024-03-12?cursor="
                    ));
                    let cur = url.rsplit_once("cursor=").unwrap().1;
                    r = req(
                        "AAPL/range/1/minute/2024-03-08/2024-03-12",
                        &format!("cursor={cur}"),
                    )
                    .unwrap();
                }
                None => break,
            }
        }
        assert_eq!(got, want.timestamp);
    }

    #[test]
    fn prices_print_as_short_exact_decimals() {
        let f = |v: f64| {
            let mut out = Vec::new();
            write_price(
                &mut out,
                v,
                &mut itoa::Buffer::new(),
                &mut ryu::Buffer::new(),
            );
            String::from_utf8(out).unwrap()
        };
        assert_eq!(f(130.21), "130.21");
        assert_eq!(f(130.0), "130");
        assert_eq!(f(0.0504), "0.0504");
        assert_eq!(f(12.3456), "12.3456");
        assert_eq!(f(1.0 / 3.0).parse::<f64>().unwrap(), 1.0 / 3.0);
    }

    #[test]
    fn page_json_parses_back_to_exactly_the_synthetic_bars() {
        let mut c = cfg();
        c.listings.insert("HEAVY".into(), (None, None));
        let range = DateRange::parse("2021-06-01", "2021-06-04").unwrap();
        // Find a ticker with big volumes too, so the exponent form is covered.
        let ticker = (0..200)
            .map(|i| format!("V{i}"))
            .find(|t| bars_for(t, range, &c).volume.iter().any(|&v| v >= 1e6))
            .unwrap();
        for t in ["AAPL", ticker.as_str()] {
            let want = bars_for(t, range, &c);
            let body = page_json(t, range, MAX_LIMIT, &c);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let res = v["results"].as_array().unwrap();
            assert_eq!(res.len(), want.len());
            for (b, w) in res.iter().zip(want.iter()) {
                let f = |k: &str| b[k].as_f64().unwrap();
                assert_eq!(
                    (
                        b["t"].as_i64().unwrap(),
                        f("o"),
                        f("h"),
                        f("l"),
                        f("c"),
                        f("v")
                    ),
                    (w.timestamp, w.open, w.high, w.low, w.close, w.volume)
                );
                assert_eq!((Some(f("vw")), b["n"].as_i64()), (w.vwap, w.transactions));
                assert!(b.get("otc").is_none());
            }
        }
    }

    #[test]
    fn empty_page_has_no_results_key() {
        let r = req("AAPL/range/1/minute/2024-03-09/2024-03-10", "").unwrap(); // a weekend
        let v: serde_json::Value =
            serde_json::from_slice(&page(&r, &cfg(), "http://h", "x", None)).unwrap();
        assert_eq!(v["resultsCount"], 0);
        assert_eq!(v["status"], "OK");
        assert!(v.get("results").is_none() && v.get("next_url").is_none());
    }

    #[test]
    fn page_json_is_fast_enough_for_benches() {
        // Generates a full 50k page; a loose floor so debug builds pass too.
        let range = DateRange::parse("2023-01-01", "2023-12-31").unwrap();
        let t = std::time::Instant::now();
        let body = page_json("AAPL", range, MAX_LIMIT, &cfg());
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["resultsCount"], 50_000);
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
    }
}

#[cfg(test)]
mod perf {
    use super::*;

    /// `cargo test --release --lib sandbox::aggs::perf -- --ignored --nocapture`
    #[test]
    #[ignore = "throughput measurement; run in release"]
    fn page_generation_throughput() {
        let mut c = SandboxConfig {
            today: jiff::civil::date(2024, 6, 28),
            ..SandboxConfig::default()
        };
        c.listings.insert("AAPL".into(), (None, None));
        let range = DateRange::parse("2010-01-01", "2020-12-31").unwrap();
        let t = std::time::Instant::now();
        let (mut bars, mut bytes) = (0usize, 0usize);
        for year in range.split_by_year() {
            let body = page_json("AAPL", year, MAX_LIMIT, &c);
            bytes += body.len();
            bars += MAX_LIMIT as usize;
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{bars} bars, {bytes} bytes in {s:.3}s: {:.2}M bars/s",
            bars as f64 / s / 1e6
        );
    }
}
