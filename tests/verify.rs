//! A damaged dataset must not look complete: a resume notices a deleted or truncated
//! file by itself (existence and the size recorded at write time), `status --verify`
//! names every damaged file with its ticker, year and cause, and `--repair` moves the
//! files aside and withdraws their coverage so the next run fetches exactly them again.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use barsmith::bars::Bars;
use barsmith::calendar::DateRange;
use barsmith::ingest::events::Event;
use barsmith::store::{Provenance, encode_parquet, read_file};
use common::{Fixture, events, files_below, run, stderr};
use serde_json::Value;

const FROM: &str = "2022-11-01";
const TO: &str = "2023-02-28";

/// S1, S2 and S3 complete over two calendar years (two files each).
fn dataset() -> Fixture {
    let fx = Fixture::with_faults(&[]);
    let out = run(fx.ingest(&["S1", "S2", "S3"], FROM, TO));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fx
}

fn whole() -> DateRange {
    DateRange::parse(FROM, TO).unwrap()
}

fn year(y: i16) -> DateRange {
    DateRange::year(y).unwrap()
}

fn status(fx: &Fixture, args: &[&str]) -> Output {
    let mut cmd = fx.barsmith();
    cmd.arg("status").arg(fx.outdir()).args(args);
    run(cmd)
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

/// (ticker, year, cause) of each damaged claim in a JSON status.
fn claims(j: &Value) -> Vec<(String, i64, String)> {
    j["damaged_claims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["ticker"].as_str().unwrap().to_string(),
                c["year"].as_i64().unwrap(),
                c["cause"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn claim(t: &str, y: i64, cause: &str) -> (String, i64, String) {
    (t.to_string(), y, cause.to_string())
}

/// Tickers fetched (done) and skipped as complete by an ingest, with bars fetched.
fn fetched(out: &Output) -> (Vec<(String, u64)>, Vec<String>) {
    let mut done = Vec::new();
    let mut skipped = Vec::new();
    for e in events(out) {
        match e {
            Event::TickerDone { ticker, bars, .. } => done.push((ticker, bars)),
            Event::TickerSkipped { ticker, .. } => skipped.push(ticker),
            _ => {}
        }
    }
    done.sort();
    skipped.sort();
    (done, skipped)
}

/// Rewrites the file of (`ticker`, `y`) with its bars changed by `edit`, as barsmith
/// would write it (same identity metadata), so only the bars are wrong.
fn rewrite(fx: &Fixture, ticker: &str, y: i16, edit: impl FnOnce(&mut Bars)) {
    let path = fx.store().file_path(ticker, y);
    let mut bars = read_file(&path).unwrap().bars;
    edit(&mut bars);
    let mut out = Vec::new();
    encode_parquet(ticker, &bars, &Provenance::now(true, year(y)), &mut out).unwrap();
    fs::write(&path, out).unwrap();
}

/// The files moved into the store's quarantine, relative to it.
fn quarantined(fx: &Fixture) -> Vec<PathBuf> {
    let dir = fx.store().state_dir().join("quarantine");
    files_below(&dir)
        .into_iter()
        .map(|p| p.strip_prefix(&dir).unwrap().to_path_buf())
        .collect()
}

#[test]
fn a_plain_rerun_fetches_a_deleted_and_a_truncated_file_again() {
    let fx = dataset();
    let store = fx.store();
    let s1 = store.read_bars("S1", year(2022)).unwrap();
    let s2 = store.read_bars("S2", year(2023)).unwrap();
    assert!(!s1.is_empty() && !s2.is_empty());
    fs::remove_file(store.file_path("S1", 2022)).unwrap();
    let s2_file = store.file_path("S2", 2023);
    let half = fs::metadata(&s2_file).unwrap().len() / 2;
    fs::OpenOptions::new()
        .write(true)
        .open(&s2_file)
        .unwrap()
        .set_len(half)
        .unwrap();
    let truncated = fs::read(&s2_file).unwrap();

    // Status sees both, names them, and counts their years as missing.
    let j = json(&status(&fx, &["--format", "json"]));
    assert_eq!(
        claims(&j),
        [
            claim("S1", 2022, "missing"),
            claim("S2", 2023, "unreadable")
        ]
    );
    assert_eq!(j["totals"]["incomplete"], 2);

    // The same command again fetches exactly those two ticker-years.
    let out = run(fx.ingest(&["S1", "S2", "S3"], FROM, TO));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (done, skipped) = fetched(&out);
    assert_eq!(
        done,
        [
            ("S1".to_string(), s1.len() as u64),
            ("S2".to_string(), s2.len() as u64)
        ]
    );
    assert_eq!(skipped, ["S3"]);
    let err = stderr(&out);
    assert!(err.contains("S1 2022") && err.contains("S2 2023"), "{err}");
    assert_eq!(store.read_bars("S1", year(2022)).unwrap(), s1);
    assert_eq!(store.read_bars("S2", year(2023)).unwrap(), s2);
    assert_eq!(store.coverage("S1").unwrap(), [whole()]);

    // Nothing was deleted: the truncated file waits in the state folder's quarantine.
    let moved = quarantined(&fx);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(moved[0].starts_with("ticker=S2/year=2023"), "{moved:?}");
    let kept = fs::read(store.state_dir().join("quarantine").join(&moved[0])).unwrap();
    assert_eq!(kept, truncated);
    let out = status(&fx, &["--verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn verify_names_unsorted_and_repeated_minutes_and_repair_sets_them_aside() {
    let fx = dataset();
    let store = fx.store();
    let s1 = store.read_bars("S1", year(2022)).unwrap();
    let s2 = store.read_bars("S2", year(2023)).unwrap();
    // Same rows and time span, so size and footer look right: only the bars are wrong.
    rewrite(&fx, "S1", 2022, |b| {
        b.timestamp.swap(10, 11);
    });
    rewrite(&fx, "S2", 2023, |b| b.timestamp[6] = b.timestamp[5]);

    let out = status(&fx, &["--format", "json"]);
    assert_eq!(claims(&json(&out)), [], "the quick check reads no bars");

    let out = status(&fx, &["--verify", "--format", "json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let j = json(&out);
    assert_eq!(j["verified"], true);
    assert_eq!(
        claims(&j),
        [
            claim("S1", 2022, "unsorted"),
            claim("S2", 2023, "duplicates")
        ]
    );
    let out = status(&fx, &["--verify"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("damaged   2 ticker-year file(s) (verified)"),
        "{table}"
    );
    assert!(
        table.contains("S1 2022 unsorted: row 11 is earlier than the row before"),
        "{table}"
    );
    let out = status(&fx, &["--verify", "--format", "csv"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("damaged: S2 2023 duplicates: 1 rows repeat a minute"));

    let out = status(&fx, &["--repair", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j = json(&out);
    assert!(j["damaged_claims"][0]["moved_to"].is_string(), "{j}");
    assert_eq!(j["totals"]["incomplete"], 2, "coverage withdrawn: {j}");
    assert_eq!(quarantined(&fx).len(), 2);
    assert!(!store.file_path("S1", 2022).exists());
    assert_eq!(
        store.coverage("S1").unwrap(),
        [DateRange::parse("2023-01-01", TO).unwrap()]
    );

    let out = run(fx.ingest(&["S1", "S2", "S3"], FROM, TO));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (done, skipped) = fetched(&out);
    assert_eq!(
        done,
        [
            ("S1".to_string(), s1.len() as u64),
            ("S2".to_string(), s2.len() as u64)
        ]
    );
    assert_eq!(skipped, ["S3"]);
    let out = status(&fx, &["--verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn the_wrapper_does_not_call_a_ticker_with_a_deleted_file_complete() {
    let fx = Fixture::with_faults(&[]);
    let universe = fx.universe(&["S1", "S2", "S3"]);
    let args = ["--tickers-csv", &universe, "--from", FROM, "--to", TO];
    let out = run(fx.wrapper_run("first", &args));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let file = fx.store().file_path("S2", 2022);
    let bars = read_file(&file).unwrap().bars;
    fs::remove_file(&file).unwrap();

    let out = run(fx.wrapper_run("second", &args));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("resume: 2 of 3 tickers already complete"),
        "{err}"
    );
    assert_eq!(read_file(&file).unwrap().bars, bars);
}
