//! One day's flat file: the CSV rows, gzip, its ETag and Last-Modified, and a
//! bounded cache of generated files.
//!
//! A 5,000-ticker day is 2.3M rows (131 MB of CSV, 46 MB gzip); generating it takes
//! about 0.9 s in release on a 2-core machine (1.2 to 1.6 s before rows and gzip ran
//! on two threads), so the newest files are kept (LRU, capped in bytes) and
//! [`crate::sandbox::Sandbox::warm_flat_days`] pre-generates days before a benchmark
//! starts timing.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use jiff::civil::Date;

use crate::calendar::DateRange;
use crate::sandbox::SandboxConfig;
use crate::sandbox::server::lock;
use crate::sandbox::synth::{Row, TickerModel, epoch_day, fnv1a, mix2, range_ms};

/// The header line of every minute-aggregates flat file.
pub const FLAT_CSV_HEADER: &str = "ticker,volume,open,close,high,low,window_start,transactions";

/// Generated files kept in memory at most (bytes of gzip); the newest file is always
/// kept even if it alone is larger.
pub const FLAT_CACHE_BYTES: usize = 384 * 1024 * 1024;

/// Bumped when the file layout changes, so ETags of old layouts never match.
const FORMAT_VERSION: u64 = 1;

/// A generated day file.
#[derive(Debug)]
pub(crate) struct DayFile {
    /// The gzip bytes.
    pub body: Bytes,
    /// `"<32 hex>"`, quotes included.
    pub etag: String,
    /// Unix seconds.
    pub last_modified: i64,
}

/// Appends `x` so that parsing the text gives back exactly `x`: ryu's shortest
/// round-trip form, without a trailing `.0` on integers (as the real files print).
fn push_f64(out: &mut Vec<u8>, x: f64) {
    let mut b = ryu::Buffer::new();
    let s = b.format(x);
    out.extend_from_slice(s.strip_suffix(".0").unwrap_or(s).as_bytes());
}

/// Volumes are integers when integral (as in real files), else like prices.
fn push_volume(out: &mut Vec<u8>, v: f64) {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
    } else {
        push_f64(out, v);
    }
}

/// Appends one CSV row; `extra_volume` is the republish generation (see
/// [`crate::sandbox::Sandbox::republish_flat_day`]).
pub(crate) fn push_row(out: &mut Vec<u8>, ticker: &str, r: &Row, extra_volume: u32) {
    out.extend_from_slice(ticker.as_bytes());
    out.push(b',');
    push_volume(out, r.v + f64::from(extra_volume));
    for x in [r.o, r.c, r.h, r.l] {
        out.push(b',');
        push_f64(out, x);
    }
    out.push(b',');
    let ns = r.t.saturating_mul(1_000_000);
    out.extend_from_slice(itoa::Buffer::new().format(ns).as_bytes());
    out.push(b',');
    out.extend_from_slice(itoa::Buffer::new().format(r.n).as_bytes());
    out.push(b'\n');
}

/// CSV bytes handed from the row writer to the compressor at a time.
const CHUNK: usize = 1 << 19;

/// The gzip of `day`'s CSV over `universe` (sorted), at republish `generation`.
///
/// Two threads: one synthesizes and formats rows, the other compresses, so a large
/// day takes about the longer of the two instead of their sum.
pub(crate) fn generate(
    day: Date,
    generation: u32,
    universe: &[String],
    cfg: &SandboxConfig,
) -> Vec<u8> {
    let (lo, hi) = match DateRange::new(day, day) {
        Ok(r) => range_ms(r),
        Err(_) => (0, -1),
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    std::thread::scope(|scope| {
        let compressor = scope.spawn(move || {
            // Fast level: the sandbox must not be the bottleneck of a client benchmark.
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            for chunk in rx {
                // Writing into a Vec cannot fail.
                let _ = gz.write_all(&chunk);
            }
            gz.finish().unwrap_or_default()
        });
        let mut csv = Vec::with_capacity(CHUNK + 4096);
        csv.extend_from_slice(FLAT_CSV_HEADER.as_bytes());
        csv.push(b'\n');
        let mut rows = Vec::with_capacity(1024);
        for ticker in universe {
            rows.clear();
            TickerModel::new(ticker, cfg).collect(lo, hi, usize::MAX, &mut rows);
            for r in &rows {
                push_row(&mut csv, ticker, r, generation);
            }
            if csv.len() >= CHUNK {
                let full = std::mem::replace(&mut csv, Vec::with_capacity(CHUNK + 4096));
                let _ = tx.send(full);
            }
        }
        let _ = tx.send(csv);
        drop(tx);
        compressor.join().unwrap_or_default()
    })
}

/// A hash of everything that shapes a day's content except the day and generation.
pub(crate) fn content_seed(universe: &[String], cfg: &SandboxConfig) -> u64 {
    let mut h = mix2(FORMAT_VERSION, cfg.seed);
    for t in universe {
        h = mix2(h, fnv1a(t.as_bytes()));
    }
    let mut listings: Vec<_> = cfg.listings.iter().collect();
    listings.sort_by(|a, b| a.0.cmp(b.0));
    for (t, (from, to)) in listings {
        h = mix2(h, fnv1a(t.as_bytes()));
        for d in [from, to] {
            h = mix2(h, d.map_or(u64::MAX, |d| epoch_day(d) as u64));
        }
    }
    mix2(h, epoch_day(cfg.today) as u64)
}

/// The ETag of a day file: 128 bits hashed from (content seed, day, generation), so a
/// listing can give it without generating the file.
pub(crate) fn etag(content_seed: u64, day: Date, generation: u32) -> String {
    let h = mix2(
        mix2(content_seed, epoch_day(day) as u64),
        u64::from(generation),
    );
    format!("\"{:016x}{:016x}\"", mix2(h, 1), mix2(h, 2))
}

/// Last-Modified of a day file: 10:00 UTC the next calendar day (about when the real
/// files appear), one hour later per republish.
pub(crate) fn last_modified(day: Date, generation: u32) -> i64 {
    (epoch_day(day) + 1) * 86_400 + 10 * 3600 + i64::from(generation) * 3600
}

type Key = (Date, u32);

#[derive(Default)]
struct CacheInner {
    /// Oldest use first.
    entries: VecDeque<(Key, Arc<DayFile>)>,
    bytes: usize,
    /// Sizes of every file generated so far (a few bytes per day, never evicted), so
    /// listings can give exact sizes for them.
    sizes: HashMap<Key, u64>,
}

/// Generated day files, most recently used kept, at most [`FLAT_CACHE_BYTES`].
#[derive(Default)]
pub(crate) struct DayCache {
    inner: Mutex<CacheInner>,
    /// Held while generating, so concurrent requests for one day generate it once
    /// (and at most one large file is being built at a time).
    generating: Mutex<()>,
    /// Bytes kept at most when set (a benchmark warming a month of a whole market);
    /// 0 means [`FLAT_CACHE_BYTES`].
    limit: std::sync::atomic::AtomicUsize,
}

impl DayCache {
    fn cached(&self, key: Key) -> Option<Arc<DayFile>> {
        let mut inner = lock(&self.inner);
        let pos = inner.entries.iter().position(|(k, _)| *k == key)?;
        let entry = inner.entries.remove(pos)?;
        let file = Arc::clone(&entry.1);
        inner.entries.push_back(entry);
        Some(file)
    }

    /// Keeps up to `bytes` of files instead of [`FLAT_CACHE_BYTES`].
    pub(crate) fn set_limit(&self, bytes: usize) {
        self.limit
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    fn max_bytes(&self) -> usize {
        match self.limit.load(std::sync::atomic::Ordering::Relaxed) {
            0 => FLAT_CACHE_BYTES,
            n => n,
        }
    }

    /// The size of a file generated before, if any.
    pub(crate) fn known_size(&self, day: Date, generation: u32) -> Option<u64> {
        lock(&self.inner).sizes.get(&(day, generation)).copied()
    }

    /// The file of `day` at `generation`, generated (blocking) if not cached.
    pub(crate) fn get_or_generate(
        &self,
        day: Date,
        generation: u32,
        make: impl FnOnce() -> DayFile,
    ) -> Arc<DayFile> {
        let key = (day, generation);
        if let Some(f) = self.cached(key) {
            return f;
        }
        let _one_at_a_time = lock(&self.generating);
        if let Some(f) = self.cached(key) {
            return f;
        }
        let file = Arc::new(make());
        let mut inner = lock(&self.inner);
        inner.sizes.insert(key, file.body.len() as u64);
        inner.bytes += file.body.len();
        inner.entries.push_back((key, Arc::clone(&file)));
        let max = self.max_bytes();
        while inner.bytes > max && inner.entries.len() > 1 {
            if let Some((_, old)) = inner.entries.pop_front() {
                inner.bytes -= old.body.len();
            }
        }
        file
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use jiff::civil::date;
    use std::io::Read;

    #[test]
    fn numbers_parse_back_exactly() {
        for x in [
            200.5,
            200.0,
            0.1 + 0.2,
            1e-7,
            12345.678901,
            3.0e16,
            1.0 / 3.0,
        ] {
            let mut out = Vec::new();
            push_f64(&mut out, x);
            let s = String::from_utf8(out).unwrap();
            assert_eq!(s.parse::<f64>().unwrap().to_bits(), x.to_bits(), "{s}");
        }
        let mut out = Vec::new();
        push_f64(&mut out, 200.0);
        push_volume(&mut out, 1_029_145.0);
        push_volume(&mut out, 12.5);
        assert_eq!(out, b"200102914512.5");
    }

    #[test]
    fn rows_are_in_the_flat_file_column_order() {
        let r = Row {
            t: 1_714_032_000_000,
            o: 200.29,
            h: 200.63,
            l: 200.29,
            c: 200.5,
            v: 4930.0,
            vw: 200.4,
            n: 129,
        };
        let mut out = Vec::new();
        push_row(&mut out, "AAPL", &r, 0);
        push_row(&mut out, "AAPL", &r, 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "AAPL,4930,200.29,200.5,200.63,200.29,1714032000000000000,129\n\
             AAPL,4932,200.29,200.5,200.63,200.29,1714032000000000000,129\n"
        );
    }

    #[test]
    fn a_day_file_is_gzip_csv_sorted_with_the_header() {
        let cfg = SandboxConfig {
            today: date(2024, 6, 28),
            ..SandboxConfig::default()
        };
        let universe = vec!["AAPL".to_string(), "MSFT".to_string()];
        let gz = generate(date(2024, 6, 3), 0, &universe, &cfg);
        let mut text = String::new();
        GzDecoder::new(&gz[..]).read_to_string(&mut text).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(FLAT_CSV_HEADER));
        let keys: Vec<(String, i64)> = lines
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[0].to_string(), f[6].parse().unwrap())
            })
            .collect();
        assert!(keys.len() > 500);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        // The same inputs give the same bytes.
        assert_eq!(gz, generate(date(2024, 6, 3), 0, &universe, &cfg));
    }

    #[test]
    fn etags_are_quoted_hex_and_change_with_generation() {
        let a = etag(7, date(2025, 1, 3), 0);
        assert_eq!(a.len(), 34);
        assert!(a.starts_with('"') && a.ends_with('"'));
        assert!(a[1..33].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, etag(7, date(2025, 1, 3), 0));
        assert_ne!(a, etag(7, date(2025, 1, 3), 1));
        assert_ne!(a, etag(8, date(2025, 1, 3), 0));
    }

    #[test]
    fn the_cache_evicts_the_least_recently_used_and_remembers_sizes() {
        let c = DayCache::default();
        let mk = |n: usize| {
            move || DayFile {
                body: Bytes::from(vec![0u8; n]),
                etag: String::new(),
                last_modified: 0,
            }
        };
        let big = FLAT_CACHE_BYTES / 2 + 1;
        c.get_or_generate(date(2025, 1, 2), 0, mk(big));
        c.get_or_generate(date(2025, 1, 3), 0, mk(10));
        c.get_or_generate(date(2025, 1, 6), 0, mk(big));
        assert!(c.cached((date(2025, 1, 2), 0)).is_none());
        assert!(c.cached((date(2025, 1, 3), 0)).is_some());
        assert_eq!(c.known_size(date(2025, 1, 2), 0), Some(big as u64));
    }
}
