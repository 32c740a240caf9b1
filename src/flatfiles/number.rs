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
    let (negative, body) = match field.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, field),
    };
    let (mut mantissa, mut digits, mut decimals) = (0u64, 0usize, None::<usize>);
    for &b in body {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
                digits += 1;
                if let Some(d) = decimals.as_mut() {
                    *d += 1;
                }
            }
            b'.' if decimals.is_none() => decimals = Some(0),
            _ => return None,
        }
    }
    let decimals = decimals.unwrap_or(0);
    if digits == 0 || digits > 19 || mantissa >= EXACT || decimals >= POW10.len() {
        return None;
    }
    let value = mantissa as f64 / POW10[decimals];
    Some(if negative { -value } else { value })
}

/// `[-]digits`, at most 18 digits (no overflow possible).
fn fast_i64(field: &[u8]) -> Option<i64> {
    let (negative, body) = match field.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, field),
    };
    if body.is_empty() || body.len() > 18 {
        return None;
    }
    let mut n = 0i64;
    for &b in body {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(b - b'0');
    }
    Some(if negative { -n } else { n })
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
