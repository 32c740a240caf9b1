//! One ticker's bars of one day as a staged block (before zstd).
//!
//! Staging is written once and read once, but it is written for every bar of the
//! market, so its size is most of the route's disk traffic. Raw `f64` columns compress
//! poorly (the mantissa bits of `123.45` look random). Prices on the tape are cents (or
//! hundredths of a cent below $1), so each column is stored as integers in units of
//! 1/10,000 whenever that gives back every value bit for bit, and as raw bits
//! otherwise:
//!
//! - timestamps as deltas (one minute, mostly), in minutes when every one is whole;
//! - with every price exact: open as the change from the previous close, close as
//!   the change from the open, high above the body's top, low below its bottom:
//!   small numbers, mostly zero or positive;
//! - volume as an integer of 1/10,000 units when exact;
//! - trade counts as they are (`i64::MIN` for none).
//!
//! A column of scaled integers is then divided by the coarsest unit that keeps every
//! value whole (cents, or whole shares): a price of whole cents in 1/10,000 units
//! is a multiple of 100 whose low bytes look random to zstd, while in cents a tick
//! of one cent is the byte 2 (zigzag) and most changes fit in one byte.
//!
//! Every word is zigzag-coded (small negatives stay small), and each column is
//! byte-transposed (all first bytes, then all second bytes, ...) up to its widest
//! word: the high bytes that are zero in every word of the column are not stored.
//! Most columns need one to three of their eight bytes, so the encoder, zstd and the
//! decoder handle a fraction of the block's words instead of long runs of zeros.
//!
//! Layout: a price-mode byte and a volume-mode byte (see [`Unit`]), a time-mode byte
//! (1 = minutes, 0 = milliseconds), the byte width (0 to 8) of each of the 7 columns,
//! then each column as `width` planes of `n` bytes.

use crate::bars::Bars;

/// Units per 1 of the finest scale: prices and volumes that are whole multiples of
/// 1/10,000.
const SCALE: f64 = 10_000.0;
/// Bytes of the three mode bytes.
const MODES: usize = 3;
/// Columns of 8-byte words.
const COLUMNS: usize = 7;
/// Bytes before the columns: the modes, then each column's width.
const HEAD: usize = MODES + COLUMNS;
/// A minute in milliseconds.
const MINUTE: i64 = 60_000;

/// How a column of prices or volumes is stored (its mode byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Raw `f64` bits (some value is not a whole multiple of 1/10,000).
    Bits = 0,
    /// Integers of 1/10,000.
    TenThousandths = 1,
    /// Integers of 1/100 (cents).
    Hundredths = 2,
    /// Whole units.
    Ones = 3,
}

impl Unit {
    fn of(byte: u8) -> Option<Unit> {
        [
            Unit::Bits,
            Unit::TenThousandths,
            Unit::Hundredths,
            Unit::Ones,
        ]
        .get(usize::from(byte))
        .copied()
    }

    /// Units per 1.
    fn scale(self) -> f64 {
        match self {
            Unit::Bits | Unit::TenThousandths => SCALE,
            Unit::Hundredths => 100.0,
            Unit::Ones => 1.0,
        }
    }

    /// The coarsest unit in which every value of `cols` (integers of 1/10,000) is
    /// whole, the columns divided into it in place. `q / 10,000` and `(q / 100) / 100`
    /// are the same rational number, so both round to the same `f64`: dividing loses
    /// nothing.
    fn coarsest(cols: &mut [Vec<i64>]) -> Unit {
        let all = |d: i64, cols: &[Vec<i64>]| cols.iter().flatten().all(|q| q % d == 0);
        let (unit, d) = if all(10_000, cols) {
            (Unit::Ones, 10_000)
        } else if all(100, cols) {
            (Unit::Hundredths, 100)
        } else {
            return Unit::TenThousandths;
        };
        for q in cols.iter_mut().flatten() {
            *q /= d;
        }
        unit
    }
}

/// The largest size of a block of `n` bars (every column 8 bytes wide).
pub fn max_block_len(n: usize) -> usize {
    HEAD + n * COLUMNS * 8
}

/// `col` in units of 1/10,000 into `into`; false when some value is not exact there
/// (decoding would not give back the same bits).
fn scale_into(col: &[f64], into: &mut Vec<i64>) -> bool {
    into.clear();
    let mut exact = true;
    for &v in col {
        let x = v * SCALE;
        // NaN, infinite, or beyond exact integers: not exact (and the cast saturates).
        exact &= x.abs() < 9.0e15;
        // Rounded by hand: `f64::round` is a libm call on baseline x86-64, and this
        // runs for every price and volume of the market. Any rounding to nearest will
        // do: the check keeps only the integer that gives `v` back.
        let q = (x + 0.5f64.copysign(x)) as i64;
        exact &= (q as f64 / SCALE).to_bits() == v.to_bits();
        into.push(q);
    }
    exact
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Encodes blocks, reusing its scratch columns from block to block (a day writes
/// thousands of blocks; allocating them each time showed in profiles).
#[derive(Debug, Default)]
pub struct Encoder {
    /// Open, high, low, close, volume in their unit.
    q: [Vec<i64>; 5],
    words: Vec<u64>,
}

impl Encoder {
    /// Appends the block of `b` to `out`.
    pub fn encode(&mut self, b: &Bars, out: &mut Vec<u8>) {
        let n = b.len();
        let [o, h, l, c, _] = &mut self.q;
        let cols = [(&b.open, o), (&b.high, h), (&b.low, l), (&b.close, c)];
        let prices = cols.into_iter().all(|(col, q)| scale_into(col, q));
        let price = if prices {
            Unit::coarsest(&mut self.q[..4])
        } else {
            Unit::Bits
        };
        let volume = if scale_into(&b.volume, &mut self.q[4]) {
            Unit::coarsest(&mut self.q[4..])
        } else {
            Unit::Bits
        };
        let minutes = b.timestamp.iter().all(|t| t % MINUTE == 0);
        let widths = out.len() + MODES;
        out.extend([price as u8, volume as u8, u8::from(minutes)]);
        out.extend([0; COLUMNS]);
        let mut put = Columns {
            out,
            words: &mut self.words,
            widths,
        };
        let step = if minutes { MINUTE } else { 1 };
        let mut prev = 0i64;
        let deltas = b.timestamp.iter().map(|&t| {
            let t = t / step;
            let d = t.wrapping_sub(prev);
            prev = t;
            zigzag(d)
        });
        put.column(deltas);
        let [o, h, l, c, q] = &self.q;
        if price == Unit::Bits {
            for col in [&b.open, &b.high, &b.low, &b.close] {
                put.column(col.iter().map(|v| v.to_bits()));
            }
        } else {
            let before = std::iter::once(0).chain(c.iter().copied());
            let gaps = o.iter().zip(before).map(|(&o, pc)| o.wrapping_sub(pc));
            put.column(gaps.map(zigzag));
            let body = |i: usize| (o[i].min(c[i]), o[i].max(c[i]));
            let above = (0..n).map(|i| h[i].wrapping_sub(body(i).1));
            put.column(above.map(zigzag));
            let below = (0..n).map(|i| body(i).0.wrapping_sub(l[i]));
            put.column(below.map(zigzag));
            let moves = (0..n).map(|i| c[i].wrapping_sub(o[i]));
            put.column(moves.map(zigzag));
        }
        if volume == Unit::Bits {
            put.column(b.volume.iter().map(|v| v.to_bits()));
        } else {
            put.column(q.iter().map(|&q| zigzag(q)));
        }
        let trades = b.transactions.iter().map(|v| v.unwrap_or(i64::MIN));
        put.column(trades.map(zigzag));
    }
}

/// Appends the block of `b` to `out`.
#[cfg(test)]
pub fn encode(b: &Bars, out: &mut Vec<u8>) {
    Encoder::default().encode(b, out);
}

/// The columns of a block being appended to `out`, each column's width written into
/// the block's head as the column is appended.
struct Columns<'a> {
    out: &'a mut Vec<u8>,
    /// Scratch for one column's words.
    words: &'a mut Vec<u64>,
    /// Where the width of the next column goes in `out`.
    widths: usize,
}

impl Columns<'_> {
    /// Appends the next column: its words byte-transposed up to the widest one.
    fn column(&mut self, from: impl Iterator<Item = u64>) {
        let words = &mut *self.words;
        words.clear();
        words.extend(from);
        let n = words.len();
        let width = (8 - words.iter().fold(0, |a, w| a | w).leading_zeros() / 8) as usize;
        self.out[self.widths] = width as u8;
        self.widths += 1;
        let at = self.out.len();
        self.out.resize(at + n * width, 0);
        // Plane by plane: sequential stores the compiler vectorizes (a word at a time
        // scatters its bytes, n apart).
        for (k, plane) in self.out[at..].chunks_exact_mut(n.max(1)).enumerate() {
            for (byte, w) in plane.iter_mut().zip(words.iter()) {
                *byte = (w >> (8 * k)) as u8;
            }
        }
    }
}

/// Decodes blocks, reusing its scratch words from block to block (a piece reads one
/// block per day of each ticker).
#[derive(Debug, Default)]
pub struct Decoder {
    /// The block's columns as words, one after the other.
    words: Vec<u64>,
}

impl Decoder {
    /// Appends the bars of a block of `n` bars to `out`; false (and `out` unchanged)
    /// when it is not one.
    pub fn decode_into(&mut self, raw: &[u8], n: usize, out: &mut Bars) -> bool {
        let Some(head) = raw.get(..HEAD) else {
            return false;
        };
        let (Some(price), Some(volume)) = (Unit::of(head[0]), Unit::of(head[1])) else {
            return false;
        };
        let widths = &head[MODES..];
        let stored: usize = widths.iter().map(|&w| usize::from(w)).sum();
        if head[2] > 1 || widths.iter().any(|&w| w > 8) || raw.len() != HEAD + n * stored {
            return false;
        }
        self.words.clear();
        self.words.resize(n * COLUMNS, 0);
        let mut planes = raw[HEAD..].chunks_exact(n.max(1));
        for (col, &width) in self.words.chunks_exact_mut(n.max(1)).zip(widths) {
            for (k, plane) in planes.by_ref().take(usize::from(width)).enumerate() {
                for (w, &byte) in col.iter_mut().zip(plane) {
                    *w |= u64::from(byte) << (8 * k);
                }
            }
        }
        let column = |c: usize| self.words[c * n..(c + 1) * n].iter().copied();
        out.reserve(n);
        let step = if head[2] == 1 { MINUTE } else { 1 };
        let mut t = 0i64;
        out.timestamp.extend(column(0).map(|w| {
            t = t.wrapping_add(unzigzag(w));
            t.wrapping_mul(step)
        }));
        if price == Unit::Bits {
            let cols = [&mut out.open, &mut out.high, &mut out.low, &mut out.close];
            for (c, col) in cols.into_iter().enumerate() {
                col.extend(column(c + 1).map(f64::from_bits));
            }
        } else {
            let cols = [column(1), column(2), column(3), column(4)];
            prices(cols, price.scale(), out);
        }
        if volume == Unit::Bits {
            out.volume.extend(column(5).map(f64::from_bits));
        } else {
            let scale = volume.scale();
            out.volume
                .extend(column(5).map(|w| unzigzag(w) as f64 / scale));
        }
        out.transactions
            .extend(column(6).map(|w| Some(unzigzag(w)).filter(|&v| v != i64::MIN)));
        out.vwap.push_absent(n);
        out.otc.resize(out.otc.len() + n, false);
        true
    }
}

/// The bars of a block of `n` bars; `None` when it is not one.
#[cfg(test)]
pub fn decode(raw: &[u8], n: usize) -> Option<Bars> {
    let mut out = Bars::default();
    Decoder::default()
        .decode_into(raw, n, &mut out)
        .then_some(out)
}

/// Appends open, high, low and close from the price columns of a scaled block.
fn prices(cols: [impl Iterator<Item = u64>; 4], scale: f64, out: &mut Bars) {
    let [open, high, low, close] = cols;
    let mut prev_close = 0i64;
    for (((open, high), low), close) in open.zip(high).zip(low).zip(close) {
        let o = prev_close.wrapping_add(unzigzag(open));
        let c = o.wrapping_add(unzigzag(close));
        out.open.push(o as f64 / scale);
        out.high
            .push(o.max(c).wrapping_add(unzigzag(high)) as f64 / scale);
        out.low
            .push(o.min(c).wrapping_sub(unzigzag(low)) as f64 / scale);
        out.close.push(c as f64 / scale);
        prev_close = c;
    }
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
        assert_eq!(&raw[..3], &[1, 2, 1]);
    }

    #[test]
    fn whole_cents_shares_and_minutes_use_the_coarsest_unit() {
        let b = bars(&[
            (1_735_826_400_000, 123.45, 100.0, Some(3)),
            (1_735_826_520_000, 1.0, 7.0, None),
        ]);
        assert_eq!(&round_trip(&b)[..3], &[2, 3, 1]);
        let whole = bars(&[(59_999, 7.0, 1.5, Some(1))]);
        let mut b = whole.clone();
        (b.high[0], b.low[0], b.close[0]) = (8.0, 6.0, 7.0);
        assert_eq!(&round_trip(&b)[..3], &[3, 2, 0]);
    }

    #[test]
    fn columns_keep_only_the_bytes_their_widest_word_needs() {
        // One-minute steps, one-cent moves, small volumes: one byte a column; a missing
        // trade count (`i64::MIN`, all bits once zigzagged) takes the whole word.
        let b = bars(&[
            (60_000, 1.0, 1.0, Some(1)),
            (120_000, 1.01, 2.0, Some(2)),
            (180_000, 1.02, 3.0, None),
        ]);
        let raw = round_trip(&b);
        assert_eq!(&raw[MODES..HEAD], &[1, 1, 1, 1, 1, 1, 8]);
        assert_eq!(raw.len(), HEAD + 3 * 14);
        assert!(raw.len() < max_block_len(3));
        let mut cut = raw.clone();
        cut[HEAD - 1] = 7; // a width that does not match the block's length
        assert!(decode(&cut, 3).is_none());
        cut[HEAD - 1] = 9; // wider than a word
        assert!(decode(&cut, 3).is_none());
    }

    #[test]
    fn values_off_the_grid_are_stored_as_bits() {
        let b = bars(&[
            (i64::MIN + 1, 1.0 / 3.0, f64::NAN, Some(i64::MAX)),
            (-5, -0.0, -0.0, Some(-1)),
            (i64::MAX, f64::INFINITY, 1e300, None),
        ]);
        let raw = round_trip(&b);
        assert_eq!(&raw[..3], &[0, 0, 0]);
        assert_eq!(round_trip(&Bars::default()).len(), HEAD);
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
