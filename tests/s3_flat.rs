//! `barsmith ingest --source flat-files --outdir s3://bucket/prefix`: the sandbox's
//! flat files into moto's S3 server on loopback. The same bars and coverage as a flat
//! ingest into a folder; the ledger of ingested days lives with the dataset (so a
//! re-run on another machine downloads nothing); `--refresh` re-ingests a republished
//! day; a worker killed at any instant leaves a dataset a re-run completes exactly.

mod common;

use std::path::Path;
use std::process::Command;

use barsmith::bars::Bars;
use barsmith::calendar::DateRange;
use barsmith::sandbox::{SandboxConfig, synth};
use common::moto::{MotoServer, runtime};
use common::{Fixture, run, stderr};
use jiff::civil::date;

const URL: &str = "s3://barsmith/bars/minute";
const TICKERS: [&str; 3] = ["AAPL", "BRK.A", "MSFT"];

fn fixture() -> Fixture {
    Fixture::with_config(SandboxConfig {
        // Files are published through Friday 2025-01-31.
        today: date(2025, 2, 3),
        flat_tickers: TICKERS.iter().map(|t| t.to_string()).collect(),
        flat_market: 3,
        ..common::test_config()
    })
}

fn range(a: &str, b: &str) -> DateRange {
    DateRange::parse(a, b).unwrap()
}

/// `barsmith ingest --source flat-files` of `tickers` (empty: every ticker of the
/// files) into `outdir`, the dataset's S3 at `moto`, the files at the sandbox.
fn flat_ingest(
    f: &Fixture,
    moto: &MotoServer,
    tickers: &[&str],
    r: DateRange,
    outdir: &str,
) -> Command {
    let (from, to) = (r.from.to_string(), r.to.to_string());
    let mut cmd = f.flat_ingest_into(tickers, &from, &to, outdir.as_ref());
    moto.env_for(&mut cmd);
    cmd
}

/// The sandbox's bars as flat files carry them: no vwap.
fn expected(f: &Fixture, ticker: &str, r: DateRange) -> Bars {
    let mut bars = synth::bars_for(ticker, r, f.sandbox.config());
    bars.vwap = barsmith::bars::Optional::absent(bars.len());
    bars
}

/// The bars and complete ranges of `ticker` in the dataset on S3.
fn on_s3(moto: &MotoServer, ticker: &str, r: DateRange) -> (Bars, Vec<DateRange>) {
    let rt = runtime();
    let ds = moto.dataset(&rt, URL);
    let bars = rt.block_on(ds.read_bars(ticker, r)).unwrap();
    (bars, rt.block_on(ds.coverage(ticker)).unwrap().complete)
}

/// Every file below `dir` (none when it does not exist).
fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    common::files_below(dir)
}

#[test]
fn flat_files_into_s3_store_what_a_folder_gets_and_the_ledger_lives_with_the_dataset() {
    let f = fixture();
    let moto = MotoServer::start();
    let jan = range("2025-01-01", "2025-01-31");
    let local = f.outdir().display().to_string();
    let out = run(flat_ingest(&f, &moto, &["AAPL", "BRK.A"], jan, &local));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(flat_ingest(&f, &moto, &["AAPL", "BRK.A"], jan, URL));
    assert!(out.status.success(), "{}", stderr(&out));
    let store = f.store();
    for t in ["AAPL", "BRK.A"] {
        let (bars, complete) = on_s3(&moto, t, jan);
        assert_eq!(bars, store.read_bars(t, jan).unwrap(), "{t}");
        assert_eq!(bars, expected(&f, t, jan), "{t}");
        assert_eq!(complete, store.coverage(t).unwrap(), "{t}");
    }
    // Staged on local scratch keyed by the URL, dropped once recorded; the ledger is in
    // the dataset's state prefix.
    let staging = f
        .state_dir()
        .join("s3/barsmith/bars/minute.barsmith/flatfiles/staging");
    assert!(staging.is_dir(), "{}", staging.display());
    assert_eq!(files_in(&staging), Vec::<std::path::PathBuf>::new());
    let rt = runtime();
    let ledger_key = "bars/minute.barsmith/flatfiles/ingested.json";
    let ledger = rt.block_on(moto.client().get(ledger_key)).unwrap().body;
    let ledger: serde_json::Value = serde_json::from_slice(&ledger).unwrap();
    assert_eq!(ledger.as_object().unwrap().len(), 20, "{ledger}");

    // Every ticker of the files, then the same from another machine (another state
    // folder, so no staging to reuse): the ledger says every day is in.
    let out = run(flat_ingest(&f, &moto, &[], jan, URL));
    assert!(out.status.success(), "{}", stderr(&out));
    let universe = barsmith::sandbox::s3::flat_universe(f.sandbox.config());
    for t in &universe {
        assert_eq!(
            on_s3(&moto, t, jan),
            (expected(&f, t, jan), vec![jan]),
            "{t}"
        );
    }
    f.sandbox.reset_stats();
    let mut elsewhere = flat_ingest(&f, &moto, &[], jan, URL);
    elsewhere.env("BARSMITH_STATE_DIR", f.dir.path().join("other-machine"));
    let out = run(elsewhere);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        f.sandbox.stats().flat_gets,
        0,
        "the ledger on S3 has every day"
    );

    // A republished day: --refresh downloads exactly it and replaces its bars.
    let day = date(2025, 1, 7);
    f.sandbox.republish_flat_day(day);
    let mut refresh = flat_ingest(&f, &moto, &["AAPL"], jan, URL);
    refresh.arg("--refresh");
    let out = run(refresh);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(f.sandbox.stats().flat_gets, 1);
    let one = range("2025-01-07", "2025-01-07");
    let (got, complete) = on_s3(&moto, "AAPL", one);
    let old = expected(&f, "AAPL", one);
    assert!(
        got.volume
            .iter()
            .zip(&old.volume)
            .all(|(n, o)| *n == o + 1.0)
    );
    assert_eq!(complete, vec![jan]);
}

#[test]
fn a_flat_worker_killed_mid_run_leaves_an_s3_dataset_a_rerun_completes_exactly() {
    let f = fixture();
    let moto = MotoServer::start();
    let r = range("2025-01-02", "2025-01-17");
    let universe = barsmith::sandbox::s3::flat_universe(f.sandbox.config());
    // Kills while days are staged, then while tickers are written.
    for (event, after) in [("day_file", 3), ("ticker_done", 1), ("ticker_done", 3)] {
        let left = universe
            .iter()
            .filter(|t| on_s3(&moto, t, r).1 != vec![r])
            .count();
        // Kill before the last ticker still to write, so the kill interrupts the run.
        let after = match event {
            "ticker_done" if left < 2 => continue,
            "ticker_done" => after.min(left - 1),
            _ => after,
        };
        let seen = common::kill_after(flat_ingest(&f, &moto, &[], r, URL), event, after);
        assert_eq!(
            seen, after,
            "the worker ended before {after} {event} events"
        );
        for t in &universe {
            let (stored, complete) = on_s3(&moto, t, r);
            if complete == vec![r] {
                assert_eq!(stored, expected(&f, t, r), "{t} recorded complete");
            }
        }
    }
    // The re-run takes over the dead writer's lease once stale, reuses the staged days
    // and completes every ticker exactly.
    f.sandbox.reset_stats();
    let out = run(flat_ingest(&f, &moto, &[], r, URL));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(f.sandbox.stats().flat_gets, 0, "staged days are reused");
    for t in &universe {
        assert_eq!(on_s3(&moto, t, r), (expected(&f, t, r), vec![r]), "{t}");
    }
}

#[test]
fn the_flat_file_strategy_backfills_into_s3_then_tops_up_from_rest() {
    // Files through Monday 2025-02-03, "today" Wednesday: Tuesday is over but has no
    // file, and 2025-01-15 is refused (outside the plan): REST fills both.
    let f = Fixture::with_config(SandboxConfig {
        today: date(2025, 2, 5),
        flat_published_through: Some(date(2025, 2, 3)),
        flat_tickers: TICKERS.iter().map(|t| t.to_string()).collect(),
        flat_faults: barsmith::sandbox::FlatFaultPlan::parse(&["2025-01-15=forbidden"]).unwrap(),
        ..common::test_config()
    });
    let moto = MotoServer::start();
    let universe = f.universe(&["AAPL", "BRK.A", "IBM", "MSFT"]);
    let strategy = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/flatfiles.rhai");
    let strategy_run = |name: &str| {
        let mut cmd = f.flat_run(name, &strategy);
        moto.env_for(&mut cmd)
            .args(["--tickers-csv", &universe, "--outdir", URL])
            .args(["--from", "2025-01-02", "--to", "2025-02-04"])
            .args(["--retry-delay", "0", "--request-retries", "2"])
            .args(["--request-timeout", "10"]);
        cmd
    };
    let out = run(strategy_run("first"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let all = range("2025-01-02", "2025-02-04");
    let rest = |t: &str, r: DateRange| synth::bars_for(t, r, f.sandbox.config());
    for t in TICKERS {
        let mut want = expected(&f, t, range("2025-01-02", "2025-01-14"));
        want.extend(&rest(t, range("2025-01-15", "2025-01-15")));
        want.extend(&expected(&f, t, range("2025-01-16", "2025-02-03")));
        want.extend(&rest(t, range("2025-02-04", "2025-02-04")));
        assert_eq!(on_s3(&moto, t, all), (want, vec![all]), "{t}");
    }
    // IBM is in no file: REST fills the whole range.
    assert_eq!(on_s3(&moto, "IBM", all), (rest("IBM", all), vec![all]));
    assert!(
        stderr(&out).contains("complete through 2025-02-04: 4/4 tickers"),
        "{}",
        stderr(&out)
    );
    // A second run finds everything complete: no file downloaded, no bar fetched.
    f.sandbox.reset_stats();
    let again = run(strategy_run("again"));
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let stats = f.sandbox.stats();
    assert_eq!((stats.flat_gets, stats.data_requests), (0, 0), "{stats:?}");
}
