//! Every strategy in `examples/` runs against the sandbox and does what its doc says:
//! the data ends complete on disk, the requests counted at the sandbox are the ones the
//! strategy implies, and the run folder's `joblog.jsonl` shows the batching it chose.
//! None of this recompiles anything: the scripts are read at run time.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use barsmith::calendar::DateRange;
use barsmith::sandbox::FaultPlan;
use common::{Fixture, run, stderr};
use serde_json::Value;

/// The path of a script in the repository.
fn script(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `barsmith run --run-dir RUN_DIR SCRIPT FLAGS` against the fixture's sandbox, with
/// `--outdir` set to the fixture's data root.
fn run_script(fx: &Fixture, run_dir: &str, path: &str, flags: &[&str]) -> Output {
    let mut cmd = fx.barsmith();
    cmd.args(["run", "--run-dir", run_dir, "--progress", "plain"])
        .args(["--base-url", &fx.sandbox.base_url()])
        .arg(script(path))
        .args(flags)
        .arg("--outdir")
        .arg(fx.outdir());
    run(cmd)
}

/// Writes a file in the fixture's folder and returns its path as text.
fn write(fx: &Fixture, name: &str, text: &str) -> String {
    let p = fx.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// The lines of a run folder's `joblog.jsonl`, in the order they were written.
fn joblog(fx: &Fixture, run_dir: &str) -> Vec<Value> {
    let p = fx.dir.path().join(run_dir).join("joblog.jsonl");
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The number of tickers a joblog line's batch held.
fn batch_size(line: &Value) -> u64 {
    ["tickers_ok", "tickers_skipped", "tickers_failed"]
        .iter()
        .map(|k| line[*k].as_u64().unwrap())
        .sum()
}

/// The tickers the batch `id` (attempt 1) was given, from its tickers file.
fn batch_tickers(fx: &Fixture, run_dir: &str, id: u32) -> Vec<String> {
    let p = fx
        .dir
        .path()
        .join(run_dir)
        .join(format!("batch-{id:04}.attempt-1.tickers.csv"));
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

fn assert_complete(fx: &Fixture, tickers: &[&str], from: &str, to: &str) {
    let store = fx.store();
    let range = DateRange::parse(from, to).unwrap();
    for t in tickers {
        let missing = store.missing(t, range).unwrap();
        assert!(missing.is_empty(), "{t} still misses {missing:?}");
    }
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
}

fn requests_by_ticker(fx: &Fixture) -> BTreeMap<String, u64> {
    fx.sandbox.stats().by_ticker
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>, t: &str) -> u64 {
    after.get(t).copied().unwrap_or(0) - before.get(t).copied().unwrap_or(0)
}

#[test]
fn retry_failed_requeues_only_retryable_tickers_in_smaller_batches() {
    let fx = Fixture::with_faults(&["BBB=500", "DDD=502", "CCC=403"]);
    let universe = write(&fx, "u.csv", "ticker\nAAA\nBBB\nCCC\nDDD\nEEE\n");
    let (from, to) = ("2025-01-02", "2025-01-31");
    let first = run_script(
        &fx,
        "runs/first",
        "scripts/wrapper.rhai",
        &[
            "--tickers-csv",
            &universe,
            "--from",
            from,
            "--to",
            to,
            "--tries",
            "1",
            "--passes",
            "1",
            "--request-retries",
            "2",
            "--max-concurrent",
            "1",
        ],
    );
    assert_exit(&first, 3);
    let failed =
        std::fs::read_to_string(fx.dir.path().join("runs/first/failed_tickers.csv")).unwrap();
    assert!(
        failed.starts_with("ticker,class,kind,message,from,to\n"),
        "{failed}"
    );
    assert!(failed.contains("\nCCC,ticker,not_entitled,"), "{failed}");

    fx.sandbox.set_faults(FaultPlan::default());
    let before = requests_by_ticker(&fx);
    let retry = run_script(
        &fx,
        "runs/retry",
        "examples/retry_failed.rhai",
        &[
            "--failed",
            "runs/first/failed_tickers.csv",
            "--from",
            from,
            "--to",
            to,
            "--batch-size",
            "1",
        ],
    );
    assert_exit(&retry, 0);
    assert_complete(&fx, &["AAA", "BBB", "DDD", "EEE"], from, to);
    let after = requests_by_ticker(&fx);
    assert_eq!(
        delta(&after, &before, "CCC"),
        0,
        "not entitled: not retried"
    );
    assert_eq!(delta(&after, &before, "AAA"), 0, "complete: not retried");
    assert!(delta(&after, &before, "BBB") >= 1 && delta(&after, &before, "DDD") >= 1);

    // The batching changed with the script alone: one batch of 5, then batches of 1.
    let sizes = |run_dir| -> Vec<u64> { joblog(&fx, run_dir).iter().map(batch_size).collect() };
    assert_eq!(sizes("runs/first"), [5]);
    assert_eq!(sizes("runs/retry"), [1, 1]);
    assert!(
        joblog(&fx, "runs/retry")
            .iter()
            .all(|l| l["label"] == "retry-failed")
    );
}

#[test]
fn priority_starts_the_largest_names_first() {
    let fx = Fixture::with_faults(&[]);
    let universe = write(
        &fx,
        "caps.csv",
        "ticker,name,market_cap\n\
         SMALL,Small Co,1.5e9\n\
         HUGE,Huge Inc,3000000000000\n\
         NOCAP,Unknown,\n\
         MID,Mid Corp,45000000000\n\
         BIG,Big Ltd,900000000000\n",
    );
    let (from, to) = ("2025-02-03", "2025-02-14");
    let out = run_script(
        &fx,
        "runs/p",
        "examples/priority.rhai",
        &[
            "--universe",
            &universe,
            "--from",
            from,
            "--to",
            to,
            "--batch-size",
            "2",
            "--max-concurrent",
            "1",
        ],
    );
    assert_exit(&out, 0);
    assert_complete(&fx, &["HUGE", "BIG", "MID", "SMALL", "NOCAP"], from, to);
    let log = joblog(&fx, "runs/p");
    let order: Vec<(u64, &str)> = log
        .iter()
        .map(|l| (l["id"].as_u64().unwrap(), l["label"].as_str().unwrap()))
        .collect();
    assert_eq!(
        order,
        [(1, "priority 1"), (2, "priority 2"), (3, "priority 3")]
    );
    assert_eq!(batch_tickers(&fx, "runs/p", 1), ["HUGE", "BIG"]);
    assert_eq!(batch_tickers(&fx, "runs/p", 2), ["MID", "SMALL"]);
    assert_eq!(batch_tickers(&fx, "runs/p", 3), ["NOCAP"]);
}

#[test]
fn yearly_passes_run_newest_year_first_and_resume() {
    let fx = Fixture::with_faults(&[]);
    let universe = write(&fx, "u.txt", "AAA\nBBB\n");
    let (from, to) = ("2023-12-01", "2025-01-31");
    let flags = ["--tickers-csv", &universe, "--from", from, "--to", to];
    let out = run_script(&fx, "runs/y", "examples/yearly.rhai", &flags);
    assert_exit(&out, 0);
    assert_complete(&fx, &["AAA", "BBB"], from, to);
    let labels: Vec<String> = joblog(&fx, "runs/y")
        .iter()
        .map(|l| l["label"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(labels, ["year 2025", "year 2024", "year 2023"]);

    let before = fx.sandbox.stats().data_requests;
    let again = run_script(&fx, "runs/y2", "examples/yearly.rhai", &flags);
    assert_exit(&again, 0);
    assert_eq!(fx.sandbox.stats().data_requests, before, "all complete");
}

#[test]
fn nightly_fetches_only_the_days_missing_since_the_last_run() {
    let fx = Fixture::with_faults(&[]);
    let first = run(fx.ingest(&["AAPL", "MSFT"], "2025-01-01", "2025-03-31"));
    assert_exit(&first, 0);
    let universe = write(&fx, "u.csv", "ticker\nAAPL\nMSFT\nAMD\n");
    let before = requests_by_ticker(&fx);
    let flags = [
        "--tickers-csv",
        &universe,
        "--from",
        "2025-01-01",
        "--to",
        "2025-04-15",
    ];
    let out = run_script(&fx, "runs/n1", "examples/nightly.rhai", &flags);
    assert_exit(&out, 0);
    assert_complete(&fx, &["AAPL", "MSFT", "AMD"], "2025-01-01", "2025-04-15");
    let after = requests_by_ticker(&fx);
    // Eleven trading days fit in one page: one request per stored ticker.
    assert_eq!(delta(&after, &before, "AAPL"), 1);
    assert_eq!(delta(&after, &before, "MSFT"), 1);
    assert!(
        delta(&after, &before, "AMD") >= 1,
        "new ticker: full history"
    );
    let mut groups: Vec<(String, u64)> = joblog(&fx, "runs/n1")
        .iter()
        .map(|l| (l["label"].as_str().unwrap().to_string(), batch_size(l)))
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            ("since 2025-01-01".to_string(), 1),
            ("since 2025-04-01".to_string(), 2)
        ]
    );

    let before = fx.sandbox.stats().data_requests;
    let again = run_script(&fx, "runs/n2", "examples/nightly.rhai", &flags);
    assert_exit(&again, 0);
    assert_eq!(fx.sandbox.stats().data_requests, before, "nothing missing");
}

#[test]
fn backoff_retries_a_failed_batch_after_growing_delays() {
    // Each batch attempt makes 2 requests for AAA: attempts 1-3 fail, attempt 4 succeeds.
    let fx = Fixture::with_faults(&["AAA=500:6"]);
    let universe = write(&fx, "u.txt", "AAA\nBBB\n");
    let (from, to) = ("2025-03-03", "2025-03-07");
    let out = run_script(
        &fx,
        "runs/b",
        "examples/backoff.rhai",
        &[
            "--tickers-csv",
            &universe,
            "--from",
            from,
            "--to",
            to,
            "--tries",
            "4",
            "--delay",
            "0.5",
            "--factor",
            "2",
            "--request-retries",
            "2",
            "--request-backoff",
            "0.01",
        ],
    );
    assert_exit(&out, 0);
    assert_complete(&fx, &["AAA", "BBB"], from, to);
    let log = joblog(&fx, "runs/b");
    let attempts: Vec<u64> = log.iter().map(|l| l["attempt"].as_u64().unwrap()).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    assert!(log.iter().all(|l| l["id"] == 1), "retried under its id");
    let secs = |l: &Value| {
        let start: jiff::Timestamp = l["start"].as_str().unwrap().parse().unwrap();
        start.as_millisecond() as f64 / 1000.0
    };
    for (i, expected) in [0.5, 1.0, 2.0].into_iter().enumerate() {
        let end = secs(&log[i]) + log[i]["duration_s"].as_f64().unwrap();
        let gap = secs(&log[i + 1]) - end;
        assert!(
            gap >= expected - 0.05,
            "gap before attempt {}: {gap}",
            i + 2
        );
    }
}

#[test]
fn backoff_halts_when_the_failure_budget_is_spent() {
    let fx = Fixture::with_faults(&["BBB=403"]);
    let universe = write(&fx, "u.txt", "AAA\nBBB\nCCC\nDDD\n");
    let out = run_script(
        &fx,
        "runs/h",
        "examples/backoff.rhai",
        &[
            "--tickers-csv",
            &universe,
            "--from",
            "2025-03-03",
            "--to",
            "2025-03-07",
            "--batch-size",
            "1",
            "--max-concurrent",
            "1",
            "--max-failures",
            "0",
        ],
    );
    assert_exit(&out, 5);
    assert!(
        stderr(&out).contains("over --max-failures 0"),
        "{}",
        stderr(&out)
    );
    let seen = requests_by_ticker(&fx);
    assert!(seen.contains_key("AAA") && seen.contains_key("BBB"));
    assert!(
        !seen.contains_key("CCC") && !seen.contains_key("DDD"),
        "halted before: {seen:?}"
    );
}

#[test]
fn dry_run_prints_the_plan_and_makes_no_request() {
    let fx = Fixture::with_faults(&[]);
    let (from, to) = ("2025-01-01", "2025-03-31");
    assert_exit(&run(fx.ingest(&["AAPL"], from, to)), 0);
    let universe = write(&fx, "u.csv", "ticker\nAAPL\nMSFT\nNVDA\nAMD\nIBM\n");
    let before = fx.sandbox.stats();
    let out = run_script(
        &fx,
        "runs/dry",
        "examples/dry_run.rhai",
        &[
            "--tickers-csv",
            &universe,
            "--from",
            from,
            "--to",
            to,
            "--batch-size",
            "3",
            "--max-rps",
            "5/min",
        ],
    );
    assert_exit(&out, 0);
    let after = fx.sandbox.stats();
    assert_eq!(after.requests, before.requests, "a dry run sends nothing");
    assert_eq!(after.data_requests, before.data_requests);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("already complete: 1; to fetch: 4"), "{plan}");
    assert!(plan.contains("batches: 2 of up to 3 tickers"), "{plan}");
    assert!(
        plan.contains(r#"batch 1: 3 tickers: ["MSFT", "NVDA", "AMD"]"#),
        "{plan}"
    );
    // 64 weekdays x 960 bars = 61,440 bars: 2 requests per ticker; 8 at 5/min = 96 s.
    assert!(plan.contains("estimated requests: 8\n"), "{plan}");
    assert!(plan.contains("0h 1m 36s"), "{plan}");
    assert!(
        !fx.dir.path().join("runs/dry").exists(),
        "no batch, no run folder"
    );
}

#[test]
fn every_example_explains_itself_with_help() {
    let dir = script("examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".rhai"))
        .collect();
    names.sort();
    assert!(names.len() >= 6, "{names:?}");
    let readme = std::fs::read_to_string(script("README.md")).unwrap();
    for name in names {
        let text = std::fs::read_to_string(dir.join(&name)).unwrap();
        assert!(text.starts_with("//! "), "{name} must start with a //! doc");
        assert!(
            text.contains("args(#{"),
            "{name} must declare its flags with args"
        );
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_barsmith"));
        cmd.arg("run")
            .arg(dir.join(&name))
            .arg("--help")
            .env_remove("POLYGON_API_KEY")
            .env_remove("MASSIVE_API_KEY");
        let out = run(cmd);
        assert_exit(&out, 0);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Example:")
                && help.contains("Usage: barsmith run")
                && help.contains("--from"),
            "{name} --help:\n{help}"
        );
        assert!(
            readme.contains(&format!("examples/{name}")),
            "README does not list {name}"
        );
    }
}
