//! A bar file's footer, read by hand: one `pread` of the file's tail, decoded with
//! parquet's own metadata decoder. `status` reads 60,000 footers this way, and a resume
//! reads one when a file's size differs from its record: `SerializedFileReader` would do
//! the same work with three `stat`s, two `dup`s and two seeks more per file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use parquet::file::FOOTER_SIZE;
use parquet::file::metadata::{FooterTail, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;

use crate::store::error::StoreError;
use crate::store::schema::col;

/// Bytes read from a file's end in one go: a barsmith footer is ~2.5 KB, so one read
/// almost always holds it whole (a bigger one takes a second read).
pub(crate) const TAIL_GUESS: u64 = 8 * 1024;

/// What a footer says about a bar file, and the file's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Footer {
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Rows, from the footer.
    pub rows: u64,
    /// Smallest and largest timestamp (Unix ms) from the column statistics, if written.
    pub span: Option<(i64, i64)>,
    /// True for the first layout: a `ticker` column beside the `ticker=` folder, which
    /// pandas and `pq.read_table` cannot merge (`barsmith upgrade` rewrites it).
    pub legacy_ticker: bool,
}

/// The footer of the bar file at `path`.
pub(crate) fn read_path(path: &Path) -> Result<Footer, StoreError> {
    let file = File::open(path).map_err(|e| StoreError::io("open", path, e))?;
    let bytes = file
        .metadata()
        .map_err(|e| StoreError::io("stat", path, e))?
        .len();
    let meta = read(&file, bytes, TAIL_GUESS).map_err(|e| StoreError::parquet("read", path, e))?;
    Ok(Footer::of(&meta, bytes))
}

impl Footer {
    /// What `meta`, the footer of a file of `bytes`, says.
    pub(crate) fn of(meta: &ParquetMetaData, bytes: u64) -> Footer {
        Footer {
            bytes,
            rows: meta.file_metadata().num_rows().max(0) as u64,
            span: timestamp_span(meta),
            legacy_ticker: meta
                .file_metadata()
                .schema_descr()
                .columns()
                .iter()
                .any(|c| c.name() == col::LEGACY_TICKER),
        }
    }
}

/// What the last bytes of a Parquet file hold: its metadata, or the length of the tail
/// that would (the footer is longer than the bytes given).
pub(crate) enum Tail {
    /// The decoded metadata.
    Meta(ParquetMetaData),
    /// Bytes from the end that hold the whole footer.
    Needs(u64),
}

/// Decodes the footer from `tail`, the last bytes of a file `len` bytes long.
pub(crate) fn parse_tail(tail: &[u8], len: u64) -> Result<Tail, String> {
    // "PAR1" + footer length + "PAR1" is the smallest possible tail.
    if len < 12 {
        return Err(format!("{len} bytes is too short for a Parquet file"));
    }
    if tail.len() < FOOTER_SIZE || tail.len() as u64 > len {
        return Err(format!("{} bytes of the end is not a footer", tail.len()));
    }
    let mut last = [0u8; FOOTER_SIZE];
    last.copy_from_slice(&tail[tail.len() - FOOTER_SIZE..]);
    let footer = FooterTail::try_new(&last).map_err(|e| e.to_string())?;
    if footer.is_encrypted_footer() {
        return Err("the footer is encrypted".into());
    }
    let meta_len = footer.metadata_length() as u64;
    let footer_len = meta_len + FOOTER_SIZE as u64;
    if footer_len + 4 > len {
        return Err(format!(
            "the footer claims {meta_len} bytes, more than the file"
        ));
    }
    if footer_len > tail.len() as u64 {
        return Ok(Tail::Needs(footer_len));
    }
    let meta = &tail[tail.len() - footer_len as usize..tail.len() - FOOTER_SIZE];
    ParquetMetaDataReader::decode_metadata(meta)
        .map(Tail::Meta)
        .map_err(|e| e.to_string())
}

/// How many bytes from the end to read first: `guess`, within the file.
pub(crate) fn first_take(len: u64, guess: u64) -> u64 {
    len.min(guess.max(FOOTER_SIZE as u64))
}

/// The metadata in the footer of `file`, `len` bytes long, reading the last `guess`
/// bytes first.
pub(crate) fn read(file: &File, len: u64, guess: u64) -> Result<ParquetMetaData, String> {
    let tail_of = |take: u64| -> Result<Vec<u8>, String> {
        let mut tail = vec![0; take as usize];
        file.read_exact_at(&mut tail, len - take)
            .map_err(|e| e.to_string())?;
        Ok(tail)
    };
    let take = first_take(len, guess);
    match parse_tail(&tail_of(take)?, len)? {
        Tail::Meta(meta) => Ok(meta),
        Tail::Needs(n) => match parse_tail(&tail_of(n)?, len)? {
            Tail::Meta(meta) => Ok(meta),
            Tail::Needs(_) => Err("the footer's length changed while it was read".into()),
        },
    }
}

/// The timestamp column's min and max over all row groups, when every row group has
/// them.
fn timestamp_span(meta: &ParquetMetaData) -> Option<(i64, i64)> {
    let mut span: Option<(i64, i64)> = None;
    for rg in meta.row_groups() {
        let chunk = rg
            .columns()
            .iter()
            .find(|c| c.column_descr().name() == col::TIMESTAMP)?;
        let Some(Statistics::Int64(s)) = chunk.statistics() else {
            return None;
        };
        let (lo, hi) = (*s.min_opt()?, *s.max_opt()?);
        span = Some(span.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::DateRange;
    use crate::store::{Provenance, encode_parquet};

    const T0: i64 = 1_700_000_000_000;

    fn file_of(rows: usize) -> (tempfile::NamedTempFile, u64) {
        let bars = crate::bars::flat_bars((0..rows).map(|i| T0 + i as i64 * 60_000));
        let range = DateRange::parse("2023-11-14", "2023-11-30").unwrap();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        encode_parquet(
            "AAPL",
            &bars,
            &Provenance::now(true, range),
            f.as_file_mut(),
        )
        .unwrap();
        let len = f.as_file().metadata().unwrap().len();
        (f, len)
    }

    #[test]
    fn the_footer_gives_rows_and_time_span_in_one_or_two_reads() {
        let (f, len) = file_of(1234);
        let rows = |m: ParquetMetaData| m.file_metadata().num_rows();
        assert_eq!(read(f.as_file(), len, TAIL_GUESS).map(rows), Ok(1234));
        // A tail too short for the footer takes a second read.
        assert_eq!(read(f.as_file(), len, 16).map(rows), Ok(1234));
        let footer = read_path(f.path()).unwrap();
        assert_eq!(
            footer,
            Footer {
                bytes: len,
                rows: 1234,
                span: Some((T0, T0 + 1233 * 60_000)),
                legacy_ticker: false,
            }
        );
    }

    #[test]
    fn a_truncated_or_foreign_file_is_an_error_not_a_panic() {
        let (f, len) = file_of(10);
        f.as_file().set_len(len - 1).unwrap();
        assert!(read(f.as_file(), len - 1, TAIL_GUESS).is_err());
        f.as_file().set_len(5).unwrap();
        assert!(read(f.as_file(), 5, TAIL_GUESS).is_err());
        std::fs::write(f.path(), b"hello, this is not parquet PAR1").unwrap();
        assert!(read_path(f.path()).is_err());
    }
}
