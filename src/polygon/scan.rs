//! A hand-written scanner for the usual shape of an aggregates page, tried before the
//! serde path of [`super::decode`].
//!
//! In the serde visitor most of a page's time went to per-key machinery (key scanning
//! ~30% of a profile, number parsing ~13%). Bars always carry the same few short keys,
//! so this scanner matches them as byte patterns and reads each number in one pass
//! ([`number`]). Bars in the API's own compact form and key order are read two at a
//! time by straight-line code ([`api_pair`]); any other bar by a loop over its keys.
//!
//! It accepts a strict subset of JSON: an envelope whose known keys hold plain strings
//! (`resultsCount` an integer, `results` an array), unknown top-level keys with scalar
//! values, and bar objects whose keys are `o h l c v t` plus optional `vw n otc`, in any
//! order, each at most once, with numbers (`otc`: `true`/`false`). Anything else (an
//! escape in a string, `null`, a nested value, an unknown or repeated key, a missing
//! field, malformed or truncated input) makes it give up with `None`; the caller then
//! decodes the whole page with serde, so errors and rare shapes behave exactly as before.
//! Numbers come out bit-identical to serde_json's (see [`number`]).

mod number;

use super::decode::Page;
use crate::bars::{Bar, Bars};
use number::{float, integer};

/// The smallest bar object, `{"o":1,"h":1,"l":1,"c":1,"v":1,"t":1}`: bounds how many
/// bars a body can hold, so a wrong `resultsCount` cannot reserve more than that.
const MIN_BAR_BYTES: usize = 37;

/// Bars reserved when `resultsCount` did not come before `results`.
const DEFAULT_RESERVE: usize = 4096;

/// Decodes `input` if it has the usual shape, appending its bars to `bars` (the
/// page's own `bars` stay empty); `None` means "ask serde" (see the module docs),
/// never "invalid", and leaves `bars` as it was.
pub(crate) fn scan_page(input: &[u8], bars: &mut Bars) -> Option<Page> {
    let before = bars.len();
    let mut s = Scanner { s: input, i: 0 };
    let page = s.page(bars).filter(|_| {
        s.ws();
        s.i == input.len()
    });
    if page.is_none() {
        bars.truncate(before);
    }
    page
}

/// Keys of a bar object; the discriminant is the key's bit in a `seen` mask.
#[derive(Clone, Copy)]
enum BarKey {
    O,
    H,
    L,
    C,
    V,
    T,
    Vw,
    N,
    Otc,
}

/// Bits of the keys every bar must have: `o h l c v t`.
const REQUIRED: u16 = (1 << 6) - 1;

/// Top-level keys the page keeps, one bit each so a repeat can be noticed.
const TOP_KEYS: [&[u8]; 7] = [
    b"status",
    b"results",
    b"next_url",
    b"error",
    b"message",
    b"request_id",
    b"resultsCount",
];

/// A cursor over the input. Every method returns `None` for "not the usual shape".
struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    /// The top-level object; its bars go to `bars`.
    fn page(&mut self, bars: &mut Bars) -> Option<Page> {
        let mut page = Page::default();
        let mut seen = 0u8;
        self.ws();
        self.expect(b'{')?;
        self.ws();
        if self.eat(b'}') {
            return Some(page);
        }
        loop {
            let key = self.string()?;
            self.colon()?;
            self.top_field(key, &mut page, bars, &mut seen)?;
            if !self.more(b'}')? {
                return Some(page);
            }
        }
    }

    /// The value of one top-level key.
    fn top_field(
        &mut self,
        key: &[u8],
        page: &mut Page,
        bars: &mut Bars,
        seen: &mut u8,
    ) -> Option<()> {
        if let Some(k) = TOP_KEYS.iter().position(|&k| k == key) {
            // serde keeps the last of repeated keys; such a page is left to it.
            let bit = 1u8 << k;
            if *seen & bit != 0 {
                return None;
            }
            *seen |= bit;
        }
        match key {
            b"status" => page.status = Some(self.owned_string()?),
            b"results" => self.results(bars, page.results_count)?,
            b"next_url" => page.next_url = Some(self.owned_string()?),
            b"error" => page.error = Some(self.owned_string()?),
            b"message" => page.message = Some(self.owned_string()?),
            b"request_id" => page.request_id = Some(self.owned_string()?),
            b"resultsCount" => {
                let mut n = 0;
                self.i = integer(self.s, self.i, &mut n)?;
                page.results_count = Some(n.max(0) as u64);
            }
            _ => {
                // serde reads every key as a `str`, so it must be UTF-8.
                std::str::from_utf8(key).ok()?;
                self.skip_scalar()?;
            }
        }
        Some(())
    }

    /// The `results` array, appended to `bars`. `count` (`resultsCount`, when it came
    /// first) sizes the columns once instead of letting them double up to a full page.
    fn results(&mut self, bars: &mut Bars, count: Option<u64>) -> Option<()> {
        self.expect(b'[')?;
        let room = self.s.len() / MIN_BAR_BYTES + 1;
        let want = count.map_or(DEFAULT_RESERVE, |n| usize::try_from(n).unwrap_or(room));
        bars.reserve(want.min(room));
        self.ws();
        if self.eat(b']') {
            return Some(());
        }
        // Pages hold bars of one form: after the first bar not in the API's own, the
        // rest goes straight to the general reader.
        let mut api_form = true;
        loop {
            let pair = api_form.then(|| api_pair(self.s, self.i)).flatten();
            self.i = match pair {
                Some(([a, b], end)) => {
                    bars.push(a);
                    bars.push(b);
                    end
                }
                None => {
                    api_form = false;
                    let (one, end) = bar(self.s, skip_ws(self.s, self.i))?;
                    bars.push(one);
                    end
                }
            };
            if !self.more(b']')? {
                return Some(());
            }
        }
    }

    /// The value of an unknown top-level key: a string, number, boolean or null.
    fn skip_scalar(&mut self) -> Option<()> {
        let ok = match *self.s.get(self.i)? {
            b'"' => self
                .string()
                .and_then(|s| std::str::from_utf8(s).ok())
                .is_some(),
            b'-' | b'0'..=b'9' => match number::number(self.s, self.i) {
                Some((_, end)) => {
                    self.i = end;
                    true
                }
                None => false,
            },
            _ => self.literal(b"true") || self.literal(b"false") || self.literal(b"null"),
        };
        ok.then_some(())
    }

    /// A string without escapes or control characters, as raw bytes (not yet checked
    /// to be UTF-8).
    fn string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.i;
        let len = self.s[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        let end = start + len;
        if self.s[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        Some(&self.s[start..end])
    }

    /// A string value the page keeps.
    fn owned_string(&mut self) -> Option<String> {
        let bytes = self.string()?;
        std::str::from_utf8(bytes).ok().map(str::to_owned)
    }

    /// After a value: `,` (true, more to come) or `close` (false), whitespace around.
    #[inline]
    fn more(&mut self, close: u8) -> Option<bool> {
        self.ws();
        let b = *self.s.get(self.i)?;
        self.i += 1;
        if b == b',' {
            self.ws();
            Some(true)
        } else {
            (b == close).then_some(false)
        }
    }

    /// `:` between a key and its value, whitespace around.
    fn colon(&mut self) -> Option<()> {
        self.ws();
        self.expect(b':')?;
        self.ws();
        Some(())
    }

    /// Skips JSON whitespace.
    #[inline]
    fn ws(&mut self) {
        self.i = skip_ws(self.s, self.i);
    }

    #[inline]
    fn expect(&mut self, b: u8) -> Option<()> {
        self.eat(b).then_some(())
    }

    #[inline]
    fn eat(&mut self, b: u8) -> bool {
        let hit = self.s.get(self.i) == Some(&b);
        self.i += usize::from(hit);
        hit
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let hit = self.s[self.i..].starts_with(word);
        self.i += if hit { word.len() } else { 0 };
        hit
    }
}

/// A bar with no vwap, trade count or OTC flag yet, as the readers below start one.
const EMPTY_BAR: Bar = Bar {
    timestamp: 0,
    open: 0.0,
    high: 0.0,
    low: 0.0,
    close: 0.0,
    volume: 0.0,
    vwap: None,
    transactions: None,
    otc: false,
};

/// Two consecutive bars at `i` in exactly the API's own form and key order,
/// `{"v":…,"vw":…,"o":…,"c":…,"h":…,"l":…,"t":…,"n":…}` with no whitespace: read by
/// straight-line code, each key checked by one compare, no key dispatch and no repeat
/// check (each key appears once by construction). The second bar starts after the
/// first `}` (a bar of this form holds no other), found with memchr, and the two are
/// read field by field in turn: each number's position depends on the one before it,
/// and two independent chains let the CPU overlap them (~16% faster than one bar at
/// a time). Returns the bars and where the second ends; `None` for anything else
/// (either bar in another form, or no second bar), which [`bar`] then reads one by
/// one.
#[inline(always)]
fn api_pair(s: &[u8], i: usize) -> Option<([Bar; 2], usize)> {
    let close = i + memchr::memchr(b'}', s.get(i..)?)?;
    let k = lit(s, close + 1, b",")?;
    let (mut a, mut b) = (EMPTY_BAR, EMPTY_BAR);
    let (mut a_vw, mut a_n, mut b_vw, mut b_n) = (0.0, 0, 0.0, 0);
    let i = float(s, lit(s, i, b"{\"v\":")?, &mut a.volume)?;
    let k = float(s, lit(s, k, b"{\"v\":")?, &mut b.volume)?;
    let i = float(s, lit(s, i, b",\"vw\":")?, &mut a_vw)?;
    let k = float(s, lit(s, k, b",\"vw\":")?, &mut b_vw)?;
    let i = float(s, lit(s, i, b",\"o\":")?, &mut a.open)?;
    let k = float(s, lit(s, k, b",\"o\":")?, &mut b.open)?;
    let i = float(s, lit(s, i, b",\"c\":")?, &mut a.close)?;
    let k = float(s, lit(s, k, b",\"c\":")?, &mut b.close)?;
    let i = float(s, lit(s, i, b",\"h\":")?, &mut a.high)?;
    let k = float(s, lit(s, k, b",\"h\":")?, &mut b.high)?;
    let i = float(s, lit(s, i, b",\"l\":")?, &mut a.low)?;
    let k = float(s, lit(s, k, b",\"l\":")?, &mut b.low)?;
    let i = integer(s, lit(s, i, b",\"t\":")?, &mut a.timestamp)?;
    let k = integer(s, lit(s, k, b",\"t\":")?, &mut b.timestamp)?;
    let i = integer(s, lit(s, i, b",\"n\":")?, &mut a_n)?;
    let k = integer(s, lit(s, k, b",\"n\":")?, &mut b_n)?;
    if i != close {
        return None;
    }
    let end = lit(s, k, b"}")?;
    (a.vwap, a.transactions) = (Some(a_vw), Some(a_n));
    (b.vwap, b.transactions) = (Some(b_vw), Some(b_n));
    Some(([a, b], end))
}

/// `i` past `word` when the input holds it there.
#[inline(always)]
fn lit<const N: usize>(s: &[u8], i: usize, word: &[u8; N]) -> Option<usize> {
    (s.get(i..i + N)? == word).then_some(i + N)
}

/// Any bar object at `i` (its `{`), keys in any order and whitespace anywhere; returns
/// it and where it ends.
fn bar(s: &[u8], i: usize) -> Option<(Bar, usize)> {
    let mut i = lit(s, i, b"{")?;
    let mut bar = EMPTY_BAR;
    let mut seen = 0u16;
    loop {
        let (key, at) = bar_key(s, i)?;
        let bit = 1u16 << key as u8;
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        i = match key {
            BarKey::O => float(s, at, &mut bar.open)?,
            BarKey::H => float(s, at, &mut bar.high)?,
            BarKey::L => float(s, at, &mut bar.low)?,
            BarKey::C => float(s, at, &mut bar.close)?,
            BarKey::V => float(s, at, &mut bar.volume)?,
            BarKey::T => integer(s, at, &mut bar.timestamp)?,
            BarKey::Vw => float(s, at, bar.vwap.insert(0.0))?,
            BarKey::N => integer(s, at, bar.transactions.insert(0))?,
            BarKey::Otc => boolean(s, at, &mut bar.otc)?,
        };
        i = skip_ws(s, i);
        match s.get(i)? {
            b',' => i += 1,
            b'}' => break,
            _ => return None,
        }
    }
    (seen & REQUIRED == REQUIRED).then_some((bar, i + 1))
}

/// A bar key and its colon at `i`, whitespace around either; returns the key and
/// where its value starts.
fn bar_key(s: &[u8], i: usize) -> Option<(BarKey, usize)> {
    let i = skip_ws(s, i);
    let (key, len) = match s.get(i..)? {
        [b'"', k, b'"', ..] => {
            let key = match k {
                b'o' => BarKey::O,
                b'h' => BarKey::H,
                b'l' => BarKey::L,
                b'c' => BarKey::C,
                b'v' => BarKey::V,
                b't' => BarKey::T,
                b'n' => BarKey::N,
                _ => return None,
            };
            (key, 3)
        }
        [b'"', b'v', b'w', b'"', ..] => (BarKey::Vw, 4),
        [b'"', b'o', b't', b'c', b'"', ..] => (BarKey::Otc, 5),
        _ => return None,
    };
    let i = skip_ws(s, i + len);
    (s.get(i) == Some(&b':')).then_some((key, i + 1))
}

/// `true` or `false` at `i` (whitespace before it allowed) into `out`; returns where
/// it ends.
fn boolean(s: &[u8], i: usize, out: &mut bool) -> Option<usize> {
    let i = skip_ws(s, i);
    let rest = s.get(i..)?;
    *out = rest.starts_with(b"true");
    if *out || rest.starts_with(b"false") {
        Some(i + if *out { 4 } else { 5 })
    } else {
        None
    }
}

/// Skips JSON whitespace (space, tab, line feed, carriage return; nothing else).
#[inline(always)]
fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = s.get(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests;
