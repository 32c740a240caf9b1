//! Bars → Arrow RecordBatch → Parquet bytes: the hot path of every write.
//!
//! Columns are handed to Arrow as whole buffers, no builders: moved when the caller
//! gives the bars up (the store's writes of fetched pieces), else one memcpy each.
//! The ticker is not a column: it is the `ticker=` folder and the footer's metadata.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, TimestampMillisecondArray,
};
use arrow_buffer::{ArrowNativeType, BooleanBuffer, NullBuffer, ScalarBuffer};
use parquet::arrow::ArrowWriter;

use crate::bars::{Bars, Optional};
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
/// the bars in errors). The columns are copied.
pub fn bars_to_batch(ticker: &str, bars: &Bars) -> Result<RecordBatch, StoreError> {
    batch_of(ticker, Cow::Borrowed(bars))
}

/// The batch of [`bars_to_batch`]. Owned bars give their columns to Arrow as they
/// are (no copy, no new memory to fault in); only otc is converted (to Arrow's bits).
fn batch_of(ticker: &str, bars: Cow<'_, Bars>) -> Result<RecordBatch, StoreError> {
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
    let otc = BooleanArray::new(BooleanBuffer::collect_bool(n, |i| bars.otc[i]), None);
    let b = bars.into_owned();
    let timestamp = TimestampMillisecondArray::new(ScalarBuffer::from(b.timestamp), None);
    let mut columns: Vec<ArrayRef> = vec![Arc::new(timestamp.with_timezone("UTC"))];
    for values in [b.open, b.high, b.low, b.close, b.volume] {
        columns.push(Arc::new(Float64Array::new(
            ScalarBuffer::from(values),
            None,
        )));
    }
    let (values, valid) = arrow_parts(b.vwap);
    columns.push(Arc::new(Float64Array::new(values, valid)));
    let (values, valid) = arrow_parts(b.transactions);
    columns.push(Arc::new(Int64Array::new(values, valid)));
    columns.push(Arc::new(otc));
    RecordBatch::try_new(bars_schema(), columns)
        .map_err(|e| StoreError::Invalid(format!("cannot build Arrow batch for {ticker}: {e}")))
}

/// An optional column in Arrow's layout: its values as they are, and their validity,
/// `None` when every value is present.
fn arrow_parts<T: ArrowNativeType>(column: Optional<T>) -> (ScalarBuffer<T>, Option<NullBuffer>) {
    let (values, present) = column.into_parts();
    let valid = present
        .filter(|p| p.contains(&false))
        .map(|p| NullBuffer::new(BooleanBuffer::from(p)));
    (ScalarBuffer::from(values), valid)
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
    encode_to(
        ticker,
        Cow::Borrowed(bars),
        provenance,
        out,
        Path::new("<output>"),
    )
}

/// [`encode_parquet`] taking the bars, so their columns need not be copied: what the
/// store does with the bars of a fetched piece.
pub fn encode_parquet_owned<W: Write + Send>(
    ticker: &str,
    bars: Bars,
    provenance: &Provenance,
    out: W,
) -> Result<Encoded, StoreError> {
    encode_to(
        ticker,
        Cow::Owned(bars),
        provenance,
        out,
        Path::new("<output>"),
    )
}

/// [`encode_parquet`] naming `path` in errors; owned bars are not copied.
pub(crate) fn encode_to<W: Write + Send>(
    ticker: &str,
    bars: Cow<'_, Bars>,
    provenance: &Provenance,
    out: W,
    path: &Path,
) -> Result<Encoded, StoreError> {
    let rows = bars.len();
    let batch = batch_of(ticker, bars)?;
    let props = writer_properties(ticker, provenance);
    let err = |e| StoreError::parquet("write", path, e);
    let mut writer = ArrowWriter::try_new(out, bars_schema(), Some(props)).map_err(err)?;
    writer.write(&batch).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(Encoded {
        rows,
        bytes: writer.bytes_written(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::DateRange;

    #[test]
    fn owned_bars_encode_to_the_same_file_as_borrowed_ones() {
        let mut gaps = crate::bars::flat_bars((0..5_000).map(|i| 1_700_000_000_000 + i * 60_000));
        for i in (0..gaps.len()).step_by(7) {
            gaps.vwap.set(i, Some(i as f64 / 3.0));
            gaps.transactions.set(i, Some(i as i64));
            gaps.otc[i] = true;
        }
        gaps.volume
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (i % 977) as f64);
        // Every vwap and trade count present: no validity bitmap.
        let mut full = gaps.clone();
        full.vwap = gaps.vwap.iter().map(|v| Some(v.unwrap_or(2.5))).collect();
        full.transactions = gaps
            .transactions
            .iter()
            .map(|n| Some(n.unwrap_or(3)))
            .collect();
        assert!(full.vwap.presence().is_none() && full.transactions.presence().is_none());
        // The same values after a column had absent ones: the same file.
        let mut refilled = gaps.clone();
        for i in 0..gaps.len() {
            refilled.vwap.set(i, full.vwap.get(i));
            refilled.transactions.set(i, full.transactions.get(i));
        }
        let range = DateRange::parse("2023-11-14", "2023-12-31").unwrap();
        let provenance = Provenance::now(true, range);
        for bars in [gaps, full.clone()] {
            let (mut borrowed, mut owned) = (Vec::new(), Vec::new());
            let a = encode_parquet("AAPL", &bars, &provenance, &mut borrowed).unwrap();
            let b = encode_parquet_owned("AAPL", bars.clone(), &provenance, &mut owned).unwrap();
            assert_eq!(a, b);
            assert!(borrowed == owned, "the two paths wrote different bytes");
            let back = crate::store::decode::read_bytes(owned.into(), Path::new("owned")).unwrap();
            assert_eq!(back.bars, bars);
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode_parquet("AAPL", &full, &provenance, &mut a).unwrap();
        encode_parquet_owned("AAPL", refilled, &provenance, &mut b).unwrap();
        assert!(a == b, "a column refilled wrote different bytes");
    }
}
