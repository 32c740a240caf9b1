//! What a wrapper run prints, and where: progress and logs on standard error, the
//! final summary on standard output; progress counts each pass's own batches (a retry
//! adds none) and fits 100 columns; `--progress none` still shows warnings.

mod common;

use std::time::Duration;

use common::Fixture;

const FROM: &str = "2024-03-04";
const TO: &str = "2024-03-08";

/// Four tickers in two batches, one at a time; T03 fails both attempts of pass 1
/// (two tries per request, two attempts) and completes in pass 2.
fn run_with_a_retry(progress: &str) -> (String, String) {
    let fx = Fixture::with_faults(&["T03=500:4"]);
    let csv = fx.universe(&["T00", "T01", "T02", "T03"]);
    let cmd = fx.wrapper_run_with_progress(
        "r",
        progress,
        &[
            "--tickers-csv",
            &csv,
            "--from",
            FROM,
            "--to",
            TO,
            "--batch-size",
            "2",
            "--max-concurrent",
            "1",
        ],
    );
    let out = assert_cmd::Command::from_std(cmd)
        .timeout(Duration::from_secs(120))
        .assert()
        .code(0)
        .get_output()
        .clone();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_summary_goes_to_stdout_progress_and_logs_to_stderr() {
    let (out, err) = run_with_a_retry("plain");
    assert!(out.contains("✓ COMPLETED"), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("Tickers: 4 ok"), "{out}");
    for progress in ["Batch 0001", "pass 1:", "pass 1: 4 tickers", "warning:"] {
        assert!(!out.contains(progress), "{progress} on stdout: {out}");
    }
    assert!(
        !err.contains("COMPLETED"),
        "the summary is not on stderr: {err}"
    );
    assert!(err.contains("pass 1: 4 tickers in 2 batches"), "{err}");
    assert!(err.contains("warning: batch 2 failed(rc=3)"), "{err}");
}

#[test]
fn batch_lines_count_the_pass_s_own_batches_and_fit_100_columns() {
    let (_, err) = run_with_a_retry("plain");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("Batch ")).collect();
    assert_eq!(lines.len(), 4, "{err}");
    // The seed said 1/2, 1/3, 3/3 = 100.0% and 4/4: a retry grew the total.
    assert!(lines[0].ends_with("| pass 1: 1/2 batches"), "{lines:?}");
    assert!(
        lines[1].starts_with("Batch 0002: failed(rc=3)")
            && lines[1].ends_with("[1/2 tickers failed] | pass 1: 1/2 batches"),
        "batch 2 waits for its retry: {lines:?}"
    );
    assert!(
        lines[2].starts_with("Batch 0002 attempt 2: failed(rc=3)")
            && lines[2].ends_with("| pass 1: 2/2 batches"),
        "{lines:?}"
    );
    assert!(
        lines[3].starts_with("Batch 0003: success") && lines[3].ends_with("| pass 2: 1/1 batches"),
        "{lines:?}"
    );
    for l in err
        .lines()
        .filter(|l| l.starts_with("Batch ") || l.starts_with("Progress"))
    {
        assert!(l.chars().count() <= 100, "{l}");
        assert!(!l.contains("100%"), "{l}");
    }
}

#[test]
fn progress_none_hides_progress_but_not_warnings() {
    let (out, err) = run_with_a_retry("none");
    assert!(out.contains("✓ COMPLETED"), "{out}");
    assert!(!err.contains("Batch 0001"), "no progress: {err}");
    assert!(
        err.contains("warning: batch 2 failed(rc=3); attempt 2/2"),
        "{err}"
    );
}
