//! Bars → Arrow RecordBatch → Parquet bytes: the hot path of every write.
//!
//! Columns are handed to Arrow as whole buffers (one memcpy each, no builders). The
//! ticker is not a column: it is the `ticker=` folder and the footer's metadata.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, TimestampMillisecondArray,
};
use arrow_buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use parquet::arrow::ArrowWriter;

use crate::bars::Bars;
use crate::store::error::StoreError;
use crate::store::identity::Provenance;
use crate::store::schema::{bars_schema, writer_properties};

/// What [`encode_parquet`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// Rows written.
    pub rows: usize,
    /// Bytes written, footer included.
    pub bytes: usize,
}

/// The bars of `ticker` as one Arrow RecordBatch in the store schema (`ticker` names
/// the bars in errors).
pub fn bars_to_batch(ticker: &str, bars: &Bars) -> Result<RecordBatch, StoreError> {
    let n = bars.len();
    let lens = [
        bars.open.len(),
        bars.high.len(),
        bars.low.len(),
        bars.close.len(),
        bars.volume.len(),
        bars.vwap.len(),
        bars.transactions.len(),
        bars.otc.len(),
    ];
    if lens.iter().any(|&l| l != n) {
        return Err(StoreError::Invalid(format!(
            "bars of {ticker} have columns of different lengths ({n} timestamps, others {lens:?})"
        )));
    }
    let f64s = |v: &Vec<f64>| -> ArrayRef {
        Arc::new(Float64Array::new(
            ScalarBuffer::from(v.as_slice().to_vec()),
            None,
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMillisecondArray::new(ScalarBuffer::from(bars.timestamp.clone()), None)
                .with_timezone("UTC"),
        ),
        f64s(&bars.open),
        f64s(&bars.high),
        f64s(&bars.low),
        f64s(&bars.close),
        f64s(&bars.volume),
        Arc::new(Float64Array::new(
            bars.vwap.iter().map(|v| v.unwrap_or(0.0)).collect(),
            nulls(&bars.vwap),
        )),
        Arc::new(Int64Array::new(
            bars.transactions.iter().map(|v| v.unwrap_or(0)).collect(),
            nulls(&bars.transactions),
        )),
        Arc::new(BooleanArray::new(
            BooleanBuffer::collect_bool(n, |i| bars.otc[i]),
            None,
        )),
    ];
    RecordBatch::try_new(bars_schema(), columns)
        .map_err(|e| StoreError::Invalid(format!("cannot build Arrow batch for {ticker}: {e}")))
}

/// The validity of an optional column; `None` when every value is present.
fn nulls<T>(values: &[Option<T>]) -> Option<NullBuffer> {
    if values.iter().all(Option::is_some) {
        return None;
    }
    Some(NullBuffer::new(BooleanBuffer::collect_bool(
        values.len(),
        |i| values[i].is_some(),
    )))
}

/// Encodes the bars of `ticker` as one complete Parquet file into `out`: store schema,
/// ZSTD at [`ZSTD_LEVEL`](crate::store::schema::ZSTD_LEVEL), delta timestamps, page
/// statistics, sort key and provenance metadata, one row group. The bars are written
/// in the order given (the store passes them sorted).
pub fn encode_parquet<W: Write + Send>(
    ticker: &str,
    bars: &Bars,
    provenance: &Provenance,
    out: W,
) -> Result<Encoded, StoreError> {
    encode_to(ticker, bars, provenance, out, Path::new("<output>"))
}

/// [`encode_parquet`] naming `path` in errors.
pub(crate) fn encode_to<W: Write + Send>(
    ticker: &str,
    bars: &Bars,
    provenance: &Provenance,
    out: W,
    path: &Path,
) -> Result<Encoded, StoreError> {
    let batch = bars_to_batch(ticker, bars)?;
    let props = writer_properties(ticker, provenance);
    let err = |e| StoreError::parquet("write", path, e);
    let mut writer = ArrowWriter::try_new(out, bars_schema(), Some(props)).map_err(err)?;
    writer.write(&batch).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(Encoded {
        rows: bars.len(),
        bytes: writer.bytes_written(),
    })
}
