//! The data root reads back with the real readers — DuckDB, Polars, pyarrow and pandas
//! — each with the call analysts type first and no options, including right after a
//! writer was killed mid-write; numeric symbols with the README's one-line schema.
//!
//! The readers come from `common::python_with_readers`: `BARSMITH_PYTHON`, or a venv
//! with the pinned versions of `tests/readers/requirements.txt` made on first use.

mod common;

use std::collections::BTreeMap;
use std::fs;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use barsmith::bars::{Bar, Bars};
use barsmith::calendar::{DateRange, ny_day_start_ms};
use barsmith::store::{DatasetIdentity, Provenance, Store};
use jiff::civil::{Weekday, date};
use serde_json::Value;

/// Environment variable that turns [`child_writer_loop`] into a writer that never stops.
const CHILD_ENV: &str = "BARSMITH_READERS_CHILD_OUTDIR";

fn range(a: &str, b: &str) -> DateRange {
    DateRange::parse(a, b).unwrap()
}

/// Minute bars for each weekday of `r`, from 04:00 to 19:59 New York time (so the last
/// bars of a day fall on the next UTC day), every 5th without vwap or trade count.
fn synth(r: DateRange, per_day: usize) -> Bars {
    let mut bars = Bars::default();
    let mut d = r.from;
    let mut i = 0u64;
    while d <= r.to {
        if !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) {
            let start = ny_day_start_ms(d) + 4 * 3_600_000;
            let step = 960 / per_day;
            for m in 0..per_day {
                i += 1;
                let px = 10.0 + (i % 89) as f64 * 0.01;
                bars.push(Bar {
                    timestamp: start + (m * step) as i64 * 60_000,
                    open: px,
                    high: px + 0.02,
                    low: px - 0.02,
                    close: px,
                    volume: 1e6 + i as f64,
                    vwap: (!i.is_multiple_of(5)).then_some(px),
                    transactions: (!i.is_multiple_of(5)).then_some(i as i64),
                    otc: false,
                });
            }
        }
        d = d.tomorrow().unwrap();
    }
    bars
}

/// What the data root holds: (ticker, piece) → bars.
fn dataset() -> Vec<(&'static str, DateRange, Bars)> {
    let piece = |t, a, b, n| (t, range(a, b), synth(range(a, b), n));
    vec![
        piece("AAA", "2004-11-01", "2004-12-31", 96),
        piece("AAA", "2005-01-01", "2005-02-28", 96),
        piece("BBB", "2005-03-01", "2005-04-30", 48),
        piece("BRK.A", "2004-06-01", "2004-06-30", 16),
    ]
}

fn prov(r: DateRange) -> Provenance {
    Provenance::for_identity(&DatasetIdentity::minute(true), r, jiff::Timestamp::now())
}

/// Not a test on its own: [`readers_see_complete_data_after_a_writer_was_killed`] runs
/// this binary with only this test selected and [`CHILD_ENV`] set, and kills it.
#[test]
#[ignore = "child process of readers_see_complete_data_after_a_writer_was_killed"]
fn child_writer_loop() {
    let Ok(outdir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open(Path::new(&outdir), &DatasetIdentity::minute(true)).unwrap();
    let (ticker, r, bars) = dataset().swap_remove(0);
    loop {
        // Rewrites the same bars over and over: the expected contents never change.
        store.write_piece(ticker, r, &bars, &prov(r)).unwrap();
    }
}

/// Kills a looping writer mid-write until a staging leftover proves it died mid-file.
fn kill_writer_mid_write(root: &Path, staging: &Path) {
    let exe = std::env::current_exe().unwrap();
    for attempt in 0..10u64 {
        let mut child = Command::new(&exe)
            .args([
                "child_writer_loop",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200 + attempt * 37));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if fs::read_dir(staging).unwrap().count() > 0 {
            return;
        }
    }
    panic!("no kill landed mid-write in 10 attempts");
}

#[test]
fn readers_see_complete_data_after_a_writer_was_killed() {
    let python = common::python_with_readers();
    let dir = tempfile::Builder::new()
        .prefix("barsmith-readers")
        .tempdir()
        .unwrap();
    let root = dir.path().join("minute");
    let store = Store::open(&root, &DatasetIdentity::minute(true)).unwrap();
    let mut all = Bars::default();
    let mut by_ticker: BTreeMap<String, usize> = BTreeMap::new();
    for (ticker, r, bars) in dataset() {
        store.write_piece(ticker, r, &bars, &prov(r)).unwrap();
        *by_ticker.entry(ticker.to_string()).or_default() += bars.len();
        all.extend(&bars);
    }
    // The last AAA bars of 2004-12-31 are 2005-01-01 in UTC but stay in year=2004.
    let last_2004 = ny_day_start_ms(date(2004, 12, 31)) + 4 * 3_600_000 + 95 * 10 * 60_000;
    assert!(
        all.timestamp.contains(&last_2004)
            && last_2004 >= ny_day_start_ms(date(2005, 1, 1)) - 5 * 3_600_000
    );

    let staging = store.state_dir().join("staging");
    kill_writer_mid_write(&root, &staging);

    let report = read_back(&python, &root, "BBB", 2005, false);
    expect_every_reader(
        &report,
        &all,
        &by_ticker,
        by_ticker["BBB"] as u64,
        &[2004, 2005],
    );
    assert!(
        fs::read_dir(&staging).unwrap().count() > 0,
        "leftover still present during reads"
    );
}

#[test]
fn numeric_symbols_stay_strings_with_the_documented_partition_schema() {
    let python = common::python_with_readers();
    let dir = tempfile::Builder::new()
        .prefix("barsmith-readers")
        .tempdir()
        .unwrap();
    let root = dir.path().join("minute");
    let store = Store::open(&root, &DatasetIdentity::minute(true)).unwrap();
    let mut all = Bars::default();
    let mut by_ticker: BTreeMap<String, usize> = BTreeMap::new();
    for (ticker, a, b) in [
        ("0700", "2024-03-01", "2024-03-31"),
        ("1234", "2024-03-01", "2024-03-15"),
    ] {
        let r = range(a, b);
        let bars = synth(r, 16);
        store.write_piece(ticker, r, &bars, &prov(r)).unwrap();
        *by_ticker.entry(ticker.to_string()).or_default() += bars.len();
        all.extend(&bars);
    }
    let report = read_back(&python, &root, "0700", 2024, true);
    expect_every_reader(&report, &all, &by_ticker, by_ticker["0700"] as u64, &[2024]);
}

/// Runs tests/readers/check_readers.py on `root` (filtering on `ticker` and `year`;
/// `numeric`: with the README's explicit partition schema) and returns its report.
fn read_back(python: &Path, root: &Path, ticker: &str, year: i16, numeric: bool) -> Value {
    let started = Instant::now();
    let out = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/check_readers.py"))
        .args([root.to_str().unwrap(), ticker, &year.to_string()])
        .args(numeric.then_some("numeric"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run BARSMITH_PYTHON={}: {e}", python.display()));
    assert!(
        out.status.success(),
        "check_readers.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("readers ran in {:?}: {report:#}", started.elapsed());
    report
}

/// Every reader saw every bar of `all` once, UTC timestamps, the rows per ticker, the
/// year partitions, `filtered` rows for the ticker-year filter, and every volume.
fn expect_every_reader(
    report: &Value,
    all: &Bars,
    by_ticker: &BTreeMap<String, usize>,
    filtered: u64,
    years: &[i16],
) {
    let min = *all.timestamp.iter().min().unwrap();
    let max = *all.timestamp.iter().max().unwrap();
    for reader in [
        "duckdb",
        "polars_read",
        "polars_scan",
        "pyarrow_dataset",
        "pyarrow_read_table",
        "pandas",
    ] {
        let r = &report[reader];
        assert!(
            r.get("error").is_none(),
            "{reader} failed: {}",
            r["traceback"].as_str().unwrap_or("")
        );
        assert_eq!(r["rows"], all.len() as u64, "{reader} row count");
        assert_eq!(r["min_ms"], min, "{reader} min timestamp");
        assert_eq!(r["max_ms"], max, "{reader} max timestamp");
        assert_eq!(
            r["timestamp_utc"], true,
            "{reader} timestamp type {}",
            r["timestamp_type"]
        );
        let seen: BTreeMap<String, usize> =
            serde_json::from_value(r["rows_by_ticker"].clone()).unwrap();
        assert_eq!(&seen, by_ticker, "{reader} rows by ticker");
        assert_eq!(
            r["years"],
            serde_json::json!(years),
            "{reader} year partitions"
        );
        assert_eq!(r["filtered_rows"], filtered, "{reader} ticker/year filter");
        // Whole integers under 2^53: the sum is exact in any order.
        let volume: f64 = all.volume.iter().sum();
        assert_eq!(
            r["volume_sum"].as_f64(),
            Some(volume),
            "{reader} volume sum"
        );
    }
}
