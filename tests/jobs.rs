//! Strategies in a few lines: the `Date` type, `split_range`, `sort_by`, jobs that
//! carry their own tickers, range and data, and `pool`, which runs them with at most N
//! alive and retries what can be retried.

mod common;

use std::path::PathBuf;
use std::process::Output;

use barsmith::calendar::DateRange;
use common::{Fixture, run, stderr};

/// Writes `script` into the fixture's folder and runs it against the sandbox.
fn run_script(fx: &Fixture, script: &str, flags: &[&str]) -> Output {
    let path: PathBuf = fx.dir.path().join("s.rhai");
    std::fs::write(&path, script).unwrap();
    let mut cmd = fx.barsmith();
    cmd.args(["run", "--run-dir"])
        .arg(fx.dir.path().join("runs/r"))
        .args(["--progress", "none", "--base-url", &fx.sandbox.base_url()])
        .arg(&path)
        .args(flags);
    run(cmd)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dates_add_subtract_compare_and_split_into_calendar_periods() {
    let fx = Fixture::with_faults(&[]);
    let out = run_script(
        &fx,
        r#"
let d = date("2024-01-31") + 1;
print(`${d} ${date(2024, 3, 1) - date("2024-02-01")} ${d < date("2024-02-02")}`);
let e = date("2024-02-27");
e += 2;
print(`${e} ${e.month_end()} ${e.quarter_end()} ${e.year_start()} Q${e.quarter}`);
print(`${date("2024-05-17").next_trading_day()} ${date("2024-05-17").weekday}`);
print(split_range("2023-11-15", date("2024-04-02"), "quarter").map(|q| `${q.from}..${q.to}`));
print("2023-11-01" + 1);
"#,
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().take(5).collect::<Vec<_>>(),
        [
            "2024-02-01 29 true",
            "2024-02-29 2024-02-29 2024-03-31 2024-01-01 Q1",
            "2024-05-20 Friday",
            "[\"2023-11-15..2023-12-31\", \"2024-01-01..2024-03-31\", \"2024-04-01..2024-04-02\"]",
            "2023-11-011",
        ]
    );
    let bad = run_script(
        &fx,
        r#"split_range("2024-01-01", "2024-02-01", "months");"#,
        &[],
    );
    assert_ne!(bad.status.code(), Some(0));
    assert!(
        stderr(&bad).contains("unknown unit \"months\" (did you mean \"month\"?)"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn sort_by_orders_csv_rows_by_a_numeric_column_with_blanks_last() {
    let fx = Fixture::with_faults(&[]);
    std::fs::write(
        fx.dir.path().join("caps.csv"),
        "ticker,cap\nA,9\nB,\nC,10\nD,1.5e3\nE,9\n",
    )
    .unwrap();
    let out = run_script(
        &fx,
        r#"
let rows = read_csv(`${script_dir()}/caps.csv`);
print(sort_by(rows, "cap").map(|r| r.ticker));
print(sort_by(rows, "cap", "desc").map(|r| r.ticker));
"#,
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().take(2).collect::<Vec<_>>(),
        [
            "[\"A\", \"E\", \"C\", \"D\", \"B\"]",
            "[\"D\", \"C\", \"A\", \"E\", \"B\"]"
        ]
    );
}

/// A per-ticker-quarter strategy with retries, in ten lines.
const POOL: &str = r#"
let cfg = args(#{ outdir: (), tickers: "AAA,BBB" });
let jobs = [];
for t in cfg.tickers.split(",") {
    for q in split_range("2024-11-15", "2025-02-10", "quarter") {
        jobs.push(#{ ticker: t, from: q.from, to: q.to, note: `${t} ${q.from}` });
    }
}
let results = pool(jobs, #{ outdir: cfg.outdir, max_concurrent: 2, tries: 3, retries: 1 });
for r in results { print(`${r.job.note} ok=${r.ok} attempts=${r.attempts}`); }
exit(if results.all(|r| r.ok) { 0 } else { 3 });
"#;

#[test]
fn pool_runs_each_job_with_its_range_retries_and_returns_results_in_job_order() {
    // BBB's first request fails (once per attempt budget of 1): its first job retries.
    let fx = Fixture::with_faults(&["BBB=500:1"]);
    let outdir = fx.outdir().display().to_string();
    let out = run_script(&fx, POOL, &["--outdir", &outdir]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // In job order; which BBB job met the one 500 depends on timing, so the attempts
    // are compared as a set.
    let lines: Vec<(String, String)> = stdout(&out)
        .lines()
        .take(4)
        .map(|l| {
            let (job, rest) = l.split_once(" ok=true attempts=").unwrap();
            (job.to_string(), rest.to_string())
        })
        .collect();
    let jobs: Vec<&str> = lines.iter().map(|(j, _)| j.as_str()).collect();
    assert_eq!(
        jobs,
        [
            "AAA 2024-11-15",
            "AAA 2025-01-01",
            "BBB 2024-11-15",
            "BBB 2025-01-01"
        ]
    );
    let mut attempts: Vec<&str> = lines.iter().map(|(_, a)| a.as_str()).collect();
    attempts.sort();
    assert_eq!(attempts, ["1", "1", "1", "2"], "one retry, for BBB");
    assert!(lines[0].1 == "1" && lines[1].1 == "1", "{lines:?}");
    let store = fx.store();
    let whole = DateRange::parse("2024-11-15", "2025-02-10").unwrap();
    for t in ["AAA", "BBB"] {
        assert_eq!(store.coverage(t).unwrap(), [whole], "{t}");
    }
}

#[test]
fn a_job_carries_any_label_and_data_back_with_its_result() {
    let fx = Fixture::with_faults(&[]);
    let outdir = fx.outdir().display().to_string();
    let out = run_script(
        &fx,
        r#"
let cfg = args(#{ outdir: () });
let h = spawn_job(#{ tickers: ["CCC"], from: date("2025-01-02"), to: "2025-01-03", label: 42, rank: [1, 2] },
                  #{ outdir: cfg.outdir });
let r = wait(h);
print(`${r.label} ${type_of(r.label)} ${r.job.rank} ${r.success}`);
let h = spawn_batch(["DDD"], #{ outdir: cfg.outdir, from: "2025-01-02", to: "2025-01-03", data: #{ why: "test" } });
let r = wait_any([h]).result;
print(`${r.data.why} ${r.label}`);
"#,
        &["--outdir", &outdir],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().take(2).collect::<Vec<_>>(),
        ["42 i64 [1, 2] true", "test "]
    );
}

#[test]
fn a_pool_halts_on_a_rejected_key_with_exit_4() {
    let fx = Fixture::with_faults(&[]);
    let outdir = fx.outdir().display().to_string();
    let path = fx.dir.path().join("s.rhai");
    std::fs::write(&path, POOL).unwrap();
    let mut cmd = fx.barsmith();
    cmd.env("POLYGON_API_KEY", "not-the-key")
        .args([
            "run",
            "--progress",
            "none",
            "--base-url",
            &fx.sandbox.base_url(),
        ])
        .arg(&path)
        .args(["--outdir", &outdir]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("Unknown API Key"), "{}", stderr(&out));
}

#[test]
fn the_readme_pool_snippet_runs_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let snippet = readme
        .split("```rhai\n")
        .skip(1)
        .map(|rest| &rest[..rest.find("```").unwrap()])
        .find(|code| code.contains("pool("))
        .expect("README has a pool snippet");
    let fx = Fixture::with_faults(&[]);
    let universe = fx.universe(&["AAA", "BBB"]);
    let outdir = fx.outdir().display().to_string();
    let flags = [
        "--tickers-csv",
        &universe,
        "--from",
        "2024-12-20",
        "--to",
        "2025-01-10",
        "--outdir",
        &outdir,
    ];
    let out = run_script(&fx, snippet, &flags);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let whole = DateRange::parse("2024-12-20", "2025-01-10").unwrap();
    for t in ["AAA", "BBB"] {
        assert_eq!(fx.store().coverage(t).unwrap(), [whole], "{t}");
    }
}
