//! The Arrow schema of a bar file and the Parquet writer settings (see DESIGN, Storage).
//!
//! The partition columns `ticker` and `year` are not in the files: the `ticker=` and
//! `year=` folders give them, as Spark, Hive and pyarrow's `write_to_dataset` do. A file
//! column beside the folder is what broke `pandas.read_parquet(root)` and
//! `pq.read_table(root)` ("Field ticker has incompatible types: string vs dictionary").
//! A single file still says what it holds: its name is `TICKER_YEAR.parquet` and its
//! footer records `barsmith.ticker` and `barsmith.year`.
//!
//! `timestamp` is milliseconds spelled exactly "UTC"
//! (lossless for Polygon's `t`; never seconds, never INT96) and is written with
//! DELTA_BINARY_PACKED and no dictionary (~13 bytes per bar instead of ~16).

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::store::identity::Provenance;

/// Column names, in file order.
pub mod col {
    /// Start of the minute (Timestamp ms, UTC).
    pub const TIMESTAMP: &str = "timestamp";
    /// Open price (f64).
    pub const OPEN: &str = "open";
    /// High price (f64).
    pub const HIGH: &str = "high";
    /// Low price (f64).
    pub const LOW: &str = "low";
    /// Close price (f64).
    pub const CLOSE: &str = "close";
    /// Volume (f64).
    pub const VOLUME: &str = "volume";
    /// Volume-weighted average price (f64, nullable).
    pub const VWAP: &str = "vwap";
    /// Number of trades (i64, nullable).
    pub const TRANSACTIONS: &str = "transactions";
    /// OTC flag (bool).
    pub const OTC: &str = "otc";
    /// The ticker column of files written by barsmith 0.1 (now the `ticker=` folder
    /// only); `barsmith upgrade` rewrites such files.
    pub const LEGACY_TICKER: &str = "ticker";
}

/// Index of the `timestamp` column (the sort key).
pub const TIMESTAMP_INDEX: usize = 0;

/// Key-value metadata keys recorded in every file's footer.
pub mod meta {
    /// The ticker symbol (also the `ticker=` folder and the file name).
    pub const TICKER: &str = "barsmith.ticker";
    /// The calendar year (also the `year=` folder and the file name).
    pub const YEAR: &str = "barsmith.year";
    /// Data provider (`polygon`).
    pub const PROVIDER: &str = "barsmith.provider";
    /// Bar timespan (`minute`).
    pub const TIMESPAN: &str = "barsmith.timespan";
    /// `true` or `false`.
    pub const ADJUSTED: &str = "barsmith.adjusted";
    /// First requested New York date, `YYYY-MM-DD`.
    pub const REQUESTED_FROM: &str = "barsmith.requested_from";
    /// Last requested New York date, `YYYY-MM-DD`.
    pub const REQUESTED_TO: &str = "barsmith.requested_to";
    /// When the bars were fetched, RFC 3339 UTC.
    pub const FETCHED_AT: &str = "barsmith.fetched_at";
    /// barsmith version that wrote the file.
    pub const VERSION: &str = "barsmith.version";
    /// Where the bars came from: `rest`, `flatfiles`, or `flatfiles+rest` for a year
    /// filled by both routes.
    pub const SOURCE: &str = "barsmith.source";
    /// The flat files of a year's bars: `PREFIX|YYYY-MM-DD=ETAG,...` (one per day
    /// ingested from a file), so a republished file can be told from the one used.
    pub const FLAT_FILES: &str = "barsmith.flat_files";
}

/// ZSTD level used for every column.
///
/// 1, not 3: compression was the biggest part of the Parquet stage, and level 1 makes
/// that stage 18-28% cheaper in CPU for files 1-3% larger (measured on a 50,000-bar
/// page and on a ticker-year of sandbox bars: 9.0 vs 12.4 ms and 16.67 vs 16.39
/// bytes/bar; 8.1 vs 9.8 ms per 50k bars and 8.84 vs 8.60 bytes/bar; 12.41 vs 12.29
/// bytes/bar over the 20-ticker end-to-end run). Level 2 sat in between (9.7 ms,
/// 16.33 bytes/bar). The worker is CPU-bound and the bars are dense floats, so the
/// slower levels buy little. Readers do not care: any level decodes the same way.
pub const ZSTD_LEVEL: i32 = 1;

/// The Arrow timestamp type of the `timestamp` column.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The schema of every bar file (shared, built once).
pub fn bars_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(col::TIMESTAMP, timestamp_type(), false),
                Field::new(col::OPEN, DataType::Float64, false),
                Field::new(col::HIGH, DataType::Float64, false),
                Field::new(col::LOW, DataType::Float64, false),
                Field::new(col::CLOSE, DataType::Float64, false),
                Field::new(col::VOLUME, DataType::Float64, false),
                Field::new(col::VWAP, DataType::Float64, true),
                Field::new(col::TRANSACTIONS, DataType::Int64, true),
                Field::new(col::OTC, DataType::Boolean, false),
            ]))
        })
        .clone()
}

/// The key-value metadata of a file of `ticker`'s bars: what it holds and `provenance`.
/// The year is the requested range's (a file never spans two years).
pub fn provenance_metadata(ticker: &str, provenance: &Provenance) -> Vec<KeyValue> {
    let kv = |k: &str, v: String| KeyValue::new(k.to_string(), v);
    let mut out = vec![
        kv(meta::TICKER, ticker.to_string()),
        kv(meta::YEAR, provenance.requested.from.year().to_string()),
        kv(meta::PROVIDER, provenance.provider.clone()),
        kv(meta::TIMESPAN, provenance.timespan.clone()),
        kv(meta::ADJUSTED, provenance.adjusted.to_string()),
        kv(meta::REQUESTED_FROM, provenance.requested.from.to_string()),
        kv(meta::REQUESTED_TO, provenance.requested.to.to_string()),
        kv(meta::FETCHED_AT, provenance.fetched_at.to_string()),
        kv(meta::VERSION, crate::VERSION.to_string()),
    ];
    let source = match &provenance.origin {
        None => "rest",
        Some(o) if o.mixed => "flatfiles+rest",
        Some(_) => "flatfiles",
    };
    out.push(kv(meta::SOURCE, source.to_string()));
    if let Some(o) = &provenance.origin {
        out.push(kv(meta::FLAT_FILES, o.encode()));
    }
    out
}

/// Writer settings for a file of `ticker`: ZSTD at [`ZSTD_LEVEL`], delta timestamps
/// without dictionary, `volume` byte-stream-split without dictionary, page statistics,
/// timestamp recorded as the sort key, ticker, year and provenance metadata, one row
/// group per file.
///
/// `volume` and `vwap` are nearly unique per minute, so a dictionary there only costs
/// hashing before the writer falls back to plain; without it encoding is ~20% faster
/// and files ~13% smaller (measured on a random-walk ticker-year). Volumes are
/// integers stored as f64, whose sign, exponent and top mantissa bytes barely change
/// from minute to minute: BYTE_STREAM_SPLIT puts each byte position in a stream of its
/// own for ZSTD, making the column ~13% smaller and the whole encode ~7% cheaper
/// (BENCHMARKS.md, "CPU per bar, second round", and `cargo bench --bench
/// parquet_settings`). `vwap` stays plain: it often equals a price of the bar exactly,
/// repeats that plain ZSTD finds and a split would hide (the split made the files 21%
/// bigger). Prices (`open`..`close`) and `transactions` repeat a lot
/// and keep the dictionary. pyarrow, Polars and DuckDB read all of these encodings.
pub fn writer_properties(ticker: &str, provenance: &Provenance) -> WriterProperties {
    let ts = ColumnPath::from(col::TIMESTAMP);
    let volume = ColumnPath::from(col::VOLUME);
    let zstd = ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default();
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_column_dictionary_enabled(ts.clone(), false)
        .set_column_encoding(ts, Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(volume.clone(), false)
        .set_column_encoding(volume, Encoding::BYTE_STREAM_SPLIT)
        .set_column_dictionary_enabled(ColumnPath::from(col::VWAP), false)
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: TIMESTAMP_INDEX as i32,
            descending: false,
            nulls_first: false,
        }]))
        // One ticker-year is at most ~240k rows: never split it.
        .set_max_row_group_row_count(None)
        .set_key_value_metadata(Some(provenance_metadata(ticker, provenance)))
        .build()
}
