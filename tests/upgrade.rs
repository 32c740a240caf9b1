//! `barsmith upgrade DIR`: a dataset of barsmith 0.1 (a `ticker` column in every file)
//! is rewritten in the current layout with the same bars and provenance, and `status`
//! names the command while such files remain.

mod common;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use barsmith::calendar::DateRange;
use barsmith::store::read_file;
use common::{Fixture, run, stderr};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde_json::Value;

/// Rewrites `path` as barsmith 0.1 wrote it: a `ticker` column first, no ticker or
/// year in the metadata.
fn make_legacy(path: &Path, ticker: &str) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let kv: Vec<KeyValue> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .filter(|kv| kv.key != "barsmith.ticker" && kv.key != "barsmith.year")
        .cloned()
        .collect();
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
    let mut fields = vec![Arc::new(Field::new("ticker", DataType::Utf8, false))];
    fields.extend(batches[0].schema().fields().iter().cloned());
    let schema = Arc::new(Schema::new(fields));
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(kv))
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, schema.clone(), Some(props)).unwrap();
    for b in batches {
        let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec![ticker; b.num_rows()]))];
        cols.extend(b.columns().iter().cloned());
        w.write(&RecordBatch::try_new(schema.clone(), cols).unwrap())
            .unwrap();
    }
    w.close().unwrap();
    std::fs::write(path, out).unwrap();
}

fn has_ticker_column(path: &Path) -> bool {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    builder.schema().field_with_name("ticker").is_ok()
}

fn status_json(fx: &Fixture, args: &[&str]) -> (Value, String, Option<i32>) {
    let mut cmd = fx.barsmith();
    cmd.arg("status")
        .arg(fx.outdir())
        .args(["--format", "json"])
        .args(args);
    let out = run(cmd);
    let j = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (j, stderr(&out), out.status.code())
}

#[test]
fn a_dataset_of_the_first_layout_is_rewritten_with_the_same_bars_and_provenance() {
    let fx = Fixture::with_faults(&[]);
    let out = run(fx.ingest(&["AAPL", "MSFT"], "2024-12-02", "2025-01-31"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let store = fx.store();
    let files: Vec<_> = [
        ("AAPL", 2024),
        ("AAPL", 2025),
        ("MSFT", 2024),
        ("MSFT", 2025),
    ]
    .iter()
    .map(|&(t, y)| (t, store.file_path(t, y)))
    .collect();
    let before: Vec<_> = files.iter().map(|(_, p)| read_file(p).unwrap()).collect();
    for (t, p) in &files {
        make_legacy(p, t);
        assert!(has_ticker_column(p));
    }

    // status names the files and the command; a resume still trusts them (the
    // coverage record's sizes differ, but the footers agree with it).
    let (j, err, code) = status_json(&fx, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(j["legacy_layout_files"].as_array().unwrap().len(), 4, "{j}");
    assert!(err.contains("run `barsmith upgrade"), "{err}");
    assert_eq!(j["damaged_claims"], serde_json::json!([]));

    let mut cmd = fx.barsmith();
    cmd.arg("upgrade").arg(fx.outdir());
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("4 of 4 bar files rewritten"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for ((t, p), old) in files.iter().zip(&before) {
        assert!(!has_ticker_column(p), "{t}");
        let new = read_file(p).unwrap();
        assert_eq!(new.bars, old.bars, "{t}");
        for k in [
            "barsmith.requested_from",
            "barsmith.requested_to",
            "barsmith.fetched_at",
        ] {
            assert_eq!(new.metadata[k], old.metadata[k], "{t} {k}");
        }
        assert_eq!(new.metadata["barsmith.ticker"], *t);
    }
    let (j, err, code) = status_json(&fx, &["--verify"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(j["legacy_layout_files"], serde_json::json!([]));
    assert!(!err.contains("upgrade"), "{err}");
    let whole = DateRange::parse("2024-12-02", "2025-01-31").unwrap();
    assert_eq!(store.coverage("AAPL").unwrap(), [whole]);

    // Again: nothing left to do.
    let mut cmd = fx.barsmith();
    cmd.arg("upgrade").arg(fx.outdir());
    let out = run(cmd);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 of 4 bar files rewritten"));
}

#[test]
fn upgrade_of_a_folder_that_is_not_a_dataset_is_one_line_and_exit_2() {
    let fx = Fixture::with_faults(&[]);
    let mut cmd = fx.barsmith();
    cmd.arg("upgrade").arg(fx.dir.path().join("nowhere"));
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("is not a barsmith dataset") && err.lines().count() == 1,
        "{err}"
    );
}
