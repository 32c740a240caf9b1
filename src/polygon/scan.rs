//! A hand-written scanner for the usual shape of an aggregates page, tried before the
//! serde path of [`super::decode`].
//!
//! In the serde visitor most of a page's time went to per-key machinery (key scanning
//! ~30% of a profile, number parsing ~13%). Bars always carry the same few short keys,
//! so this scanner matches them as byte patterns and reads each number in one pass.
//!
//! It accepts a strict subset of JSON: an envelope whose known keys hold plain strings
//! (`resultsCount` an integer, `results` an array), unknown top-level keys with scalar
//! values, and bar objects whose keys are `o h l c v t` plus optional `vw n otc`, in any
//! order, each at most once, with numbers (`otc`: `true`/`false`). Anything else (an
//! escape in a string, `null`, a nested value, an unknown or repeated key, a missing
//! field, malformed or truncated input) makes it give up with `None`; the caller then
//! decodes the whole page with serde, so errors and rare shapes behave exactly as before.
//!
//! Numbers come out bit-identical to serde_json's. serde_json (built here without
//! `float_roundtrip`) computes `significand × 10^exponent` with one float multiply or
//! divide. When the significand is at most 2^53 and |exponent| ≤ 22 both operands are
//! exact, so that one operation is correctly rounded (the value `str::parse::<f64>`
//! gives too), and the scanner does the same. Any other number (17-digit shortest
//! forms, big exponents) goes through serde_json's own number parser, because there
//! serde_json is not always correctly rounded and std's parser could differ by an ulp.

use super::decode::Page;
use crate::bars::{Bar, Bars};

/// 10^0 ..= 10^22: the powers of ten an f64 holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The largest significand every value up to which converts to f64 exactly.
const MAX_EXACT: u64 = 1 << 53;

/// The smallest bar object, `{"o":1,"h":1,"l":1,"c":1,"v":1,"t":1}`: bounds how many
/// bars a body can hold, so a wrong `resultsCount` cannot reserve more than that.
const MIN_BAR_BYTES: usize = 37;

/// Bars reserved when `resultsCount` did not come before `results`.
const DEFAULT_RESERVE: usize = 4096;

/// Decodes `input` if it has the usual shape; `None` means "ask serde" (see the module
/// docs), never "invalid".
pub(crate) fn scan_page(input: &[u8]) -> Option<Page> {
    let mut s = Scanner { s: input, i: 0 };
    let page = s.page()?;
    s.ws();
    (s.i == input.len()).then_some(page)
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

/// A JSON number as read: sign, decimal significand (`u64::MAX` when it has more than
/// [`MAX_DIGITS`] digits) and exponent. Small enough to come back in registers.
#[derive(Clone, Copy)]
struct Number {
    sig: u64,
    exp: i32,
    neg: bool,
    /// No fraction and no exponent.
    integer: bool,
}

/// A cursor over the input. Every method returns `None` for "not the usual shape".
struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    /// The top-level object.
    fn page(&mut self) -> Option<Page> {
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
            self.top_field(key, &mut page, &mut seen)?;
            if !self.more(b'}')? {
                return Some(page);
            }
        }
    }

    /// The value of one top-level key.
    fn top_field(&mut self, key: &[u8], page: &mut Page, seen: &mut u8) -> Option<()> {
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
            b"results" => self.results(&mut page.bars, page.results_count)?,
            b"next_url" => page.next_url = Some(self.owned_string()?),
            b"error" => page.error = Some(self.owned_string()?),
            b"message" => page.message = Some(self.owned_string()?),
            b"request_id" => page.request_id = Some(self.owned_string()?),
            b"resultsCount" => page.results_count = Some(self.integer()?.max(0) as u64),
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
        loop {
            self.expect(b'{')?;
            bars.push(self.bar()?);
            if !self.more(b']')? {
                return Some(());
            }
        }
    }

    /// One bar object, its `{` already read.
    fn bar(&mut self) -> Option<Bar> {
        let mut bar = Bar {
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
        let mut seen = 0u16;
        self.ws();
        loop {
            let key = self.bar_key()?;
            let bit = 1u16 << key as u8;
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            self.colon()?;
            match key {
                BarKey::O => bar.open = self.float()?,
                BarKey::H => bar.high = self.float()?,
                BarKey::L => bar.low = self.float()?,
                BarKey::C => bar.close = self.float()?,
                BarKey::V => bar.volume = self.float()?,
                BarKey::T => bar.timestamp = self.integer()?,
                BarKey::Vw => bar.vwap = Some(self.float()?),
                BarKey::N => bar.transactions = Some(self.integer()?),
                BarKey::Otc => bar.otc = self.boolean()?,
            }
            if !self.more(b'}')? {
                break;
            }
        }
        (seen & REQUIRED == REQUIRED).then_some(bar)
    }

    /// A bar key with its quotes, matched as bytes.
    #[inline]
    fn bar_key(&mut self) -> Option<BarKey> {
        let (key, len) = match &self.s[self.i..] {
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
        self.i += len;
        Some(key)
    }

    /// A number as an f64, exactly as serde_json computes it (see the module docs).
    #[inline]
    fn float(&mut self) -> Option<f64> {
        let start = self.i;
        let n = self.number()?;
        if n.sig <= MAX_EXACT && n.exp.unsigned_abs() < POW10.len() as u32 {
            let m = n.sig as f64;
            let pow = POW10[n.exp.unsigned_abs() as usize];
            let f = if n.exp >= 0 { m * pow } else { m / pow };
            return Some(if n.neg { -f } else { f });
        }
        serde_json::from_slice(&self.s[start..self.i]).ok()
    }

    /// An integer literal that fits an i64. A fraction or an exponent (`12.0`, which
    /// serde accepts leniently) is left to serde.
    #[inline]
    fn integer(&mut self) -> Option<i64> {
        let n = self.number()?;
        if !n.integer {
            return None;
        }
        if n.neg {
            // -2^63 is the one magnitude that fits only negated.
            (n.sig <= 1 << 63).then(|| (n.sig as i64).wrapping_neg())
        } else {
            i64::try_from(n.sig).ok()
        }
    }

    /// A JSON number, checked against the full grammar
    /// `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
    #[inline]
    fn number(&mut self) -> Option<Number> {
        let s = self.s;
        let start = self.i;
        let neg = s.get(start) == Some(&b'-');
        let mut i = start + usize::from(neg);
        let int_start = i;
        let mut sig = 0u64;
        match s.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digits(s, i, &mut sig),
            _ => return None,
        }
        let int_end = i;
        let mut exp = 0i32;
        let mut frac_len = 0;
        if s.get(i) == Some(&b'.') {
            let from = i + 1;
            i = digits(s, from, &mut sig);
            frac_len = i - from;
            if frac_len == 0 {
                return None;
            }
            exp = -(frac_len.min(EXP_CAP as usize) as i32);
        }
        if int_end - int_start + frac_len > MAX_DIGITS {
            // `sig` wrapped: mark it as too big for an exact float or an i64.
            sig = u64::MAX;
        }
        if let Some(b'e' | b'E') = s.get(i) {
            i += 1;
            let neg_exp = s.get(i) == Some(&b'-');
            i += usize::from(matches!(s.get(i), Some(b'-' | b'+')));
            let from = i;
            let mut e = 0i32;
            while let Some(&d @ b'0'..=b'9') = s.get(i) {
                e = (e * 10 + i32::from(d - b'0')).min(EXP_CAP);
                i += 1;
            }
            if i == from {
                return None;
            }
            exp += if neg_exp { -e } else { e };
        }
        self.i = i;
        Some(Number {
            sig,
            exp,
            neg,
            integer: i == int_end,
        })
    }

    /// `true` or `false`.
    fn boolean(&mut self) -> Option<bool> {
        if self.literal(b"true") {
            Some(true)
        } else if self.literal(b"false") {
            Some(false)
        } else {
            None
        }
    }

    /// The value of an unknown top-level key: a string, number, boolean or null.
    fn skip_scalar(&mut self) -> Option<()> {
        let ok = match *self.s.get(self.i)? {
            b'"' => self
                .string()
                .and_then(|s| std::str::from_utf8(s).ok())
                .is_some(),
            b'-' | b'0'..=b'9' => self.number().is_some(),
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
    #[inline]
    fn colon(&mut self) -> Option<()> {
        self.ws();
        self.expect(b':')?;
        self.ws();
        Some(())
    }

    /// Skips JSON whitespace (space, tab, line feed, carriage return; nothing else).
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.s.get(self.i) {
            self.i += 1;
        }
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

/// Where exponents stop counting: far beyond ±22 and any f64, far from i32 overflow.
const EXP_CAP: i32 = 1 << 20;

/// Any 19 decimal digits fit a u64; more may not.
const MAX_DIGITS: usize = 19;

/// Reads the decimal digits at `i` into `sig` (`sig × 10^count + digits`); returns
/// where they end. The arithmetic wraps (an overflow check per digit doubled the cost
/// of this loop); the caller counts digits instead.
#[inline]
fn digits(s: &[u8], mut i: usize, sig: &mut u64) -> usize {
    while let Some(&b) = s.get(i) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        *sig = sig.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests;
