//! The bundled `scripts/wrapper.rhai` run by `barsmith run` against the sandbox: faults
//! of every kind end in complete coverage, resume costs no data request, a rejected
//! key halts at once, and a killed parent leaves no worker behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use barsmith::calendar::DateRange;
use barsmith::sandbox::{FaultPlan, SandboxConfig, synth};
use common::{Fixture, joblog_at, run, stderr, test_config};

const FROM: &str = "2024-03-01";
const TO: &str = "2024-03-08";

fn wrapper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/wrapper.rhai")
}

fn universe(fx: &Fixture, n: usize) -> (PathBuf, Vec<String>) {
    let tickers: Vec<String> = (0..n).map(|i| format!("T{i:02}")).collect();
    let path = fx.dir.path().join("universe.csv");
    std::fs::write(&path, format!("ticker\n{}\n", tickers.join("\n"))).unwrap();
    (path, tickers)
}

/// `barsmith run scripts/wrapper.rhai` on this fixture, with fast per-request retries.
fn wrapper_cmd(fx: &Fixture, universe: &Path, extra: &[&str]) -> Command {
    let mut cmd = fx.barsmith();
    cmd.arg("run")
        .arg("--run-dir")
        .arg(
            fx.dir
                .path()
                .join("runs")
                .join(format!("{}", fastrand_id())),
        )
        .args(["--progress", "plain", "--base-url", &fx.sandbox.base_url()])
        .arg(wrapper())
        .arg("--tickers-csv")
        .arg(universe)
        .arg("--outdir")
        .arg(fx.outdir())
        .args([
            "--from",
            FROM,
            "--to",
            TO,
            "--retry-delay",
            "0",
            "--request-retries",
            "2",
        ])
        .args(extra);
    cmd
}

fn fastrand_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn run_dirs(fx: &Fixture) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fx.dir.path().join("runs"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn incomplete(fx: &Fixture, tickers: &[String]) -> Vec<String> {
    let store = fx.store();
    let range = DateRange::parse(FROM, TO).unwrap();
    tickers
        .iter()
        .filter(|t| !store.missing(t, range).unwrap().is_empty())
        .cloned()
        .collect()
}

/// Pids of live `barsmith ingest` workers writing into `outdir`.
fn workers_of(outdir: &Path) -> Vec<u32> {
    let needle = outdir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = state
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            text.contains(" ingest ") && text.contains(&needle) && !zombie
        })
        .collect()
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

#[test]
fn a_wrapper_run_with_faults_ends_complete_and_a_rerun_fetches_nothing() {
    let cfg = SandboxConfig {
        faults: FaultPlan::parse(&[
            "T05=429:2",
            "T11=503:1",
            "T17=502-html:1",
            "T23=hang:1", // caught by the batch timeout, not the request timeout
            "T29=500:4",  // fails both attempts of its batch, then the second pass succeeds
            "T41=429-retry-after=1:1",
        ])
        .unwrap(),
        ..test_config()
    };
    let fx = Fixture::with_config(cfg);
    let (csv, tickers) = universe(&fx, 50);
    let out = run(wrapper_cmd(
        &fx,
        &csv,
        &[
            "--batch-size",
            "5",
            "--max-concurrent",
            "4",
            "--tries",
            "2",
            "--batch-timeout",
            "4",
            "--request-timeout",
            "60",
        ],
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(incomplete(&fx, &tickers), Vec::<String>::new());
    let range = DateRange::parse(FROM, TO).unwrap();
    for t in &tickers {
        let stored = fx.store().read_bars(t, range).unwrap();
        assert_eq!(
            stored,
            synth::bars_for(t, range, fx.sandbox.config()),
            "{t}"
        );
    }

    let run_dir = &run_dirs(&fx)[0];
    let log = joblog_at(run_dir);
    assert!(
        log.iter().any(|j| j["timed_out"] == true),
        "the hung batch was killed by its timeout"
    );
    assert!(
        log.iter().any(|j| j["attempt"] == 2),
        "a failed batch was retried"
    );
    assert!(
        err.contains("pass 2:"),
        "T29 went again in a second pass: {err}"
    );
    let failed = std::fs::read_to_string(run_dir.join("failed_tickers.csv")).unwrap();
    assert_eq!(failed.trim(), "ticker,class,kind,message,from,to");
    let summary = std::fs::read_to_string(run_dir.join("summary.txt")).unwrap();
    assert!(summary.contains("COMPLETED"), "{summary}");
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["exit"], 0);

    fx.sandbox.reset_stats();
    let again = run(wrapper_cmd(&fx, &csv, &[]));
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(stderr(&again).contains("50 of 50 tickers already complete"));
    assert_eq!(
        fx.sandbox.stats().data_requests,
        0,
        "resume must not touch the API"
    );
}

#[test]
fn a_rejected_key_halts_the_run_after_the_first_batch() {
    let fx = Fixture::with_faults(&[]);
    let (csv, _) = universe(&fx, 20);
    let mut cmd = wrapper_cmd(&fx, &csv, &["--batch-size", "5", "--max-concurrent", "1"]);
    cmd.env("POLYGON_API_KEY", "not-the-key");
    let out = run(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("halting") && err.contains("Unknown API Key"),
        "{err}"
    );
    assert_eq!(
        joblog_at(&run_dirs(&fx)[0]).len(),
        1,
        "no batch after the fatal one, and no retry"
    );
    // Only the first batch's tickers were asked before it stopped: how many of its 5
    // depends on how far the adaptive window grew before the first answer (it starts
    // at 2 and doubles every 25 ms while every slot waits).
    assert!(fx.sandbox.stats().data_requests <= 5);
}

#[test]
fn too_many_failed_batches_trip_the_failure_budget() {
    let specs: Vec<String> = (0..12).map(|i| format!("T{i:02}=403")).collect();
    let refs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let fx = Fixture::with_faults(&refs);
    let (csv, _) = universe(&fx, 40);
    let out = run(wrapper_cmd(
        &fx,
        &csv,
        &[
            "--batch-size",
            "2",
            "--max-concurrent",
            "2",
            "--max-failed-pct",
            "50",
        ],
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("--max-failed-pct"), "{err}");
    assert!(
        joblog_at(&run_dirs(&fx)[0]).len() < 20,
        "it stopped before running every batch"
    );
}

/// A wrapper run slowed down by sandbox latency, returned once its three workers run.
fn slow_run_with_three_workers() -> (Fixture, PathBuf, Vec<String>, std::process::Child) {
    let cfg = SandboxConfig {
        latency: Duration::from_millis(400),
        ..test_config()
    };
    let fx = Fixture::with_config(cfg);
    let (csv, tickers) = universe(&fx, 12);
    let parent = wrapper_cmd(&fx, &csv, &["--batch-size", "3", "--max-concurrent", "3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let outdir = fx.outdir();
    assert!(
        wait_until(Duration::from_secs(20), || workers_of(&outdir).len() == 3),
        "workers started"
    );
    (fx, csv, tickers, parent)
}

#[test]
fn kill_9_of_the_parent_leaves_no_worker_and_a_rerun_completes() {
    let (fx, csv, tickers, mut parent) = slow_run_with_three_workers();
    let outdir = fx.outdir();
    unsafe { libc::kill(parent.id() as i32, libc::SIGKILL) };
    let _ = parent.wait();
    assert!(
        wait_until(Duration::from_secs(10), || workers_of(&outdir).is_empty()),
        "workers outlived their parent: {:?}",
        workers_of(&outdir)
    );
    let out = run(wrapper_cmd(&fx, &csv, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(incomplete(&fx, &tickers), Vec::<String>::new());
}

#[test]
fn sigterm_stops_batches_writes_the_records_and_exits_non_zero() {
    let (fx, _, _, mut parent) = slow_run_with_three_workers();
    let outdir = fx.outdir();
    unsafe { libc::kill(parent.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    let status = parent.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "stopped within the grace period"
    );
    assert_eq!(status.code(), Some(143));
    assert!(workers_of(&outdir).is_empty());
    let run_dir = &run_dirs(&fx)[0];
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["exit"], 143, "{run_json}");
    assert!(run_dir.join("summary.txt").is_file());
}

#[test]
fn the_wrapper_documents_every_flag_in_its_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_barsmith"))
        .arg("run")
        .arg(wrapper())
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    let flags: Vec<&str> = help
        .lines()
        .filter(|l| l.trim_start().starts_with("--"))
        .collect();
    assert!(flags.len() >= 15, "{help}");
    for line in flags {
        let text = line
            .split_whitespace()
            .skip(2)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            !text.starts_with('[') && !text.starts_with('('),
            "undocumented: {line}"
        );
    }
    assert!(
        help.contains("tickers per worker process [default: 25]"),
        "{help}"
    );
}
