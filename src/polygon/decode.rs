//! Page JSON → [`Page`]: the hot path of every fetch.
//!
//! A 50,000-bar page is ~5 MB of JSON. Pages of the usual shape are read by the
//! scanner in [`super::scan`]; the serde visitor below handles everything else (and
//! reports every error). It writes each bar's fields straight into the columns of
//! [`Bars`] — no `Vec<struct>`, no `serde_json::Value` — reading keys as borrowed
//! slices of the input.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::bars::{Bar, Bars};

/// One decoded page of the aggregates endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// `status`: `OK` or `DELAYED` on success; `ERROR`, `NOT_AUTHORIZED` on failure.
    pub status: Option<String>,
    /// The page's bars (`results` absent, `null` or `[]` all give none).
    pub bars: Bars,
    /// `next_url`: the next page (with a cursor, without the key), when there is one.
    pub next_url: Option<String>,
    /// `error`, sent with failed statuses.
    pub error: Option<String>,
    /// `message`, sent with some failures (e.g. `NOT_AUTHORIZED`).
    pub message: Option<String>,
    /// `request_id`, useful when reporting a problem to the provider.
    pub request_id: Option<String>,
    /// `resultsCount`.
    pub results_count: Option<u64>,
}

impl Page {
    /// True when `status` is `OK` or `DELAYED` (or absent and no `error` was sent).
    pub fn is_success(&self) -> bool {
        match self.status.as_deref() {
            Some(s) => s.eq_ignore_ascii_case("OK") || s.eq_ignore_ascii_case("DELAYED"),
            None => self.error.is_none(),
        }
    }

    /// The API's explanation of a failure: `error`, else `message`.
    pub fn problem(&self) -> Option<&str> {
        self.error.as_deref().or(self.message.as_deref())
    }
}

/// The page was not valid aggregates JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    /// What was wrong and where (line, column).
    pub message: String,
    /// True when the input ended early (a truncated body).
    pub truncated: bool,
}

/// Decodes one page from raw bytes.
///
/// A page of the usual shape goes through the hand-written scanner
/// ([`super::scan`]), several times faster; anything it does not recognise, including
/// every invalid page, is decoded by serde below, so results and errors are the same
/// either way.
pub fn decode_page(input: &[u8]) -> Result<Page, DecodeError> {
    let mut bars = Bars::default();
    let page = decode_page_onto(input, &mut bars)?;
    Ok(Page { bars, ..page })
}

/// [`decode_page`], appending the page's bars to `bars` instead (the returned page's
/// own `bars` are empty): a fetch collects its pages in one set of columns, with no
/// copy per page. On an error `bars` is left as it was.
pub fn decode_page_onto(input: &[u8], bars: &mut Bars) -> Result<Page, DecodeError> {
    match super::scan::scan_page(input, bars) {
        Some(page) => Ok(page),
        None => decode_with_serde_onto(input, bars),
    }
}

/// The general decoder: any valid page, and the error for an invalid one.
#[cfg(test)]
pub(crate) fn decode_with_serde(input: &[u8]) -> Result<Page, DecodeError> {
    let mut bars = Bars::default();
    let page = decode_with_serde_onto(input, &mut bars)?;
    Ok(Page { bars, ..page })
}

/// The general decoder, appending to `bars` as [`decode_page_onto`] does.
fn decode_with_serde_onto(input: &[u8], bars: &mut Bars) -> Result<Page, DecodeError> {
    let before = bars.len();
    let mut de = serde_json::Deserializer::from_slice(input);
    let page = de
        .deserialize_map(PageVisitor { bars, before })
        .and_then(|p| de.end().map(|()| p));
    page.map_err(|e| {
        bars.truncate(before);
        DecodeError {
            truncated: e.is_eof(),
            message: if e.is_eof() {
                format!("truncated page JSON ({} bytes): {e}", input.len())
            } else {
                format!("malformed page JSON: {e}")
            },
        }
    })
}

/// Top-level keys of a page.
enum TopField {
    Status,
    Results,
    NextUrl,
    Error,
    Message,
    RequestId,
    ResultsCount,
    Other,
}

/// Keys of a bar object.
#[derive(Clone, Copy)]
enum BarField {
    O,
    H,
    L,
    C,
    V,
    T,
    Vw,
    N,
    Otc,
    Other,
}

/// Implements `Deserialize` for a key enum through `deserialize_identifier`, so
/// serde_json hands over borrowed key bytes and nothing is allocated.
macro_rules! identifier {
    ($ty:ident, $what:literal, |$s:ident| $body:expr) => {
        impl<'de> de::Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    #[inline]
                    fn visit_str<E: de::Error>(self, $s: &str) -> Result<$ty, E> {
                        Ok($body)
                    }
                }
                d.deserialize_identifier(V)
            }
        }
    };
}

identifier!(TopField, "a page field", |s| match s {
    "status" => TopField::Status,
    "results" => TopField::Results,
    "next_url" => TopField::NextUrl,
    "error" => TopField::Error,
    "message" => TopField::Message,
    "request_id" => TopField::RequestId,
    "resultsCount" => TopField::ResultsCount,
    _ => TopField::Other,
});

identifier!(BarField, "a bar field", |s| match s.as_bytes() {
    b"o" => BarField::O,
    b"h" => BarField::H,
    b"l" => BarField::L,
    b"c" => BarField::C,
    b"v" => BarField::V,
    b"t" => BarField::T,
    b"vw" => BarField::Vw,
    b"n" => BarField::N,
    b"otc" => BarField::Otc,
    _ => BarField::Other,
});

/// The page object; its bars go to `bars` after the first `before`.
struct PageVisitor<'a> {
    bars: &'a mut Bars,
    before: usize,
}

impl<'de> Visitor<'de> for PageVisitor<'_> {
    type Value = Page;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an aggregates page object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Page, A::Error> {
        let mut page = Page::default();
        while let Some(key) = map.next_key::<TopField>()? {
            match key {
                TopField::Status => page.status = map.next_value()?,
                TopField::Results => {
                    // serde keeps the last of repeated keys.
                    self.bars.truncate(self.before);
                    map.next_value_seed(ResultsSeed(&mut *self.bars, self.before))?;
                }
                TopField::NextUrl => page.next_url = map.next_value()?,
                TopField::Error => page.error = map.next_value()?,
                TopField::Message => page.message = map.next_value()?,
                TopField::RequestId => page.request_id = map.next_value()?,
                TopField::ResultsCount => {
                    page.results_count = map
                        .next_value::<Option<Lenient>>()?
                        .map(|n| n.0.max(0) as u64)
                }
                TopField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(page)
    }
}

/// `results`: `null` or an array of bar objects, appended to the columns, which held
/// the given number of bars (of earlier pages) before this page.
struct ResultsSeed<'a>(&'a mut Bars, usize);

impl<'de> DeserializeSeed<'de> for ResultsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ResultsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of bars or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (bars, before) = (self.0, self.1);
        // serde_json gives no size hint; a full page is 50,000 bars, so grow in big
        // steps instead of doubling from zero.
        let want = seq.size_hint().unwrap_or(4096);
        bars.reserve(want);
        while seq
            .next_element_seed(BarSeed(&mut *bars, before))?
            .is_some()
        {
            if bars.timestamp.len() == bars.timestamp.capacity() {
                bars.reserve(bars.len().max(4096));
            }
        }
        Ok(())
    }
}

/// One bar object, pushed onto the columns once all its fields are read (the page's
/// bars start after the given number).
struct BarSeed<'a>(&'a mut Bars, usize);

impl<'de> DeserializeSeed<'de> for BarSeed<'_> {
    type Value = ();

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

const HAS_O: u8 = 1;
const HAS_H: u8 = 2;
const HAS_L: u8 = 4;
const HAS_C: u8 = 8;
const HAS_V: u8 = 16;
const HAS_T: u8 = 32;
const HAS_ALL: u8 = 63;

impl<'de> Visitor<'de> for BarSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a bar object with o, h, l, c, v and t")
    }

    #[inline]
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut o, mut h, mut l, mut c, mut v) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let mut t = 0i64;
        let mut vw = None;
        let mut n = None;
        let mut otc = false;
        let mut seen = 0u8;
        while let Some(key) = map.next_key::<BarField>()? {
            match key {
                BarField::O => (o, seen) = (map.next_value()?, seen | HAS_O),
                BarField::H => (h, seen) = (map.next_value()?, seen | HAS_H),
                BarField::L => (l, seen) = (map.next_value()?, seen | HAS_L),
                BarField::C => (c, seen) = (map.next_value()?, seen | HAS_C),
                BarField::V => (v, seen) = (map.next_value()?, seen | HAS_V),
                BarField::T => (t, seen) = (map.next_value::<Lenient>()?.0, seen | HAS_T),
                BarField::Vw => vw = map.next_value()?,
                BarField::N => n = map.next_value::<Option<Lenient>>()?.map(|x| x.0),
                BarField::Otc => otc = map.next_value::<Option<bool>>()?.unwrap_or(false),
                BarField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if seen != HAS_ALL {
            let missing: Vec<&str> = [
                (HAS_O, "o"),
                (HAS_H, "h"),
                (HAS_L, "l"),
                (HAS_C, "c"),
                (HAS_V, "v"),
                (HAS_T, "t"),
            ]
            .iter()
            .filter(|(bit, _)| seen & bit == 0)
            .map(|(_, name)| *name)
            .collect();
            return Err(de::Error::custom(format_args!(
                "bar #{} lacks field(s) {}",
                self.0.len() - self.1,
                missing.join(", ")
            )));
        }
        self.0.push(Bar {
            timestamp: t,
            open: o,
            high: h,
            low: l,
            close: c,
            volume: v,
            vwap: vw,
            transactions: n,
            otc,
        });
        Ok(())
    }
}

/// An integer that may arrive as a float with no fraction (`12.0`, `1.6e12`).
struct Lenient(i64);

impl<'de> de::Deserialize<'de> for Lenient {
    #[inline]
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Lenient, D::Error> {
        d.deserialize_i64(LenientVisitor)
    }
}

struct LenientVisitor;

impl Visitor<'_> for LenientVisitor {
    type Value = Lenient;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    #[inline]
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Lenient, E> {
        Ok(Lenient(v))
    }

    #[inline]
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Lenient, E> {
        i64::try_from(v)
            .map(Lenient)
            .map_err(|_| E::custom(format_args!("integer {v} is too large")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Lenient, E> {
        // 2^63 as f64; anything at or beyond it does not fit an i64.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        if v.is_finite() && v.fract() == 0.0 && v.abs() < LIMIT {
            Ok(Lenient(v as i64))
        } else {
            Err(E::custom(format_args!("expected an integer, found {v}")))
        }
    }
}

#[cfg(test)]
mod tests;
