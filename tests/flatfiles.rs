//! `barsmith ingest --source flat-files` against the sandbox's S3 endpoint: the same
//! bars as REST (minus vwap), coverage per day (holidays complete, days after the last
//! file and days answered 403 missing), provenance, refresh, mixing refused, faults.

mod common;

use std::process::Command;

use barsmith::calendar::DateRange;
use barsmith::ingest::events::Event;
use barsmith::sandbox::{
    FlatFaultPlan, SANDBOX_S3_ACCESS_KEY, SANDBOX_S3_SECRET_KEY, SandboxConfig, synth,
};
use barsmith::store::schema::meta;
use common::{Fixture, events, run, stderr};
use jiff::civil::date;

const TICKERS: [&str; 3] = ["AAPL", "BRK.A", "MSFT"];

fn fixture(faults: &[&str]) -> Fixture {
    Fixture::with_config(SandboxConfig {
        // Files are published through Friday 2025-01-31.
        today: date(2025, 2, 3),
        flat_tickers: TICKERS.iter().map(|t| t.to_string()).collect(),
        flat_market: 3,
        flat_faults: FlatFaultPlan::parse(faults).expect("valid flat fault specs"),
        ..common::test_config()
    })
}

fn range(a: &str, b: &str) -> DateRange {
    DateRange::parse(a, b).unwrap()
}

/// `barsmith ingest --source flat-files` over `from..=to` for `tickers` (empty: all).
fn flat_ingest(f: &Fixture, tickers: &[&str], from: &str, to: &str) -> Command {
    f.flat_ingest_into(tickers, from, to, f.outdir().as_os_str())
}

/// The sandbox's REST bars as flat files carry them: no vwap.
fn expected(f: &Fixture, ticker: &str, r: DateRange) -> barsmith::bars::Bars {
    let mut bars = synth::bars_for(ticker, r, f.sandbox.config());
    bars.vwap = barsmith::bars::Optional::absent(bars.len());
    bars
}

fn day_outcomes(out: &std::process::Output) -> Vec<(String, String)> {
    events(out)
        .into_iter()
        .filter_map(|e| match e {
            Event::DayFile { day, outcome, .. } => Some((day, outcome)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_month_of_flat_files_gives_the_rest_bars_with_holidays_complete() {
    let f = fixture(&[]);
    let out = run(flat_ingest(
        &f,
        &["AAPL", "BRK.A"],
        "2025-01-01",
        "2025-01-31",
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let store = f.store();
    let jan = range("2025-01-01", "2025-01-31");
    for t in ["AAPL", "BRK.A"] {
        let got = store.read_bars(t, jan).unwrap();
        assert_eq!(got, expected(&f, t, jan), "{t}");
        // New Year's Day, the national day of mourning (01-09) and MLK day hold no
        // bars and are complete all the same.
        assert_eq!(store.missing(t, jan).unwrap(), vec![], "{t}");
    }
    // One file per trading day: 21 in January 2025, none for the three holidays.
    let days = day_outcomes(&out);
    assert_eq!(days.len(), 20, "{days:?}");
    assert!(days.iter().all(|(_, o)| o == "staged"));
    assert!(
        !days
            .iter()
            .any(|(d, _)| d == "2025-01-09" || d == "2025-01-20")
    );
    // The file says where its bars came from: each day's file and ETag.
    let meta_of = barsmith::store::read_metadata(&store.file_path("AAPL", 2025)).unwrap();
    assert_eq!(
        meta_of.get(meta::SOURCE).map(String::as_str),
        Some("flatfiles")
    );
    let origin = barsmith::store::Origin::decode(&meta_of[meta::FLAT_FILES]).unwrap();
    assert_eq!(origin.files.len(), 20);
    let etag = f.sandbox.flat_etag(date(2025, 1, 2));
    assert_eq!(origin.files[&date(2025, 1, 2)], etag.trim_matches('"'));
    // A re-run finds everything complete and downloads nothing.
    f.sandbox.reset_stats();
    let again = run(flat_ingest(
        &f,
        &["AAPL", "BRK.A"],
        "2025-01-01",
        "2025-01-31",
    ));
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(f.sandbox.stats().flat_gets, 0);
}

#[test]
fn days_after_the_last_file_and_days_refused_stay_missing_for_rest() {
    let f = fixture(&["2025-01-15=forbidden"]);
    let out = run(flat_ingest(&f, &["MSFT"], "2025-01-13", "2025-02-04"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(day_outcomes(&out).contains(&("2025-01-15".into(), "forbidden".into())));
    let store = f.store();
    let asked = range("2025-01-13", "2025-02-04");
    assert_eq!(
        store.missing("MSFT", asked).unwrap(),
        vec![
            range("2025-01-15", "2025-01-15"),
            range("2025-02-01", "2025-02-04")
        ]
    );
    let mut want = expected(&f, "MSFT", range("2025-01-13", "2025-01-14"));
    want.extend(&expected(&f, "MSFT", range("2025-01-16", "2025-01-31")));
    assert_eq!(store.read_bars("MSFT", asked).unwrap(), want);

    // REST tops up the refused day into the same (unadjusted) dataset; the flat days
    // keep their bars and the file says both routes fed it.
    let mut rest = f.ingest(&["MSFT"], "2025-01-15", "2025-01-15");
    rest.arg("--unadjusted");
    let rest = run(rest);
    assert!(rest.status.success(), "{}", stderr(&rest));
    let jan = range("2025-01-13", "2025-01-31");
    let got = store.read_bars("MSFT", jan).unwrap();
    let rest_day = synth::bars_for(
        "MSFT",
        range("2025-01-15", "2025-01-15"),
        f.sandbox.config(),
    );
    let mut all = expected(&f, "MSFT", range("2025-01-13", "2025-01-14"));
    all.extend(&rest_day);
    all.extend(&expected(&f, "MSFT", range("2025-01-16", "2025-01-31")));
    assert_eq!(got, all);
    let m = barsmith::store::read_metadata(&store.file_path("MSFT", 2025)).unwrap();
    assert_eq!(
        m.get(meta::SOURCE).map(String::as_str),
        Some("flatfiles+rest")
    );
    assert_eq!(store.missing("MSFT", jan).unwrap(), vec![]);
}

#[test]
fn flat_files_refuse_an_adjusted_dataset_and_say_why() {
    let f = fixture(&[]);
    let rest = run(f.ingest(&["AAPL"], "2025-01-02", "2025-01-02"));
    assert!(rest.status.success(), "{}", stderr(&rest));
    let out = run(flat_ingest(&f, &["AAPL"], "2025-01-02", "2025-01-03"));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("unadjusted") && err.contains("--outdir"),
        "{err}"
    );
    // Without --unadjusted the job is refused before it starts, naming the flag.
    let cmd = flat_ingest(&f, &["AAPL"], "2025-01-02", "2025-01-03");
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| a != "--unadjusted")
        .collect();
    let mut bare = f.barsmith();
    bare.env("MASSIVE_S3_ACCESS_KEY_ID", SANDBOX_S3_ACCESS_KEY)
        .env("MASSIVE_S3_SECRET_ACCESS_KEY", SANDBOX_S3_SECRET_KEY)
        .args(&args);
    let out = run(bare);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--unadjusted"), "{}", stderr(&out));
}

#[test]
fn bad_credentials_stop_the_run_without_showing_the_secret() {
    let f = fixture(&[]);
    let mut cmd = flat_ingest(&f, &["AAPL"], "2025-01-02", "2025-01-03");
    cmd.env("MASSIVE_S3_SECRET_ACCESS_KEY", "not-the-secret-xyz");
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("MASSIVE_S3_SECRET_ACCESS_KEY"), "{err}");
    assert!(!err.contains("not-the-secret-xyz"));
    assert!(events(&out).iter().any(|e| matches!(
        e,
        Event::SetupFailed {
            kind: barsmith::ingest::SetupKind::Source,
            ..
        }
    )));
    // No credentials at all: named, before any request.
    let mut none = flat_ingest(&f, &["AAPL"], "2025-01-02", "2025-01-03");
    none.env_remove("MASSIVE_S3_ACCESS_KEY_ID")
        .env_remove("MASSIVE_S3_SECRET_ACCESS_KEY");
    let out = run(none);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("MASSIVE_S3_ACCESS_KEY_ID"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn refresh_ingests_again_only_the_republished_days() {
    let f = fixture(&[]);
    let ok = run(flat_ingest(&f, &["AAPL"], "2025-01-06", "2025-01-10"));
    assert!(ok.status.success(), "{}", stderr(&ok));
    let day = date(2025, 1, 7);
    f.sandbox.republish_flat_day(day);
    // Without --refresh nothing is fetched: the days are complete.
    f.sandbox.reset_stats();
    let plain = run(flat_ingest(&f, &["AAPL"], "2025-01-06", "2025-01-10"));
    assert!(plain.status.success());
    assert_eq!(f.sandbox.stats().flat_gets, 0);
    let store = f.store();
    let week = range("2025-01-06", "2025-01-10");
    assert_eq!(
        store.read_bars("AAPL", week).unwrap(),
        expected(&f, "AAPL", week)
    );
    // With it, exactly the republished day is downloaded again, and its new bars
    // (volume + 1 on every row) replace the old ones.
    let mut refresh = flat_ingest(&f, &["AAPL"], "2025-01-06", "2025-01-10");
    refresh.arg("--refresh");
    let refreshed = run(refresh);
    assert!(refreshed.status.success(), "{}", stderr(&refreshed));
    assert_eq!(
        day_outcomes(&refreshed),
        vec![("2025-01-07".to_string(), "staged".to_string())]
    );
    assert_eq!(f.sandbox.stats().flat_gets, 1);
    let got = store
        .read_bars("AAPL", range("2025-01-07", "2025-01-07"))
        .unwrap();
    let old = expected(&f, "AAPL", range("2025-01-07", "2025-01-07"));
    assert_eq!(got.len(), old.len());
    assert!(
        got.volume
            .iter()
            .zip(&old.volume)
            .all(|(n, o)| *n == o + 1.0),
        "new volumes"
    );
    let m = barsmith::store::read_metadata(&store.file_path("AAPL", 2025)).unwrap();
    let origin = barsmith::store::Origin::decode(&m[meta::FLAT_FILES]).unwrap();
    assert_eq!(
        origin.files[&day],
        f.sandbox.flat_etag(day).trim_matches('"')
    );
    assert_eq!(store.missing("AAPL", week).unwrap(), vec![]);
}

#[test]
fn every_ticker_in_the_files_and_damaged_downloads_retried() {
    // The first download of one day is cut short, then 503 SlowDown twice on another.
    let f = fixture(&["2025-01-03=truncated:1", "2025-01-06=slowdown:2"]);
    let out = run(flat_ingest(&f, &[], "2025-01-02", "2025-01-07"));
    assert!(out.status.success(), "{}", stderr(&out));
    let mut universe: Vec<String> = barsmith::sandbox::s3::flat_universe(f.sandbox.config());
    universe.sort();
    let done: Vec<String> = events(&out)
        .into_iter()
        .filter_map(|e| match e {
            Event::TickerDone { ticker, .. } => Some(ticker),
            _ => None,
        })
        .collect();
    let mut done_sorted = done.clone();
    done_sorted.sort();
    assert_eq!(done_sorted, universe);
    let store = f.store();
    let r = range("2025-01-02", "2025-01-07");
    for t in &universe {
        assert_eq!(store.read_bars(t, r).unwrap(), expected(&f, t, r), "{t}");
    }
    // The staging is gone once the ledger records the files.
    let staging = store.flatfiles_dir().join("staging");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

/// Runs tests/readers/check_readers.py over `root` and returns what each reader saw.
fn readers_report(python: &std::path::Path, root: &std::path::Path) -> serde_json::Value {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/check_readers.py");
    let out = Command::new(python)
        .arg(script)
        .args([root.to_str().unwrap(), "AAPL", "2025"])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn kill_9_at_any_instant_leaves_a_readable_dataset_and_a_rerun_completes_it() {
    let f = fixture(&[]);
    let python = common::python_with_readers();
    let r = range("2025-01-02", "2025-01-17");
    let universe = barsmith::sandbox::s3::flat_universe(f.sandbox.config());
    // Kills while days are staged, then while tickers are written.
    for (event, after) in [
        ("day_file", 1),
        ("day_file", 6),
        ("ticker_done", 1),
        ("ticker_done", 4),
    ] {
        // A kill lands a little after the event it waits for, and the tickers written
        // in between are complete: kill before the last ticker still to write, so the
        // kill always interrupts the run.
        let left = universe
            .iter()
            .filter(|t| !f.store().missing(t, r).unwrap().is_empty())
            .count();
        let after = match event {
            "ticker_done" if left < 2 => continue,
            "ticker_done" => after.min(left - 1),
            _ => after,
        };
        let seen = common::kill_after(
            flat_ingest(&f, &[], "2025-01-02", "2025-01-17"),
            event,
            after,
        );
        assert_eq!(
            seen, after,
            "the worker ended before {after} {event} events"
        );
        let store = f.store();
        let mut rows = std::collections::BTreeMap::new();
        for t in &universe {
            let stored = store.read_bars(t, r).unwrap();
            if store.missing(t, r).unwrap().is_empty() {
                assert_eq!(
                    stored,
                    expected(&f, t, r),
                    "{t} recorded complete (kill after {after} {event})"
                );
            }
            if !stored.is_empty() {
                rows.insert(t.clone(), stored.len() as u64);
            }
        }
        if rows.is_empty() {
            continue;
        }
        let report = readers_report(&python, &f.outdir());
        for reader in ["duckdb", "polars_read", "pyarrow_dataset", "pandas"] {
            let got = &report[reader];
            assert!(got.get("error").is_none(), "{reader}: {got}");
            assert_eq!(got["rows_by_ticker"], serde_json::json!(rows), "{reader}");
        }
    }
    // The re-run reuses the staged days (the last kill came after staging) and
    // completes every ticker exactly.
    f.sandbox.reset_stats();
    let out = run(flat_ingest(&f, &[], "2025-01-02", "2025-01-17"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(f.sandbox.stats().flat_gets, 0, "staged days are reused");
    let store = f.store();
    for t in &universe {
        assert_eq!(store.read_bars(t, r).unwrap(), expected(&f, t, r), "{t}");
        assert_eq!(store.missing(t, r).unwrap(), vec![], "{t}");
    }
}
