//! Parquet writer settings compared on the bars of the end-to-end throughput scenario
//! (20 sandbox tickers × 2 years, one file per ticker-year): file bytes per bar and
//! encoding CPU per bar (thread CPU time, best of 3 rounds) for the settings the store ships
//! (`schema::writer_properties`) and for each alternative, one change at a time.
//! Prints one table. Run: `cargo bench --bench parquet_settings` (~1 min).

use arrow_array::RecordBatch;
use barsmith::bars::Bars;
use barsmith::calendar::DateRange;
use barsmith::sandbox::{SandboxConfig, synth};
use barsmith::store::Provenance;
use barsmith::store::encode::bars_to_batch;
use barsmith::store::schema::{bars_schema, col, writer_properties};
use jiff::civil::Date;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

/// One alternative: its name and how it changes the shipped settings.
type Change = fn(WriterPropertiesBuilder) -> WriterPropertiesBuilder;

const PRICES: [&str; 4] = [col::OPEN, col::HIGH, col::LOW, col::CLOSE];

/// Rounds over all settings; each row shows its fastest.
const ROUNDS: usize = 3;

fn zstd(level: i32) -> Compression {
    Compression::ZSTD(ZstdLevel::try_new(level).expect("valid level"))
}

fn plain(b: WriterPropertiesBuilder, column: &str) -> WriterPropertiesBuilder {
    let c = ColumnPath::from(column);
    b.set_column_dictionary_enabled(c.clone(), false)
        .set_column_encoding(c, Encoding::PLAIN)
}

fn changes() -> Vec<(&'static str, Change)> {
    vec![
        ("as shipped (volume BYTE_STREAM_SPLIT)", |b| b),
        ("volume PLAIN (until 2026-12-06)", |b| plain(b, col::VOLUME)),
        ("vwap BYTE_STREAM_SPLIT", |b| {
            b.set_column_encoding(ColumnPath::from(col::VWAP), Encoding::BYTE_STREAM_SPLIT)
        }),
        ("transactions DELTA_BINARY_PACKED, no dictionary", |b| {
            let c = ColumnPath::from(col::TRANSACTIONS);
            b.set_column_dictionary_enabled(c.clone(), false)
                .set_column_encoding(c, Encoding::DELTA_BINARY_PACKED)
        }),
        ("prices PLAIN, no dictionary", |b| {
            PRICES.iter().fold(b, |b, c| plain(b, c))
        }),
        ("prices BYTE_STREAM_SPLIT, no dictionary", |b| {
            PRICES.iter().fold(b, |b, c| {
                let c = ColumnPath::from(*c);
                b.set_column_dictionary_enabled(c.clone(), false)
                    .set_column_encoding(c, Encoding::BYTE_STREAM_SPLIT)
            })
        }),
        ("ZSTD level 3", |b| b.set_compression(zstd(3))),
        ("ZSTD level 2", |b| b.set_compression(zstd(2))),
        ("ZSTD level -1", |b| b.set_compression(zstd(-1))),
        ("ZSTD level -3", |b| b.set_compression(zstd(-3))),
        ("chunk statistics only (no page index)", |b| {
            b.set_statistics_enabled(EnabledStatistics::Chunk)
        }),
        ("data pages of 4 MiB (1 MiB shipped)", |b| {
            b.set_data_page_size_limit(4 << 20)
        }),
        ("uncompressed", |b| {
            b.set_compression(Compression::UNCOMPRESSED)
        }),
    ]
}

/// The bars of the end-to-end throughput scenario, one set per ticker-year.
fn pieces() -> Vec<(DateRange, Bars)> {
    let names: Vec<String> = (0..20)
        .map(|i| format!("WAA{}", char::from(b'A' + i)))
        .collect();
    let cfg = SandboxConfig {
        today: Date::constant(2026, 6, 30),
        listings: names.iter().map(|t| (t.clone(), (None, None))).collect(),
        ..SandboxConfig::default()
    };
    let years = ["2024", "2025"]
        .map(|y| DateRange::parse(&format!("{y}-01-01"), &format!("{y}-12-31")).expect("a year"));
    let mut out = Vec::new();
    for t in &names {
        for year in years {
            out.push((year, synth::bars_for(t, year, &cfg)));
        }
    }
    out
}

/// CPU time of this thread.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Bytes written and CPU time for encoding every piece with `props` (one per piece).
fn encode_all(batches: &[RecordBatch], props: &[WriterProperties]) -> (usize, f64) {
    let t0 = thread_cpu();
    let mut bytes = 0;
    for (batch, props) in batches.iter().zip(props) {
        let mut out = Vec::with_capacity(4 << 20);
        let mut w =
            ArrowWriter::try_new(&mut out, bars_schema(), Some(props.clone())).expect("writer");
        w.write(batch).expect("write");
        w.close().expect("close");
        bytes += out.len();
    }
    (bytes, thread_cpu() - t0)
}

fn main() {
    // `cargo test --benches` runs this without `--bench`: build check only.
    if !std::env::args().any(|a| a == "--bench") {
        println!("parquet_settings: run with `cargo bench --bench parquet_settings`");
        return;
    }
    let pieces = pieces();
    let bars: usize = pieces.iter().map(|(_, b)| b.len()).sum();
    let batches: Vec<RecordBatch> = pieces
        .iter()
        .map(|(_, b)| bars_to_batch("W", b).expect("batch"))
        .collect();
    let changes = changes();
    let settings: Vec<Vec<WriterProperties>> = changes
        .iter()
        .map(|(_, change)| {
            let shipped = |r: &DateRange| writer_properties("W", &Provenance::now(true, *r));
            pieces
                .iter()
                .map(|(r, _)| change(shipped(r).into_builder()).build())
                .collect()
        })
        .collect();
    // Rounds over every setting, best of each: load on the shared machine then spreads
    // over all rows instead of favouring the last ones.
    let mut best = vec![(0, f64::MAX); changes.len()];
    for _ in 0..ROUNDS {
        for (props, best) in settings.iter().zip(&mut best) {
            let (bytes, cpu) = encode_all(&batches, props);
            *best = (bytes, best.1.min(cpu));
        }
    }
    println!(
        "{} files, {bars} bars, best of {ROUNDS} rounds",
        pieces.len()
    );
    println!(
        "| {:<48} | {:>11} | {:>11} |",
        "settings", "bytes/bar", "CPU ns/bar"
    );
    println!("|{:-<50}|{:->13}|{:->13}|", "", "", "");
    for ((name, _), (bytes, cpu)) in changes.iter().zip(best) {
        let per_bar = |x: f64| x / bars as f64;
        println!(
            "| {name:<48} | {:>11.3} | {:>11.1} |",
            per_bar(bytes as f64),
            per_bar(cpu * 1e9)
        );
    }
}
