//! The compiled hot path, stage by stage, on one 50,000-bar page of Polygon JSON:
//! decode (JSON → columnar bars), Arrow (bars → RecordBatch, copying the columns),
//! Parquet (batch → bytes), and all three together (the bars handed to the encoder, as
//! the store does with a fetched piece). Throughput is reported in bars/s (elements, group
//! `hot_path_bars`) and in MB/s of the page's JSON (bytes, group `hot_path_json_bytes`;
//! for the Arrow and Parquet stages: JSON-equivalent MB/s, the page size over the stage
//! time). Everything runs on one thread. Run: `cargo bench --bench hot_path`.

use std::hint::black_box;

use barsmith::calendar::DateRange;
use barsmith::polygon::decode_page;
use barsmith::sandbox::{SandboxConfig, page_json};
use barsmith::store::Provenance;
use barsmith::store::encode::bars_to_batch;
use barsmith::store::encode::encode_parquet_owned;
use barsmith::store::schema::{bars_schema, writer_properties};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::civil::Date;
use parquet::arrow::ArrowWriter;

const TICKER: &str = "AAPL";

fn page() -> Vec<u8> {
    let cfg = SandboxConfig {
        today: Date::constant(2026, 1, 1),
        listings: [(TICKER.to_string(), (None, None))].into(),
        ..SandboxConfig::default()
    };
    let range = DateRange::parse("2020-01-01", "2020-12-31").expect("valid range");
    let json = page_json(TICKER, range, 50_000, &cfg);
    let page = decode_page(&json).expect("sandbox JSON decodes");
    assert_eq!(page.bars.len(), 50_000, "a full page");
    json
}

fn hot_path(c: &mut Criterion) {
    let json = page();
    let bars = decode_page(&json).expect("decodes").bars;
    let batch = bars_to_batch(TICKER, &bars).expect("arrow");
    let range = DateRange::parse("2020-01-01", "2020-12-31").expect("valid range");
    let provenance = Provenance::now(true, range);

    // The same four stages, reported once per bar and once per byte of JSON.
    let groups = [
        ("hot_path_bars", Throughput::Elements(bars.len() as u64)),
        ("hot_path_json_bytes", Throughput::Bytes(json.len() as u64)),
    ];
    for (name, throughput) in groups {
        let mut group = c.benchmark_group(name);
        group.throughput(throughput);
        group.bench_function("decode", |b| {
            b.iter(|| decode_page(black_box(&json)).expect("decodes"))
        });
        group.bench_function("arrow", |b| {
            b.iter(|| bars_to_batch(TICKER, black_box(&bars)).expect("arrow"))
        });
        group.bench_function("parquet", |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(1 << 20);
                let props = writer_properties(TICKER, &provenance);
                let mut w =
                    ArrowWriter::try_new(&mut out, bars_schema(), Some(props)).expect("writer");
                w.write(black_box(&batch)).expect("write");
                w.close().expect("close");
                out
            })
        });
        group.bench_function("total", |b| {
            b.iter(|| {
                let page = decode_page(black_box(&json)).expect("decodes");
                let mut out = Vec::with_capacity(1 << 20);
                // As the store writes a fetched piece: the bars handed over, not copied.
                encode_parquet_owned(TICKER, page.bars, &provenance, &mut out).expect("encodes");
                out
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = hot_path
}
criterion_main!(benches);
