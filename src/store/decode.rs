//! Parquet bar file (on disk or in memory) → [`Bars`], for merging a partial year and
//! for `read_bars`.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::ChunkReader;

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
    let err = |e: parquet::errors::ParquetError| StoreError::parquet("read", path, e);
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(err)?;
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
