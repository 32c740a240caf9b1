//! The Parquet store: file format, partial-year merges, coverage, identity, and crash
//! safety (a writer killed at any instant leaves readers working).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow_schema::{DataType, TimeUnit};
use barsmith::bars::{Bar, Bars};
use barsmith::calendar::{DateRange, ny_day_start_ms};
use barsmith::store::{DatasetIdentity, Provenance, Store, StoreError, encode_parquet, read_file};
use jiff::civil::{Weekday, date};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding};
use parquet::file::metadata::SortingColumn;

fn range(a: &str, b: &str) -> DateRange {
    DateRange::parse(a, b).unwrap()
}

fn synth(r: DateRange, per_day: usize, close: f64) -> Bars {
    common::synth_bars(r, per_day, close)
}

fn prov(adjusted: bool, r: DateRange) -> Provenance {
    Provenance::for_identity(
        &DatasetIdentity::minute(adjusted),
        r,
        "2024-05-01T12:00:00Z".parse().unwrap(),
    )
}

fn open(dir: &Path) -> Store {
    Store::open(dir, &DatasetIdentity::minute(true)).unwrap()
}

/// Every file below `root`, relative to it.
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn footer_records_schema_encodings_compression_sort_key_and_provenance() {
    let r = range("2004-01-01", "2004-01-31");
    let bars = synth(r, 500, 10.0);
    let mut buf = Vec::new();
    let encoded = encode_parquet("AAPL", &bars, &prov(true, r), &mut buf).unwrap();
    assert_eq!(encoded.rows, bars.len());
    assert_eq!(encoded.bytes, buf.len());

    let tmp = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut &tmp, &buf).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(tmp).unwrap();
    let schema = builder.schema().clone();
    // The partition columns come from the folders only: a file column beside them
    // breaks pandas.read_parquet(root) and pq.read_table(root).
    assert!(schema.field_with_name("ticker").is_err(), "{schema:?}");
    assert!(schema.field_with_name("year").is_err(), "{schema:?}");
    assert_eq!(
        schema.field_with_name("timestamp").unwrap().data_type(),
        &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    );
    for (name, ty, nullable) in [
        ("open", DataType::Float64, false),
        ("volume", DataType::Float64, false),
        ("vwap", DataType::Float64, true),
        ("transactions", DataType::Int64, true),
        ("otc", DataType::Boolean, false),
    ] {
        let f = schema.field_with_name(name).unwrap();
        assert_eq!((f.data_type(), f.is_nullable()), (&ty, nullable), "{name}");
    }

    let meta = builder.metadata();
    assert_eq!(meta.num_row_groups(), 1, "one row group per file");
    let rg = meta.row_group(0);
    assert_eq!(rg.num_rows() as usize, bars.len());
    assert_eq!(
        rg.sorting_columns().unwrap(),
        &vec![SortingColumn {
            column_idx: 0,
            descending: false,
            nulls_first: false
        }]
    );
    let ts = rg.column(0);
    assert_eq!(ts.column_path().string(), "timestamp");
    let enc: Vec<Encoding> = ts.encodings().collect();
    assert!(enc.contains(&Encoding::DELTA_BINARY_PACKED), "{enc:?}");
    assert!(
        !enc.contains(&Encoding::RLE_DICTIONARY) && !enc.contains(&Encoding::PLAIN_DICTIONARY),
        "{enc:?}"
    );
    assert_eq!(
        ts.dictionary_page_offset(),
        None,
        "no dictionary page on timestamp"
    );
    // Volumes byte-stream-split for ZSTD, no dictionary (see schema::writer_properties).
    let volume = rg.column(5);
    assert_eq!(volume.column_path().string(), "volume");
    let enc: Vec<Encoding> = volume.encodings().collect();
    assert!(enc.contains(&Encoding::BYTE_STREAM_SPLIT), "{enc:?}");
    assert_eq!(
        volume.dictionary_page_offset(),
        None,
        "no dictionary on volume"
    );
    for c in rg.columns() {
        assert!(
            matches!(c.compression(), Compression::ZSTD(_)),
            "{:?}",
            c.column_path()
        );
        assert!(
            c.column_index_offset().is_some(),
            "page statistics on {:?}",
            c.column_path()
        );
    }
    let stats = ts.statistics().unwrap();
    assert_eq!(
        stats.min_bytes_opt().unwrap(),
        bars.timestamp[0].to_le_bytes().as_slice(),
        "chunk statistics"
    );

    let kv: std::collections::HashMap<_, _> = meta
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone().unwrap_or_default()))
        .collect();
    assert_eq!(kv["barsmith.ticker"], "AAPL");
    assert_eq!(kv["barsmith.year"], "2004");
    assert_eq!(kv["barsmith.provider"], "polygon");
    assert_eq!(kv["barsmith.timespan"], "minute");
    assert_eq!(kv["barsmith.adjusted"], "true");
    assert_eq!(kv["barsmith.requested_from"], "2004-01-01");
    assert_eq!(kv["barsmith.requested_to"], "2004-01-31");
    assert_eq!(kv["barsmith.fetched_at"], "2024-05-01T12:00:00Z");
    assert_eq!(kv["barsmith.version"], barsmith::VERSION);
}

#[test]
fn written_bars_read_back_identically_including_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("minute"));
    let r = range("2004-02-01", "2004-02-29");
    let bars = synth(r, 300, 20.0);
    let path = store
        .write_piece("MSFT", r, &bars, &prov(true, r))
        .unwrap()
        .path
        .unwrap();
    assert!(path.ends_with("ticker=MSFT/year=2004/MSFT_2004.parquet"));
    let facts = store
        .write_piece("MSFT", r, &bars, &prov(true, r))
        .unwrap()
        .facts;
    assert_eq!(facts.bytes, fs::metadata(&path).unwrap().len());
    assert_eq!(facts.rows, bars.len() as u64);
    assert_eq!(
        (facts.first, facts.last),
        (bars.timestamp[0], *bars.timestamp.last().unwrap())
    );
    assert_eq!(store.read_bars("MSFT", r).unwrap(), bars);
    assert_eq!(read_file(&path).unwrap().bars, bars);
    let one_day = range("2004-02-03", "2004-02-03");
    assert_eq!(
        store.read_bars("MSFT", one_day).unwrap(),
        bars.within(one_day)
    );
}

#[test]
fn partial_year_write_replaces_only_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("minute"));
    let year = range("2005-01-01", "2005-12-31");
    let march = range("2005-03-01", "2005-03-31");
    let old = synth(year, 60, 10.0);
    store
        .write_piece("IBM", year, &old, &prov(true, year))
        .unwrap();

    // March again with other prices and fewer minutes per day.
    let new = synth(march, 30, 99.0);
    store
        .write_piece("IBM", march, &new, &prov(true, march))
        .unwrap();

    let got = store.read_bars("IBM", year).unwrap();
    assert_eq!(
        got.outside(march),
        old.outside(march),
        "bars outside the piece kept"
    );
    assert_eq!(got.within(march), new, "the piece replaced");
    assert!(
        got.timestamp.windows(2).all(|w| w[0] < w[1]),
        "still sorted"
    );
    let meta = barsmith::store::read_metadata(&store.file_path("IBM", 2005)).unwrap();
    assert_eq!(
        meta["barsmith.requested_from"], "2005-01-01",
        "provenance spans both writes"
    );
    assert_eq!(meta["barsmith.requested_to"], "2005-12-31");

    // Input bars outside the piece's range are not written.
    let april = range("2005-04-01", "2005-04-30");
    store
        .write_piece(
            "IBM",
            april,
            &synth(range("2005-04-01", "2005-05-31"), 30, 5.0),
            &prov(true, april),
        )
        .unwrap();
    assert_eq!(
        store
            .read_bars("IBM", range("2005-05-01", "2005-05-31"))
            .unwrap(),
        old.within(range("2005-05-01", "2005-05-31"))
    );
}

#[test]
fn piece_spanning_two_years_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("minute"));
    let r = range("2004-12-01", "2005-01-31");
    let err = store
        .write_piece("IBM", r, &Bars::default(), &prov(true, r))
        .unwrap_err();
    assert!(err.to_string().contains("split_by_year"), "{err}");
}

#[test]
fn empty_result_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("minute");
    let store = open(&root);
    let r = range("2006-01-01", "2006-12-31");
    assert_eq!(
        store
            .write_piece("NEW", r, &Bars::default(), &prov(true, r))
            .unwrap()
            .path,
        None
    );
    assert!(files_under(&root).is_empty());

    let jan = range("2006-01-01", "2006-01-31");
    store
        .write_piece("NEW", jan, &synth(jan, 10, 1.0), &prov(true, jan))
        .unwrap();
    assert_eq!(files_under(&root).len(), 1);
    // The same month again, now empty (e.g. bars withdrawn): the file goes away.
    assert_eq!(
        store
            .write_piece("NEW", jan, &Bars::default(), &prov(true, jan))
            .unwrap()
            .path,
        None
    );
    assert!(files_under(&root).is_empty());
    assert!(
        !root.join("ticker=NEW").exists(),
        "empty partition folders removed"
    );
}

#[test]
fn coverage_is_clipped_to_days_before_today() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("minute"));
    let today = date(2024, 6, 10);
    store
        .mark_complete("AAPL", range("2024-01-01", "2024-12-31"), today)
        .unwrap();
    assert_eq!(
        store.coverage("AAPL").unwrap(),
        vec![range("2024-01-01", "2024-06-09")]
    );
    assert_eq!(
        store
            .missing("AAPL", range("2024-06-01", "2024-06-30"))
            .unwrap(),
        vec![range("2024-06-10", "2024-06-30")]
    );
    // A range starting today or later is never complete.
    store
        .mark_complete("MSFT", range("2024-06-10", "2024-06-10"), today)
        .unwrap();
    assert!(store.coverage("MSFT").unwrap().is_empty());
}

#[test]
fn a_write_and_its_mark_in_one_call_leave_what_the_two_calls_leave() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (open(&dir.path().join("one")), open(&dir.path().join("two")));
    let today = date(2024, 6, 10);
    let piece = range("2024-06-03", "2024-06-14");
    let complete = [
        range("2024-06-03", "2024-06-05"),
        range("2024-06-07", "2024-06-14"),
    ];
    let bars = synth(piece, 3, 10.0);
    let written = one
        .write_and_mark(
            "AAPL",
            piece,
            &complete,
            bars.clone(),
            &prov(true, piece),
            today,
        )
        .unwrap();
    let w2 = two
        .write_days("AAPL", piece, &complete, &bars, &prov(true, piece))
        .unwrap();
    two.mark_written("AAPL", &complete, today, &w2).unwrap();
    assert_eq!((written.year, written.facts), (w2.year, w2.facts));
    assert_eq!(one.coverage("AAPL").unwrap(), two.coverage("AAPL").unwrap());
    assert_eq!(
        one.coverage("AAPL").unwrap(),
        vec![
            range("2024-06-03", "2024-06-05"),
            range("2024-06-07", "2024-06-09")
        ]
    );
    let (a, b) = (
        one.read_bars("AAPL", piece).unwrap(),
        two.read_bars("AAPL", piece).unwrap(),
    );
    assert_eq!(a, b);
    assert!(!a.is_empty());
}

#[test]
fn adjacent_ranges_merge_and_ranges_without_bars_count_as_complete() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("minute");
    let store = open(&root);
    let today = date(2024, 1, 1);
    // A ticker listed in 2005: 2004 has no bars, but is known complete.
    store
        .mark_complete("IPO", range("2004-01-01", "2004-12-31"), today)
        .unwrap();
    store
        .mark_complete("IPO", range("2005-01-01", "2005-12-31"), today)
        .unwrap();
    assert_eq!(
        store.coverage("IPO").unwrap(),
        vec![range("2004-01-01", "2005-12-31")]
    );
    let all = range("2004-01-01", "2005-12-31");
    assert!(store.missing("IPO", all).unwrap().is_empty());
    store
        .mark_complete("GAP", range("2004-01-01", "2004-03-31"), today)
        .unwrap();
    store
        .mark_complete("GAP", range("2004-05-01", "2005-12-31"), today)
        .unwrap();
    assert_eq!(
        store.missing("GAP", all).unwrap(),
        vec![range("2004-04-01", "2004-04-30")]
    );
    let tickers = vec!["GAP".to_string(), "IPO".to_string(), "NONE".to_string()];
    assert_eq!(
        store.completed_tickers(&tickers, all).unwrap(),
        vec!["IPO".to_string()]
    );
    assert!(
        files_under(&root).is_empty(),
        "coverage lives outside the data root"
    );

    // A read-only view sees the same; one of a folder never written sees nothing.
    let ro = Store::open_read_only(&root).unwrap();
    assert_eq!(
        ro.completed_tickers(&tickers, all).unwrap(),
        vec!["IPO".to_string()]
    );
    let err = ro.mark_complete("IPO", all, today).unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }));
    let fresh = Store::open_read_only(&dir.path().join("never")).unwrap();
    assert!(fresh.coverage("IPO").unwrap().is_empty());
    assert!(
        !dir.path().join("never").exists(),
        "read-only open creates nothing"
    );
}

#[test]
fn completed_tickers_answers_500_tickers_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("minute"));
    let today = date(2024, 1, 1);
    let tickers: Vec<String> = (0..500).map(|i| format!("T{i}")).collect();
    for (i, t) in tickers.iter().enumerate() {
        for y in 2004..2011 {
            if !(i % 10 == 0 && y == 2007) {
                let r = DateRange::new(date(y, 1, 1), date(y, 12, 31)).unwrap();
                store.mark_complete(t, r, today).unwrap();
            }
        }
    }
    let all = range("2004-01-01", "2010-12-31");
    let started = Instant::now();
    let done = store.completed_tickers(&tickers, all).unwrap();
    let took = started.elapsed();
    assert_eq!(done.len(), 450);
    assert!(
        took < Duration::from_millis(100),
        "completed_tickers took {took:?}"
    );
}

#[test]
fn other_identity_is_refused_with_both_values_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("minute");
    open(&root);
    let err = Store::open(&root, &DatasetIdentity::minute(false)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::IdentityMismatch { .. }));
    assert!(
        msg.contains("unadjusted") && msg.contains(" adjusted minute"),
        "{msg}"
    );
    assert!(
        msg.contains("another --outdir") && msg.contains("dataset.json"),
        "{msg}"
    );

    // Bars of another identity are refused on write too.
    let store = open(&root);
    let r = range("2004-01-01", "2004-01-31");
    let err = store
        .write_piece("A", r, &synth(r, 5, 1.0), &prov(false, r))
        .unwrap_err();
    assert!(matches!(err, StoreError::IdentityMismatch { .. }), "{err}");
}

#[test]
fn existing_files_of_another_identity_are_refused_even_without_state() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("minute");
    let store = open(&root);
    let r = range("2004-01-01", "2004-01-31");
    store
        .write_piece("A", r, &synth(r, 5, 1.0), &prov(true, r))
        .unwrap();
    fs::remove_dir_all(store.state_dir()).unwrap();
    let err = Store::open(&root, &DatasetIdentity::minute(false)).unwrap_err();
    assert!(err.to_string().contains("A_2004.parquet"), "{err}");
}

#[test]
fn a_stored_file_of_another_identity_is_never_merged_or_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("minute"));
    let year = range("2004-01-01", "2004-12-31");
    let path = store.file_path("ODD", 2004);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let unadjusted = synth(year, 5, 1.0);
    encode_parquet(
        "ODD",
        &unadjusted,
        &prov(false, year),
        fs::File::create(&path).unwrap(),
    )
    .unwrap();
    let jan = range("2004-01-01", "2004-01-31");
    for r in [year, jan] {
        let err = store
            .write_piece("ODD", r, &synth(r, 5, 2.0), &prov(true, r))
            .unwrap_err();
        assert!(matches!(err, StoreError::IdentityMismatch { .. }), "{err}");
        assert!(err.to_string().contains("ODD_2004.parquet"), "{err}");
    }
    assert_eq!(read_file(&path).unwrap().bars, unadjusted, "file untouched");
}

#[test]
fn whole_year_write_replaces_every_stored_bar() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("minute"));
    let year = range("2004-01-01", "2004-12-31");
    store
        .write_piece("W", year, &synth(year, 20, 1.0), &prov(true, year))
        .unwrap();
    let fresh = synth(range("2004-06-01", "2004-06-30"), 3, 7.0);
    store
        .write_piece("W", year, &fresh, &prov(true, year))
        .unwrap();
    assert_eq!(store.read_bars("W", year).unwrap(), fresh);
}

#[test]
fn unwritable_outdir_error_names_the_path_and_the_os_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    fs::write(&file, "x").unwrap();
    let outdir = file.join("minute");
    let err = Store::open(&outdir, &DatasetIdentity::minute(true)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Unwritable { .. }), "{msg}");
    assert!(msg.contains(&outdir.display().to_string()), "{msg}");
    assert!(msg.to_lowercase().contains("not a directory"), "{msg}");
}

#[test]
fn data_root_holds_only_partitioned_parquet_and_state_is_a_sibling() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("minute");
    let store = open(&root);
    assert_eq!(
        store.state_dir(),
        dir.path().canonicalize().unwrap().join("minute.barsmith")
    );
    let today = date(2024, 1, 1);
    for (t, y) in [("AAPL", 2004), ("AAPL", 2005), ("BRK.A", 2004)] {
        let r = DateRange::new(date(y, 1, 1), date(y, 1, 31)).unwrap();
        store
            .write_piece(t, r, &synth(r, 5, 1.0), &prov(true, r))
            .unwrap();
        store.mark_complete(t, r, today).unwrap();
    }
    let files: Vec<String> = files_under(&root)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(
        files,
        [
            "ticker=AAPL/year=2004/AAPL_2004.parquet",
            "ticker=AAPL/year=2005/AAPL_2005.parquet",
            "ticker=BRK.A/year=2004/BRK.A_2004.parquet",
        ]
    );
    let state = store.state_dir();
    assert!(state.join("dataset.json").is_file());
    assert!(state.join("coverage/AAPL.json").is_file());
    assert!(state.join("staging").is_dir());
}

#[test]
fn leftover_staging_files_are_cleaned_on_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("minute");
    let store = open(&root);
    let staging = store.state_dir().join("staging");
    fs::write(
        staging.join("99999-0-AAPL_2004.parquet.tmp"),
        b"PAR1 truncated",
    )
    .unwrap();
    assert!(
        files_under(&root).is_empty(),
        "staging is outside the data root"
    );
    open(&root);
    assert_eq!(fs::read_dir(&staging).unwrap().count(), 0);
}

/// Environment variable that turns [`child_writer_loop`] into a writer that never stops.
const CHILD_ENV: &str = "BARSMITH_TEST_CHILD_OUTDIR";

/// Not a test on its own: the crash test runs this binary with only this test selected
/// and [`CHILD_ENV`] set, and kills it with SIGKILL while it writes.
#[test]
#[ignore = "child process of writer_killed_at_any_instant_leaves_readers_working"]
fn child_writer_loop() {
    let Ok(outdir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = open(Path::new(&outdir));
    let year = range("2004-01-01", "2004-12-31");
    let bars = synth(year, 200, 10.0);
    let today = date(2024, 1, 1);
    for i in 0u64.. {
        // Alternate whole-year rewrites and partial merges; contents stay the same.
        let r = if i % 2 == 0 {
            year
        } else {
            range("2004-03-01", "2004-05-31")
        };
        let written = store
            .write_piece("CRASH", r, &bars.within(r), &prov(true, r))
            .unwrap();
        store.mark_written("CRASH", &[r], today, &written).unwrap();
    }
}

#[test]
fn writer_killed_at_any_instant_leaves_readers_working() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("minute");
    let store = open(&root);
    let year = range("2004-01-01", "2004-12-31");
    let expected = synth(year, 200, 10.0);
    let file = store.file_path("CRASH", 2004);
    let staging = store.state_dir().join("staging");
    let exe = std::env::current_exe().unwrap();
    let mut leftovers_seen = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    for round in 0..12u64 {
        assert!(
            Instant::now() < deadline,
            "crash test exceeded its time bound"
        );
        let mut child = Command::new(&exe)
            .args([
                "child_writer_loop",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Read the final path while the child writes: it is absent or complete, never partial.
        let kill_at = Instant::now() + Duration::from_millis(150 + (round * 97) % 700);
        while Instant::now() < kill_at {
            if file.exists() {
                let got = read_file(&file).expect("a file under its final name is complete");
                assert_eq!(got.bars, expected);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        for rel in files_under(&root) {
            assert!(
                rel.extension().is_some_and(|e| e == "parquet"),
                "foreign file {rel:?}"
            );
            assert_eq!(read_file(&root.join(&rel)).unwrap().bars, expected);
        }
        // Coverage is either the old or the new version, always parseable, and a kill
        // between a file and its record never makes the file look damaged.
        let (cov, damaged) = store.checked_claims("CRASH").unwrap();
        assert_eq!(damaged, vec![], "round {round}");
        assert!(
            cov.is_empty() || cov == vec![year] || cov == vec![range("2004-03-01", "2004-05-31")]
        );
        if fs::read_dir(&staging).unwrap().count() > 0 {
            leftovers_seen += 1;
        }
        open(&root);
        assert_eq!(
            fs::read_dir(&staging).unwrap().count(),
            0,
            "reopen cleans staging"
        );
    }
    assert!(
        leftovers_seen > 0,
        "no kill landed mid-write; the test proved nothing"
    );
}

/// Realistic minute bars for the throughput test: a random walk in cents, random
/// volumes and trade counts, ~15% of minutes without a bar.
fn realistic(r: DateRange) -> Bars {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut bars = Bars::default();
    let mut px: f64 = 5000.0; // cents
    let mut d = r.from;
    while d <= r.to {
        if !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) {
            let start = ny_day_start_ms(d) + 4 * 3_600_000;
            for m in 0..960i64 {
                if rng.u8(..100) < 15 {
                    continue;
                }
                let open = px;
                px = (px + rng.i32(-8..=8) as f64).max(100.0);
                let (hi, lo) = (
                    open.max(px) + rng.u8(..4) as f64,
                    open.min(px) - rng.u8(..4) as f64,
                );
                bars.push(Bar {
                    timestamp: start + m * 60_000,
                    open: open / 100.0,
                    high: hi / 100.0,
                    low: lo / 100.0,
                    close: px / 100.0,
                    volume: rng.u32(100..200_000) as f64,
                    vwap: Some(
                        ((open + px) / 2.0 + rng.f64()).round() / 100.0
                            + rng.u32(..10_000) as f64 * 1e-8,
                    ),
                    transactions: Some(rng.i64(1..2_000)),
                    otc: false,
                });
            }
        }
        d = d.tomorrow().unwrap();
    }
    bars
}

/// Encode throughput on one core; run with
/// `cargo test --release --test store -- --ignored encode_throughput --nocapture`.
#[test]
#[ignore = "timing; run explicitly in release mode"]
fn encode_throughput() {
    let year = range("2010-01-01", "2010-12-31");
    let bars = realistic(year);
    let p = prov(true, year);
    let mut buf = Vec::with_capacity(8 << 20);
    encode_parquet("AAPL", &bars, &p, &mut buf).unwrap(); // warm-up
    let rounds = 10;
    let started = Instant::now();
    for _ in 0..rounds {
        buf.clear();
        encode_parquet("AAPL", &bars, &p, &mut buf).unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let rows = (bars.len() * rounds) as f64;
    println!(
        "encode_parquet: {} rows/file, {:.2} M rows/s, {:.1} bytes/bar",
        bars.len(),
        rows / secs / 1e6,
        buf.len() as f64 / bars.len() as f64
    );
}
