//! Flat files from scripts, against the sandbox's S3 endpoint: the bundled
//! `scripts/flatfiles.rhai` end to end (flat days minus vwap, REST-topped days with
//! vwap, a ticker in no file filled by REST), an all-tickers batch through
//! `spawn_batch`, a flat batch that fails retried by `pool`, and `flat_days`,
//! `flat_last_day` and `flat_bars` in a piped REPL.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use barsmith::bars::Bars;
use barsmith::calendar::DateRange;
use barsmith::sandbox::{
    FlatFaultPlan, SANDBOX_S3_ACCESS_KEY, SANDBOX_S3_SECRET_KEY, SandboxConfig, synth,
};
use common::{Fixture, run, stderr, stdout};
use jiff::civil::{Date, date};

/// Files in the sandbox: these tickers, published through Monday 2025-02-03; its
/// "today" is Wednesday 2025-02-05, so Tuesday is over but has no file yet.
const IN_FILES: [&str; 3] = ["AAPL", "BRK.A", "MSFT"];
const LAST_FILE: Date = date(2025, 2, 3);
const SESSION_LIMIT: Duration = Duration::from_secs(90);

fn fixture(faults: &[&str]) -> Fixture {
    Fixture::with_config(SandboxConfig {
        today: date(2025, 2, 5),
        flat_published_through: Some(LAST_FILE),
        flat_tickers: IN_FILES.iter().map(|t| t.to_string()).collect(),
        flat_faults: FlatFaultPlan::parse(faults).expect("valid flat fault specs"),
        ..common::test_config()
    })
}

fn range(a: &str, b: &str) -> DateRange {
    DateRange::parse(a, b).unwrap()
}

/// `cmd` with the sandbox's flat-file credentials.
fn with_s3(mut cmd: Command) -> Command {
    cmd.env("MASSIVE_S3_ACCESS_KEY_ID", SANDBOX_S3_ACCESS_KEY)
        .env("MASSIVE_S3_SECRET_ACCESS_KEY", SANDBOX_S3_SECRET_KEY);
    cmd
}

/// `barsmith run` of `script` (a path) into run folder `runs/<run>`, both endpoints
/// at the sandbox.
fn run_script(f: &Fixture, run: &str, script: &Path, args: &[&str]) -> Command {
    let mut cmd = f.flat_run(run, script);
    cmd.args(args);
    cmd
}

/// Writes `text` as a script in the fixture's folder.
fn script(f: &Fixture, name: &str, text: &str) -> PathBuf {
    let path = f.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The sandbox's bars as flat files carry them (no vwap) or REST does (with vwap).
fn bars(f: &Fixture, ticker: &str, r: DateRange, flat: bool) -> Bars {
    let mut b = synth::bars_for(ticker, r, f.sandbox.config());
    if flat {
        b.vwap = barsmith::bars::Optional::absent(b.len());
    }
    b
}

fn joblog(f: &Fixture, run: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(f.run_dir(run).join("joblog.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_strategy_takes_flat_files_then_tops_up_from_rest() {
    let f = fixture(&["2025-01-15=forbidden"]);
    let universe = f.universe(&["AAPL", "BRK.A", "IBM", "MSFT"]);
    let strategy = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/flatfiles.rhai");
    let outdir = f.outdir().display().to_string();
    let args = [
        "--tickers-csv",
        &universe,
        "--from",
        "2025-01-02",
        "--to",
        "2025-02-04",
        "--outdir",
        &outdir,
        "--retry-delay",
        "0",
        "--request-retries",
        "2",
        "--request-timeout",
        "10",
    ];
    let out = run(run_script(&f, "strategy", &strategy, &args));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let store = f.store();
    let all = range("2025-01-02", "2025-02-04");
    for t in IN_FILES {
        // Flat days without vwap; the refused day and the day after the last file
        // from REST, with it.
        let mut want = bars(&f, t, range("2025-01-02", "2025-01-14"), true);
        want.extend(&bars(&f, t, range("2025-01-15", "2025-01-15"), false));
        want.extend(&bars(&f, t, range("2025-01-16", "2025-02-03"), true));
        want.extend(&bars(&f, t, range("2025-02-04", "2025-02-04"), false));
        assert_eq!(store.read_bars(t, all).unwrap(), want, "{t}");
        assert_eq!(store.missing(t, all).unwrap(), vec![], "{t}");
    }
    // IBM is in no file: REST fills the whole range.
    assert_eq!(
        store.read_bars("IBM", all).unwrap(),
        bars(&f, "IBM", all, false)
    );
    assert_eq!(store.missing("IBM", all).unwrap(), vec![]);
    // Two monthly flat batches, then REST batches: one per range missing.
    let log = joblog(&f, "strategy");
    let labels: Vec<&str> = log.iter().filter_map(|e| e["label"].as_str()).collect();
    assert_eq!(
        labels.iter().filter(|l| l.starts_with("flat ")).count(),
        2,
        "{labels:?}"
    );
    assert!(
        labels.contains(&"rest 2025-01-15..2025-01-15"),
        "{labels:?}"
    );
    assert!(
        labels.contains(&"rest 2025-02-04..2025-02-04"),
        "{labels:?}"
    );
    assert!(
        labels.contains(&"rest 2025-01-02..2025-02-04"),
        "{labels:?}"
    );
    assert!(
        stderr(&out).contains("complete through 2025-02-04: 4/4 tickers"),
        "{}",
        stderr(&out)
    );
    // A second run finds everything complete: no file downloaded, no bar fetched.
    f.sandbox.reset_stats();
    let again = run(run_script(&f, "again", &strategy, &args));
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let stats = f.sandbox.stats();
    assert_eq!((stats.flat_gets, stats.data_requests), (0, 0), "{stats:?}");
}

#[test]
fn an_all_tickers_batch_through_spawn_batch_reports_the_files_tickers() {
    let f = fixture(&[]);
    let text = r#"let cfg = args(#{ outdir: () });
let h = spawn_batch([], #{ source: "flat-files", adjusted: false, all_tickers: true,
    from: "2025-01-06", to: "2025-01-10", outdir: cfg.outdir, timeout: 60 });
let r = wait(h);
let names = r.tickers.map(|t| t.ticker);
names.sort();
print(`${r.success} ${r.exit} ${names} ${r.failed} ${r.bars > 0}`);
"#;
    let s = script(&f, "all.rhai", text);
    let outdir = f.outdir().display().to_string();
    let out = run(run_script(&f, "all", &s, &["--outdir", &outdir]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // `*` stands for the universe, ok once the worker went through it.
    assert!(
        stdout(&out).contains(r#"true 0 ["*", "AAPL", "BRK.A", "MSFT"] [] true"#),
        "{}",
        stdout(&out)
    );
    let week = range("2025-01-06", "2025-01-10");
    for t in IN_FILES {
        assert_eq!(
            f.store().read_bars(t, week).unwrap(),
            bars(&f, t, week, true)
        );
    }
    let log = joblog(&f, "all");
    assert_eq!(log.len(), 1);
    assert_eq!(
        (
            log[0]["tickers_ok"].as_u64(),
            log[0]["tickers_failed"].as_u64()
        ),
        (Some(4), Some(0))
    );
    let batch_log =
        std::fs::read_to_string(f.run_dir("all").join("batch-0001.attempt-1.log")).unwrap();
    assert!(
        batch_log.contains("--all-tickers") && !batch_log.contains("--tickers-file"),
        "{batch_log}"
    );
    assert!(
        !batch_log.contains(SANDBOX_S3_SECRET_KEY),
        "the secret stays out of the log"
    );
    let failed = std::fs::read_to_string(f.run_dir("all").join("failed_tickers.csv")).unwrap();
    assert_eq!(failed.lines().count(), 1, "{failed}");
}

#[test]
fn a_flat_batch_that_fails_is_retried_by_pool_and_one_that_keeps_failing_is_recorded() {
    // Week 1: three downloads cut short (all of a worker's tries), then whole: the
    // batch fails once and its retry succeeds. Week 2: cut short for ever.
    let f = fixture(&["2025-01-06=truncated:3", "2025-01-13=truncated"]);
    let text = r#"let cfg = args(#{ outdir: () });
let jobs = [
    #{ tickers: [], from: "2025-01-06", to: "2025-01-10" },
    #{ tickers: [], from: "2025-01-13", to: "2025-01-17" },
];
let results = pool(jobs, #{ source: "flat-files", adjusted: false, all_tickers: true,
    outdir: cfg.outdir, tries: 2, retries: 1, timeout: 60 });
for r in results {
    print(`${r.job.from} ${r.ok} ${r.attempts} ${r.result.retryable} ${r.result.exit}`);
}
"#;
    let s = script(&f, "retry.rhai", text);
    let outdir = f.outdir().display().to_string();
    let out = run(run_script(&f, "retry", &s, &["--outdir", &outdir]));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("2025-01-06 true 2 [] 0\n"), "{text}");
    assert!(text.contains(r#"2025-01-13 false 2 ["*"] 3"#), "{text}");
    let week = range("2025-01-06", "2025-01-10");
    for t in IN_FILES {
        assert_eq!(
            f.store().read_bars(t, week).unwrap(),
            bars(&f, t, week, true)
        );
    }
    assert_eq!(joblog(&f, "retry").len(), 4);
    // What is still missing: the universe of week 2, with the reason, once.
    let failed = std::fs::read_to_string(f.run_dir("retry").join("failed_tickers.csv")).unwrap();
    let rows: Vec<&str> = failed.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{failed}");
    assert!(rows[0].starts_with("*,retryable,"), "{failed}");
    assert!(
        rows[0].contains("damaged") && rows[0].ends_with(",2025-01-13,2025-01-17"),
        "{failed}"
    );
}

fn repl_session(f: &Fixture, s3: bool, input: &str) -> Output {
    let url = f.sandbox.base_url();
    let mut cmd = f.barsmith();
    if s3 {
        cmd = with_s3(cmd);
    } else {
        cmd.env_remove("MASSIVE_S3_ACCESS_KEY_ID")
            .env_remove("MASSIVE_S3_SECRET_ACCESS_KEY")
            .env_remove("POLYGON_S3_ACCESS_KEY_ID")
            .env_remove("POLYGON_S3_SECRET_ACCESS_KEY");
    }
    cmd.args(["repl", "--base-url", &url, "--flat-endpoint", &url]);
    common::run_with_input(cmd, input, SESSION_LIMIT)
}

#[test]
fn flat_days_and_flat_bars_in_the_repl() {
    let f = fixture(&["2025-01-15=forbidden"]);
    let input = r#"let days = flat_days("2025-01-01", "2025-02-10");
print(`days: ${days.len()} ${days[0]} ${days[-1]}`);
print(`holidays: ${days.contains(date("2025-01-09"))} ${days.contains(date("2025-01-20"))}`);
print(`last: ${flat_last_day()}`);
let b = flat_bars("2025-01-02", ["AAPL", "IBM"]);
print(`aapl: ${b.AAPL.len()} ibm: ${b.IBM.len()}`);
print(flat_bars(date("2025-01-02"), "MSFT").table(1));
flat_bars("2025-01-15", "AAPL")
flat_bars("2025-01-04", "AAPL")
"#;
    let out = repl_session(&f, true, input);
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(
        out.status.code(),
        Some(1),
        "errors at the end: {text}\n{err}"
    );
    // January's 20 trading days and Feb 3: no holidays, nothing after the last file.
    assert!(
        text.contains("days: 21 2025-01-02 2025-02-03\n"),
        "{text}\n{err}"
    );
    assert!(text.contains("holidays: false false\n"), "{text}");
    assert!(text.contains(&format!("last: {LAST_FILE}\n")), "{text}");
    let day = range("2025-01-02", "2025-01-02");
    let n = bars(&f, "AAPL", day, true).len();
    assert!(n > 0);
    assert!(text.contains(&format!("aapl: {n} ibm: 0\n")), "{text}");
    assert!(text.contains("Bars MSFT: "), "{text}");
    assert!(
        err.contains(
            "flat_bars: the file of 2025-01-15 is not in your plan's flat files (403 AccessDenied)"
        ),
        "{err}"
    );
    assert!(err.contains("no flat file for 2025-01-04"), "{err}");

    // Without credentials: one line naming the variables.
    let out = repl_session(&f, false, "flat_days(\"2025-01-01\", \"2025-01-31\")\n");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("flat_days: no S3 credentials: set MASSIVE_S3_ACCESS_KEY_ID and MASSIVE_S3_SECRET_ACCESS_KEY"),
        "{err}"
    );
}

/// `barsmith ingest --source flat-files` of `tickers` (empty: `--all-tickers`).
fn flat_ingest(f: &Fixture, tickers: &[&str], from: &str, to: &str) -> Command {
    f.flat_ingest_into(tickers, from, to, f.outdir().as_os_str())
}

#[test]
fn days_ingested_for_a_list_are_not_skipped_by_an_all_tickers_job() {
    let f = fixture(&[]);
    let week = range("2025-01-06", "2025-01-10");
    let list = run(flat_ingest(&f, &["AAPL"], "2025-01-06", "2025-01-10"));
    assert!(list.status.success(), "{}", stderr(&list));
    let all = run(flat_ingest(&f, &[], "2025-01-06", "2025-01-10"));
    assert!(all.status.success(), "{}", stderr(&all));
    for t in IN_FILES {
        assert_eq!(
            f.store().read_bars(t, week).unwrap(),
            bars(&f, t, week, true),
            "{t}"
        );
    }
    // Now recorded for every ticker: another all-tickers job downloads nothing.
    f.sandbox.reset_stats();
    let again = run(flat_ingest(&f, &[], "2025-01-06", "2025-01-10"));
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(f.sandbox.stats().flat_gets, 0);
}
