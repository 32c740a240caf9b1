//! A decoded day on local disk, by ticker: the flat-file route's staging.
//!
//! A day's file holds every ticker; a ticker-year file needs ~252 days. Writing each
//! ticker-year once means keeping the days somewhere in between, and a whole-market
//! year does not fit in memory. So each day is decoded once into a staged file, one
//! zstd block per ticker with an index at the end, and the worker later reads one
//! ticker's blocks across the year's days (positioned reads, no lock).
//!
//! Layout: `BSSTAGE4`, the blocks, the JSON index, then the index's offset and
//! length (u64 LE) and `BSSTGEND`. A file is written under a temporary name and
//! renamed, and opened only when its trailer and index are whole, so a kill leaves
//! either a usable file or one that is staged again. No fsync: staging is a cache, and
//! nothing is recorded complete until the store has written (and synced) the bars.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::bars::Bars;

use super::csv::{DayBars, DecodeError, decode_runs_gz};

/// Version 4: blocks as [`super::block`] encodes them (columns only as wide as their
/// widest word), written as the day streams in (a file of an older version is staged
/// again, never misread).
const MAGIC: &[u8; 8] = b"BSSTAGE4";
const END: &[u8; 8] = b"BSSTGEND";
const TRAILER: u64 = 24;
/// zstd level of the blocks. The block encoding does most of the work: on the
/// benchmark's market, level 1 packs the blocks as small as level 3 (within 0.5%) and
/// costs less CPU (see BENCHMARKS.md, "Flat files").
const LEVEL: i32 = 1;

/// Where a staged day came from, and where each ticker's block is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageIndex {
    /// The trading day, `YYYY-MM-DD`.
    pub day: String,
    /// The object's key in the bucket.
    pub key: String,
    /// The object's ETag when it was downloaded.
    pub etag: String,
    /// Rows in the day's file (every ticker).
    pub rows: u64,
    /// `ticker → [offset, length, bars]`.
    pub blocks: HashMap<String, [u64; 3]>,
}

/// A staged day, open for reading.
#[derive(Debug)]
pub struct StagedDay {
    file: File,
    /// Its index.
    pub index: StageIndex,
}

/// The staged file of `day` in `dir`.
pub fn stage_path(dir: &Path, day: Date) -> PathBuf {
    dir.join(format!("{day}.stage"))
}

/// Removes the temporary files of writers that died (killed mid-write), so repeated
/// kills do not pile up half-staged days; a live writer's file is left alone.
pub fn clean_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".tmp"))
            .and_then(|n| n.rsplit_once('.'))
            .and_then(|(_, pid)| pid.parse::<i32>().ok())
        else {
            continue;
        };
        // kill(pid, 0) fails with ESRCH only when no such process exists.
        // SAFETY: signal 0 sends nothing; the call only checks the pid.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Why a day could not be staged while it was decoded.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The file is damaged or not a minute-aggregates file.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A ticker came back after other tickers: the file is not sorted by ticker, and a
    /// staged file holds one block per ticker. Decode the day whole instead.
    #[error("the file is not sorted by ticker")]
    Unsorted,
    /// Writing the staged file failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Decodes the gzip day file `gz` and stages it in one pass: each ticker's block is
/// written as soon as its rows end (Massive's files are sorted by ticker), so the
/// day's bars are never held in memory. Fails with [`StreamError::Unsorted`] for a
/// file that is not sorted; [`write_day`] of [`super::csv::decode_day`] stages it.
pub fn stage_day(
    dir: &Path,
    day: Date,
    source: (&str, &str),
    gz: &[u8],
    keep: &dyn Fn(&str) -> bool,
) -> Result<PathBuf, StreamError> {
    let mut out = DayWriter::create(dir, day)?;
    let rows = decode_runs_gz(gz, keep, &mut |ticker: &str, bars: &Bars| match out
        .block(ticker, bars)?
    {
        true => Ok(()),
        false => Err(StreamError::Unsorted),
    })?;
    Ok(out.finish(source, rows)?)
}

/// Writes `bars` as the staged file of `day`, replacing any older one.
pub fn write_day(
    dir: &Path,
    day: Date,
    key: &str,
    etag: &str,
    bars: &DayBars,
) -> io::Result<PathBuf> {
    let mut out = DayWriter::create(dir, day)?;
    for (ticker, b) in &bars.tickers {
        if !out.block(ticker, b)? {
            return Err(io::Error::other(format!("{ticker} is staged twice")));
        }
    }
    out.finish((key, etag), bars.rows)
}

/// A staged file being written block by block under its temporary name (removed on
/// drop unless finished).
struct DayWriter {
    day: Date,
    path: PathBuf,
    tmp: PathBuf,
    out: io::BufWriter<File>,
    offset: u64,
    blocks: HashMap<String, [u64; 3]>,
    /// The block being written, before and after zstd (reused from block to block).
    raw: Vec<u8>,
    packed: Vec<u8>,
    encoder: super::block::Encoder,
    /// One context for the day: creating one per block costs more than a block.
    zstd: zstd::bulk::Compressor<'static>,
    finished: bool,
}

impl DayWriter {
    fn create(dir: &Path, day: Date) -> io::Result<DayWriter> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{day}.stage.{}.tmp", std::process::id()));
        let file = File::create(&tmp)?;
        let mut w = DayWriter {
            day,
            path: stage_path(dir, day),
            tmp,
            out: io::BufWriter::with_capacity(1 << 20, file),
            offset: MAGIC.len() as u64,
            blocks: HashMap::new(),
            raw: Vec::new(),
            packed: Vec::new(),
            encoder: super::block::Encoder::default(),
            zstd: zstd::bulk::Compressor::new(LEVEL)?,
            finished: false,
        };
        w.out.write_all(MAGIC)?;
        Ok(w)
    }

    /// Appends the block of `ticker`; false (and nothing written) when it has one.
    fn block(&mut self, ticker: &str, bars: &Bars) -> io::Result<bool> {
        if self.blocks.contains_key(ticker) {
            return Ok(false);
        }
        self.raw.clear();
        self.encoder.encode(bars, &mut self.raw);
        self.packed.clear();
        self.packed
            .reserve(zstd::zstd_safe::compress_bound(self.raw.len()));
        self.zstd.compress_to_buffer(&self.raw, &mut self.packed)?;
        self.out.write_all(&self.packed)?;
        let len = self.packed.len() as u64;
        self.blocks
            .insert(ticker.to_string(), [self.offset, len, bars.len() as u64]);
        self.offset += len;
        Ok(true)
    }

    /// Writes the index and trailer and renames the file into place.
    fn finish(mut self, (key, etag): (&str, &str), rows: u64) -> io::Result<PathBuf> {
        let index = StageIndex {
            day: self.day.to_string(),
            key: key.to_string(),
            etag: etag.to_string(),
            rows,
            blocks: std::mem::take(&mut self.blocks),
        };
        let json = serde_json::to_vec(&index).map_err(io::Error::other)?;
        self.out.write_all(&json)?;
        self.out.write_all(&self.offset.to_le_bytes())?;
        self.out.write_all(&(json.len() as u64).to_le_bytes())?;
        self.out.write_all(END)?;
        self.out.flush()?;
        std::fs::rename(&self.tmp, &self.path)?;
        self.finished = true;
        Ok(self.path.clone())
    }
}

impl Drop for DayWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl StagedDay {
    /// Opens a staged file; `Ok(None)` when it is absent or incomplete (stage again).
    pub fn open(path: &Path) -> io::Result<Option<StagedDay>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len < MAGIC.len() as u64 + TRAILER {
            return Ok(None);
        }
        let mut trailer = [0u8; TRAILER as usize];
        file.read_exact_at(&mut trailer, len - TRAILER)?;
        let word = |i: usize| u64::from_le_bytes(trailer[i..i + 8].try_into().unwrap_or_default());
        let (at, size) = (word(0), word(8));
        if &trailer[16..] != END || at.checked_add(size) != Some(len - TRAILER) {
            return Ok(None);
        }
        let mut magic = [0u8; 8];
        file.read_exact_at(&mut magic, 0)?;
        if &magic != MAGIC {
            return Ok(None); // another version's layout: stage again
        }
        let mut json = vec![0u8; size as usize];
        file.read_exact_at(&mut json, at)?;
        Ok(serde_json::from_slice(&json)
            .ok()
            .map(|index| StagedDay { file, index }))
    }

    /// How many bars `ticker` has that day.
    pub fn bars_of(&self, ticker: &str) -> usize {
        self.index.blocks.get(ticker).map_or(0, |b| b[2] as usize)
    }

    /// The bars of `ticker` that day (empty when it had none).
    pub fn read(&self, ticker: &str) -> io::Result<Bars> {
        let mut out = Bars::default();
        self.read_into(ticker, &mut out)?;
        Ok(out)
    }

    /// Appends the bars of `ticker` that day to `out` (nothing when it had none).
    pub fn read_into(&self, ticker: &str, out: &mut Bars) -> io::Result<()> {
        let Some(&[offset, len, rows]) = self.index.blocks.get(ticker) else {
            return Ok(());
        };
        let whole = BUFFERS.with_borrow_mut(|(zstd, packed, raw, decoder)| {
            let zstd = match zstd {
                Some(z) => z,
                None => zstd.insert(zstd::bulk::Decompressor::new()?),
            };
            packed.resize(len as usize, 0);
            self.file.read_exact_at(packed, offset)?;
            raw.clear();
            raw.reserve(super::block::max_block_len(rows as usize));
            zstd.decompress_to_buffer(&packed[..], raw)?;
            io::Result::Ok(decoder.decode_into(raw, rows as usize, out))
        })?;
        if whole {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("staged block of {ticker} on {} is damaged", self.index.day),
        ))
    }
}

/// A zstd context (made on first use), the packed block, the raw block, the block
/// decoder's scratch.
type ReadBuffers = (
    Option<zstd::bulk::Decompressor<'static>>,
    Vec<u8>,
    Vec<u8>,
    super::block::Decoder,
);

thread_local! {
    /// A reader thread's zstd context and buffers, reused from block to block: a
    /// piece reads one small block per day, and a fresh context per block cost more
    /// than decompressing it.
    static BUFFERS: std::cell::RefCell<ReadBuffers> = std::cell::RefCell::default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bars::Bar;

    fn day() -> DayBars {
        let mut a = Bars::default();
        for i in 0..500 {
            a.push(Bar {
                timestamp: 1_735_826_400_000 + i * 60_000,
                open: 1.0 + i as f64 / 100.0,
                high: 2.0,
                low: 0.5,
                close: 1.5,
                volume: 100.0 + i as f64,
                vwap: None,
                transactions: (i % 3 != 0).then_some(i),
                otc: false,
            });
        }
        DayBars {
            tickers: vec![("A".into(), a), ("BRK.A".into(), Bars::default())],
            rows: 500,
        }
    }

    #[test]
    fn a_staged_day_reads_back_every_ticker_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let d = Date::constant(2025, 1, 2);
        let path = write_day(dir.path(), d, "k/2025-01-02.csv.gz", "\"e1\"", &day()).unwrap();
        let staged = StagedDay::open(&path).unwrap().unwrap();
        assert_eq!(staged.index.day, "2025-01-02");
        assert_eq!(staged.index.etag, "\"e1\"");
        assert_eq!(staged.read("A").unwrap(), day().tickers[0].1);
        assert!(staged.read("BRK.A").unwrap().is_empty());
        assert!(staged.read("ZZZ").unwrap().is_empty());
    }

    fn gz(text: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    const HEADER: &str = "ticker,volume,open,close,high,low,window_start,transactions\n";

    #[test]
    fn a_sorted_day_streamed_reads_back_as_decoded_whole() {
        let text = format!(
            "{HEADER}A,1,1,1,1,1,120000000000,1\nA,2,1,1,1,1,60000000000,1\n\
             B,3,2.5,2.5,2.5,2.5,0,\nC,4,1,1,1,1,0,1\n"
        );
        let (dir, d) = (tempfile::tempdir().unwrap(), Date::constant(2025, 1, 2));
        let keep = |t: &str| t != "C";
        let path = stage_day(dir.path(), d, ("k", "e"), &gz(&text), &keep).unwrap();
        let staged = StagedDay::open(&path).unwrap().unwrap();
        let whole = super::super::csv::decode_day(&gz(&text), &keep).unwrap();
        assert_eq!((staged.index.rows, staged.index.blocks.len()), (4, 2));
        for (ticker, bars) in &whole.tickers {
            assert_eq!(&staged.read(ticker).unwrap(), bars);
        }
        assert!(staged.read("C").unwrap().is_empty());
    }

    #[test]
    fn an_unsorted_day_is_refused_and_leaves_nothing() {
        let text = format!("{HEADER}A,1,1,1,1,1,0,1\nB,1,1,1,1,1,0,1\nA,1,1,1,1,1,60000000000,1\n");
        let (dir, d) = (tempfile::tempdir().unwrap(), Date::constant(2025, 1, 2));
        let err = stage_day(dir.path(), d, ("k", "e"), &gz(&text), &|_| true).unwrap_err();
        assert!(matches!(err, StreamError::Unsorted), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn leftovers_of_dead_writers_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir
            .path()
            .join(format!(".2025-01-02.stage.{}.tmp", i32::MAX - 7));
        let live = dir
            .path()
            .join(format!(".2025-01-03.stage.{}.tmp", std::process::id()));
        let other = dir.path().join("2025-01-02.stage");
        for p in [&dead, &live, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        clean_stale(dir.path());
        assert!(!dead.exists());
        assert!(live.exists() && other.exists());
    }

    #[test]
    fn a_cut_short_file_is_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let d = Date::constant(2025, 1, 2);
        let path = write_day(dir.path(), d, "k", "e", &day()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 8, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(StagedDay::open(&path).unwrap().is_none(), "cut at {cut}");
        }
        assert!(
            StagedDay::open(&dir.path().join("absent"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_file_of_another_layout_version_is_staged_again() {
        let dir = tempfile::tempdir().unwrap();
        let d = Date::constant(2025, 1, 2);
        let path = write_day(dir.path(), d, "k", "e", &day()).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[..8].copy_from_slice(b"BSSTAGE1");
        std::fs::write(&path, &bytes).unwrap();
        assert!(StagedDay::open(&path).unwrap().is_none());
    }
}
