//! One ticker's bars of one day as a staged block (before zstd).
//!
//! Staging is written once and read once, but it is written for every bar of the
//! market, so its size is most of the route's disk traffic. Raw `f64` columns compress
//! poorly (the mantissa bits of `123.45` look random). Prices on the tape are cents (or
//! hundredths of a cent below $1), so each column is stored as integers in units of
//! 1/10,000 whenever that gives back every value bit for bit, and as raw bits
//! otherwise:
//!
//! - timestamps as deltas (one minute, mostly);
//! - with every price exact: open as the change from the previous close, close as
//!   the change from the open, high above the body's top, low below its bottom:
//!   small numbers, mostly zero or positive;
//! - volume as an integer of 1/10,000 units when exact;
//! - trade counts as they are (`i64::MIN` for none).
//!
//! Every word is zigzag-coded (small negatives stay small), and each column is
//! byte-transposed (all first bytes, then all second bytes, ...), so the many zero
//! high bytes form long runs that zstd removes almost for free.
//!
//! Layout: a price-mode byte, a volume-mode byte (1 = scaled integers, 0 = raw bits),
//! then 7 columns of `n` transposed 8-byte words.

use crate::bars::Bars;

/// Units per 1: prices and volumes that are whole multiples of 1/10,000.
const SCALE: f64 = 10_000.0;
/// Bytes of the two mode bytes.
const HEAD: usize = 2;
/// Columns of 8-byte words.
const COLUMNS: usize = 7;

/// The size of the block of `n` bars.
pub fn block_len(n: usize) -> usize {
    HEAD + n * COLUMNS * 8
}

/// `v` in units of 1/10,000, when that is exact (decoding gives back the same bits).
fn scaled(v: f64) -> Option<i64> {
    let q = (v * SCALE).round();
    if q.is_nan() || q.abs() >= 9.0e15 {
        return None; // NaN, infinite, or beyond exact integers
    }
    let q = q as i64;
    ((q as f64 / SCALE).to_bits() == v.to_bits()).then_some(q)
}

fn unscaled(q: i64) -> f64 {
    q as f64 / SCALE
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Appends the block of `b` to `out`.
pub fn encode(b: &Bars, out: &mut Vec<u8>) {
    let n = b.len();
    let all = |col: &[f64]| col.iter().map(|&v| scaled(v)).collect::<Option<Vec<i64>>>();
    let prices = (|| Some([all(&b.open)?, all(&b.high)?, all(&b.low)?, all(&b.close)?]))();
    let volume = all(&b.volume);
    out.push(u8::from(prices.is_some()));
    out.push(u8::from(volume.is_some()));
    let mut prev = 0i64;
    put(
        out,
        n,
        b.timestamp.iter().map(|&t| {
            let d = t.wrapping_sub(prev);
            prev = t;
            zigzag(d)
        }),
    );
    match &prices {
        Some([o, h, l, c]) => {
            let before = std::iter::once(0).chain(c.iter().copied());
            let gaps = o
                .iter()
                .zip(before)
                .map(|(&o, pc)| zigzag(o.wrapping_sub(pc)));
            put(out, n, gaps);
            let body = |i: usize| (o[i].min(c[i]), o[i].max(c[i]));
            put(out, n, (0..n).map(|i| zigzag(h[i].wrapping_sub(body(i).1))));
            put(out, n, (0..n).map(|i| zigzag(body(i).0.wrapping_sub(l[i]))));
            put(out, n, (0..n).map(|i| zigzag(c[i].wrapping_sub(o[i]))));
        }
        None => {
            for col in [&b.open, &b.high, &b.low, &b.close] {
                put(out, n, col.iter().map(|v| v.to_bits()));
            }
        }
    }
    match &volume {
        Some(v) => put(out, n, v.iter().map(|&q| zigzag(q))),
        None => put(out, n, b.volume.iter().map(|v| v.to_bits())),
    }
    let trades = b.transactions.iter().map(|v| v.unwrap_or(i64::MIN));
    put(out, n, trades.map(zigzag));
}

/// Appends `n` words byte-transposed.
fn put(out: &mut Vec<u8>, n: usize, words: impl Iterator<Item = u64>) {
    let at = out.len();
    out.resize(at + n * 8, 0);
    let planes = &mut out[at..];
    for (i, w) in words.enumerate().take(n) {
        for (k, byte) in w.to_le_bytes().into_iter().enumerate() {
            planes[k * n + i] = byte;
        }
    }
}

/// Column `c` of a block of `n` bars, back as words.
fn column(raw: &[u8], c: usize, n: usize) -> Vec<u64> {
    let col = &raw[HEAD + c * n * 8..HEAD + (c + 1) * n * 8];
    (0..n)
        .map(|i| u64::from_le_bytes(std::array::from_fn(|k| col[k * n + i])))
        .collect()
}

/// The bars of a block of `n` bars; `None` when it is not one.
pub fn decode(raw: &[u8], n: usize) -> Option<Bars> {
    if raw.len() != block_len(n) || raw[0] > 1 || raw[1] > 1 {
        return None;
    }
    let mut t = 0i64;
    let timestamp = column(raw, 0, n)
        .into_iter()
        .map(|w| {
            t = t.wrapping_add(unzigzag(w));
            t
        })
        .collect();
    let cols: Vec<Vec<u64>> = (1..5).map(|c| column(raw, c, n)).collect();
    let [open, high, low, close] = if raw[0] == 1 {
        prices(&cols, n)
    } else {
        let bits = |c: usize| cols[c].iter().map(|&w| f64::from_bits(w)).collect();
        [bits(0), bits(1), bits(2), bits(3)]
    };
    let volume = column(raw, 5, n).into_iter();
    let volume = if raw[1] == 1 {
        volume.map(|w| unscaled(unzigzag(w))).collect()
    } else {
        volume.map(f64::from_bits).collect()
    };
    let transactions = column(raw, 6, n)
        .into_iter()
        .map(|w| Some(unzigzag(w)).filter(|&v| v != i64::MIN))
        .collect();
    Some(Bars {
        timestamp,
        open,
        high,
        low,
        close,
        volume,
        vwap: vec![None; n],
        transactions,
        otc: vec![false; n],
    })
}

/// Open, high, low and close from the price columns of a scaled block.
fn prices(cols: &[Vec<u64>], n: usize) -> [Vec<f64>; 4] {
    let mut q: [Vec<i64>; 4] = std::array::from_fn(|_| Vec::with_capacity(n));
    let mut prev_close = 0i64;
    let rows = cols[0].iter().zip(&cols[1]).zip(&cols[2]).zip(&cols[3]);
    for (((&open, &high), &low), &close) in rows {
        let o = prev_close.wrapping_add(unzigzag(open));
        let c = o.wrapping_add(unzigzag(close));
        q[0].push(o);
        q[1].push(o.max(c).wrapping_add(unzigzag(high)));
        q[2].push(o.min(c).wrapping_sub(unzigzag(low)));
        q[3].push(c);
        prev_close = c;
    }
    q.map(|col| col.into_iter().map(unscaled).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bars::Bar;

    fn bars(values: &[(i64, f64, f64, Option<i64>)]) -> Bars {
        // As parsed from text with at most 4 decimals: the nearest double.
        let grid = |x: f64| (x * SCALE).round() / SCALE;
        let mut b = Bars::default();
        for &(t, p, v, n) in values {
            b.push(Bar {
                timestamp: t,
                open: p,
                high: grid(p + 0.05),
                low: grid(p - 0.05),
                close: grid(p + 0.01),
                volume: v,
                vwap: None,
                transactions: n,
                otc: false,
            });
        }
        b
    }

    fn round_trip(b: &Bars) -> Vec<u8> {
        let mut raw = Vec::new();
        encode(b, &mut raw);
        let back = decode(&raw, b.len()).expect("a block");
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(back.timestamp, b.timestamp);
        for (x, y) in [
            (&back.open, &b.open),
            (&back.high, &b.high),
            (&back.low, &b.low),
            (&back.close, &b.close),
            (&back.volume, &b.volume),
        ] {
            assert_eq!(bits(x), bits(y));
        }
        assert_eq!(back.transactions, b.transactions);
        assert_eq!(back.vwap, b.vwap);
        raw
    }

    #[test]
    fn cents_and_integers_are_stored_scaled() {
        let b = bars(&[
            (1_735_826_400_000, 123.45, 100.0, Some(3)),
            (1_735_826_460_000, 123.47, 250.5, None),
            (1_735_826_520_000, 0.0123, 7.0, Some(0)),
        ]);
        let raw = round_trip(&b);
        assert_eq!(&raw[..2], &[1, 1]);
    }

    #[test]
    fn values_off_the_grid_are_stored_as_bits() {
        let b = bars(&[
            (i64::MIN + 1, 1.0 / 3.0, f64::NAN, Some(i64::MAX)),
            (-5, -0.0, -0.0, Some(-1)),
            (i64::MAX, f64::INFINITY, 1e300, None),
        ]);
        let raw = round_trip(&b);
        assert_eq!(&raw[..2], &[0, 0]);
        assert!(round_trip(&Bars::default()).len() == HEAD);
    }

    #[test]
    fn a_damaged_block_is_refused() {
        let b = bars(&[(60_000, 10.0, 1.0, Some(1))]);
        let mut raw = Vec::new();
        encode(&b, &mut raw);
        assert!(decode(&raw[1..], 1).is_none());
        assert!(decode(&raw, 2).is_none());
        raw[0] = 7;
        assert!(decode(&raw, 1).is_none());
    }
}
