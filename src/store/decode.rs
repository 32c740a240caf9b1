//! Parquet bar file (on disk or in memory) → [`Bars`], for merging a partial year and
//! for `read_bars`.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use bytes::{Buf, Bytes};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, Length};

use crate::bars::Bars;
use crate::store::error::StoreError;
use crate::store::schema::{col, timestamp_type};

/// A bar file read back: its bars and its key-value metadata.
#[derive(Debug, Default)]
pub struct StoredFile {
    /// The bars, in file order.
    pub bars: Bars,
    /// The footer's key-value metadata.
    pub metadata: HashMap<String, String>,
}

/// Reads the footer key-value metadata of a bar file.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>, StoreError> {
    let file = File::open(path).map_err(|e| StoreError::io("open", path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| StoreError::parquet("read", path, e))?;
    Ok(kv_of(&builder))
}

fn kv_of<T: ChunkReader>(builder: &ParquetRecordBatchReaderBuilder<T>) -> HashMap<String, String> {
    builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .filter_map(|kv| kv.value.as_ref().map(|v| (kv.key.clone(), v.clone())))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a whole bar file.
pub fn read_file(path: &Path) -> Result<StoredFile, StoreError> {
    let file = File::open(path).map_err(|e| StoreError::io("open", path, e))?;
    read_from(file, path)
}

/// Reads a whole bar file held in memory (an S3 object's body); `name` names it in
/// errors.
pub fn read_bytes(bytes: Bytes, name: &Path) -> Result<StoredFile, StoreError> {
    read_from(bytes, name)
}

fn read_from<T: ChunkReader + 'static>(input: T, path: &Path) -> Result<StoredFile, StoreError> {
    let err = |e: parquet::errors::ParquetError| StoreError::parquet("read", path, e);
    let builder = ParquetRecordBatchReaderBuilder::try_new(input).map_err(err)?;
    let metadata = kv_of(&builder);
    let rows = builder.metadata().file_metadata().num_rows().max(0) as usize;
    let reader = builder
        .with_batch_size(rows.clamp(1, 1 << 20))
        .build()
        .map_err(err)?;
    let mut bars = Bars::with_capacity(rows);
    for batch in reader {
        let batch = batch.map_err(|e| StoreError::parquet("read", path, e))?;
        append_batch(&mut bars, &batch, path)?;
    }
    Ok(StoredFile { bars, metadata })
}

/// Reads only the timestamp column of a bar file (Unix ms, in file order): what a
/// thorough check of a file's order needs, without decoding its prices.
pub fn read_timestamps(path: &Path) -> Result<Vec<i64>, StoreError> {
    let file = File::open(path).map_err(|e| StoreError::io("open", path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| StoreError::parquet("read", path, e))?;
    timestamps_of(builder, path)
}

/// [`read_timestamps`] of a file known by its footer `meta` and the bytes of its
/// timestamp column chunks (an S3 object read by ranges: see [`timestamp_ranges`]);
/// `name` names it in errors.
pub fn read_timestamps_in(
    meta: ParquetMetaData,
    chunks: ByteRanges,
    name: &Path,
) -> Result<Vec<i64>, StoreError> {
    let err = |e: parquet::errors::ParquetError| StoreError::parquet("read", name, e);
    let meta =
        ArrowReaderMetadata::try_new(Arc::new(meta), ArrowReaderOptions::default()).map_err(err)?;
    timestamps_of(
        ParquetRecordBatchReaderBuilder::new_with_metadata(chunks, meta),
        name,
    )
}

/// The byte ranges of the timestamp column's chunks in the file of footer `meta`, one
/// per row group: all [`read_timestamps_in`] reads.
pub fn timestamp_ranges(meta: &ParquetMetaData) -> Vec<std::ops::Range<u64>> {
    meta.row_groups()
        .iter()
        .flat_map(|rg| rg.columns())
        .filter(|c| c.column_descr().name() == col::TIMESTAMP)
        .map(|c| {
            let (start, len) = c.byte_range();
            start..start + len
        })
        .collect()
}

fn timestamps_of<T: ChunkReader + 'static>(
    builder: ParquetRecordBatchReaderBuilder<T>,
    path: &Path,
) -> Result<Vec<i64>, StoreError> {
    let err = |e: parquet::errors::ParquetError| StoreError::parquet("read", path, e);
    let rows = builder.metadata().file_metadata().num_rows().max(0) as usize;
    let mask = ProjectionMask::columns(builder.parquet_schema(), [col::TIMESTAMP]);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(rows.clamp(1, 1 << 20))
        .build()
        .map_err(err)?;
    let mut out = Vec::with_capacity(rows);
    for batch in reader {
        let batch = batch.map_err(|e| StoreError::parquet("read", path, e))?;
        let ts = batch
            .column_by_name(col::TIMESTAMP)
            .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
            .ok_or_else(|| StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("column '{}' is missing or of another type", col::TIMESTAMP),
            })?;
        out.extend_from_slice(ts.values());
    }
    Ok(out)
}

/// Some byte ranges of a file `len` bytes long, as a Parquet reader's input: a read
/// outside them is an error (so a reader given a file's footer and one column's chunks
/// can read that column and nothing else).
#[derive(Debug, Clone)]
pub struct ByteRanges {
    len: u64,
    parts: Vec<(u64, Bytes)>,
}

impl ByteRanges {
    /// `parts` are (offset, bytes) of a file `len` bytes long.
    pub fn new(len: u64, parts: Vec<(u64, Bytes)>) -> ByteRanges {
        ByteRanges { len, parts }
    }

    /// The held bytes `start..start + length`, if one part holds them all.
    fn slice(&self, start: u64, length: u64) -> parquet::errors::Result<Bytes> {
        self.parts
            .iter()
            .find(|(at, b)| *at <= start && start + length <= at + b.len() as u64)
            .map(|(at, b)| b.slice((start - at) as usize..(start - at + length) as usize))
            .ok_or_else(|| {
                parquet::errors::ParquetError::General(format!(
                    "bytes {start}..{} were not read",
                    start + length
                ))
            })
    }
}

impl Length for ByteRanges {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for ByteRanges {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let (at, part) = self
            .parts
            .iter()
            .find(|(at, b)| *at <= start && start < at + b.len() as u64)
            .ok_or_else(|| {
                parquet::errors::ParquetError::General(format!("bytes from {start} were not read"))
            })?;
        Ok(part.slice((start - at) as usize..).reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, length as u64)
    }
}

/// Appends one batch in the store schema to `bars`.
fn append_batch(bars: &mut Bars, batch: &RecordBatch, path: &Path) -> Result<(), StoreError> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("column '{name}' is missing"),
            })
    };
    let wrong = |name: &str, got: &dyn Array| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("column '{name}' has type {}", got.data_type()),
    };
    let ts = column(col::TIMESTAMP)?;
    if ts.data_type() != &timestamp_type() {
        return Err(wrong(col::TIMESTAMP, ts));
    }
    let ts = ts.as_primitive::<TimestampMillisecondType>();
    bars.timestamp.extend_from_slice(ts.values());
    for (name, out) in [
        (col::OPEN, &mut bars.open),
        (col::HIGH, &mut bars.high),
        (col::LOW, &mut bars.low),
        (col::CLOSE, &mut bars.close),
        (col::VOLUME, &mut bars.volume),
    ] {
        let a = column(name)?;
        let a = a
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| wrong(name, a))?;
        out.extend_from_slice(a.values());
    }
    let vwap = column(col::VWAP)?;
    let vwap = vwap
        .as_primitive_opt::<Float64Type>()
        .ok_or_else(|| wrong(col::VWAP, vwap))?;
    bars.vwap.extend(vwap.iter());
    let n = column(col::TRANSACTIONS)?;
    let n = n
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| wrong(col::TRANSACTIONS, n))?;
    bars.transactions.extend(n.iter());
    let otc = column(col::OTC)?;
    let otc = otc.as_boolean_opt().ok_or_else(|| wrong(col::OTC, otc))?;
    bars.otc.extend(otc.iter().map(|v| v.unwrap_or(false)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::DateRange;
    use crate::store::footer::{TAIL_GUESS, Tail, first_take, parse_tail};
    use crate::store::{Provenance, encode_parquet};

    #[test]
    fn the_timestamps_read_from_the_footer_and_their_chunks_alone() {
        let ts: Vec<i64> = (0..5000).map(|i| 1_700_000_000_000 + i * 60_000).collect();
        let bars = crate::bars::flat_bars(ts.clone());
        let range = DateRange::parse("2023-11-14", "2023-12-31").unwrap();
        let mut file = Vec::new();
        encode_parquet("AAPL", &bars, &Provenance::now(true, range), &mut file).unwrap();
        let len = file.len() as u64;
        let take = first_take(len, TAIL_GUESS);
        let Ok(Tail::Meta(meta)) = parse_tail(&file[(len - take) as usize..], len) else {
            panic!("the footer fits in the first read");
        };
        let file = Bytes::from(file);
        let chunks: Vec<(u64, Bytes)> = timestamp_ranges(&meta)
            .into_iter()
            .map(|r| (r.start, file.slice(r.start as usize..r.end as usize)))
            .collect();
        let covered: u64 = chunks.iter().map(|(_, b)| b.len() as u64).sum();
        assert!(covered < len / 2, "{covered} of {len} bytes");
        let name = Path::new("s3://b/x.parquet");
        let got = read_timestamps_in(meta.clone(), ByteRanges::new(len, chunks), name).unwrap();
        assert_eq!(got, ts);
        // Without the chunks, the read fails instead of reading elsewhere.
        let e = read_timestamps_in(meta, ByteRanges::new(len, Vec::new()), name).unwrap_err();
        assert!(e.to_string().contains("were not read"), "{e}");
    }
}
