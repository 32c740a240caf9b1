//! JSON numbers for the scanner: bit-identical to serde_json's, read eight bytes at a
//! time.
//!
//! A bar's numbers are short (`3282`, `94.4681`, a 13-digit timestamp), so the usual
//! one is read as one or two 8-byte words: SWAR arithmetic finds where its digits stop
//! and turns up to eight of them into an integer with three multiplications, where a
//! loop per digit paid a branch per digit and a misprediction per number. Anything
//! else (a sign is fine; an exponent, more digits, the last bytes of the input) takes
//! the plain loop of [`long_number`].
//!
//! serde_json (built here without `float_roundtrip`) computes `significand ×
//! 10^exponent` with one float multiply or divide. When the significand is at most
//! 2^53 and |exponent| ≤ 22 both operands are exact, so that one operation is
//! correctly rounded (the value `str::parse::<f64>` gives too), and [`float`] does the
//! same. Any other number (17-digit shortest forms, big exponents) goes through
//! serde_json's own number parser, because there serde_json is not always correctly
//! rounded and std's parser could differ by an ulp.

use super::skip_ws;

/// 10^0 ..= 10^22: the powers of ten an f64 holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// 10^0 ..= 10^7 as integers, to shift a significand left by a run of digits.
const POW10_U64: [u64; 8] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];

/// The largest significand every value up to which converts to f64 exactly.
const MAX_EXACT: u64 = 1 << 53;

/// Where exponents stop counting: far beyond ±22 and any f64, far from i32 overflow.
const EXP_CAP: i32 = 1 << 20;

/// Any 19 decimal digits fit a u64; more may not.
const MAX_DIGITS: usize = 19;

/// A JSON number as read: sign, decimal significand (`u64::MAX` when it has more than
/// [`MAX_DIGITS`] digits) and exponent. Small enough to come back in registers.
#[derive(Clone, Copy)]
pub(super) struct Number {
    sig: u64,
    exp: i32,
    neg: bool,
    /// No fraction and no exponent.
    integer: bool,
}

/// A number at `i` (whitespace before it allowed) as an f64 into `out`, exactly as
/// serde_json computes it (see the module docs); returns where it ends.
#[inline(always)]
pub(super) fn float(s: &[u8], i: usize, out: &mut f64) -> Option<usize> {
    let i = skip_ws(s, i);
    let (n, end) = number(s, i)?;
    *out = if n.sig <= MAX_EXACT && n.exp.unsigned_abs() < POW10.len() as u32 {
        let m = n.sig as f64;
        let pow = POW10[n.exp.unsigned_abs() as usize];
        let f = if n.exp >= 0 { m * pow } else { m / pow };
        if n.neg { -f } else { f }
    } else {
        serde_json::from_slice(&s[i..end]).ok()?
    };
    Some(end)
}

/// An integer literal at `i` (whitespace before it allowed) that fits an i64, into
/// `out`; returns where it ends. A fraction or an exponent (`12.0`, which serde accepts
/// leniently) is left to serde.
#[inline(always)]
pub(super) fn integer(s: &[u8], i: usize, out: &mut i64) -> Option<usize> {
    let (n, end) = number(s, skip_ws(s, i))?;
    if !n.integer {
        return None;
    }
    *out = if n.neg {
        // -2^63 is the one magnitude that fits only negated.
        (n.sig <= 1 << 63).then(|| (n.sig as i64).wrapping_neg())?
    } else {
        i64::try_from(n.sig).ok()?
    };
    Some(end)
}

/// A JSON number at `start`, checked against the full grammar
/// `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`; returns it and where it ends.
#[inline(always)]
pub(super) fn number(s: &[u8], start: usize) -> Option<(Number, usize)> {
    let neg = s.get(start) == Some(&b'-');
    let i = start + usize::from(neg);
    match short_number(s, i) {
        Some((sig, frac, len)) => {
            let number = Number {
                sig,
                exp: -(frac as i32),
                neg,
                integer: frac == 0,
            };
            Some((number, i + len))
        }
        None => long_number(s, i, neg),
    }
}

/// The usual unsigned number at `i`, with at least eight bytes of input after it: at
/// most seven digits before the dot and seven after (`3282`, `94.4681`), or an integer
/// of eight to fifteen digits (a timestamp), with no exponent. Returns its digits as
/// one integer (under 10^15, so exact as an f64), how many of them follow the dot, and
/// its length; `None` for anything else, left to [`long_number`].
#[inline(always)]
fn short_number(s: &[u8], i: usize) -> Option<(u64, usize, usize)> {
    let word = load(s, i)?;
    let int = digit_run(word);
    // A leading zero is only valid alone (`0`, `0.5`).
    if int == 0 || (int > 1 && word as u8 == b'0') {
        return None;
    }
    if int == 8 {
        let next = load(s, i + 8)?;
        let more = digit_run(next);
        if more == 8 || matches!((next >> (8 * more)) as u8, b'.' | b'e' | b'E') {
            return None;
        }
        let low = if more == 0 {
            0
        } else {
            eight_digits(next, more)
        };
        return Some((eight_digits(word, 8) * POW10_U64[more] + low, 0, 8 + more));
    }
    match (word >> (8 * int)) as u8 {
        b'.' => {
            let next = load(s, i + int + 1)?;
            let frac = digit_run(next);
            if frac == 0 || frac == 8 || (next >> (8 * frac)) as u8 | 0x20 == b'e' {
                return None;
            }
            let sig = eight_digits(word, int) * POW10_U64[frac] + eight_digits(next, frac);
            Some((sig, frac, int + 1 + frac))
        }
        b'e' | b'E' => None,
        _ => Some((eight_digits(word, int), 0, int)),
    }
}

/// [`number`] for what [`short_number`] does not take, from `i` (after the sign): one
/// digit at a time.
#[inline(never)]
fn long_number(s: &[u8], mut i: usize, neg: bool) -> Option<(Number, usize)> {
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
        let (e, end) = exponent(s, i + 1)?;
        exp += e;
        i = end;
    }
    let number = Number {
        sig,
        exp,
        neg,
        integer: i == int_end,
    };
    Some((number, i))
}

/// The exponent after `e`/`E` at `i`: sign and digits, capped at [`EXP_CAP`]; returns
/// it and where it ends.
fn exponent(s: &[u8], mut i: usize) -> Option<(i32, usize)> {
    let neg = s.get(i) == Some(&b'-');
    i += usize::from(matches!(s.get(i), Some(b'-' | b'+')));
    let from = i;
    let mut e = 0i32;
    while let Some(&d @ b'0'..=b'9') = s.get(i) {
        e = (e * 10 + i32::from(d - b'0')).min(EXP_CAP);
        i += 1;
    }
    (i > from).then_some((if neg { -e } else { e }, i))
}

/// Reads the decimal digits at `i` into `sig` (`sig × 10^count + digits`); returns
/// where they end. The arithmetic wraps (an overflow check per digit doubled the cost
/// of this loop); the caller counts digits instead.
pub(super) fn digits(s: &[u8], mut i: usize, sig: &mut u64) -> usize {
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

/// The eight bytes at `i` as one word, first byte lowest.
#[inline(always)]
fn load(s: &[u8], i: usize) -> Option<u64> {
    let bytes = s.get(i..i + 8)?;
    Some(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
}

/// How many of the eight bytes of `word` (first byte lowest) are ASCII digits before
/// the first that is not. A byte is a digit when neither `b - '0'` borrows nor
/// `b + 0x46` carries into its top bit. Carries and borrows only travel towards later
/// bytes, so the first non-digit is always the lowest byte with its top bit set (the
/// bytes after it may be marked wrongly, and are not looked at).
#[inline(always)]
pub(super) fn digit_run(word: u64) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let marks = (word.wrapping_add(0x46 * ONES) | word.wrapping_sub(0x30 * ONES)) & (0x80 * ONES);
    (marks.trailing_zeros() / 8) as usize
}

/// The value of the first `n` (1..=8) bytes of `word`, all ASCII digits: they are
/// moved to the top so the bytes below become leading zeros, then adjacent digits,
/// pairs and quads are combined, one multiplication each.
#[inline(always)]
pub(super) fn eight_digits(word: u64, n: usize) -> u64 {
    let v = (word & 0x0F0F_0F0F_0F0F_0F0F) << (8 * (8 - n));
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    (v.wrapping_mul(10_000) + (v >> 32)) & 0xFFFF_FFFF
}
