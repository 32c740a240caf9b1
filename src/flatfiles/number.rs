//! Number parsing on the raw bytes of a CSV field, for the day-file decoder's hot loop.
//!
//! A day file has ~2M rows of six numbers each; `str::parse` after a UTF-8 check costs
//! more than inflating the file. The fast paths here take the plain forms the files
//! use (`123`, `-1.25`) and give exactly what `str::parse` gives; anything else (a
//! sign `+`, an exponent, too many digits, junk) goes to `str::parse`, so results and
//! errors are the same as parsing the text.

/// Powers of ten exactly representable as `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Largest integer below which every integer is exact in an `f64`.
const EXACT: u64 = 1 << 53;

/// `field` as an `f64`, `None` when `str::parse` would refuse it.
pub fn parse_f64(field: &[u8]) -> Option<f64> {
    fast_f64(field).or_else(|| std::str::from_utf8(field).ok()?.parse().ok())
}

/// `field` as an `i64`, `None` when `str::parse` would refuse it.
pub fn parse_i64(field: &[u8]) -> Option<i64> {
    fast_i64(field).or_else(|| std::str::from_utf8(field).ok()?.parse().ok())
}

/// `[-]digits[.digits]` with at most 19 significant digits, a mantissa below 2^53 and
/// at most 22 decimals: mantissa and power of ten are both exact, so one division is
/// correctly rounded, the same value `str::parse` gives (Clinger's fast path).
fn fast_f64(field: &[u8]) -> Option<f64> {
    scan_f64(field).and_then(|(v, used)| (used == field.len()).then_some(v))
}

/// `[-]digits` in `i64`.
fn fast_i64(field: &[u8]) -> Option<i64> {
    scan_i64(field).and_then(|(v, used)| (used == field.len()).then_some(v))
}

/// The number field at the start of `*s` that a comma ends, by the fast path of
/// [`parse_f64`]; `*s` then starts after the comma. `None` (and `*s` unchanged) when
/// the field is not in the fast path's form or no comma follows: parse it whole then.
/// Scanning and parsing in one pass is what makes a row cheap.
pub fn f64_field(s: &mut &[u8]) -> Option<f64> {
    let (v, used) = scan_f64(s)?;
    *s = s.get(used..)?.strip_prefix(b",")?;
    Some(v)
}

/// As [`f64_field`] for an integer; with `last`, the field ends the line instead of
/// a comma.
pub fn i64_field(s: &mut &[u8], last: bool) -> Option<i64> {
    let (v, used) = scan_i64(s)?;
    let rest = &s[used..];
    *s = match (last, rest.split_first()) {
        (true, None) => rest,
        (false, Some((b',', after))) => after,
        _ => return None,
    };
    Some(v)
}

/// The fast path's number at the start of `bytes`, and the bytes it spans (up to the
/// first byte that cannot continue it).
fn scan_f64(bytes: &[u8]) -> Option<(f64, usize)> {
    let negative = bytes.first() == Some(&b'-');
    let start = usize::from(negative);
    let (mut mantissa, mut i) = digits(bytes, start, 0);
    let whole = i - start;
    let mut decimals = 0;
    if bytes.get(i) == Some(&b'.') {
        let from = i + 1;
        (mantissa, i) = digits(bytes, from, mantissa);
        decimals = i - from;
    }
    let count = whole + decimals;
    if count == 0 || count > 19 || mantissa >= EXACT || decimals >= POW10.len() {
        return None;
    }
    let value = mantissa as f64 / POW10[decimals];
    Some((if negative { -value } else { value }, i))
}

/// Decimal digits from `i` on appended to `acc` (wrapping past 19 digits, which the
/// callers refuse), and where they end.
fn digits(bytes: &[u8], mut i: usize, mut acc: u64) -> (u64, usize) {
    while let Some(d) = bytes
        .get(i)
        .map(|b| b.wrapping_sub(b'0'))
        .filter(|&d| d < 10)
    {
        acc = acc.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    (acc, i)
}

/// As [`scan_f64`] for `[-]digits` in `i64` (19 digits at most: a nanosecond
/// timestamp has 19, read 8 at a time).
fn scan_i64(bytes: &[u8]) -> Option<(i64, usize)> {
    let negative = bytes.first() == Some(&b'-');
    let start = usize::from(negative);
    let mut i = start;
    // 19 digits never overflow a u64 (below 10^19 < 2^64).
    let mut n = 0u64;
    while i + 8 - start <= 16 {
        let Some(eight) = bytes.get(i..i + 8).and_then(eight_digits) else {
            break;
        };
        n = n * 100_000_000 + eight;
        i += 8;
    }
    (n, i) = digits(bytes, i, n);
    let count = i - start;
    if count == 0 || count > 19 {
        return None;
    }
    let value = match (negative, i64::try_from(n)) {
        (false, Ok(v)) => v,
        (true, Ok(v)) => -v,
        (true, Err(_)) if n == 1 << 63 => i64::MIN,
        _ => return None,
    };
    Some((value, i))
}

/// The value of 8 ASCII digits, `None` when one is not a digit (SWAR: the 8 bytes as
/// one word, as in fast_float).
fn eight_digits(bytes: &[u8]) -> Option<u64> {
    let v = u64::from_le_bytes(bytes.try_into().ok()?);
    let above = v.wrapping_add(0x4646_4646_4646_4646);
    let below = v.wrapping_sub(0x3030_3030_3030_3030);
    if (above | below) & 0x8080_8080_8080_8080 != 0 {
        return None;
    }
    // Pairs, then quadruples, then all 8 (the first byte is the most significant).
    let v = below.wrapping_mul(10).wrapping_add(below >> 8);
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    let high = (v & MASK).wrapping_mul(100 + (1_000_000 << 32));
    let low = ((v >> 16) & MASK).wrapping_mul(1 + (10_000 << 32));
    Some(u64::from((high.wrapping_add(low) >> 32) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as_std_f64(text: &str) {
        let std = text.parse::<f64>().ok();
        let ours = parse_f64(text.as_bytes());
        assert_eq!(
            ours.map(f64::to_bits),
            std.map(f64::to_bits),
            "`{text}`: {ours:?} vs {std:?}"
        );
    }

    #[test]
    fn floats_parse_exactly_as_std_does() {
        for t in [
            "0",
            "-0",
            "1",
            "1.5",
            "-1.25",
            "123.456",
            "0.1",
            "0.3",
            "1.",
            ".5",
            "-.5",
            "100",
            "200.5",
            "9007199254740991",
            "9007199254740993",
            "0.0000001",
            "1234567.891011",
            "1e5",
            "+1.5",
            "1.5e-3",
            "inf",
            "NaN",
            "",
            "-",
            ".",
            "1..2",
            "1.2.3",
            " 1",
            "1 ",
            "x",
            "12345678901234567890123",
            "0.12345678901234567",
            "3.141592653589793",
            "0.0000000000000000000001",
            "0.00000000000000000000001",
        ] {
            same_as_std_f64(t);
        }
    }

    #[test]
    fn shortest_round_trip_prices_parse_exactly() {
        let mut x = 0.0001f64;
        while x < 1e7 {
            for v in [x, x * 1.0001, x + 0.01, -x] {
                same_as_std_f64(ryu::Buffer::new().format(v));
            }
            x *= 1.37;
        }
    }

    #[test]
    fn fields_parse_as_their_text_does_and_stop_after_the_comma() {
        for t in [
            "1.5",
            "-0",
            "123.45",
            "1e5",
            "",
            "-",
            "1.2.3",
            "9007199254740993",
        ] {
            let line = format!("{t},rest");
            let mut s = line.as_bytes();
            let got = f64_field(&mut s);
            assert_eq!(
                got.map(f64::to_bits),
                fast_f64(t.as_bytes()).map(f64::to_bits)
            );
            let left: &[u8] = if got.is_some() {
                b"rest"
            } else {
                line.as_bytes()
            };
            assert_eq!(s, left, "`{t}`");
        }
        let mut s: &[u8] = b"1.5";
        assert_eq!(f64_field(&mut s), None, "no comma after it");
        for (t, last, want, left) in [
            ("12,x", false, Some(12), "x"),
            ("-7", true, Some(-7), ""),
            ("7,", true, None, "7,"),
            ("7", false, None, "7"),
            (
                "1735826400000000000",
                true,
                Some(1_735_826_400_000_000_000),
                "",
            ),
            ("12345678901234567890", true, None, "12345678901234567890"),
        ] {
            let mut s = t.as_bytes();
            assert_eq!(i64_field(&mut s, last), want, "`{t}`");
            assert_eq!(s, left.as_bytes());
        }
    }

    #[test]
    fn integers_of_every_length_and_digit_parse_as_std_does() {
        let mut x = 1u64;
        for len in 1..=20 {
            for d in 0..10u64 {
                let v = x.wrapping_mul(d + 1).wrapping_add(d * 1_234_567);
                let text = v.to_string();
                let cut = &text[..len.min(text.len())];
                for t in [cut.to_string(), format!("-{cut}"), format!("{cut}x")] {
                    assert_eq!(parse_i64(t.as_bytes()), t.parse::<i64>().ok(), "`{t}`");
                    let f = format!("{t},");
                    let mut s = f.as_bytes();
                    assert_eq!(i64_field(&mut s, false), t.parse::<i64>().ok(), "`{t}`");
                }
            }
            x = x.wrapping_mul(10).wrapping_add(7);
        }
        for t in [
            "1735826400000000000",
            "17358264a0000000000",
            "12345678/",
            "1234567:9",
        ] {
            assert_eq!(parse_i64(t.as_bytes()), t.parse::<i64>().ok(), "`{t}`");
        }
    }

    #[test]
    fn integers_parse_exactly_as_std_does() {
        for t in [
            "0",
            "-0",
            "7",
            "-7",
            "1735826400000000000",
            "999999999999999999",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "00000000000000000001",
            "+3",
            "",
            "-",
            "1.0",
            " 1",
            "1a",
        ] {
            assert_eq!(parse_i64(t.as_bytes()), t.parse::<i64>().ok(), "`{t}`");
        }
    }
}
